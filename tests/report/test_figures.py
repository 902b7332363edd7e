"""Figures: the plotted data equals the tables' numbers, colours stay fixed per variant, files are stable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from PIL import Image

from hcm.report.aggregate import aggregate
from hcm.report.figures import (
    ablation_figure,
    cmc_figure,
    plot_cmc,
    plot_cmc_dataset,
    plot_sensitivity,
    save_figure,
    sensitivity_figure,
    training_figure,
)
from hcm.report.style import variant_color, variant_label
from tests.report.runfactory import write_suite


@pytest.fixture(scope="module")
def agg(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("runs")
    dirs = write_suite(root, ["synth-market", "synth-duke"], ["hcm", "baseline", "image_only", "untrained"], [0, 1])
    return aggregate(dirs)


def test_cmc_lines_are_seed_means_in_percent(agg) -> None:
    sub = agg.cmc[(agg.cmc["dataset"] == "synth-market") & (agg.cmc["variant"] == "hcm")]
    curves = sub.pivot(index="seed", columns="rank", values="cmc").to_numpy()
    fig = cmc_figure({"hcm": curves}, fractions=False, max_rank=20)
    (line,) = fig.axes[0].get_lines()
    np.testing.assert_allclose(line.get_ydata(), curves[:, :20].mean(axis=0))
    np.testing.assert_array_equal(line.get_xdata(), np.arange(1, 21))
    assert to_hex(line.get_color()) == variant_color("hcm").lower()
    assert fig.axes[0].get_ylabel() == "Matching rate (%)"
    assert "R1" in fig.axes[0].get_legend().get_texts()[0].get_text()


def test_plot_cmc_as_called_by_evaluate(tmp_path: Path) -> None:
    """`hcm evaluate` passes {label: metrics['cmc']} with fractions; the file is a 150-dpi PNG."""
    cmc = list(np.linspace(0.5, 1.0, 50))
    path = plot_cmc({"hcm (seed 0)": cmc}, tmp_path / "cmc.png", title="synth-market: CMC")
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.info["dpi"] == pytest.approx((150, 150), abs=1)
    line = cmc_figure({"hcm (seed 0)": cmc}).axes[0].get_lines()[0]
    assert line.get_ydata()[0] == pytest.approx(50.0)  # fractions shown in percent


def test_figures_are_byte_stable(agg, tmp_path: Path) -> None:
    a = plot_cmc_dataset(agg.cmc, "synth-market", tmp_path / "a.png")
    b = plot_cmc_dataset(agg.cmc, "synth-market", tmp_path / "b.png")
    assert a.read_bytes() == b.read_bytes()
    # the seed dots of the ablation figure are not jittered from numpy's global RNG
    c = save_figure(ablation_figure(agg.results), tmp_path / "c.png")
    d = save_figure(ablation_figure(agg.results), tmp_path / "d.png")
    assert c.read_bytes() == d.read_bytes()


def test_ablation_bars_colours_and_heights(agg) -> None:
    fig = ablation_figure(agg.results)
    ax = fig.axes[0]
    bars = [p for p in ax.patches if p.get_height() > 0]
    variants = ["hcm", "image_only", "baseline"]  # ablation order; untrained is not an ablation
    assert len(bars) == len(variants) * 2  # x 2 datasets
    expected = agg.results.groupby(["variant", "dataset"])["mAP"].mean()
    colours = {to_hex(b.get_facecolor()) for b in bars}
    assert colours == {variant_color(v).lower() for v in variants}
    heights = sorted(round(b.get_height(), 6) for b in bars)
    assert heights == sorted(round(expected[(v, d)], 6) for v in variants for d in ["synth-market", "synth-duke"])
    assert ax.get_ylabel() == "mAP (%)" and fig.axes[1].get_ylabel() == "Rank-1 (%)"
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[: len(variants)] == [variant_label(v) for v in variants]  # then the reference lines


def test_training_curves_panels(agg) -> None:
    curves = agg.curves[agg.curves["dataset"] == "synth-market"]
    fig = training_figure(curves)
    axes = {ax.get_ylabel(): ax for ax in fig.axes if ax.get_visible()}
    loss = axes["total loss"]
    hcm_line = next(line for line in loss.get_lines() if to_hex(line.get_color()) == variant_color("hcm").lower())
    expected = curves[curves["variant"] == "hcm"].groupby("epoch")["loss"].mean()
    np.testing.assert_allclose(hcm_line.get_ydata(), expected.to_numpy())
    # L_img is not recorded for the baseline: no baseline line in that panel
    img_colours = {to_hex(line.get_color()) for line in axes["image loss $L_{img}$"].get_lines()}
    assert variant_color("baseline").lower() not in img_colours
    # test mAP (fractions in epochs.csv) is shown in percent
    tm = axes["test mAP (%)"].get_lines()[0].get_ydata()
    assert tm.max() > 1.0


def test_sensitivity_marks_default_and_plots_means(tmp_path: Path) -> None:
    sweep = pd.DataFrame({
        "dataset": "synth-market", "knob": "loss.gamma",
        "value": [0.0, 0.0, 2.0, 2.0, 4.0, 4.0], "seed": [0, 1] * 3,
        "mAP": [50.0, 52.0, 60.0, 61.0, 55.0, 55.0],
    })
    fig = sensitivity_figure(sweep, "loss.gamma", default=2.0)
    ax = fig.axes[0]
    means = np.asarray(ax.get_lines()[0].get_ydata(), dtype=float)
    np.testing.assert_allclose(means, [51.0, 60.5, 55.0])
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == ["0", "2\n(default)", "4"]
    assert ax.get_ylabel() == "mAP (%)"
    assert plot_sensitivity(sweep, "loss.gamma", tmp_path / "s.png").is_file()


def test_ablation_figure_without_ablation_variants(agg) -> None:
    only_reference = agg.results[agg.results["variant"] == "untrained"]
    fig = ablation_figure(only_reference)
    assert [t.get_text() for t in fig.axes[0].texts] == ["no ablation variant in this suite"]


def test_ablation_reference_lines_sit_at_the_reference_means(agg) -> None:
    """untrained / supervised means are drawn across each dataset's bars and named in the legend."""
    from hcm.report.style import dataset_label, reference_variants

    results = agg.results
    present = [v for v in reference_variants() if v in set(results["variant"])]
    assert present  # the fixture has at least the untrained row
    fig = ablation_figure(results)
    ax = fig.axes[0]
    datasets = [t.get_text() for t in ax.get_xticklabels()]
    lines = [c for c in ax.collections if c.get_label().startswith("_") and c.get_label()[1:] in present]
    for variant in present:
        segs = [seg for c in lines if c.get_label() == f"_{variant}" for seg in c.get_segments()]
        means = results[results["variant"] == variant].groupby("dataset")["mAP"].mean()
        assert len(segs) == len(means)
        by_label = {dataset_label(d): d for d in means.index}
        for seg in segs:
            (x0, y0), (x1, y1) = seg
            dataset = by_label[datasets[round((x0 + x1) / 2)]]  # the group the line is centred on
            assert x1 - x0 == pytest.approx(0.9)
            assert y0 == y1 == pytest.approx(means[dataset])
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[-len(present):] == [variant_label(v) for v in present]
