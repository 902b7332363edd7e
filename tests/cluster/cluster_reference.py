"""A deliberately simple, dense, loop-based k-reciprocal Jaccard distance (small N only).

It follows method.md ("The k-reciprocal Jaccard distance, exactly") line by line, the way
the public Cluster Contrast / SpCL code does, with N x N matrices and Python loops, so that
the sparse implementation in ``hcm.cluster`` can be checked against it. The k-NN order is
the documented one: the image itself first, then by (distance rounded to float32, index).
Everything else is float64.
"""

from __future__ import annotations

import numpy as np


def dense_ranks(x: np.ndarray, k: int) -> np.ndarray:
    """R: the first k entries of each row of the full sort (self first, then (distance, index))."""
    x64 = x.astype(np.float64)
    key = (2.0 - 2.0 * (x64 @ x64.T)).astype(np.float32)
    n = len(x)
    ranks = np.zeros((n, k), dtype=np.int64)
    for i in range(n):
        row = key[i].copy()
        row[i] = -np.inf
        ranks[i] = np.lexsort((np.arange(n), row))[:k]
    return ranks


def k_reciprocal(ranks: np.ndarray, i: int, k: int) -> list[int]:
    """The j among the first k entries of R[i] such that i is among the first k of R[j]."""
    return [int(j) for j in ranks[i, :k] if i in ranks[j, :k]]


def dense_weights(x: np.ndarray, k1: int, k2: int) -> np.ndarray:
    """The dense weight matrix V after expansion, softmax and query expansion (steps 1-5)."""
    n = len(x)
    x64 = x.astype(np.float64)
    gram = x64 @ x64.T
    ranks = dense_ranks(x, k1)
    k_half = round(k1 / 2) + 1
    s_sets = [k_reciprocal(ranks, i, k1) for i in range(n)]
    h_sets = [k_reciprocal(ranks, i, k_half) for i in range(n)]
    v = np.zeros((n, n))
    for i in range(n):
        expanded = set(s_sets[i])
        for c in s_sets[i]:
            if len(set(h_sets[c]) & set(s_sets[i])) > 2 / 3 * len(h_sets[c]):
                expanded |= set(h_sets[c])
        idx = np.array(sorted(expanded))
        logits = -(2.0 - 2.0 * gram[i, idx])
        w = np.exp(logits - logits.max())
        v[i, idx] = w / w.sum()
    if k2 != 1:
        v = np.stack([v[ranks[i, :k2]].mean(axis=0) for i in range(n)])
    return v


def dense_jaccard(x: np.ndarray, k1: int, k2: int) -> np.ndarray:
    """The full N x N Jaccard distance (step 6), clamped at 0."""
    v = dense_weights(x, k1, k2)
    n = len(x)
    dist = np.ones((n, n))
    for i in range(n):
        m = np.minimum(v[i][None, :], v).sum(axis=1)
        dist[i] = 1.0 - m / (2.0 - m)
    return np.maximum(dist, 0.0)
