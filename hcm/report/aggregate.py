"""Collect finished run directories into tidy tables: the one results format every report reads.

A run directory (written by ``hcm train`` and ``hcm evaluate``) holds ``metrics.json``
(metric values as fractions in [0, 1]), ``epochs.csv`` (one row per epoch; no rows for
the ``untrained`` variant) and ``train_summary.json``. :func:`aggregate` turns a list
of them into four tables, all in PERCENT where they hold retrieval metrics:

- ``results``: one row per (dataset, variant, seed) with ``mAP, mINP, rank1, rank5,
  rank10`` -- the table every other table is derived from;
- ``cmc``: one row per (dataset, variant, seed, rank) with the CMC value;
- ``curves``: the runs' ``epochs.csv`` rows, keyed by (dataset, variant, seed);
- ``runs``: provenance per run (training status -- ``ok``, or ``not_trained`` / ``diverged`` for a
  run whose clustering never (or finally no longer) found two clusters --, checkpoint epoch and selection, times, query counts, and
  the CPU, GPU and torch version it was trained with).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from hcm.errors import HCMError
from hcm.report.style import RESULT_METRICS, order_datasets, order_variants
from hcm.utils.io import atomic_write_text

logger = logging.getLogger(__name__)

KEY: tuple[str, ...] = ("dataset", "variant", "seed")
RESULTS_COLUMNS: tuple[str, ...] = (*KEY, *RESULT_METRICS)
CMC_COLUMNS: tuple[str, ...] = (*KEY, "rank", "cmc")
#: the keys of a run's training environment (``train_summary.json``) kept in ``runs``: what
#: tells two machines apart when the same config gives different numbers
ENVIRONMENT_COLUMNS: tuple[str, ...] = ("cpu", "cpu_capability", "gpu", "torch")
RUNS_COLUMNS: tuple[str, ...] = (
    *KEY, "run_dir", "status", "selected_epoch", "selection", "epochs", "train_wall_time_s", "eval_time_s",
    "num_queries", "num_valid_queries", "num_gallery", "rerank", "flip", "device", *ENVIRONMENT_COLUMNS,
    "factor",
)
#: file names written by :func:`write_aggregate`
FILES: dict[str, str] = {"results": "results.csv", "cmc": "cmc.csv", "curves": "curves.csv", "runs": "runs.csv"}


@dataclass(frozen=True)
class Aggregate:
    """The tidy tables built from a set of run directories (see the module docstring)."""

    results: pd.DataFrame
    cmc: pd.DataFrame
    curves: pd.DataFrame
    runs: pd.DataFrame


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HCMError(f"{path}: not found; run `hcm evaluate --run {path.parent}` first") from None
    except json.JSONDecodeError as exc:
        raise HCMError(f"{path}: not valid JSON ({exc}); re-run the step that writes it") from None
    if not isinstance(data, dict):
        raise HCMError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_run_config(run_dir: Path, kind: str) -> dict[str, Any]:
    """A run directory's resolved ``config.yaml``; ``kind`` (e.g. "sweep") names the run in the error."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise HCMError(f"{path}: not found; the {kind} run did not finish training")
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def _fraction(metrics: dict[str, Any], key: str, path: Path) -> float:
    if key not in metrics:
        raise HCMError(f"{path}: missing {key!r}; re-run `hcm evaluate` to write a complete metrics file")
    value = float(metrics[key])
    if not (0.0 <= value <= 1.0) or math.isnan(value):
        raise HCMError(
            f"{path}: {key}={metrics[key]!r} is not a fraction in [0, 1] (metrics.json holds fractions; "
            "results.csv holds percent); re-run `hcm evaluate`"
        )
    return value


def result_row(metrics: dict[str, Any], path: Path) -> dict[str, Any]:
    """One row of ``results.csv`` (percent) from a run's ``metrics.json`` content."""
    for key in KEY:
        if key not in metrics:
            raise HCMError(f"{path}: missing {key!r}; re-run `hcm evaluate` to write a complete metrics file")
    row: dict[str, Any] = {"dataset": str(metrics["dataset"]), "variant": str(metrics["variant"]),
                           "seed": int(metrics["seed"])}
    for key in RESULT_METRICS:
        row[key] = 100.0 * _fraction(metrics, key, path)
    return row


def cmc_rows(metrics: dict[str, Any], path: Path) -> list[dict[str, Any]]:
    """The CMC curve as rows ``(dataset, variant, seed, rank, cmc%)``, rank starting at 1."""
    curve = metrics.get("cmc")
    if not isinstance(curve, list) or not curve:
        raise HCMError(f"{path}: 'cmc' must be a non-empty list of fractions; re-run `hcm evaluate`")
    key = {"dataset": str(metrics["dataset"]), "variant": str(metrics["variant"]), "seed": int(metrics["seed"])}
    return [{**key, "rank": k, "cmc": 100.0 * float(v)} for k, v in enumerate(curve, start=1)]


def read_epochs(path: Path) -> pd.DataFrame:
    """A run's ``epochs.csv`` (empty frame when the file is absent or has no rows)."""
    if not path.is_file():
        return pd.DataFrame()
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def identity_options(config: dict[str, Any]) -> dict[str, Any] | None:
    """The identity term's options (``loss.terms.identity``: factor, gamma, weight, ...) of a resolved run
    config; None without the identity term or without adaptation."""
    identity = ((config.get("loss") or {}).get("terms") or {}).get("identity")
    if not config.get("adapt", True) or not isinstance(identity, dict):
        return None
    return identity


def identity_factor(run_dir: Path) -> str | None:
    """The dynamic factor a run trained with (``loss.terms.identity.factor`` of its ``config.yaml``);
    None without the identity term, without adaptation or without a config file."""
    if not (run_dir / "config.yaml").is_file():
        return None
    identity = identity_options(read_run_config(run_dir, "aggregated"))
    return None if identity is None else identity.get("factor")


def run_record(run_dir: Path, metrics: dict[str, Any], summary: dict[str, Any], n_epochs: int) -> dict[str, Any]:
    ckpt = metrics.get("checkpoint") or {}
    return {
        "dataset": str(metrics["dataset"]), "variant": str(metrics["variant"]), "seed": int(metrics["seed"]),
        "run_dir": str(run_dir),
        # train_summary.json's status: ok, or not_trained / diverged (hcm train exited non-zero)
        "status": summary.get("status", metrics.get("train_status")),
        "selected_epoch": ckpt.get("epoch", summary.get("selected_epoch")),
        "selection": ckpt.get("selection", summary.get("selection")),
        "epochs": n_epochs,
        "train_wall_time_s": metrics.get("train_wall_time_s", summary.get("wall_time_s")),
        "eval_time_s": metrics.get("eval_time_s"),
        "num_queries": metrics.get("num_queries"),
        "num_valid_queries": metrics.get("num_valid_queries"),
        "num_gallery": metrics.get("num_gallery"),
        "rerank": metrics.get("rerank"), "flip": metrics.get("flip"),
        "device": metrics.get("device", summary.get("device")),
        **{key: (summary.get("environment") or {}).get(key) for key in ENVIRONMENT_COLUMNS},
        "factor": identity_factor(run_dir),
    }


def sort_tidy(df: pd.DataFrame, extra: Sequence[str] = ()) -> pd.DataFrame:
    """Sort by dataset order, variant order, seed, then ``extra`` columns."""
    if df.empty:
        return df.reset_index(drop=True)
    d_rank = {d: i for i, d in enumerate(order_datasets(df["dataset"].unique()))}
    v_rank = {v: i for i, v in enumerate(order_variants(df["variant"].unique()))}
    out = df.assign(_d=df["dataset"].map(d_rank), _v=df["variant"].map(v_rank))
    out = out.sort_values(["_d", "_v", "seed", *extra], kind="stable").drop(columns=["_d", "_v"])
    return out.reset_index(drop=True)


def aggregate(run_dirs: Iterable[str | Path]) -> Aggregate:
    """Read each run directory and build the tidy tables (percent). Duplicate keys are an error."""
    results, cmc, curves, runs = [], [], [], []
    seen: dict[tuple[str, str, int], Path] = {}
    for run_dir in map(Path, run_dirs):
        mpath = run_dir / "metrics.json"
        metrics = read_json(mpath)
        row = result_row(metrics, mpath)
        key = (row["dataset"], row["variant"], row["seed"])
        if key in seen:
            raise HCMError(
                f"{run_dir}: (dataset, variant, seed) = {key} is also the key of {seen[key]}; "
                "pass each run directory once"
            )
        seen[key] = run_dir
        results.append(row)
        cmc.extend(cmc_rows(metrics, mpath))
        epochs = read_epochs(run_dir / "epochs.csv")
        if not epochs.empty:
            epochs = epochs.drop(columns=[c for c in KEY if c in epochs.columns])
            curves.append(epochs.assign(dataset=key[0], variant=key[1], seed=key[2]))
        spath = run_dir / "train_summary.json"
        summary = read_json(spath) if spath.is_file() else {}
        runs.append(run_record(run_dir, metrics, summary, len(epochs)))
    if not results:
        raise HCMError("no run directories given; pass the run directories to aggregate")
    curves_df = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=[*KEY, "epoch"])
    curves_df = curves_df[[*KEY, *[c for c in curves_df.columns if c not in KEY]]]
    logger.info("aggregated %d runs", len(results))
    return Aggregate(
        results=sort_tidy(pd.DataFrame(results, columns=list(RESULTS_COLUMNS))),
        cmc=sort_tidy(pd.DataFrame(cmc, columns=list(CMC_COLUMNS)), extra=["rank"]),
        curves=sort_tidy(curves_df, extra=["epoch"]),
        runs=sort_tidy(pd.DataFrame(runs, columns=list(RUNS_COLUMNS))),
    )


def write_csv(df: pd.DataFrame, path: str | Path) -> Path:
    """Write ``df`` as CSV atomically (floats with 4 decimals: stable bytes across runs)."""
    return atomic_write_text(path, df.to_csv(index=False, float_format="%.4f", lineterminator="\n"))


def write_aggregate(agg: Aggregate, out_dir: str | Path) -> dict[str, Path]:
    """Write the four tables into ``out_dir`` under :data:`FILES`; returns name -> path."""
    out = Path(out_dir)
    return {name: write_csv(getattr(agg, name), out / fname) for name, fname in FILES.items()}


def read_results(path: str | Path) -> pd.DataFrame:
    """Read ``results.csv`` and check its columns."""
    path = Path(path)
    if not path.is_file():
        raise HCMError(f"{path}: not found; run `hcm report aggregate` (or the workflow's aggregate rule) first")
    df = pd.read_csv(path)
    missing = [c for c in RESULTS_COLUMNS if c not in df.columns]
    if missing:
        raise HCMError(f"{path}: missing columns {missing}; regenerate it with `hcm report aggregate`")
    return df
