"""The training loop of every variant (method.md, "Pipeline"), one implementation for all.

Per epoch: extract features of all training images -> labels (pseudo labels from the
clusterer, or the true identities when ``labels=true``) -> rebuild the identity and
image memories -> ``optim.iters`` steps on P x K batches -> optional evaluation.

What the variants switch is read from the config (``loss.identity``, ``loss.image``,
``loss.dynamic_factor``, ``labels``, ``adapt``); nothing here branches on the variant
name. The reported model is the final one (``eval.select=final``) or the best on a
validation split of training identities (``eval.select=val``), never chosen on the
test set; test-set scores logged during training are for curves only.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from hcm.cluster import build_clusterer, label_agreement
from hcm.config import TrainConfig
from hcm.data.samplers import IdentitySampler
from hcm.engine.evaluation import evaluate_model, extract_table
from hcm.engine.loop import EpochLoop, LoopContext, LoopState, format_row
from hcm.engine.setup import DataSplits
from hcm.errors import TrainingError
from hcm.losses import hcm_loss
from hcm.memory import IdentityMemory, ImageMemory, PendingUpdates
from hcm.models import build_model, load_weights, save_weights
from hcm.utils.environment import describe_environment
from hcm.utils.io import atomic_write_json

log = logging.getLogger(__name__)


class Trainer(EpochLoop):
    """Trains one (dataset, variant, seed) run into ``out_dir``."""

    cfg: TrainConfig

    def num_epochs(self) -> int:
        return self.cfg.optim.epochs if self.cfg.adapt else 0

    def build_model(self, splits: DataSplits) -> torch.nn.Module:
        return build_model(self.cfg.model, seed=self.cfg.seed)

    def _meta(self, epoch: int, selection: str) -> dict[str, Any]:
        return {"epoch": epoch, "selection": selection, "config": self.cfg.to_dict()}

    def on_best(self, ctx: LoopContext, state: LoopState) -> None:
        save_weights(ctx.model, self.paths.best, self._meta(state.epoch, "val"))

    def finish(self, ctx: LoopContext, state: LoopState, wall_s: float) -> dict[str, Any]:
        cfg = self.cfg
        if not cfg.adapt:
            selection, epoch = "initial", 0
        elif cfg.eval.select == "val" and state.best_epoch >= 0:
            selection, epoch = "val", state.best_epoch
            ctx.model.load_state_dict(load_weights(self.paths.best)["model"])
        else:
            if cfg.eval.select == "val":
                log.warning("eval.select=val but no validation split was scored (dataset.val_fraction=0?); "
                            "reporting the final checkpoint")
            selection, epoch = "final", state.epoch
        save_weights(ctx.model, self.paths.model, self._meta(epoch, selection))
        summary = {
            "status": "ok", "selection": selection, "selected_epoch": epoch, "epochs": state.epoch,
            "wall_time_s": round(wall_s, 3), "device": str(ctx.runtime.device), "amp": ctx.runtime.amp,
            "dataset": cfg.dataset.name, "variant": cfg.variant, "seed": cfg.seed,
            "environment": describe_environment(ctx.runtime.device),
            # when training ended (UTC); it started wall_time_s earlier (the sum over resumed sessions)
            "finished_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        }
        atomic_write_json(self.paths.summary, summary)
        log.info("finished %s: %s checkpoint of epoch %d in %.1f s", self.paths.root, selection, epoch, wall_s)
        return summary

    def epoch(self, epoch: int, ctx: LoopContext) -> dict[str, Any]:
        cfg, splits, runtime = self.cfg, ctx.splits, ctx.runtime
        row: dict[str, Any] = {"epoch": epoch + 1, "lr": ctx.scheduler.get_last_lr()[0]}
        t0 = time.perf_counter()
        feats = extract_table(ctx.model, splits.train, cfg.input, cfg.eval, runtime,
                              workers=cfg.runtime.workers, cache=ctx.cache, feeder=ctx.feeder,
                              desc=f"epoch {epoch + 1} extract")
        row["extract_time_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        true_ids = splits.train["pid"].to_numpy()
        if cfg.labels == "true":
            labels = true_ids.copy()
        else:
            labels, summary = build_clusterer(cfg.cluster, use_gpu=runtime.device.type == "cuda")(feats.numpy())
            log.info("epoch %d clustering: %s", epoch + 1, summary)
        row["cluster_time_s"] = time.perf_counter() - t0
        # diagnostics only: the true identities never feed back into training
        row.update(label_agreement(labels, true_ids))

        num_clusters = len(np.unique(labels[labels >= 0]))
        if num_clusters < 2:
            log.warning("epoch %d: clustering found %d cluster(s) among %d images; this epoch's training is "
                        "skipped (try another cluster.eps)", epoch + 1, num_clusters, len(labels))
            row["skipped"] = True
        else:
            row.update(self._train_steps(epoch, ctx, feats, labels))
            row["skipped"] = False
        with warnings.catch_warnings():
            # the schedule counts epochs, trained or skipped; torch warns when no optimiser step came first
            warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step", UserWarning)
            ctx.scheduler.step()

        if cfg.eval.every and ((epoch + 1) % cfg.eval.every == 0 or epoch + 1 == cfg.optim.epochs):
            res = evaluate_model(ctx.model, splits.query, splits.gallery, cfg.input, cfg.eval, runtime,
                                 workers=cfg.runtime.workers, cache=ctx.cache, feeder=ctx.feeder,
                                 desc=f"epoch {epoch + 1} test")
            row["test_mAP"], row["test_rank1"] = res.mAP, float(res.cmc[0])
        if splits.val_query is not None:
            res = evaluate_model(ctx.model, splits.val_query, splits.val_gallery, cfg.input, cfg.eval, runtime,
                                 workers=cfg.runtime.workers, cache=ctx.cache, feeder=ctx.feeder,
                                 desc=f"epoch {epoch + 1} val")
            row["val_mAP"], row["val_rank1"] = res.mAP, float(res.cmc[0])
        log.info("epoch %d: %s", epoch + 1, format_row(row))
        return row

    def _train_steps(self, epoch: int, ctx: LoopContext, feats: torch.Tensor, labels: np.ndarray) -> dict[str, float]:
        """``optim.iters`` optimiser steps; memories updated after each step, in batch order."""
        cfg, runtime = self.cfg, ctx.runtime
        device = runtime.device
        t0 = time.perf_counter()
        feats_dev = feats.to(device)
        labels_t = torch.tensor(labels, dtype=torch.long, device=device)
        id_mem = IdentityMemory.from_features(feats_dev, labels_t) if cfg.loss.identity else None
        img_mem = ImageMemory(feats_dev, labels_t) if cfg.loss.image else None

        sampler = IdentitySampler(
            labels, ctx.splits.train["camid"].to_numpy(), batch_size=cfg.sampler.batch_size,
            num_instances=cfg.sampler.num_instances, num_batches=cfg.optim.iters, seed=[cfg.seed, epoch],
        )
        batches = ctx.train_batches(ctx.splits.train, sampler, cfg.input, cfg.runtime.workers)
        accum = cfg.sampler.accum_steps
        sums: dict[str, float] = {}
        ctx.model.train()
        bar = tqdm(batches, desc=f"epoch {epoch + 1} train", disable=not self.progress, leave=False,
                   total=len(sampler))
        for it, (images, indices) in enumerate(bar):
            targets = labels_t[indices]
            ctx.optimizer.zero_grad(set_to_none=True)
            # all micro-batches see the memories as they were at the start of the step
            pending, step_parts = PendingUpdates(), {}
            for img_mb, idx_mb, tgt_mb in zip(images.chunk(accum), indices.chunk(accum), targets.chunk(accum),
                                               strict=True):
                with torch.autocast(device.type, enabled=runtime.amp):
                    q = ctx.model(img_mb)
                loss, parts = hcm_loss(q.float(), identity_memory=id_mem, image_memory=img_mem,
                                       targets=tgt_mb, indices=idx_mb, cfg=cfg.loss)
                if not torch.isfinite(loss):
                    raise TrainingError(
                        f"non-finite loss at epoch {epoch + 1}, iteration {it + 1} ({format_row(parts)}); "
                        f"training stopped; {self.kept_checkpoint()}. "
                        "Lower optim.lr or set runtime.amp=off, then continue with --resume"
                    )
                ctx.scaler.scale(loss / accum).backward()
                pending.add(q.detach().float(), tgt_mb, idx_mb)
                for k, v in parts.items():
                    step_parts[k] = step_parts.get(k, 0.0) + v / accum
            ctx.scaler.step(ctx.optimizer)
            ctx.scaler.update()
            pending.apply(id_mem, img_mem, momentum_identity=cfg.memory.momentum_identity,
                          momentum_image=cfg.memory.momentum_image)
            for k, v in step_parts.items():
                sums[k] = sums.get(k, 0.0) + v
            bar.set_postfix(loss=f"{step_parts.get('loss', math.nan):.3f}")
        out = {k: v / cfg.optim.iters for k, v in sums.items()}
        out["train_time_s"] = time.perf_counter() - t0
        return out


def train(cfg: TrainConfig, out_dir: str | Path, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train one run; see :class:`Trainer`."""
    return Trainer(cfg, out_dir, resume=resume, progress=progress).run()
