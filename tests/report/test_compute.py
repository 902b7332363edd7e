"""Per-job compute records (Snakemake benchmark files) -> jobs.csv, the compute table and the README section."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from hcm.errors import HCMError
from hcm.report.compute import compute_table, job_records, read_benchmark, rule_totals
from tests.report.runfactory import write_benchmark


@pytest.fixture
def bench(tmp_path: Path) -> tuple[Path, list[Path]]:
    root = tmp_path / "benchmarks"
    files = [
        write_benchmark(root / "train" / "synth-market" / "hcm" / "seed1.tsv", 30.0, 400.5, 29.0),
        write_benchmark(root / "prepare" / "synth-market.tsv", 5.0, 120.0, 4.5),
        write_benchmark(root / "train" / "synth-market" / "hcm" / "seed0.tsv", 20.0, 500.25, 38.0),
        write_benchmark(root / "pretrain" / "synth-pretrain.tsv", 60.0, 900.0, 110.0),
        write_benchmark(root / "prepare" / "synth-pretrain.tsv", 0.2, "NA", "NA"),  # too short to sample
    ]
    return root, files


def test_job_records_read_every_file_in_pipeline_order(bench) -> None:
    root, files = bench
    jobs = job_records(files, root)
    assert list(jobs.columns) == ["rule", "job", "wall_s", "cpu_s", "max_rss_mb"]
    assert list(zip(jobs["rule"], jobs["job"], strict=True)) == [
        ("prepare", "synth-market"), ("prepare", "synth-pretrain"), ("pretrain", "synth-pretrain"),
        ("train", "synth-market/hcm/seed0"), ("train", "synth-market/hcm/seed1")]
    seed0 = jobs.set_index("job").loc["synth-market/hcm/seed0"]
    assert (seed0["wall_s"], seed0["cpu_s"], seed0["max_rss_mb"]) == (20.0, 38.0, 500.25)
    short = jobs.set_index("job").loc["synth-pretrain"]
    assert short["rule"].tolist() == ["prepare", "pretrain"]
    assert math.isnan(short.iloc[0]["cpu_s"]) and math.isnan(short.iloc[0]["max_rss_mb"])


def test_rule_totals_sum_wall_and_cpu_and_take_the_peak_memory(bench) -> None:
    root, files = bench
    totals = rule_totals(job_records(files, root)).set_index("rule")
    assert list(totals.index) == ["prepare", "pretrain", "train", "all"]
    train = totals.loc["train"]
    assert (train["jobs"], train["wall_s"], train["wall_s_max"], train["cpu_s"], train["max_rss_mb"]) == \
        (2, 50.0, 30.0, 67.0, 500.25)
    assert train["cpu_per_wall"] == pytest.approx(67.0 / 50.0)
    prepare = totals.loc["prepare"]  # NaN (not measured) does not count as 0 CPU nor turn the sum into NaN
    assert (prepare["jobs"], prepare["wall_s"], prepare["cpu_s"], prepare["max_rss_mb"]) == (2, 5.2, 4.5, 120.0)
    everything = totals.loc["all"]
    assert (everything["jobs"], everything["wall_s"], everything["cpu_s"], everything["max_rss_mb"]) == \
        (5, pytest.approx(115.2), 181.5, 900.0)


def test_compute_table_markdown_and_latex(bench) -> None:
    root, files = bench
    table = compute_table(job_records(files, root), suite="smoke")
    assert table.name == "compute" and "`smoke`" in table.caption
    rows = table.markdown.strip().splitlines()
    assert len(rows) == 2 + 4
    assert rows[4] == "| `train` | 2 | 50.0 | 30.0 | 67.0 | 1.34 | 500 |"
    assert rows[5].startswith("| **all** | 5 | 115.2 |")
    assert "\\begin{tabular}" in table.latex and "pretrain" in table.latex


def test_bad_benchmark_files_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "b" / "train" / "x.tsv"
    bad.parent.mkdir(parents=True)
    bad.write_text("s\th:m:s\n1.0\t0:00:01\n")
    with pytest.raises(HCMError, match=r"x\.tsv: benchmark file without columns \['cpu_time', 'max_rss'\]"):
        read_benchmark(bad)
    with pytest.raises(HCMError, match="not below the benchmark folder"):
        job_records([write_benchmark(tmp_path / "elsewhere" / "train" / "y.tsv", 1.0, 1.0, 1.0)], tmp_path / "b")


def test_aggregate_and_build_write_jobs_csv_and_the_compute_section(bench, tmp_path: Path) -> None:
    """`hcm report aggregate --benchmark ...` -> jobs.csv; `hcm report build` -> compute.md/tex/csv and
    a Compute section after the run counts in the README."""
    from tests.report.runfactory import write_suite

    root, files = bench
    runs = write_suite(tmp_path / "runs", ["synth-market"], ["hcm", "baseline"], [0, 1])
    tables, figures, readme = tmp_path / "tables", tmp_path / "figures", tmp_path / "README.md"
    cli = [sys.executable, "-m", "hcm", "report"]
    args = [a for f in files for a in ("--benchmark", str(f))]
    subprocess.run([*cli, "aggregate", "--out-dir", str(tables), "--benchmark-root", str(root), *args,
                    *map(str, runs)], check=True, capture_output=True)
    jobs = pd.read_csv(tables / "jobs.csv")
    assert len(jobs) == 5 and set(jobs["rule"]) == {"prepare", "pretrain", "train"}
    subprocess.run([*cli, "build", "--tables", str(tables), "--figures", str(figures), "--readme", str(readme),
                    "--suite", "smoke", "--no-progress"], check=True, capture_output=True)
    compute = pd.read_csv(tables / "compute.csv")
    assert list(compute["rule"]) == ["prepare", "pretrain", "train", "all"]
    assert (tables / "compute.md").is_file() and (tables / "compute.tex").is_file()
    text = readme.read_text()
    assert text.index("- Runs: 4 =") < text.index("## Compute") < text.index("## Main table")
    assert "| `pretrain` | 1 | 60.0 | 60.0 | 110.0 | 1.83 | 900 |" in text
    assert "](tables/jobs.csv)" in text and "](tables/compute.md)" in text
    assert "| `train` | synth-market/hcm/seed0 | 20.0 | 38.0 | 500 |" in text
    # the factor each variant trained with, from the runs' config.yaml
    assert "- Dynamic factor (`loss.terms.identity.factor`): `hard_negatives` in `hcm`; `none` in `baseline`" in text
