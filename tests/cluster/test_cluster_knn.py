"""k-NN lists: the documented order (self first, then (float32 distance, index)), exactly."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
from cluster_reference import dense_ranks
from cluster_synthetic import clustered, with_ties

from hcm.cluster.knn import (
    TorchSearcher,
    csr_row_inner_products,
    exact_knn,
    faiss_error_bound,
    gpu_search_available,
)
from hcm.errors import HCMError


@pytest.mark.parametrize("dim", [8, 32, 2048])
def test_matches_full_sort_with_ties(dim: int) -> None:
    x, _ = clustered(180, dim, 8, 0.4, seed=dim)
    x = with_ties(x, seed=dim)
    for k in (1, 5, 16, 30):
        result = exact_knn(x, k)
        np.testing.assert_array_equal(result.indices, dense_ranks(x, k))


def test_self_first_and_duplicates_by_index() -> None:
    rng = np.random.default_rng(0)
    base = rng.standard_normal((5, 16)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    x = np.repeat(base, 12, axis=0)  # 12 identical copies of each of 5 images
    result = exact_knn(x, 8, margin=2)
    assert (result.indices[:, 0] == np.arange(60)).all()
    for i in range(60):
        group = np.arange(12 * (i // 12), 12 * (i // 12) + 12)
        expected = [i] + [j for j in group if j != i][:7]
        assert result.indices[i].tolist() == expected
    assert result.researched > 0  # ties crossed the k-th position: wider search was needed


def test_same_result_with_one_and_two_threads() -> None:
    x, _ = clustered(300, 64, 10, 0.5, seed=3)
    x = with_ties(x, seed=3)
    one = exact_knn(x, 12, threads=1)
    two = exact_knn(x, 12, threads=2)
    np.testing.assert_array_equal(one.indices, two.indices)
    np.testing.assert_array_equal(one.sqdist, two.sqdist)


def test_restores_faiss_threads() -> None:
    before = faiss.omp_get_max_threads()
    x, _ = clustered(50, 8, 3, 0.3, seed=0)
    exact_knn(x, 4, threads=1)
    assert faiss.omp_get_max_threads() == before


def test_faiss_error_within_bound() -> None:
    x, _ = clustered(400, 2048, 10, 0.05, seed=1)
    scores, ids = faiss.knn(x, x, 40, metric=faiss.METRIC_INNER_PRODUCT)
    x64 = x.astype(np.float64)
    exact = np.einsum("nd,nkd->nk", x64, x64[ids])
    assert np.abs(2 * (exact - scores)).max() < faiss_error_bound(2048)


def test_rejects_bad_k() -> None:
    x, _ = clustered(10, 4, 2, 0.3, seed=0)
    with pytest.raises(ValueError, match="k=11"):
        exact_knn(x, 11)


def test_gpu_request_without_cuda_is_a_clear_error() -> None:
    if gpu_search_available():
        pytest.skip("this machine has a CUDA device")
    x, _ = clustered(20, 8, 2, 0.3, seed=0)
    with pytest.raises(HCMError, match="no CUDA device"):
        exact_knn(x, 4, use_gpu=True)


@pytest.mark.parametrize("dim", [8, 2048])
def test_torch_blockwise_search_gives_the_faiss_lists(dim: int) -> None:
    """The torch fallback of the GPU path (run here on the CPU, same code on CUDA): the same
    lists and distances as faiss on CPU, ties by index; blocks smaller than N."""
    x, _ = clustered(180, dim, 8, 0.4, seed=dim)
    x = with_ties(x, seed=dim)
    for k in (1, 16, 30):
        got = exact_knn(x, k, searcher=TorchSearcher(x, "cpu", block=64))
        want = exact_knn(x, k)
        np.testing.assert_array_equal(got.indices, want.indices)
        np.testing.assert_array_equal(got.indices, dense_ranks(x, k))


def test_torch_search_of_duplicates_orders_ties_by_index() -> None:
    rng = np.random.default_rng(0)
    base = rng.standard_normal((5, 16)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    x = np.repeat(base, 12, axis=0)
    got = exact_knn(x, 8, margin=2, searcher=TorchSearcher(x, "cpu", block=7))
    np.testing.assert_array_equal(got.indices, exact_knn(x, 8, margin=2).indices)


@pytest.mark.skipif(not gpu_search_available(), reason="needs a CUDA device")
def test_gpu_knn_equals_the_cpu_result() -> None:
    x, _ = clustered(500, 256, 20, 0.4, seed=5)
    x = with_ties(x, seed=5)
    np.testing.assert_array_equal(exact_knn(x, 30, use_gpu=True).indices, exact_knn(x, 30, use_gpu=False).indices)
    np.testing.assert_array_equal(exact_knn(x, 30, searcher=TorchSearcher(x, "cuda", block=100)).indices,
                                  exact_knn(x, 30, use_gpu=False).indices)


def test_csr_row_inner_products_match_numpy() -> None:
    rng = np.random.default_rng(4)
    x, _ = clustered(300, 48, 5, 0.5, seed=4)
    lengths = rng.integers(0, 40, 300)
    lengths[[3, 77]] = 0  # empty rows
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    indices = rng.integers(0, 300, int(indptr[-1])).astype(np.int32)
    got = csr_row_inner_products(x, indptr, indices, chunk_rows=64)
    rows = np.repeat(np.arange(300), lengths)
    expected = np.einsum("nd,nd->n", x[rows].astype(np.float64), x[indices].astype(np.float64))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_near_identical_features_stop_the_tie_search_at_max_width() -> None:
    from hcm.cluster.features import DegenerateFeaturesError

    rng = np.random.default_rng(0)
    x = np.ones((400, 16)) + 1e-9 * rng.standard_normal((400, 16))  # every distance a float32 tie
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    with pytest.raises(DegenerateFeaturesError, match=r"more than \d+ neighbours.*model.weights"):
        exact_knn(x, 20, max_width=64)
    full = exact_knn(x, 20)  # no bound: settles every tie by index, searching all N
    assert full.indices[5].tolist() == [5, *[j for j in range(21) if j != 5][:19]]
