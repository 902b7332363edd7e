"""Pseudo labels: DBSCAN on the sparse k-reciprocal Jaccard distance (method.md, Pipeline 2)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from hcm.cluster.jaccard import jaccard_distance
from hcm.cluster.labels import canonical_labels
from hcm.cluster.summary import ClusterSummary, StageTimer
from hcm.errors import ConfigError

logger = logging.getLogger(__name__)


def pseudo_labels(features: Any, eps: float = 0.6, min_samples: int = 4, k1: int = 30,
                  k2: int = 6, *, threads: int | None = None, use_gpu: bool | None = None,
                  progress: bool = False, pair_budget: int | None = None) -> tuple[np.ndarray, ClusterSummary]:
    """Cluster ``features`` (N, d) into pseudo identities; -1 marks outliers.

    The k-reciprocal Jaccard distance (:func:`hcm.cluster.jaccard.jaccard_distance`) is
    computed sparsely, keeping only pairs at distance <= ``eps`` (the only ones DBSCAN
    looks at), and given to scikit-learn's DBSCAN as a sparse precomputed matrix; labels
    are renumbered by first appearance, so the same features always give the same labels.
    ``pair_budget``: see :func:`hcm.cluster.jaccard.check_neighbourhoods`.
    Returns (labels int64 (N,), :class:`ClusterSummary` with the time of each stage).
    """
    if not 0.0 < eps < 1.0:
        raise ConfigError(
            f"eps={eps} must be in (0, 1): Jaccard distances lie in [0, 1] and pairs sharing "
            "no neighbourhood are at distance 1 (cluster.eps)"
        )
    if min_samples < 1:
        raise ConfigError(f"min_samples={min_samples} must be >= 1 (cluster.min_samples)")
    timer = StageTimer()
    dist = jaccard_distance(features, k1=k1, k2=k2, cutoff=eps, threads=threads,
                            use_gpu=use_gpu, timer=timer, progress=progress, pair_budget=pair_budget)
    # imported here: sklearn costs ~2 s to import, which runs that never cluster need not pay
    from sklearn.cluster import DBSCAN

    with timer.stage("dbscan"):
        raw = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit_predict(dist)
        labels = canonical_labels(raw)
    summary = ClusterSummary.from_labels(
        labels, "dbscan", times=timer.times,
        params={"eps": eps, "min_samples": min_samples, "k1": k1, "k2": k2},
        extra={"stored_pairs": int(dist.nnz)},
    )
    logger.info("pseudo labels: %s", summary.describe())
    return labels, summary
