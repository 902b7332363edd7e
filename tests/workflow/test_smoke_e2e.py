"""The whole `smoke` DAG end to end: prepare -> pretrain -> train (+ evaluate) -> aggregate -> report + MLflow.

Runs the real commands on the smoke suite's tiny synthetic data and recipes (once per test
session, through workflow/profiles/default: fixture ``smoke_run`` in conftest.py), then checks
the tables, figures and README, the MLflow runs (through mlflow.search_runs), that a second
invocation does nothing, and that deleting one run re-runs only that run and what depends on it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.workflow.smk import (
    check_suite_outputs,
    job_counts,
    snakemake,
    suite_runs,
    workflow_config,
)

SUITE = "smoke"
pytestmark = pytest.mark.slow


def expected_runs() -> list[tuple[str, str, int]]:
    return suite_runs(SUITE)


def test_smoke_dag_end_to_end(smoke_run) -> None:
    work, res = smoke_run
    assert res.returncode == 0, (res.stdout + res.stderr)[-5000:]
    counts = job_counts(res.stdout + res.stderr)
    n = len(expected_runs())
    assert counts["train"] == n and "evaluate" not in counts and counts["report"] == 1 and counts["track"] == 1
    check_suite_outputs(work, SUITE, expected_runs())


def test_smoke_second_invocation_and_deleted_run(smoke_run, tmp_path: Path) -> None:
    work, res = smoke_run
    assert res.returncode == 0
    again = snakemake(work, "-n", config={"suite": SUITE})
    assert "Nothing to be done" in again.stdout + again.stderr
    copy = tmp_path / "work"
    shutil.copytree(work, copy, symlinks=True)
    d, v, s = expected_runs()[0]
    shutil.rmtree(copy / "results" / SUITE / "runs" / d / v / f"seed{s}")
    dry = snakemake(copy, "-n", config={"suite": SUITE})
    assert job_counts(dry.stdout + dry.stderr) == {"train": 1, "aggregate": 1, "report": 1,
                                                   "track": 1, "all": 1}


def test_smoke_sweep_reuses_the_suite_and_trains_like_a_main_run(smoke_run, tmp_path: Path) -> None:
    """`snakemake sweep` on a finished suite: only the sweep's own jobs run (data and pretraining
    are reused), each sweep job trains and evaluates, and the sweep point at the recipe's own
    value (gamma 2 = the default) reproduces the main `hcm` run of the same seed exactly."""
    import json

    import pandas as pd

    work, res = smoke_run
    assert res.returncode == 0
    copy = tmp_path / "work"
    shutil.copytree(work, copy, symlinks=True)
    sweep = snakemake(copy, "sweep", "--cores", "2", config={"suite": SUITE}, timeout=600)
    assert sweep.returncode == 0, (sweep.stdout + sweep.stderr)[-5000:]
    knobs = workflow_config()["suites"][SUITE]["sweep"]["knobs"]
    n = sum(len(v) for v in knobs.values())
    assert job_counts(sweep.stdout + sweep.stderr) == {"train_sweep": n, "sweep_report": 1, "track_sweep": 1,
                                                       "sweep": 1}
    table = pd.read_csv(copy / "reports" / SUITE / "sweep" / "sensitivity.csv")
    assert len(table) == n and table["mAP"].between(0, 100).all()
    for knob in knobs:
        assert (copy / "reports" / SUITE / "sweep" / f"sensitivity_{knob}.png").stat().st_size > 0
    at_default = json.loads((copy / "results" / SUITE / "sweep" / "synth-market" / "loss.gamma=2" / "seed0"
                             / "metrics.json").read_text())
    main_run = json.loads((copy / "results" / SUITE / "runs" / "synth-market" / "hcm" / "seed0"
                           / "metrics.json").read_text())
    assert at_default["mAP"] == main_run["mAP"] and at_default["cmc"] == main_run["cmc"]
    assert len(pd.read_csv(copy / "results" / SUITE / "mlflow" / "sweep_runs.csv")) == n
    again = snakemake(copy, "sweep", "-n", config={"suite": SUITE})
    assert "Nothing to be done" in again.stdout + again.stderr
