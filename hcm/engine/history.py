"""Per-epoch metrics of a run: kept as a list of rows, written as CSV (atomically) after every epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from hcm.utils.io import atomic_write_text

#: columns of epochs.csv, in order (the contract with the reports and MLflow logging)
EPOCH_COLUMNS: tuple[str, ...] = (
    "epoch", "lr", "loss", "loss_id", "loss_img", "delta_mean", "delta_max", "p_mean", "img_anchor_frac",
    "num_clusters", "num_true_ids", "outlier_fraction", "ari", "nmi",
    "pairwise_precision", "pairwise_recall", "pairwise_f", "pairwise_recall_all",
    "extract_time_s", "cluster_time_s", "train_time_s", "test_mAP", "test_rank1", "val_mAP", "val_rank1",
    "skipped",
)


def write_history(path: str | Path, rows: list[dict[str, Any]], columns: tuple[str, ...] = EPOCH_COLUMNS) -> Path:
    """Write ``rows`` with the given columns (missing values empty) as CSV."""
    extra = sorted({k for r in rows for k in r} - set(columns))
    df = pd.DataFrame(rows, columns=[*columns, *extra])
    return atomic_write_text(path, df.to_csv(index=False, lineterminator="\n"))

