"""The ``reports/README.md`` index: every table and figure with a one-line caption."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from hcm.report.aggregate import ENVIRONMENT_COLUMNS
from hcm.report.style import dataset_label, order_datasets, order_variants

STATEMENT = (
    "HCM's loss forms (dynamic contrast loss, sample constraint loss, memories) are this "
    "project's reading of the paper's abstract (see `docs/method.md`): the paper's own "
    "equations, hyper-parameters and result tables could not be obtained, so its published "
    "numbers are marked \"not available\" (fill them in `hcm/resources/published_results.csv` "
    "if you hold the paper)."
)

SUITE_NOTES: dict[str, str] = {
    "synthetic": ("The synthetic suite runs on generated re-ID datasets (no downloads) with small "
                  "backbones sized for a CPU; its numbers show the method's behaviour and the harness "
                  "working, and are not comparable with published Market-1501/DukeMTMC/MSMT17/VeRi "
                  "numbers."),
    "smoke": "The smoke suite is a tiny end-to-end check of the pipeline; its numbers mean nothing.",
    "paper": ("The paper suite runs the published Cluster Contrast recipe on the four real "
              "datasets (see `docs/method.md`, \"Defaults for the real datasets\")."),
}


def _rel(path: Path, readme: Path) -> str:
    return Path(os.path.relpath(Path(path).resolve(), Path(readme).resolve().parent)).as_posix()


def _fmt_duration(seconds: float) -> str:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "unknown"
    minutes = seconds / 60.0
    return f"{minutes:.1f} min" if minutes < 120 else f"{minutes / 60.0:.1f} h"


def figure_caption(key: str, n_seeds: int) -> str:
    seeds = f"{n_seeds} seed{'s' if n_seeds != 1 else ''}"
    if key.startswith("cmc_"):
        d = dataset_label(key[4:])
        return (f"{d}: CMC curves (matching rate in % vs rank 1-20), one line per variant, mean over "
                f"{seeds}, band = std; the legend gives rank-1.")
    if key == "ablation":
        return (f"Ablation: mAP and rank-1 (%) of HCM, its ablations and the baseline per dataset; "
                f"bars = mean over {seeds}, error bars = std, dots = individual seeds; lines across each "
                f"dataset's bars = the reference rows (no adaptation, supervised) where the suite has them.")
    if key.startswith("training_"):
        d = dataset_label(key[9:])
        return (f"{d}: training curves per epoch -- total, identity and image loss, number of clusters, "
                f"pseudo-label ARI against the true identities (diagnostic only), test mAP (%) where "
                f"evaluated; mean over {seeds}, band = min-max.")
    return key


def describe_machines(runs: pd.DataFrame) -> str:
    """The distinct training machines of ``runs`` (CPU, torch's CPU instruction set, GPU, torch), with run counts."""
    cols = [c for c in ENVIRONMENT_COLUMNS if c in runs]
    known = runs[cols].dropna(how="all") if cols else runs.iloc[:0]
    parts = []
    for key, group in known.groupby(cols, dropna=False, sort=True) if len(known) else ():
        rec = dict(zip(cols, key if isinstance(key, tuple) else (key,), strict=True))
        text = f"{rec.get('cpu')} ({rec.get('cpu_capability')})"
        if isinstance(rec.get("gpu"), str):
            text += f", GPU {rec['gpu']}"
        parts.append(f"{text}, torch {rec.get('torch')}: {len(group)} runs")
    missing = len(runs) - len(known)
    if missing:
        parts.append(f"not recorded: {missing} runs")
    return "; ".join(parts)


def describe_factors(runs: pd.DataFrame) -> str:
    """``hard_negatives`` in `hcm`, `identity_only`; ``none`` in `baseline`: each factor and the variants
    whose runs used it (runs without L_id or without adaptation left out)."""
    used = runs.dropna(subset=["factor"])
    parts = []
    for factor, group in used.groupby("factor", sort=False):
        variants = order_variants(group["variant"].unique())
        parts.append(f"`{factor}` in " + ", ".join(f"`{v}`" for v in variants))
    return "; ".join(parts)


def describe_failed_runs(runs: pd.DataFrame) -> str | None:
    """The runs whose ``status`` (``train_summary.json``) is not ``ok``, or None when there are none."""
    if not len(runs) or "status" not in runs:
        return None
    failed = runs[runs["status"].notna() & (runs["status"].astype(str) != "ok")]
    if not len(failed):
        return None
    return (", ".join(f"{r.dataset}/{r.variant}/seed{r.seed} ({r.status})" for r in failed.itertuples())
            + " -- their scores are of an untrained or diverged model (reason: the run's train_summary.json).")


def _command(suite: str) -> str:
    if suite == "synthetic":
        return "snakemake --cores all"
    if suite == "paper":
        return "snakemake --cores all --config suite=paper data_root=/path/to/datasets"
    return f"snakemake --cores all --config suite={suite}"


def render_readme(*, suite: str, results: pd.DataFrame, runs: pd.DataFrame, tables: Mapping[str, object],
                  table_paths: Mapping[str, list[Path]], figure_paths: Mapping[str, Path], readme: Path,
                  jobs: pd.DataFrame | None = None) -> str:
    """Markdown index of a suite's reports (tables inline, figures embedded, files linked).

    ``jobs``: the jobs' compute records (``jobs.csv``); with them and a ``compute`` table, a
    Compute section follows the run counts."""
    datasets = order_datasets(results["dataset"].unique())
    variants = order_variants(results["variant"].unique())
    seeds = sorted(results["seed"].unique())
    n_seeds = len(seeds)
    lines = [
        f"# Results: `{suite}` suite",
        "",
        f"Generated by the workflow (`{_command(suite)}`); do not edit by hand.",
        "",
        f"> {STATEMENT}",
        "",
    ]
    if suite in SUITE_NOTES:
        lines += [SUITE_NOTES[suite], ""]
    lines += [
        f"- Runs: {len(results)} = {len(datasets)} dataset(s) x {len(variants)} variant(s) x "
        f"{n_seeds} seed(s) ({', '.join(map(str, seeds))}); datasets: "
        + ", ".join(dataset_label(d) for d in datasets) + "; variants: "
        + ", ".join(f"`{v}`" for v in variants) + ".",
    ]
    if len(runs) and "train_wall_time_s" in runs:
        train_s = pd.to_numeric(runs["train_wall_time_s"], errors="coerce").sum(min_count=1)
        eval_s = pd.to_numeric(runs.get("eval_time_s"), errors="coerce").sum(min_count=1)
        devices = ", ".join(sorted({str(d) for d in runs.get("device", pd.Series(dtype=str)).dropna()})) or "unknown"
        lines.append(f"- Compute: training {_fmt_duration(train_s)} and evaluation {_fmt_duration(eval_s)} "
                     f"summed over runs (jobs run in parallel, so the wall time is shorter); device(s): {devices}.")
    if len(runs):
        lines.append(f"- Machine(s): {describe_machines(runs)} (numbers depend on the CPU model and GPU; "
                     "compare runs from one machine).")
    if len(runs) and "selection" in runs:
        sel = runs["selection"].dropna().astype(str).value_counts()
        lines.append("- Reported checkpoint: " + ", ".join(f"{k} ({v} runs)" for k, v in sel.items())
                     + " -- never the best test-set epoch.")
    if len(runs) and "factor" in runs and runs["factor"].notna().any():
        lines.append(f"- Dynamic factor (`loss.terms.identity.factor`): {describe_factors(runs)} "
                     "(the default reading was chosen on a validation split by the readings study: "
                     "`docs/method.md`, \"Which reading is the default\").")
    failed = describe_failed_runs(runs)
    if failed:
        lines.append(f"- **Runs that did not train**: {failed}")
    lines.append("- Metrics: mAP, mINP and CMC rank-k in %, single-query, cosine distance, no re-ranking "
                 "unless the run's config says so (`docs/method.md`, \"Evaluation protocol\").")
    lines.append("")

    if "compute" in tables and jobs is not None:
        from hcm.report.compute import JOBS_FILE, jobs_markdown

        table = tables["compute"]
        files = " · ".join(f"[{p.suffix.lstrip('.')}]({_rel(p, readme)})" for p in table_paths.get("compute", []))
        per_job = _rel(Path(table_paths["compute"][0]).parent / JOBS_FILE, readme)
        lines += ["## Compute", "", table.caption, "", table.markdown, f"Files: {files} · per job: [{JOBS_FILE}]({per_job})",
                  "", f"<details><summary>Per job ({len(jobs)} jobs)</summary>", "", jobs_markdown(jobs),
                  "</details>", ""]

    titles = {"main": "Main table", "ablation": "Ablation", "published": "Published numbers beside ours"}
    for name in ("main", "ablation", "published"):
        if name not in tables:
            continue
        table = tables[name]
        files = " · ".join(f"[{p.suffix.lstrip('.')}]({_rel(p, readme)})" for p in table_paths.get(name, []))
        lines += [f"## {titles[name]}", "", f"{table.caption}", "", table.markdown, f"Files: {files}", ""]

    lines += ["## Figures", ""]
    sections = (("cmc_", "CMC curves"), ("ablation", "Ablation"), ("training_", "Training curves"))
    for prefix, heading in sections:
        keys = [k for k in figure_paths if k.startswith(prefix)]
        if not keys:
            continue
        lines += [f"### {heading}", ""]
        for key in keys:
            caption = figure_caption(key, n_seeds)
            alt = heading if key == "ablation" else f"{heading}, {dataset_label(key[len(prefix):])}"
            lines += [f"![{alt}]({_rel(figure_paths[key], readme)})", "", caption, ""]

    lines += [
        "## Data files",
        "",
        "| file | content |",
        "|:---|:---|",
        "| [`results.csv`]({}) | one row per (dataset, variant, seed): mAP, mINP, rank1, rank5, rank10 in %; every table derives from it |"
        .format(_rel(Path(table_paths["main"][0]).parent / "results.csv", readme)),
        "| [`cmc.csv`]({}) | CMC curve per run: (dataset, variant, seed, rank, cmc %) |"
        .format(_rel(Path(table_paths["main"][0]).parent / "cmc.csv", readme)),
        "| [`curves.csv`]({}) | the runs' per-epoch logs (`epochs.csv`), keyed by (dataset, variant, seed) |"
        .format(_rel(Path(table_paths["main"][0]).parent / "curves.csv", readme)),
        "| [`runs.csv`]({}) | provenance per run: training status, reported checkpoint, times, query counts, device, and the CPU, GPU and torch version it was trained with |"
        .format(_rel(Path(table_paths["main"][0]).parent / "runs.csv", readme)),
        *(["| [`jobs.csv`]({}) | compute per job (prepare, pretrain, train): wall time, CPU time, peak memory, from Snakemake's `benchmark:` files |"
            .format(_rel(Path(table_paths["main"][0]).parent / "jobs.csv", readme))] if jobs is not None else []),
        "",
        "## Reproduce and browse",
        "",
        "```bash",
        f"{_command(suite)}   # re-runs only what changed",
        "mlflow ui --backend-store-uri sqlite:///results/mlflow.db   # every run: params, curves, artifacts",
        "```",
        "",
    ]
    return "\n".join(lines)
