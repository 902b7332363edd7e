"""Report figures (matplotlib + seaborn): CMC curves, ablation bars, training curves, sensitivity.

Every figure uses the same colour, label and line style per variant
(:mod:`hcm.report.style`), labelled axes with units, and is written atomically as
PNG at 150 dpi (and any other format the file suffix names, e.g. ``.svg``, ``.pdf``).
Figures are drawn on :class:`matplotlib.figure.Figure` objects directly (no pyplot
state), so they are safe to build in any process and need no display.

Inputs are the tidy tables of :mod:`hcm.report.aggregate`: metrics in percent, except
``curves`` (a run's ``epochs.csv`` rows), whose ``test_mAP``/``val_mAP`` columns are
fractions like ``metrics.json`` and are shown in percent here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from hcm.report.style import (
    ablation_variants,
    dataset_label,
    figure_style,
    knob_label,
    order_datasets,
    order_variants,
    reference_variants,
    variant_color,
    variant_label,
    variant_linestyle,
    variant_marker,
)
from hcm.utils.io import atomic_path

logger = logging.getLogger(__name__)

ArrayLike = Sequence[float] | np.ndarray


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Save atomically in the format named by the suffix (png, svg, pdf)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    with figure_style(), atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, metadata=_metadata(fmt))
    return path


def _metadata(fmt: str) -> dict[str, str | None]:
    # no creation date / software version in the file: the same data gives the same bytes
    if fmt == "png":
        return {"Software": None}
    if fmt in ("svg",):
        return {"Date": None}
    if fmt == "pdf":
        return {"CreationDate": None, "Producer": None}
    return {}


def _style_for(label: str, index: int) -> dict[str, str]:
    """Colour/line style of a curve: by variant when the label starts with a variant name."""
    variant = label.split()[0] if label else ""
    return {"color": variant_color(variant, index), "linestyle": variant_linestyle(variant)}


# ------------------------------------------------------------------ CMC


def plot_cmc(curves: Mapping[str, ArrayLike], path: str | Path, *, title: str | None = None,
             max_rank: int = 20, fractions: bool = True,
             styles: Mapping[str, Mapping[str, str]] | None = None) -> Path:
    """Draw :func:`cmc_figure` and save it to ``path``."""
    return save_figure(cmc_figure(curves, title=title, max_rank=max_rank, fractions=fractions, styles=styles), path)


def cmc_figure(curves: Mapping[str, ArrayLike], *, title: str | None = None, max_rank: int = 20,
               fractions: bool = True, styles: Mapping[str, Mapping[str, str]] | None = None) -> Figure:
    """CMC curves, one line per entry of ``curves`` (label -> values at ranks 1, 2, ...).

    A value may be one curve (1-D) or one curve per seed (2-D, seeds x ranks): then the
    line is the mean and the band the standard deviation over seeds. ``fractions``: the
    values are in [0, 1] (as in ``metrics.json``) and are shown in percent.
    ``styles`` maps a label to matplotlib line properties (colour, linestyle); labels
    starting with a variant name get that variant's style by default.
    """
    scale = 100.0 if fractions else 1.0
    with figure_style():
        fig = Figure(figsize=(5.6, 4.0))
        ax = fig.add_subplot()
        lowest = 100.0
        for i, (label, values) in enumerate(curves.items()):
            arr = np.atleast_2d(np.asarray(values, dtype=float))[:, :max_rank] * scale
            ranks = np.arange(1, arr.shape[1] + 1)
            mean = arr.mean(axis=0)
            style = dict(_style_for(label, i), **(styles or {}).get(label, {}))
            ax.plot(ranks, mean, marker="o", markersize=3, label=f"{label} (R1 {mean[0]:.1f}%)", **style)
            if arr.shape[0] > 1:
                std = arr.std(axis=0, ddof=1)
                ax.fill_between(ranks, mean - std, np.minimum(mean + std, 100.0), color=style["color"],
                                alpha=0.15, linewidth=0)
            lowest = min(lowest, float(np.nanmin(mean)))
        ax.set_xlabel("Rank")
        ax.set_ylabel("Matching rate (%)")
        ax.set_xlim(1, max_rank)
        ax.set_xticks([1, *range(5, max_rank + 1, 5)])
        ax.set_ylim(max(0.0, math.floor(lowest / 10.0) * 10.0 - 5.0), 100.0)
        if title:
            ax.set_title(title)
        ax.legend(loc="lower right", frameon=True)
        fig.tight_layout()
        return fig


def plot_cmc_dataset(cmc: pd.DataFrame, dataset: str, path: str | Path, *, max_rank: int = 20) -> Path:
    """CMC curves of one dataset: one line per variant (mean over seeds, band = std)."""
    sub = cmc[cmc["dataset"] == dataset]
    curves: dict[str, np.ndarray] = {}
    styles: dict[str, dict[str, str]] = {}
    for i, v in enumerate(order_variants(sub["variant"].unique())):
        wide = sub[sub["variant"] == v].pivot(index="seed", columns="rank", values="cmc").sort_index(axis=1)
        label = variant_label(v)
        curves[label] = wide.to_numpy()
        styles[label] = {"color": variant_color(v, i), "linestyle": variant_linestyle(v)}
    n_seeds = int(sub["seed"].nunique()) if len(sub) else 0
    title = f"{dataset_label(dataset)}: CMC (mean over {n_seeds} seed{'s' if n_seeds != 1 else ''})"
    return plot_cmc(curves, path, title=title, max_rank=max_rank, fractions=False, styles=styles)


# ------------------------------------------------------------------ ablation


def plot_ablation(results: pd.DataFrame, path: str | Path, *, metrics: Sequence[str] = ("mAP", "rank1"),
                  variants: Sequence[str] | None = None) -> Path:
    """Draw :func:`ablation_figure` and save it to ``path``."""
    return save_figure(ablation_figure(results, metrics=metrics, variants=variants), path)


def _reference_lines(ax, results: pd.DataFrame, datasets: Sequence[str], metric: str) -> list:
    """Draw each reference row's mean (over seeds) as a line across its dataset's group of bars.

    Returns legend handles for the reference rows present (group ``reference``, in the
    colours and line styles of the other figures).
    """
    from matplotlib.lines import Line2D

    handles = []
    for variant in reference_variants():
        means = results[results["variant"] == variant].groupby("dataset")[metric].mean()
        style = {"colors": variant_color(variant), "linestyles": variant_linestyle(variant), "linewidth": 1.6}
        drawn = False
        for i, dataset in enumerate(datasets):
            if dataset in means.index and np.isfinite(means[dataset]):
                ax.hlines(means[dataset], i - 0.45, i + 0.45, zorder=5, label=f"_{variant}", **style)
                drawn = True
        if drawn:
            handles.append(Line2D([], [], color=style["colors"], linestyle=style["linestyles"],
                                  linewidth=style["linewidth"], label=variant_label(variant)))
    return handles


def ablation_figure(results: pd.DataFrame, *, metrics: Sequence[str] = ("mAP", "rank1"),
                    variants: Sequence[str] | None = None) -> Figure:
    """Grouped bars per dataset (mean over seeds), error bars = std, dots = individual seeds.

    The reference rows present in ``results`` (``untrained``: direct transfer;
    ``supervised``: upper bound) are drawn as lines across each dataset's bars, so a
    bar's gain over direct transfer reads off directly.
    """
    import seaborn as sns

    variants = ablation_variants() if variants is None else variants
    present = [v for v in variants if v in set(results["variant"])]
    data = results[results["variant"].isin(present)].copy()
    datasets = order_datasets(data["dataset"].unique())
    data["Dataset"] = data["dataset"].map(dataset_label)
    data["Variant"] = data["variant"].map(variant_label)
    palette = {variant_label(v): variant_color(v, i) for i, v in enumerate(present)}
    hue_order = [variant_label(v) for v in present]
    order = [dataset_label(d) for d in datasets]
    names = {"mAP": "mAP (%)", "rank1": "Rank-1 (%)", "rank5": "Rank-5 (%)", "rank10": "Rank-10 (%)",
             "mINP": "mINP (%)"}
    if data.empty:
        with figure_style():
            fig = Figure(figsize=(5.5, 2.0), layout="constrained")
            ax = fig.add_subplot()
            ax.text(0.5, 0.5, "no ablation variant in this suite", ha="center", va="center", color="0.4")
            ax.set_axis_off()
            return fig
    with figure_style():
        width = max(5.5, 1.5 + 0.45 * len(datasets) * max(1, len(present)))
        fig = Figure(figsize=(width, 1.0 + 2.9 * len(metrics)), layout="constrained")
        axes = fig.subplots(len(metrics), 1, squeeze=False)[:, 0]
        ref_handles: list = []
        for ax, metric in zip(axes, metrics, strict=True):
            sns.barplot(data=data, x="Dataset", y=metric, hue="Variant", order=order, hue_order=hue_order,
                        palette=palette, errorbar="sd", capsize=0.15, err_kws={"linewidth": 1.2},
                        ax=ax, legend=ax is axes[0], saturation=1.0)
            sns.stripplot(data=data, x="Dataset", y=metric, hue="Variant", order=order, hue_order=hue_order,
                          dodge=True, palette=["#222222"] * len(hue_order), size=3.5, alpha=0.8,
                          jitter=False, ax=ax, legend=False)  # no jitter: it draws from numpy's global RNG
            ref_handles = _reference_lines(ax, results, datasets, metric)
            ax.set_ylabel(names.get(metric, metric))
            ax.set_xlabel("")
            shown = results[results["variant"].isin([*present, *reference_variants()])]
            top = float(np.nanmax(shown[metric])) if len(shown) else 100.0
            ax.set_ylim(0, min(100.0, top * 1.12 + 2))
        leg = axes[0].get_legend()
        if leg is not None:
            handles, labels = axes[0].get_legend_handles_labels()
            leg.remove()
            handles = [*handles, *ref_handles]
            labels = [*labels, *(h.get_label() for h in ref_handles)]
            fig.legend(handles, labels, loc="outside lower center", ncol=min(4, len(handles)), frameon=False)
        n_seeds = int(data["seed"].nunique()) if len(data) else 0
        refs = ", lines = reference rows" if ref_handles else ""
        fig.suptitle(f"Ablation: bars = mean over {n_seeds} seed{'s' if n_seeds != 1 else ''}, "
                     f"error bars = std, dots = seeds{refs}", fontsize=11)
        return fig


# ------------------------------------------------------------------ training curves

#: panels of the training-curve figure before and after the loss terms' panels:
#: (epochs.csv column, axis label, factor to the shown unit)
LEADING_PANELS: tuple[tuple[str, str, float], ...] = (("loss", "total loss", 1.0),)
TRAILING_PANELS: tuple[tuple[str, str, float], ...] = (
    ("num_clusters", "clusters (pseudo identities)", 1.0),
    ("ari", "pseudo-label ARI", 1.0),
    ("test_mAP", "test mAP (%)", 100.0),
)


def curve_panels(columns: Sequence[str] | None = None) -> tuple[tuple[str, str, float], ...]:
    """Panels: total loss, one per loss term (its loss column and label), clusters, ARI, test mAP.

    The terms are the registered ones, then any other ``loss_*`` column of ``columns`` (a
    term whose plugin this process has not loaded: labelled by its column name).
    """
    from hcm.terms import LOSS_TERMS

    terms = [(t.loss_column, t.label, 1.0) for t in LOSS_TERMS.values()]
    known = {col for col, _, _ in (*LEADING_PANELS, *terms, *TRAILING_PANELS)}
    extra = [(c, c, 1.0) for c in columns or () if c.startswith("loss_") and c not in known]
    return (*LEADING_PANELS, *terms, *extra, *TRAILING_PANELS)


def plot_training_curves(curves: pd.DataFrame, path: str | Path, *, title: str | None = None,
                         panels: Sequence[tuple[str, str, float]] | None = None) -> Path:
    """Draw :func:`training_figure` and save it to ``path``."""
    return save_figure(training_figure(curves, title=title, panels=panels), path)


def plot_run_curves(run_dir: str | Path, path: str | Path, *, variant: str, seed: int,
                    title: str) -> Path | None:
    """One run's training curves (``run_dir/epochs.csv``) saved to ``path``; None without epochs.

    Written by ``hcm train`` as ``RUN/curves.png`` and logged to MLflow with the run.
    """
    from hcm.report.aggregate import read_epochs

    epochs = read_epochs(Path(run_dir) / "epochs.csv")
    if epochs.empty:
        return None
    return plot_training_curves(epochs.assign(variant=variant, seed=seed), path,
                                title=f"{title}: training curves")


def training_figure(curves: pd.DataFrame, *, title: str | None = None,
                    panels: Sequence[tuple[str, str, float]] | None = None) -> Figure:
    """Per-epoch losses, cluster count, pseudo-label ARI and test mAP; one line per variant.

    Lines are the mean over seeds; bands the min-max over seeds. ``curves`` has columns
    ``variant``, ``seed``, ``epoch`` and the ``epochs.csv`` columns named by ``panels``.
    """
    panels = curve_panels(list(curves.columns)) if panels is None else panels
    variants = order_variants(curves["variant"].unique()) if len(curves) else []
    max_epoch = int(curves["epoch"].max()) if len(curves) else 1
    with figure_style():
        ncols = 3
        nrows = math.ceil(len(panels) / ncols)
        fig = Figure(figsize=(4.0 * ncols, 0.6 + 2.8 * nrows), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for ax, (col, label, factor) in zip(axes, panels, strict=False):
            drawn = False
            for i, v in enumerate(variants):
                sub = curves[curves["variant"] == v]
                if col not in sub.columns or sub[col].notna().sum() == 0:
                    continue
                vals = sub[["epoch", col]].dropna()
                stats = (vals[col] * factor).groupby(vals["epoch"]).agg(["mean", "min", "max"])
                color = variant_color(v, i)
                sparse = len(stats) < 0.5 * sub["epoch"].nunique()  # e.g. test mAP every N epochs
                ax.plot(stats.index, stats["mean"], color=color, linestyle=variant_linestyle(v),
                        marker=variant_marker(v) if sparse or len(stats) <= 12 else None,
                        markersize=4, label=variant_label(v))
                if sub["seed"].nunique() > 1:
                    ax.fill_between(stats.index, stats["min"], stats["max"], color=color, alpha=0.15, linewidth=0)
                drawn = True
            ax.set_xlabel("epoch")
            ax.set_ylabel(label)
            ax.set_xlim(0.5, max_epoch + 0.5)
            ax.xaxis.get_major_locator().set_params(integer=True)
            if not drawn:
                ax.text(0.5, 0.5, "not recorded", transform=ax.transAxes, ha="center", va="center", color="0.5")
        for ax in axes[len(panels):]:
            ax.set_visible(False)
        handles, labels = [], []
        for ax in axes:
            for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        if handles:
            fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 4), frameon=False)
        if title:
            fig.suptitle(title, fontsize=12)
        return fig


def plot_dataset_curves(curves: pd.DataFrame, dataset: str, path: str | Path) -> Path:
    sub = curves[curves["dataset"] == dataset] if len(curves) else curves
    n_seeds = int(sub["seed"].nunique()) if len(sub) else 0
    title = (f"{dataset_label(dataset)}: training curves (mean over {n_seeds} seed{'s' if n_seeds != 1 else ''},"
             " band = min-max)")
    return plot_training_curves(sub, path, title=title)


# ------------------------------------------------------------------ sensitivity


def plot_sensitivity(sweep: pd.DataFrame, knob: str, path: str | Path, *, metric: str = "mAP",
                     default: float | None = None) -> Path:
    """Draw :func:`sensitivity_figure` and save it to ``path``."""
    return save_figure(sensitivity_figure(sweep, knob, metric=metric, default=default), path)


def sensitivity_figure(sweep: pd.DataFrame, knob: str, *, metric: str = "mAP",
                       default: float | None = None) -> Figure:
    """One knob of a sensitivity sweep: value (categorical axis) vs ``metric`` in %, mean ± std, seeds as dots.

    ``sweep`` has columns ``knob``, ``value``, ``seed`` and ``metric``; ``default`` (the recipe's
    value of the knob) is marked on the axis.
    """
    sub = sweep[sweep["knob"] == knob].copy()
    sub["value"] = sub["value"].astype(float)
    values = sorted(sub["value"].unique())
    pos = {v: i for i, v in enumerate(values)}
    stats = sub.groupby("value")[metric].agg(["mean", "std", "count"]).reindex(values)
    color = variant_color("hcm")
    with figure_style():
        fig = Figure(figsize=(4.6, 3.4))
        ax = fig.add_subplot()
        x = np.arange(len(values))
        ax.errorbar(x, stats["mean"], yerr=stats["std"].fillna(0.0), color=color, marker="o", markersize=6,
                    capsize=4, linewidth=1.8, label="mean ± std")
        rng = np.random.default_rng(0)  # fixed jitter: the same data gives the same figure
        jitter = rng.uniform(-0.06, 0.06, size=len(sub))
        ax.scatter(sub["value"].map(pos) + jitter, sub[metric], s=14, color="#222222", alpha=0.7, zorder=3,
                   label="seeds")
        labels = [_fmt_knob_value(v) for v in values]
        if default is not None and any(math.isclose(default, v) for v in values):
            k = next(i for i, v in enumerate(values) if math.isclose(default, v))
            labels[k] = f"{labels[k]}\n(default)"
            ax.axvspan(k - 0.35, k + 0.35, color="0.85", alpha=0.6, zorder=0, linewidth=0)
        ax.set_xticks(x, labels)
        ax.set_xlabel(knob_label(knob))
        ax.set_ylabel(f"{metric} (%)")
        lo, hi = float(np.nanmin(sub[metric])), float(np.nanmax(sub[metric]))
        pad = max(1.0, 0.15 * (hi - lo))
        ax.set_ylim(max(0.0, lo - pad), min(100.0, hi + pad))
        n = int(sub["seed"].nunique())
        dataset = ", ".join(dataset_label(d) for d in sub["dataset"].unique()) if "dataset" in sub else ""
        ax.set_title(f"{dataset}: sensitivity to {knob_label(knob)} ({n} seed{'s' if n != 1 else ''})", fontsize=10)
        ax.legend(loc="best", frameon=True)
        fig.tight_layout()
        return fig


def _fmt_knob_value(v: float) -> str:
    return f"{int(v)}" if float(v).is_integer() else f"{v:g}"
