"""Score a model or a checkpoint on a query/gallery pair (the test set or the validation split)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from hcm.config import EvalConfig, InputConfig, TrainConfig
from hcm.data.feeder import StoreFeeder
from hcm.data.images import ImageCache
from hcm.data.transforms import build_test_transform
from hcm.engine.setup import Runtime, build_feeder, load_splits, setup_runtime
from hcm.eval import RankResult, evaluate_features, extract_features
from hcm.eval.extract import extract_store_features
from hcm.models import build_model, load_weights
from hcm.utils.environment import describe_environment


def extract_table(model: torch.nn.Module, table: pd.DataFrame, input_cfg: InputConfig, eval_cfg: EvalConfig,
                  runtime: Runtime, *, workers: int = 0, desc: str = "extract",
                  cache: ImageCache | None = None, feeder: StoreFeeder | None = None,
                  progress: bool = True) -> torch.Tensor:
    """L2-normalised features (N, d) of every image in ``table``, on the CPU; read from the image
    store when a ``feeder`` is given, else decoded from the files (``progress``: a tqdm bar)."""
    if feeder is not None:
        return extract_store_features(model, feeder, list(table["path"]), batch_size=eval_cfg.batch_size,
                                      flip=eval_cfg.flip, amp=runtime.amp, desc=desc, progress=progress)
    return extract_features(
        model, list(table["path"]), build_test_transform(input_cfg), batch_size=eval_cfg.batch_size,
        device=runtime.device, flip=eval_cfg.flip, amp=runtime.amp, workers=workers, desc=desc, cache=cache,
        progress=progress,
    )


def evaluate_model(model: torch.nn.Module, query: pd.DataFrame, gallery: pd.DataFrame, input_cfg: InputConfig,
                   eval_cfg: EvalConfig, runtime: Runtime, *, workers: int = 0, desc: str = "test",
                   cache: ImageCache | None = None, feeder: StoreFeeder | None = None,
                   progress: bool = True) -> RankResult:
    """Extract query and gallery features in one pass and compute mAP / CMC / mINP."""
    both = pd.concat([query, gallery], ignore_index=True)
    feats = extract_table(model, both, input_cfg, eval_cfg, runtime, workers=workers, desc=desc, cache=cache,
                          feeder=feeder, progress=progress)
    qf, gf = feats[: len(query)], feats[len(query):]
    return evaluate_features(
        qf, gf, query["pid"].to_numpy(), gallery["pid"].to_numpy(),
        query["camid"].to_numpy(), gallery["camid"].to_numpy(),
        metric=eval_cfg.metric, rerank=eval_cfg.rerank, device=runtime.device, progress=progress,
    )


def evaluate_checkpoint(cfg: TrainConfig, checkpoint: Path, *, rerank: bool | None = None,
                        flip: bool | None = None, progress: bool = True) -> dict[str, Any]:
    """Score ``checkpoint`` on the test split of ``cfg.dataset``; a JSON-able dict of metrics
    (``progress``: tqdm bars for extraction and ranking).

    The dictionary records what was scored: dataset, variant, seed, the checkpoint's
    path, epoch and how it was selected, the evaluation options, and what it ran on
    (:func:`hcm.utils.environment.describe_environment`).
    """
    eval_cfg = cfg.eval.model_copy(update={k: v for k, v in {"rerank": rerank, "flip": flip}.items()
                                           if v is not None})
    runtime = setup_runtime(cfg.runtime)
    splits = load_splits(cfg.dataset, cfg.seed)
    model = build_model(cfg.model.model_copy(update={"weights": str(checkpoint)}), seed=cfg.seed)
    model = model.to(runtime.device)
    meta = load_weights(checkpoint)
    t0 = time.perf_counter()
    res = evaluate_model(model, splits.query, splits.gallery, cfg.input, eval_cfg, runtime,
                         workers=cfg.runtime.workers, feeder=build_feeder(cfg, splits, runtime), progress=progress)
    out = {
        "dataset": cfg.dataset.name, "variant": cfg.variant, "seed": cfg.seed,
        **res.to_dict(),
        "num_gallery": len(splits.gallery),
        "checkpoint": {"path": str(checkpoint), "epoch": meta.get("epoch"), "selection": meta.get("selection")},
        "eval_time_s": round(time.perf_counter() - t0, 3),
        "rerank": eval_cfg.rerank, "flip": eval_cfg.flip, "metric": eval_cfg.metric,
        "device": str(runtime.device),
        "environment": describe_environment(runtime.device),
    }
    return out
