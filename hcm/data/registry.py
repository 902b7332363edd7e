"""Dataset registry: ``load_dataset(name, root)`` for every registered dataset.

A dataset is registered as a :class:`hcm.data.spec.DatasetSpec` (folder names, a test
recognising its folder, a reader, options, label, order, published statistics, and for
generated datasets a function that creates the folder when it is absent). ``root`` may
be the dataset folder itself or its parent. This module imports the built-in readers
(each registers its datasets); they import :mod:`hcm.data.spec`, never this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# the built-in datasets: real layouts, then the generated presets
from hcm.data import market1501, msmt17, veri776  # noqa: F401
from hcm.data.dataset import ReIDDataset
from hcm.data.spec import DATASETS, DatasetOptions, DatasetSpec, PublishedStats, register_dataset
from hcm.data.synthetic import register as _synthetic  # noqa: F401
from hcm.errors import DatasetError

__all__ = ["DATASETS", "DatasetOptions", "DatasetSpec", "PublishedStats", "get_spec", "list_datasets",
           "load_dataset", "register_dataset", "resolve_folder"]



def get_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS.get(name)
    except KeyError as exc:
        raise DatasetError(f"{exc.args[0]}") from None


def list_datasets() -> list[str]:
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
    ``options`` are checked against the dataset's options model (``spec.options``; an
    unknown one is an error naming the valid ones) and go to the reader (e.g.
    ``train_lists="train"`` for MSMT17) and to the creator of generated datasets.
    """
    spec = get_spec(name)
    try:
        options = spec.check_options(options, f"dataset {name}")
    except ValueError as exc:
        raise DatasetError(str(exc)) from None
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
