"""The pluggable clusterer interface the trainer uses.

A clusterer is any callable ``features (N, d) -> (labels int64 (N,), ClusterSummary)``
with -1 for outliers. ``CLUSTERERS`` maps ``cluster.algorithm`` names to factories
``factory(cfg, *, seed, threads, use_gpu, progress) -> Clusterer``; adding an algorithm
(e.g. InfoMap) means registering one factory, without touching the trainer:

    @CLUSTERERS.register("infomap")
    def _infomap(cfg, *, seed, threads, use_gpu, progress):
        return MyInfomapClusterer(...)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from hcm.cluster.dbscan import pseudo_labels
from hcm.cluster.kmeans import kmeans_labels
from hcm.cluster.summary import ClusterSummary
from hcm.config import ClusterConfig
from hcm.errors import ConfigError
from hcm.registry import Registry


class Clusterer(Protocol):
    """Turns features (N, d) float32 into (labels int64 (N,), summary); -1 = outlier."""

    def __call__(self, features: np.ndarray) -> tuple[np.ndarray, ClusterSummary]: ...


class ClustererFactory(Protocol):
    def __call__(self, cfg: ClusterConfig, *, seed: int, threads: int | None,
                 use_gpu: bool | None, progress: bool) -> Clusterer: ...


CLUSTERERS: Registry[ClustererFactory] = Registry("clusterer")


@dataclass(frozen=True)
class DBSCANClusterer:
    """DBSCAN on the sparse k-reciprocal Jaccard distance (:func:`hcm.cluster.pseudo_labels`)."""

    eps: float = 0.6
    min_samples: int = 4
    k1: int = 30
    k2: int = 6
    threads: int | None = None
    use_gpu: bool | None = None
    progress: bool = False
    pair_budget: int | None = None

    def __call__(self, features: Any) -> tuple[np.ndarray, ClusterSummary]:
        return pseudo_labels(features, eps=self.eps, min_samples=self.min_samples, k1=self.k1,
                             k2=self.k2, threads=self.threads, use_gpu=self.use_gpu,
                             progress=self.progress, pair_budget=self.pair_budget)


@dataclass(frozen=True)
class KMeansClusterer:
    """Spherical k-means with a fixed number of clusters (:func:`hcm.cluster.kmeans_labels`)."""

    num_clusters: int
    seed: int = 0
    niter: int = 20
    nredo: int = 1
    threads: int | None = None

    def __call__(self, features: Any) -> tuple[np.ndarray, ClusterSummary]:
        return kmeans_labels(features, self.num_clusters, seed=self.seed, niter=self.niter,
                             nredo=self.nredo, threads=self.threads)


@CLUSTERERS.register("dbscan")
def _build_dbscan(cfg: ClusterConfig, *, seed: int, threads: int | None,
                  use_gpu: bool | None, progress: bool) -> Clusterer:
    del seed  # DBSCAN on the Jaccard distance draws no random numbers
    return DBSCANClusterer(eps=cfg.eps, min_samples=cfg.min_samples, k1=cfg.k1, k2=cfg.k2,
                           threads=threads, use_gpu=use_gpu, progress=progress, pair_budget=cfg.pair_budget)


@CLUSTERERS.register("kmeans")
def _build_kmeans(cfg: ClusterConfig, *, seed: int, threads: int | None,
                  use_gpu: bool | None, progress: bool) -> Clusterer:
    del use_gpu, progress
    if cfg.num_clusters is None:
        raise ConfigError(
            "cluster.algorithm=kmeans needs cluster.num_clusters (e.g. --set cluster.num_clusters=700)"
        )
    return KMeansClusterer(num_clusters=cfg.num_clusters, seed=seed, threads=threads)


def build_clusterer(cfg: ClusterConfig, *, seed: int = 0, threads: int | None = None,
                    use_gpu: bool | None = None, progress: bool = False) -> Clusterer:
    """The clusterer named by ``cfg.algorithm``, configured from ``cfg``.

    ``seed`` feeds algorithms that draw random numbers (k-means initialisation);
    ``threads``: faiss threads (default torch's); ``use_gpu``: None = GPU k-NN when
    available. Unknown names raise :class:`hcm.errors.ConfigError` listing the known ones.
    """
    if cfg.algorithm not in CLUSTERERS:
        raise ConfigError(
            f"cluster.algorithm={cfg.algorithm!r} is not a registered clusterer; "
            f"choose one of: {', '.join(CLUSTERERS.names())}"
        )
    return CLUSTERERS.get(cfg.algorithm)(cfg, seed=seed, threads=threads, use_gpu=use_gpu,
                                         progress=progress)
