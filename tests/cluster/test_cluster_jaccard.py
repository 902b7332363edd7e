"""The sparse Jaccard distance against the dense, loop-based reference (tests/cluster/cluster_reference.py)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from cluster_reference import dense_jaccard
from cluster_synthetic import clustered, with_ties
from sklearn.cluster import DBSCAN

from hcm.cluster import jaccard_distance, pseudo_labels
from hcm.cluster.jaccard import half_k, jaccard_from_weights
from hcm.cluster.labels import canonical_labels
from hcm.errors import ConfigError


def _stored_mask(dist: sp.csr_matrix) -> np.ndarray:
    coo = dist.tocoo()
    mask = np.zeros(dist.shape, dtype=bool)
    mask[coo.row, coo.col] = True
    return mask


def _cases() -> list[tuple[str, np.ndarray]]:
    easy, _ = clustered(240, 32, 9, 0.35, seed=11)  # clusters smaller than k1: dense-ish
    small, _ = clustered(300, 32, 30, 0.3, seed=14)  # many small clusters: sparse
    hard, _ = clustered(240, 32, 12, 0.9, seed=12)  # poorly separated: large expansions
    wide, _ = clustered(160, 2048, 6, 0.03, seed=13)
    return [
        ("clustered", easy),
        ("clustered+ties", with_ties(easy, seed=1)),
        ("small-clusters+ties", with_ties(small, seed=4)),
        ("overlapping+ties", with_ties(hard, seed=2)),
        ("2048-d+ties", with_ties(wide, seed=3)),
    ]


CASES = _cases()
PARAMS = [(30, 6), (20, 6), (7, 3), (5, 1), (10, 10), (4, 2)]


@pytest.mark.parametrize(("name", "x"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize(("k1", "k2"), PARAMS)
def test_matches_dense_reference(name: str, x: np.ndarray, k1: int, k2: int) -> None:
    dense = dense_jaccard(x, k1, k2)
    sparse = jaccard_distance(x, k1, k2)
    assert isinstance(sparse, sp.csr_matrix)
    stored = _stored_mask(sparse)
    assert sparse.nnz == stored.sum()  # no duplicate entries
    resorted = sparse.copy()
    resorted.has_sorted_indices = False
    resorted.sort_indices()
    np.testing.assert_array_equal(resorted.indices, sparse.indices)  # really sorted
    assert (sparse != sparse.T).nnz == 0  # exactly symmetric
    # every stored entry equals the dense one; every entry left out is exactly 1 there
    np.testing.assert_allclose(sparse.toarray()[stored], dense[stored], rtol=0, atol=1e-6)
    assert (dense[~stored] == 1.0).all()
    assert (sparse.data < 1.0).all() and (sparse.data >= 0.0).all()
    # the diagonal is stored, as exact zeros
    assert stored.diagonal().all()
    assert (sparse.diagonal() == 0.0).all()


@pytest.mark.parametrize(("name", "x"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize(("eps", "min_samples"), [(0.6, 4), (0.45, 2), (0.7, 6)])
def test_same_dbscan_labels_as_dense(name: str, x: np.ndarray, eps: float, min_samples: int) -> None:
    dense = dense_jaccard(x, 30, 6)
    expected = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit_predict(dense)
    labels, summary = pseudo_labels(x, eps=eps, min_samples=min_samples, k1=30, k2=6)
    np.testing.assert_array_equal(labels, canonical_labels(expected))
    assert labels.dtype == np.int64
    assert summary.num_clusters == len(set(expected.tolist()) - {-1})


def test_cutoff_keeps_exactly_the_pairs_up_to_it() -> None:
    x = CASES[2][1]
    full = jaccard_distance(x, 20, 6)
    cut = jaccard_distance(x, 20, 6, cutoff=0.5)
    expected = full.toarray()
    keep = _stored_mask(full) & (expected <= 0.5)
    np.testing.assert_array_equal(_stored_mask(cut), keep)
    np.testing.assert_array_equal(cut.toarray()[keep], expected[keep])


def test_row_blocks_do_not_change_the_result() -> None:
    x = CASES[1][1]
    one_block = jaccard_distance(x, 20, 6)
    many_blocks = jaccard_distance(x, 20, 6, max_triples=50)
    assert (one_block != many_blocks).nnz == 0
    np.testing.assert_array_equal(one_block.indptr, many_blocks.indptr)


def test_torch_input_same_as_numpy() -> None:
    x = CASES[0][1]
    a = jaccard_distance(x, 10, 3)
    b = jaccard_distance(torch.from_numpy(x), 10, 3)
    assert (a != b).nnz == 0


def test_zero_distances_are_stored_and_count_in_dbscan() -> None:
    # rows 0 and 1 have identical weights: m = 1 exactly, distance exactly 0 off the diagonal
    v = sp.csr_matrix(np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]))
    dist = jaccard_from_weights(v)
    stored = _stored_mask(dist)
    assert stored[0, 1] and stored[1, 0] and dist[0, 1] == 0.0
    assert not stored[0, 2]
    # scikit-learn counts stored zeros as neighbours: 0 and 1 form a cluster
    labels = DBSCAN(eps=0.5, min_samples=2, metric="precomputed").fit_predict(dist)
    assert labels.tolist() == [0, 0, -1]
    dropped = dist.copy()
    dropped.eliminate_zeros()  # what careless sparse arithmetic would do
    assert DBSCAN(eps=0.5, min_samples=2, metric="precomputed").fit_predict(dropped).tolist() == [-1, -1, -1]


def test_half_k_uses_python_round() -> None:
    assert [half_k(k) for k in (1, 2, 5, 7, 20, 30)] == [1, 2, 3, 5, 11, 16]


def test_parameter_errors() -> None:
    x = CASES[0][1]
    with pytest.raises(ConfigError, match="k2=8 > k1=6"):
        jaccard_distance(x, 6, 8)
    with pytest.raises(ConfigError, match="cutoff"):
        jaccard_distance(x, 6, 2, cutoff=1.0)
    with pytest.raises(Exception, match="k1=300"):
        jaccard_distance(x, 300, 6)


def _near_duplicates(n: int = 400, d: int = 16, seed: int = 0) -> np.ndarray:
    """What a random-init network gives: every feature nearly the same (no cluster structure)."""
    rng = np.random.default_rng(seed)
    x = np.ones((n, d)) + 1e-4 * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_pair_terms_counts_the_min_sum_terms_by_brute_force() -> None:
    from hcm.cluster.jaccard import pair_terms

    rng = np.random.default_rng(3)
    dense = (rng.random((30, 30)) < 0.2) * rng.random((30, 30))
    v = sp.csr_matrix(dense)
    want = sum(1 for i in range(30) for j in range(i, 30) for k in range(30) if dense[i, k] and dense[j, k])
    assert pair_terms(v) == (want, int((dense > 0).sum(axis=0).max()))


def test_degenerate_features_warn_and_stop_at_the_pair_budget(caplog) -> None:
    import logging

    from hcm.cluster.jaccard import DegenerateFeaturesError

    x = _near_duplicates()
    with caplog.at_level(logging.INFO, logger="hcm.cluster.jaccard"):
        with pytest.raises(DegenerateFeaturesError, match=r"cluster.pair_budget=1,000.*model.weights"):
            jaccard_distance(x, k1=20, k2=6, cutoff=0.6, pair_budget=1000)
    messages = [r.getMessage() for r in caplog.records]
    assert any(r.levelno == logging.WARNING and "degenerate features" in r.getMessage()
               and "model.weights" in r.getMessage() for r in caplog.records)
    assert any("k-NN" in m and "reciprocal sets" in m for m in messages)  # per-stage progress
    assert any("pair terms" in m for m in messages)
    # no budget: it runs (and stores most pairs), the warning still says what it means
    dist = jaccard_distance(x, k1=20, k2=6, cutoff=0.6)
    assert dist.nnz > 0.5 * x.shape[0] ** 2


def test_clustered_features_stay_far_below_the_default_budget(caplog) -> None:
    import logging

    from hcm.config import ClusterConfig

    rng = np.random.default_rng(1)
    centres = rng.normal(size=(40, 32))
    x = np.repeat(centres, 10, axis=0) + 0.3 * rng.normal(size=(400, 32))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    with caplog.at_level(logging.INFO, logger="hcm.cluster.jaccard"):
        dist = jaccard_distance(x, k1=20, k2=6, cutoff=0.6, pair_budget=ClusterConfig().pair_budget)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("stored pairs" in r.getMessage() for r in caplog.records)
    assert dist.nnz < 0.1 * 400 ** 2
