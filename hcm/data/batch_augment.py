"""The train and test transforms of :mod:`hcm.data.transforms` as tensor ops over a whole batch.

Input: a uint8 batch (B, h, w, 3) from the image store (:mod:`hcm.data.store`), on the
training device. Output: float32 (B, 3, H, W) in channels-last memory (what the models
use), on the same device. Steps, in the per-image pipeline's order:

1. resize to (H, W) when the store is not at the input size (bicubic with antialiasing,
   ``torch.nn.functional.interpolate``; close to PIL's bicubic, not bit-equal);
2. horizontal flip with probability ``flip_p``;
3. zero padding by ``pad`` and a random (H, W) crop (offsets uniform in 0..2 pad);
4. ``x / 255``, then ``(x - mean) / std`` (ConvertImageDtype + Normalize, same arithmetic);
5. Cluster Contrast's random erasing with probability ``erasing_p`` (box sampling as
   :class:`hcm.data.transforms.ClusterContrastErasing`, filled with the ``mean`` numbers).

Without a resize, the deterministic parts give exactly the per-image pipeline's tensor for
the same flip, crop and box (``tests/data/test_batch_augment.py``). The random parameters
are drawn on the CPU from a ``torch.Generator`` (:func:`draw_params`) that the caller
seeds from the sampler's augmentation seeds, so a batch's augmentation is a pure function
of ``(run seed, epoch, iteration)``: the same on CPU and GPU, and after ``--resume``. The
per-sample distributions are those of the per-image transforms (flip rate, crop offsets,
erasing boxes); the streams differ, so the drawn values differ.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hcm.config import InputConfig

#: Cluster Contrast's erasing: area fraction U(SL, SH), aspect U(R1, 1/R1), ATTEMPTS tries
ERASE_SL, ERASE_SH, ERASE_R1, ERASE_ATTEMPTS = 0.02, 0.4, 0.3, 100


@dataclass(frozen=True)
class AugmentParams:
    """Per-sample random choices of one batch (CPU int64/bool tensors of length B)."""

    flip: torch.Tensor
    top: torch.Tensor
    left: torch.Tensor
    erase: torch.Tensor
    erase_top: torch.Tensor
    erase_left: torch.Tensor
    erase_h: torch.Tensor
    erase_w: torch.Tensor

    def to(self, device: torch.device) -> AugmentParams:
        return AugmentParams(**{k: v.to(device, non_blocking=True) for k, v in vars(self).items()})


def draw_params(n: int, cfg: InputConfig, generator: torch.Generator) -> AugmentParams:
    """The random choices of ``n`` samples at the input size of ``cfg``, from ``generator``."""
    height, width = cfg.height, cfg.width
    flip = torch.rand(n, generator=generator) < cfg.flip_p
    span = 2 * cfg.pad + 1
    top = torch.randint(0, span, (n,), generator=generator)
    left = torch.randint(0, span, (n,), generator=generator)
    erase = torch.rand(n, generator=generator) < cfg.erasing_p
    eh, ew = _erase_sizes(n, height, width, generator)
    erase &= eh > 0  # no attempt fitted: the image is left unchanged
    eh, ew = eh.where(erase, 0), ew.where(erase, 0)
    u = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    etop = torch.floor(u[:, 0] * (height - eh + 1)).long().clamp_max(height - eh)
    eleft = torch.floor(u[:, 1] * (width - ew + 1)).long().clamp_max(width - ew)
    return AugmentParams(flip=flip, top=top, left=left, erase=erase, erase_top=etop, erase_left=eleft,
                         erase_h=eh, erase_w=ew)


def _erase_sizes(n: int, height: int, width: int, generator: torch.Generator,
                 chunk: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Box (h, w) of each sample: its first of ``ERASE_ATTEMPTS`` attempts that fits, (0, 0) if none.

    Attempts are drawn ``chunk`` at a time for all samples (most fit within a few); the
    samples still without a box draw the next chunk, until all fit or the attempts run out.
    """
    area = height * width
    eh = torch.zeros(n, dtype=torch.long)
    ew = torch.zeros(n, dtype=torch.long)
    todo = torch.arange(n)
    for start in range(0, ERASE_ATTEMPTS, chunk):
        if len(todo) == 0:
            break
        m, k = len(todo), min(chunk, ERASE_ATTEMPTS - start)
        target = area * (ERASE_SL + (ERASE_SH - ERASE_SL) * torch.rand(m, k, generator=generator,
                                                                         dtype=torch.float64))
        aspect = ERASE_R1 + (1.0 / ERASE_R1 - ERASE_R1) * torch.rand(m, k, generator=generator, dtype=torch.float64)
        hs = torch.round(torch.sqrt(target * aspect)).long()
        ws = torch.round(torch.sqrt(target / aspect)).long()
        fits = (hs < height) & (ws < width)
        found = fits.any(dim=1)
        first = fits.long().argmax(dim=1, keepdim=True)
        eh[todo[found]] = hs.gather(1, first)[found, 0]
        ew[todo[found]] = ws.gather(1, first)[found, 0]
        todo = todo[~found]
    return eh, ew


def _resize(images: torch.Tensor, cfg: InputConfig) -> torch.Tensor:
    """uint8 (B, h, w, 3) -> uint8 (B, H, W, 3), bicubic with antialiasing (no-op at the input size)."""
    if tuple(images.shape[1:3]) == (cfg.height, cfg.width):
        return images
    x = images.permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(cfg.height, cfg.width), mode="bicubic", antialias=True, align_corners=False)
    return x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def _normalise_nhwc(images: torch.Tensor, cfg: InputConfig) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float32 (B, H, W, 3), ``(x / 255 - mean) / std`` (contiguous: one pass each)."""
    x = images.to(torch.float32).div_(255)  # in place: the same division as ``/ 255``, no second buffer
    mean = torch.tensor(cfg.mean, dtype=torch.float32, device=x.device)
    std = torch.tensor(cfg.std, dtype=torch.float32, device=x.device)
    return x.sub_(mean).div_(std)


def _to_nchw(x: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) -> the (B, 3, H, W) view, which is channels-last memory."""
    return x.permute(0, 3, 1, 2)


def eval_batch(images: torch.Tensor, cfg: InputConfig) -> torch.Tensor:
    """The test transform of a uint8 (B, h, w, 3) batch: resize if needed, normalise."""
    return _to_nchw(_normalise_nhwc(_resize(images, cfg).contiguous(), cfg))


def train_batch(images: torch.Tensor, params: AugmentParams, cfg: InputConfig, *,
                vectorised: bool | None = None) -> torch.Tensor:
    """The train transform of a uint8 (B, h, w, 3) batch with the choices ``params``.

    ``vectorised`` (default: on any device but the CPU) crops and erases with whole-batch
    index ops (a few kernels on a GPU); otherwise with one slice copy per sample, which on a
    CPU moves only the bytes kept. Both give the same tensor (tested).
    """
    x = _resize(images, cfg)
    if vectorised is None:
        vectorised = x.device.type != "cpu"
    p = params.to(x.device)
    padded = F.pad(x, (0, 0, cfg.pad, cfg.pad, cfg.pad, cfg.pad)) if cfg.pad else x
    cropped = _crop_vectorised(padded, p, cfg) if vectorised else _crop_loop(padded, p, cfg)
    out = _normalise_nhwc(cropped, cfg)
    if cfg.erasing_p > 0:
        fill = torch.tensor(cfg.mean, dtype=out.dtype, device=out.device)
        out = _erase_vectorised(out, p, fill) if vectorised else _erase_loop(out, p, fill)
    return _to_nchw(out)


def _crop_vectorised(padded: torch.Tensor, p: AugmentParams, cfg: InputConfig) -> torch.Tensor:
    """Flip and crop as one gather from the zero-padded batch. The mirror of the padded image
    is the padded mirror (the padding is symmetric), so column c of a flipped sample is column
    (W + 2 pad - 1) - c of the padded original."""
    n, height, width, device = padded.shape[0], cfg.height, cfg.width, padded.device
    rows = p.top[:, None] + torch.arange(height, device=device)
    cols = p.left[:, None] + torch.arange(width, device=device)
    cols = torch.where(p.flip[:, None], width + 2 * cfg.pad - 1 - cols, cols)
    picked = padded[torch.arange(n, device=device)[:, None], rows]  # (B, H, W + 2 pad, 3)
    return torch.gather(picked, 2, cols[:, None, :, None].expand(n, height, width, 3))


def _crop_loop(padded: torch.Tensor, p: AugmentParams, cfg: InputConfig) -> torch.Tensor:
    """:func:`_crop_vectorised` with one slice copy per sample."""
    out = torch.empty((padded.shape[0], cfg.height, cfg.width, 3), dtype=padded.dtype, device=padded.device)
    for i, (top, left, flip) in enumerate(zip(p.top.tolist(), p.left.tolist(), p.flip.tolist(), strict=True)):
        window = padded[i, top:top + cfg.height]
        if flip:  # columns right to left: the window of the mirrored padded image
            stop = padded.shape[2] - left
            window = window[:, stop - cfg.width:stop].flip(1)
        else:
            window = window[:, left:left + cfg.width]
        out[i] = window
    return out


def _erase_vectorised(out: torch.Tensor, p: AugmentParams, fill: torch.Tensor) -> torch.Tensor:
    inside_r = _in_span(out.shape[1], p.erase_top, p.erase_h * p.erase)  # (B, H); no rows if not erased
    inside_c = _in_span(out.shape[2], p.erase_left, p.erase_w)
    return torch.where(inside_r[:, :, None, None] & inside_c[:, None, :, None], fill, out)


def _erase_loop(out: torch.Tensor, p: AugmentParams, fill: torch.Tensor) -> torch.Tensor:
    for i in torch.nonzero(p.erase).flatten().tolist():
        top, left = int(p.erase_top[i]), int(p.erase_left[i])
        out[i, top:top + int(p.erase_h[i]), left:left + int(p.erase_w[i])] = fill
    return out


def _in_span(length: int, start: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """(B, length) bool: position in [start, start + size) of each sample."""
    pos = torch.arange(length, device=start.device)[None, :]
    return (pos >= start[:, None]) & (pos < (start + size)[:, None])
