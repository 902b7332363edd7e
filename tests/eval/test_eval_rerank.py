"""k-reciprocal re-ranking: sparse/streamed implementation against the dense reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from eval_reference import reference_re_ranking

from hcm.errors import HCMError
from hcm.eval import (
    estimate_rerank_memory,
    evaluate_features,
    evaluate_rank,
    pairwise_distance,
    re_ranking,
)
from hcm.eval.rerank import FeatureSource, half_k, iter_rerank_blocks, stable_smallest


def _features(seed: int, num: int, dim: int = 8, num_ids: int = 6) -> tuple[torch.Tensor, np.ndarray]:
    rng = np.random.default_rng(seed)
    pids = rng.integers(0, num_ids, num)
    x = rng.standard_normal((num_ids, dim))[pids] + 0.8 * rng.standard_normal((num, dim))
    return F.normalize(torch.tensor(x, dtype=torch.float32), dim=1), pids


def _blocks(dist: np.ndarray, q: int):
    return dist[:q, q:], dist[:q, :q], dist[q:, q:]


def test_half_k_uses_numpy_rounding():
    assert [half_k(k) for k in (1, 3, 5, 20, 30)] == [0, 2, 2, 10, 15]


def test_stable_smallest_matches_a_stable_sort_with_many_ties():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.integers(0, 3, (50, 40)).astype(np.float32))
    for k in (1, 5, 17, 40):
        np.testing.assert_array_equal(stable_smallest(x, k), torch.sort(x, dim=1, stable=True).indices[:, :k])


@pytest.mark.parametrize("seed", range(6))
def test_matches_dense_reference_on_symmetric_distances(seed):
    rng = np.random.default_rng(100 + seed)
    num_q, num_g = int(rng.integers(2, 12)), int(rng.integers(5, 45))
    feats, _ = _features(seed, num_q + num_g)
    dist = pairwise_distance(feats, feats).numpy()
    dist = (dist + dist.T) / 2  # exactly symmetric
    k1, k2, lam = int(rng.integers(1, 15)), int(rng.integers(1, 7)), float(rng.random())
    expected = reference_re_ranking(*_blocks(dist, num_q), k1=k1, k2=k2, lambda_value=lam)
    got = re_ranking(*_blocks(dist, num_q), k1=k1, k2=k2, lambda_value=lam)
    assert got.shape == (num_q, num_g) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6)


@pytest.mark.parametrize("seed", range(4))
def test_matches_dense_reference_with_ties_and_asymmetric_input(seed):
    # integer distances: neighbour lists are decided by the (value, index) tie rule;
    # asymmetric input exercises the original's column-max normalisation and transpose
    rng = np.random.default_rng(200 + seed)
    num_q, num_g = int(rng.integers(1, 9)), int(rng.integers(1, 30))
    n = num_q + num_g
    dist = rng.integers(1, 5, (n, n)).astype(np.float32)
    np.fill_diagonal(dist, 0)
    k1, k2, lam = int(rng.integers(1, 40)), int(rng.integers(1, 9)), float(rng.random())
    expected = reference_re_ranking(*_blocks(dist, num_q), k1=k1, k2=k2, lambda_value=lam)
    got = re_ranking(*_blocks(dist, num_q), k1=k1, k2=k2, lambda_value=lam)
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6)


def test_default_parameters_on_a_larger_set():
    feats, _ = _features(7, 130, dim=12, num_ids=10)
    dist = pairwise_distance(feats, feats).numpy()
    dist = (dist + dist.T) / 2
    expected = reference_re_ranking(*_blocks(dist, 30))
    np.testing.assert_allclose(re_ranking(*_blocks(dist, 30)), expected, rtol=0, atol=2e-6)


def test_feature_source_agrees_with_dense_input():
    feats, _ = _features(8, 90)
    num_q = 20
    dist = pairwise_distance(feats, feats).numpy()
    dense = re_ranking(*_blocks(dist, num_q), k1=10, k2=3)
    streamed = torch.cat([b for _, b in iter_rerank_blocks(
        FeatureSource(feats, "cosine", torch.device("cpu")), num_q, k1=10, k2=3, block_rows=3)])
    np.testing.assert_allclose(streamed.numpy(), dense, rtol=0, atol=1e-5)


def test_evaluate_features_with_rerank_scores_the_reranked_distances():
    feats, pids = _features(9, 120, num_ids=8)
    cams = np.random.default_rng(1009).integers(0, 3, 120)
    q, g = slice(0, 30), slice(30, 120)
    dist = pairwise_distance(feats, feats).numpy()
    expected = evaluate_rank(re_ranking(*_blocks(dist, 30), k1=8, k2=3), pids[q], pids[g], cams[q], cams[g])
    got = evaluate_features(feats[q], feats[g], pids[q], pids[g], cams[q], cams[g], rerank=True, k1=8, k2=3,
                            chunk_size=4)
    assert abs(got.mAP - expected.mAP) <= 1e-6
    plain = evaluate_features(feats[q], feats[g], pids[q], pids[g], cams[q], cams[g])
    assert got.mAP != plain.mAP  # re-ranking did change the ranking


def test_cosine_and_euclidean_rerank_alike_on_normalised_features():
    # squared Euclidean = 2 x cosine distance; the max-normalisation cancels the factor
    feats, pids = _features(10, 80)
    cams = np.random.default_rng(1010).integers(0, 3, 80)
    args = (feats[:20], feats[20:], pids[:20], pids[20:], cams[:20], cams[20:])
    a = evaluate_features(*args, rerank=True, metric="cosine")
    b = evaluate_features(*args, rerank=True, metric="euclidean")
    assert abs(a.mAP - b.mAP) <= 1e-5


def test_refuses_when_the_memory_bound_exceeds_the_budget():
    feats, pids = _features(11, 40)
    cams = np.zeros(40, dtype=np.int64)
    cams[::2] = 1
    need = estimate_rerank_memory(10, 30)
    with pytest.raises(HCMError, match="disable re-ranking"):
        evaluate_features(feats[:10], feats[10:], pids[:10], pids[10:], cams[:10], cams[10:], rerank=True,
                          rerank_budget=need - 1)
    evaluate_features(feats[:10], feats[10:], pids[:10], pids[10:], cams[:10], cams[10:], rerank=True,
                      rerank_budget=need)


def test_query_expansion_is_checked_against_the_budget_once_v_is_known(monkeypatch):
    import hcm.eval.rerank as rerank

    monkeypatch.setattr(rerank, "estimate_rerank_memory", lambda *args: 0)  # pass the first check
    feats, _ = _features(12, 30)
    dist = pairwise_distance(feats, feats).numpy()
    with pytest.raises(HCMError, match="query expansion"):
        re_ranking(*_blocks(dist, 10), k1=5, k2=3, budget=1000)


def test_memory_estimate_grows_with_the_set_and_stays_far_below_dense_for_msmt17():
    small, large = estimate_rerank_memory(100, 1000), estimate_rerank_memory(11659, 82161)
    assert small < large
    dense = 4 * 4 * (11659 + 82161) ** 2  # the original: four (N, N) float32/int32 matrices
    assert large < dense / 5


@pytest.mark.parametrize(("k1", "k2", "lam"), [(0, 6, 0.3), (20, 0, 0.3), (20, 6, 1.5)])
def test_bad_parameters_are_refused(k1, k2, lam):
    d = np.random.default_rng(0).random((3, 3)).astype(np.float32)
    with pytest.raises(HCMError):
        re_ranking(d[:1, 1:], d[:1, :1], d[1:, 1:], k1=k1, k2=k2, lambda_value=lam)


def test_shape_mismatch_is_refused():
    with pytest.raises(HCMError, match="g_g_dist"):
        re_ranking(np.zeros((2, 3)), np.zeros((2, 2)), np.zeros((4, 4)))


def test_identical_items_are_refused_with_a_clear_error():
    d = np.zeros((4, 4), dtype=np.float32)
    with pytest.raises(HCMError, match="all zero"):
        re_ranking(d[:1, 1:], d[:1, :1], d[1:, 1:], k1=2, k2=1)
