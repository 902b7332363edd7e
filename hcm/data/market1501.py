"""Market-1501 and DukeMTMC-reID: one folder of images per split.

Layout (both datasets)::

    Market-1501-v15.09.15/            DukeMTMC-reID/
      bounding_box_train/               bounding_box_train/
      query/                            query/
      bounding_box_test/                bounding_box_test/

Names like ``0002_c1s1_000451_03.jpg`` (Market) or ``0001_c2_f0046182.jpg`` (Duke):
identity and camera from ``(-?\\d+)_c(\\d)``. Identity -1 ("junk") is dropped;
identity 0 (Market's distractors) stays in the gallery. Cameras: Market 1-6, Duke 1-8.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from hcm.data.dataset import ReIDDataset
from hcm.data.parsing import NameRule, find_child, read_split_folders
from hcm.data.spec import DatasetSpec, PublishedStats, register_dataset

#: split -> folder name, for every Market-style layout
MARKET_SUBDIRS: dict[str, str] = {
    "train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test",
}

_MARKET_NAME = re.compile(r"(-?\d+)_c(\d)")

MARKET_RULE = NameRule("Market-1501", _MARKET_NAME, (1, 6), "0002_c1s1_000451_03.jpg")
DUKE_RULE = NameRule("DukeMTMC-reID", _MARKET_NAME, (1, 8), "0001_c2_f0046182.jpg")

MARKET_HELP = (
    "Download Market-1501 (Market-1501-v15.09.15.zip) and unpack it so that "
    "<root>/Market-1501-v15.09.15/bounding_box_train exists."
)
DUKE_HELP = (
    "Download DukeMTMC-reID (DukeMTMC-reID.zip) and unpack it so that "
    "<root>/DukeMTMC-reID/bounding_box_train exists."
)


def looks_market_style(path: Path) -> bool:
    """Whether ``path`` holds at least one of the Market-style split folders."""
    return path.is_dir() and any(find_child(path, d) is not None for d in MARKET_SUBDIRS.values())


def read_market1501(folder: str | Path, **_options: Any) -> ReIDDataset:
    """Read Market-1501 from its folder; unrelated options are ignored."""
    ds = read_split_folders(
        Path(folder), name="market1501", layout="market1501", rule=MARKET_RULE,
        subdirs=MARKET_SUBDIRS, fix=MARKET_HELP,
    )
    distractors = int((ds.gallery["orig_pid"] == 0).sum())
    return replace(ds, meta={**ds.meta, "distractors": distractors})


def read_dukemtmcreid(folder: str | Path, **_options: Any) -> ReIDDataset:
    """Read DukeMTMC-reID from its folder; unrelated options are ignored."""
    return read_split_folders(
        Path(folder), name="dukemtmcreid", layout="dukemtmcreid", rule=DUKE_RULE,
        subdirs=MARKET_SUBDIRS, fix=DUKE_HELP,
    )


register_dataset(DatasetSpec(
    name="market1501",
    folder_names=("Market-1501-v15.09.15", "Market-1501", "market1501",
                  "market1501/Market-1501-v15.09.15"),
    is_folder=looks_market_style,
    reader=read_market1501,
    description="Market-1501 (Zheng et al., ICCV 2015): 1,501 identities, 6 cameras",
    layout_help=MARKET_HELP,
    label="Market-1501", order=10,
    stats=PublishedStats(ids={"train": 751, "query": 750, "gallery": 751},
                         images={"train": 12936, "query": 3368, "gallery": 15913}, cameras=6,
                         note="gallery identity 0 = distractors (counted as one identity)"),
))

register_dataset(DatasetSpec(
    name="dukemtmcreid",
    folder_names=("DukeMTMC-reID", "dukemtmc-reid", "dukemtmcreid",
                  "dukemtmc-reid/DukeMTMC-reID", "dukemtmcreid/DukeMTMC-reID"),
    is_folder=looks_market_style,
    reader=read_dukemtmcreid,
    description="DukeMTMC-reID (Zheng et al., ICCV 2017): 1,404 identities + distractors, 8 cameras",
    layout_help=DUKE_HELP,
    label="DukeMTMC-reID", order=20,
    stats=PublishedStats(ids={"train": 702, "query": 702, "gallery": 1110},
                         images={"train": 16522, "query": 2228, "gallery": 17661}, cameras=8),
))
