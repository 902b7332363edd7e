"""Shared pieces of the benchmarks: their common options, best-of timing and the bare model workloads.

The "bare" workloads run a model on tensors already in memory (no loader, no losses,
no memory updates): the reference the benchmarks measure the real code path against
(``bench_train_step.py``) or compare model sizes with (``bench_width.py``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hcm.config import TrainConfig, load_train_config

REPO = Path(__file__).resolve().parents[1]


def add_recipe_args(ap: argparse.ArgumentParser, *, iters: int, iters_help: str) -> None:
    """The options every benchmark takes: --recipe, --iters, --repeats, --threads, --device."""
    ap.add_argument("--recipe", default=str(REPO / "workflow/recipes/synth-small.yaml"))
    ap.add_argument("--iters", type=int, default=iters, help=iters_help)
    ap.add_argument("--repeats", type=int, default=3, help="measurements (the best is reported)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="auto")


def add_step_args(ap: argparse.ArgumentParser, *, example: str) -> None:
    """The options of the training-step benchmarks: :func:`add_recipe_args`, --train-ids, --set."""
    add_recipe_args(ap, iters=10, iters_help="optimiser steps per measurement")
    ap.add_argument("--train-ids", type=int, default=60, help="identities of the generated synth-market")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help=f"override a recipe value, e.g. --set {example}")


def synth_training(cfg: TrainConfig, train_ids: int, folder: str | Path) -> tuple[Any, Any, nn.Module, Any]:
    """``(dataset, splits, model, runtime)``: a generated synth-market in ``folder`` (``train_ids``
    identities, 10 test identities) and ``cfg``'s model on ``cfg``'s device, randomly initialised."""
    from hcm.data import load_dataset
    from hcm.engine.setup import DataSplits, setup_runtime
    from hcm.models import build_model

    runtime = setup_runtime(cfg.runtime)
    ds = load_dataset("synth-market", folder, synth_overrides={"train_ids": train_ids, "test_ids": 10})
    splits = DataSplits(ds, ds.train, ds.query, ds.gallery)
    return ds, splits, build_model(cfg.model, seed=0).to(runtime.device), runtime


def load_recipe(args: argparse.Namespace, extra: Sequence[str] = ()) -> TrainConfig:
    """The recipe with the benchmark's device and threads, randomly initialised weights, then ``extra``."""
    return load_train_config(args.recipe, [
        f"runtime.device={args.device}", "model.weights=none",
        *([f"runtime.threads={args.threads}"] if args.threads else []), *extra,
    ])


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
