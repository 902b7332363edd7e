"""Published numbers (``hcm/resources/published_results.csv``): a data file users can edit.

One row per (method, dataset) with ``mAP, rank1, rank5, rank10`` in percent and a
``status``: ``reported``, ``not reported`` (the method's paper has no number for that
dataset) or ``not available`` (the number exists but could not be obtained -- HCM's
own table). ``variant`` names this project's variant that reproduces the method, so
the published table can show our number beside it with the difference.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd

from hcm.errors import HCMError
from hcm.report.style import TABLE_METRICS

COLUMNS: tuple[str, ...] = ("method", "variant", "dataset", *TABLE_METRICS, "status", "source")
STATUSES: tuple[str, ...] = ("reported", "not reported", "not available")


def default_path() -> Path:
    """The packaged file (edit it, or pass another file with ``--published``)."""
    return Path(str(resources.files("hcm") / "resources" / "published_results.csv"))


def load_published(path: str | Path | None = None) -> pd.DataFrame:
    """Read and check the published-numbers file; metric cells become floats (NaN when absent)."""
    path = Path(path) if path is not None else default_path()
    if not path.is_file():
        raise HCMError(f"{path}: published-numbers file not found; pass an existing CSV to --published")
    try:
        df = pd.read_csv(path, comment="#", dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise HCMError(f"{path}: not a readable CSV ({exc}); fix the line shown") from None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise HCMError(f"{path}: missing columns {missing}; the header must be {','.join(COLUMNS)}")
    df = df[list(COLUMNS)].apply(lambda col: col.str.strip())
    bad_status = sorted(set(df["status"]) - set(STATUSES))
    if bad_status:
        raise HCMError(f"{path}: unknown status {bad_status}; use one of {', '.join(STATUSES)}")
    for metric in TABLE_METRICS:
        values = pd.to_numeric(df[metric].replace("", None), errors="coerce")
        bad = df[metric].ne("") & values.isna()
        if bad.any():
            line = int(bad.idxmax())
            raise HCMError(f"{path}: {metric}={df[metric][line]!r} in row {line + 1} of the table is not a number")
        out_of_range = (values < 0) | (values > 100)
        if out_of_range.any():
            raise HCMError(f"{path}: {metric} values must be percentages in [0, 100]")
        df[metric] = values.astype(float)
    reported = df["status"].eq("reported")
    incomplete = reported & df[list(TABLE_METRICS)].isna().any(axis=1)
    if incomplete.any():
        row = df[incomplete].iloc[0]
        raise HCMError(
            f"{path}: {row['method']} on {row['dataset']} has status 'reported' but empty metric cells; "
            "fill all four or change the status"
        )
    filled = ~reported & df[list(TABLE_METRICS)].notna().any(axis=1)
    if filled.any():
        row = df[filled].iloc[0]
        raise HCMError(
            f"{path}: {row['method']} on {row['dataset']} has numbers but status {row['status']!r}; "
            "set the status to 'reported'"
        )
    dup = df.duplicated(["method", "dataset"])
    if dup.any():
        row = df[dup].iloc[0]
        raise HCMError(f"{path}: {row['method']} on {row['dataset']} appears twice; keep one row")
    return df.reset_index(drop=True)
