"""Rendering one image: background, clutter, subject, occluder, detector crop, camera pipeline.

``render_image`` is a pure function of ``(context, job, tile)``: all its randomness
comes from the image's own stream ``(name, seed, identity key, image number)``.
The camera pipeline follows a real one: crop and resample at the camera's
resolution, optics blur, illumination gain / colour cast / gradient / saturation /
gamma, sensor noise, JPEG compression at the camera's quality.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from hcm.data.synthetic import palettes
from hcm.data.synthetic.attributes import AttributeSampler, Identity
from hcm.data.synthetic.backgrounds import render_tile
from hcm.data.synthetic.cameras import VIEWS, CameraParams
from hcm.data.synthetic.person import Frame, draw_person, sample_pose
from hcm.data.synthetic.seeding import STREAM_TILE, rng_for
from hcm.data.synthetic.spec import SynthSpec
from hcm.data.synthetic.vehicle import draw_vehicle, sample_view

KIND_CODE = {"person": 0, "vehicle": 1}


@dataclass(frozen=True)
class ImageJob:
    """One file to write: where, whose, which camera, and how it is cropped.

    ``quality`` is ``"normal"``, ``"junk"`` (a badly cropped image of ``key``, identity
    -1 in the file name) or ``"distractor"``. ``copies`` are further paths that get
    the same bytes (VeRi-776's queries are also in its test folder).
    """

    relpath: str
    split: str
    pid: int
    key: int
    image: int
    camera: int
    session: int = 0
    quality: str = "normal"
    copies: tuple[str, ...] = ()


@dataclass(frozen=True)
class RenderContext:
    name: str
    seed: int
    spec: SynthSpec
    identities: dict[int, Identity]
    cameras: tuple[CameraParams, ...]


def output_size(spec: SynthSpec, kind: str) -> tuple[int, int]:
    """(height, width) of the files of ``kind``."""
    return spec.person_size if kind == "person" else spec.vehicle_size


def scene_size(spec: SynthSpec, kind: str) -> tuple[int, int]:
    """(height, width) of the rendered scene around the detector box, supersampled."""
    h, w = output_size(spec, kind)
    ss = spec.supersample
    return (int(h * ss * 1.5), int(w * ss * (2.0 if kind == "person" else 1.5)))


def camera_tile(ctx: RenderContext, camera: int, kind: str) -> np.ndarray:
    """The background tile of ``camera`` for subjects of ``kind`` (deterministic)."""
    hs, ws = scene_size(ctx.spec, kind)
    rng = rng_for(ctx.name, ctx.seed, STREAM_TILE, camera, KIND_CODE[kind])
    return render_tile(ctx.cameras[camera - 1], int(hs * 1.3), int(ws * 3), rng)


def _composite(canvas: Image.Image, layer: Image.Image, haze: float = 0.0,
               haze_colour: tuple[int, int, int] = (128, 128, 128)) -> None:
    """Paint ``layer`` over ``canvas``; ``haze`` > 0 first blends it towards ``haze_colour`` (distance)."""
    box = layer.getbbox()
    if box is None:
        return
    part = layer.crop(box)
    if haze > 0:
        veil = Image.new("RGBA", part.size, (*haze_colour, 255))
        veil.putalpha(part.getchannel("A"))
        part = Image.blend(part, veil, haze)
    canvas.alpha_composite(part, dest=box[:2])


def _random_person(ctx: RenderContext, rng: np.random.Generator) -> dict:
    return AttributeSampler(ctx.spec, "person").sample(rng)


def _random_vehicle(ctx: RenderContext, rng: np.random.Generator) -> dict:
    return AttributeSampler(ctx.spec, "vehicle").sample(rng)


def _person_layer(size: tuple[int, int], ctx: RenderContext, attrs: dict, view: str, rng: np.random.Generator,
                  cx: float, feet: float, height: float, light_dir: float) -> Image.Image:
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    pose = sample_pose(rng, view, ctx.spec.pose_jitter)
    fr = Frame(cx=cx, top=feet - height, H=height, lean=pose.lean, squash=pose.squash)
    draw_person(layer, attrs, pose, fr, rng, ctx.spec.colour_jitter, light_dir)
    return layer


def _vehicle_layer(size: tuple[int, int], ctx: RenderContext, attrs: dict, view: str, rng: np.random.Generator,
                   centre: tuple[float, float], box: tuple[float, float], pitch: float, light_dir: float) -> Image.Image:
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    v = sample_view(rng, view, pitch, ctx.spec.pose_jitter)
    draw_vehicle(layer, attrs, v, rng, centre=centre, size=box, colour_jitter=ctx.spec.colour_jitter,
                 light_dir=light_dir)
    return layer


def _low_occluder(d: ImageDraw.ImageDraw, rng: np.random.Generator, ws: int, y_top: float, y_bot: float) -> None:
    """A bench, car bonnet, bush or barrier across the lower part of the scene."""
    kind = int(rng.integers(4))
    if kind == 0:  # bench
        c = tuple(int(v) for v in rng.integers(60, 150, 3))
        for i in range(3):
            y = y_top + i * (y_bot - y_top) / 3
            d.rectangle([0, y, ws, y + (y_bot - y_top) / 5], fill=(*c, 255))
    elif kind == 1:  # car
        c = palettes.VEHICLE[int(rng.integers(len(palettes.VEHICLE)))][1]
        d.rounded_rectangle([-ws * 0.1, y_top, ws * 1.1, y_bot + 50], radius=(y_bot - y_top) * 0.3, fill=(*c, 255))
        d.rectangle([-ws * 0.1, y_top + (y_bot - y_top) * 0.55, ws * 1.1, y_top + (y_bot - y_top) * 0.62], fill=(30, 30, 32, 255))
    elif kind == 2:  # bush
        for _ in range(int(rng.integers(5, 10))):
            x, r = rng.uniform(0, ws), rng.uniform(0.3, 0.6) * (y_bot - y_top)
            y = y_top + r * rng.uniform(0.6, 1.2)
            g = (int(rng.integers(30, 70)), int(rng.integers(80, 130)), int(rng.integers(30, 60)))
            d.ellipse([x - r, y - r, x + r, y + r], fill=(*g, 255))
        d.rectangle([0, y_top + (y_bot - y_top) * 0.5, ws, y_bot + 50], fill=(44, 96, 40, 255))
    else:  # striped barrier
        h = (y_bot - y_top) * 0.35
        d.rectangle([0, y_top, ws, y_top + h], fill=(226, 226, 220, 255))
        step = max(4.0, h * 1.5)
        x = -step
        while x < ws:
            d.polygon([(x, y_top + h), (x + step / 2, y_top), (x + step, y_top), (x + step / 2, y_top + h)], fill=(200, 30, 30, 255))
            x += step
        for xp in (ws * 0.2, ws * 0.8):
            d.rectangle([xp, y_top + h, xp + h * 0.4, y_bot + 50], fill=(120, 120, 120, 255))


def render_image(ctx: RenderContext, job: ImageJob, tile: np.ndarray) -> tuple[bytes, dict]:
    """JPEG bytes of ``job`` and a small record of what was drawn (view, occluder)."""
    spec = ctx.spec
    ident = ctx.identities[job.key]
    kind = ident.kind
    cam = ctx.cameras[job.camera - 1]
    rng = rng_for(ctx.name, ctx.seed, job.key, job.image)
    ss = spec.supersample
    H, W = output_size(spec, kind)
    hb, wb = H * ss, W * ss
    hs, ws = scene_size(spec, kind)
    view = VIEWS[int(rng.choice(3, p=np.array(cam.views) / sum(cam.views)))]
    oy = int(rng.integers(0, tile.shape[0] - hs + 1))
    ox = int(rng.integers(0, tile.shape[1] - ws + 1))
    canvas = Image.fromarray(tile[oy:oy + hs, ox:ox + ws]).convert("RGBA")
    size = canvas.size
    cx, cy = ws / 2, hs / 2
    scale = cam.scale * math.exp(rng.normal(0, 0.04))
    info: dict = {"view": view, "occluder": "none", "clutter": False}
    clutter = rng.random() < spec.clutter_prob
    haze_c = tuple(int(v) for v in tile[oy:oy + hs:6, ox:ox + ws:6].reshape(-1, 3).mean(0))
    subject_present = not (job.quality == "distractor" and rng.random() < 0.35)
    if kind == "person":
        hp = hb * scale
        feet = cy + hp / 2
        if clutter:
            s = rng.uniform(0.5, 0.8)
            x = cx + rng.choice([-1, 1]) * rng.uniform(0.3, 0.75) * wb
            layer = _person_layer(size, ctx, _random_person(ctx, rng), VIEWS[int(rng.integers(3))], rng, x,
                                  feet - rng.uniform(0.08, 0.25) * hp, hp * s, cam.light_dir)
            _composite(canvas, layer, haze=0.25, haze_colour=haze_c)
            info["clutter"] = True
        if subject_present:
            sw_, sh_ = int(0.4 * hp), int(0.1 * hp)
            sh = Image.new("L", (sw_, sh_), 0)
            ImageDraw.Draw(sh).ellipse([0.1 * sw_, 0.25 * sh_, 0.9 * sw_, 0.7 * sh_], fill=70)
            canvas.paste((10, 10, 10, 255), (int(cx - sw_ / 2), int(feet - 0.45 * sh_)),
                         sh.filter(ImageFilter.GaussianBlur(0.02 * hp)))
            _composite(canvas, _person_layer(size, ctx, ident.attrs, view, rng, cx, feet, hp, cam.light_dir))
        occ_kinds, occ_p = ("person", "pole", "low"), (0.4, 0.25, 0.35)
    else:
        box = (wb * scale, hb * scale)
        if clutter:
            off = rng.choice([-1, 1]) * rng.uniform(0.45, 0.75) * wb
            layer = _vehicle_layer(size, ctx, _random_vehicle(ctx, rng), VIEWS[int(rng.integers(3))], rng,
                                   (cx + off, cy - 0.2 * hb), (box[0] * 0.8, box[1] * 0.8), cam.pitch, cam.light_dir)
            _composite(canvas, layer, haze=0.2, haze_colour=haze_c)
            info["clutter"] = True
        if subject_present:
            _composite(canvas, _vehicle_layer(size, ctx, ident.attrs, view, rng, (cx, cy), box, cam.pitch, cam.light_dir))
        occ_kinds, occ_p = ("vehicle", "pole", "person", "foliage"), (0.35, 0.25, 0.25, 0.15)
    if rng.random() < spec.occlusion_prob:
        occ = occ_kinds[int(rng.choice(len(occ_kinds), p=np.array(occ_p)))]
        info["occluder"] = occ
        layer = Image.new("RGBA", size, (0, 0, 0, 0))
        d = ImageDraw.Draw(layer)
        side = rng.choice([-1, 1])
        if occ == "person":
            h_o = hb * scale * rng.uniform(1.05, 1.3) * (1.0 if kind == "person" else 0.9)
            x = cx + side * rng.uniform(0.38, 0.62) * wb
            layer = _person_layer(size, ctx, _random_person(ctx, rng), VIEWS[int(rng.integers(3))], rng, x,
                                  cy + hb * 0.5 + rng.uniform(0.0, 0.12) * hb, h_o, cam.light_dir)
        elif occ == "vehicle":
            off = side * rng.uniform(0.55, 0.8) * wb
            layer = _vehicle_layer(size, ctx, _random_vehicle(ctx, rng), VIEWS[int(rng.integers(3))], rng,
                                   (cx + off, cy + 0.15 * hb), (wb * 1.1, hb * 1.1), cam.pitch, cam.light_dir)
        elif occ == "pole":
            x = cx + side * rng.uniform(0.05, 0.4) * wb
            w = rng.uniform(0.07, 0.18) * wb
            c = [(110, 110, 112), (40, 40, 44), (46, 90, 56), (150, 120, 80)][int(rng.integers(4))]
            d.rectangle([x - w / 2, 0, x + w / 2, hs], fill=(*c, 255))
            d.rectangle([x - w / 2, 0, x - w / 6, hs], fill=(*tuple(min(255, int(v * 1.3)) for v in c), 255))
        elif occ == "low":
            top = cy + hb * (0.5 - rng.uniform(0.2, 0.45))
            _low_occluder(d, rng, ws, top, cy + hb * 0.5)
        else:  # foliage
            y = cy - hb * rng.uniform(0.2, 0.45)
            for _ in range(int(rng.integers(6, 12))):
                x, r = cx + side * rng.uniform(0.2, 0.8) * wb, rng.uniform(0.1, 0.25) * wb
                yy = y - rng.uniform(0, 0.6) * hb
                g = (int(rng.integers(25, 60)), int(rng.integers(70, 120)), int(rng.integers(25, 55)))
                d.ellipse([x - r, yy - r, x + r, yy + r], fill=(*g, 255))
        canvas.alpha_composite(layer)
    # detector box
    cj = spec.crop_jitter
    if job.quality == "junk":
        dx = rng.choice([-1, 1]) * rng.uniform(0.3, 0.55) * wb
        dy = rng.choice([-1, 1]) * rng.uniform(0.15, 0.35) * hb
        cs = math.exp(rng.uniform(-0.5, 0.4))
    elif job.quality == "distractor" and subject_present and rng.random() < 0.5:
        dx, dy, cs = rng.choice([-1, 1]) * rng.uniform(0.25, 0.5) * wb, rng.normal(0, 0.1) * hb, math.exp(rng.uniform(-0.6, 0.2))
    else:
        dx, dy, cs = rng.normal(0, cj) * wb, rng.normal(0, 0.7 * cj) * hb, math.exp(rng.normal(0, 0.8 * cj))
    bw, bh = min(wb * cs, ws), min(hb * cs, hs)
    x0 = float(np.clip(cx + dx - bw / 2, 0, ws - bw))
    y0 = float(np.clip(cy + dy - bh / 2, 0, hs - bh))
    res = cam.resolution * math.exp(rng.normal(0, 0.05))
    rw, rh = max(4, round(W * min(res, 1.0))), max(4, round(H * min(res, 1.0)))
    img = canvas.convert("RGB").resize((rw, rh), Image.Resampling.LANCZOS, box=(x0, y0, x0 + bw, y0 + bh),
                                       reducing_gap=2.0)
    if (rw, rh) != (W, H):
        img = img.resize((W, H), Image.Resampling.BILINEAR)
    blur = cam.blur * math.exp(rng.normal(0, 0.25))
    if blur > 0.15:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    arr = np.asarray(img, dtype=np.float32) / 255.0
    arr = camera_response(arr, cam, job.session, rng, spec.illum_jitter)
    noise = cam.noise / 255.0 * math.exp(rng.normal(0, 0.2))
    if noise > 0:
        luma = rng.normal(0, noise, arr.shape[:2])[..., None]
        arr = arr + 0.6 * luma + rng.normal(0, 0.6 * noise, arr.shape)
    out = Image.fromarray((arr.clip(0, 1) * 255 + 0.5).astype(np.uint8))
    quality = int(np.clip(cam.jpeg_quality + rng.integers(-4, 5), 1, 100))
    buf = io.BytesIO()
    out.save(buf, format="JPEG", quality=quality)
    return buf.getvalue(), info


def camera_response(arr: np.ndarray, cam: CameraParams, session: int, rng: np.random.Generator, illum_jitter: float) -> np.ndarray:
    """Illumination and colour of ``cam`` applied to linear-ish RGB in [0, 1], shape (H, W, 3)."""
    h, w = arr.shape[:2]
    gain = cam.gain * cam.session_gain[session] * math.exp(rng.normal(0, illum_jitter))
    warm = cam.session_warmth[session]
    cast = np.array(cam.cast, dtype=np.float32) * np.array([1 + warm, 1.0, 1 - warm], dtype=np.float32)
    xs = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
    ys = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
    ramp = 1 + cam.gradient[0] * xs + cam.gradient[1] * ys
    out = arr * (gain * cast)[None, None, :] * ramp[..., None]
    grey = out.mean(axis=2, keepdims=True)
    out = grey + cam.saturation * (out - grey)
    return np.clip(out, 0, 1) ** cam.gamma
