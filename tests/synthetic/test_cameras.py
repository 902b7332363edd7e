"""Camera draws: the independent draw is unchanged; the stratified one spans every stratum."""

from __future__ import annotations

from collections import Counter
from statistics import NormalDist

import numpy as np
import pytest

from hcm.data.synthetic import spec_for
from hcm.data.synthetic.cameras import LIGHT_LEVELS, sample_cameras
from hcm.data.synthetic.seeding import STREAM_CAMERAS, rng_for


def test_independent_draw_reproduces_the_cameras_of_earlier_generated_data() -> None:
    # synth-market, generator seed 0, as written to synth_cameras.json before `camera_draw` existed
    # (the preset then drew its cameras independently, with camera_shift 1.0)
    spec = spec_for("synth-market", {"camera_draw": "independent", "camera_shift": 1.0})
    cams = sample_cameras(spec, rng_for("synth-market", 0, STREAM_CAMERAS))
    assert [c.light_bin for c in cams] == [1, 1, 2, 1, 1, 1]
    np.testing.assert_allclose([c.gain for c in cams], [1.12049523079, 1.14173208693, 1.327715364932,
                                                        0.922111123106, 1.092048683069, 0.987433690203], atol=1e-11)
    np.testing.assert_allclose([c.resolution for c in cams], [0.689188803095, 0.795879171902, 0.695119204897,
                                                              0.71598999382, 0.461129944988, 0.654991288507], atol=1e-11)


def _stratum(values: list[float], lo: float, hi: float) -> list[int]:
    n = len(values)
    return sorted(int((v - lo) / (hi - lo) * n) for v in values)


@pytest.mark.parametrize("preset", ["synth-market", "synth-duke", "synth-msmt17", "synth-veri"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stratified_draw_puts_one_camera_in_each_stratum(preset: str, seed: int) -> None:
    spec = spec_for(preset, {"camera_draw": "stratified"})
    cams = sample_cameras(spec, rng_for(preset, seed, STREAM_CAMERAS))
    n = spec.cameras
    assert len(cams) == n and len({c.signature for c in cams}) == n
    counts = Counter(c.light_bin for c in cams)  # light levels as even as the camera count allows
    assert sorted(counts) == list(range(len(LIGHT_LEVELS)))
    assert max(counts.values()) - min(counts.values()) <= 1
    s = spec.camera_shift
    assert _stratum([c.resolution for c in cams], *spec.resolution_range) == list(range(n))
    assert _stratum([c.scale for c in cams], *spec.scale_range) == list(range(n))
    assert _stratum([(c.saturation - 1) / s for c in cams], -0.4, 0.15) == list(range(n))
    # the gain is the light level times a log-normal factor whose quantiles are stratified
    factors = [np.log(c.gain) / s - np.log(LIGHT_LEVELS[c.light_bin]) for c in cams]
    assert _stratum([NormalDist(0, 0.08).cdf(f) for f in factors], 0.0, 1.0) == list(range(n))


def test_stratified_draw_differs_between_generator_seeds() -> None:
    spec = spec_for("synth-market", {"camera_draw": "stratified"})
    a = sample_cameras(spec, rng_for("synth-market", 0, STREAM_CAMERAS))
    b = sample_cameras(spec, rng_for("synth-market", 1, STREAM_CAMERAS))
    assert [c.resolution for c in a] != [c.resolution for c in b]
