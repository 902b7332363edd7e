"""Paired per-seed differences between two rows of a study (the readings study's tables and figures)."""

from __future__ import annotations

import pandas as pd


def paired_series(runs: pd.DataFrame, dataset: str, row: str, reference: str, metric: str = "mAP") -> pd.Series:
    """Per seed: ``metric(row, seed) - metric(reference, seed)`` on ``dataset``, over the seeds both rows have.

    ``runs``: one line per run with columns ``dataset``, ``row``, ``seed`` and ``metric``."""
    sub = runs[runs["dataset"] == dataset]
    a = sub[sub["row"] == row].set_index("seed")[metric]
    b = sub[sub["row"] == reference].set_index("seed")[metric]
    return (a - b).dropna()
