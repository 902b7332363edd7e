"""``hcm track``: MLflow tracking of finished run directories.

- ``hcm track init --experiment NAME --out INFO.json`` creates the store (and its tables)
  and the experiment, before any logging job runs;
- ``hcm track log --suite NAME --base DIR --out RUNS.csv RUN_DIR ...`` logs run
  directories, one MLflow run each (idempotent: unchanged runs are not logged twice).

The tracking URI defaults to ``sqlite:///results/mlflow.db``; browse it with
``mlflow ui --backend-store-uri sqlite:///results/mlflow.db``. MLflow's anonymous usage
telemetry is switched off for these commands unless MLFLOW_DISABLE_TELEMETRY is set.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from hcm.tracking import DEFAULT_TRACKING_URI

    p = sub.add_parser("track", help="log finished runs to MLflow (one experiment per suite)",
                       description=__doc__.split("\n\n")[0])
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--tracking-uri", default=DEFAULT_TRACKING_URI,
                        help=f"MLflow tracking URI (default {DEFAULT_TRACKING_URI}; e.g. http://server:5000)")
    common.add_argument("--artifact-root", type=Path, default=None,
                        help="artifact folder of a new experiment (default for a SQLite store: <its folder>/mlartifacts/<suite>; "
                             "otherwise the server's default)")

    i = actions.add_parser("init", parents=[common], help="create the store and the experiment")
    i.add_argument("--suite", required=True, help="suite name; the experiment is hcm-<suite>")
    i.add_argument("--out", required=True, type=Path, help="JSON file describing the experiment")
    i.set_defaults(func=run_init)

    g = actions.add_parser("log", parents=[common], help="log run directories (idempotent)")
    g.add_argument("--suite", required=True, help="suite name; the experiment is hcm-<suite>")
    g.add_argument("--base", required=True, type=Path,
                   help="the suite's results folder; run keys are run directories relative to it")
    g.add_argument("--group", default="runs", help="tag separating e.g. the main runs from a sweep")
    g.add_argument("--out", required=True, type=Path, help="CSV listing run key, MLflow run id and action")
    g.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    g.set_defaults(func=run_log)


def _artifact_root(args: argparse.Namespace) -> Path | None:
    if args.artifact_root is not None:
        return args.artifact_root
    from hcm.tracking import sqlite_path

    db = sqlite_path(args.tracking_uri)
    return db.parent / "mlartifacts" / args.suite if db is not None else None


def run_init(args: argparse.Namespace) -> int:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from hcm.tracking import experiment_name, init_store
    from hcm.utils.io import atomic_write_json

    info = init_store(args.tracking_uri, experiment_name(args.suite), _artifact_root(args),
                      tags={"suite": args.suite})
    atomic_write_json(args.out, info)
    print(f"MLflow experiment {info['experiment']} (id {info['experiment_id']}) in {args.tracking_uri}")
    return 0


def run_log(args: argparse.Namespace) -> int:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from hcm.report.aggregate import write_csv
    from hcm.tracking import log_runs, logged_frame

    logged = log_runs(args.tracking_uri, args.suite, args.runs, base=args.base, group=args.group,
                      artifact_root=_artifact_root(args))
    frame = logged_frame(logged)
    write_csv(frame, args.out)
    counts = frame["action"].value_counts().to_dict()
    print(f"{len(frame)} runs logged to {args.tracking_uri} ({counts}) -> {args.out}")
    return 0
