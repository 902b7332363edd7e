"""Drawing a vehicle: a few textured boxes under an orthographic camera.

A vehicle is one to three axis-aligned boxes (lower body, cabin; truck cab and cargo
box) whose visible faces carry textures drawn with Pillow (doors, windows, wheels,
lights, grille, plate, stripes, roof rack). Each face texture is mapped onto the image
by an affine transform (exact for an orthographic projection), shaded by the angle to
the camera's light, and painted far-to-near. The camera yaw comes from the view
(front / back / side), the pitch from the camera's mounting height, so what is
visible changes with the camera: wheel style from the side, grille and headlights
from the front, roof rack from above.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from hcm.data.synthetic import palettes
from hcm.data.synthetic.attributes import Attrs
from hcm.data.synthetic.spec import BODY_TYPES, STRIPE_TYPES

RGB = tuple[int, int, int]
Vec = np.ndarray


@dataclass(frozen=True)
class Box:
    """x along the length (0 = back), y across (centred), z up; ``role`` picks the textures."""

    x0: float
    x1: float
    half_w: float
    z0: float
    z1: float
    role: str  # lower | cabin | cab | cargo | bus_upper


@dataclass(frozen=True)
class Body:
    length: float
    width: float
    boxes: tuple[Box, ...]
    wheels: tuple[float, ...]
    wheel_r: float
    clearance: float


def body_geometry(body_type: str) -> Body:
    """The boxes of each body type (metres)."""
    if body_type == "sedan":
        L, W = 4.6, 1.8
        return Body(L, W, (Box(0, L, W / 2, 0, 0.95, "lower"), Box(1.0, 3.3, 0.43 * W, 0.95, 1.45, "cabin")),
                    (0.85, 3.75), 0.33, 0.28)
    if body_type == "suv":
        L, W = 4.7, 1.9
        return Body(L, W, (Box(0, L, W / 2, 0, 1.05, "lower"), Box(0.25, 3.55, 0.46 * W, 1.05, 1.8, "cabin")),
                    (0.85, 3.85), 0.37, 0.36)
    if body_type == "van":
        L, W = 5.0, 1.95
        return Body(L, W, (Box(0, L, W / 2, 0, 1.0, "lower"), Box(0.1, 4.15, 0.475 * W, 1.0, 2.1, "cabin")),
                    (0.9, 4.1), 0.34, 0.3)
    if body_type == "truck":
        L, W = 6.8, 2.3
        return Body(L, W, (Box(0, 4.85, W / 2, 0, 3.0, "cargo"), Box(5.0, L, W / 2, 0, 1.3, "lower"),
                           Box(5.1, 6.6, 0.48 * W, 1.3, 2.6, "cab")),
                    (1.0, 2.2, 5.95), 0.5, 0.45)
    if body_type == "bus":
        L, W = 11.0, 2.5
        return Body(L, W, (Box(0, L, W / 2, 0, 1.2, "lower"), Box(0, L, W / 2, 1.2, 3.1, "bus_upper")),
                    (2.4, 9.1), 0.5, 0.4)
    raise ValueError(f"unknown body type {body_type!r}")


@dataclass(frozen=True)
class VehicleLook:
    body: RGB
    stripe: RGB
    stripe_type: str
    glass: RGB
    wheels: int
    bumper_black: bool
    slim_lights: bool
    roof_rack: bool
    cargo: RGB


def vehicle_look(attrs: Attrs, rng: np.random.Generator, jitter: float) -> VehicleLook:
    def jit(c: RGB, amount: float) -> RGB:
        g = math.exp(rng.normal(0, amount))
        ch = np.exp(rng.normal(0, amount * 0.4, 3))
        return (_clip255(c[0] * g * ch[0]), _clip255(c[1] * g * ch[1]), _clip255(c[2] * g * ch[2]))

    st, sc = attrs["stripes"]  # type: ignore[misc]
    return VehicleLook(
        body=jit(palettes.rgb(palettes.VEHICLE, int(attrs["colour"])), jitter),  # type: ignore[arg-type]
        stripe=jit(palettes.rgb(palettes.VEHICLE, sc), jitter) if sc >= 0 else (0, 0, 0),
        stripe_type=STRIPE_TYPES[st],
        glass=jit(palettes.GLASS[int(attrs["tint"])], jitter * 0.5),  # type: ignore[arg-type]
        wheels=int(attrs["wheels"]),  # type: ignore[arg-type]
        bumper_black=bool(attrs["bumper"]),
        slim_lights=bool(attrs["lights"]),
        roof_rack=bool(attrs["roof_rack"]),
        cargo=jit((214, 214, 208), jitter * 0.5),
    )


def _clip255(v: float) -> int:
    return 0 if v < 0 else 255 if v > 255 else int(v)


def _dim(c: RGB, k: float) -> RGB:
    return (_clip255(c[0] * k), _clip255(c[1] * k), _clip255(c[2] * k))


# ------------------------------------------------------------------ face textures
# Each texture is drawn looking at the face from outside: side faces with the
# vehicle's front on the left (mirrored for the other side), front/back faces as
# seen from the front/back, top faces with the front at the top edge.


def _tex(w_m: float, h_m: float, k: float) -> tuple[Image.Image, ImageDraw.ImageDraw, float, float]:
    w, h = max(2, int(round(w_m * k))), max(2, int(round(h_m * k)))
    img = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    return img, ImageDraw.Draw(img), w / w_m, h / h_m


def _wheel(d: ImageDraw.ImageDraw, cx: float, cy: float, rx: float, ry: float, style: int) -> None:
    d.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=(20, 20, 22, 255))
    rim = [(60, 60, 64), (196, 198, 202), (86, 88, 94)][style]
    f = [0.45, 0.66, 0.62][style]
    d.ellipse([cx - rx * f, cy - ry * f, cx + rx * f, cy + ry * f], fill=(*rim, 255))
    if style == 0:
        d.ellipse([cx - rx * 0.2, cy - ry * 0.2, cx + rx * 0.2, cy + ry * 0.2], fill=(150, 150, 150, 255))
    elif style == 2:
        for i in range(5):
            a = i * 2 * math.pi / 5
            d.line([cx, cy, cx + rx * f * math.cos(a), cy + ry * f * math.sin(a)], fill=(170, 172, 178, 255),
                   width=max(1, int(rx * 0.12)))


def _side_tex(box: Box, body: Body, look: VehicleLook, k: float) -> Image.Image:
    L, H = box.x1 - box.x0, box.z1 - box.z0
    img, d, sx, sz = _tex(L, H, k)

    def X(x: float) -> float:  # vehicle x (from back) -> texture column, front on the left
        return (box.x1 - x) * sx

    def Z(z: float) -> float:
        return (box.z1 - z) * sz

    if box.role in ("lower", "cargo"):
        body_c = look.body if box.role == "lower" else look.cargo
        zc = body.clearance if box.role == "lower" else max(body.clearance, 0.9)
        bev = 0.12 * (box.z1 - zc)
        d.polygon([(X(box.x1), Z(box.z1 - bev)), (X(box.x1) + bev * sx, Z(box.z1)), (X(box.x0) - bev * sx, Z(box.z1)),
                   (X(box.x0), Z(box.z1 - bev)), (X(box.x0), Z(zc)), (X(box.x1), Z(zc))], fill=(*body_c, 255))
        if box.role == "cargo":
            d.rectangle([X(box.x1), Z(zc), X(box.x0), Z(zc - 0.3)], fill=(40, 40, 42, 255))
            for x in np.arange(box.x0 + 0.5, box.x1, 0.6):
                d.line([X(x), Z(box.z1 - 0.1), X(x), Z(zc + 0.1)], fill=(*_dim(body_c, 0.82), 255), width=max(1, int(0.04 * sx)))
        else:
            if look.bumper_black:
                d.rectangle([X(box.x1), Z(zc + 0.3), X(box.x1 - 0.35), Z(zc)], fill=(34, 34, 36, 255))
                d.rectangle([X(box.x0 + 0.35), Z(zc + 0.3), X(box.x0), Z(zc)], fill=(34, 34, 36, 255))
            for x in (box.x1 - 1.6, box.x1 - 2.8) if L < 6 else ():
                if box.x0 + 0.6 < x:
                    d.line([X(x), Z(box.z1 - 0.05), X(x), Z(zc + 0.05)], fill=(*_dim(body_c, 0.7), 255), width=max(1, int(0.025 * sx)))
            if look.stripe_type == "side":
                zs = zc + 0.55 * (box.z1 - zc)
                d.rectangle([X(box.x1 - 0.1), Z(zs + 0.09), X(box.x0 + 0.1), Z(zs - 0.04)], fill=(*look.stripe, 255))
            ly = Z(box.z1 - 0.2)
            d.rectangle([X(box.x1), ly, X(box.x1 - 0.18), ly + 0.12 * sz], fill=(236, 226, 180, 255))
            d.rectangle([X(box.x0 + 0.15), ly, X(box.x0), ly + 0.12 * sz], fill=(196, 30, 30, 255))
        for wx in body.wheels:
            if box.x0 <= wx <= box.x1:
                r = body.wheel_r
                d.ellipse([X(wx) - 1.2 * r * sx, Z(r) - 1.2 * r * sz, X(wx) + 1.2 * r * sx, Z(r) + 1.2 * r * sz],
                          fill=(*_dim(body_c, 0.35), 255))
                _wheel(d, X(wx), Z(r), r * sx, r * sz, look.wheels)
    elif box.role in ("cabin", "cab"):
        slope_f = 0.45 * H if box.role == "cabin" else 0.08 * H
        slope_b = 0.35 * H if box.role == "cabin" else 0.02 * H
        d.polygon([(X(box.x1), Z(box.z0)), (X(box.x1 - slope_f), Z(box.z1)), (X(box.x0 + slope_b), Z(box.z1)),
                   (X(box.x0), Z(box.z0))], fill=(*look.body, 255))
        p = 0.07
        top, bot = box.z1 - p, box.z0 + p * 0.7
        if box.role == "cab":
            d.polygon([(X(box.x1 - p - slope_f), Z(top)), (X(box.x1 - 0.55 * L), Z(top)), (X(box.x1 - 0.55 * L), Z(bot + 0.3)),
                       (X(box.x1 - p), Z(bot + 0.3))], fill=(*look.glass, 255))
        else:
            d.polygon([(X(box.x1 - p - slope_f * 0.85), Z(top)), (X(box.x0 + p + slope_b * 0.85), Z(top)),
                       (X(box.x0 + p), Z(bot)), (X(box.x1 - p), Z(bot))], fill=(*look.glass, 255))
            for frac in (0.45,) if L < 3 else (0.38, 0.68):
                x = box.x1 - frac * L
                d.line([X(x), Z(box.z1), X(x), Z(box.z0)], fill=(*_dim(look.body, 0.8), 255), width=max(1, int(0.07 * sx)))
            d.line([X(box.x1 - 0.3 * L), Z(top - 0.05), X(box.x1 - 0.45 * L), Z(bot + 0.05)],
                   fill=(*_dim(look.glass, 1.6), 120), width=max(1, int(0.05 * sx)))
    else:  # bus_upper: a band of windows
        d.rectangle([0, 0, img.width, img.height], fill=(*look.body, 255))
        top, bot = box.z1 - 0.25, box.z0 + 0.25
        d.rectangle([X(box.x1 - 0.1), Z(top), X(box.x0 + 0.3), Z(bot)], fill=(*look.glass, 255))
        for x in np.arange(box.x0 + 1.2, box.x1 - 0.4, 1.25):
            d.line([X(x), Z(top), X(x), Z(bot)], fill=(*look.body, 255), width=max(1, int(0.09 * sx)))
        if look.stripe_type != "none":
            d.rectangle([0, Z(box.z0 + 0.18), img.width, Z(box.z0 + 0.05)], fill=(*look.stripe, 255))
    return img


def _end_tex(box: Box, body: Body, look: VehicleLook, k: float, front: bool) -> Image.Image:
    """Front (``front``) or back face, seen from outside."""
    W, H = 2 * box.half_w, box.z1 - box.z0
    img, d, sy, sz = _tex(W, H, k)

    def Y(y: float) -> float:  # -half_w .. half_w -> column
        return (y + box.half_w) * sy

    def Z(z: float) -> float:
        return (box.z1 - z) * sz

    hw = box.half_w
    if box.role in ("lower", "cargo"):
        body_c = look.body if box.role == "lower" else look.cargo
        zc = body.clearance if box.role == "lower" else max(body.clearance, 0.9)
        d.rectangle([0, Z(zc + 0.05), img.width, Z(zc - 0.1)], fill=(30, 30, 32, 255))
        for s in (-1, 1):
            d.rectangle([Y(s * (hw - 0.05)) - 0.11 * sy, Z(2 * body.wheel_r * 0.9), Y(s * (hw - 0.05)) + 0.11 * sy, Z(0)],
                        fill=(18, 18, 20, 255))
        d.rectangle([0, 0, img.width, Z(zc)], fill=(*body_c, 255))
        if box.role == "cargo":
            if not front:
                d.line([Y(0), Z(box.z1 - 0.1), Y(0), Z(zc + 0.1)], fill=(*_dim(body_c, 0.6), 255), width=max(1, int(0.05 * sy)))
                for s in (-1, 1):
                    d.rectangle([Y(s * (hw - 0.1)) - 0.08 * sy, Z(zc + 0.35), Y(s * (hw - 0.1)) + 0.08 * sy, Z(zc + 0.15)],
                                fill=(200, 30, 30, 255))
            return img
        bumper = (34, 34, 36) if look.bumper_black else _dim(look.body, 0.85)
        d.rectangle([0, Z(zc + 0.22), img.width, Z(zc)], fill=(*bumper, 255))
        plate = (236, 232, 226) if front else (230, 196, 40)
        d.rectangle([Y(-0.26), Z(zc + 0.36), Y(0.26), Z(zc + 0.22)], fill=(*plate, 255))
        zl = box.z1 - 0.22
        for s in (-1, 1):
            y_out, y_in = s * (hw - 0.08), s * (hw - (0.42 if look.slim_lights else 0.3))
            light = (238, 236, 214) if front else (200, 28, 32)
            hh = 0.07 if look.slim_lights else 0.13
            d.rectangle([min(Y(y_out), Y(y_in)), Z(zl + hh / 2), max(Y(y_out), Y(y_in)), Z(zl - hh / 2)], fill=(*light, 255))
        if front:
            d.rectangle([Y(-0.42 * hw), Z(zl + 0.08), Y(0.42 * hw), Z(zc + 0.4)], fill=(38, 38, 40, 255))
            for z in np.arange(zc + 0.45, zl + 0.05, 0.07):
                d.line([Y(-0.4 * hw), Z(z), Y(0.4 * hw), Z(z)], fill=(70, 70, 74, 255), width=1)
        if look.stripe_type == "racing" and box.role == "lower":
            for s in (-1, 1):
                d.rectangle([Y(s * 0.1) - 0.06 * sy, 0, Y(s * 0.1) + 0.06 * sy, Z(zc + 0.4)], fill=(*look.stripe, 255))
    elif box.role in ("cabin", "cab", "bus_upper"):
        d.rectangle([0, 0, img.width, img.height], fill=(*look.body, 255))
        inset = 0.1 if box.role != "bus_upper" else 0.08
        top = box.z1 - (0.07 if box.role != "cabin" else 0.05)
        bot = box.z0 + (0.05 if box.role == "cabin" else 0.25)
        shrink = 0.12 * hw if box.role == "cabin" else 0.0
        d.polygon([(Y(-hw + inset + shrink), Z(top)), (Y(hw - inset - shrink), Z(top)), (Y(hw - inset), Z(bot)),
                   (Y(-hw + inset), Z(bot))], fill=(*look.glass, 255))
        d.line([Y(-hw * 0.5), Z(top - 0.02), Y(-hw * 0.1), Z(bot + 0.02)], fill=(*_dim(look.glass, 1.7), 110),
               width=max(1, int(0.06 * sy)))
    return img


def _top_tex(box: Box, look: VehicleLook, k: float) -> Image.Image:
    """Roof / bonnet: columns across the width, rows from front (top edge) to back."""
    W, L = 2 * box.half_w, box.x1 - box.x0
    img, d, sy, sx = _tex(W, L, k)
    col = look.cargo if box.role == "cargo" else look.body
    d.rectangle([0, 0, img.width, img.height], fill=(*_dim(col, 1.04), 255))
    if box.role == "lower" and look.stripe_type == "racing":
        for s in (-1, 1):
            c = (box.half_w + s * 0.1) * sy
            d.rectangle([c - 0.06 * sy, 0, c + 0.06 * sy, img.height], fill=(*look.stripe, 255))
    if box.role in ("cabin", "cab", "bus_upper"):
        if look.stripe_type == "racing":
            for s in (-1, 1):
                c = (box.half_w + s * 0.1) * sy
                d.rectangle([c - 0.06 * sy, 0, c + 0.06 * sy, img.height], fill=(*look.stripe, 255))
        if look.roof_rack:
            for s in (-1, 1):
                c = (box.half_w + s * 0.7 * box.half_w) * sy
                d.rectangle([c - 0.04 * sy, 0.1 * sx, c + 0.04 * sy, img.height - 0.1 * sx], fill=(28, 28, 30, 255))
            for r in (0.25, 0.75):
                d.line([0.15 * img.width, r * img.height, 0.85 * img.width, r * img.height], fill=(28, 28, 30, 255),
                       width=max(1, int(0.05 * sx)))
    return img


# ------------------------------------------------------------------ projection


@dataclass(frozen=True)
class View:
    """Orthographic camera: ``yaw`` 0 = looking at the front, pi = back; ``pitch`` above the horizon."""

    yaw: float
    pitch: float

    def basis(self) -> tuple[Vec, Vec, Vec]:
        c = np.array([math.cos(self.pitch) * math.cos(self.yaw), math.cos(self.pitch) * math.sin(self.yaw),
                      math.sin(self.pitch)])
        f = -c
        r = np.cross(f, [0.0, 0.0, 1.0])
        r /= np.linalg.norm(r)
        u = np.cross(r, f)
        return c, r, u


def sample_view(rng: np.random.Generator, view: str, pitch_deg: float, jitter: float) -> View:
    if view == "front":
        yaw = rng.normal(0, 0.45)
    elif view == "back":
        yaw = math.pi + rng.normal(0, 0.45)
    else:
        yaw = (1 if rng.random() < 0.5 else -1) * math.pi / 2 + rng.normal(0, 0.3)
    return View(float(yaw), math.radians(float(np.clip(pitch_deg + rng.normal(0, 3 * jitter), 2, 45))))


def _faces(box: Box) -> list[tuple[str, Vec, Vec, Vec, Vec]]:
    """(name, outward normal, origin, edge to texture right, edge to texture down) for each face."""
    x0, x1, hw, z0, z1 = box.x0, box.x1, box.half_w, box.z0, box.z1
    L, W, H = x1 - x0, 2 * hw, z1 - z0
    a = np.array
    return [
        ("front", a([1.0, 0, 0]), a([x1, -hw, z1]), a([0, W, 0]), a([0, 0, -H])),
        ("back", a([-1.0, 0, 0]), a([x0, hw, z1]), a([0, -W, 0]), a([0, 0, -H])),
        ("left", a([0, 1.0, 0]), a([x1, hw, z1]), a([-L, 0, 0]), a([0, 0, -H])),
        ("right", a([0, -1.0, 0]), a([x0, -hw, z1]), a([L, 0, 0]), a([0, 0, -H])),
        ("top", a([0, 0, 1.0]), a([x1, -hw, z1]), a([0, W, 0]), a([-L, 0, 0])),
    ]


def projected_extent(body: Body, view: View) -> tuple[float, float, float, float]:
    """(u_min, u_max, v_min, v_max) of the vehicle in view coordinates (v up), metres."""
    _, r, u = view.basis()
    pts = []
    for b in body.boxes:
        for x in (b.x0, b.x1):
            for y in (-b.half_w, b.half_w):
                for z in (b.z0, b.z1):
                    pts.append((x, y, z))
    P = np.array(pts)
    us, vs = P @ r, P @ u
    return float(us.min()), float(us.max()), float(vs.min()), float(vs.max())


def paint_order(boxes: tuple[Box, ...], c: Vec) -> list[Box]:
    """Far-to-near order of the boxes for a camera in direction ``c`` (pointing at the camera).

    A box resting on another (overlapping footprint) is painted after it: the camera
    is never below the vehicle. Boxes side by side go by their distance along ``c``.
    """

    def cmp(a: Box, b: Box) -> int:
        if a.x0 < b.x1 and b.x0 < a.x1:  # footprints overlap: stacked
            if a.z1 <= b.z0 + 1e-6:
                return -1
            if b.z1 <= a.z0 + 1e-6:
                return 1
        da, db = (a.x0 + a.x1) / 2 * c[0], (b.x0 + b.x1) / 2 * c[0]
        return -1 if da < db else 1 if da > db else 0

    return sorted(boxes, key=functools.cmp_to_key(cmp))


def draw_vehicle(layer: Image.Image, attrs: Attrs, view: View, rng: np.random.Generator, *,
                 centre: tuple[float, float], size: tuple[float, float], colour_jitter: float,
                 light_dir: float, max_aspect_change: float = 2.0, shadow: bool = True) -> None:
    """Draw the vehicle on the RGBA ``layer`` filling a ``size`` = (w, h) pixel box at ``centre``.

    The projection is stretched independently along u and v (by at most
    ``max_aspect_change``) to fill the box, as resizing a real crop does.
    """
    body = body_geometry(BODY_TYPES[int(attrs["body"])])  # type: ignore[arg-type]
    look = vehicle_look(attrs, rng, colour_jitter)
    c, r, u = view.basis()
    umin, umax, vmin, vmax = projected_extent(body, view)
    su, sv = size[0] / (umax - umin), size[1] / (vmax - vmin)
    if su > sv * max_aspect_change:
        su = sv * max_aspect_change
    if sv > su * max_aspect_change:
        sv = su * max_aspect_change
    uc, vc = (umin + umax) / 2, (vmin + vmax) / 2

    def to_px(p: Vec) -> tuple[float, float]:
        return (centre[0] + su * (float(p @ r) - uc), centre[1] - sv * (float(p @ u) - vc))

    if shadow:
        pts = [to_px(np.array([x, y * 1.08, 0.0])) for x, y in ((-0.1, -body.width / 2), (body.length + 0.1, -body.width / 2),
                                                               (body.length + 0.1, body.width / 2), (-0.1, body.width / 2))]
        _paste_polygon(layer, pts, (8, 8, 10), 120)
    k = 0.6 * max(su, sv)  # texture pixels per metre: the scene is downsampled by `supersample` later
    light = np.array([-0.35, 0.6 * light_dir, 1.0])
    light /= np.linalg.norm(light)
    order = paint_order(body.boxes, c)
    for box in order:
        for name, n, o, e1, e2 in _faces(box):
            if float(n @ c) <= 0.02:
                continue
            if name in ("left", "right"):
                tex = _side_tex(box, body, look, k)
                if name == "right":
                    tex = tex.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            elif name in ("front", "back"):
                tex = _end_tex(box, body, look, k, front=name == "front")
            else:
                tex = _top_tex(box, look, k)
            shade = 0.58 + 0.42 * max(0.0, float(n @ light)) + (0.06 if name == "top" else 0.0)
            g = int(np.clip(255 * shade, 0, 255))
            tex = ImageChops.multiply(tex, Image.new("RGBA", tex.size, (g, g, g, 255)))
            po = np.array(to_px(o))
            pa = np.subtract(to_px(o + e1), po)
            pb = np.subtract(to_px(o + e2), po)
            M = np.array([[pa[0], pb[0]], [pa[1], pb[1]]])
            if abs(np.linalg.det(M)) < 1.0:
                continue
            corners = np.array([po, po + pa, po + pb, po + pa + pb])
            bx0, by0 = np.floor(corners.min(0)).astype(int)
            bx1, by1 = np.ceil(corners.max(0)).astype(int)
            if bx1 <= 0 or by1 <= 0 or bx0 >= layer.width or by0 >= layer.height:
                continue
            inv = np.linalg.inv(M)
            ox_, oy_ = po[0] - bx0, po[1] - by0  # origin in the patch's coordinates
            tw, th = tex.size
            data = (tw * inv[0, 0], tw * inv[0, 1], -tw * (inv[0, 0] * ox_ + inv[0, 1] * oy_),
                    th * inv[1, 0], th * inv[1, 1], -th * (inv[1, 0] * ox_ + inv[1, 1] * oy_))
            warped = tex.transform((int(bx1 - bx0), int(by1 - by0)), Image.Transform.AFFINE, data,
                                   resample=Image.Resampling.BILINEAR)
            _composite_at(layer, warped, int(bx0), int(by0))


def _composite_at(layer: Image.Image, patch: Image.Image, x: int, y: int) -> None:
    """``alpha_composite`` of ``patch`` at (x, y), clipped to the layer."""
    sx, sy = max(0, -x), max(0, -y)
    w, h = min(patch.width, layer.width - x) - sx, min(patch.height, layer.height - y) - sy
    if w <= 0 or h <= 0:
        return
    layer.alpha_composite(patch, dest=(x + sx, y + sy), source=(sx, sy, sx + w, sy + h))


def _paste_polygon(layer: Image.Image, pts: list[tuple[float, float]], colour: tuple[int, int, int], alpha: int) -> None:
    """Blend a filled polygon of ``colour`` with opacity ``alpha`` onto ``layer`` (bounding box only)."""
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, y0 = max(0, int(min(xs))), max(0, int(min(ys)))
    x1, y1 = min(layer.width, int(max(xs)) + 1), min(layer.height, int(max(ys)) + 1)
    if x1 <= x0 or y1 <= y0:
        return
    m = Image.new("L", (x1 - x0, y1 - y0), 0)
    ImageDraw.Draw(m).polygon([(x - x0, y - y0) for x, y in pts], fill=alpha)
    layer.paste((*colour, 255), (x0, y0), m)
