"""What a dataset is to the harness: a :class:`DatasetSpec`, registered in :data:`DATASETS`.

One file per dataset (or family of layouts) defines its reader and registers its spec:
folder names, a test recognising its folder, the reader, display label and order,
its published statistics and the model of its options. This module imports no reader:
readers import it, and :mod:`hcm.data.registry` imports the built-in readers, so no
module imports another that imports it back. A dataset of your own registers the same
way from your module (``plugins:`` in a recipe, ``hcm --plugin MODULE``, or an
``hcm.plugins`` entry point; docs/extending.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from hcm.registry import Registry

if TYPE_CHECKING:
    from hcm.data.dataset import ReIDDataset

Reader = Callable[..., "ReIDDataset"]
Creator = Callable[..., Path]


class DatasetOptions(BaseModel):
    """Options of a dataset's reader (``dataset.options`` in a recipe, ``hcm prepare --option K=V``).

    Subclass it to declare a dataset's own options; the base has none.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # config.yaml records what it was given


@dataclass(frozen=True)
class PublishedStats:
    """Identities and images per split as published with a dataset (identity -1 dropped), its number
    of cameras, and the reader option they assume (e.g. MSMT17's ``train_lists``)."""

    ids: dict[str, int]
    images: dict[str, int]
    cameras: int
    train_lists: str | None = None
    note: str = ""


@dataclass(frozen=True)
class DatasetSpec:
    """How to find, read and (optionally) create one dataset, and how reports show it.

    ``reader(folder, **options)`` reads the dataset folder; ``is_folder(path)`` says
    whether ``path`` looks like this dataset's folder; ``create(parent, **options)``
    (generated datasets only) writes the folder under ``parent`` and returns it.
    ``options`` validates the reader's options (unknown keys are errors naming the
    valid ones). ``label`` and ``order`` place it in tables and figures (lower first).
    """

    name: str
    folder_names: tuple[str, ...]
    is_folder: Callable[[Path], bool]
    reader: Reader
    description: str = ""
    create: Creator | None = None
    layout_help: str = ""
    label: str = ""
    order: int = 1000
    stats: PublishedStats | None = None
    options: type[DatasetOptions] = DatasetOptions

    @property
    def display_name(self) -> str:
        return self.label or self.name

    def check_options(self, options: dict[str, Any], source: str = "dataset options") -> dict[str, Any]:
        """``options`` validated by :attr:`options`; only the keys given are returned (readers keep their
        own defaults). Raises ``ValueError`` naming the valid options."""
        from pydantic import ValidationError

        try:
            checked = self.options.model_validate(options)
        except ValidationError as exc:
            valid = ", ".join(self.options.model_fields) or "none"
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}={e['input']!r}: {e['msg']}" for e in exc.errors())
            raise ValueError(f"{source}: {problems} (options of {self.name}: {valid})") from None
        return checked.model_dump(exclude_unset=True)


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    return DATASETS.register(spec.name)(spec)
