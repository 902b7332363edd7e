"""MLflow logging of run directories: params, per-epoch metrics, artifacts, idempotence, concurrent writers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest
import torch

from hcm.tracking import content_hash, flatten, log_runs, sqlite_path, store_lock
from tests.report.runfactory import write_run

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_telemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")


def test_flatten_and_sqlite_path() -> None:
    assert flatten({"loss": {"gamma": 2.0, "image": True}, "seed": 0, "input": {"mean": [0.5, 0.4]},
                    "model": {"weights": None}}) == {
        "loss.gamma": "2.0", "loss.image": "True", "seed": "0", "input.mean": "[0.5, 0.4]", "model.weights": "null"}
    assert sqlite_path("sqlite:///results/mlflow.db") == Path("results/mlflow.db")
    assert sqlite_path("sqlite:////abs/dir/mlflow.db") == Path("/abs/dir/mlflow.db")
    assert sqlite_path("http://server:5000") is None


def test_content_hash_follows_file_content(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_run(run, "synth-market", "hcm", 0)
    h = content_hash(run)
    (run / "cmc.png").write_bytes(b"other plot")  # not part of the hashed content
    assert content_hash(run) == h
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["mAP"] = 0.1
    (run / "metrics.json").write_text(json.dumps(metrics))
    assert content_hash(run) != h


def test_the_run_s_own_curves_plot_is_logged(tmp_path: Path) -> None:
    """A run directory with curves.png (written by `hcm train`) has that file logged as is;
    one without it gets a plot drawn from its epochs.csv (the other test)."""
    from mlflow import MlflowClient

    from hcm.report.figures import plot_run_curves

    base = tmp_path / "results" / "smoke"
    run = base / "runs" / "synth-market" / "hcm" / "seed0"
    write_run(run, "synth-market", "hcm", 0, n_epochs=2)
    assert plot_run_curves(run, run / "curves.png", variant="hcm", seed=0, title="t") == run / "curves.png"
    written = (run / "curves.png").read_bytes()
    assert written.startswith(b"\x89PNG")
    uri = f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}"
    (logged,) = log_runs(uri, "smoke", [run], base=base, artifact_root=tmp_path / "art")
    local = MlflowClient(uri).download_artifacts(logged.run_id, "curves.png", str(tmp_path))
    assert Path(local).read_bytes() == written


def test_log_runs_params_metrics_artifacts_and_idempotence(tmp_path: Path) -> None:
    import mlflow
    from mlflow import MlflowClient

    base = tmp_path / "results" / "smoke"
    hcm_run = base / "runs" / "synth-market" / "hcm" / "seed0"
    untrained = base / "runs" / "synth-market" / "untrained" / "seed0"
    write_run(hcm_run, "synth-market", "hcm", 0, n_epochs=3)
    write_run(untrained, "synth-market", "untrained", 0)
    uri = f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}"
    artifacts = tmp_path / "results" / "mlartifacts" / "smoke"

    first = log_runs(uri, "smoke", [hcm_run, untrained], base=base, artifact_root=artifacts)
    assert [r.action for r in first] == ["created", "created"]
    assert [r.run_key for r in first] == ["runs/synth-market/hcm/seed0", "runs/synth-market/untrained/seed0"]

    mlflow.set_tracking_uri(uri)
    df = mlflow.search_runs(experiment_names=["hcm-smoke"])
    assert len(df) == 2
    row = df[df["tags.variant"] == "hcm"].iloc[0]
    assert row["tags.dataset"] == "synth-market" and row["tags.seed"] == "0" and row["tags.suite"] == "smoke"
    assert row["tags.mlflow.runName"] == "synth-market/hcm/seed0"
    # what the run was trained and evaluated on
    assert row["tags.env.cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert row["tags.env.torch"] == row["tags.eval_env.torch"] == metadata.version("torch")
    assert row["tags.env.threads"] == str(json.loads((hcm_run / "train_summary.json").read_text())
                                          ["environment"]["threads"])
    assert row["params.loss.terms.identity.gamma"] == "2.0" and row["params.variant"] == "hcm"
    metrics = json.loads((hcm_run / "metrics.json").read_text())
    assert row["metrics.mAP"] == pytest.approx(metrics["mAP"])
    assert row["metrics.rank10"] == pytest.approx(metrics["rank10"])

    client = MlflowClient(uri)
    run_id = row["run_id"]
    history = client.get_metric_history(run_id, "loss")
    assert [m.step for m in history] == [1, 2, 3]
    assert [m.step for m in client.get_metric_history(run_id, "cmc")] == list(range(1, 51))
    names = {a.path for a in client.list_artifacts(run_id)}
    assert {"config.yaml", "metrics.json", "epochs.csv", "train_summary.json", "cmc.png", "curves.png"} <= names
    unt_id = df[df["tags.variant"] == "untrained"].iloc[0]["run_id"]
    assert "curves.png" not in {a.path for a in client.list_artifacts(unt_id)}  # no epochs, no curves
    assert Path(client.get_experiment_by_name("hcm-smoke").artifact_location.removeprefix("file://")) == artifacts

    # the same content again: nothing new
    again = log_runs(uri, "smoke", [hcm_run, untrained], base=base)
    assert [r.action for r in again] == ["unchanged", "unchanged"]
    assert [r.run_id for r in again] == [r.run_id for r in first]
    # a changed run replaces its old MLflow run (still one active run per key)
    m = json.loads((hcm_run / "metrics.json").read_text())
    m["mAP"] = 0.42
    (hcm_run / "metrics.json").write_text(json.dumps(m))
    third = log_runs(uri, "smoke", [hcm_run, untrained], base=base)
    assert [r.action for r in third] == ["replaced", "unchanged"]
    df = mlflow.search_runs(experiment_names=["hcm-smoke"])
    assert len(df) == 2
    assert df[df["tags.variant"] == "hcm"].iloc[0]["metrics.mAP"] == pytest.approx(0.42)


def test_sqlite_store_lock_serialises_processes(tmp_path: Path) -> None:
    """While another process holds the store's lock, a second writer waits for it.

    (Without the lock, two `hcm track log` processes starting on a new SQLite store fail:
    both run MLflow's schema creation at once.)
    """
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    holder = (
        "import sys, time\n"
        "from hcm.tracking import store_lock\n"
        f"with store_lock({uri!r}):\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(1.5)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", holder], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        t0 = time.monotonic()
        with store_lock(uri):
            waited = time.monotonic() - t0
        assert waited > 0.5, waited
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == 0
    assert (tmp_path / "mlflow.db.lock").is_file()
    with store_lock("http://server:5000"):  # other stores: no lock file, no waiting
        pass


def test_runs_carry_their_training_times_dataset_and_the_experiment_kind(tmp_path: Path) -> None:
    """Created/Duration in the UI are the training's (not the logging's); the dataset is an MLflow
    dataset input; the experiment opens on its runs; the runs sort by mAP."""
    import hashlib
    from datetime import datetime

    import mlflow
    import pandas as pd
    from mlflow import MlflowClient

    from hcm.tracking import init_store

    base = tmp_path / "results" / "smoke"
    index = base / "data" / "synth-market" / "index.csv"
    index.parent.mkdir(parents=True)
    index.write_text("split,path,pid,camid\ntrain,a.png,1,0\ntrain,b.png,2,1\nquery,c.png,3,0\n", encoding="utf-8")
    runs = {}
    for variant, seed, finished in [("hcm", 0, "2026-11-27T10:00:00.000+00:00"),
                                    ("baseline", 1, "2026-11-27T11:30:00.250+00:00"),
                                    ("untrained", 0, None)]:
        run = base / "runs" / "synth-market" / variant / f"seed{seed}"
        write_run(run, "synth-market", variant, seed, index=str(index), finished_at=finished)
        runs[variant] = (run, seed, finished)
    # a summary written before finished_at existed: the file's modification time is the end
    old_end = datetime.fromisoformat("2026-11-20T08:00:00+00:00").timestamp()
    os.utime(runs["untrained"][0] / "train_summary.json", (old_end, old_end))
    uri = f"sqlite:///{tmp_path / 'results' / 'mlflow.db'}"
    # an experiment created before the kind tag existed gets it too
    MlflowClient(uri).create_experiment("hcm-smoke")
    log_runs(uri, "smoke", [r for r, _, _ in runs.values()], base=base)

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("hcm-smoke")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    assert init_store(uri, "hcm-other", tmp_path / "art")["experiment"] == "hcm-other"
    assert client.get_experiment_by_name("hcm-other").tags["mlflow.experimentKind"] == "custom_model_development"

    mlflow.set_tracking_uri(uri)
    df = mlflow.search_runs(experiment_names=["hcm-smoke"], order_by=["metrics.mAP DESC"])
    # sorted by mAP: hcm (0.60) > baseline (0.56) > untrained (0.30)
    assert list(df["tags.variant"]) == ["hcm", "baseline", "untrained"]
    for _, row in df.iterrows():
        run_dir, seed, finished = runs[row["tags.variant"]]
        end = datetime.fromisoformat(finished).timestamp() if finished else old_end
        assert row["end_time"] == pd.Timestamp(end, unit="s", tz="UTC")
        assert (row["end_time"] - row["start_time"]).total_seconds() == pytest.approx(60.0 + seed)
        run = client.get_run(row["run_id"])
        assert run.info.start_time == round((end - 60.0 - seed) * 1000) and run.info.end_time == round(end * 1000)
        assert client.get_metric_history(row["run_id"], "mAP")[0].timestamp == run.info.end_time
        (inp,) = run.inputs.dataset_inputs
        assert inp.dataset.name == "synth-market"
        assert inp.dataset.digest == hashlib.sha256(index.read_bytes()).hexdigest()[:16]
        assert json.loads(inp.dataset.source) == {"uri": str(index.resolve())}
        assert json.loads(inp.dataset.profile) == {"num_rows": 3, "train_rows": 2, "query_rows": 1}
        assert [c["name"] for c in json.loads(inp.dataset.schema)["mlflow_colspec"]] == ["split", "path", "pid", "camid"]
        assert {t.key: t.value for t in inp.tags} == {"mlflow.data.context": "train"}


def test_a_run_without_its_dataset_index_is_logged_without_dataset_input(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    run = tmp_path / "runs" / "synth-market" / "hcm" / "seed0"
    write_run(run, "synth-market", "hcm", 0, index=str(tmp_path / "moved" / "index.csv"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (logged,) = log_runs(uri, "smoke", [run], base=tmp_path)
    assert MlflowClient(uri).get_run(logged.run_id).inputs.dataset_inputs == []
