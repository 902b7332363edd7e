"""Shared pieces of the benchmarks: best-of timing and the bare model workloads.

The "bare" workloads run a model on tensors already in memory (no loader, no losses,
no memory updates): the reference the benchmarks measure the real code path against
(``bench_train_step.py``) or compare model sizes with (``bench_width.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn


def sync(device: torch.device) -> None:
    """Wait for queued CUDA work, so that a timer measures it (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_of(fn: Callable[[], None], repeats: int) -> float:
    """Fastest of ``repeats`` timed calls of ``fn`` (seconds), after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bare_train_steps(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, iters: int, *,
                     amp: bool) -> None:
    """``iters`` optimiser steps of ``model`` on the batch ``x``: forward, sum of the output, backward, step."""
    model.train()
    for _ in range(iters):
        opt.zero_grad(set_to_none=True)
        with torch.autocast(x.device.type, enabled=amp):
            out = model(x)
        out.float().sum().backward()
        opt.step()
    sync(x.device)


def bare_inference(model: nn.Module, xs: torch.Tensor, n_images: int, *, amp: bool) -> None:
    """Eval-mode forward passes over ``n_images`` images in batches of ``len(xs)`` (slices of ``xs``)."""
    model.eval()
    with torch.inference_mode(), torch.autocast(xs.device.type, enabled=amp):
        for start in range(0, n_images, len(xs)):
            model(xs[: min(len(xs), n_images - start)])
    sync(xs.device)
