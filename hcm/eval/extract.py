"""Feature extraction: batched inference of a model over image files, optional flip averaging."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from hcm.data.feeder import StoreFeeder
from hcm.data.images import ImageCache, ImageDataset, Transform
from hcm.errors import HCMError

logger = logging.getLogger(__name__)


def extract_features(
    model: torch.nn.Module,
    paths: Sequence[str],
    transform: Transform,
    *,
    batch_size: int = 256,
    device: torch.device | str,
    flip: bool = False,
    amp: bool = False,
    workers: int = 0,
    progress: bool = True,
    desc: str = "extract",
    cache: ImageCache | None = None,
) -> torch.Tensor:
    """L2-normalised embeddings (N, d), float32 on the CPU, in the order of ``paths``.

    ``model(x)`` maps a batch (B, C, H, W) to embeddings (B, d). The model runs in eval
    mode under ``torch.inference_mode()`` and its training mode is restored afterwards.
    ``flip=True`` returns ``normalize(f(x) + f(hflip(x)))``. ``amp`` enables autocast on
    CUDA only (it is ignored on the CPU). ``transform`` turns a PIL image (or a cached uint8
    tensor, see :class:`hcm.data.images.ImageCache`) into a float tensor.
    ``cache`` (an :class:`hcm.data.images.ImageCache`) keeps decoded images for later calls.
    """
    _check_args(batch_size, len(paths))
    device = torch.device(device)
    dataset = ImageDataset(paths, transform, cache)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
        pin_memory=device.type == "cuda", persistent_workers=False,
    )
    batches = ((images.to(device, non_blocking=True), index) for images, index in loader)
    return embed_batches(model, batches, len(dataset), device=device, flip=flip, amp=amp, progress=progress,
                         desc=desc, total=len(loader))


def extract_store_features(model: torch.nn.Module, feeder: StoreFeeder, paths: Sequence[str], *,
                           batch_size: int = 256, flip: bool = False, amp: bool = False, progress: bool = True,
                           desc: str = "extract") -> torch.Tensor:
    """:func:`extract_features` of ``paths`` read from the image store of ``feeder``: no decoding,
    the test transform batched on the device (:func:`hcm.data.batch_augment.eval_batch`)."""
    _check_args(batch_size, len(paths))
    rows = feeder.rows_of(paths)
    return embed_batches(model, feeder.eval_batches(rows, batch_size), len(rows), device=feeder.device, flip=flip,
                         amp=amp, progress=progress, desc=desc, total=-(-len(rows) // batch_size))


def embed_batches(model: torch.nn.Module, batches: Iterable[tuple[torch.Tensor, Any]], n: int, *,
                  device: torch.device, flip: bool, amp: bool, progress: bool, desc: str,
                  total: int | None = None) -> torch.Tensor:
    """L2-normalised embeddings (n, d) on the CPU of ``(images on device, positions)`` batches.

    The features stay on the device until the last batch (one copy back, no sync per batch).
    """
    use_amp = amp and device.type == "cuda"
    was_training = model.training
    model.eval()
    feats: torch.Tensor | None = None
    t0 = time.perf_counter()
    try:
        with torch.inference_mode():
            for images, index in tqdm(batches, desc=desc, disable=not progress, unit="batch", total=total):
                with torch.autocast(device_type=device.type, enabled=use_amp):
                    out = _embed(model, images)
                    if flip:
                        out = out + _embed(model, torch.flip(images, dims=[-1]))
                out = F.normalize(out.float(), dim=1)
                if feats is None:
                    feats = torch.empty(n, out.shape[1], dtype=torch.float32, device=out.device)
                feats[index] = out
    finally:
        model.train(was_training)
    assert feats is not None
    feats = feats.cpu()
    logger.info("%s: %d images -> %d-d features in %.1f s (flip=%s, amp=%s, %s)", desc, n,
                feats.shape[1], time.perf_counter() - t0, flip, use_amp, device)
    return feats


def _check_args(batch_size: int, n: int) -> None:
    if batch_size < 1:
        raise HCMError(f"extract_features: batch_size must be >= 1, got {batch_size}")
    if n == 0:
        raise HCMError("extract_features: no images to extract features from (empty path list)")


def _embed(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    out = model(images)
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != images.shape[0]:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise HCMError(f"extract_features: the model must return (batch, dim) embeddings in eval mode, "
                       f"got {shape} for a batch of {images.shape[0]}")
    return out
