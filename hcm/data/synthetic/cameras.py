"""Cameras: what makes two views of one identity look different.

A camera has a discrete *signature* (scene type, scene colour, colour-cast direction,
light level) and continuous parameters drawn from its own random stream and scaled
by ``spec.camera_shift``: illumination gain and gamma, colour cast, saturation,
an illumination gradient, blur, noise, resolution, JPEG quality, subject scale, the
distribution of viewpoints (front / back / side) and, for vehicles, the elevation.
Like identities (see :mod:`.attributes`), signatures are split into a *source* half
used only by ``synth-pretrain`` and a *target* half used by the presets, so
pretraining cameras never coincide with a preset's cameras.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from hcm.data.synthetic.spec import SynthSpec
from hcm.errors import ConfigError

PERSON_SCENES: tuple[str, ...] = ("pavement", "brick", "indoor", "grass", "shopfront", "concrete")
VEHICLE_SCENES: tuple[str, ...] = ("road", "junction", "parking", "highway")
VIEWS: tuple[str, ...] = ("front", "back", "side")
N_SCENE_COLOURS = 12
N_CAST_BINS = 8
LIGHT_LEVELS: tuple[float, ...] = (0.7, 1.0, 1.32)  # dim, normal, bright
SESSIONS: tuple[str, ...] = ("morning", "noon", "afternoon")
SOURCE_MODULUS = 4

#: wall/ground tints of the scenes, indexed by the signature's scene colour
SCENE_TINTS: tuple[tuple[int, int, int], ...] = (
    (150, 140, 130), (118, 128, 140), (172, 152, 120), (140, 88, 70), (92, 104, 92), (204, 198, 186),
    (82, 82, 88), (162, 120, 90), (110, 120, 152), (182, 172, 142), (102, 86, 72), (140, 152, 130),
)


@dataclass(frozen=True)
class CameraParams:
    """One camera's fixed parameters (``index`` is the 1-based number written in file names)."""

    index: int
    scene: str
    scene_colour: int
    cast_bin: int
    light_bin: int
    gain: float
    gamma: float
    cast: tuple[float, float, float]
    saturation: float
    gradient: tuple[float, float]
    blur: float
    noise: float
    resolution: float
    jpeg_quality: int
    scale: float
    views: tuple[float, float, float]
    pitch: float
    light_dir: float
    horizon: float
    session_gain: tuple[float, float, float]
    session_warmth: tuple[float, float, float]

    @property
    def signature(self) -> tuple[str, int, int, int]:
        return (self.scene, self.scene_colour, self.cast_bin, self.light_bin)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def camera_pool(signature: tuple[str, int, int, int]) -> str:
    """``"source"`` (pretraining only) or ``"target"`` half of the signature space."""
    key = json.dumps(list(signature), separators=(",", ":")).encode()
    return "source" if zlib.crc32(key) % SOURCE_MODULUS == 0 else "target"


def scenes_for(kind: str) -> tuple[str, ...]:
    return {"person": PERSON_SCENES, "vehicle": VEHICLE_SCENES}.get(kind, PERSON_SCENES + VEHICLE_SCENES)


def _strata(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` uniforms in [0, 1), one in each interval ``[k / n, (k + 1) / n)``, in random order."""
    return (rng.permutation(n) + rng.uniform(0, 1, n)) / n


class _Draws:
    """The per-camera random numbers of :func:`sample_cameras`.

    ``independent``: straight from ``rng``, in the order the cameras consume them.
    ``stratified``: the light levels cycle over the cameras (shuffled) and every continuous
    parameter is Latin-hypercube sampled over the cameras, so every draw of a preset spans
    the same range of each parameter.
    """

    def __init__(self, spec: SynthSpec, rng: np.random.Generator) -> None:
        self.rng = rng
        self.stratified = spec.camera_draw == "stratified"
        n = spec.cameras
        if self.stratified:
            levels = np.resize(rng.permutation(len(LIGHT_LEVELS)), n)
            self.light = rng.permutation(levels)
            self.u = {key: _strata(rng, n) for key in ("mag", "gain", "gamma", "saturation", "resolution", "scale")}

    def light_bin(self, k: int) -> int:
        return int(self.light[k]) if self.stratified else int(self.rng.integers(len(LIGHT_LEVELS)))

    def uniform(self, key: str, k: int, lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(self.u[key][k]) if self.stratified else float(self.rng.uniform(lo, hi))

    def normal(self, key: str, k: int, std: float) -> float:
        if not self.stratified:
            return float(self.rng.normal(0, std))
        return std * NormalDist().inv_cdf(min(max(float(self.u[key][k]), 1e-6), 1 - 1e-6))


def sample_cameras(spec: SynthSpec, rng: np.random.Generator) -> list[CameraParams]:
    """``spec.cameras`` cameras with distinct signatures from ``spec.pool``'s half."""
    scenes = scenes_for(spec.kind)
    s = spec.camera_shift
    used: set[tuple[str, int, int, int]] = set()
    out: list[CameraParams] = []
    draws = _Draws(spec, rng)
    for index in range(1, spec.cameras + 1):
        slot = index - 1
        for _ in range(10_000):
            sig = (scenes[int(rng.integers(len(scenes)))], int(rng.integers(N_SCENE_COLOURS)),
                   int(rng.integers(N_CAST_BINS)), draws.light_bin(slot))
            if sig not in used and camera_pool(sig) == spec.pool:
                break
        else:  # pragma: no cover - the signature space is far larger than 999 cameras
            raise ConfigError("synthetic cameras: ran out of distinct camera signatures")
        used.add(sig)
        hue = math.radians(sig[2] * 360 / N_CAST_BINS + rng.uniform(-20, 20))
        mag = s * draws.uniform("mag", slot, 0.05, 0.16)
        cast = tuple(float(1 + mag * math.cos(hue - k * 2 * math.pi / 3)) for k in range(3))
        gain = math.exp(s * (math.log(LIGHT_LEVELS[sig[3]]) + draws.normal("gain", slot, 0.08)))
        alpha = 2.5 / (0.15 + s)
        views = rng.dirichlet([alpha] * 3)
        lo_s, hi_s = spec.scale_range
        lo_r, hi_r = spec.resolution_range
        lo_q, hi_q = spec.jpeg_quality
        sess_g = tuple(float(math.exp(spec.session_shift * rng.normal(0, 1))) for _ in SESSIONS)
        sess_w = tuple(float(spec.session_shift * rng.normal(0, 0.5)) for _ in SESSIONS)
        out.append(CameraParams(
            index=index, scene=sig[0], scene_colour=sig[1], cast_bin=sig[2], light_bin=sig[3],
            gain=float(gain), gamma=float(math.exp(s * draws.normal("gamma", slot, 0.12))), cast=cast,  # type: ignore[arg-type]
            saturation=float(np.clip(1 + s * draws.uniform("saturation", slot, -0.4, 0.15), 0.3, 1.6)),
            gradient=(float(s * rng.uniform(-0.22, 0.22)), float(s * rng.uniform(-0.15, 0.1))),
            blur=float(rng.uniform(0, 1) * spec.blur), noise=float(rng.uniform(0.25, 1) * spec.noise),
            resolution=draws.uniform("resolution", slot, lo_r, hi_r), jpeg_quality=int(rng.integers(lo_q, hi_q + 1)),
            scale=draws.uniform("scale", slot, lo_s, hi_s), views=tuple(float(v) for v in views),  # type: ignore[arg-type]
            pitch=float(rng.uniform(6, 32)), light_dir=float(rng.uniform(-1, 1)),
            horizon=float(rng.uniform(0.3, 0.6)), session_gain=sess_g, session_warmth=sess_w,  # type: ignore[arg-type]
        ))
    return out
