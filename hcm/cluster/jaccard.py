"""Sparse k-reciprocal Jaccard distance (method.md, "The k-reciprocal Jaccard distance, exactly").

The public Cluster Contrast / SpCL code builds three dense N x N matrices (weights,
query-expanded weights, distances): ~4 GB each at MSMT17's 32,621 images. Every one of
them is sparse: a row of the weights has ~|S_i| entries, and two images whose weight rows
share no column are at distance exactly 1. Here each step is a sparse-matrix operation
(scipy CSR), with no Python loop over the N images:

1. ``R``: exact k1-NN lists, self first (:func:`hcm.cluster.knn.exact_knn`);
2. ``S = A_k1 .* A_k1^T`` and ``H = A_h .* A_h^T`` with ``A_k[i, R[i, :k]] = 1`` and
   ``h = round(k1 / 2) + 1``: the k-reciprocal sets as boolean sparse matrices;
3. ``|H_c & S_i|`` for every c in S_i is ``(S H^T)[i, c]``; the expansion adds the rows
   ``H_c`` passing the test with one sparse product;
4. softmax weights over each expanded set (dot products of the pairs only);
5. query expansion ``V <- Q V / k2`` with ``Q[i, R[i, :k2]] = 1``;
6. ``m_ij = sum_k min(V_ik, V_jk)`` by expanding, block of rows by block of rows, every
   stored ``V_ik`` against the stored entries ``V_jk``, j >= i, of column k (the pairs
   with overlapping support, and only those, each once) and summing per pair, then
   ``d = 1 - m / (2 - m)`` clamped at 0, mirrored to the lower triangle (so the result
   is exactly symmetric).

Precision: the k-NN order is exact for float32-rounded distances (see
:mod:`hcm.cluster.knn`); the dot products inside the softmax weights are float32 (faiss,
as the public code's ``torch.mm``; error ~1e-7 at d = 2048); the softmax, query
expansion, min-sums and distances are float64 (the public code: float32, fp16 optionally),
so distances agree with an all-float64 computation to ~1e-6 at worst.

The result is a CSR matrix holding every pair with distance < 1 (every other pair is at
distance 1), with the diagonal stored as exact zeros and every zero distance stored
explicitly, which scikit-learn's DBSCAN needs to count neighbours correctly on a sparse
precomputed matrix.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from hcm.cluster.features import DegenerateFeaturesError, FeatureError, prepare_features
from hcm.cluster.knn import csr_row_inner_products, exact_knn, faiss_threads
from hcm.cluster.summary import StageTimer
from hcm.errors import ConfigError

logger = logging.getLogger(__name__)

#: (row, column, value) triples materialised at once by the min-sum step (~40 bytes each).
#: Small blocks keep every temporary under glibc's 32 MB mmap threshold, so the memory is
#: reused instead of being mapped (and page-faulted) afresh for each block: 2^23 was 15-25%
#: slower than 2^20 on the benchmark machine.
DEFAULT_MAX_TRIPLES = 1 << 20
#: entries of the dense (block rows x N) float64 accumulator of the min-sum step
DEFAULT_ACCUMULATOR = 1 << 20
#: seconds between progress lines of a long Jaccard step
LOG_EVERY_S = 10.0
#: with a pair budget: most k-NN candidates per row searched to settle ties (near-identical
#: features make every distance a tie and the search widen to all N: N x N memory)
KNN_MAX_WIDTH = 2048
#: a neighbour shared by more than this share of the images marks degenerate features
DEGENERATE_SHARE = 0.25


def half_k(k1: int) -> int:
    """Length of the neighbour prefix defining H: ``round(k1 / 2) + 1`` with Python's
    round (half to even, as ``np.around`` in the public code): 30 -> 16, 5 -> 3, 7 -> 5."""
    return round(k1 / 2) + 1


def neighbour_matrix(ranks: np.ndarray, k: int) -> sp.csr_matrix:
    """Boolean CSR ``A`` with ``A[i, j] = 1`` iff j is among the first k entries of ``ranks[i]``."""
    n = ranks.shape[0]
    indices = np.ascontiguousarray(ranks[:, :k], dtype=np.int32).ravel()
    indptr = np.arange(0, n * k + 1, k, dtype=np.int64)
    a = sp.csr_matrix((np.ones(n * k, dtype=np.int32), indices, indptr), shape=(n, n))
    a.sort_indices()
    return a


def k_reciprocal_sets(ranks: np.ndarray, k: int) -> sp.csr_matrix:
    """Step 2: CSR with 1 at (i, j) iff j is in the first k of R[i] and i in the first k of R[j]."""
    a = neighbour_matrix(ranks, k)
    s = a.multiply(a.T).tocsr()
    s.sort_indices()
    return s


def expand_sets(s: sp.csr_matrix, h: sp.csr_matrix) -> sp.csr_matrix:
    """Step 3: ``E_i = S_i  u  union of H_c over c in S_i with |H_c & S_i| > 2/3 |H_c|``.

    The test uses the float expression of the public code (``> 2/3 * len(H_c)``) and the
    original S_i (not the growing union), as method.md and the public code do.
    """
    n = s.shape[0]
    overlap = (s @ h.T).multiply(s).tocoo()  # |S_i & H_c| for c in S_i (>= 1: c is in H_c)
    h_size = np.diff(h.indptr)
    passed = overlap.data > (2.0 / 3.0) * h_size[overlap.col]
    chosen = sp.csr_matrix(
        (np.ones(int(passed.sum()), dtype=np.int32), (overlap.row[passed], overlap.col[passed])),
        shape=(n, n),
    )
    expanded = (s + chosen @ h).tocsr()
    expanded.data[:] = 1
    expanded.sort_indices()
    return expanded


def softmax_weights(x: np.ndarray, support: sp.csr_matrix) -> sp.csr_matrix:
    """Step 4: ``V[i, j] = softmax over j in E_i of -(2 - 2 f_i . f_j)`` (float64 CSR).

    The dot products are float32 (as the public code's ``torch.mm``), the softmax float64.

    ``support``: CSR whose stored entries are the sets E_i (every row non-empty).
    """
    n = support.shape[0]
    counts = np.diff(support.indptr)
    if (counts == 0).any():
        raise ValueError("every row of the support must be non-empty (i is in its own set)")
    rows = np.repeat(np.arange(n, dtype=np.int64), counts)
    dots = csr_row_inner_products(x, support.indptr, support.indices).astype(np.float64)
    logits = -(2.0 - 2.0 * dots)
    starts = support.indptr[:-1]
    logits -= np.maximum.reduceat(logits, starts)[rows]
    weights = np.exp(logits)
    weights /= np.add.reduceat(weights, starts)[rows]
    v = sp.csr_matrix((weights, support.indices.copy(), support.indptr.copy()), shape=(n, n))
    v.has_sorted_indices = support.has_sorted_indices
    return v


def query_expansion(v: sp.csr_matrix, ranks: np.ndarray, k2: int) -> sp.csr_matrix:
    """Step 5: ``V[i] <- mean of V[j] over the first k2 entries of R[i]`` (k2 = 1: unchanged)."""
    if k2 == 1:
        return v
    q = neighbour_matrix(ranks, k2).astype(np.float64)
    out = (q @ v).tocsr()
    out.data /= k2
    out.sort_indices()
    return out


def _row_blocks(row_cost: np.ndarray, budget: int, max_rows: int) -> list[tuple[int, int]]:
    """Split rows into consecutive blocks of total cost <= budget and at most ``max_rows``
    rows (at least one row each)."""
    blocks: list[tuple[int, int]] = []
    cumulative = np.concatenate([[0], np.cumsum(row_cost, dtype=np.int64)])
    start, n = 0, len(row_cost)
    while start < n:
        stop = int(np.searchsorted(cumulative, cumulative[start] + budget, side="right")) - 1
        stop = min(max(stop, start + 1), start + max_rows, n)
        blocks.append((start, stop))
        start = stop
    return blocks


def _mirror_upper(n: int, rows: np.ndarray, cols: np.ndarray, data: np.ndarray) -> sp.csr_matrix:
    """Full symmetric CSR (sorted indices) from the upper triangle (rows <= cols), sorted by
    (row, col). Row r holds first its lower entries (from the pairs (i, r), i < r, in order
    of i) and then its upper ones, so every row comes out sorted without a sort per row."""
    off = rows != cols
    lower_rows = cols[off]
    order = np.argsort(lower_rows, kind="stable")  # by (r, i): the upper list is sorted by i
    lower_rows, lower_cols, lower_data = lower_rows[order], rows[off][order], data[off][order]
    upper_count = np.bincount(rows, minlength=n)
    lower_count = np.bincount(lower_rows, minlength=n)
    indptr = np.concatenate([[0], np.cumsum(upper_count + lower_count)])
    indices = np.empty(int(indptr[-1]), dtype=np.int32)
    out_data = np.empty(int(indptr[-1]), dtype=np.float64)
    lower_start = np.concatenate([[0], np.cumsum(lower_count)[:-1]])
    upper_start = np.concatenate([[0], np.cumsum(upper_count)[:-1]])
    lower_pos = indptr[lower_rows] + np.arange(len(lower_rows)) - lower_start[lower_rows]
    upper_pos = indptr[rows] + lower_count[rows] + np.arange(len(rows)) - upper_start[rows]
    indices[lower_pos], out_data[lower_pos] = lower_cols, lower_data
    indices[upper_pos], out_data[upper_pos] = cols, data
    out = sp.csr_matrix((out_data, indices, indptr), shape=(n, n))
    out.has_sorted_indices = True
    return out


def jaccard_from_weights(v: sp.csr_matrix, *, cutoff: float | None = None,
                         max_triples: int = DEFAULT_MAX_TRIPLES,
                         accumulator: int = DEFAULT_ACCUMULATOR,
                         progress: bool = False) -> sp.csr_matrix:
    """Step 6: ``d_ij = max(0, 1 - m_ij / (2 - m_ij))``, ``m_ij = sum_k min(V_ik, V_jk)``.

    Only pairs with overlapping support are computed (all others are at distance 1 and
    not stored), and only once (j >= i; m is symmetric): for a block of rows, every stored
    ``V_ik`` is paired with the stored entries ``V_jk``, j >= i, of column k (the
    (i, j, k) triples), and ``min(V_ik, V_jk)`` is summed per (i, j) with ``np.bincount``
    into a dense (block rows x (N - first row)) accumulator, whose non-zeros are the pairs
    with overlapping support. Blocks hold at most ``max_triples`` triples and
    ``accumulator`` accumulator entries, so memory is bounded whatever N.

    Returns a symmetric float64 CSR (sorted indices) with the pairs at distance < 1
    (``cutoff`` given: only those at distance <= cutoff), the diagonal stored as exact
    zeros and zero distances kept.
    """
    n = v.shape[0]
    v = v.tocsr()
    v.sort_indices()
    nnz = v.nnz
    entry_row = np.repeat(np.arange(n, dtype=np.int64), np.diff(v.indptr))
    # column-major order of the entries; csc_pos[e] = position of CSR entry e in it
    to_csc = np.lexsort((entry_row, v.indices))
    csc_rows = entry_row[to_csc].astype(np.int32)
    csc_data = v.data[to_csc]
    csc_pos = np.empty(nnz, dtype=np.int64)
    csc_pos[to_csc] = np.arange(nnz)
    col_end = np.cumsum(np.bincount(v.indices, minlength=n))
    # members j >= i of column k start at entry (i, k) itself (columns sorted by row)
    entry_count = col_end[v.indices] - csc_pos
    row_cost = np.bincount(entry_row, weights=entry_count, minlength=n).astype(np.int64)
    del to_csc
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    blocks = _row_blocks(row_cost, max_triples, max(1, accumulator // max(n, 1)))
    last_log = time.perf_counter()
    for b, (r0, r1) in enumerate(tqdm(blocks, desc="jaccard", unit="block", disable=not progress, leave=False)):
        if time.perf_counter() - last_log > LOG_EVERY_S:
            last_log = time.perf_counter()
            logger.info("clustering: Jaccard rows %d of %d (block %d of %d), %d pairs kept so far", r0, n, b,
                        len(blocks), sum(len(p[0]) for p in parts))
        e0, e1 = int(v.indptr[r0]), int(v.indptr[r1])
        counts = entry_count[e0:e1]
        total = int(counts.sum())
        width = n - r0  # columns j >= r0 only
        first = np.cumsum(counts) - counts
        pos = np.repeat(csc_pos[e0:e1] - first, counts)
        pos += np.arange(total)
        mins = np.minimum(np.repeat(v.data[e0:e1], counts), csc_data[pos])
        local = np.repeat(np.arange(r1 - r0, dtype=np.int64) * width - r0,
                          np.diff(v.indptr[r0:r1 + 1]))
        key = np.repeat(local, counts)
        key += csc_rows[pos]
        del pos
        m_block = np.bincount(key, weights=mins, minlength=(r1 - r0) * width)
        del key, mins
        # pairs with overlapping support (each min is > 0); numpy finds non-zeros of a
        # boolean array ~4x faster than of a float one
        flat = np.flatnonzero(m_block > 0.0)
        m = m_block[flat]
        del m_block
        local_row, col = np.divmod(flat, width)
        row = local_row + r0
        col += r0
        dist = 1.0 - m / (2.0 - m)
        np.maximum(dist, 0.0, out=dist)
        dist[col == row] = 0.0  # d_ii = 0 exactly (m_ii = 1 up to rounding)
        keep = dist < 1.0 if cutoff is None else dist <= cutoff
        parts.append((row[keep], col[keep].astype(np.int32), dist[keep]))
    if not parts:
        return sp.csr_matrix((n, n), dtype=np.float64)
    rows, cols, data = (np.concatenate(p) for p in zip(*parts, strict=True))
    del parts
    return _mirror_upper(n, rows, cols, data)


def check_params(n: int, k1: int, k2: int) -> None:
    """Refuse parameter combinations the algorithm does not define."""
    if k1 < 1 or k2 < 1:
        raise ConfigError(f"k1={k1} and k2={k2} must be >= 1 (cluster.k1, cluster.k2)")
    if k2 > k1:
        raise ConfigError(
            f"k2={k2} > k1={k1}: query expansion averages the first k2 of the k1 neighbours; "
            "set cluster.k2 <= cluster.k1"
        )
    if n < k1:
        raise FeatureError(
            f"{n} features but k1={k1} neighbours per image are needed; "
            f"use at least {k1} images or lower cluster.k1"
        )


def jaccard_distance(features: object, k1: int = 30, k2: int = 6, *,
                     threads: int | None = None, use_gpu: bool | None = None,
                     cutoff: float | None = None, timer: StageTimer | None = None,
                     progress: bool = False,
                     max_triples: int = DEFAULT_MAX_TRIPLES,
                     pair_budget: int | None = None) -> sp.csr_matrix:
    """k-reciprocal Jaccard distance of N features as a sparse N x N CSR matrix.

    ``features``: (N, d) numpy array or torch tensor of L2-normalised features (validated by
    :func:`hcm.cluster.features.prepare_features`). Stored entries: every pair at distance
    < 1 (pairs not stored are at distance exactly 1), the diagonal and every zero distance
    stored explicitly. ``cutoff``: store only the pairs at distance <= cutoff; DBSCAN with
    ``eps`` needs only ``cutoff=eps`` (pairs further apart are never neighbours), which keeps
    the matrix small when the features are poorly clustered. ``threads``: faiss threads
    (default torch's); ``use_gpu``: None = a GPU flat index when available; ``timer``:
    receives the seconds of each stage; ``max_triples``: memory bound of the last step;
    ``pair_budget``: most pair terms of the last step per image (:func:`check_neighbourhoods`;
    None = no bound); with a budget, the k-NN search for ties also stops at ``KNN_MAX_WIDTH``
    candidates per row. Each stage's time and size is logged (INFO), degenerate features get a
    warning.
    """
    if cutoff is not None and not 0.0 <= cutoff < 1.0:
        raise ConfigError(f"cutoff={cutoff} must be in [0, 1) (None: keep every pair below 1)")
    timer = timer or StageTimer()
    with timer.stage("prepare"):
        x = prepare_features(features)
        n = x.shape[0]
        check_params(n, k1, k2)
    with faiss_threads(threads):
        with timer.stage("knn"):
            knn = exact_knn(x, k1, threads=threads, use_gpu=use_gpu,
                            max_width=None if pair_budget is None else KNN_MAX_WIDTH)
            ranks = knn.indices
        with timer.stage("reciprocal"):
            s = k_reciprocal_sets(ranks, k1)
            h = k_reciprocal_sets(ranks, half_k(k1))
            support = expand_sets(s, h)
            del s, h
        with timer.stage("weights"):
            v = softmax_weights(x, support)
            del support
    with timer.stage("query_expansion"):
        v = query_expansion(v, ranks, k2)
    times = timer.times
    logger.info("clustering %d features: k-NN %.1f s (%d rows re-searched for ties), reciprocal sets %.1f s, "
                "weights %.1f s, query expansion %.1f s (%.1f weights per image)", n, times["knn"],
                knn.researched, times["reciprocal"], times["weights"], times["query_expansion"], v.nnz / n)
    check_neighbourhoods(v, pair_budget)
    with timer.stage("jaccard"):
        dist = jaccard_from_weights(v, cutoff=cutoff, max_triples=max_triples,
                                    progress=progress)
    logger.info("clustering: Jaccard distances %.1f s, %d stored pairs (%.1f per image)",
                timer.times["jaccard"], dist.nnz, dist.nnz / n)
    return dist


def pair_terms(v: sp.csr_matrix) -> tuple[int, int]:
    """(number of (i, j, k) terms of the min-sums of step 6 with j >= i, largest column of V).

    Column k of V with c_k entries contributes c_k (c_k + 1) / 2 terms: the work of
    :func:`jaccard_from_weights` (and a bound on the pairs it examines), known before it runs.
    """
    counts = np.bincount(v.indices, minlength=v.shape[1]).astype(np.int64)
    return int((counts * (counts + 1) // 2).sum()), int(counts.max(initial=0))


def check_neighbourhoods(v: sp.csr_matrix, pair_budget: int | None) -> None:
    """Warn about degenerate features (one neighbour shared by most images) and refuse, with
    :class:`DegenerateFeaturesError`, a Jaccard step over ``pair_budget`` terms per image."""
    n = v.shape[0]
    terms, hub = pair_terms(v)
    logger.info("clustering: the Jaccard step has %d pair terms to sum (%.0f per image; largest shared "
                "neighbourhood: %d of %d images)", terms, terms / n, hub, n)
    degenerate = n >= 100 and hub > DEGENERATE_SHARE * n
    if degenerate:
        logger.warning(
            "clustering: degenerate features: one image is in the expanded neighbourhood of %d of %d images "
            "(%.0f%%): the model maps most images to nearly the same feature, so there is no cluster "
            "structure to find and the Jaccard step costs ~N^2. Check model.weights (a pretrained or ImageNet "
            "checkpoint, not 'none' or a diverged run)", hub, n, 100 * hub / n)
    if pair_budget is not None and terms > pair_budget * n:
        raise DegenerateFeaturesError(
            f"clustering stopped before the Jaccard step: {terms:,} pair terms ({terms / n:,.0f} per image) exceed "
            f"cluster.pair_budget={pair_budget:,} per image"
            + (f"; the features are degenerate (one neighbourhood holds {hub} of {n} images)" if degenerate else "")
            + ". Check model.weights (start from a pretrained or ImageNet checkpoint, not 'none'); to run it "
            "anyway, raise cluster.pair_budget (time and memory grow with the terms, ~20 ns each)"
        )
