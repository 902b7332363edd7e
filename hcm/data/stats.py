"""Published statistics of the real datasets (``hcm/resources/dataset_stats.csv``).

Counts after dropping identity -1, as published with each dataset (copied from
the project's reference table). ``hcm prepare`` prints them beside a user's copy.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from importlib import resources

import pandas as pd

from hcm.data.dataset import SPLITS


@dataclass(frozen=True)
class PublishedStats:
    """Identities and images per split, number of cameras, and the MSMT17 train lists they assume."""

    dataset: str
    display_name: str
    ids: dict[str, int]
    images: dict[str, int]
    cameras: int
    train_lists: str | None
    note: str


def stats_table() -> pd.DataFrame:
    """The whole statistics file as a table (one row per dataset)."""
    text = resources.files("hcm").joinpath("resources/dataset_stats.csv").read_text(encoding="utf-8")
    return pd.read_csv(io.StringIO(text), dtype={"train_lists": str, "note": str}, keep_default_na=False)


def published_stats(name: str) -> PublishedStats | None:
    """The published statistics of dataset ``name``, or None (e.g. generated datasets)."""
    table = stats_table()
    rows = table[table["dataset"] == name]
    if rows.empty:
        return None
    row = rows.iloc[0]
    return PublishedStats(
        dataset=name,
        display_name=str(row["display_name"]),
        ids={s: int(row[f"{s}_ids"]) for s in SPLITS},
        images={s: int(row[f"{s}_images"]) for s in SPLITS},
        cameras=int(row["cameras"]),
        train_lists=str(row["train_lists"]) or None,
        note=str(row["note"]),
    )
