"""Variants: one definition each (name, config overlay, label, colour, marker, group, loss components).

Everything that lists variants is derived from :data:`VARIANTS`: the config's choice of
``variant``, the workflow's check of a suite's variants, the report's labels, colours,
markers and row order, and the ablation table's columns (:data:`COMPONENTS`, in
registration order). A user adds a variant from their own module::

    from hcm.variants import Variant, register_variant
    register_variant(Variant("my_ablation", overlay={"loss": {"terms": {"image": None}}},
                             label="HCM w/o L_img", color="#56B4E9", marker="h",
                             group="ablation", components=("identity", "dynamic")))

and lists the module under ``plugins:`` in the recipe (or in an ``hcm.plugins`` entry
point); see docs/extending.md. This module imports nothing heavy (no torch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from hcm.registry import Registry

Group = Literal["method", "ablation", "reference"]

#: HCM's reading of the dynamic factor (``loss.terms.identity.factor``) in the variants that use one
#: (``hcm``, ``identity_only``, ``supervised``) and the identity term's default. Chosen on the
#: validation split by the readings study (docs/method.md, "Which reading is the default";
#: reports/study/): ``hard_negatives``, runner-up ``focal_raw``; ``focal`` until then.
DEFAULT_FACTOR = "hard_negatives"
#: row order of the groups in tables and legends
GROUP_ORDER: tuple[str, ...] = ("method", "ablation", "reference")


@dataclass(frozen=True)
class Component:
    """A column of the ablation table: a loss component a variant uses or not."""

    key: str
    label: str   # header of the ablation table (Markdown)
    column: str  # boolean column of ablation.csv
    description: str = ""  # for the table's caption
    latex: str = ""  # LaTeX header (default: the label, escaped)


@dataclass(frozen=True)
class Variant:
    """One variant: the config overlay it applies to a recipe and how reports show it.

    ``overlay`` is merged over the recipe before ``--set`` overrides. ``group``:
    ``method`` and ``ablation`` rows learn without labels (ablation-table rows, eligible
    for "best"); ``reference`` rows are bounds (never bold, drawn as lines).
    ``components``: keys of :data:`COMPONENTS` the variant uses (its ablation-table ticks).
    """

    name: str
    overlay: dict[str, Any]
    label: str
    color: str
    marker: str = "o"
    group: Group = "ablation"
    components: tuple[str, ...] = ()
    linestyle: str = "-"
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.group not in GROUP_ORDER:
            raise ValueError(f"variant {self.name!r}: group {self.group!r} is not one of {', '.join(GROUP_ORDER)}")


VARIANTS: Registry[Variant] = Registry("variant")
COMPONENTS: Registry[Component] = Registry("loss component")


def register_variant(variant: Variant) -> Variant:
    """Register ``variant``; its components must be registered first."""
    for key in variant.components:
        COMPONENTS.get(key)
    return VARIANTS.register(variant.name)(variant)


def register_component(component: Component) -> Component:
    return COMPONENTS.register(component.key)(component)


def get_variant(name: str) -> Variant | None:
    """The registered variant ``name``, or None (reports show unknown variants with defaults)."""
    return VARIANTS.get(name) if name in VARIANTS else None


def ordered_variants(group: str | None = None) -> list[Variant]:
    """Registered variants by group (method, ablation, reference), then registration order."""
    items = [v for v in VARIANTS.values() if group is None or v.group == group]
    return sorted(items, key=lambda v: GROUP_ORDER.index(v.group))


def components_of(variants: list[str]) -> list[Component]:
    """The components used by any of ``variants``, in registration order (the ablation table's columns)."""
    used = {key for name in variants if (v := get_variant(name)) for key in v.components}
    return [c for c in COMPONENTS.values() if c.key in used]


for _component in (
    Component("identity", "L_id", "identity_loss", "identity-level contrast", r"$L_\mathrm{id}$"),
    Component("dynamic", "δ", "dynamic_factor", "dynamic factor", r"$\delta$"),
    Component("image", "L_img", "image_loss", "image-level sample constraint", r"$L_\mathrm{img}$"),
):
    register_component(_component)

# Okabe-Ito palette (Okabe & Ito 2008): distinguishable under common colour-vision deficiencies;
# reference rows in black and grey with dashed and dotted lines.
for _variant in (
    Variant("hcm", {"labels": "pseudo", "adapt": True,
                    "loss": {"terms": {"identity": {"factor": DEFAULT_FACTOR}, "image": {}}}},
            label="HCM (full)", color="#D55E00", marker="o", group="method",
            components=("identity", "dynamic", "image")),
    Variant("no_dynamic", {"labels": "pseudo", "adapt": True,
                           "loss": {"terms": {"identity": {"factor": "none"}, "image": {}}}},
            label="HCM w/o dynamic factor", color="#CC79A7", marker="s", components=("identity", "image")),
    Variant("identity_only", {"labels": "pseudo", "adapt": True,
                              "loss": {"terms": {"identity": {"factor": DEFAULT_FACTOR}, "image": None}}},
            label="Identity level only", color="#E69F00", marker="^", components=("identity", "dynamic")),
    Variant("image_only", {"labels": "pseudo", "adapt": True, "loss": {"terms": {"identity": None, "image": {}}}},
            label="Image level only", color="#009E73", marker="v", components=("image",)),
    Variant("baseline", {"labels": "pseudo", "adapt": True,
                         "loss": {"terms": {"identity": {"factor": "none"}, "image": None}}},
            label="Baseline (Cluster Contrast)", color="#0072B2", marker="D", components=("identity",)),
    Variant("supervised", {"labels": "true", "adapt": True,
                           "loss": {"terms": {"identity": {"factor": DEFAULT_FACTOR}, "image": {}}}},
            label="Supervised (upper bound)", color="#000000", marker="P", group="reference", linestyle="--",
            components=("identity", "dynamic", "image")),
    Variant("untrained", {"labels": "pseudo", "adapt": False},
            label="No adaptation (lower bound)", color="#999999", marker="X", group="reference", linestyle=":"),
):
    register_variant(_variant)
