"""The readings study (issue 19; docs/workflow.md, "The readings study"): tables, paired differences,
the validation-split decision helper and the gradient-scale diagnostics per reading.

A study row is a named (variant, overrides) pair trained like a main run on each dataset and
seed. Per run this module reads ``config.yaml`` (what was trained: variant, the identity
term's factor, gamma and weight, the identity memory's rule), ``metrics.json`` (the test
split, final checkpoint) and ``epochs.csv`` (the validation split's score of the final
epoch and the per-epoch gradient diagnostics). The row to adopt is chosen on the
validation split only; the test scores are shown beside it, never used to choose.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from hcm.errors import HCMError
from hcm.report.aggregate import identity_options, read_json, read_run_config, result_row, write_csv
from hcm.report.paired import paired_series
from hcm.report.style import dataset_label, is_reference, order_datasets, variant_label
from hcm.report.tables import DASH, fmt_mean_std, render_markdown
from hcm.utils.io import atomic_write_text

logger = logging.getLogger(__name__)

#: per-run columns of study.csv (metrics in percent)
RUN_COLUMNS: tuple[str, ...] = (
    "dataset", "row", "variant", "adapt", "factor", "gamma", "id_weight", "memory_rule", "epochs", "iters",
    "val_fraction", "seed",
    "mAP", "rank1", "val_mAP", "val_rank1",
    "delta_mean", "delta_max", "negw_max", "id_grad_scale", "id_scale_weighted", "gshare_identity",
    "gnorm_identity", "gnorm_image", "run_dir",
)
#: per-epoch diagnostics of epochs.csv carried into diagnostics.csv
EPOCH_DIAGNOSTICS: tuple[str, ...] = (
    "delta_mean", "delta_max", "negw_max", "id_grad_scale", "gnorm_identity", "gnorm_image", "gshare_identity",
    "gshare_image", "gnorm_total", "p_mean", "loss_id", "loss_img",
)


def _get(config: Mapping[str, Any], *keys: str) -> Any:
    node: Any = config
    for key in keys:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def trained_epochs(epochs: pd.DataFrame) -> pd.DataFrame:
    """The rows of epochs.csv whose epoch trained (not skipped for lack of clusters)."""
    if "skipped" not in epochs:
        return epochs
    return epochs[~epochs["skipped"].astype(str).str.lower().isin(["true", "1"])]


def measured_scale(epochs_csv: str | Path) -> float:
    """The mean effective gradient scale of L_id over a run's trained epochs (``id_grad_scale``).

    Every trained epoch has ``optim.iters`` steps, so this is the mean over all its steps. It is
    what the scale control multiplies ``L_id`` by (method.md, "Readings").
    """
    path = Path(epochs_csv)
    if not path.is_file():
        raise HCMError(f"{path}: not found; the run whose gradient scale the control copies has not trained")
    df = trained_epochs(pd.read_csv(path))
    if "id_grad_scale" not in df or df["id_grad_scale"].isna().all():
        raise HCMError(f"{path}: no id_grad_scale logged (a run without L_id, or trained before the "
                       "diagnostics existed); train the scale source again")
    value = float(df["id_grad_scale"].mean())
    if not math.isfinite(value) or value <= 0:
        raise HCMError(f"{path}: mean id_grad_scale is {value}; cannot scale L_id by it")
    return value


def write_scaled_recipe(base_recipe: str | Path, source_runs: Sequence[str | Path], out: str | Path) -> float:
    """A recipe that is ``base_recipe`` with L_id's weight = the mean :func:`measured_scale` of
    ``source_runs``; returns the weight. The control row trains with it (its variant's overlay
    sets the factor, the weight stays)."""
    scales = [measured_scale(Path(run) / "epochs.csv") for run in source_runs]
    if not scales:
        raise HCMError("no source run given for the scale control")
    weight = float(np.mean(scales))
    sources = ", ".join(str(r) for r in source_runs)
    text = (f"# scale control: L_id weight = mean effective gradient scale of {sources}\n"
            + yaml.safe_dump({"_base_": str(Path(base_recipe).resolve()),
                              "loss": {"terms": {"identity": {"weight": weight}}}}, sort_keys=False))
    atomic_write_text(out, text)
    return weight


def collect_study(rows: Mapping[str, Sequence[str | Path]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """row name -> run directories  =>  (one line per run, one line per run and epoch)."""
    runs, epochs = [], []
    for row, run_dirs in rows.items():
        for run_dir in map(Path, run_dirs):
            config = read_run_config(run_dir, "study")
            metrics = result_row(read_json(run_dir / "metrics.json"), run_dir / "metrics.json")
            ep_path = run_dir / "epochs.csv"
            ep = trained_epochs(pd.read_csv(ep_path)) if ep_path.is_file() else pd.DataFrame()
            adapt = bool(config.get("adapt", True))
            identity = identity_options(config)
            rec: dict[str, Any] = {
                "dataset": metrics["dataset"], "row": row, "variant": metrics["variant"], "seed": metrics["seed"],
                "adapt": adapt, "factor": identity.get("factor") if identity else None,
                "gamma": identity.get("gamma") if identity else None,
                "id_weight": identity.get("weight") if identity else None,
                "memory_rule": _get(config, "memory", "identity", "rule") if identity else None,
                "epochs": _get(config, "optim", "epochs"), "iters": _get(config, "optim", "iters"),
                "val_fraction": _get(config, "dataset", "val_fraction"),
                "mAP": metrics["mAP"], "rank1": metrics["rank1"], "run_dir": str(run_dir),
            }
            last = ep.iloc[-1] if len(ep) else None
            for col in ("val_mAP", "val_rank1"):
                rec[col] = 100.0 * float(last[col]) if last is not None and col in ep else math.nan
            for col in ("delta_mean", "id_grad_scale", "gshare_identity", "gnorm_identity", "gnorm_image"):
                rec[col] = float(ep[col].mean()) if col in ep and len(ep) else math.nan
            for col in ("delta_max", "negw_max"):
                rec[col] = float(ep[col].max()) if col in ep and len(ep) else math.nan
            # the factor's gradient scale times L_id's weight: against ClusterNCE at weight 1 (the control's is its weight)
            weight = float(rec["id_weight"]) if rec["id_weight"] is not None else math.nan
            rec["id_scale_weighted"] = rec["id_grad_scale"] * weight
            runs.append(rec)
            for _, e in ep.iterrows():
                values = {c: float(e[c]) if c in ep else math.nan for c in EPOCH_DIAGNOSTICS}
                epochs.append({"dataset": rec["dataset"], "row": row, "seed": rec["seed"], "epoch": int(e["epoch"]),
                               **values, "id_scale_weighted": values["id_grad_scale"] * weight})
    if not runs:
        raise HCMError("no study runs given; pass --row NAME RUN_DIR [RUN_DIR ...]")
    order = {name: i for i, name in enumerate(rows)}
    df = pd.DataFrame(runs, columns=list(RUN_COLUMNS))
    df = df.sort_values(["dataset", "row", "seed"], key=lambda s: s.map(order) if s.name == "row" else s,
                        kind="stable").reset_index(drop=True)
    per_epoch = pd.DataFrame(epochs, columns=["dataset", "row", "seed", "epoch", *EPOCH_DIAGNOSTICS,
                                              "id_scale_weighted"])
    return df, per_epoch


def paired_difference(runs: pd.DataFrame, dataset: str, row: str, reference: str,
                      metric: str = "mAP") -> tuple[float, float, int]:
    """Mean and sample std (ddof 1) over seeds of :func:`paired_series`; NaN mean with no common seed,
    NaN std with one."""
    diff = paired_series(runs, dataset, row, reference, metric)
    n = len(diff)
    if n == 0:
        return math.nan, math.nan, 0
    return float(diff.mean()), float(diff.std(ddof=1)) if n > 1 else math.nan, n


def fmt_paired(mean: float, std: float, n: int) -> str:
    if n == 0 or math.isnan(mean):
        return DASH
    spread = f" ± {std:.1f}" if n > 1 and not math.isnan(std) else ""
    return f"{mean:+.1f}{spread} (n={n})"


def candidate_rows(runs: pd.DataFrame) -> list[str]:
    """Rows that learn without labels (not the reference variants supervised/untrained): the candidates."""
    return [r for r in runs["row"].unique() if not is_reference(str(runs[runs["row"] == r]["variant"].iloc[0]))]


def val_ranking(runs: pd.DataFrame, rows: Sequence[str] | None = None, dataset: str | None = None) -> pd.Series:
    """Mean validation mAP per row (on ``dataset``, or the mean of the datasets' seed means), best first,
    over ``rows`` (default: :func:`candidate_rows`). Computed on the validation split only."""
    sub = runs[runs["row"].isin(candidate_rows(runs) if rows is None else list(rows))]
    if dataset is not None:
        sub = sub[sub["dataset"] == dataset]
    per = sub.groupby(["dataset", "row"], sort=False)["val_mAP"].mean().groupby(level="row", sort=False).mean()
    return per.dropna().sort_values(ascending=False, kind="stable")


def val_best(runs: pd.DataFrame, dataset: str | None = None,
             rows: Sequence[str] | None = None) -> tuple[str | None, float]:
    """The row (of ``rows``, default the candidates) with the highest mean validation mAP (on ``dataset``,
    or averaged over the datasets' means). Chosen on the validation split only."""
    per = val_ranking(runs, rows, dataset)
    if per.empty:
        return None, math.nan
    return str(per.index[0]), float(per.iloc[0])


def describe_row(runs: pd.DataFrame, row: str) -> str:
    """What a row trained, from its runs' configs: variant label, reading, memory rule, L_id weight."""
    first = runs[runs["row"] == row].iloc[0]
    parts = [variant_label(str(first["variant"]))]
    if isinstance(first["factor"], str):
        parts.append(f"factor `{first['factor']}`")
        if isinstance(first["memory_rule"], str) and first["memory_rule"] != "momentum":
            parts.append(f"memory `{first['memory_rule']}`")
        weights = runs[runs["row"] == row]["id_weight"].astype(float)
        if not np.allclose(weights, 1.0):
            parts.append(f"L_id × {weights.mean():.2f}" + (f" ({weights.min():.2f}–{weights.max():.2f})"
                                                          if weights.nunique() > 1 else ""))
    return ", ".join(parts)


def scale_control_rows(control: str | None, matched: Mapping[str, str] | None = None) -> frozenset[str]:
    """The rows that are scale controls: ``control`` and every control in ``matched`` (row -> its control)."""
    return frozenset({*(matched or {}).values(), *([control] if control else [])})


def row_controls(rows: Sequence[str], control: str | None,
                 matched: Mapping[str, str] | None = None) -> dict[str, str]:
    """row -> the scale control its paired difference is taken to: the row's own (``matched``: source
    row -> control row, a control trained with that row's measured gradient scale) or else ``control``.
    Control rows themselves have none."""
    matched = dict(matched or {})
    controls = scale_control_rows(control, matched)
    out = {}
    for row in rows:
        target = matched.get(row, control)
        if target and row not in controls:
            out[row] = target
    return out


def study_table(runs: pd.DataFrame, *, reference: str, control: str | None,
                matched: Mapping[str, str] | None = None) -> str:
    """Markdown: per dataset, every row's validation and test scores (mean ± std over seeds), the paired
    differences to ``reference`` and to its scale control (:func:`row_controls`); the validation-best
    candidate in bold."""
    controls = row_controls(list(runs["row"].unique()), control, matched)
    blocks = []
    for dataset in order_datasets(runs["dataset"].unique()):
        best, _ = val_best(runs, dataset)
        sub = runs[runs["dataset"] == dataset]
        header = ["Row", "What", "val mAP (%)", "test mAP (%)", "test R1 (%)", f"Δ test mAP vs {reference}",
                  f"Δ val mAP vs {reference}"]
        if controls:
            header += ["Scale control", "Δ test mAP vs control", "Δ val mAP vs control"]
        header.append("Seeds")
        lines = []
        for row in sub["row"].unique():
            r = sub[sub["row"] == row]
            name = f"**{row}** (val-best)" if row == best else row
            cells = [name, describe_row(runs, row)]
            for m in ("val_mAP", "mAP", "rank1"):
                cells.append(fmt_mean_std(r[m].mean(), r[m].std(ddof=1), int(r[m].notna().sum())))
            for m in ("mAP", "val_mAP"):
                cells.append(DASH if row == reference else fmt_paired(*paired_difference(runs, dataset, row,
                                                                                         reference, m)))
            if controls:
                ctrl = controls.get(row)
                cells.append(f"`{ctrl}`" if ctrl else DASH)
                for m in ("mAP", "val_mAP"):
                    cells.append(fmt_paired(*paired_difference(runs, dataset, row, ctrl, m)) if ctrl else DASH)
            cells.append(str(len(r)))
            lines.append(cells)
        blocks.append(f"### {dataset_label(dataset)}\n\n" + render_markdown(header, lines, align="ll" + "r" * (len(header) - 2)))
    return "\n\n".join(blocks)


def reading_rows(runs: pd.DataFrame, *, reference: str, control: str | None,
                 matched: Mapping[str, str] | None = None) -> list[str]:
    """The rows the headline table compares: rows of the variant(s) whose readings have scale controls
    (the sources in ``matched``; with none, the variants of rows that differ from ``reference``'s variant
    and have a control), without the reference and the controls."""
    matched = dict(matched or {})
    controls = row_controls(list(runs["row"].unique()), control, matched)
    variant_of = runs.groupby("row", sort=False)["variant"].first()
    variants = {variant_of[r] for r in matched if r in variant_of.index} or {
        variant_of[r] for r in controls if r in variant_of.index and variant_of[r] != variant_of.get(reference)}
    return [r for r in runs["row"].unique() if r in controls and variant_of[r] in variants and r != reference]


def readings_table(runs: pd.DataFrame, *, reference: str, control: str | None,
                   matched: Mapping[str, str] | None = None, metric: str = "mAP") -> str:
    """Markdown, the study's headline: per reading and dataset, the paired per-seed difference of ``metric``
    to ``reference`` (the factor and L_id's scale together) and to the reading's scale control (the factor
    alone, L_id's gradient scale matched); mean ± std over seeds (n)."""
    controls = row_controls(list(runs["row"].unique()), control, matched)
    datasets = order_datasets(runs["dataset"].unique())
    header = ["Reading", "What", "Scale control"]
    for dataset in datasets:
        header += [f"{dataset_label(dataset)}: − {reference}", f"{dataset_label(dataset)}: − control"]
    lines = []
    for row in reading_rows(runs, reference=reference, control=control, matched=matched):
        cells = [row, describe_row(runs, row), f"`{controls[row]}`"]
        for dataset in datasets:
            cells.append(fmt_paired(*paired_difference(runs, dataset, row, reference, metric)))
            cells.append(fmt_paired(*paired_difference(runs, dataset, row, controls[row], metric)))
        lines.append(cells)
    return render_markdown(header, lines, align="lll" + "r" * (len(header) - 3))


def diagnostics_table(runs: pd.DataFrame) -> str:
    """Markdown: per row, the gradient-scale diagnostics averaged over datasets, seeds and epochs."""
    lines = []
    for row in runs["row"].unique():
        r = runs[runs["row"] == row]
        if r["delta_mean"].isna().all():
            continue
        lines.append([row, f"{r['delta_mean'].mean():.2f}", f"{r['delta_max'].max():.2f}",
                      f"{r['negw_max'].max():.2f}", f"{r['id_grad_scale'].mean():.2f}",
                      f"{r['id_scale_weighted'].mean():.2f}",
                      DASH if r["gshare_identity"].isna().all() else f"{r['gshare_identity'].mean():.2f}",
                      DASH if r["gnorm_identity"].isna().all() else f"{r['gnorm_identity'].mean():.3g}",
                      DASH if r["gnorm_image"].isna().all() else f"{r['gnorm_image'].mean():.3g}"])
    header = ["Row", "mean δ", "max δ", "max w (negatives)", "effective gradient scale",
              "× L_id weight", "L_id share of ‖∇_q‖", "‖∇_q L_id‖", "‖∇_q λL_img‖"]
    return render_markdown(header, lines, align="l" + "r" * 8)


def describe_design(runs: pd.DataFrame) -> str:
    """One line: runs = datasets x rows x seeds, the training budget and the validation split (from the
    runs' configs; ranges where runs differ)."""
    def values(col: str) -> str:
        vals = sorted({v for v in runs[col].dropna().tolist()})
        return "/".join(f"{v:g}" if isinstance(v, float) else str(v) for v in vals) or "?"

    datasets, rows, seeds = runs["dataset"].nunique(), runs["row"].nunique(), sorted(runs["seed"].unique())
    return (f"Runs: {len(runs)} = {datasets} dataset(s) x {rows} rows x {len(seeds)} seed(s) "
            f"({', '.join(map(str, seeds))}); training: {values('epochs')} epochs x {values('iters')} iterations, "
            f"the final checkpoint; validation split: {values('val_fraction')} of the training identities held out.")


def study_decision(runs: pd.DataFrame, *, reference: str, control: str | None,
                   matched: Mapping[str, str] | None = None) -> str:
    """Markdown: the validation-best reading (the default the main suites adopt) and its runner-up, and
    the validation-best row of all unsupervised rows; taken on the validation split only."""
    best, best_val = val_best(runs)
    if best is None:
        return "No validation scores were recorded (dataset.val_fraction = 0?): no row can be chosen."
    readings = val_ranking(runs, reading_rows(runs, reference=reference, control=control, matched=matched))
    text = ""
    if len(readings):
        ranked = [f"`{row}` {value:.1f}%" for row, value in readings.items()]
        text = (f"**Validation-best reading: `{readings.index[0]}`** (the default the main suites adopt); "
                + (f"runner-up `{readings.index[1]}`, {readings.iloc[0] - readings.iloc[1]:.2f} points "
                   "behind. " if len(readings) > 1 else "")
                + f"Mean validation mAP of the readings: {', '.join(ranked)}. ")
    return (text + f"**Validation-best row: `{best}`** (mean validation mAP {best_val:.1f}%, averaged over the "
            f"datasets' seed means; candidates: every row but the reference bounds). Chosen on the "
            "validation split (held-out training identities, `dataset.val_fraction`) only; the test "
            "columns are for reading, never for choosing.")


def write_study_reports(runs: pd.DataFrame, per_epoch: pd.DataFrame, out_dir: str | Path, *, reference: str,
                        control: str | None = None, matched: Mapping[str, str] | None = None,
                        suite: str = "") -> list[Path]:
    """study.csv, study.md, diagnostics.csv, diagnostics.md, study.png, diagnostics.png, readings.png (when
    some row has a scale control) and README.md.

    ``matched`` maps a reading's row to its own scale control's row (trained with that reading's
    measured gradient scale); other rows are paired with ``control``."""
    from hcm.report.study_figures import plot_readings, plot_study, plot_study_diagnostics

    out = Path(out_dir)
    matched = dict(matched or {})
    known = set(runs["row"])
    for name in [reference, *([control] if control else []), *matched, *matched.values()]:
        if name not in known:
            raise HCMError(f"study row {name!r} (a reference for the paired differences) has no runs; "
                           f"rows: {', '.join(runs['row'].unique())}")
    written = [write_csv(runs, out / "study.csv"), write_csv(per_epoch, out / "diagnostics.csv")]
    table = study_table(runs, reference=reference, control=control, matched=matched)
    headline = {m: readings_table(runs, reference=reference, control=control, matched=matched, metric=m)
                for m in ("mAP", "val_mAP")}
    decision = study_decision(runs, reference=reference, control=control, matched=matched)
    caption = (f"Final checkpoint of every run; mean ± std over seeds. Δ columns: the paired per-seed "
               f"difference to `{reference}`" + (" and to the row's scale control (`no_dynamic` with L_id × the "
                                                 "gradient scale measured on that row's reading, or "
                                                 f"`{control}`)" if control or matched else "")
               + ", mean ± std over the common seeds (n).")
    headline_caption = (f"Does the dynamic factor help, apart from L_id's gradient scale? Paired per-seed "
                        f"differences (mean ± std, n seeds): `− {reference}` = the reading against ClusterNCE "
                        "(factor and L_id's scale change together); `− control` = against the reading's scale "
                        "control (L_id's gradient scale matched, only the reweighting differs).")
    headline_md = (f"{headline_caption}\n\nTest mAP (points):\n\n{headline['mAP']}\n\n"
                   f"Validation mAP (points):\n\n{headline['val_mAP']}")
    figure_md = ("![each reading's paired per-seed difference to the reference and to its scale control]"
                 "(readings.png)\n\nThe same differences per seed (dots) and their mean (bar), test and validation "
                 "split.")
    written.append(atomic_write_text(out / "study.md", f"{caption}\n\n{decision}\n\n## The readings against "
                                     f"their controls\n\n{headline_md}\n\n## Every row\n\n{table}\n"))
    diag = diagnostics_table(runs)
    diag_caption = ("Gradient-scale diagnostics per row (means over datasets, seeds and epochs; max δ and max w "
                    "the largest of any epoch's mean over its steps of the batch maximum). Effective gradient "
                    "scale = ‖∇_q L_id‖ / ‖∇_q L_id with δ = 1, w = 1‖ on the same batch (the reading's own), "
                    "× L_id weight = the same against ClusterNCE at weight 1 (the scale control's is its "
                    "weight); L_id share = ‖∇_q w_id L_id‖ / (‖∇_q w_id L_id‖ + ‖∇_q λL_img‖) (docs/method.md).")
    written.append(atomic_write_text(out / "diagnostics.md", f"{diag_caption}\n\n{diag}\n"))
    readings = reading_rows(runs, reference=reference, control=control, matched=matched)
    controls = row_controls(list(runs["row"].unique()), control, matched)
    written.append(plot_readings(runs, readings, controls, out / "readings.png", reference=reference))
    fig = plot_study(runs, out / "study.png", reference=reference)
    diag_fig = plot_study_diagnostics(per_epoch, out / "diagnostics.png",
                                      dashed=scale_control_rows(control, matched))
    written += [fig, diag_fig]
    lines = [f"# Readings study{f' (`{suite}` suite)' if suite else ''}", "",
             "Generated by `snakemake study --cores all` (docs/workflow.md); not part of the default run.", "",
             describe_design(runs), "",
             decision, "",
             "What the decision rests on and what it does not show: `docs/method.md`, \"Which reading is the "
             "default\" (the reading the main suites use is `hcm.variants.DEFAULT_FACTOR`).", "",
             "## The readings against their controls", "", headline_md, "",
             *([figure_md, ""] if readings else []),
             "## Every row", "", caption, "", table, "",
             "Files: [study.csv](study.csv) · [study.md](study.md) · [diagnostics.csv](diagnostics.csv) · "
             "[diagnostics.md](diagnostics.md)", "",
             "![test and validation mAP per row and seed](study.png)", "",
             "Test mAP (filled) and validation mAP (open) per row: dots = seeds, bar = mean.", "",
             "## Gradient-scale diagnostics", "", diag_caption, "", diag, "",
             "![L_id's share of the gradient norm and its effective gradient scale per epoch](diagnostics.png)",
             "", "Per epoch, mean over seeds: L_id's share of the gradient norm w.r.t. the embeddings and "
             "its effective gradient scale times its weight; the scale controls dashed.", ""]
    written.append(atomic_write_text(out / "README.md", "\n".join(lines)))
    logger.info("study: %d runs, %d rows -> %s", len(runs), runs["row"].nunique(), out)
    return written
