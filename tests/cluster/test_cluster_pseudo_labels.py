"""pseudo_labels: determinism, canonical label ids, the summary, parameter errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cluster_synthetic import clustered, with_ties

from hcm.cluster import ClusterSummary, canonical_labels, label_agreement, pseudo_labels
from hcm.cluster.summary import size_histogram
from hcm.errors import ConfigError


@pytest.fixture(scope="module")
def features() -> tuple[np.ndarray, np.ndarray]:
    x, ids = clustered(400, 32, 25, 0.2, seed=5)
    return with_ties(x, seed=5), ids


def test_deterministic_and_canonical(features: tuple[np.ndarray, np.ndarray]) -> None:
    x, _ = features
    a, sa = pseudo_labels(x)
    b, _ = pseudo_labels(x.copy(), threads=1)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.int64 and a.shape == (400,)
    # ids numbered by first appearance: the first occurrences read 0, 1, 2, ...
    clustered_ids = a[a >= 0]
    _, first = np.unique(clustered_ids, return_index=True)
    assert clustered_ids[np.sort(first)].tolist() == list(range(sa.num_clusters))


def test_recovers_well_separated_identities() -> None:
    x, ids = clustered(300, 64, 10, 0.08, seed=9)
    labels, summary = pseudo_labels(x, eps=0.6, min_samples=4, k1=20, k2=6)
    agreement = label_agreement(labels, ids)
    assert agreement["ari"] == pytest.approx(1.0)
    assert summary.num_clusters == 10 and summary.num_outliers == 0


def test_summary_describes_the_labels(features: tuple[np.ndarray, np.ndarray]) -> None:
    x, _ = features
    labels, summary = pseudo_labels(x, eps=0.5, min_samples=3)
    sizes = np.bincount(labels[labels >= 0])
    assert summary.num_images == 400
    assert summary.num_clusters == len(sizes)
    assert summary.num_outliers == int((labels == -1).sum())
    assert summary.outlier_fraction == pytest.approx(summary.num_outliers / 400)
    assert summary.largest_cluster == sizes.max()
    assert sum(summary.size_histogram.values()) == summary.num_clusters
    assert {"knn", "reciprocal", "weights", "query_expansion", "jaccard", "dbscan"} <= set(summary.times)
    record = json.loads(json.dumps(summary.to_dict()))
    assert record["params"] == {"eps": 0.5, "min_samples": 3, "k1": 30, "k2": 6}


def test_size_histogram_bins() -> None:
    hist = size_histogram(np.array([1, 2, 3, 4, 7, 8, 1500]))
    assert hist["1"] == 1 and hist["2-3"] == 2 and hist["4-7"] == 2 and hist["8-15"] == 1
    assert hist["1024+"] == 1 and sum(hist.values()) == 7


def test_summary_of_all_outliers() -> None:
    summary = ClusterSummary.from_labels(np.full(5, -1), "dbscan")
    assert summary.num_clusters == 0 and summary.outlier_fraction == 1.0
    assert summary.largest_cluster == 0


def test_canonical_labels() -> None:
    assert canonical_labels(np.array([5, -1, 2, 5, 2, 7])).tolist() == [0, -1, 1, 0, 1, 2]
    assert canonical_labels(np.array([-1, -1])).tolist() == [-1, -1]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"eps": 1.0}, "eps=1.0"),
    ({"eps": 0.0}, "eps=0.0"),
    ({"min_samples": 0}, "min_samples=0"),
    ({"k1": 5, "k2": 6}, "k2=6 > k1=5"),
])
def test_parameter_errors(features: tuple[np.ndarray, np.ndarray], kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        pseudo_labels(features[0], **kwargs)
