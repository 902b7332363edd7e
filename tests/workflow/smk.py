"""Helpers for running the workflow's Snakefile in a scratch working directory (tests only)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "Snakefile"
CONFIG = REPO / "workflow" / "config" / "config.yaml"
PROFILES = REPO / "workflow" / "profiles"


def workflow_config() -> dict:
    return yaml.safe_load(CONFIG.read_text(encoding="utf-8"))


def suite_runs(suite: str) -> list[tuple[str, str, int]]:
    """(dataset, variant, seed) of every main run a suite trains (its variants and reference rows)."""
    cfg = workflow_config()["suites"][suite]
    return [(d, v, s) for d in cfg["datasets"] for v in [*cfg["variants"], *cfg["reference"]] for s in cfg["seeds"]]


def stub_recipes(folder: Path) -> Path:
    """One small YAML per recipe the config names (test data standing in for workflow/recipes/)."""
    folder.mkdir(parents=True, exist_ok=True)
    names = set()
    for suite in workflow_config()["suites"].values():
        names |= {d["recipe"] for d in suite["datasets"].values()}
        if suite.get("pretrain"):
            names.add(suite["pretrain"]["recipe"])
    for name in names:
        (folder / name).write_text("optim: {epochs: 1, iters: 1}\n", encoding="utf-8")
    return folder


def snakemake(workdir: Path, *args: str, config: dict[str, str] | None = None,
              timeout: float = 300, workflow_profile: str | Path = "none",
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`snakemake --snakefile REPO/Snakefile --directory WORKDIR ARGS --config K=V ...`.

    ``workflow_profile``: a profile folder (e.g. :data:`PROFILES` / "default"), or "none" (the default);
    ``env``: variables added to this process's environment.
    """
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory", str(workdir),
           "--workflow-profile", str(workflow_profile), *args]
    if config:
        cmd += ["--config", *[f"{k}={v}" for k, v in config.items()]]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", **(env or {})}
    return subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a snakemake run or dry run: rule -> number of jobs (without 'total')."""
    if "Nothing to be done" in output:
        return {}
    block = output.split("Job stats:", 1)[1]
    counts: dict[str, int] = {}
    for line in block.splitlines()[3:]:
        m = re.match(r"^(\S+)\s+(\d+)$", line.strip())
        if not m:
            break
        if m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts


def shell_commands(output: str) -> list[str]:
    """The shell commands printed by `--printshellcmds`."""
    return [ln.split("Shell command: ", 1)[1] for ln in output.splitlines() if "Shell command: " in ln]


def check_suite_outputs(workdir: Path, suite: str, runs: list[tuple[str, str, int]]) -> None:
    """Assert what one finished suite must leave behind: tables, figures, README index, MLflow runs."""
    from importlib import metadata

    import mlflow
    import pandas as pd
    import torch
    from PIL import Image

    cfg = workflow_config()["suites"][suite]
    reports = workdir / cfg["reports_dir"]
    results = pd.read_csv(reports / "tables" / "results.csv")
    assert list(results.columns) == ["dataset", "variant", "seed", "mAP", "mINP", "rank1", "rank5", "rank10"]
    assert sorted(map(tuple, results[["dataset", "variant", "seed"]].values.tolist())) == sorted(runs)
    metrics = results[["mAP", "mINP", "rank1", "rank5", "rank10"]]
    assert ((metrics >= 0) & (metrics <= 100)).all().all()
    assert (results["rank1"] <= results["rank5"]).all() and (results["rank5"] <= results["rank10"]).all()

    readme = (reports / "README.md").read_text(encoding="utf-8")
    assert "this project's reading of the paper's abstract" in readme
    # every run was trained here: one machine, named with torch's CPU instruction set
    n_runs = len(results)
    assert f"({torch.backends.cpu.get_cpu_capability()}), torch {metadata.version('torch')}: {n_runs} runs" in readme
    files = [f"tables/{t}.{ext}" for t in ("main", "ablation", "published", "compute") for ext in ("md", "tex", "csv")]
    files += [f"figures/cmc_{d}.png" for d in cfg["datasets"]] + ["figures/ablation.png"]
    files += [f"figures/training_{d}.png" for d in cfg["datasets"]]
    files += [f"tables/{name}.csv" for name in ("results", "cmc", "curves", "runs", "jobs")]
    for rel in files:
        assert (reports / rel).is_file(), rel
        assert f"]({rel})" in readme, f"README.md does not link {rel}"
        if rel.endswith(".png"):
            with Image.open(reports / rel) as im:
                assert im.format == "PNG" and min(im.size) > 300

    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'results' / 'mlflow.db'}")
    logged = mlflow.search_runs(experiment_names=[f"hcm-{suite}"])
    assert sorted(zip(logged["tags.dataset"], logged["tags.variant"], logged["tags.seed"].astype(int),
                      strict=True)) == sorted(runs)
    by_key = results.set_index(["dataset", "variant", "seed"])
    for _, row in logged.iterrows():
        mAP = by_key.loc[(row["tags.dataset"], row["tags.variant"], int(row["tags.seed"])), "mAP"]
        assert abs(100 * row["metrics.mAP"] - mAP) < 1e-3  # MLflow holds fractions, results.csv percent
        assert row["params.variant"] == row["tags.variant"]
        assert row["status"] == "FINISHED"
    check_mlflow_runs_tell_the_truth(workdir, suite)


def check_mlflow_runs_tell_the_truth(workdir: Path, suite: str) -> None:
    """The suite's experiment opens on its runs; each run's start and end are its training's, its
    dataset is logged as an MLflow dataset input."""
    import json
    from datetime import datetime

    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{workdir / 'results' / 'mlflow.db'}")
    exp = client.get_experiment_by_name(f"hcm-{suite}")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = client.search_runs([exp.experiment_id])
    assert runs
    for run in runs:
        summary = json.loads((workdir / run.data.tags["run_dir"] / "train_summary.json").read_text())
        end = datetime.fromisoformat(summary["finished_at"]).timestamp()
        assert run.info.end_time == round(end * 1000)
        assert run.info.start_time == round((end - summary["wall_time_s"]) * 1000)
        (inp,) = run.inputs.dataset_inputs
        assert inp.dataset.name == run.data.tags["dataset"] and len(inp.dataset.digest) == 16
