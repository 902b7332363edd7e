"""Figures of the readings study (:mod:`hcm.report.study`): scores per row and the per-epoch gradient
diagnostics per row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from hcm.report.figures import save_figure
from hcm.report.paired import paired_series
from hcm.report.style import dataset_label, figure_style, order_datasets, variant_color

#: colours of study rows beyond their variant's own (rows of one variant differ by reading)
ROW_COLORS: tuple[str, ...] = ("#D55E00", "#E69F00", "#882255", "#CC6677", "#0072B2", "#CC79A7", "#44AA99",
                               "#117733", "#999933", "#332288", "#56B4E9", "#000000", "#999999", "#AA4499")


def _row_colors(rows: list[str]) -> dict[str, str]:
    return {row: ROW_COLORS[i % len(ROW_COLORS)] for i, row in enumerate(rows)}


def study_figure(runs: pd.DataFrame, *, reference: str) -> Figure:
    """One panel per dataset: each row's test mAP (filled) and validation mAP (open) per seed, with the
    means as bars; the reference row's mean test mAP as a dashed line."""
    datasets = order_datasets(runs["dataset"].unique())
    rows = list(runs["row"].unique())
    y = np.arange(len(rows))[::-1]
    pos = dict(zip(rows, y, strict=True))
    rng = np.random.default_rng(0)  # fixed jitter: the same data gives the same figure
    with figure_style():
        fig = Figure(figsize=(4.2 * len(datasets) + 1.6, 0.36 * len(rows) + 1.6))
        axes = fig.subplots(1, len(datasets), sharey=True, squeeze=False)[0]
        for ax, dataset in zip(axes, datasets, strict=True):
            sub = runs[runs["dataset"] == dataset]
            for metric, offset, filled in (("mAP", 0.14, True), ("val_mAP", -0.14, False)):
                stats = sub.groupby("row", sort=False)[metric].mean()
                for row, mean in stats.items():
                    color = variant_color(str(sub[sub["row"] == row]["variant"].iloc[0]))
                    ax.plot([mean, mean], [pos[row] + offset - 0.12, pos[row] + offset + 0.12], color=color,
                            linewidth=2.4)
                pts = sub.dropna(subset=[metric])
                ys = pts["row"].map(pos) + offset + rng.uniform(-0.05, 0.05, size=len(pts))
                colors = [variant_color(str(v)) for v in pts["variant"]]
                ax.scatter(pts[metric], ys, s=16, zorder=3, c=colors if filled else "none",
                           edgecolors=colors, linewidths=1.0)
            ref = sub[sub["row"] == reference]["mAP"].mean()
            if not np.isnan(ref):
                ax.axvline(ref, color="0.4", linestyle="--", linewidth=1.0)
            ax.set_title(f"{dataset_label(dataset)}", fontsize=10)
            ax.set_xlabel("mAP (%): test ● / validation ○")
        axes[0].set_yticks(y, rows)
        fig.suptitle(f"Readings study: final checkpoint, dashed = mean test mAP of {reference}", fontsize=10)
        fig.tight_layout()
        return fig


def readings_figure(runs: pd.DataFrame, readings: list[str], controls: dict[str, str], *,
                    reference: str) -> Figure:
    """The study's question as a picture: per dataset (columns) and split (rows of panels: test, validation),
    each reading's paired per-seed difference to ``reference`` (the factor and L_id's scale together) and
    to its own scale control (the reweighting alone), seeds as dots and the mean as a bar; 0 = no effect."""
    datasets = order_datasets(runs["dataset"].unique())
    if not readings:
        with figure_style():
            fig = Figure(figsize=(6.0, 1.6))
            ax = fig.subplots()
            ax.axis("off")
            ax.text(0.5, 0.5, "No reading has a scale control in this study (rows with scale_from)",
                    ha="center", va="center")
            return fig
    y = np.arange(len(readings))[::-1]
    pos = dict(zip(readings, y, strict=True))
    comparisons = ((reference, f"− {reference} (factor + L_id scale)", "#0072B2", 0.16, "o"),
                   (None, "− its scale control (factor alone)", "#D55E00", -0.16, "D"))
    splits = (("mAP", "test mAP"), ("val_mAP", "validation mAP"))
    with figure_style():
        fig = Figure(figsize=(4.0 * len(datasets) + 2.2, 0.55 * len(readings) * len(splits) + 2.2))
        axes = fig.subplots(len(splits), len(datasets), sharey=True, squeeze=False)
        for i, (metric, split_label) in enumerate(splits):
            for j, dataset in enumerate(datasets):
                ax = axes[i][j]
                ax.axvline(0.0, color="0.3", linewidth=1.0)
                for other, label, color, offset, marker in comparisons:
                    for row in readings:
                        diff = paired_series(runs, dataset, row, other or controls[row], metric)
                        if diff.empty:
                            continue
                        ys = np.full(len(diff), pos[row] + offset)
                        ax.scatter(diff.values, ys, s=22, color=color, marker=marker, alpha=0.75, zorder=3,
                                   label=label if row == readings[0] else None)
                        mean = float(diff.mean())
                        ax.plot([mean, mean], [pos[row] + offset - 0.13, pos[row] + offset + 0.13], color=color,
                                linewidth=2.6, zorder=4)
                if i == 0:
                    ax.set_title(dataset_label(dataset), fontsize=10)
                ax.set_xlabel(f"Δ {split_label} (points), paired per seed")
        for ax in axes[:, 0]:
            ax.set_yticks(y, readings)
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=2, frameon=False, bbox_to_anchor=(0.5, 0.0))
        fig.suptitle("Readings of the dynamic factor: dots = seeds, bar = mean; right of 0 = the reading helps",
                     fontsize=10)
        fig.tight_layout(rect=(0, 0.06, 1, 1))
        return fig


def plot_readings(runs: pd.DataFrame, readings: list[str], controls: dict[str, str], path: str | Path, *,
                  reference: str) -> Path:
    return save_figure(readings_figure(runs, readings, controls, reference=reference), path)


def plot_study(runs: pd.DataFrame, path: str | Path, *, reference: str) -> Path:
    return save_figure(study_figure(runs, reference=reference), path)


def diagnostics_figure(per_epoch: pd.DataFrame, dashed: frozenset[str] = frozenset()) -> Figure:
    """Per dataset (columns): L_id's share of the gradient norm w.r.t. q and its effective gradient
    scale times its weight per epoch (rows of panels), one line per study row (mean over seeds);
    the rows in ``dashed`` (the scale controls) drawn dashed, so a reading and its control that
    coincide stay both visible."""
    datasets = order_datasets(per_epoch["dataset"].unique())
    rows = list(per_epoch["row"].unique())
    colors = _row_colors(rows)
    panels = (("gshare_identity", "L_id share of ‖∇_q L‖"),
              ("id_scale_weighted", "L_id gradient vs ClusterNCE\n(effective scale × weight)"))
    with figure_style():
        fig = Figure(figsize=(4.4 * max(1, len(datasets)) + 2.4, 6.0))
        axes = fig.subplots(len(panels), max(1, len(datasets)), sharex=True, squeeze=False)
        for j, dataset in enumerate(datasets):
            sub = per_epoch[per_epoch["dataset"] == dataset]
            for i, (col, label) in enumerate(panels):
                ax = axes[i][j]
                for row in rows:
                    r = sub[sub["row"] == row].groupby("epoch")[col].mean().dropna()
                    if len(r):
                        ax.plot(r.index, r.values, marker="o", markersize=3, color=colors[row], label=row,
                                linestyle="--" if row in dashed else "-")
                if i == 0:
                    ax.set_title(dataset_label(dataset), fontsize=10)
                if j == 0:
                    ax.set_ylabel(label)
                if i == len(panels) - 1:
                    ax.set_xlabel("epoch")
                    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        handles, labels = axes[0][0].get_legend_handles_labels()
        for ax in axes.flat:  # a row missing from the first panel still gets a legend entry
            for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        if handles:
            fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
        fig.tight_layout()
        return fig


def plot_study_diagnostics(per_epoch: pd.DataFrame, path: str | Path, dashed: frozenset[str] = frozenset()) -> Path:
    return save_figure(diagnostics_figure(per_epoch, dashed), path)
