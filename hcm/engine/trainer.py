"""The training loop of every variant (method.md, "Pipeline"), one implementation for all.

Per epoch: extract features of all training images -> labels (pseudo labels from the
clusterer, or the true identities when ``labels=true``) -> rebuild the identity and
image memories -> ``optim.iters`` steps on P x K batches -> optional evaluation.

What the variants switch is read from the config (the loss terms under ``loss.terms``
and their options, the memories' update rules under ``memory``, ``labels``, ``adapt``);
nothing here branches on the variant name or on a loss term: the memories built are the
ones the configured terms ask for, and all are updated through one interface. The
reported model is the final one (``eval.select=final``) or the best on a validation
split of training identities (``eval.select=val``), never chosen on the test set;
test-set scores logged during training are for curves only.
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
from hcm.memory import Memory, build_memory, update_memories
from hcm.models import build_model, load_weights, save_weights
from hcm.terms import memory_requests, total_loss
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
        labels_t = torch.tensor(labels, dtype=torch.long, device=device)
        memories = build_memories(cfg, feats.to(device), labels_t)

        sampler = IdentitySampler(
            labels, ctx.splits.train["camid"].to_numpy(), batch_size=cfg.sampler.batch_size,
            num_instances=cfg.sampler.num_instances, num_batches=cfg.optim.iters, seed=[cfg.seed, epoch],
        )
        batches = ctx.train_batches(ctx.splits.train, sampler, cfg.input, cfg.runtime.workers)
        sums: dict[str, float] = {}
        ctx.model.train()
        bar = tqdm(batches, desc=f"epoch {epoch + 1} train", disable=not self.progress, leave=False,
                   total=len(sampler))
        for it, (images, indices) in enumerate(bar):
            batch = {"targets": labels_t[indices], "indices": indices}
            ctx.optimizer.zero_grad(set_to_none=True)
            try:
                q, parts = backward_whole_batch(ctx.model, images, batch, memories, cfg.loss.terms,
                                                accum_steps=cfg.sampler.accum_steps, amp=runtime.amp,
                                                scaler=ctx.scaler, diagnostics=cfg.runtime.diagnostics)
            except NonFiniteLoss as exc:
                raise TrainingError(
                    f"non-finite loss at epoch {epoch + 1}, iteration {it + 1} ({format_row(exc.parts)}); "
                    f"training stopped; {self.kept_checkpoint()}. "
                    f"{self.diverged_advice()}"
                ) from None
            ctx.scaler.step(ctx.optimizer)
            ctx.scaler.update()
            # every micro-batch's loss saw the memories of the step's start; now one update, in batch order
            update_memories(memories, q, batch)
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            bar.set_postfix(loss=f"{parts.get('loss', math.nan):.3f}")
        out = {k: v / cfg.optim.iters for k, v in sums.items()}
        out["train_time_s"] = time.perf_counter() - t0
        return out


def build_memories(cfg: TrainConfig, features: torch.Tensor, labels: torch.Tensor) -> dict[str, Memory]:
    """The memories the configured loss terms ask for, from all training features (method.md, "Pipeline")."""
    return {
        name: build_memory(request.kind, features, labels, rule=cfg.memory[name].rule,
                           momentum=float(cfg.memory[name].momentum))
        for name, request in memory_requests(list(cfg.loss.terms)).items()
    }


class NonFiniteLoss(ArithmeticError):
    """The step's loss is NaN or infinite; ``parts`` are its logged values."""

    def __init__(self, parts: dict[str, float]) -> None:
        super().__init__("non-finite loss")
        self.parts = parts


def backward_whole_batch(model: torch.nn.Module, images: torch.Tensor, batch: dict[str, torch.Tensor],
                         memories: dict[str, Memory], terms: dict[str, Any], *, accum_steps: int = 1,
                         amp: bool = False, scaler: torch.amp.GradScaler | None = None,
                         diagnostics: bool = False) -> tuple[torch.Tensor, dict[str, float]]:
    """Accumulate the gradient of the whole batch's loss; return the batch's embeddings (detached) and logs.

    ``sampler.accum_steps`` = 1: one forward and backward. More: the batch is split into
    micro-batches; a no-grad forward of each gives the whole batch's embeddings ``q``, the
    loss and its gradient ``dL/dq`` are computed on the whole batch (so every normaliser, as
    the dynamic factor's batch mean or L_img's mean over anchors, is the whole batch's), then
    each micro-batch is forwarded again and back-propagates its rows of ``dL/dq``. The
    parameter gradient equals the whole batch's (to float rounding) at the cost of one extra
    forward. BatchNorm still normalises each micro-batch with its own statistics in training
    mode (its buffers are restored after the no-grad pass, so running statistics are updated
    once per micro-batch), which no split can avoid. ``diagnostics`` logs the terms' gradient
    norms w.r.t. ``q`` (:func:`hcm.terms.gradient_norms`), which changes no gradient.
    """
    device_type = images.device.type
    accum = accum_steps

    def scaled(loss: torch.Tensor) -> torch.Tensor:
        return loss if scaler is None else scaler.scale(loss)

    if accum == 1:
        with torch.autocast(device_type, enabled=amp):
            q = model(images)
        q = q.float()
        loss, parts = total_loss(q, batch, memories, terms, diagnostics=diagnostics)
        if not torch.isfinite(loss):
            raise NonFiniteLoss(parts)
        scaled(loss).backward()
        return q.detach(), parts
    chunks = images.chunk(accum)
    saved = [b.detach().clone() for b in model.buffers()]
    with torch.no_grad(), torch.autocast(device_type, enabled=amp):
        q_all = torch.cat([model(c).float() for c in chunks])
    with torch.no_grad():
        for buf, old in zip(model.buffers(), saved, strict=True):
            buf.copy_(old)
    q_leaf = q_all.detach().requires_grad_()
    loss, parts = total_loss(q_leaf, batch, memories, terms, diagnostics=diagnostics)
    if not torch.isfinite(loss):
        raise NonFiniteLoss(parts)
    scaled(loss).backward()
    assert q_leaf.grad is not None
    for chunk, grad in zip(chunks, q_leaf.grad.split([len(c) for c in chunks]), strict=True):
        with torch.autocast(device_type, enabled=amp):
            q = model(chunk)
        q.float().backward(grad)
    return q_all, parts


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
