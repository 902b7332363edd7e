"""Rendering: what a viewpoint shows, the camera response, order-independent seeding."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from hcm.data.synthetic import PRESETS
from hcm.data.synthetic.attributes import AttributeSampler
from hcm.data.synthetic.cameras import sample_cameras
from hcm.data.synthetic.person import Frame, Pose, draw_person
from hcm.data.synthetic.plan import draw_identities
from hcm.data.synthetic.scene import (
    ImageJob,
    RenderContext,
    camera_response,
    camera_tile,
    render_image,
)
from hcm.data.synthetic.seeding import rng_for
from hcm.data.synthetic.vehicle import View, body_geometry, projected_extent


def _person(attrs: dict, view: str) -> np.ndarray:
    layer = Image.new("RGBA", (120, 220), (0, 0, 0, 0))
    pose = Pose(view=view, facing=1, stride=0.3, lean=0.0, squash=1.0)
    draw_person(layer, attrs, pose, Frame(cx=60, top=10, H=200), np.random.default_rng(0), 0.0)
    return np.asarray(layer).astype(int)


def _changed_pixels(a: dict, b: dict, view: str) -> int:
    return int((np.abs(_person(a, view) - _person(b, view)).sum(axis=2) > 0).sum())


def test_viewpoint_decides_what_is_visible() -> None:
    base = AttributeSampler(PRESETS["synth-market"], "person").sample(np.random.default_rng(5))
    base.update(hat=(0, -1), bag=(0, -1), pattern=(0, -1), top=1)
    backpack = {**base, "bag": (1, 3)}
    logo = {**base, "pattern": (3, 3)}
    # a backpack is a large block from the back, straps only from the front
    assert _changed_pixels(base, backpack, "back") > 3 * _changed_pixels(base, backpack, "front") > 0
    # a chest logo shows from the front only
    assert _changed_pixels(base, logo, "front") > 0
    assert _changed_pixels(base, logo, "back") == 0 and _changed_pixels(base, logo, "side") == 0


def test_camera_response_matches_a_per_pixel_reference() -> None:
    cam = sample_cameras(PRESETS["synth-msmt17"], np.random.default_rng(0))[3]
    img = np.random.default_rng(1).uniform(0, 1, (3, 4, 3)).astype(np.float32)
    out = camera_response(img, cam, 2, np.random.default_rng(7), 0.1)
    jitter = math.exp(np.random.default_rng(7).normal(0, 0.1))
    h, w = img.shape[:2]
    for y in range(h):
        for x in range(w):
            ramp = 1 + cam.gradient[0] * (-1 + 2 * x / (w - 1)) + cam.gradient[1] * (-1 + 2 * y / (h - 1))
            warm = cam.session_warmth[2]
            rgb = [img[y, x, c] * cam.gain * cam.session_gain[2] * jitter * cam.cast[c] * (1 + warm, 1, 1 - warm)[c]
                   * ramp for c in range(3)]
            grey = sum(rgb) / 3
            want = [min(1.0, max(0.0, grey + cam.saturation * (v - grey))) ** cam.gamma for v in rgb]
            assert np.allclose(out[y, x], want, atol=1e-5)


def test_an_image_does_not_depend_on_what_was_rendered_before() -> None:
    name, spec = "synth-veri", PRESETS["synth-veri"]
    ids = draw_identities(name, spec, 0)
    cams = tuple(sample_cameras(spec, rng_for(name, 0, 99)))
    ctx = RenderContext(name, 0, spec, ids, cams)
    tile = camera_tile(ctx, 4, "vehicle")
    a, b = ImageJob("a.jpg", "train", 1, 0, 0, 4), ImageJob("b.jpg", "train", 2, 1, 3, 4)
    first = [render_image(ctx, j, tile)[0] for j in (a, b)]
    second = [render_image(ctx, j, camera_tile(ctx, 4, "vehicle"))[0] for j in (b, a)]
    assert first == second[::-1] and first[0] != first[1]


def test_vehicle_view_basis_and_extent() -> None:
    for yaw in (0.0, 1.0, math.pi):
        c, r, u = View(yaw, 0.3).basis()
        assert np.allclose([c @ c, r @ r, u @ u, c @ r, c @ u, r @ u], [1, 1, 1, 0, 0, 0])
    bus = body_geometry("bus")
    side = projected_extent(bus, View(math.pi / 2, 0.0))
    front = projected_extent(bus, View(0.0, 0.0))
    assert math.isclose(side[1] - side[0], 11.0) and math.isclose(front[1] - front[0], 2.5)
    assert math.isclose(front[3] - front[2], 3.1)
