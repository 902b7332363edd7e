"""Published statistics of the datasets, as their specs carry them (:attr:`DatasetSpec.stats`).

Counts after dropping identity -1, as published with each dataset. ``hcm prepare``
prints them beside a user's copy.
"""

from __future__ import annotations

import pandas as pd

from hcm.data.dataset import SPLITS
from hcm.data.registry import DATASETS, get_spec
from hcm.data.spec import PublishedStats

__all__ = ["PublishedStats", "published_stats", "stats_table"]


def published_stats(name: str) -> PublishedStats | None:
    """The published statistics of dataset ``name``, or None (e.g. generated datasets)."""
    return get_spec(name).stats if name in DATASETS else None


def stats_table() -> pd.DataFrame:
    """Every registered dataset with published statistics, one row each, in display order."""
    rows = []
    for spec in sorted(DATASETS.values(), key=lambda s: s.order):
        if spec.stats is None:
            continue
        st = spec.stats
        rows.append({"dataset": spec.name, "display_name": spec.display_name,
                     **{f"{s}_{k}": getattr(st, k)[s] for s in SPLITS for k in ("ids", "images")},
                     "cameras": st.cameras, "train_lists": st.train_lists or "", "note": st.note})
    return pd.DataFrame(rows)
