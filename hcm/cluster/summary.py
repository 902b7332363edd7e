"""What a clustering run reports for logging: cluster counts, outliers, sizes, stage times."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: lower edges of the cluster-size histogram bins (a bin runs to the next edge - 1)
SIZE_BIN_EDGES: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class StageTimer:
    """Collects wall-clock seconds per named stage: ``with timer.stage("knn"): ...``."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.times[name] = self.times.get(name, 0.0) + time.perf_counter() - start


def size_histogram(sizes: np.ndarray) -> dict[str, int]:
    """Number of clusters per size bin, keyed ``"1"``, ``"2-3"``, ..., ``"1024+"`` (all bins)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    hist: dict[str, int] = {}
    edges = (*SIZE_BIN_EDGES, None)
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        if high is None:
            key, count = f"{low}+", int((sizes >= low).sum())
        else:
            key = str(low) if high - 1 == low else f"{low}-{high - 1}"
            count = int(((sizes >= low) & (sizes < high)).sum())
        hist[key] = count
    return hist


@dataclass(frozen=True)
class ClusterSummary:
    """Statistics of one set of pseudo labels (-1 = outlier) and the time each stage took.

    ``params``: the algorithm's parameters; ``extra``: algorithm-specific statistics
    (DBSCAN: ``stored_pairs``, the entries of the sparse distance matrix it received).
    """

    algorithm: str
    num_images: int
    num_clusters: int
    num_outliers: int
    outlier_fraction: float
    largest_cluster: int
    median_cluster: float
    size_histogram: dict[str, int]
    times: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_labels(cls, labels: np.ndarray, algorithm: str, times: dict[str, float] | None = None,
                    params: dict[str, Any] | None = None,
                    extra: dict[str, Any] | None = None) -> ClusterSummary:
        labels = np.asarray(labels)
        clustered = labels[labels >= 0]
        sizes = np.bincount(clustered) if clustered.size else np.zeros(0, dtype=np.int64)
        sizes = sizes[sizes > 0]
        num_outliers = int((labels < 0).sum())
        return cls(
            algorithm=algorithm,
            num_images=int(labels.size),
            num_clusters=int(sizes.size),
            num_outliers=num_outliers,
            outlier_fraction=num_outliers / labels.size if labels.size else 0.0,
            largest_cluster=int(sizes.max()) if sizes.size else 0,
            median_cluster=float(np.median(sizes)) if sizes.size else 0.0,
            size_histogram=size_histogram(sizes),
            times=dict(times or {}),
            params=dict(params or {}),
            extra=dict(extra or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (for logs, MLflow and the run directory)."""
        return {
            "algorithm": self.algorithm,
            "num_images": self.num_images,
            "num_clusters": self.num_clusters,
            "num_outliers": self.num_outliers,
            "outlier_fraction": self.outlier_fraction,
            "largest_cluster": self.largest_cluster,
            "median_cluster": self.median_cluster,
            "size_histogram": dict(self.size_histogram),
            "times": {k: round(v, 6) for k, v in self.times.items()},
            "params": dict(self.params),
            "extra": dict(self.extra),
        }

    def describe(self) -> str:
        """One log line."""
        total = sum(self.times.values())
        return (
            f"{self.algorithm}: {self.num_clusters} clusters, {self.num_outliers} outliers "
            f"({100 * self.outlier_fraction:.1f}%) of {self.num_images} images, largest "
            f"{self.largest_cluster}, median {self.median_cluster:g}; {total:.1f}s"
        )
