"""Every knob of the synthetic re-ID generator (:class:`SynthSpec`) and the named presets.

A preset is a :class:`SynthSpec`; ``spec_for(name, overrides)`` returns the preset with
some fields replaced (e.g. ``{"train_ids": 6, "person_size": [32, 16]}``), checked
field by field. See ``docs/synthetic-generator.md`` for what each knob does to the
images.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from hcm.errors import ConfigError

Kind = Literal["person", "vehicle", "mixed"]
Layout = Literal["market", "msmt17", "veri"]
Pool = Literal["target", "source"]

#: highest camera number of each layout (Market-style names hold one digit; the
#: DukeMTMC-reID reader accepts cameras 1-8)
MAX_CAMERAS: dict[str, int] = {"market": 8, "msmt17": 99, "veri": 999}
#: identity numbers are written with 4 digits in every layout
MAX_IDENTITIES = 9999

PATTERNS: tuple[str, ...] = ("plain", "stripes", "checks", "logo")
HAT_TYPES: tuple[str, ...] = ("none", "cap", "beanie")
BAG_TYPES: tuple[str, ...] = ("none", "backpack", "handbag", "shoulder")
BOTTOM_TYPES: tuple[str, ...] = ("trousers", "shorts", "skirt")
BODY_TYPES: tuple[str, ...] = ("sedan", "suv", "truck", "bus", "van")
STRIPE_TYPES: tuple[str, ...] = ("none", "side", "racing")


@dataclass(frozen=True)
class SynthSpec:
    """All parameters of one synthetic dataset (frozen: a spec is a value).

    Sizes are ``(height, width)`` in pixels; ranges are inclusive ``(low, high)``.
    """

    # ---- what and where
    kind: Kind = "person"
    layout: Layout = "market"
    pool: Pool = field(default="target", metadata={"help": "attribute/camera half: 'source' only for pretraining sets"})
    person_size: tuple[int, int] = (64, 32)
    vehicle_size: tuple[int, int] = (64, 64)
    vehicle_share: float = field(default=1 / 3, metadata={"help": "share of vehicle identities (kind 'mixed' only)"})
    # ---- identities and images
    train_ids: int = 150
    test_ids: int = 200
    gallery_only_ids: int = field(default=0, metadata={"help": "identities seen only in the gallery (DukeMTMC has 408)"})
    train_images: tuple[int, int] = (8, 16)
    gallery_images: tuple[int, int] = (5, 9)
    queries_per_id: int = field(default=3, metadata={"help": "queries per test identity (at most one per camera of the identity)"})
    cameras: int = 6
    cams_per_id: tuple[int, int] = (2, 5)
    junk_images: int = field(default=0, metadata={"help": "identity -1 gallery images (badly cropped), Market-style layouts"})
    distractor_images: int = field(default=0, metadata={"help": "identity 0 gallery images (other people, bad crops), Market-style layouts"})
    val_fraction: float = field(default=0.0, metadata={"help": "share of train images listed in list_val.txt (msmt17 layout)"})
    query_in_gallery: bool = field(default=False, metadata={"help": "query images also in the gallery folder (as in VeRi-776)"})
    # ---- identity attributes
    palette_size: int = 24
    vehicle_palette_size: int = 14
    colour_skew: float = field(default=0.6, metadata={"help": "0: colours uniform; 1: real-world frequencies (many black, white, grey)"})
    skin_tones: int = 5
    hair_colours: int = 6
    shoe_colours: int = 6
    builds: int = 4
    leg_lengths: int = 3
    patterns: tuple[str, ...] = PATTERNS
    pattern_prob: float = 0.45
    hat_types: tuple[str, ...] = HAT_TYPES
    hat_prob: float = 0.25
    bag_types: tuple[str, ...] = BAG_TYPES
    bag_prob: float = 0.6
    bottom_types: tuple[str, ...] = BOTTOM_TYPES
    body_types: tuple[str, ...] = BODY_TYPES
    stripe_prob: float = 0.3
    near_dup_share: float = field(default=0.3, metadata={"help": "share of identities that are one of a pair differing in one attribute"})
    # ---- cameras
    camera_shift: float = field(default=1.0, metadata={"help": "strength of camera differences (colour cast, gain, gamma, views); 0 = identical cameras"})
    camera_draw: Literal["independent", "stratified"] = field(default="independent", metadata={"help": "independent: each camera's light level and continuous parameters drawn independently; stratified: light levels cycled and each continuous parameter Latin-hypercube sampled over the cameras (every draw spans the same range)"})
    scale_range: tuple[float, float] = (0.78, 0.94)
    resolution_range: tuple[float, float] = (0.45, 1.0)
    blur: float = field(default=0.9, metadata={"help": "largest camera blur sigma, output pixels"})
    noise: float = field(default=7.0, metadata={"help": "largest camera noise std, 0-255 scale"})
    jpeg_quality: tuple[int, int] = (55, 95)
    session_shift: float = field(default=0.0, metadata={"help": "illumination change between recording sessions of a camera (MSMT17 morning/noon/afternoon)"})
    # ---- per image
    pose_jitter: float = 1.0
    crop_jitter: float = field(default=0.06, metadata={"help": "std of detector box offset, fraction of the box"})
    occlusion_prob: float = 0.2
    clutter_prob: float = field(default=0.3, metadata={"help": "probability of a second person/vehicle behind the subject"})
    colour_jitter: float = 0.05
    illum_jitter: float = 0.08
    supersample: int = field(default=2, metadata={"help": "render at this multiple of the output size, then downsample"})

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def layout_max_cameras(self) -> int:
        return MAX_CAMERAS[self.layout]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}


def _check(cond: bool, key: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"synthetic dataset parameter {key!r}: {msg}")


def _validate(s: SynthSpec) -> None:
    _check(s.kind in ("person", "vehicle", "mixed"), "kind", "must be 'person', 'vehicle' or 'mixed'")
    _check(s.layout in MAX_CAMERAS, "layout", f"must be one of {sorted(MAX_CAMERAS)}")
    _check(s.pool in ("target", "source"), "pool", "must be 'target' or 'source'")
    for key in ("person_size", "vehicle_size"):
        h, w = getattr(s, key)
        _check(16 <= h <= 512 and 8 <= w <= 512, key, f"(height, width) between (16, 8) and (512, 512), got {(h, w)}")
    for key in ("train_images", "gallery_images", "cams_per_id", "scale_range", "resolution_range", "jpeg_quality"):
        lo, hi = getattr(s, key)
        _check(lo <= hi, key, f"range (low, high) needs low <= high, got {(lo, hi)}")
    _check(s.train_images[0] >= 1, "train_images", "at least 1 image per identity")
    _check(1 <= s.cameras <= MAX_CAMERAS[s.layout], "cameras",
           f"between 1 and {MAX_CAMERAS[s.layout]} for the {s.layout!r} layout (its file names hold no more)")
    _check(s.cams_per_id[0] >= 1 and s.cams_per_id[1] <= s.cameras, "cams_per_id",
           f"range within 1..cameras ({s.cameras}), got {s.cams_per_id}")
    if s.test_ids > 0:
        _check(s.cams_per_id[0] >= 2, "cams_per_id", "test identities need at least 2 cameras (a query needs a cross-camera match)")
        _check(s.gallery_images[0] >= 2, "gallery_images", "at least 2 gallery images per test identity")
        _check(s.queries_per_id >= 1, "queries_per_id", "at least 1 when test_ids > 0")
    for key in ("train_ids", "test_ids", "gallery_only_ids", "junk_images", "distractor_images"):
        _check(getattr(s, key) >= 0, key, "must be >= 0")
    # every split must hold images (hcm reads train, query and gallery): refused before generating
    _check(s.train_ids >= 1, "train_ids", f"at least 1 (the training split would be empty), got {s.train_ids}")
    _check(s.test_ids >= 1, "test_ids", f"at least 1 (query and gallery would be empty), got {s.test_ids}")
    total = s.train_ids + s.test_ids + s.gallery_only_ids
    _check(total >= 1, "train_ids", "the dataset needs at least one identity")
    _check(total <= MAX_IDENTITIES - 1, "train_ids", f"train_ids + test_ids + gallery_only_ids must be < {MAX_IDENTITIES}")
    if s.layout != "market":
        _check(s.junk_images == 0 and s.distractor_images == 0, "junk_images",
               "junk (-1) and distractor (0) images exist only in the Market-style layout")
    _check(s.query_in_gallery is False or s.layout == "veri", "query_in_gallery", "only for the 'veri' layout")
    _check(0 <= s.val_fraction < 1 and (s.val_fraction == 0 or s.layout == "msmt17"), "val_fraction",
           "in [0, 1), and only for the 'msmt17' layout")
    for key in ("vehicle_share", "colour_skew", "pattern_prob", "hat_prob", "bag_prob", "stripe_prob",
                "near_dup_share", "occlusion_prob", "clutter_prob"):
        _check(0.0 <= getattr(s, key) <= 1.0, key, "must be in [0, 1]")
    for key in ("camera_shift", "blur", "noise", "session_shift", "pose_jitter", "crop_jitter",
                "colour_jitter", "illum_jitter"):
        _check(getattr(s, key) >= 0, key, "must be >= 0")
    _check(0 < s.resolution_range[0] and s.resolution_range[1] <= 1, "resolution_range", "within (0, 1]")
    _check(0.3 <= s.scale_range[0] and s.scale_range[1] <= 1.2, "scale_range", "within [0.3, 1.2]")
    _check(1 <= s.jpeg_quality[0] and s.jpeg_quality[1] <= 100, "jpeg_quality", "within 1..100")
    _check(1 <= s.supersample <= 6, "supersample", "between 1 and 6")
    from hcm.data.synthetic import palettes

    _check(2 <= s.palette_size <= len(palettes.CLOTHING), "palette_size", f"between 2 and {len(palettes.CLOTHING)}")
    _check(2 <= s.vehicle_palette_size <= len(palettes.VEHICLE), "vehicle_palette_size", f"between 2 and {len(palettes.VEHICLE)}")
    for key, n in (("skin_tones", len(palettes.SKIN)), ("hair_colours", len(palettes.HAIR)),
                   ("shoe_colours", len(palettes.SHOES)), ("builds", len(palettes.BUILD_WIDTH)),
                   ("leg_lengths", len(palettes.LEG_LENGTH))):
        _check(1 <= getattr(s, key) <= n, key, f"between 1 and {n}")
    for key, allowed in (("patterns", PATTERNS), ("hat_types", HAT_TYPES), ("bag_types", BAG_TYPES),
                         ("bottom_types", BOTTOM_TYPES), ("body_types", BODY_TYPES)):
        vals = getattr(s, key)
        _check(len(vals) >= 1 and len(set(vals)) == len(vals) and set(vals) <= set(allowed), key,
               f"a non-empty list of distinct values from {list(allowed)}, got {list(vals)}")


# ------------------------------------------------------------------ presets

_MARKET = SynthSpec(
    kind="person", layout="market", cameras=6, cams_per_id=(2, 5), train_ids=150, test_ids=200,
    train_images=(8, 16), gallery_images=(5, 9), queries_per_id=3, junk_images=40, distractor_images=80,
    camera_draw="stratified", camera_shift=0.4,
)

PRESETS: dict[str, SynthSpec] = {
    "synth-market": _MARKET,
    "synth-duke": dataclasses.replace(
        _MARKET, cameras=8, cams_per_id=(2, 6), gallery_images=(6, 10), junk_images=0, distractor_images=0,
        gallery_only_ids=60, test_ids=190,
    ),
    "synth-msmt17": dataclasses.replace(
        _MARKET, layout="msmt17", cameras=15, cams_per_id=(2, 6), train_ids=160, test_ids=220,
        gallery_images=(6, 10), junk_images=0, distractor_images=0, val_fraction=0.07, session_shift=0.15,
    ),
    "synth-veri": dataclasses.replace(
        _MARKET, kind="vehicle", layout="veri", cameras=20, cams_per_id=(3, 8), train_ids=150, test_ids=150,
        train_images=(10, 18), gallery_images=(8, 14), queries_per_id=4, junk_images=0, distractor_images=0,
        query_in_gallery=True, occlusion_prob=0.15,
    ),
    "synth-pretrain": dataclasses.replace(
        _MARKET, kind="mixed", layout="market", pool="source", cameras=8, cams_per_id=(2, 6), train_ids=480,
        test_ids=60, train_images=(8, 12), gallery_images=(6, 8), queries_per_id=2, junk_images=0,
        distractor_images=0, camera_draw="independent", camera_shift=1.0,
    ),
}


def spec_for(name: str, overrides: dict[str, Any] | None = None) -> SynthSpec:
    """The preset ``name`` with ``overrides`` applied (unknown keys or bad values raise ConfigError)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown synthetic dataset {name!r}; presets: {', '.join(sorted(PRESETS))}")
    base = PRESETS[name]
    if not overrides:
        return base
    valid = {f.name: f for f in fields(SynthSpec)}
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ConfigError(
            f"unknown synthetic dataset parameter(s) {unknown} for {name!r} (synth_overrides); "
            f"valid parameters: {', '.join(sorted(valid))}"
        )
    hints = typing.get_type_hints(SynthSpec)
    values = {key: _coerce(key, value, hints[key]) for key, value in overrides.items()}
    return dataclasses.replace(base, **values)


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against the field type; lists become tuples, ints become floats."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"synthetic dataset parameter {key!r}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(key, v, args[0]) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"synthetic dataset parameter {key!r}: expected {len(args)} values, got {value!r}")
        return tuple(_coerce(key, v, a) for v, a in zip(value, args, strict=True))
    if origin is Literal:
        if value not in typing.get_args(hint):
            raise ConfigError(f"synthetic dataset parameter {key!r}: one of {list(typing.get_args(hint))}, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"synthetic dataset parameter {key!r}: expected true/false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"synthetic dataset parameter {key!r}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"synthetic dataset parameter {key!r}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"synthetic dataset parameter {key!r}: expected a string, got {value!r}")
        return value
    if isinstance(hint, types.UnionType):  # pragma: no cover - no union fields today
        return value
    return value
