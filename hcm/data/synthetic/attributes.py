"""Identities as combinations of discrete attributes; near-duplicate pairs; the source/target split.

A person is a dict ``attribute -> value`` over ``PERSON_KEYS``; a vehicle over
``VEHICLE_KEYS``. Values are palette/table indices; an item with a colour is one
attribute ``(type, colour)`` with colour -1 when the item is absent (no hat), so
"differs in exactly one attribute" is a statement about visible things.

Every attribute combination belongs to one of two halves, decided by a CRC-32 of its
canonical form: the *source* half (about 1/``SOURCE_MODULUS`` of all combinations)
is used only by the pretraining set ``synth-pretrain``, the *target* half by the
benchmark presets. Pretraining identities are therefore disjoint from every preset's
identities by construction, whatever the seeds.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hcm.data.synthetic import palettes
from hcm.data.synthetic.spec import (
    BAG_TYPES,
    BODY_TYPES,
    BOTTOM_TYPES,
    HAT_TYPES,
    PATTERNS,
    STRIPE_TYPES,
    SynthSpec,
)
from hcm.errors import ConfigError

Value = int | tuple[int, int]
Attrs = dict[str, Value]

SOURCE_MODULUS = 4

PERSON_KEYS: tuple[str, ...] = (
    "skin", "hair", "hat", "top", "pattern", "sleeves", "bottom", "bottom_colour", "shoes", "bag",
    "build", "legs",
)
VEHICLE_KEYS: tuple[str, ...] = ("body", "colour", "stripes", "roof_rack", "tint", "wheels", "bumper", "lights")

#: how often each attribute is the one changed in a near-duplicate pair
PERSON_MUTATION_WEIGHTS: dict[str, float] = {
    "top": 3.0, "bottom_colour": 2.0, "pattern": 2.0, "bag": 2.0, "hat": 1.5, "shoes": 1.0,
    "hair": 1.0, "sleeves": 1.0, "bottom": 1.0, "build": 0.5, "skin": 0.5, "legs": 0.3,
}
VEHICLE_MUTATION_WEIGHTS: dict[str, float] = {
    "colour": 2.0, "stripes": 1.5, "roof_rack": 1.0, "tint": 1.0, "wheels": 1.0, "bumper": 1.0,
    "lights": 0.7, "body": 0.5,
}

_BOTTOM_WEIGHTS = {"trousers": 0.65, "shorts": 0.2, "skirt": 0.15}
_BODY_WEIGHTS = {"sedan": 0.4, "suv": 0.25, "truck": 0.1, "bus": 0.1, "van": 0.15}
_HAIR_STYLE_P = (0.55, 0.3, 0.15)  # short, long, cropped
#: probability that a near-duplicate's changed main colour is one of the 3 closest colours
CLOSE_COLOUR_P = 0.6


@dataclass(frozen=True)
class Identity:
    """One synthetic identity. ``key`` seeds its images; ``twin`` is the key of its near-duplicate."""

    key: int
    kind: str
    attrs: Attrs
    group: str  # train | test | gallery_only | distractor
    twin: int = -1
    changed: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key, "kind": self.kind, "group": self.group, "twin": self.twin,
            "changed": self.changed, "attrs": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.attrs.items()},
        }


# ------------------------------------------------------------------ canonical form and halves

def canonical(kind: str, attrs: Attrs) -> str:
    """A stable string naming the attribute combination."""
    items = [[k, list(v) if isinstance(v, tuple) else int(v)] for k, v in sorted(attrs.items())]
    return json.dumps([kind, items], separators=(",", ":"))


def pool_of(kind: str, attrs: Attrs) -> str:
    """``"source"`` (pretraining only) or ``"target"`` (benchmark presets) half of the combination space."""
    return "source" if zlib.crc32(canonical(kind, attrs).encode()) % SOURCE_MODULUS == 0 else "target"


def differing_keys(a: Attrs, b: Attrs) -> list[str]:
    return sorted(k for k in a if a[k] != b[k])


# ------------------------------------------------------------------ samplers, one per attribute

def _choice(rng: np.random.Generator, p: np.ndarray) -> int:
    return int(rng.choice(len(p), p=p))


def _item(rng: np.random.Generator, allowed: tuple[str, ...], universe: tuple[str, ...], prob: float,
          colour: Callable[[], int]) -> tuple[int, int]:
    """An optional item ``(type index in universe, colour)``; ``(0, -1)`` when absent.

    ``universe[0]`` is the absent value ("none", or "plain" for patterns).
    """
    absent = universe[0]
    present = [t for t in allowed if t != absent]
    if not present or (absent in allowed and rng.random() >= prob):
        return (0, -1)
    return (universe.index(present[int(rng.integers(len(present)))]), colour())


def _weighted(names: tuple[str, ...], table: dict[str, float]) -> np.ndarray:
    w = np.array([table[n] for n in names], dtype=np.float64)
    return w / w.sum()


def _person_sampler(spec: SynthSpec) -> dict[str, Callable[[np.random.Generator, Attrs], Value]]:
    cw = palettes.weights(palettes.CLOTHING, spec.palette_size, spec.colour_skew)
    hw = np.array(palettes.HAIR_WEIGHTS[: spec.hair_colours]) ** spec.colour_skew
    sw = np.array(palettes.SHOE_WEIGHTS[: spec.shoe_colours]) ** spec.colour_skew
    hw, sw = hw / hw.sum(), sw / sw.sum()
    bw = _weighted(spec.bottom_types, _BOTTOM_WEIGHTS)

    def colour(rng: np.random.Generator) -> int:
        return _choice(rng, cw)

    def other_colour(rng: np.random.Generator, avoid: int) -> int:
        p = cw.copy()
        if 0 <= avoid < len(p) and p.sum() > p[avoid]:
            p[avoid] = 0.0
        return _choice(rng, p / p.sum())

    return {
        "skin": lambda rng, a: int(rng.integers(spec.skin_tones)),
        "hair": lambda rng, a: (_choice(rng, np.array(_HAIR_STYLE_P)), _choice(rng, hw)),
        "hat": lambda rng, a: _item(rng, spec.hat_types, HAT_TYPES, spec.hat_prob, lambda: colour(rng)),
        "top": lambda rng, a: colour(rng),
        "pattern": lambda rng, a: _item(rng, spec.patterns, PATTERNS, spec.pattern_prob,
                                        lambda: other_colour(rng, int(a.get("top", -1)))),
        "sleeves": lambda rng, a: int(rng.random() < 0.35),
        "bottom": lambda rng, a: BOTTOM_TYPES.index(spec.bottom_types[_choice(rng, bw)]),
        "bottom_colour": lambda rng, a: colour(rng),
        "shoes": lambda rng, a: _choice(rng, sw),
        "bag": lambda rng, a: _item(rng, spec.bag_types, BAG_TYPES, spec.bag_prob, lambda: colour(rng)),
        "build": lambda rng, a: int(rng.integers(spec.builds)),
        "legs": lambda rng, a: int(rng.integers(spec.leg_lengths)),
    }


def _vehicle_sampler(spec: SynthSpec) -> dict[str, Callable[[np.random.Generator, Attrs], Value]]:
    vw = palettes.weights(palettes.VEHICLE, spec.vehicle_palette_size, spec.colour_skew)
    bw = _weighted(spec.body_types, _BODY_WEIGHTS)

    def stripe(rng: np.random.Generator, a: Attrs) -> tuple[int, int]:
        if rng.random() >= spec.stripe_prob:
            return (0, -1)
        p = vw.copy()
        body = int(a.get("colour", -1))
        if 0 <= body < len(p):
            p[body] = 0.0
        return (1 + int(rng.integers(len(STRIPE_TYPES) - 1)), _choice(rng, p / p.sum()))

    return {
        "body": lambda rng, a: BODY_TYPES.index(spec.body_types[_choice(rng, bw)]),
        "colour": lambda rng, a: _choice(rng, vw),
        "stripes": stripe,
        "roof_rack": lambda rng, a: int(rng.random() < 0.2),
        "tint": lambda rng, a: int(rng.integers(3)),
        "wheels": lambda rng, a: int(rng.integers(3)),
        "bumper": lambda rng, a: int(rng.random() < 0.4),
        "lights": lambda rng, a: int(rng.integers(2)),
    }


def _valid(kind: str, a: Attrs) -> bool:
    """No invisible attribute: a pattern/stripe never has the colour of what it is drawn on."""
    if kind == "person":
        return a["pattern"][1] != a["top"]  # type: ignore[index]
    return a["stripes"][1] != a["colour"]  # type: ignore[index]


def _nearest(palette: tuple[tuple[str, tuple[int, int, int], float], ...], size: int, k: int = 3) -> list[list[int]]:
    """For each of the first ``size`` colours, the ``k`` closest others (RGB distance)."""
    rgb = np.array([c[1] for c in palette[:size]], dtype=np.float64)
    d = ((rgb[:, None, :] - rgb[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return [list(map(int, np.argsort(row, kind="stable")[: min(k, size - 1)])) for row in d]


class AttributeSampler:
    """Draws attribute combinations of one kind for one spec."""

    def __init__(self, spec: SynthSpec, kind: str) -> None:
        self.spec = spec
        self.kind = kind
        if kind == "person":
            self.keys, self.samplers, self.mutation = PERSON_KEYS, _person_sampler(spec), PERSON_MUTATION_WEIGHTS
        elif kind == "vehicle":
            self.keys, self.samplers, self.mutation = VEHICLE_KEYS, _vehicle_sampler(spec), VEHICLE_MUTATION_WEIGHTS
        else:
            raise ValueError(f"unknown identity kind {kind!r}")
        if kind == "person":
            near = _nearest(palettes.CLOTHING, spec.palette_size)
            self.close_colours = {"top": near, "bottom_colour": near}
        else:
            self.close_colours = {"colour": _nearest(palettes.VEHICLE, spec.vehicle_palette_size)}

    def sample(self, rng: np.random.Generator) -> Attrs:
        while True:
            a: Attrs = {}
            for k in self.keys:
                a[k] = self.samplers[k](rng, a)
            if _valid(self.kind, a):
                return a

    def mutate(self, rng: np.random.Generator, base: Attrs, tries: int = 50) -> tuple[Attrs, str] | None:
        """``base`` with one attribute changed to another valid value, and that attribute's name.

        A changed main colour is, more often than not, one of the few closest palette
        colours (navy -> denim rather than navy -> yellow): the hard kind of look-alike.
        """
        names = list(self.mutation)
        p = np.array([self.mutation[n] for n in names])
        for _ in range(tries):
            key = names[_choice(rng, p / p.sum())]
            if key in self.close_colours and rng.random() < CLOSE_COLOUR_P:
                near = self.close_colours[key][int(base[key])]  # type: ignore[arg-type]
                new: Value = int(near[int(rng.integers(len(near)))])
            else:
                new = self.samplers[key](rng, base)
            if new == base[key]:
                continue
            out = dict(base)
            out[key] = new
            if _valid(self.kind, out):
                return out, key
        return None


def sample_identities(
    spec: SynthSpec,
    rng: np.random.Generator,
    kinds: list[str],
    group: str,
    first_key: int,
    taken: set[str],
    near_dup_share: float,
) -> list[Identity]:
    """``len(kinds)`` new identities of ``spec.pool``'s half, none of them in ``taken``.

    ``round(near_dup_share * n / 2)`` of them are pairs: an identity and a copy with
    exactly one attribute changed. ``taken`` (canonical forms) is updated in place.
    """
    n = len(kinds)
    samplers = {k: AttributeSampler(spec, k) for k in set(kinds)}
    n_pairs = int(round(near_dup_share * n / 2))
    # the twins take the kind of their base; keep kinds in order, twins go after their bases
    order = list(range(n))
    twin_slots = set(rng.choice(n, size=2 * n_pairs, replace=False).tolist()) if n_pairs else set()
    slots = sorted(twin_slots)
    base_slots, copy_slots = slots[0::2], slots[1::2]
    out: dict[int, Identity] = {}
    max_tries = 2000

    def fresh(kind: str) -> Attrs:
        for _ in range(max_tries):
            a = samplers[kind].sample(rng)
            c = canonical(kind, a)
            if c not in taken and pool_of(kind, a) == spec.pool:
                taken.add(c)
                return a
        raise ConfigError(
            f"synthetic identities: could not draw {n} distinct {kind} identities; the attribute space is "
            "too small for this many identities (raise palette_size or the attribute counts, or lower the "
            "number of identities)"
        )

    pending_copies: dict[int, int] = dict(zip(base_slots, copy_slots, strict=True))
    for i in order:
        if i in copy_slots:
            continue
        kind = kinds[i]
        if i in pending_copies:
            j = pending_copies[i]
            kinds[j] = kind
            for _ in range(200):
                a = fresh(kind)
                for _ in range(20):
                    m = samplers[kind].mutate(rng, a)
                    if m is None:
                        break
                    b, changed = m
                    c = canonical(kind, b)
                    if c not in taken and pool_of(kind, b) == spec.pool:
                        taken.add(c)
                        out[i] = Identity(first_key + i, kind, a, group, twin=first_key + j, changed=changed)
                        out[j] = Identity(first_key + j, kind, b, group, twin=first_key + i, changed=changed)
                        break
                if i in out:
                    break
                taken.discard(canonical(kind, a))
            else:
                raise ConfigError(
                    f"synthetic identities: could not build {n_pairs} near-duplicate pairs among {n} {kind} "
                    "identities; the attribute space is too small (raise palette_size or the attribute counts, "
                    "or lower near_dup_share or the number of identities)"
                )
        else:
            out[i] = Identity(first_key + i, kind, fresh(kind), group)
    return [out[i] for i in range(n)]
