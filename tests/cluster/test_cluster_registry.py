"""The pluggable clusterer interface: registry, build_clusterer, k-means as a second algorithm."""

from __future__ import annotations

import numpy as np
import pytest
from cluster_synthetic import clustered

from hcm.cluster import (
    CLUSTERERS,
    DBSCANClusterer,
    KMeansClusterer,
    build_clusterer,
    label_agreement,
    pseudo_labels,
)
from hcm.cluster.summary import ClusterSummary
from hcm.config import ClusterConfig
from hcm.errors import ConfigError


def test_registered_algorithms() -> None:
    assert {"dbscan", "kmeans"} <= set(CLUSTERERS.names())


def test_default_config_builds_dbscan_with_its_parameters() -> None:
    cfg = ClusterConfig(eps=0.5, min_samples=3, k1=12, k2=4)
    clusterer = build_clusterer(cfg, threads=1)
    assert clusterer == DBSCANClusterer(eps=0.5, min_samples=3, k1=12, k2=4, threads=1,
                                        pair_budget=cfg.pair_budget)
    x, _ = clustered(120, 16, 8, 0.2, seed=2)
    labels, summary = clusterer(x)
    expected, _ = pseudo_labels(x, eps=0.5, min_samples=3, k1=12, k2=4)
    np.testing.assert_array_equal(labels, expected)
    assert summary.algorithm == "dbscan"


def test_unknown_algorithm_lists_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"cluster.algorithm='infomap'.*dbscan, kmeans"):
        build_clusterer(ClusterConfig(algorithm="infomap"))


def test_kmeans_needs_num_clusters() -> None:
    with pytest.raises(ConfigError, match="cluster.num_clusters"):
        build_clusterer(ClusterConfig(algorithm="kmeans"))


def test_kmeans_from_config_is_deterministic() -> None:
    x, ids = clustered(240, 32, 6, 0.05, seed=4)
    clusterer = build_clusterer(ClusterConfig(algorithm="kmeans", num_clusters=6), seed=3)
    assert clusterer == KMeansClusterer(num_clusters=6, seed=3)
    labels, summary = clusterer(x)
    again, _ = clusterer(x)
    np.testing.assert_array_equal(labels, again)
    assert summary.algorithm == "kmeans" and summary.num_outliers == 0
    assert summary.num_clusters == 6 and labels.dtype == np.int64


def test_kmeans_with_restarts_recovers_separated_clusters() -> None:
    x, ids = clustered(240, 32, 6, 0.05, seed=4)
    labels, summary = KMeansClusterer(num_clusters=6, seed=0, nredo=5)(x)
    assert label_agreement(labels, ids)["ari"] == pytest.approx(1.0)
    assert summary.params["nredo"] == 5


def test_a_new_algorithm_plugs_in_without_other_changes() -> None:
    name = "test-one-cluster-per-image"
    if name not in CLUSTERERS:
        @CLUSTERERS.register(name)
        def _factory(cfg, *, seed, threads, use_gpu, progress):  # noqa: ANN001, ANN202
            def cluster(features: np.ndarray) -> tuple[np.ndarray, ClusterSummary]:
                labels = np.arange(len(features), dtype=np.int64)
                return labels, ClusterSummary.from_labels(labels, name)
            return cluster
    labels, summary = build_clusterer(ClusterConfig(algorithm=name))(np.eye(3, dtype=np.float32))
    assert labels.tolist() == [0, 1, 2] and summary.num_clusters == 3
