"""VeRi-776 (vehicle re-ID): one folder of images per split.

Layout::

    VeRi/
      image_train/    image_query/    image_test/   (+ name_*.txt, *.xml: not needed)

Names like ``0001_c001_00016450_0.jpg``: identity and camera from
``(-?\\d+)_c(\\d+)``, cameras 1-20. ``image_query`` is the query set and
``image_test`` the gallery.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hcm.data.dataset import ReIDDataset
from hcm.data.parsing import NameRule, find_child, read_split_folders
from hcm.data.spec import DatasetSpec, PublishedStats, register_dataset

VERI_SUBDIRS: dict[str, str] = {"train": "image_train", "query": "image_query", "gallery": "image_test"}
VERI_RULE = NameRule("VeRi-776", re.compile(r"(-?\d+)_c(\d+)"), (1, 20), "0001_c001_00016450_0.jpg")
VERI_HELP = (
    "Download VeRi-776 (VeRi.zip) and unpack it so that <root>/VeRi/image_train exists."
)


def looks_veri(path: Path) -> bool:
    """Whether ``path`` holds at least one of VeRi's split folders."""
    return path.is_dir() and any(find_child(path, d) is not None for d in VERI_SUBDIRS.values())


def read_veri776(folder: str | Path, **_options: Any) -> ReIDDataset:
    """Read VeRi-776 from its folder; unrelated options are ignored."""
    return read_split_folders(
        Path(folder), name="veri776", layout="veri776", rule=VERI_RULE,
        subdirs=VERI_SUBDIRS, fix=VERI_HELP,
    )


register_dataset(DatasetSpec(
    name="veri776",
    folder_names=("VeRi", "VeRi-776", "veri", "veri776", "veri/VeRi", "veri776/VeRi"),
    is_folder=looks_veri,
    reader=read_veri776,
    description="VeRi-776 (Liu et al., ICME 2016): 776 vehicles, 20 cameras",
    layout_help=VERI_HELP,
    label="VeRi-776", order=40,
    stats=PublishedStats(ids={"train": 576, "query": 200, "gallery": 200},
                         images={"train": 37778, "query": 1678, "gallery": 11579}, cameras=20,
                         note="query = image_query; gallery = image_test"),
))
