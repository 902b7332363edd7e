"""The workflow's collecting end, executed for real: aggregate -> report, MLflow init -> track.

The run directories are test data written the way `hcm train --evaluate` writes them
(tests/report/runfactory.py), with file times in pipeline order, so Snakemake runs only the
rules after evaluation. Checks the reports, the MLflow runs (through mlflow.search_runs),
that a second invocation does nothing, that deleting one run re-runs only what depends on
it, and that `snakemake --report` writes the HTML report.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.report.runfactory import write_benchmark, write_run
from tests.workflow.smk import (
    check_suite_outputs,
    job_counts,
    snakemake,
    stub_recipes,
    workflow_config,
)

SUITE = "smoke"


def set_mtime(paths: list[Path], t: float) -> None:
    for p in paths:
        os.utime(p, (t, t))


def fake_finished_runs(work: Path, recipes: Path) -> list[tuple[str, str, int]]:
    cfg = workflow_config()["suites"][SUITE]
    res = work / "results" / SUITE
    t0 = time.time() - 3600
    set_mtime(list(recipes.iterdir()), t0)
    sources = [*cfg["datasets"], cfg["pretrain"]["source"]]
    for d in sources:
        folder = res / "data" / d
        folder.mkdir(parents=True)
        (folder / "index.csv").write_text("path,pid,camid,orig_pid,split\n")
        (folder / "index.csv.json").write_text("{}\n")
        bench = write_benchmark(res / "benchmarks" / "prepare" / f"{d}.tsv", 5.0, 150.0, 4.0)
        set_mtime([folder / "index.csv", folder / "index.csv.json", bench], t0 + 10)
    pre = res / "pretrain" / cfg["pretrain"]["source"]
    pre.mkdir(parents=True)
    (pre / "checkpoint.pt").write_bytes(b"checkpoint")
    (pre / "summary.json").write_text("{}\n")
    bench = write_benchmark(res / "benchmarks" / "pretrain" / f"{cfg['pretrain']['source']}.tsv", 60.0, 900.0, 100.0)
    set_mtime([pre / "checkpoint.pt", pre / "summary.json", bench], t0 + 20)
    runs = []
    for d in cfg["datasets"]:
        for v in [*cfg["variants"], *cfg["reference"]]:
            for s in cfg["seeds"]:
                run = res / "runs" / d / v / f"seed{s}"
                write_run(run, d, v, s, dataset_root=str(res / "data" / d),
                          index=f"results/{SUITE}/data/{d}/index.csv")
                bench = write_benchmark(res / "benchmarks" / "train" / d / v / f"seed{s}.tsv", 20.0 + s, 500.0, 18.0)
                set_mtime([run / f for f in ("config.yaml", "train_summary.json", "model.pt", "epochs.csv")], t0 + 30)
                set_mtime([run / "metrics.json", run / "cmc.png", bench], t0 + 40)
                runs.append((d, v, s))
    return runs


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("work")
    recipes = stub_recipes(tmp_path_factory.mktemp("recipes"))
    runs = fake_finished_runs(work, recipes)
    config = {"suite": SUITE, "recipes_dir": recipes}
    res = snakemake(work, "--cores", "2", config=config)
    return work, config, runs, res


def test_collecting_rules_run_and_write_everything(finished) -> None:
    work, _, runs, res = finished
    assert res.returncode == 0, res.stdout + res.stderr
    assert job_counts(res.stdout + res.stderr) == {"aggregate": 1, "report": 1, "mlflow_init": 1, "track": 1,
                                                   "all": 1}
    check_suite_outputs(work, SUITE, runs)


def test_second_invocation_does_nothing(finished) -> None:
    work, config, _, _ = finished
    res = snakemake(work, "-n", config=config)
    assert res.returncode == 0
    assert "Nothing to be done" in res.stdout + res.stderr


def test_deleting_one_run_reruns_only_what_depends_on_it(finished, tmp_path: Path) -> None:
    work, config, _, _ = finished
    copy = tmp_path / "work"
    shutil.copytree(work, copy, symlinks=True)
    shutil.rmtree(copy / "results" / SUITE / "runs" / "synth-market" / "baseline" / "seed1")
    res = snakemake(copy, "-n", "--printshellcmds", config=config)
    assert res.returncode == 0, res.stderr
    out = res.stdout + res.stderr
    assert job_counts(out) == {"train": 1, "aggregate": 1, "report": 1, "track": 1, "all": 1}
    assert "--out-dir results/smoke/runs/synth-market/baseline/seed1 " in out


def test_snakemake_html_report(finished, tmp_path: Path) -> None:
    work, config, _, _ = finished
    html = tmp_path / "report.html"
    res = snakemake(work, "--report", str(html), config=config)
    assert res.returncode == 0, res.stdout + res.stderr
    text = html.read_text(encoding="utf-8", errors="replace")
    assert html.stat().st_size > 100_000 and "cmc_synth-market.png" in text
