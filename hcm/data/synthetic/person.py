"""Drawing a person: head and hair, hat, top with pattern, sleeves, bottoms, shoes, bags.

Geometry is in units of the body height ``H`` (head top = 0, soles = 1) around the
body's centre line, mapped to pixels by :class:`Frame` (which adds a lean and a
horizontal squash for pose jitter). The viewpoint decides what is visible: a
backpack is a large block from the back, a bump from the side and only straps from
the front; a chest logo shows only from the front; a handbag hangs on the person's
right hand, so from the side it is hidden behind the body half of the time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from hcm.data.synthetic import palettes
from hcm.data.synthetic.attributes import Attrs
from hcm.data.synthetic.spec import BAG_TYPES, BOTTOM_TYPES, HAT_TYPES, PATTERNS

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Pose:
    """Per-image pose: viewpoint, facing (side view: +1 right, -1 left), stride, lean, arm swing."""

    view: str
    facing: int
    stride: float
    lean: float
    squash: float


def sample_pose(rng: np.random.Generator, view: str, jitter: float) -> Pose:
    return Pose(
        view=view,
        facing=1 if rng.random() < 0.5 else -1,
        stride=float(np.clip(rng.uniform(-1, 1) * (0.35 + 0.65 * min(jitter, 1.5)), -1.5, 1.5)),
        lean=float(rng.normal(0, 0.025 * jitter)),
        squash=float(np.exp(rng.normal(0, 0.05 * jitter))),
    )


@dataclass(frozen=True)
class Frame:
    """Body coordinates -> pixels: ``x`` right of the centre line, ``y`` down from the head top."""

    cx: float
    top: float
    H: float
    lean: float = 0.0
    squash: float = 1.0

    def p(self, x: float, y: float) -> tuple[float, float]:
        return (self.cx + (x * self.squash + (1 - y) * self.lean) * self.H, self.top + y * self.H)

    def box(self, x0: float, y0: float, x1: float, y1: float) -> list[float]:
        (a, b), (c, d) = self.p(x0, y0), self.p(x1, y1)
        return [min(a, c), min(b, d), max(a, c), max(b, d)]


def _clip255(v: float) -> int:
    return 0 if v < 0 else 255 if v > 255 else int(v)


def _jitter(rng: np.random.Generator, c: RGB, amount: float) -> RGB:
    """``c`` with a random brightness change and a smaller per-channel change (std ``amount``)."""
    g = math.exp(rng.normal(0, amount))
    ch = np.exp(rng.normal(0, amount * 0.5, 3))
    return (_clip255(c[0] * g * ch[0]), _clip255(c[1] * g * ch[1]), _clip255(c[2] * g * ch[2]))


def _shade(c: RGB, k: float) -> RGB:
    return (_clip255(c[0] * k), _clip255(c[1] * k), _clip255(c[2] * k))


class _Pen:
    """Thin helpers over ImageDraw in body coordinates."""

    def __init__(self, draw: ImageDraw.ImageDraw, fr: Frame) -> None:
        self.d, self.fr = draw, fr

    def poly(self, pts: list[tuple[float, float]], c: RGB) -> None:
        self.d.polygon([self.fr.p(x, y) for x, y in pts], fill=(*c, 255))

    def ellipse(self, x: float, y: float, rx: float, ry: float, c: RGB) -> None:
        self.d.ellipse(self.fr.box(x - rx, y - ry, x + rx, y + ry), fill=(*c, 255))

    def chord(self, x: float, y: float, rx: float, ry: float, start: float, end: float, c: RGB) -> None:
        self.d.chord(self.fr.box(x - rx, y - ry, x + rx, y + ry), start, end, fill=(*c, 255))

    def limb(self, x0: float, y0: float, x1: float, y1: float, w0: float, w1: float, c: RGB) -> None:
        dx, dy = x1 - x0, y1 - y0
        n = math.hypot(dx, dy) or 1.0
        nx, ny = -dy / n, dx / n
        self.poly([(x0 + nx * w0 / 2, y0 + ny * w0 / 2), (x1 + nx * w1 / 2, y1 + ny * w1 / 2),
                   (x1 - nx * w1 / 2, y1 - ny * w1 / 2), (x0 - nx * w0 / 2, y0 - ny * w0 / 2)], c)
        self.ellipse(x0, y0, w0 / 2, w0 / 2, c)

    def line(self, pts: list[tuple[float, float]], c: RGB, w: float) -> None:
        self.d.line([self.fr.p(x, y) for x, y in pts], fill=(*c, 255), width=max(1, int(round(w * self.fr.H))))


@dataclass(frozen=True)
class _Look:
    """The colours and shape numbers of one person in one image (identity colours plus jitter)."""

    skin: RGB
    hair: RGB
    top: RGB
    top2: RGB
    bottom: RGB
    shoes: RGB
    bag: RGB
    hat: RGB
    build: float
    hip_y: float


def _look(attrs: Attrs, rng: np.random.Generator, jitter: float) -> _Look:
    def clothing(i: int) -> RGB:
        # the stream is consumed the same way whether or not the item exists
        c = _jitter(rng, palettes.rgb(palettes.CLOTHING, max(i, 0)), jitter)
        return c if i >= 0 else (0, 0, 0)

    hair_style, hair_col = attrs["hair"]  # type: ignore[misc]
    return _Look(
        skin=_jitter(rng, palettes.SKIN[int(attrs["skin"])], jitter * 0.5),  # type: ignore[arg-type]
        hair=_jitter(rng, palettes.HAIR[hair_col], jitter * 0.5),
        top=clothing(int(attrs["top"])),  # type: ignore[arg-type]
        top2=clothing(attrs["pattern"][1]),  # type: ignore[index]
        bottom=clothing(int(attrs["bottom_colour"])),  # type: ignore[arg-type]
        shoes=_jitter(rng, palettes.SHOES[int(attrs["shoes"])], jitter),  # type: ignore[arg-type]
        bag=clothing(attrs["bag"][1]),  # type: ignore[index]
        hat=clothing(attrs["hat"][1]),  # type: ignore[index]
        build=palettes.BUILD_WIDTH[int(attrs["build"])],  # type: ignore[arg-type]
        hip_y=1.0 - palettes.LEG_LENGTH[int(attrs["legs"])],  # type: ignore[arg-type]
    )


def _pattern(layer: Image.Image, pen: _Pen, outline: list[tuple[float, float]], kind: str, c: RGB) -> None:
    """Stripes or checks of colour ``c`` clipped to the polygon ``outline`` (body coordinates)."""
    fr = pen.fr
    pts = [fr.p(x, y) for x, y in outline]
    x0, y0 = int(min(p[0] for p in pts)), int(min(p[1] for p in pts))
    x1, y1 = int(math.ceil(max(p[0] for p in pts))), int(math.ceil(max(p[1] for p in pts)))
    w, h = max(1, x1 - x0), max(1, y1 - y0)
    mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(mask).polygon([(px - x0, py - y0) for px, py in pts], fill=255)
    pat = np.zeros((h, w), dtype=bool)
    period = max(2.0, 0.042 * fr.H)
    thick = max(1.0, 0.4 * period)
    yy = (np.arange(h)[:, None] + (y0 - fr.top)) % period < thick
    pat |= np.broadcast_to(yy, (h, w))
    if kind == "checks":
        xx = (np.arange(w)[None, :] + x0) % period < thick
        pat |= np.broadcast_to(xx, (h, w))
    m = Image.fromarray((np.asarray(mask) > 0) & pat)
    layer.paste((*c, 255), (x0, y0), m.convert("L"))


def draw_person(layer: Image.Image, attrs: Attrs, pose: Pose, fr: Frame, rng: np.random.Generator,
                colour_jitter: float, light_dir: float = 0.0) -> None:
    """Draw one person on the RGBA ``layer`` (feet at ``fr.top + fr.H``)."""
    L = _look(attrs, rng, colour_jitter)
    pen = _Pen(ImageDraw.Draw(layer), fr)
    if pose.view == "side":
        _side(layer, pen, attrs, L, pose)
    else:
        _front_back(layer, pen, attrs, L, pose, back=pose.view == "back")
    _shade_layer(layer, fr, L.build, light_dir, rng)


def _front_back(layer: Image.Image, pen: _Pen, a: Attrs, L: _Look, pose: Pose, back: bool) -> None:
    B, hip = L.build, L.hip_y
    sw, hw = 0.112 * B, 0.085 * B
    hair_style = a["hair"][0]  # type: ignore[index]
    bag_type = BAG_TYPES[a["bag"][0]]  # type: ignore[index]
    bottom = BOTTOM_TYPES[int(a["bottom"])]  # type: ignore[arg-type]
    pattern = PATTERNS[a["pattern"][0]]  # type: ignore[index]
    # mirror: the person's right hand is on the viewer's left from the front, right from the back
    right = 1.0 if back else -1.0
    # behind the body
    if not back and hair_style == 1:
        pen.poly([(-0.058, 0.05), (0.058, 0.05), (0.062, 0.235), (-0.062, 0.235)], L.hair)
    if not back and bag_type == "backpack":
        pen.poly([(-0.085 * B, 0.145), (0.085 * B, 0.145), (0.09 * B, 0.2), (-0.09 * B, 0.2)], _shade(L.bag, 0.85))
    # legs and shoes
    leg_x = 0.043 * B
    ankle = 0.962
    lift = 0.012 * pose.stride
    leg_w0, leg_w1 = 0.07 * B ** 0.6, 0.046
    knee = hip + 0.42 * (ankle - hip)
    for side, dy in ((-1, lift), (1, -lift)):
        x = side * leg_x
        legc = L.bottom if bottom == "trousers" else L.skin
        pen.limb(x, hip + 0.01, x * 0.9, ankle + dy, leg_w0, leg_w1, legc)
        if bottom == "shorts":
            pen.limb(x, hip + 0.01, x * 0.95, knee, leg_w0 * 1.15, leg_w0 * 1.05, L.bottom)
        pen.ellipse(x * 0.9, ankle + 0.014 + dy, 0.034, 0.02, L.shoes)
    if bottom == "trousers":
        pen.poly([(-hw, hip - 0.02), (hw, hip - 0.02), (hw * 0.9, hip + 0.07), (-hw * 0.9, hip + 0.07)], L.bottom)
    elif bottom == "shorts":
        pen.poly([(-hw, hip - 0.02), (hw, hip - 0.02), (hw * 1.02, hip + 0.06), (-hw * 1.02, hip + 0.06)], L.bottom)
    else:
        pen.poly([(-hw, hip - 0.03), (hw, hip - 0.03), (hw * 1.45, hip + 0.21), (-hw * 1.45, hip + 0.21)], L.bottom)
    # torso
    torso = [(-sw * 0.82, 0.152), (sw * 0.82, 0.152), (sw, 0.178), (hw * 1.02, hip + 0.02), (-hw * 1.02, hip + 0.02),
             (-sw, 0.178)]
    pen.poly(torso, L.top)
    if pattern in ("stripes", "checks"):
        _pattern(layer, pen, torso, pattern, L.top2)
    elif pattern == "logo" and not back:
        pen.poly([(-0.042 * B, 0.215), (0.042 * B, 0.215), (0.042 * B, 0.275), (-0.042 * B, 0.275)], L.top2)
    # arms
    sleeve_short = int(a["sleeves"]) == 1
    hand_y = hip + 0.06
    for side in (-1, 1):
        sx = side * (sw - 0.016)
        hx = side * (sw + 0.012)
        w0, w1 = 0.05 * B ** 0.5, 0.036
        if sleeve_short:
            pen.limb(sx, 0.185, hx, hand_y, w0, w1, L.skin)
            ex, ey = sx + 0.32 * (hx - sx), 0.185 + 0.32 * (hand_y - 0.185)
            pen.limb(sx, 0.185, ex, ey, w0 * 1.12, w0 * 1.05, L.top)
        else:
            pen.limb(sx, 0.185, hx, hand_y, w0, w1, L.top)
        pen.ellipse(hx, hand_y + 0.012, 0.02, 0.022, L.skin)
    # bags in front of the body
    if bag_type == "backpack":
        if back:
            pen.poly([(-0.078 * B, 0.175), (0.078 * B, 0.175), (0.084 * B, hip - 0.015), (-0.084 * B, hip - 0.015)], L.bag)
            pen.poly([(-0.06 * B, hip - 0.12), (0.06 * B, hip - 0.12), (0.062 * B, hip - 0.03), (-0.062 * B, hip - 0.03)],
                     _shade(L.bag, 0.78))
        else:
            for side in (-1, 1):
                pen.line([(side * 0.06 * B, 0.16), (side * 0.068 * B, 0.33)], _shade(L.bag, 0.8), 0.016)
    elif bag_type == "shoulder":
        s = -right
        pen.line([(s * sw * 0.7, 0.162), (-s * hw * 0.95, hip - 0.01)], _shade(L.bag, 0.85), 0.014)
        pen.poly([(-s * (hw + 0.03), hip - 0.035), (-s * (hw - 0.04), hip - 0.035), (-s * (hw - 0.04), hip + 0.045),
                  (-s * (hw + 0.03), hip + 0.045)], L.bag)
    elif bag_type == "handbag":
        hx = right * (sw + 0.012)
        pen.line([(hx, hand_y + 0.01), (hx, hand_y + 0.05)], _shade(L.bag, 0.7), 0.008)
        pen.poly([(hx - 0.042, hand_y + 0.045), (hx + 0.042, hand_y + 0.045), (hx + 0.048, hand_y + 0.12),
                  (hx - 0.048, hand_y + 0.12)], L.bag)
    # neck and head
    pen.poly([(-0.02, 0.11), (0.02, 0.11), (0.022, 0.158), (-0.022, 0.158)], _shade(L.skin, 0.9))
    if back:
        pen.ellipse(0, 0.068, 0.047, 0.066, L.skin)
        if hair_style == 1:
            pen.poly([(-0.055, 0.06), (0.055, 0.06), (0.06, 0.245), (-0.06, 0.245)], L.hair)
            pen.ellipse(0, 0.066, 0.05, 0.068, L.hair)
        elif hair_style == 0:
            pen.ellipse(0, 0.06, 0.049, 0.062, L.hair)
        else:
            pen.ellipse(0, 0.05, 0.046, 0.05, L.hair)
    else:
        pen.ellipse(0, 0.058, 0.05, 0.06, L.hair)
        if hair_style == 2:
            pen.ellipse(0, 0.074, 0.046, 0.06, L.skin)
        else:
            pen.ellipse(0, 0.08, 0.042, 0.053, L.skin)
        eye = _shade(L.skin, 0.35)
        pen.ellipse(-0.016, 0.074, 0.0075, 0.006, eye)
        pen.ellipse(0.016, 0.074, 0.0075, 0.006, eye)
    _hat(pen, a, L, 0.0, None if not back else 0)


def _hat(pen: _Pen, a: Attrs, L: _Look, dx: float, facing: int | None) -> None:
    """Cap or beanie; ``facing`` None = front view (brim towards the viewer), 0 = back, +-1 = side."""
    hat = HAT_TYPES[a["hat"][0]]  # type: ignore[index]
    if hat == "none":
        return
    if hat == "cap":
        pen.chord(dx, 0.05, 0.053, 0.05, 180, 360, L.hat)
        if facing is None:
            pen.ellipse(dx, 0.05, 0.052, 0.011, _shade(L.hat, 0.8))
        elif facing != 0:
            pen.poly([(dx + facing * 0.04, 0.042), (dx + facing * 0.092, 0.046), (dx + facing * 0.09, 0.055),
                      (dx + facing * 0.04, 0.055)], _shade(L.hat, 0.8))
    else:
        pen.chord(dx, 0.062, 0.055, 0.064, 180, 360, L.hat)
        pen.poly([(dx - 0.055, 0.055), (dx + 0.055, 0.055), (dx + 0.055, 0.07), (dx - 0.055, 0.07)], _shade(L.hat, 0.85))


def _side(layer: Image.Image, pen: _Pen, a: Attrs, L: _Look, pose: Pose) -> None:
    f = pose.facing
    B, hip = L.build, L.hip_y
    d = 0.062 * B
    hair_style = a["hair"][0]  # type: ignore[index]
    bag_type = BAG_TYPES[a["bag"][0]]  # type: ignore[index]
    bottom = BOTTOM_TYPES[int(a["bottom"])]  # type: ignore[arg-type]
    pattern = PATTERNS[a["pattern"][0]]  # type: ignore[index]
    beta = 0.36 * pose.stride
    alpha = -0.42 * pose.stride
    hip_j = hip + 0.02
    leg_len = 0.962 - hip_j
    arm_len = 0.33
    near_hand_visible = f < 0  # the right hand (handbag) faces the camera when walking to the left

    def leg(angle: float, dim: float) -> None:
        fx, fy = f * leg_len * math.sin(angle), hip_j + leg_len * math.cos(angle)
        legc = L.bottom if bottom == "trousers" else L.skin
        pen.limb(0, hip_j, fx, fy, 0.078 * B ** 0.6, 0.046, _shade(legc, dim))
        if bottom == "shorts":
            kx, ky = f * 0.42 * leg_len * math.sin(angle), hip_j + 0.42 * leg_len * math.cos(angle)
            pen.limb(0, hip_j, kx, ky, 0.088 * B ** 0.6, 0.07, _shade(L.bottom, dim))
        pen.ellipse(fx + f * 0.022, fy + 0.014, 0.046, 0.02, _shade(L.shoes, dim))

    def arm(angle: float, dim: float) -> tuple[float, float]:
        hx, hy = f * arm_len * math.sin(angle), 0.185 + arm_len * math.cos(angle)
        w0 = 0.052 * B ** 0.5
        if int(a["sleeves"]) == 1:
            pen.limb(0, 0.185, hx, hy, w0, 0.036, _shade(L.skin, dim))
            pen.limb(0, 0.185, 0.32 * hx, 0.185 + 0.32 * (hy - 0.185), w0 * 1.15, w0 * 1.05, _shade(L.top, dim))
        else:
            pen.limb(0, 0.185, hx, hy, w0, 0.036, _shade(L.top, dim))
        pen.ellipse(hx, hy + 0.01, 0.02, 0.022, _shade(L.skin, dim))
        return hx, hy

    def handbag(hx: float, hy: float, dim: float) -> None:
        pen.line([(hx, hy + 0.01), (hx, hy + 0.05)], _shade(L.bag, 0.7 * dim), 0.008)
        pen.poly([(hx - 0.035, hy + 0.045), (hx + 0.035, hy + 0.045), (hx + 0.04, hy + 0.12), (hx - 0.04, hy + 0.12)],
                 _shade(L.bag, dim))

    if hair_style == 1:
        pen.poly([(-f * 0.02, 0.05), (-f * 0.058, 0.06), (-f * 0.062, 0.235), (-f * 0.02, 0.235)], L.hair)
    far = arm(-alpha, 0.72)
    if bag_type == "handbag" and not near_hand_visible:
        handbag(*far, 0.72)
    leg(-beta, 0.78)
    if bag_type == "backpack":
        pen.poly([(-f * d * 0.8, 0.17), (-f * (d + 0.07), 0.185), (-f * (d + 0.075), hip - 0.03), (-f * d * 0.8, hip - 0.02)],
                 L.bag)
    leg(beta, 1.0)
    if bottom == "skirt":
        pen.poly([(-f * d, hip - 0.03), (f * d, hip - 0.03), (f * (d + 0.045), hip + 0.21), (-f * (d + 0.055), hip + 0.21)],
                 L.bottom)
    else:
        pen.poly([(-f * d * 0.95, hip - 0.03), (f * d * 0.9, hip - 0.03), (f * d * 0.9, hip + 0.06),
                  (-f * d * 0.95, hip + 0.06)], L.bottom)
    torso = [(-f * d * 0.85, 0.16), (f * d * 0.75, 0.158), (f * d * 1.05, 0.25), (f * d * 0.88, hip + 0.02),
             (-f * d * 0.95, hip + 0.02), (-f * d * 0.92, 0.22)]
    pen.poly(torso, L.top)
    if pattern in ("stripes", "checks"):
        _pattern(layer, pen, torso, pattern, L.top2)
    if bag_type == "backpack":
        pen.line([(-f * d * 0.6, 0.165), (f * d * 0.3, 0.2), (f * d * 0.2, 0.33)], _shade(L.bag, 0.8), 0.014)
    elif bag_type == "shoulder":
        pen.line([(f * d * 0.1, 0.16), (-f * d * 0.3, hip - 0.02)], _shade(L.bag, 0.85), 0.014)
        pen.poly([(-f * (d * 0.2 - 0.03), hip - 0.04), (-f * (d + 0.03), hip - 0.04), (-f * (d + 0.03), hip + 0.04),
                  (-f * (d * 0.2 - 0.03), hip + 0.04)], L.bag)
    near = arm(alpha, 1.0)
    if bag_type == "handbag" and near_hand_visible:
        handbag(*near, 1.0)
    # neck and head in profile
    pen.poly([(-0.02, 0.11), (0.022, 0.11), (0.024, 0.16), (-0.02, 0.16)], _shade(L.skin, 0.9))
    pen.ellipse(f * 0.006, 0.068, 0.05, 0.066, L.skin)
    if hair_style == 2:
        pen.chord(-f * 0.004, 0.062, 0.05, 0.058, 180, 360, L.hair)
    else:
        pen.chord(-f * 0.006, 0.066, 0.052, 0.064, 180, 360, L.hair)
        pen.poly([(-f * 0.05, 0.066), (-f * 0.002, 0.066), (-f * 0.01, 0.11), (-f * 0.046, 0.1)], L.hair)
    pen.ellipse(f * 0.034, 0.072, 0.0075, 0.006, _shade(L.skin, 0.35))
    _hat(pen, a, L, f * 0.004, f)


def _shade_layer(layer: Image.Image, fr: Frame, build: float, light_dir: float, rng: np.random.Generator) -> None:
    """Cylinder-like shading across the body, darker towards the feet, and blotchy cloth folds."""
    x0 = int(max(0, fr.cx - 0.3 * fr.H))
    x1 = int(min(layer.width, fr.cx + 0.3 * fr.H + 1))
    y0 = int(max(0, fr.top - 0.05 * fr.H))
    y1 = int(min(layer.height, fr.top + 1.05 * fr.H + 1))
    if x1 <= x0 or y1 <= y0:
        return
    region = np.array(layer.crop((x0, y0, x1, y1)))
    xs = (np.arange(x0, x1, dtype=np.float32) - fr.cx) / (0.125 * build * fr.H)
    ys = (np.arange(y0, y1, dtype=np.float32) - fr.top) / fr.H
    shade = 1.08 - 0.22 * np.clip(xs - 0.35 * light_dir, -1.6, 1.6) ** 2
    shade = shade[None, :] * (1.04 - 0.12 * np.clip(ys, 0, 1))[:, None]
    folds = Image.fromarray((rng.normal(128, 40, (9, 4))).clip(0, 255).astype(np.uint8))
    folds_arr = np.asarray(folds.resize((x1 - x0, y1 - y0), Image.Resampling.BICUBIC), dtype=np.float32)
    shade *= 1 + 0.09 / 128 * (folds_arr - 128)
    rgb = region[..., :3] * shade[..., None]
    np.minimum(rgb, 255, out=rgb)
    region[..., :3] = rgb
    layer.paste(Image.fromarray(region, "RGBA"), (x0, y0))
