"""Small synthetic feature sets for the clustering tests (float32, unit rows)."""

from __future__ import annotations

import numpy as np


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(n: int, dim: int, centres: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``centres`` random directions plus Gaussian noise; returns (features, true ids)."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, dim))
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    ids = rng.integers(0, centres, n)
    return unit(c[ids] + noise * rng.standard_normal((n, dim))), ids


def with_ties(x: np.ndarray, seed: int) -> np.ndarray:
    """Overwrite rows of ``x`` with exact and near ties:

    * exact duplicates (two groups, one larger than the k-NN margin, so ties cross the
      k-th neighbour);
    * near-duplicates (perturbations of 1e-6 .. 1e-4, below faiss' float32 resolution);
    * a "star": e_0 and points cos(t) e_0 + sin(t) e_j, whose pairwise distances are all
      exactly equal in floating point (one non-zero product each).
    """
    rng = np.random.default_rng(seed)
    x = x.copy()
    n, dim = x.shape
    rows = rng.permutation(n)
    at = 0

    def take(m: int) -> np.ndarray:
        nonlocal at
        out = rows[at:at + m]
        at += m
        return out

    x[take(14)] = x[rows[-1]]  # 14 copies of one image (+ the original)
    x[take(4)] = x[rows[-2]]
    for scale in (1e-6, 1e-5, 1e-4):
        src, dst = rows[-3], take(3)
        x[dst] = unit(x[src] + scale * rng.standard_normal((3, dim)))
    m = min(12, dim - 1)
    star = np.zeros((m + 1, dim), dtype=np.float32)
    star[0, 0] = 1.0
    c, s = np.float32(np.cos(0.3)), np.float32(np.sin(0.3))
    star[1:, 0] = c
    star[np.arange(1, m + 1), np.arange(1, m + 1)] = s
    x[take(m + 1)] = star
    return x
