"""Names, colours and matplotlib style shared by every table and figure.

One variant keeps one colour and one label in every figure and table. Colours come
from the Okabe-Ito palette (Okabe & Ito 2008), which stays distinguishable under the
common forms of colour-vision deficiency; reference rows (supervised, untrained) are
drawn in black and grey with dashed and dotted lines.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

#: variants in the order rows and legends show them (method variants, then reference rows)
VARIANT_ORDER: tuple[str, ...] = (
    "hcm", "no_dynamic", "identity_only", "image_only", "baseline", "supervised", "untrained",
)
#: variants that learn without labels (the rows eligible for "best" highlighting)
UNSUPERVISED_VARIANTS: tuple[str, ...] = ("hcm", "no_dynamic", "identity_only", "image_only", "baseline")
#: reference rows: upper and lower bound
REFERENCE_VARIANTS: tuple[str, ...] = ("supervised", "untrained")
#: variants of the ablation study (docs/method.md, "Variants"), HCM first
ABLATION_VARIANTS: tuple[str, ...] = ("hcm", "no_dynamic", "identity_only", "image_only", "baseline")

VARIANT_LABELS: dict[str, str] = {
    "hcm": "HCM (full)",
    "no_dynamic": "HCM w/o dynamic factor",
    "identity_only": "Identity level only",
    "image_only": "Image level only",
    "baseline": "Baseline (Cluster Contrast)",
    "supervised": "Supervised (upper bound)",
    "untrained": "No adaptation (lower bound)",
}

#: which loss terms each ablation variant uses: (L_id, dynamic factor, L_img); mirrors hcm.config.VARIANTS
VARIANT_COMPONENTS: dict[str, tuple[bool, bool, bool]] = {
    "hcm": (True, True, True),
    "no_dynamic": (True, False, True),
    "identity_only": (True, True, False),
    "image_only": (False, False, True),
    "baseline": (True, False, False),
}

# Okabe-Ito palette
VARIANT_COLORS: dict[str, str] = {
    "hcm": "#D55E00",            # vermillion
    "no_dynamic": "#CC79A7",     # reddish purple
    "identity_only": "#E69F00",  # orange
    "image_only": "#009E73",     # bluish green
    "baseline": "#0072B2",       # blue
    "supervised": "#000000",     # black
    "untrained": "#999999",      # grey
}
OTHER_COLORS: tuple[str, ...] = ("#56B4E9", "#F0E442", "#882255", "#44AA99")
VARIANT_LINESTYLES: dict[str, str] = {"supervised": "--", "untrained": ":"}
VARIANT_MARKERS: dict[str, str] = {
    "hcm": "o", "no_dynamic": "s", "identity_only": "^", "image_only": "v", "baseline": "D",
    "supervised": "P", "untrained": "X",
}

DATASET_LABELS: dict[str, str] = {
    "market1501": "Market-1501",
    "dukemtmcreid": "DukeMTMC-reID",
    "msmt17": "MSMT17",
    "veri776": "VeRi-776",
    "synth-market": "Synth-Market",
    "synth-duke": "Synth-Duke",
    "synth-msmt17": "Synth-MSMT17",
    "synth-veri": "Synth-VeRi",
    "synth-pretrain": "Synth-Pretrain",
}
#: the order datasets appear in when several are shown
DATASET_ORDER: tuple[str, ...] = (
    "market1501", "dukemtmcreid", "msmt17", "veri776",
    "synth-market", "synth-duke", "synth-msmt17", "synth-veri",
)

#: metric column -> label used in tables and on axes
METRIC_LABELS: dict[str, str] = {
    "mAP": "mAP", "mINP": "mINP", "rank1": "R1", "rank5": "R5", "rank10": "R10",
}
#: the metrics of results.csv, in order (percent)
RESULT_METRICS: tuple[str, ...] = ("mAP", "mINP", "rank1", "rank5", "rank10")
#: the metrics of the main and published tables
TABLE_METRICS: tuple[str, ...] = ("mAP", "rank1", "rank5", "rank10")

DPI = 150

#: axis labels of the knobs a sensitivity sweep varies (config key -> label)
KNOB_LABELS: dict[str, str] = {
    "cluster.eps": "DBSCAN eps",
    "cluster.min_samples": "DBSCAN min_samples",
    "cluster.k1": "Jaccard k1",
    "loss.gamma": "dynamic-factor exponent γ",
    "loss.lambda_img": "image-loss weight λ",
    "loss.tau": "identity temperature τ",
    "loss.tau_v": "image temperature τ_v",
    "loss.n_neg": "hard negatives n_neg",
    "memory.momentum_identity": "identity-memory momentum m_c",
    "memory.momentum_image": "image-memory momentum m_v",
}


def variant_label(variant: str) -> str:
    return VARIANT_LABELS.get(variant, variant)


def dataset_label(dataset: str) -> str:
    return DATASET_LABELS.get(dataset, dataset)


def knob_label(knob: str) -> str:
    return KNOB_LABELS.get(knob, knob)


def variant_color(variant: str, fallback_index: int = 0) -> str:
    """The variant's colour; unknown variants cycle through the remaining palette colours."""
    return VARIANT_COLORS.get(variant, OTHER_COLORS[fallback_index % len(OTHER_COLORS)])


def order_variants(variants: Iterable[str]) -> list[str]:
    """Known variants in :data:`VARIANT_ORDER`, then unknown ones alphabetically."""
    present = set(variants)
    known = [v for v in VARIANT_ORDER if v in present]
    return known + sorted(present - set(VARIANT_ORDER))


def order_datasets(datasets: Iterable[str]) -> list[str]:
    present = set(datasets)
    known = [d for d in DATASET_ORDER if d in present]
    return known + sorted(present - set(DATASET_ORDER))


@contextlib.contextmanager
def figure_style() -> Iterator[None]:
    """Readable fonts and a light grid for every report figure (scoped: restored on exit)."""
    import matplotlib
    import seaborn as sns

    rc = {
        **sns.axes_style("whitegrid"),
        **sns.plotting_context("notebook", font_scale=0.95),
        "figure.dpi": DPI, "savefig.dpi": DPI, "savefig.bbox": "tight",
        "axes.spines.top": False, "axes.spines.right": False,
        "legend.fontsize": 9, "legend.title_fontsize": 9,
        "lines.linewidth": 1.8, "svg.fonttype": "none",
    }
    with matplotlib.rc_context(rc):
        yield
