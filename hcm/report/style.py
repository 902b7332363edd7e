"""Names, colours and matplotlib style shared by every table and figure.

One variant keeps one colour, marker and label in every figure and table: they come
from its definition in :mod:`hcm.variants` (the Okabe-Ito palette for the built-in
variants; reference rows in black and grey with dashed and dotted lines). A variant
no registry knows (an old run directory) gets its name as label and a spare colour.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

from hcm.variants import get_variant, ordered_variants

#: colours of variants that do not name their own (unregistered variants found in old run directories)
OTHER_COLORS: tuple[str, ...] = ("#56B4E9", "#F0E442", "#882255", "#44AA99")


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
    "loss.terms.identity.gamma": "dynamic-factor hardness γ",
    "loss.terms.image.weight": "image-loss weight λ",
    "loss.terms.identity.tau": "identity temperature τ",
    "loss.terms.image.tau_v": "image temperature τ_v",
    "loss.terms.image.n_neg": "hard negatives n_neg",
    "memory.identity.momentum": "identity-memory momentum m_c",
    "memory.image.momentum": "image-memory momentum m_v",
}


def variant_label(variant: str) -> str:
    v = get_variant(variant)
    return v.label if v else variant


def _dataset_spec(dataset: str):  # noqa: ANN202  (a DatasetSpec or None)
    from hcm.data.registry import DATASETS

    return DATASETS.get(dataset) if dataset in DATASETS else None


def dataset_label(dataset: str) -> str:
    """The dataset's display label (its spec's ``label``), or its name."""
    spec = _dataset_spec(dataset)
    return spec.display_name if spec else dataset


def knob_label(knob: str) -> str:
    """Axis label of a sweep knob; flat aliases (``loss.gamma``) and their config keys label alike."""
    from hcm.config import canonical_key

    return KNOB_LABELS.get(canonical_key(knob), knob)


def variant_color(variant: str, fallback_index: int = 0) -> str:
    """The variant's colour; unknown variants cycle through :data:`OTHER_COLORS`."""
    v = get_variant(variant)
    return v.color if v else OTHER_COLORS[fallback_index % len(OTHER_COLORS)]


def variant_linestyle(variant: str) -> str:
    v = get_variant(variant)
    return v.linestyle if v else "-"


def variant_marker(variant: str) -> str:
    v = get_variant(variant)
    return v.marker if v else "o"


def reference_variants() -> list[str]:
    """Reference rows (upper and lower bounds), in order."""
    return [v.name for v in ordered_variants("reference")]


def unsupervised_variants() -> list[str]:
    """Variants that learn without labels (method and ablation rows: eligible for "best" highlighting)."""
    return [v.name for v in ordered_variants() if v.group != "reference"]


#: the ablation study's rows (docs/method.md, "Variants"): the method first, then the ablations
ablation_variants = unsupervised_variants


def is_reference(variant: str) -> bool:
    v = get_variant(variant)
    return bool(v and v.group == "reference")


def order_variants(variants: Iterable[str]) -> list[str]:
    """Registered variants by group (method, ablation, reference) and registration, then unknown ones
    alphabetically."""
    present = set(variants)
    known = [v.name for v in ordered_variants() if v.name in present]
    return known + sorted(present - set(known))


def order_datasets(datasets: Iterable[str]) -> list[str]:
    """Registered datasets by their spec's ``order``, then unknown ones alphabetically."""
    return sorted(set(datasets), key=lambda d: (spec.order, d) if (spec := _dataset_spec(d)) else (10**9, d))


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
