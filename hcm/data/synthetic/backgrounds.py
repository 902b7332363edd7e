"""Camera backgrounds: one textured tile per camera, cropped at a random place per image.

A tile is drawn once per camera (from the camera's own random stream) with Pillow:
street, brick, indoor, park, shop-front and concrete scenes for people; road,
junction, parking and highway scenes for vehicles. Colours come from the camera's
scene tint, so cameras differ in background as well as in illumination.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from hcm.data.synthetic.cameras import SCENE_TINTS, CameraParams

RGB = tuple[int, int, int]


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(int(round((1 - t) * x + t * y)) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def _jit(rng: np.random.Generator, c: RGB, amount: float) -> RGB:
    return tuple(int(np.clip(x * (1 + rng.normal(0, amount)), 0, 255)) for x in c)  # type: ignore[return-value]


def lowfreq(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Smooth noise in about [-1, 1] with about ``cells`` blobs across the short side."""
    ch = max(2, int(cells * h / min(h, w)))
    cw = max(2, int(cells * w / min(h, w)))
    small = Image.fromarray(((rng.normal(0, 1, (ch, cw)) * 40 + 128).clip(0, 255)).astype(np.uint8))
    return (np.asarray(small.resize((w, h), Image.BICUBIC), dtype=np.float32) - 128) / 80


def _perspective_ground(d: ImageDraw.ImageDraw, rng: np.random.Generator, w: int, h: int, y0: int,
                        colour: RGB, line: RGB, tiles: bool) -> None:
    d.rectangle([0, y0, w, h], fill=colour)
    if not tiles:
        return
    gap = max(3, (h - y0) // 14)
    y, k = y0, 1.0
    while y < h:
        d.line([0, y, w, y], fill=line, width=max(1, gap // 6))
        y += int(gap * k)
        k *= 1.25
    vx = rng.uniform(0.3, 0.7) * w
    for i in range(-12, 13):
        d.line([vx + i * w * 0.04, y0, vx + i * w * 0.22, h], fill=line, width=max(1, gap // 6))


def _windows(d: ImageDraw.ImageDraw, rng: np.random.Generator, w: int, y1: int, glass: RGB, frame: RGB) -> None:
    ww = int(rng.uniform(0.05, 0.09) * w)
    wh = int(ww * rng.uniform(0.9, 1.6))
    gx, gy = int(ww * rng.uniform(0.5, 1.2)), int(wh * rng.uniform(0.4, 0.8))
    y = gy // 2
    while y + wh < y1 - gy // 2:
        x = int(rng.uniform(0, gx))
        while x + ww < w:
            d.rectangle([x - 2, y - 2, x + ww + 2, y + wh + 2], fill=frame)
            d.rectangle([x, y, x + ww, y + wh], fill=_jit(rng, glass, 0.12))
            x += ww + gx
        y += wh + gy


def render_tile(cam: CameraParams, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """The camera's background tile, ``(height, width, 3)`` uint8."""
    tint = SCENE_TINTS[cam.scene_colour]
    img = Image.new("RGB", (width, height), tint)
    d = ImageDraw.Draw(img)
    hy = int(cam.horizon * height)
    scene = cam.scene
    grey: RGB = (128, 128, 126)
    if scene == "pavement":
        d.rectangle([0, 0, width, hy], fill=tint)
        _windows(d, rng, width, hy, (60, 72, 84), _mix(tint, (240, 240, 240), 0.4))
        _perspective_ground(d, rng, width, height, hy, _mix(grey, tint, 0.3), _mix(grey, (60, 60, 60), 0.4), True)
    elif scene == "brick":
        brick = _mix(tint, (150, 70, 50), 0.5)
        mortar = _mix(tint, (210, 205, 195), 0.6)
        d.rectangle([0, 0, width, hy + height // 5], fill=mortar)
        bh = max(3, height // 40)
        bw = bh * 3
        for r, y in enumerate(range(0, hy + height // 5, bh + 1)):
            off = (r % 2) * bw // 2
            for x in range(-bw, width, bw + 1):
                d.rectangle([x + off, y, x + off + bw - 1, y + bh - 1], fill=_jit(rng, brick, 0.08))
        _perspective_ground(d, rng, width, height, hy + height // 5, _mix(grey, tint, 0.2), (90, 90, 90), True)
    elif scene == "indoor":
        wall = _mix(tint, (225, 222, 214), 0.5)
        d.rectangle([0, 0, width, hy], fill=wall)
        for _ in range(int(rng.integers(1, 4))):  # doors and posters
            x = int(rng.uniform(0, width))
            pw, ph = int(rng.uniform(0.05, 0.15) * width), int(rng.uniform(0.3, 0.8) * hy)
            d.rectangle([x, hy - ph, x + pw, hy], fill=_jit(rng, _mix(tint, (90, 70, 50), 0.5), 0.2))
        d.rectangle([0, hy - height // 60, width, hy], fill=_mix(wall, (40, 40, 40), 0.5))
        floor = _mix(tint, (190, 186, 176), 0.6)
        _perspective_ground(d, rng, width, height, hy, floor, _mix(floor, (80, 80, 80), 0.3), True)
    elif scene == "grass":
        d.rectangle([0, 0, width, hy], fill=_mix((150, 170, 190), tint, 0.3))
        for _ in range(int(width / 12)):
            cx, cy = rng.uniform(0, width), rng.uniform(0.1, 1.0) * hy
            r = rng.uniform(0.04, 0.12) * height
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=_jit(rng, (46, 82, 40), 0.2))
        d.rectangle([0, hy, width, height], fill=_mix((70, 120, 50), tint, 0.25))
        px = rng.uniform(0.1, 0.4) * width
        d.polygon([(px, hy), (px + 0.5 * width, hy), (width * 1.2, height), (-0.2 * width, height)],
                  fill=_mix((170, 160, 140), tint, 0.3))
    elif scene == "shopfront":
        d.rectangle([0, 0, width, hy], fill=tint)
        sign = _jit(rng, tuple(int(v) for v in rng.integers(30, 230, 3)), 0.0)  # type: ignore[arg-type]
        d.rectangle([0, 0, width, hy // 6], fill=sign)
        x = 0
        while x < width:
            pw = int(rng.uniform(0.12, 0.3) * width)
            d.rectangle([x + 3, hy // 5, x + pw - 3, hy - 2], fill=_jit(rng, (92, 112, 128), 0.15))
            d.line([x + 3, hy - 2, x + pw // 2, hy // 5], fill=(170, 182, 190), width=2)
            x += pw
        _perspective_ground(d, rng, width, height, hy, _mix(grey, tint, 0.35), (100, 100, 100), True)
    elif scene == "concrete":
        d.rectangle([0, 0, width, hy], fill=_mix(tint, (160, 158, 150), 0.5))
        for x in range(0, width, max(4, width // int(rng.integers(4, 9)))):
            d.line([x, 0, x, hy], fill=_mix(tint, (90, 90, 90), 0.5), width=2)
        _perspective_ground(d, rng, width, height, hy, _mix(grey, tint, 0.25), (110, 110, 110), False)
    else:  # vehicle scenes: asphalt with markings
        asphalt = _mix((72, 72, 76), tint, 0.2)
        top = int(cam.horizon * 0.5 * height)
        d.rectangle([0, 0, width, top], fill=_mix((80, 110, 60), tint, 0.4))
        d.rectangle([0, top, width, top + height // 30], fill=(150, 150, 146))
        d.rectangle([0, top + height // 30, width, height], fill=asphalt)
        paint = (222, 222, 210) if rng.random() < 0.7 else (214, 180, 40)
        ang = rng.uniform(-0.6, 0.6)
        lw = max(2, height // 60)
        if scene in ("road", "highway"):
            for i in range(-3, 5):
                x0 = i * width / 3 + rng.uniform(0, width / 6)
                for y in range(top, height, height // 10):
                    d.line([x0 + ang * (y - top), y, x0 + ang * (y + height // 20 - top), y + height // 20],
                           fill=paint, width=lw)
            if scene == "highway":
                d.rectangle([0, top - height // 20, width, top + height // 40], fill=(160, 160, 156))
        elif scene == "junction":
            y0 = int(rng.uniform(0.5, 0.8) * height)
            for x in range(0, width, max(6, width // 16)):
                d.rectangle([x, y0, x + max(3, width // 32), y0 + height // 8], fill=paint)
        else:  # parking
            for x in range(0, width, max(8, width // 6)):
                d.line([x, top, x + ang * height, height], fill=paint, width=lw)
    arr = np.asarray(img, dtype=np.float32)
    arr *= 1 + 0.12 * lowfreq(rng, height, width, 4)[..., None]
    arr += rng.normal(0, 6, arr.shape).astype(np.float32)
    out = Image.fromarray(arr.clip(0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(0.6))
    return np.asarray(out)
