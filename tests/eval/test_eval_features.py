"""Distances and evaluate_features: conventions, chunked == unchunked, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from eval_reference import reference_rank_metrics

from hcm.errors import HCMError
from hcm.eval import evaluate_features, evaluate_rank, pairwise_distance
from hcm.eval.distance import iter_distance_blocks


def _clustered(seed: int, num_q: int = 40, num_g: int = 150, num_ids: int = 12, dim: int = 16):
    """Features near one centre per identity; cameras random (a ranking with structure)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((num_ids, dim))
    q_pids, g_pids = rng.integers(0, num_ids, num_q), rng.integers(0, num_ids, num_g)
    qf = centres[q_pids] + 0.9 * rng.standard_normal((num_q, dim))
    gf = centres[g_pids] + 0.9 * rng.standard_normal((num_g, dim))
    qf = F.normalize(torch.tensor(qf, dtype=torch.float32), dim=1)
    gf = F.normalize(torch.tensor(gf, dtype=torch.float32), dim=1)
    return qf, gf, q_pids, g_pids, rng.integers(0, 3, num_q), rng.integers(0, 3, num_g)


def test_cosine_distance_is_one_minus_dot_product_of_normalised_features():
    rng = np.random.default_rng(0)
    q, g = rng.standard_normal((5, 7)), rng.standard_normal((9, 7))
    expected = 1 - (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (g / np.linalg.norm(g, axis=1, keepdims=True)).T
    got = pairwise_distance(q, g, "cosine")
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-12)  # float64 in -> float64 out


def test_euclidean_distance_is_squared_and_unnormalised():
    rng = np.random.default_rng(1)
    q, g = rng.standard_normal((5, 7)) * 3, rng.standard_normal((9, 7))
    expected = ((q[:, None, :] - g[None, :, :]) ** 2).sum(-1)
    np.testing.assert_allclose(pairwise_distance(q, g, "euclidean").numpy(), expected, rtol=1e-10, atol=1e-10)


def test_distance_blocks_equal_the_full_matrix():
    qf, gf, *_ = _clustered(2)
    full = pairwise_distance(qf, gf)
    got = torch.cat([b for _, b in iter_distance_blocks(qf, gf, "cosine", 7, torch.device("cpu"))])
    torch.testing.assert_close(got, full, rtol=0, atol=1e-6)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("chunk_size", [1, 7, None])
def test_chunked_equals_unchunked(metric, chunk_size):
    qf, gf, qp, gp, qc, gc = _clustered(3)
    full = evaluate_rank(pairwise_distance(qf, gf, metric), qp, gp, qc, gc)
    chunked = evaluate_features(qf, gf, qp, gp, qc, gc, metric=metric, chunk_size=chunk_size)
    assert abs(chunked.mAP - full.mAP) <= 1e-9
    assert abs(chunked.mINP - full.mINP) <= 1e-9
    np.testing.assert_allclose(chunked.cmc, full.cmc, atol=1e-9)
    assert chunked.num_valid_queries == full.num_valid_queries
    ref = reference_rank_metrics(pairwise_distance(qf, gf, metric).numpy(), qp, gp, qc, gc)
    assert abs(chunked.mAP - ref[0]) <= 1e-9


def test_cosine_and_euclidean_rank_normalised_features_alike():
    qf, gf, qp, gp, qc, gc = _clustered(4)
    a = evaluate_features(qf, gf, qp, gp, qc, gc, metric="cosine")
    b = evaluate_features(qf.numpy(), gf.numpy(), qp, gp, qc, gc, metric="euclidean")
    assert 0.2 < a.mAP < 1.0  # the data has structure but is not trivial
    assert abs(a.mAP - b.mAP) <= 1e-6


def test_features_need_not_be_normalised_for_cosine():
    qf, gf, qp, gp, qc, gc = _clustered(5)
    scale = torch.linspace(0.5, 3.0, qf.shape[0])[:, None]
    a = evaluate_features(qf, gf, qp, gp, qc, gc)
    b = evaluate_features(qf * scale, gf * 2, qp, gp, qc, gc)
    assert abs(a.mAP - b.mAP) <= 1e-6


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(qf=np.zeros((2, 3)), gf=np.zeros((4, 5))), "dimension"),
        (dict(qf=np.zeros((2, 3), dtype=np.int64)), "floating-point"),
        (dict(qf=np.zeros(3)), r"shape \(N, d\)"),
        (dict(qf=np.full((2, 3), np.nan)), "NaN"),
        (dict(metric="manhattan"), "unknown distance metric"),
        (dict(chunk_size=0), "chunk_size"),
        (dict(q_pids=[1, 2, 3]), "q_pids has 3 entries"),
    ],
)
def test_bad_input_raises_clear_error(kwargs, message):
    rng = np.random.default_rng(6)
    args = dict(qf=rng.random((2, 3)), gf=rng.random((4, 3)), q_pids=[1, 2], g_pids=[1, 2, 1, 2],
                q_camids=[0, 0], g_camids=[1, 1, 1, 1])
    args.update(kwargs)
    qf, gf = args.pop("qf"), args.pop("gf")
    with pytest.raises(HCMError, match=message):
        evaluate_features(qf, gf, args.pop("q_pids"), args.pop("g_pids"), args.pop("q_camids"),
                          args.pop("g_camids"), **args)


def test_huge_euclidean_features_overflowing_to_inf_are_refused():
    qf = np.full((2, 3), 1e30, dtype=np.float32)
    gf = np.full((4, 3), -1e30, dtype=np.float32)
    with pytest.raises(HCMError, match="NaN or infinite"):
        evaluate_features(qf, gf, [1, 2], [1, 2, 1, 2], [0, 0], [1, 1, 1, 1], metric="euclidean")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("everywhere", [True, False])
def test_non_finite_gallery_features_alone_are_refused(bad, everywhere):
    """Issue 21, case 1: NaN only in the gallery once scored an all-NaN gallery mAP = rank-1 = mINP = 1.0."""
    rng = np.random.default_rng(0)
    qf = rng.normal(size=(6, 8)).astype("f4")
    gf = rng.normal(size=(20, 8)).astype("f4")
    if everywhere:
        gf[:] = bad
    else:
        gf[13, 5] = bad
    with pytest.raises(HCMError, match="gallery features contain NaN or infinite"):
        evaluate_features(qf, gf, np.arange(6) % 3, np.arange(20) % 5, np.zeros(6, int), np.ones(20, int),
                          progress=False)
