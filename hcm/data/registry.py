"""Dataset registry: ``load_dataset(name, root)`` for every supported dataset.

A dataset is registered as a :class:`DatasetSpec`: the folder names it is usually
unpacked under, a test recognising its folder, a reader, and (for generated
datasets) a function that creates the folder when it is absent. ``root`` may be the
dataset folder itself or its parent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hcm.data.dataset import ReIDDataset
from hcm.errors import DatasetError
from hcm.registry import Registry

Reader = Callable[..., ReIDDataset]
Creator = Callable[..., Path]


@dataclass(frozen=True)
class DatasetSpec:
    """How to find, read and (optionally) create one dataset.

    ``reader(folder, **options)`` reads the dataset folder; ``is_folder(path)`` says
    whether ``path`` looks like this dataset's folder; ``create(parent, **options)``
    (generated datasets only) writes the folder under ``parent`` and returns it.
    """

    name: str
    folder_names: tuple[str, ...]
    is_folder: Callable[[Path], bool]
    reader: Reader
    description: str = ""
    create: Creator | None = None
    layout_help: str = ""


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    return DATASETS.register(spec.name)(spec)


def get_spec(name: str) -> DatasetSpec:
    _ensure_builtin()
    try:
        return DATASETS.get(name)
    except KeyError as exc:
        raise DatasetError(f"{exc.args[0]}") from None


def list_datasets() -> list[str]:
    _ensure_builtin()
    return DATASETS.names()


def resolve_folder(spec: DatasetSpec, root: str | Path) -> Path | None:
    """The dataset folder: ``root`` itself, or ``root/<one of folder_names>``; None if neither."""
    root = Path(root).expanduser()
    if spec.is_folder(root):
        return root
    for name in spec.folder_names:
        if spec.is_folder(root / name):
            return root / name
    return None


def load_dataset(name: str, root: str | Path, **options: Any) -> ReIDDataset:
    """Read dataset ``name`` from ``root`` (its folder or the folder's parent).

    Generated datasets (``synth-*``) are created under ``root`` when absent.
    ``options`` go to the reader (e.g. ``train_lists="train"`` for MSMT17) and to the
    creator of generated datasets.
    """
    spec = get_spec(name)
    folder = resolve_folder(spec, root)
    if folder is None and spec.create is not None:
        folder = spec.create(Path(root).expanduser(), **options)
    if folder is None:
        expected = " or ".join(str(Path(root) / n) for n in spec.folder_names)
        missing = "" if Path(root).expanduser().exists() else "folder does not exist, so "
        raise DatasetError(
            f"{root}: {missing}no {name} dataset found (looked for {expected}, and {root} itself). "
            f"{spec.layout_help or 'Put the dataset there or pass --root pointing at it.'}"
        )
    return spec.reader(folder, **options)


def _ensure_builtin() -> None:
    """Import the modules that register the built-in datasets (idempotent)."""
    import hcm.data.builtin  # noqa: F401
