"""Supervised pretraining on a labelled source set: the synthetic suite's stand-in for ImageNet.

Cross-entropy with label smoothing on the BN-neck feature plus batch-hard triplet loss on
the pooled feature, P x K batches of true identities, Adam + StepLR. Writes
``checkpoint.pt`` (backbone weights, classifier dropped) that recipes use as
``model.weights``, and scores it on the source's own query/gallery for a sanity check.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from hcm.config import PretrainConfig
from hcm.data.samplers import IdentitySampler
from hcm.engine.evaluation import evaluate_model
from hcm.engine.loop import EpochLoop, LoopContext, LoopState, format_row
from hcm.engine.setup import DataSplits
from hcm.errors import TrainingError
from hcm.models import build_model, save_weights
from hcm.supervised_losses import batch_hard_triplet_loss, smoothed_cross_entropy
from hcm.utils.environment import describe_environment
from hcm.utils.io import atomic_write_json

log = logging.getLogger(__name__)

PRETRAIN_COLUMNS = ("epoch", "lr", "loss", "loss_ce", "loss_tri", "acc", "train_time_s")


class Pretrainer(EpochLoop):
    cfg: PretrainConfig
    history_columns = PRETRAIN_COLUMNS
    finished_files = ("checkpoint.pt", "summary.json")

    @property
    def checkpoint_path(self) -> Path:
        return self.paths.root / "checkpoint.pt"

    def build_model(self, splits: DataSplits) -> torch.nn.Module:
        return build_model(self.cfg.model, num_classes=int(splits.train["pid"].nunique()), seed=self.cfg.seed)

    def epoch(self, epoch: int, ctx: LoopContext) -> dict[str, Any]:
        cfg, device = self.cfg, ctx.runtime.device
        row: dict[str, Any] = {"epoch": epoch + 1, "lr": ctx.scheduler.get_last_lr()[0]}
        t0 = time.perf_counter()
        train = ctx.splits.train
        labels = train["pid"].to_numpy()
        sampler = IdentitySampler(labels, train["camid"].to_numpy(), batch_size=cfg.sampler.batch_size,
                                  num_instances=cfg.sampler.num_instances, num_batches=cfg.optim.iters,
                                  seed=[cfg.seed, epoch])
        batches = ctx.train_batches(train, sampler, cfg.input, cfg.runtime.workers)
        labels_t = torch.tensor(labels, dtype=torch.long, device=device)
        names = ("loss", "loss_ce", "loss_tri", "acc")
        # summed on the device, read once per epoch (a float() per iteration waits for CUDA)
        sums = torch.zeros(len(names), dtype=torch.float64, device=device)
        ctx.model.train()
        bar = tqdm(batches, desc=f"pretrain epoch {epoch + 1}", disable=not self.progress, leave=False,
                   total=len(sampler))
        for it, (images, indices) in enumerate(bar):
            targets = labels_t[indices]
            ctx.optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, enabled=ctx.runtime.amp):
                pooled, bn = ctx.model.forward_features(images)
                logits = ctx.model.logits(bn)
            loss_ce = smoothed_cross_entropy(logits, targets, cfg.label_smoothing)
            loss_tri = batch_hard_triplet_loss(pooled, targets, cfg.triplet_margin)
            loss = loss_ce + loss_tri
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"non-finite loss at pretraining epoch {epoch + 1}, iteration {it + 1}; training "
                    f"stopped; {self.kept_checkpoint()}. {self.diverged_advice()}"
                )
            ctx.scaler.scale(loss).backward()
            ctx.scaler.step(ctx.optimizer)
            ctx.scaler.update()
            acc = (logits.argmax(1) == targets).float().mean()
            sums += torch.stack([loss, loss_ce, loss_tri, acc]).detach().double()
            if self.progress:
                bar.set_postfix(loss=f"{loss.item():.3f}")
        ctx.scheduler.step()
        row.update({k: v / cfg.optim.iters for k, v in zip(names, sums.tolist(), strict=True)})
        row["train_time_s"] = time.perf_counter() - t0
        log.info("pretrain epoch %d: %s", epoch + 1, format_row(row))
        return row

    def finish(self, ctx: LoopContext, state: LoopState, wall_s: float) -> dict[str, Any]:
        cfg = self.cfg
        save_weights(ctx.model, self.checkpoint_path,
                     {"epoch": state.epoch, "selection": "final", "config": cfg.to_dict()})
        summary: dict[str, Any] = {
            "status": "ok", "epochs": state.epoch, "wall_time_s": round(wall_s, 3),
            "device": str(ctx.runtime.device), "dataset": cfg.dataset.name, "seed": cfg.seed,
            "num_train_ids": int(ctx.splits.train["pid"].nunique()), "num_train_images": len(ctx.splits.train),
            "environment": describe_environment(ctx.runtime.device),
        }
        if len(ctx.splits.query) and len(ctx.splits.gallery):
            res = evaluate_model(ctx.model, ctx.splits.query, ctx.splits.gallery, cfg.input, cfg.eval,
                                 ctx.runtime, workers=cfg.runtime.workers, cache=ctx.cache, feeder=ctx.feeder,
                                 desc="source test", progress=self.progress)
            summary["source_mAP"], summary["source_rank1"] = res.mAP, float(res.cmc[0])
            log.info("pretrained model on the source test split: mAP %.1f%%, rank-1 %.1f%%",
                     100 * res.mAP, 100 * res.cmc[0])
        atomic_write_json(self.paths.root / "summary.json", summary)
        return summary


def pretrain(cfg: PretrainConfig, out_dir: str | Path, *, resume: bool = False, progress: bool = True,
             **checks: Any) -> dict[str, Any]:
    """Pretrain one backbone; see :class:`Pretrainer`."""
    return Pretrainer(cfg, out_dir, resume=resume, progress=progress, **checks).run()
