"""mAP / CMC / mINP: hand-computed cases, agreement with the per-query reference loop, errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from eval_reference import reference_rank_metrics

from hcm.errors import HCMError
from hcm.eval import RankResult, evaluate_rank
from hcm.eval.match_ranks import GalleryIndex, match_ranks


def test_hand_computed_single_query():
    # query pid 1, camera 0. Gallery sorted by distance: 0.1 pid1/cam0 (junk, removed),
    # 0.2 pid2, 0.3 pid1/cam1 (match, rank 2), 0.4 pid0 distractor, 0.5 pid1/cam2 (match, rank 4)
    dist = np.array([[0.3, 0.1, 0.5, 0.2, 0.4]])
    g_pids = [1, 1, 1, 2, 0]
    g_cams = [1, 0, 2, 5, 3]
    r = evaluate_rank(dist, [1], g_pids, [0], g_cams, max_rank=5)
    assert r.mAP == pytest.approx((1 / 2 + 2 / 4) / 2, abs=1e-15)
    assert r.mINP == pytest.approx(2 / 4, abs=1e-15)
    np.testing.assert_array_equal(r.cmc, [0, 1, 1, 1, 1])
    assert (r.num_valid_queries, r.num_queries) == (1, 1)


def test_hand_computed_two_queries_with_ties_and_a_skipped_query():
    # ties are broken by gallery index: for query 0 all distances are equal, so the ranking
    # is the gallery order 0, 1, 2, 3 -> matches (pid 7, other camera) at ranks 2 and 4
    dist = np.array([[1.0, 1.0, 1.0, 1.0],
                     [0.9, 0.1, 0.5, 0.2],
                     [0.0, 0.0, 0.0, 0.0]])
    q_pids, q_cams = [7, 3, 9], [0, 0, 0]
    g_pids, g_cams = [5, 7, 3, 7], [1, 1, 1, 2]
    r = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, max_rank=4)
    ap0 = (1 / 2 + 2 / 4) / 2
    ap1 = 1 / 3  # query 1: order 1 (pid7), 3 (pid7), 2 (pid3: match at rank 3), 0
    assert r.num_valid_queries == 2 and r.num_queries == 3  # pid 9 has no gallery image
    assert r.mAP == pytest.approx((ap0 + ap1) / 2, abs=1e-15)
    assert r.mINP == pytest.approx((2 / 4 + 1 / 3) / 2, abs=1e-15)
    np.testing.assert_allclose(r.cmc, [0, 0.5, 1, 1])


def test_same_camera_same_identity_is_removed_but_other_identities_on_that_camera_stay():
    dist = np.array([[0.1, 0.2, 0.3]])
    # gallery 0: same pid & camera (junk); gallery 1: other pid, same camera (a negative)
    r = evaluate_rank(dist, [4], [4, 8, 4], [2], [2, 2, 3], max_rank=3)
    assert r.mAP == pytest.approx(1 / 2)
    np.testing.assert_array_equal(r.cmc, [0, 1, 1])


def _random_case(rng: np.random.Generator, kind: str):
    num_q, num_g = int(rng.integers(1, 25)), int(rng.integers(1, 120))
    num_ids, num_cams = int(rng.integers(1, 12)), int(rng.integers(1, 4))
    q_pids = rng.integers(0, num_ids, num_q)
    g_pids = rng.integers(0, num_ids, num_g)  # pid 0 also plays the distractor role
    q_cams = rng.integers(0, num_cams, num_q)
    g_cams = rng.integers(0, num_cams, num_g)
    if rng.random() < 0.3:  # single-camera identities: every image of pid 1 on camera 0
        q_cams[q_pids == 1] = 0
        g_cams[g_pids == 1] = 0
    if kind == "ties":
        dist = rng.integers(0, 4, (num_q, num_g)).astype(np.float32)
    elif kind == "float64":
        dist = rng.random((num_q, num_g))
    elif kind == "tiny":  # distances near the float32 denormal range
        dist = (rng.integers(0, 3, (num_q, num_g)) * 1e-38).astype(np.float32)
    else:
        dist = rng.standard_normal((num_q, num_g)).astype(np.float32) * 100
    return dist, q_pids, g_pids, q_cams, g_cams


@pytest.mark.parametrize("kind", ["ties", "float64", "tiny", "normal"])
def test_agrees_with_reference_loop_on_random_cases(kind):
    rng = np.random.default_rng(["ties", "float64", "tiny", "normal"].index(kind))
    checked = 0
    for _ in range(60):
        dist, qp, gp, qc, gc = _random_case(rng, kind)
        ref_map, ref_minp, ref_cmc, ref_valid = reference_rank_metrics(dist, qp, gp, qc, gc, max_rank=30)
        if ref_valid == 0:
            with pytest.raises(HCMError, match="no valid query"):
                evaluate_rank(dist, qp, gp, qc, gc, max_rank=30)
            continue
        r = evaluate_rank(torch.from_numpy(dist), qp, gp, qc, gc, max_rank=30)
        assert r.num_valid_queries == ref_valid
        assert abs(r.mAP - ref_map) <= 1e-9
        assert abs(r.mINP - ref_minp) <= 1e-9
        np.testing.assert_allclose(r.cmc, ref_cmc, rtol=0, atol=1e-9)
        checked += 1
    assert checked > 30


def _per_query_reference(dist, qp, gp, qc, gc):
    """(ap, inp, first rank) per valid query from the reference's definition."""
    out = {}
    for q in range(dist.shape[0]):
        order = np.argsort(dist[q], kind="stable")
        order = order[~((gp[order] == qp[q]) & (gc[order] == qc[q]))]
        ranks = np.flatnonzero(gp[order] == qp[q]) + 1
        if len(ranks):
            out[q] = ((np.arange(1, len(ranks) + 1) / ranks).mean(), len(ranks) / ranks[-1], ranks[0])
    return out


@pytest.mark.parametrize(("strategy", "bins"), [("sort", 4096), ("bins", 4096), ("bins", 1), ("bins", 5),
                                               ("compiled", 2048), ("compiled", 1), ("compiled", 5)])
def test_all_kernel_strategies_agree_with_reference_per_query(strategy, bins):
    # bins=1 puts almost every item in a match's bin: the exact tie-breaking path does all the work
    rng = np.random.default_rng(bins)
    for kind in ["ties", "float64", "tiny", "normal"] * 10:
        dist, qp, gp, qc, gc = _random_case(rng, kind)
        gallery = GalleryIndex.build(torch.as_tensor(gp), torch.as_tensor(gc))
        res = match_ranks(torch.from_numpy(dist), torch.as_tensor(qp), torch.as_tensor(qc), gallery,
                          strategy=strategy, bins=bins)
        ref = _per_query_reference(dist, qp, gp, qc, gc)
        assert set(np.flatnonzero(res.num_matches.numpy() > 0)) == set(ref)
        for q, (ap, inp, first) in ref.items():
            assert abs(float(res.ap[q]) - ap) <= 1e-12
            assert abs(float(res.inp[q]) - inp) <= 1e-12
            assert int(res.first_rank[q]) == first


@pytest.mark.parametrize("strategy", ["compiled", "bins", "sort"])
def test_spans_of_denormal_width_rank_exactly(strategy):
    # first-to-last match spans of a few float64 denormals: bins / span overflows to inf
    rng = np.random.default_rng(11)
    for _ in range(20):
        _, qp, gp, qc, gc = _random_case(rng, "normal")
        dist = rng.integers(-1, 3, (len(qp), len(gp))) * 5e-324
        gallery = GalleryIndex.build(torch.as_tensor(gp), torch.as_tensor(gc))
        res = match_ranks(torch.from_numpy(dist), torch.as_tensor(qp), torch.as_tensor(qc), gallery,
                          strategy=strategy)
        for q, (ap, inp, first) in _per_query_reference(dist, qp, gp, qc, gc).items():
            assert abs(float(res.ap[q]) - ap) <= 1e-12 and abs(float(res.inp[q]) - inp) <= 1e-12
            assert int(res.first_rank[q]) == first


def test_kernel_handles_row_blocks_beyond_the_float32_key_range():
    # 2**23 / (bins + 3) rows per internal call: with bins=2**20 that is 7 rows, so 20 rows split
    rng = np.random.default_rng(3)
    dist, qp, gp, qc, gc = _random_case(rng, "normal")
    dist = rng.standard_normal((20, 50)).astype(np.float32)
    qp, qc = rng.integers(0, 3, 20), rng.integers(0, 2, 20)
    gp, gc = rng.integers(0, 3, 50), rng.integers(0, 2, 50)
    gallery = GalleryIndex.build(torch.as_tensor(gp), torch.as_tensor(gc))
    res = match_ranks(torch.from_numpy(dist), torch.as_tensor(qp), torch.as_tensor(qc), gallery,
                      strategy="bins", bins=2**20)
    for q, (ap, _, first) in _per_query_reference(dist, qp, gp, qc, gc).items():
        assert abs(float(res.ap[q]) - ap) <= 1e-12 and int(res.first_rank[q]) == first


def test_large_block_is_processed_in_kernel_pieces(monkeypatch):
    import hcm.eval.metrics as metrics

    monkeypatch.setattr(metrics, "KERNEL_ELEMENTS", 64)  # 64 distances per piece -> many pieces
    rng = np.random.default_rng(11)
    dist = rng.random((40, 30))
    qp, gp = rng.integers(0, 5, 40), rng.integers(0, 5, 30)
    qc, gc = rng.integers(0, 3, 40), rng.integers(0, 3, 30)
    r = evaluate_rank(dist, qp, gp, qc, gc, max_rank=10)
    ref_map, ref_minp, ref_cmc, ref_valid = reference_rank_metrics(dist, qp, gp, qc, gc, max_rank=10)
    assert r.num_valid_queries == ref_valid and abs(r.mAP - ref_map) <= 1e-12
    np.testing.assert_allclose(r.cmc, ref_cmc, atol=1e-12)


@pytest.mark.parametrize("workers", [2, 3])
def test_worker_threads_give_the_same_result_as_one_thread(monkeypatch, workers):
    import hcm.eval.metrics as metrics
    from hcm.eval.metrics import RankAccumulator

    monkeypatch.setattr(metrics, "KERNEL_ELEMENTS", 200)  # ~7 rows per block -> 15 blocks over the workers
    rng = np.random.default_rng(12)
    dist = torch.from_numpy(rng.random((100, 30)))
    dist[rng.random((100, 30)) < 0.2] = 0.5  # ties
    qp, gp = torch.from_numpy(rng.integers(0, 6, 100)), torch.from_numpy(rng.integers(0, 6, 30))
    qc, gc = torch.from_numpy(rng.integers(0, 3, 100)), torch.from_numpy(rng.integers(0, 3, 30))
    results = []
    for n in (1, workers):
        acc = RankAccumulator(gp, gc, torch.device("cpu"), 10, workers=n)
        acc.add(dist[:61], qp[:61], qc[:61])
        acc.add(dist[61:], qp[61:], qc[61:])
        results.append(acc.result())
    one, many = results
    assert one.mAP == many.mAP and one.mINP == many.mINP and one.num_valid_queries == many.num_valid_queries
    np.testing.assert_array_equal(one.cmc, many.cmc)
    ref_map, ref_minp, ref_cmc, ref_valid = reference_rank_metrics(dist.numpy(), qp.numpy(), gp.numpy(), qc.numpy(),
                                                                   gc.numpy(), max_rank=10)
    assert many.num_valid_queries == ref_valid and abs(many.mAP - ref_map) <= 1e-12
    assert abs(many.mINP - ref_minp) <= 1e-12
    np.testing.assert_allclose(many.cmc, ref_cmc, atol=1e-12)


def test_worker_thread_errors_reach_the_caller_and_restore_the_thread_count(monkeypatch):
    import hcm.eval.metrics as metrics
    from hcm.eval.metrics import RankAccumulator

    monkeypatch.setattr(metrics, "KERNEL_ELEMENTS", 20)
    before = torch.get_num_threads()
    dist = torch.rand(12, 10, dtype=torch.float64)
    dist[9, 3] = float("nan")  # in a late block
    acc = RankAccumulator(torch.arange(10) % 3, torch.arange(10) % 2, torch.device("cpu"), 5, workers=2)
    with pytest.raises(HCMError, match="NaN or infinite"):
        acc.add(dist, torch.arange(12) % 3, torch.ones(12, dtype=torch.int64))
    assert torch.get_num_threads() == before


def test_max_rank_beyond_gallery_size_keeps_the_curve_flat():
    r = evaluate_rank(np.array([[0.2, 0.1]]), [1], [1, 2], [0], [1, 1], max_rank=5)
    np.testing.assert_array_equal(r.cmc, [0, 1, 1, 1, 1])


def test_to_dict_is_json_serialisable_and_uses_fractions():
    r = evaluate_rank(np.array([[0.1, 0.2], [0.3, 0.1]]), [1, 2], [1, 2], [0, 0], [1, 1], max_rank=10)
    d = json.loads(json.dumps(r.to_dict()))
    assert set(d) == {"mAP", "mINP", "cmc", "rank1", "rank5", "rank10", "num_valid_queries", "num_queries"}
    assert d["mAP"] == 1.0 and d["rank1"] == 1.0 and d["rank10"] == 1.0 and len(d["cmc"]) == 10
    assert isinstance(r, RankResult) and r.rank(5) == 1.0
    short = evaluate_rank(np.array([[0.1, 0.2]]), [1], [1, 2], [0], [1, 1], max_rank=3).to_dict()
    assert short["rank5"] is None and short["rank10"] is None
    with pytest.raises(HCMError, match="max_rank"):
        evaluate_rank(np.array([[0.1, 0.2]]), [1], [1, 2], [0], [1, 1], max_rank=3).rank(5)


def test_result_is_frozen():
    r = evaluate_rank(np.array([[0.1]]), [1], [1], [0], [1])
    with pytest.raises(AttributeError):
        r.mAP = 0.5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((np.zeros((2, 3)), [1, 2], [1, 2], [0, 0], [1, 1, 1]), "g_pids has 2 entries"),
        ((np.zeros((2, 3)), [1], [1, 2, 3], [0, 0], [1, 1, 1]), "q_pids has 1 entries"),
        ((np.zeros(3), [1], [1, 2, 3], [0], [1, 1, 1]), "2-D"),
        ((np.zeros((1, 2)), [1.5], [1, 2], [0], [1, 1]), "integers"),
        ((np.zeros((0, 2)), [], [1, 2], [], [1, 1]), "at least one query"),
        ((np.array([[np.nan, 0.1]]), [1], [1, 1], [0], [1, 1]), "NaN"),
        ((np.array([[np.inf, 0.1]]), [1], [1, 1], [0], [1, 1]), "NaN or infinite"),
        ((np.array([[0.1, 0.2]]), [1], [2, 3], [0], [1, 1]), "no valid query"),
        ((np.array([[0.1, 0.2]]), [1], [1, 1], [0], [0, 0]), "no valid query"),  # same camera only
    ],
)
def test_bad_input_raises_clear_error(args, message):
    with pytest.raises(HCMError, match=message):
        evaluate_rank(*args)


def test_max_rank_must_be_positive():
    with pytest.raises(HCMError, match="max_rank"):
        evaluate_rank(np.array([[0.1]]), [1], [1], [0], [1], max_rank=0)


def test_integer_distances_and_numpy_or_torch_labels():
    rng = np.random.default_rng(12)
    dist = rng.integers(0, 5, (15, 40))
    qp, gp = rng.integers(0, 4, 15), rng.integers(0, 4, 40)
    qc, gc = rng.integers(0, 2, 15), rng.integers(0, 2, 40)
    a = evaluate_rank(dist, qp, gp, qc, gc)
    b = evaluate_rank(torch.from_numpy(dist.astype(np.float32)), torch.from_numpy(qp), list(gp),
                      torch.from_numpy(qc).int(), tuple(gc))
    assert a.mAP == b.mAP and a.mINP == b.mINP
    np.testing.assert_array_equal(a.cmc, b.cmc)


@pytest.mark.parametrize("strategy", ["sort", "bins", "compiled"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_negative_zero_ties_with_zero(strategy, dtype):
    # -0.0 == 0.0, so the stable order is the gallery order: match (index 2) has rank 3
    dist = torch.tensor([[0.0, -0.0, -0.0, 0.0, -1.0]], dtype=dtype)
    gallery = GalleryIndex.build(torch.tensor([5, 6, 1, 1, 7]), torch.tensor([0, 0, 1, 0, 0]))
    res = match_ranks(dist, torch.tensor([1]), torch.tensor([0]), gallery, strategy=strategy)
    # ranking: index 4 (-1.0), then 0, 1, 2 (match), 3 (junk: pid 1, camera 0)
    assert int(res.first_rank[0]) == 4 and float(res.ap[0]) == 1 / 4


def test_accumulator_refuses_blocks_that_do_not_match_the_labels():
    from hcm.eval.metrics import RankAccumulator

    acc = RankAccumulator(torch.tensor([1, 2, 3]), torch.tensor([0, 0, 1]), torch.device("cpu"), 5)
    with pytest.raises(HCMError, match="does not match"):
        acc.add(torch.zeros(2, 4), torch.tensor([1, 2]), torch.tensor([1, 1]))
    with pytest.raises(HCMError, match="does not match"):
        acc.add(torch.zeros(2, 3), torch.tensor([1]), torch.tensor([1]))


def test_metric_kernel_restores_the_thread_count_even_after_an_error():
    before = torch.get_num_threads()
    evaluate_rank(np.array([[0.1, 0.2]]), [1], [1, 2], [0], [1, 1])
    with pytest.raises(HCMError):
        evaluate_rank(np.array([[0.1, np.nan]]), [1], [1, 2], [0], [1, 1])
    assert torch.get_num_threads() == before


def test_compiled_kernel_works_without_a_writable_numba_cache():
    # numba refuses cache=True when no cache location is writable (read-only install, no
    # writable home); the kernel must then compile per process instead of failing to import
    code = """
import numba.core.caching as caching
caching.CacheImpl._locator_classes = []
import numpy as np
from hcm.eval import rank_kernel
out = np.zeros((1, 2), np.int64)
rank_kernel.rank_rows(np.array([[0.5, 0.1, 0.2]]), np.array([1]), np.array([1, 2, 1]),
                      np.array([[0.2, 0.5]]), np.array([[2, 0]]), np.array([2]), 16, out)
print(type(rank_kernel.rank_rows._cache).__name__, out.tolist())
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    # gallery [0.5 (match), 0.1 (other), 0.2 (match)]: ranks 2 and 3; no disk cache
    assert done.stdout.split() == ["NullCache", "[[2,", "3]]"]
