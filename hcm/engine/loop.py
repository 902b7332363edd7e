"""The epoch loop shared by HCM training and supervised pretraining.

It owns the run directory: the resolved config, the per-epoch history
(``epochs.csv``), the checkpoint written atomically after every epoch
(``checkpoints/last.pt``) and resuming from it. Subclasses say what an epoch does
and what the run produces at the end.

Every random draw of an epoch derives from ``(seed, epoch)`` (sampler order,
augmentation seeds); model initialisation from ``seed``. So a run resumed from its
checkpoint ends with the same weights as an uninterrupted run (bit for bit on the CPU).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml

from hcm.config import InputConfig, dump_yaml
from hcm.data.feeder import StoreFeeder
from hcm.data.images import ImageCache, ImageDataset
from hcm.data.samplers import IdentitySampler
from hcm.data.transforms import build_train_transform
from hcm.engine.checkpoint import load_checkpoint, save_checkpoint
from hcm.engine.history import EPOCH_COLUMNS, write_history
from hcm.engine.setup import (
    DataSplits,
    Runtime,
    build_feeder,
    build_optimizer,
    build_scheduler,
    load_splits,
    setup_runtime,
)
from hcm.errors import ConfigError
from hcm.utils.io import atomic_write_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunPaths:
    """Files of one run directory (the contract with evaluation, MLflow logging and reports)."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def epochs(self) -> Path:
        return self.root / "epochs.csv"

    @property
    def last(self) -> Path:
        return self.root / "checkpoints" / "last.pt"

    @property
    def best(self) -> Path:
        return self.root / "checkpoints" / "best.pt"

    @property
    def model(self) -> Path:
        return self.root / "model.pt"

    @property
    def summary(self) -> Path:
        return self.root / "train_summary.json"


@dataclass
class LoopState:
    """Everything besides model/optimiser weights that a resumed run needs."""

    epoch: int = 0  # completed epochs
    history: list[dict[str, Any]] = field(default_factory=list)
    best_val: float = -math.inf
    best_epoch: int = -1
    elapsed_s: float = 0.0


@dataclass
class LoopContext:
    """What an epoch works with."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    splits: DataSplits
    runtime: Runtime
    cache: ImageCache | None = None  # decoded images kept across epochs (runtime.cache_images)
    feeder: StoreFeeder | None = None  # batches from the image store (runtime.image_store), built once per run

    def train_batches(self, table: pd.DataFrame, sampler: IdentitySampler,
                      input_cfg: InputConfig, workers: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(augmented images, table indices) on the device for every batch of ``sampler``: from the
        image store, augmented on the device; or (store off) decoded and transformed per image in a
        ``DataLoader`` with ``workers`` processes."""
        device = self.runtime.device
        if self.feeder is not None:
            return self.feeder.train_batches(self.feeder.rows_of(list(table["path"])), sampler)
        loader = torch.utils.data.DataLoader(
            ImageDataset(list(table["path"]), build_train_transform(input_cfg), self.cache),
            batch_sampler=sampler, num_workers=workers, pin_memory=device.type == "cuda",
        )
        return ((images.to(device, non_blocking=True), indices.to(device)) for images, indices in loader)


class EpochLoop:
    """Run ``num_epochs`` epochs into ``out_dir``; subclasses implement the hooks below."""

    history_columns: tuple[str, ...] = EPOCH_COLUMNS

    def __init__(self, cfg: Any, out_dir: str | Path, *, resume: bool = False, progress: bool = True) -> None:
        self.cfg = cfg
        self.paths = RunPaths(Path(out_dir))
        self.resume = resume
        self.progress = progress

    # hooks --------------------------------------------------------------
    def num_epochs(self) -> int:
        return int(self.cfg.optim.epochs)

    def build_model(self, splits: DataSplits) -> torch.nn.Module:
        raise NotImplementedError

    def epoch(self, epoch: int, ctx: LoopContext) -> dict[str, Any]:
        """Train one epoch (0-based ``epoch``) and return its history row."""
        raise NotImplementedError

    def finish(self, ctx: LoopContext, state: LoopState, wall_s: float) -> dict[str, Any]:
        raise NotImplementedError

    # machinery ------------------------------------------------------------
    def _prepare_dir(self) -> bool:
        """Write or compare ``config.yaml``; return whether to resume from a checkpoint."""
        paths = self.paths
        paths.root.mkdir(parents=True, exist_ok=True)
        has_ckpt = paths.last.is_file()
        if has_ckpt and not self.resume:
            raise ConfigError(
                f"{paths.last}: this run directory already holds a checkpoint; pass --resume to continue "
                "it, or delete the directory to start again"
            )
        if has_ckpt and paths.config.is_file():
            old = yaml.safe_load(paths.config.read_text(encoding="utf-8")) or {}
            new = self.cfg.to_dict()
            # the runtime section (device, threads, workers) may change between sessions
            diff = sorted(k for k in set(old) | set(new) if k != "runtime" and old.get(k) != new.get(k))
            if diff:
                raise ConfigError(
                    f"{paths.config}: cannot resume, the run was started with a different config "
                    f"(differing: {', '.join(diff)}); use another --out-dir or delete this one"
                )
        atomic_write_text(paths.config, dump_yaml(self.cfg))
        return has_ckpt

    def save_state(self, ctx: LoopContext, state: LoopState) -> None:
        save_checkpoint(self.paths.last, {
            "model": ctx.model.state_dict(), "optimizer": ctx.optimizer.state_dict(),
            "scheduler": ctx.scheduler.state_dict(), "scaler": ctx.scaler.state_dict(),
            "state": asdict(state), "config": self.cfg.to_dict(),
        })

    def make_context(self, model: torch.nn.Module, splits: DataSplits, runtime: Runtime) -> LoopContext:
        """Optimizer, schedule, grad scaler and image cache of this loop's config around ``model``."""
        optimizer = build_optimizer(model, self.cfg.optim)
        return LoopContext(
            model=model, optimizer=optimizer, scheduler=build_scheduler(optimizer, self.cfg.optim),
            scaler=torch.amp.GradScaler(runtime.device.type, enabled=runtime.amp), splits=splits,
            runtime=runtime, cache=ImageCache() if self.cfg.runtime.cache_images else None,
            feeder=build_feeder(self.cfg, splits, runtime, progress=self.progress),
        )

    def run(self) -> dict[str, Any]:
        resuming = self._prepare_dir()
        runtime = setup_runtime(self.cfg.runtime)
        splits = load_splits(self.cfg.dataset, self.cfg.seed)
        ctx = self.make_context(self.build_model(splits).to(runtime.device), splits, runtime)
        state = LoopState()
        if resuming:
            ckpt = load_checkpoint(self.paths.last)
            ctx.model.load_state_dict(ckpt["model"])
            ctx.optimizer.load_state_dict(ckpt["optimizer"])
            ctx.scheduler.load_state_dict(ckpt["scheduler"])
            ctx.scaler.load_state_dict(ckpt["scaler"])
            state = LoopState(**ckpt["state"])
            log.info("resuming %s after epoch %d", self.paths.root, state.epoch)

        total = self.num_epochs()
        started = time.perf_counter() - state.elapsed_s
        for epoch in range(state.epoch, total):
            row = self.epoch(epoch, ctx)
            state.history.append(row)
            state.epoch = epoch + 1
            val = row.get("val_mAP", math.nan)
            if isinstance(val, float) and not math.isnan(val) and val > state.best_val:
                state.best_val, state.best_epoch = val, state.epoch
                self.on_best(ctx, state)
            state.elapsed_s = time.perf_counter() - started
            write_history(self.paths.epochs, state.history, self.history_columns)
            if state.epoch % self.cfg.runtime.checkpoint_every == 0 or state.epoch == total:
                self.save_state(ctx, state)
        write_history(self.paths.epochs, state.history, self.history_columns)
        return self.finish(ctx, state, time.perf_counter() - started)

    def kept_checkpoint(self) -> str:
        """Which checkpoint survives a failed epoch (for error messages)."""
        if self.paths.last.is_file():
            return f"the last good checkpoint {self.paths.last} is kept"
        return "no checkpoint had been written yet (the failure came in the first epoch)"

    def on_best(self, ctx: LoopContext, state: LoopState) -> None:
        """Called when the validation score improves (default: nothing)."""


def format_row(row: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())
