"""Per-epoch metrics of a run: kept as a list of rows, written as CSV (atomically) after every epoch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from hcm.utils.io import atomic_write_text

#: columns of epochs.csv before the loss terms' columns
LEADING_COLUMNS: tuple[str, ...] = ("epoch", "lr", "loss")
#: columns of epochs.csv after the loss terms' columns
TRAILING_COLUMNS: tuple[str, ...] = (
    "num_clusters", "num_true_ids", "outlier_fraction", "ari", "nmi",
    "pairwise_precision", "pairwise_recall", "pairwise_f", "pairwise_recall_all",
    "extract_time_s", "cluster_time_s", "train_time_s", "test_mAP", "test_rank1", "val_mAP", "val_rank1",
    "skipped",
)


def epoch_columns() -> tuple[str, ...]:
    """Columns of a training run's epochs.csv, in order (the contract with the reports and MLflow logging):
    the total loss, then every registered loss term's logged values (``hcm.terms``) and gradient
    diagnostics (``runtime.diagnostics``), then clustering,
    timing and evaluation columns."""
    from hcm.terms import gradient_columns, term_log_columns

    return (*LEADING_COLUMNS, *term_log_columns(), *gradient_columns(), *TRAILING_COLUMNS)


def write_history(path: str | Path, rows: list[dict[str, Any]], columns: tuple[str, ...] | None = None) -> Path:
    """Write ``rows`` with the given columns (default :func:`epoch_columns`; missing values empty) as CSV."""
    columns = epoch_columns() if columns is None else columns
    extra = sorted({k for r in rows for k in r} - set(columns))
    df = pd.DataFrame(rows, columns=[*columns, *extra])
    return atomic_write_text(path, df.to_csv(index=False, lineterminator="\n"))

