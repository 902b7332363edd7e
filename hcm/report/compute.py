"""What each job of a suite cost: Snakemake's ``benchmark:`` records -> ``jobs.csv`` and the compute table.

The workflow's prepare, pretrain and train rules write one benchmark file per job under
``<results>/<suite>/benchmarks/<rule>/<job>.tsv`` (Snakemake measures the job's process tree:
wall time ``s``, CPU time ``cpu_time`` (user + system, all processes), peak resident memory
``max_rss`` in MB, ...). :func:`job_records` reads them into one row per job (``jobs.csv``,
written by ``hcm report aggregate``); :func:`compute_table` sums them per rule for the reports.
Snakemake samples CPU time and memory (each second for the first 30 s of a job, then every 30 s),
so a process's last moments are not counted: short jobs read low. A value Snakemake could not
measure (a job too short to be sampled: ``NA`` in the file) is NaN.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from hcm.errors import HCMError
from hcm.report.tables import Table

#: the per-job records beside results.csv (written by `hcm report aggregate --benchmark ...`)
JOBS_FILE = "jobs.csv"
#: benchmark column -> jobs.csv column
BENCHMARK_COLUMNS: dict[str, str] = {"s": "wall_s", "cpu_time": "cpu_s", "max_rss": "max_rss_mb"}
JOB_COLUMNS: list[str] = ["rule", "job", *BENCHMARK_COLUMNS.values()]
#: rules in pipeline order (others follow alphabetically)
RULE_ORDER: tuple[str, ...] = ("prepare", "pretrain", "train")
TOTAL_COLUMNS: list[str] = ["rule", "jobs", "wall_s", "wall_s_max", "cpu_s", "cpu_per_wall", "max_rss_mb"]


def read_benchmark(path: str | Path) -> dict[str, float]:
    """The last record of one Snakemake benchmark file as ``{wall_s, cpu_s, max_rss_mb}``."""
    path = Path(path)
    try:
        table = pd.read_csv(path, sep="\t", na_values=["-", "NA", ""])
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise HCMError(f"{path}: not a readable Snakemake benchmark file ({exc}); re-run its job") from None
    missing = sorted(set(BENCHMARK_COLUMNS) - set(table.columns))
    if missing or table.empty:
        raise HCMError(f"{path}: benchmark file without columns {missing or list(BENCHMARK_COLUMNS)} "
                       "or without a record; re-run its job")
    row = table.iloc[-1]
    return {new: float(pd.to_numeric(row[old], errors="coerce")) for old, new in BENCHMARK_COLUMNS.items()}


def job_records(paths: Iterable[str | Path], root: str | Path) -> pd.DataFrame:
    """One row per benchmark file: ``rule`` (first folder below ``root``), ``job`` (the rest of the
    path without ``.tsv``, e.g. ``synth-market/hcm/seed0``) and the measured values."""
    root = Path(root).resolve()
    rows = []
    for path in map(Path, paths):
        try:
            rel = path.resolve().relative_to(root)
        except ValueError:
            raise HCMError(f"{path}: not below the benchmark folder {root}") from None
        if len(rel.parts) < 2:
            raise HCMError(f"{path}: expected <benchmark folder>/<rule>/<job>.tsv")
        job = rel.relative_to(rel.parts[0]).with_suffix("").as_posix()
        rows.append({"rule": rel.parts[0], "job": job, **read_benchmark(path)})
    frame = pd.DataFrame(rows, columns=JOB_COLUMNS)
    order = {r: i for i, r in enumerate(RULE_ORDER)}
    frame["_order"] = frame["rule"].map(lambda r: order.get(r, len(order)))
    return frame.sort_values(["_order", "rule", "job"], kind="stable").drop(columns="_order").reset_index(drop=True)


def job_records_from_csv(path: str | Path) -> pd.DataFrame:
    """``jobs.csv`` as written by ``hcm report aggregate``."""
    jobs = pd.read_csv(path)
    missing = sorted(set(JOB_COLUMNS) - set(jobs.columns))
    if missing:
        raise HCMError(f"{path}: columns {missing} missing; re-run `hcm report aggregate` with --benchmark")
    return jobs


def rule_totals(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per rule: job count, summed and longest wall time, summed CPU time, CPU/wall ratio, peak memory."""
    if jobs.empty:
        return pd.DataFrame(columns=TOTAL_COLUMNS)
    grouped = jobs.groupby("rule", sort=False)
    totals = pd.DataFrame({
        "jobs": grouped.size(),
        "wall_s": grouped["wall_s"].sum(min_count=1),
        "wall_s_max": grouped["wall_s"].max(),
        "cpu_s": grouped["cpu_s"].sum(min_count=1),
        "max_rss_mb": grouped["max_rss_mb"].max(),
    }).reset_index()
    all_jobs = {"rule": "all", "jobs": len(jobs), "wall_s": jobs["wall_s"].sum(min_count=1),
                "wall_s_max": jobs["wall_s"].max(), "cpu_s": jobs["cpu_s"].sum(min_count=1),
                "max_rss_mb": jobs["max_rss_mb"].max()}
    totals = pd.concat([totals, pd.DataFrame([all_jobs])], ignore_index=True)
    totals["cpu_per_wall"] = totals["cpu_s"] / totals["wall_s"]
    return totals[TOTAL_COLUMNS]


def _fmt(value: float, digits: int = 1) -> str:
    return "–" if pd.isna(value) else f"{value:,.{digits}f}"


def compute_table(jobs: pd.DataFrame, *, suite: str) -> Table:
    """The compute table of a suite: one row per rule plus ``all`` (data = :func:`rule_totals`)."""
    totals = rule_totals(jobs)
    header = ("| rule | jobs | wall time, summed (s) | longest job (s) | CPU time, summed (s) | CPU / wall "
              "| peak memory of a job (MB) |")
    lines = [header, "|:---|---:|---:|---:|---:|---:|---:|"]
    for r in totals.itertuples():
        name = "**all**" if r.rule == "all" else f"`{r.rule}`"
        lines.append(f"| {name} | {r.jobs} | {_fmt(r.wall_s)} | {_fmt(r.wall_s_max)} | {_fmt(r.cpu_s)} "
                     f"| {_fmt(r.cpu_per_wall, 2)} | {_fmt(r.max_rss_mb, 0)} |")
    caption = (f"Compute of the `{suite}` suite's jobs, per rule, as Snakemake's `benchmark:` measured them: "
               "wall time exactly; CPU time (user + system of the job's processes) and peak resident memory "
               "sampled (each second for the first 30 s of a job, then every 30 s), so short jobs and "
               "short-lived processes read low. CPU / wall above 1 means several cores. Jobs ran in "
               "parallel: the suite took less wall time than the sum.")
    latex = (totals.rename(columns=lambda c: c.replace("_", " ")).style.format(precision=1, na_rep="--")
             .hide(axis="index").to_latex(hrules=True, caption=caption.replace("`", "").replace("_", r"\_")))
    return Table(name="compute", caption=caption, data=totals, markdown="\n".join(lines) + "\n", latex=latex)


def jobs_markdown(jobs: pd.DataFrame) -> str:
    """Markdown table of :func:`job_records` (one row per job)."""
    lines = ["| rule | job | wall time (s) | CPU time (s) | peak memory (MB) |", "|:---|:---|---:|---:|---:|"]
    for r in jobs.itertuples():
        lines.append(f"| `{r.rule}` | {r.job} | {_fmt(r.wall_s)} | {_fmt(r.cpu_s)} | {_fmt(r.max_rss_mb, 0)} |")
    return "\n".join(lines) + "\n"
