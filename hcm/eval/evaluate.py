"""Score query features against gallery features without holding the (Q, G) distance matrix."""

from __future__ import annotations

import logging
import math
import time
from typing import Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from hcm.errors import HCMError
from hcm.eval.distance import as_feature_tensor, check_metric, iter_distance_blocks
from hcm.eval.metrics import ArrayLike, RankAccumulator, RankResult, check_labels, distance_rows
from hcm.eval.rerank import (
    DEFAULT_RERANK_BUDGET,
    check_rerank_budget,
    iter_rerank_blocks,
    rerank_source,
)

logger = logging.getLogger(__name__)


#: features with every entry below this magnitude give finite cosine and Euclidean distances
FINITE_DISTANCE_BOUND = 1e15


def feature_magnitude(x: torch.Tensor) -> float:
    """Largest absolute entry of ``x`` (NaN if any entry is NaN; 0 for an empty tensor).

    One reduction pass without temporaries (``aminmax`` propagates NaN), so checking
    19,000 x 2048 features costs milliseconds.
    """
    if x.numel() == 0:
        return 0.0
    lo, hi = torch.aminmax(x)
    lo_f, hi_f = float(lo), float(hi)
    if math.isnan(lo_f) or math.isnan(hi_f):
        return math.nan
    return max(abs(lo_f), abs(hi_f))


def distances_are_finite(q: torch.Tensor, g: torch.Tensor) -> bool:
    """Refuse non-finite features (:class:`HCMError`); True when every entry is below
    ``FINITE_DISTANCE_BOUND``, so their distances are finite and need no per-block check."""
    # each side checked on its own: Python's max() drops a NaN in its second argument
    for name, x in (("query", q), ("gallery", g)):
        if not math.isfinite(feature_magnitude(x)):
            raise HCMError(f"{name} features contain NaN or infinite values; the model diverged (lower "
                           "optim.lr or check model.weights) or an image was unreadable")
    return max(feature_magnitude(q), feature_magnitude(g)) < FINITE_DISTANCE_BOUND


def evaluate_features(
    qf: np.ndarray | torch.Tensor,
    gf: np.ndarray | torch.Tensor,
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: ArrayLike,
    g_camids: ArrayLike,
    *,
    metric: Literal["cosine", "euclidean"] = "cosine",
    rerank: bool = False,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    max_rank: int = 50,
    chunk_size: int | None = None,
    device: torch.device | str | None = None,
    rerank_budget: int = DEFAULT_RERANK_BUDGET,
    progress: bool = True,
) -> RankResult:
    """mAP / CMC / mINP of query features ``qf`` (Q, d) against gallery features ``gf`` (G, d).

    Distances (``hcm.eval.distance``: cosine ``1 - q.g`` on normalised features, or squared
    Euclidean) are computed ``chunk_size`` query rows at a time (default: 256 MB of
    float32 distances per block) and scored immediately, so memory is O(chunk x G); the
    result equals ``evaluate_rank(pairwise_distance(qf, gf, metric), ...)``.

    ``rerank=True`` applies k-reciprocal re-ranking (``hcm.eval.rerank``; Zhong et al.
    2017, defaults k1=20, k2=6, lambda=0.3); it refuses with :class:`HCMError` when its
    memory bounds exceed ``rerank_budget`` bytes (``hcm.eval.rerank.estimate_rerank_memory``). ``device`` (default: the features'
    device) is where distances are computed. ``progress`` shows a tqdm bar over queries.
    """
    t0 = time.perf_counter()
    check_metric(metric)
    q = as_feature_tensor(qf, "query features")
    g = as_feature_tensor(gf, "gallery features")
    if q.shape[0] == 0 or g.shape[0] == 0:
        raise HCMError(f"need at least one query and one gallery image, got {q.shape[0]} and {g.shape[0]}")
    if q.shape[1] != g.shape[1]:
        raise HCMError(f"query features have dimension {q.shape[1]} but gallery features {g.shape[1]}; "
                       "extract both with the same model")
    if chunk_size is not None and chunk_size < 1:
        raise HCMError(f"chunk_size must be a positive number of query rows, got {chunk_size}")
    finite_distances = distances_are_finite(q, g)
    dev = torch.device(device) if device is not None else q.device
    qp, gp, qc, gc = check_labels(q_pids, g_pids, q_camids, g_camids, q.shape[0], g.shape[0])
    rows = chunk_size or distance_rows(g.shape[0])
    # finite, moderate features give finite distances (cosine: in [0, 2]); re-ranking checks its own
    acc = RankAccumulator(gp, gc, torch.device("cpu") if rerank else dev, max_rank,
                          check_finite=not (finite_distances or rerank))
    if rerank:
        check_rerank_budget(q.shape[0], g.shape[0], k1, k2, rerank_budget)
        logger.info("k-reciprocal re-ranking of %d queries x %d gallery (k1=%d, k2=%d, lambda=%g)",
                    q.shape[0], g.shape[0], k1, k2, lambda_value)
        blocks = iter_rerank_blocks(rerank_source(q, g, metric, dev), q.shape[0], k1=k1, k2=k2,
                                    lambda_value=lambda_value, progress=progress, block_rows=rows,
                                    budget=rerank_budget)
    else:
        blocks = iter_distance_blocks(q, g, metric, rows, dev)
    with tqdm(total=q.shape[0], desc="evaluate", unit="query", disable=not progress) as bar:
        for start, block in blocks:
            stop = start + block.shape[0]
            acc.add(block, qp[start:stop], qc[start:stop])
            bar.update(stop - start)
    res = acc.result()
    logger.info("evaluated %d queries x %d gallery (%s%s) in %.1f s: mAP %.4f, rank-1 %.4f, mINP %.4f",
                q.shape[0], g.shape[0], metric, ", re-ranked" if rerank else "", time.perf_counter() - t0,
                res.mAP, res.rank1, res.mINP)
    return res
