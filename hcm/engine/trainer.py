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
from hcm.cluster.features import FeatureError
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
        trained = any(not row.get("skipped", False) for row in state.history)
        status = "ok"
        if cfg.adapt and state.history and not trained:
            status = "not_trained"
        elif cfg.adapt and state.history and state.history[-1].get("skipped") and getattr(self, "degenerate", False):
            # trained, then its features collapsed (known when this session ran the last epoch)
            status = "diverged"
        summary = {
            "status": status, "selection": selection, "selected_epoch": epoch, "epochs": state.epoch,
            "wall_time_s": round(wall_s, 3), "device": str(ctx.runtime.device), "amp": ctx.runtime.amp,
            "dataset": cfg.dataset.name, "variant": cfg.variant, "seed": cfg.seed,
            "environment": describe_environment(ctx.runtime.device),
            # when training ended (UTC); it started wall_time_s earlier (the sum over resumed sessions)
            "finished_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        }
        if status != "ok":
            what = (f"no epoch was trained (all {state.epoch} skipped)" if status == "not_trained"
                    else "the final epoch was skipped")
            summary["reason"] = (f"{what}; last epoch: "
                                 + getattr(self, "skip_reason", "fewer than two clusters (see train.log)"))
            log.error("%s: %s", self.paths.root, summary["reason"])
        atomic_write_json(self.paths.summary, summary)
        log.info("finished %s: %s checkpoint of epoch %d in %.1f s", self.paths.root, selection, epoch, wall_s)
        return summary

    def epoch(self, epoch: int, ctx: LoopContext) -> dict[str, Any]:
        cfg, splits, runtime = self.cfg, ctx.splits, ctx.runtime
        row: dict[str, Any] = {"epoch": epoch + 1, "lr": ctx.scheduler.get_last_lr()[0]}
        t0 = time.perf_counter()
        feats = extract_table(ctx.model, splits.train, cfg.input, cfg.eval, runtime,
                              workers=cfg.runtime.workers, cache=ctx.cache, feeder=ctx.feeder,
                              desc=f"epoch {epoch + 1} extract", progress=self.progress)
        row["extract_time_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        true_ids = splits.train["pid"].to_numpy()
        if cfg.labels == "true":
            labels = true_ids.copy()
        else:
            try:
                labels, summary = build_clusterer(cfg.cluster, use_gpu=runtime.device.type == "cuda")(feats.numpy())
            except FeatureError as exc:  # NaN / zero / near-identical features: a diverged model or bad weights
                raise TrainingError(f"epoch {epoch + 1}: clustering refused the training features ({exc}); "
                                    f"training stopped; {self.degenerate_advice(epoch)}") from None
            log.info("epoch %d clustering: %s", epoch + 1, summary)
        row["cluster_time_s"] = time.perf_counter() - t0
        # diagnostics only: the true identities never feed back into training
        row.update(label_agreement(labels, true_ids))

        num_clusters = len(np.unique(labels[labels >= 0]))
        if num_clusters < 2:
            self.degenerate, hint = skip_hint(feats, cfg)
            self.skip_reason = f"clustering found {num_clusters} cluster(s) among {len(labels)} images: {hint}"
            log.warning("epoch %d: %s; this epoch's training is skipped", epoch + 1, self.skip_reason)
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
                                 desc=f"epoch {epoch + 1} test", progress=self.progress)
            row["test_mAP"], row["test_rank1"] = res.mAP, float(res.cmc[0])
        if splits.val_query is not None:
            res = evaluate_model(ctx.model, splits.val_query, splits.val_gallery, cfg.input, cfg.eval, runtime,
                                 workers=cfg.runtime.workers, cache=ctx.cache, feeder=ctx.feeder,
                                 desc=f"epoch {epoch + 1} val", progress=self.progress)
            row["val_mAP"], row["val_rank1"] = res.mAP, float(res.cmc[0])
        log.info("epoch %d: %s", epoch + 1, format_row(row))
        return row

    def degenerate_advice(self, epoch: int) -> str:
        """What to do when the model entering ``epoch`` (0-based) gives degenerate features: the initial
        model's come from ``model.weights``; later ones from the checkpoint, which resuming would reload."""
        cfg = self.cfg
        if epoch == 0:
            return f"the initial model gives them: check model.weights ({cfg.model.weights})"
        return (f"the model after epoch {epoch} (the checkpoint {self.paths.last}) gives them, so resuming it "
                f"cannot help: training diverged; start again in another --out-dir with a lower rate "
                f"(--set optim.lr={cfg.optim.lr / 10:g}), or check model.weights ({cfg.model.weights})")

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
                        f"{self.diverged_advice()}"
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


#: features whose mean pairwise cosine similarity exceeds this have collapsed to about one point
#: (measured on the tests' tiny synth-market: 0.945 for an untrained resnet18 with weights=none,
#: 0.99999998 after an epoch at optim.lr=0.3)
COLLAPSED_SIMILARITY = 0.999


def skip_hint(feats: torch.Tensor, cfg: TrainConfig) -> tuple[bool, str]:
    """Why clustering found fewer than two clusters, and the fix: ``(True, ...)`` for features
    collapsed to about one point (a diverged model or degenerate weights), ``(False, ...)`` for a
    clustering radius that does not fit. (Non-finite features never get here: the clusterer
    refuses them with its own message.)"""
    unit = torch.nn.functional.normalize(feats.double(), dim=1)
    similarity = float(unit.mean(0).square().sum())  # mean cosine similarity over all pairs
    if similarity > COLLAPSED_SIMILARITY:
        return True, (f"the features have collapsed (mean cosine similarity {similarity:.4f}): the model "
                      f"diverged or its weights are degenerate; lower optim.lr (now {cfg.optim.lr:g}) or check "
                      f"model.weights ({cfg.model.weights})")
    return False, (f"cluster.eps={cfg.cluster.eps:g} / cluster.min_samples={cfg.cluster.min_samples} do not fit "
                   "these features; try another cluster.eps (larger merges more) or a smaller cluster.min_samples")


def train(cfg: TrainConfig, out_dir: str | Path, *, resume: bool = False, progress: bool = True,
          overwrite: bool = False, allow_change: tuple[str, ...] = ()) -> dict[str, Any]:
    """Train one run; see :class:`Trainer` (and :meth:`EpochLoop._prepare_dir` for ``overwrite`` and
    ``allow_change``)."""
    return Trainer(cfg, out_dir, resume=resume, progress=progress, overwrite=overwrite,
                   allow_change=allow_change).run()
