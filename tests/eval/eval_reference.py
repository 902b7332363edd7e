"""Slow, obviously-correct reference implementations the fast code is checked against.

Kept deliberately plain: one query at a time, a full stable sort, explicit masks.
``benchmarks/bench_eval.py`` times :func:`reference_rank_metrics` as the per-query loop.
"""

from __future__ import annotations

import numpy as np


def reference_rank_metrics(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """Return ``(mAP, mINP, cmc, num_valid)`` computed one query at a time.

    Ranking = stable argsort of the query's distances (ties by gallery index); gallery
    items with the query's identity and camera are removed; queries without a true
    match are skipped.
    """
    distmat = np.asarray(distmat)
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    q_camids, g_camids = np.asarray(q_camids), np.asarray(g_camids)
    aps, inps, first_ranks = [], [], []
    for q in range(distmat.shape[0]):
        order = np.argsort(distmat[q], kind="stable")
        junk = (g_pids[order] == q_pids[q]) & (g_camids[order] == q_camids[q])
        order = order[~junk]
        hits = g_pids[order] == q_pids[q]
        if not hits.any():
            continue
        ranks = np.flatnonzero(hits) + 1  # 1-based rank of each true match
        precision_at_hits = np.arange(1, len(ranks) + 1) / ranks
        aps.append(precision_at_hits.mean())
        inps.append(len(ranks) / ranks[-1])
        first_ranks.append(ranks[0])
    if not aps:
        return float("nan"), float("nan"), np.zeros(max_rank), 0
    first_ranks = np.array(first_ranks)
    cmc = np.array([(first_ranks <= k).mean() for k in range(1, max_rank + 1)])
    return float(np.mean(aps)), float(np.mean(inps)), cmc, len(aps)


def reference_re_ranking(q_g_dist, q_q_dist, g_g_dist, k1=20, k2=6, lambda_value=0.3):
    """Dense k-reciprocal re-ranking, one item at a time (Zhong et al., CVPR 2017).

    The steps of the authors' Python code, with one deliberate difference: neighbour
    lists come from a *stable* argsort (ties by index) instead of NumPy's default sort,
    so that the result is defined. Everything is float32, as in the original.
    """
    q_g_dist, q_q_dist, g_g_dist = (np.asarray(a, dtype=np.float32) for a in (q_g_dist, q_q_dist, g_g_dist))
    num_query = q_g_dist.shape[0]
    dist = np.concatenate([np.concatenate([q_q_dist, q_g_dist], axis=1),
                           np.concatenate([q_g_dist.T, g_g_dist], axis=1)], axis=0)
    n = dist.shape[0]
    p = np.power(dist, 2).astype(np.float32)
    t = np.transpose(p / np.max(p, axis=0))  # t[i, j] = p[j, i] / max_k p[k, i]
    ranks = np.argsort(t, axis=1, kind="stable")
    half = int(np.around(k1 / 2.0))

    def reciprocal(i, k):
        forward = ranks[i, : k + 1]
        return np.array([j for j in forward if i in ranks[j, : k + 1]], dtype=np.int64)

    v = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        s_i = reciprocal(i, k1)
        expanded = list(s_i)
        for c in s_i:
            h_c = reciprocal(c, half)
            if len(np.intersect1d(h_c, s_i)) > 2.0 / 3.0 * len(h_c):
                expanded.extend(h_c)
        expanded = np.unique(np.array(expanded, dtype=np.int64))
        weight = np.exp(-t[i, expanded])
        v[i, expanded] = weight / np.sum(weight)
    if k2 != 1:
        v = np.stack([np.mean(v[ranks[i, :k2]], axis=0) for i in range(n)]).astype(np.float32)
    jaccard = np.ones((num_query, n), dtype=np.float32)
    for i in range(num_query):
        m = np.zeros(n, dtype=np.float32)
        for j in range(n):
            m[j] = np.minimum(v[i], v[j]).sum()
        jaccard[i] = 1.0 - m / (2.0 - m)
    final = jaccard * (1 - lambda_value) + t[:num_query] * lambda_value
    return final[:, num_query:]
