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
from hcm.engine.history import write_history
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

#: config keys a resumed run may change when asked (``--allow-change``): the fix a diverged run needs
RESUME_CHANGEABLE: tuple[str, ...] = ("optim.lr",)


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

    #: columns of epochs.csv (None: those of a training run, :func:`hcm.engine.history.epoch_columns`)
    history_columns: tuple[str, ...] | None = None
    #: files only a finished run has (replaced only with ``overwrite`` when no checkpoint is left)
    finished_files: tuple[str, ...] = ("model.pt", "train_summary.json")

    def __init__(self, cfg: Any, out_dir: str | Path, *, resume: bool = False, progress: bool = True,
                 overwrite: bool = False, allow_change: tuple[str, ...] = ()) -> None:
        bad = sorted(set(allow_change) - set(RESUME_CHANGEABLE))
        if bad:
            raise ConfigError(f"--allow-change {', '.join(bad)}: a resumed run may change only "
                              f"{', '.join(RESUME_CHANGEABLE)} (the runtime section may always change)")
        self.cfg = cfg
        self.paths = RunPaths(Path(out_dir))
        self.resume = resume
        self.progress = progress
        self.overwrite = overwrite
        self.allow_change = tuple(allow_change)

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
    def _prepare_dir(self) -> dict[str, Any] | None:
        """Check the run directory, write ``config.yaml``; return the checkpoint to resume from (or None).

        Nothing of an earlier run is lost: a checkpoint is continued only with ``resume``
        and an unchanged config (compared with the stored ``config.yaml`` *and* the config
        inside the checkpoint, so a deleted ``config.yaml`` hides nothing), and the outputs
        of a finished run without a checkpoint are replaced only with ``overwrite``.
        """
        paths = self.paths
        if paths.root.exists() and not paths.root.is_dir():
            raise ConfigError(f"{paths.root}: --out-dir names a file, not a folder; pass a folder path "
                              "(it is created if absent)")
        paths.root.mkdir(parents=True, exist_ok=True)
        has_ckpt = paths.last.is_file()
        if has_ckpt and not self.resume:
            raise ConfigError(
                f"{paths.last}: this run directory already holds a checkpoint; pass --resume to continue "
                "it, or delete the directory to start again"
            )
        finished = [name for name in self.finished_files if (paths.root / name).is_file()]
        if not has_ckpt and finished and not self.overwrite:
            raise ConfigError(
                f"{paths.root}: holds a finished run ({', '.join(finished)}) and no checkpoints/last.pt to "
                "continue; pass --overwrite to replace it, or use another --out-dir"
            )
        ckpt = load_checkpoint(paths.last) if has_ckpt else None
        if ckpt is not None:
            new = self.cfg.to_dict()
            stored = [(paths.last, ckpt.get("config") or {})]
            if paths.config.is_file():
                stored.insert(0, (paths.config, yaml.safe_load(paths.config.read_text(encoding="utf-8")) or {}))
            for source, old in stored:
                diff = [k for k in config_differences(old, new) if k not in self.allow_change]
                if diff:
                    allowed = [k for k in diff if k in RESUME_CHANGEABLE]
                    hint = (f"; to continue with the new {', '.join(allowed)} pass "
                            + " ".join(f"--allow-change {k}" for k in allowed)) if allowed == diff else ""
                    raise ConfigError(
                        f"{source}: cannot resume, the run was started with a different config "
                        f"(differing: {', '.join(diff)}){hint}; otherwise use another --out-dir or delete this one"
                    )
        atomic_write_text(paths.config, dump_yaml(self.cfg))
        return ckpt

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
        ckpt = self._prepare_dir()
        runtime = setup_runtime(self.cfg.runtime)
        splits = load_splits(self.cfg.dataset, self.cfg.seed)
        ctx = self.make_context(self.build_model(splits).to(runtime.device), splits, runtime)
        state = LoopState()
        if ckpt is not None:
            ctx.model.load_state_dict(ckpt["model"])
            ctx.optimizer.load_state_dict(ckpt["optimizer"])
            ctx.scheduler.load_state_dict(ckpt["scheduler"])
            ctx.scaler.load_state_dict(ckpt["scaler"])
            state = LoopState(**ckpt["state"])
            self._apply_changed_lr(ctx)
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

    def _apply_changed_lr(self, ctx: LoopContext) -> None:
        """After loading a checkpoint: a new ``optim.lr`` (``--allow-change optim.lr``) replaces the
        stored base rate; the schedule's decay so far applies to it as it did to the old one."""
        new = float(self.cfg.optim.lr)
        base = ctx.scheduler.base_lrs
        if all(b == new for b in base):
            return
        for group, old in zip(ctx.optimizer.param_groups, base, strict=True):
            group["lr"] = group["lr"] * new / old
            group["initial_lr"] = new
        ctx.scheduler.base_lrs = [new] * len(base)
        ctx.scheduler._last_lr = [g["lr"] for g in ctx.optimizer.param_groups]  # what get_last_lr() reports
        log.info("resuming with optim.lr=%g instead of %g (--allow-change optim.lr)", new, base[0])

    def diverged_advice(self) -> str:
        """What to run after a non-finite loss (advice that ``--resume`` accepts)."""
        return (f"Continue at a lower rate with --resume --set optim.lr={self.cfg.optim.lr / 10:g} "
                "--allow-change optim.lr (or with --resume --set runtime.amp=off when AMP was on)")

    def kept_checkpoint(self) -> str:
        """Which checkpoint survives a failed epoch (for error messages)."""
        if self.paths.last.is_file():
            return f"the last good checkpoint {self.paths.last} is kept"
        return "no checkpoint had been written yet (the failure came in the first epoch)"

    def on_best(self, ctx: LoopContext, state: LoopState) -> None:
        """Called when the validation score improves (default: nothing)."""


def config_differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts, the ``runtime`` section
    excepted (device, threads and workers may change between sessions)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            if prefix == "" and key == "runtime":
                continue
            out += config_differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [prefix[:-1]]


def format_row(row: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())
