"""The whole `smoke` DAG end to end: prepare -> pretrain -> train (+ evaluate) -> aggregate -> report + MLflow.

Runs the real commands on the smoke suite's tiny synthetic data and recipes (once per test
session, through workflow/profiles/default: fixture ``smoke_run`` in conftest.py), then checks
the tables, figures and README, the MLflow runs (through mlflow.search_runs), that a second
invocation does nothing, and that deleting one run re-runs only that run and what depends on it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.workflow.smk import (
    REPO,
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


def run_target_on_a_copy(smoke_run, tmp_path: Path, target: str):
    """Run ``target`` in a copy of the finished smoke suite (the module's run stays as it is)."""
    work, res = smoke_run
    assert res.returncode == 0
    copy = tmp_path / "work"
    shutil.copytree(work, copy, symlinks=True)
    return copy, snakemake(copy, target, "--cores", "2", config={"suite": SUITE}, timeout=600)


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

    copy, sweep = run_target_on_a_copy(smoke_run, tmp_path, "sweep")
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


def _chromium_or_skip() -> None:
    """Chromium for the UI check: Debian's package, installed when missing (root, apt-get)."""
    if any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("no chromium, and not root with apt-get to install it (apt-get install chromium)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    ok = subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], env=env, capture_output=True).returncode == 0
    if not ok:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
        ok = subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], env=env,
                            capture_output=True).returncode == 0
    if not ok:
        pytest.skip("apt-get install chromium failed")


def _seconds(text: str) -> float:
    """MLflow UI durations ('14ms', '6.6s', '2.1min', '1.5h') in seconds."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|min|h)", text)
    assert m, text
    return float(m.group(1)) * {"ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0}[m.group(2)]


def test_mlflow_ui_shows_the_runs_with_their_training_times(smoke_run) -> None:
    """The real `mlflow ui` on the smoke store, read by headless Chromium (benchmarks/mlflow_screenshot.py):
    the experiment's runs table lists every run with its training time as Duration and its dataset."""
    work, res = smoke_run
    assert res.returncode == 0
    _chromium_or_skip()
    spec = importlib.util.spec_from_file_location("mlflow_screenshot", REPO / "benchmarks" / "mlflow_screenshot.py")
    ui = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ui)
    db = work / "results" / "mlflow.db"
    route = ui.experiment_route(ui.experiment_id(db, f"hcm-{SUITE}"))
    with ui.mlflow_ui(db) as base:
        dom = ui.browse(f"{base}/{route}", "--dump-dom")
    cells = [t.strip() for t in re.sub(r"<[^>]+>", "\n", dom).splitlines() if t.strip()]
    names = [c for c in cells if re.fullmatch(r"[\w-]+/[\w-]+/seed\d+", c)]  # the rows, in table order
    assert sorted(names) == sorted(f"{d}/{v}/seed{s}" for d, v, s in expected_runs())
    durations = [c for c in cells if re.fullmatch(r"\d+(\.\d+)?(ms|s|min|h)", c)]
    assert len(durations) == len(names)
    for name, shown in zip(names, durations, strict=True):
        summary = json.loads((work / "results" / SUITE / "runs" / name / "train_summary.json").read_text())
        # the UI rounds to 2 significant digits
        assert _seconds(shown) == pytest.approx(summary["wall_time_s"], rel=0.06, abs=0.002), (name, shown)
    assert cells.count(f"{expected_runs()[0][0]} ({_index_digest(work)})") == len(names)


def _index_digest(work: Path) -> str:
    import hashlib

    index = work / "results" / SUITE / "data" / expected_runs()[0][0] / "index.csv"
    return hashlib.sha256(index.read_bytes()).hexdigest()[:16]


def test_smoke_study_end_to_end(smoke_run, tmp_path: Path) -> None:
    """`snakemake study` on a finished suite: each row x seed trains with the study's overrides (a
    validation split), the scale control trains after `hcm` with L_id weighted by the mean effective
    gradient scale that hcm's run of the same seed logged, and the study's reports are written."""
    import pandas as pd
    import yaml

    from hcm.report.study import measured_scale

    copy, out = run_target_on_a_copy(smoke_run, tmp_path, "study")
    assert out.returncode == 0, (out.stdout + out.stderr)[-5000:]
    study = workflow_config()["suites"][SUITE]["study"]
    n_rows, n_seeds = len(study["rows"]), len(study["seeds"])
    assert job_counts(out.stdout + out.stderr) == {"train_study": n_rows * n_seeds, "study_scale": n_seeds,
                                                   "study_report": 1, "track_study": 1, "study": 1}
    reports = copy / "reports" / SUITE / "study"
    table = pd.read_csv(reports / "study.csv")
    assert len(table) == n_rows * n_seeds and table["val_mAP"].between(0, 100).all()
    assert table["mAP"].between(0, 100).all()
    runs = copy / "results" / SUITE / "study" / "synth-market"
    for seed in study["seeds"]:
        cfg = yaml.safe_load((runs / "scale_control" / f"seed{seed}" / "config.yaml").read_text())
        weight = cfg["loss"]["terms"]["identity"]["weight"]
        assert weight == measured_scale(runs / "hcm" / f"seed{seed}" / "epochs.csv") and weight > 1.0
        assert cfg["loss"]["terms"]["identity"]["factor"] == "none" and cfg["dataset"]["val_fraction"] > 0
    epochs = pd.read_csv(runs / "hcm" / "seed0" / "epochs.csv")
    assert epochs[["id_grad_scale", "gshare_identity", "gnorm_identity", "gnorm_image"]].notna().all().all()
    md = (reports / "study.md").read_text()
    assert "Validation-best row:" in md and "Δ test mAP vs no_dynamic" in md and "Δ val mAP vs control" in md
    headline = md.split("## The readings against their controls")[1].split("## Every row")[0]
    assert "| hcm " in headline and "`scale_control`" in headline  # hcm paired with its scale control
    assert len(pd.read_csv(copy / "results" / SUITE / "mlflow" / "study_runs.csv")) == n_rows * n_seeds
    for name in ("study.png", "diagnostics.png", "readings.png", "diagnostics.md", "diagnostics.csv", "README.md"):
        assert (reports / name).stat().st_size > 0
    again = snakemake(copy, "study", "-n", config={"suite": SUITE})
    assert "Nothing to be done" in again.stdout + again.stderr
