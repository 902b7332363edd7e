"""The whole `smoke` DAG end to end: prepare -> pretrain -> train (+ evaluate) -> aggregate -> report + MLflow.

Runs the real commands on the smoke suite's tiny synthetic data and recipes, then checks
the tables, figures and README, the MLflow runs (through mlflow.search_runs), that a second
invocation does nothing, and that deleting one run re-runs only that run and what depends on it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.workflow.smk import check_suite_outputs, job_counts, snakemake, workflow_config

SUITE = "smoke"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("smoke")
    res = snakemake(work, "--cores", "2", config={"suite": SUITE}, timeout=900)
    return work, res


def expected_runs() -> list[tuple[str, str, int]]:
    cfg = workflow_config()["suites"][SUITE]
    return [(d, v, s) for d in cfg["datasets"] for v in [*cfg["variants"], *cfg["reference"]] for s in cfg["seeds"]]


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
