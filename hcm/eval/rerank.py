"""k-reciprocal re-ranking (Zhong et al., CVPR 2017), sparse and streamed over query blocks.

This is the algorithm of the authors' Python code (the ``re_ranking`` function used by
open-reid, Cluster Contrast, torchreid and fast-reid), step for step, with
``N = Q + G`` items (queries first, then the gallery) and ``D`` their distances:

1. ``P = D ** 2`` (float32); ``T[i, j] = P[j, i] / max_k P[k, i]`` (the code's "divide by
   the column max, then transpose"; for a symmetric ``D``, row ``i`` of ``P`` divided by
   its maximum).
2. ``R[i]`` = items in increasing ``T[i]``; ties are broken by index (a stable sort; the
   original's ``np.argsort`` leaves tie order unspecified). Only the first ``k1 + 1``
   entries are ever used, so only those are computed.
3. ``S_i`` = k-reciprocal neighbours: ``j`` in ``R[i, :k1+1]`` with ``i`` in ``R[j, :k1+1]``.
   ``H_c`` = the same with ``k = round(k1 / 2)`` (``R[c, :round(k1/2)+1]``, NumPy rounding).
   Expansion: for ``c`` in ``S_i``, if ``|H_c & S_i| > 2/3 |H_c|`` add ``H_c`` to ``S_i``.
4. ``V[i, e] = exp(-T[i, e]) / sum_e' exp(-T[i, e'])`` over the expanded set.
5. Query expansion (if ``k2 != 1``): ``V[i] <- mean of V[j] for j in R[i, :k2]``.
6. ``m[i, j] = sum_k min(V[i, k], V[j, k])``; ``jaccard = 1 - m / (2 - m)``.
7. ``final = (1 - lambda) * jaccard + lambda * T``, restricted to query rows x gallery columns.

The original builds dense ``(N, N)`` matrices. Here ``R`` keeps ``k1 + 1`` columns,
``V`` is a sparse matrix (a few hundred non-zeros per row at most), the Jaccard term is
accumulated only over shared support, and the output is produced one block of query
rows at a time, so it can be scored without ever holding a ``(Q, G)`` matrix. The
``(N, N)`` distances are still *computed* once (the nearest-neighbour step), block by
block, so time grows with ``N^2``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from hcm.errors import HCMError
from hcm.eval.distance import as_feature_tensor, check_metric, distance_block, prepare

logger = logging.getLogger(__name__)

#: default memory budget of re-ranking (bytes); see :func:`estimate_rerank_memory`
DEFAULT_RERANK_BUDGET = 8 << 30
#: distances per block in the nearest-neighbour pass
_BLOCK_ELEMENTS = 1 << 24
#: (query, gallery, shared-support) triples per block in the Jaccard pass
_TRIPLES_PER_BLOCK = 1 << 23


class DistanceSource(Protocol):
    """Distances among ``num`` items (queries first): rows of ``D^T`` and single pairs."""

    num: int

    def rows(self, start: int, stop: int) -> torch.Tensor:
        """``D[:, start:stop].T`` as a float32 CPU tensor (stop - start, num)."""
        ...

    def pairs(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """``D[j, i]`` for index arrays ``i``, ``j`` (float32)."""
        ...


class DenseSource:
    """A given dense ``(N, N)`` distance matrix (any symmetry)."""

    def __init__(self, dist: torch.Tensor) -> None:
        self.dist = dist.float().cpu()
        self.num = dist.shape[0]

    def rows(self, start: int, stop: int) -> torch.Tensor:
        return self.dist[:, start:stop].T.contiguous()

    def pairs(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        return self.dist[torch.as_tensor(j), torch.as_tensor(i)].numpy()


class FeatureSource:
    """Distances computed on demand from features (cosine or squared Euclidean; see ``distance``)."""

    def __init__(self, feats: torch.Tensor, metric: str, device: torch.device) -> None:
        self.x, self.x_sq = prepare(feats.to(device).float(), metric)
        self.num = feats.shape[0]

    def rows(self, start: int, stop: int) -> torch.Tensor:
        sq = None if self.x_sq is None else self.x_sq[start:stop]
        return distance_block(self.x[start:stop], sq, self.x, self.x_sq).cpu()

    def pairs(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Grouped by ``i``: each row's partners are gathered once and multiplied in one ``bmm``."""
        out = np.empty(len(i), dtype=np.float32)
        if len(i) == 0:
            return out
        order = np.argsort(i, kind="stable")
        i_sorted, j_sorted = i[order], j[order]
        rows, first, count = np.unique(i_sorted, return_index=True, return_counts=True)
        by_count = np.argsort(count, kind="stable")  # similar widths together: little padding
        rows, first, count = rows[by_count], first[by_count], count[by_count]
        budget = max(1, (1 << 23) // self.x.shape[1])  # gathered partner vectors per step: 32 MB
        dev = self.x.device
        s = 0
        while s < len(rows):
            # counts ascend: rows s..e-1 fit in `budget` vectors when padded to the last one's count
            width = int(count[min(len(rows), s + max(1, budget // int(count[s]))) - 1])
            e = min(len(rows), s + max(1, budget // width))
            r = rows[s:e]
            slot = first[s:e, None] + np.arange(width)
            valid = np.arange(width) < count[s:e, None]
            partner = np.where(valid, j_sorted[np.minimum(slot, len(j_sorted) - 1)], r[:, None])
            r_t, p_t = torch.as_tensor(r, device=dev), torch.as_tensor(partner, device=dev)
            dot = torch.bmm(self.x[p_t], self.x[r_t].unsqueeze(2)).squeeze(2)
            if self.x_sq is None:
                d = 1.0 - dot
            else:
                d = self.x_sq[r_t][:, None] + self.x_sq[p_t] - 2.0 * dot
            out[order[slot[valid]]] = d.cpu().numpy()[valid]
            s = e
        return out


def half_k(k1: int) -> int:
    """``int(np.around(k1 / 2))``: the neighbourhood size of the expansion step (NumPy rounding)."""
    return int(np.around(k1 / 2.0))


#: bytes per stored non-zero of a sparse matrix, counting construction copies (COO, CSR, CSC)
_NNZ_BYTES = 48


def estimate_rerank_memory(num_query: int, num_gallery: int, k1: int = 20, k2: int = 6) -> int:
    """Upper bound (bytes) of the memory re-ranking needs before query expansion.

    Counts the neighbour lists, the k-reciprocal membership tensors, the sparse ``V`` at
    its largest possible size (every expansion set full: ``k + k * kh`` entries a row) and
    one block of each pass. The query-expanded ``V`` is checked separately, once ``V`` is
    known (:func:`iter_rerank_blocks`): its worst case, ``k2`` times that of ``V``, is
    never approached in practice and would refuse every large set.
    """
    n = num_query + num_gallery
    k = min(k1 + 1, n)
    kh = min(half_k(k1) + 1, n)
    row_nnz = min(n, k + k * kh)
    sparse_bytes = _NNZ_BYTES * n * row_nnz
    neighbours = 8 * n * max(k, k2) + n * k * kh + (1 << 24)  # ranks, masks, membership block
    blocks = 16 * _BLOCK_ELEMENTS + 40 * _TRIPLES_PER_BLOCK + 16 * n
    return sparse_bytes + neighbours + blocks


def _check_budget(need: int, what: str, num_query: int, num_gallery: int, budget: int) -> None:
    if need > budget:
        raise HCMError(
            f"k-reciprocal re-ranking of {num_query} queries x {num_gallery} gallery images: {what} may need "
            f"{need / 2**30:.1f} GiB, over the budget of {budget / 2**30:.1f} GiB; disable re-ranking "
            "(eval.rerank=false / --no-rerank), evaluate a smaller set, or raise the budget")


def check_rerank_budget(num_query: int, num_gallery: int, k1: int, k2: int, budget: int) -> None:
    """Refuse (:class:`HCMError`) when :func:`estimate_rerank_memory` exceeds ``budget`` bytes."""
    _check_budget(estimate_rerank_memory(num_query, num_gallery, k1, k2), "the neighbour pass",
                  num_query, num_gallery, budget)


@dataclass(frozen=True)
class _Neighbours:
    ranks: np.ndarray  # (N, max(k1 + 1, k2)) int64: R[i, :k]
    row_max: torch.Tensor  # (N,) float32: max_k P[k, i] (the normaliser of row i of T)


def stable_smallest(x: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` smallest entries of each row, ordered by (value, index).

    Equal to ``torch.sort(x, stable=True).indices[:, :k]`` without sorting whole rows.
    """
    vals, idx = torch.topk(x, k, dim=1, largest=False, sorted=True)
    tied = (x <= vals[:, -1:]).sum(1) > k  # the boundary value is shared beyond the k-th slot
    idx = idx.sort(1).values
    idx = idx.gather(1, x.gather(1, idx).sort(dim=1, stable=True).indices)
    if bool(tied.any()):
        rows = torch.nonzero(tied).squeeze(1)
        idx[rows] = torch.sort(x[rows], dim=1, stable=True).indices[:, :k]
    return idx


def _neighbours(source: DistanceSource, k: int, progress: bool) -> _Neighbours:
    n = source.num
    rows = max(1, _BLOCK_ELEMENTS // n)
    ranks = np.empty((n, k), dtype=np.int64)
    row_max = torch.empty(n, dtype=torch.float32)
    for start in tqdm(range(0, n, rows), desc="rerank: neighbours", disable=not progress, unit="block"):
        p = source.rows(start, min(n, start + rows)).pow(2)
        m = p.max(1).values
        if not bool((torch.isfinite(m) & (m > 0)).all()):
            bad = start + int(torch.nonzero(~(torch.isfinite(m) & (m > 0)))[0])
            raise HCMError(f"re-ranking: the distances of item {bad} are all zero or not finite "
                           "(identical or NaN features); re-ranking is undefined for them")
        t = p / m[:, None]
        row_max[start : start + len(m)] = m
        ranks[start : start + len(m)] = stable_smallest(t, k).numpy()
    return _Neighbours(ranks, row_max)


def _reciprocal_mask(ranks: np.ndarray, k: int, rows: slice) -> np.ndarray:
    """``mask[i, a]``: ``i`` is among the first ``k`` neighbours of ``ranks[i, a]`` (a < k)."""
    forward = ranks[rows, :k]
    backward = ranks[forward, :k]  # (B, k, k)
    own = np.arange(rows.start, rows.start + forward.shape[0])[:, None, None]
    return (backward == own).any(-1)


def _expansion_sets(nb: _Neighbours, k1: int) -> tuple[np.ndarray, np.ndarray]:
    """COO ``(row, col)`` of the expanded k-reciprocal sets (step 3), unique and sorted per row."""
    ranks = nb.ranks
    n = ranks.shape[0]
    k = min(k1 + 1, n)
    kh = min(half_k(k1) + 1, n)
    h_mask = np.concatenate([_reciprocal_mask(ranks, kh, slice(s, min(n, s + 65536)))
                             for s in range(0, n, 65536)])
    rows_out, cols_out = [], []
    block = max(1, (1 << 24) // (k * kh * k))
    for s in range(0, n, block):
        sl = slice(s, min(n, s + block))
        fwd = ranks[sl, :k]  # (B, k) candidates c
        s_mask = _reciprocal_mask(ranks, k, sl)  # (B, k): c in S_i
        s_set = np.where(s_mask, fwd, -1)  # S_i, -1 = absent
        h = ranks[fwd, :kh]  # (B, k, kh): R[c, :kh]
        hm = h_mask[fwd]  # (B, k, kh): entry of H_c
        in_s = (h[..., None] == s_set[:, None, None, :]).any(-1) & hm
        size_h = hm.sum(-1)
        grow = s_mask & (in_s.sum(-1) > (2.0 / 3.0) * size_h)
        add = hm & grow[..., None]
        b = fwd.shape[0]
        cand = np.concatenate([np.where(s_mask, fwd, n), np.where(add, h, n).reshape(b, -1)], axis=1)
        cand.sort(axis=1)
        keep = cand < n
        keep[:, 1:] &= cand[:, 1:] != cand[:, :-1]
        r, c = np.nonzero(keep)
        rows_out.append(r + s)
        cols_out.append(cand[r, c])
    return np.concatenate(rows_out), np.concatenate(cols_out)


def _weights(source: DistanceSource, nb: _Neighbours, rows: np.ndarray, cols: np.ndarray) -> sp.csr_matrix:
    """Step 4: ``V`` as a CSR float32 matrix."""
    n = source.num
    t = source.pairs(rows, cols) ** 2 / nb.row_max.numpy()[rows]
    w = np.exp(-t.astype(np.float32))
    total = np.bincount(rows, weights=w, minlength=n).astype(np.float32)
    vals = (w / total[rows]).astype(np.float32)
    return sp.csr_matrix((vals, (rows, cols)), shape=(n, n), dtype=np.float32)


def _query_expansion_nnz(v: sp.csr_matrix, ranks: np.ndarray, k2: int) -> int:
    """Upper bound of the non-zeros of the query-expanded ``V`` (sum of the merged rows' sizes)."""
    return int(np.diff(v.indptr)[ranks[:, : min(k2, v.shape[0])]].sum()) if k2 != 1 else v.nnz


def _query_expansion(v: sp.csr_matrix, ranks: np.ndarray, k2: int) -> sp.csr_matrix:
    """Step 5: ``V[i] <- mean(V[R[i, :k2]])`` (skipped for ``k2 == 1``, as in the original)."""
    if k2 == 1:
        return v
    n = v.shape[0]
    k2 = min(k2, n)
    a = sp.csr_matrix((np.ones(n * k2, dtype=np.float32), (np.repeat(np.arange(n), k2), ranks[:, :k2].ravel())),
                      shape=(n, n))
    out = (a @ v).tocsr()
    out.data /= np.float32(k2)
    out.eliminate_zeros()
    return out


def _jaccard_block(vq: sp.csr_matrix, vg_csc: sp.csc_matrix) -> np.ndarray:
    """Step 6 for a block of query rows: ``1 - m / (2 - m)`` with ``m = sum_k min(Vq[i,k], Vg[j,k])``."""
    b, g = vq.shape[0], vg_csc.shape[0]  # vg_csc: gallery rows x all columns
    vq = vq.tocoo()
    start = vg_csc.indptr[vq.col]
    count = vg_csc.indptr[vq.col + 1] - start
    total = int(count.sum())
    m = np.zeros(b * g, dtype=np.float64)
    if total:
        owner = np.repeat(np.arange(len(count)), count)
        pos = np.arange(total) - np.repeat(np.cumsum(count) - count, count) + start[owner]
        j = vg_csc.indices[pos]
        contrib = np.minimum(vq.data[owner], vg_csc.data[pos])
        m = np.bincount(vq.row[owner].astype(np.int64) * g + j, weights=contrib, minlength=b * g)
    m32 = m.astype(np.float32).reshape(b, g)
    return 1.0 - m32 / (np.float32(2.0) - m32)


def iter_rerank_blocks(source: DistanceSource, num_query: int, *, k1: int = 20, k2: int = 6,
                       lambda_value: float = 0.3, progress: bool = False,
                       block_rows: int | None = None,
                       budget: int = DEFAULT_RERANK_BUDGET) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(start, block)``: re-ranked distances of query rows ``start:start+len(block)`` to the gallery.

    Items ``0:num_query`` of ``source`` are the queries, the rest the gallery. Raises
    :class:`HCMError` before any work if :func:`estimate_rerank_memory` exceeds ``budget``
    bytes, and before query expansion if the expanded ``V`` could.
    """
    n = source.num
    num_gallery = n - num_query
    if k1 < 1 or k2 < 1:
        raise HCMError(f"re-ranking needs k1 >= 1 and k2 >= 1, got k1={k1}, k2={k2}")
    if not 0.0 <= lambda_value <= 1.0:
        raise HCMError(f"re-ranking lambda_value must be in [0, 1], got {lambda_value}")
    check_rerank_budget(num_query, num_gallery, k1, k2, budget)
    nb = _neighbours(source, min(max(k1 + 1, k2), n), progress)
    rows, cols = _expansion_sets(nb, k1)
    v = _weights(source, nb, rows, cols)
    need = _NNZ_BYTES * (v.nnz + _query_expansion_nnz(v, nb.ranks, k2)) + 8 * nb.ranks.size
    _check_budget(need, "the query expansion", num_query, num_gallery, budget)
    logger.debug("re-ranking: V has %d non-zeros (%.1f a row)", v.nnz, v.nnz / max(n, 1))
    v = _query_expansion(v, nb.ranks, k2)
    vg_csc = v[num_query:].tocsc()
    vg_csc.sort_indices()
    nnz_per_col = np.diff(vg_csc.indptr)
    v_q = v[:num_query]
    # rows per block: bounded by the output block and by the number of shared-support triples
    work = np.asarray(nnz_per_col[v_q.indices]).astype(np.int64)
    row_work = np.add.reduceat(work, v_q.indptr[:-1]) if len(work) else np.zeros(num_query, np.int64)
    row_work[np.diff(v_q.indptr) == 0] = 0
    limit = max(1, _BLOCK_ELEMENTS // max(num_gallery, 1))
    if block_rows is not None:
        limit = min(limit, block_rows)
    start = 0
    with tqdm(total=num_query, desc="rerank: jaccard", disable=not progress, unit="query") as bar:
        while start < num_query:
            stop = min(num_query, start + limit)
            csum = np.cumsum(row_work[start:stop])
            fit = int(np.searchsorted(csum, _TRIPLES_PER_BLOCK, side="right"))
            stop = start + max(1, min(stop - start, fit))
            jac = _jaccard_block(v_q[start:stop], vg_csc)
            t = source.rows(start, stop)[:, num_query:].pow(2) / nb.row_max[start:stop, None]
            final = torch.from_numpy(jac) * (1 - lambda_value) + t * lambda_value
            yield start, final
            bar.update(stop - start)
            start = stop


def re_ranking(q_g_dist: np.ndarray | torch.Tensor, q_q_dist: np.ndarray | torch.Tensor,
               g_g_dist: np.ndarray | torch.Tensor, k1: int = 20, k2: int = 6,
               lambda_value: float = 0.3, *, budget: int = DEFAULT_RERANK_BUDGET) -> np.ndarray:
    """Re-ranked (Q, G) distances from dense distance matrices (the original function's interface)."""
    qg = torch.as_tensor(np.asarray(q_g_dist) if not isinstance(q_g_dist, torch.Tensor) else q_g_dist)
    qq = torch.as_tensor(np.asarray(q_q_dist) if not isinstance(q_q_dist, torch.Tensor) else q_q_dist)
    gg = torch.as_tensor(np.asarray(g_g_dist) if not isinstance(g_g_dist, torch.Tensor) else g_g_dist)
    nq, ng = qg.shape
    if qq.shape != (nq, nq) or gg.shape != (ng, ng):
        raise HCMError(f"re_ranking: q_g_dist is {tuple(qg.shape)}, so q_q_dist must be {(nq, nq)} and "
                       f"g_g_dist {(ng, ng)}; got {tuple(qq.shape)} and {tuple(gg.shape)}")
    full = torch.cat([torch.cat([qq, qg], 1), torch.cat([qg.T, gg], 1)], 0).float()
    blocks = [b for _, b in iter_rerank_blocks(DenseSource(full), nq, k1=k1, k2=k2,
                                               lambda_value=lambda_value, budget=budget)]
    return torch.cat(blocks).numpy()


def rerank_source(qf: np.ndarray | torch.Tensor, gf: np.ndarray | torch.Tensor, metric: str,
                  device: torch.device) -> FeatureSource:
    """A :class:`FeatureSource` over ``[queries; gallery]``."""
    check_metric(metric)
    q = as_feature_tensor(qf, "query features")
    g = as_feature_tensor(gf, "gallery features")
    return FeatureSource(torch.cat([q.to(device), g.to(device, q.dtype)]), metric, device)
