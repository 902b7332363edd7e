"""Compiled CPU kernel for :func:`hcm.eval.match_ranks.match_ranks` (numba, one pass per row).

Same definition of rank as the torch strategies (``match_ranks`` module doc): a stable
sort of the row's distances, ties broken by gallery index, junk (same identity, same
camera) removed. For one row with true matches ``t_0 <= ... <= t_{M-1}`` (sorted by
``(distance, index)``), the 1-based rank of match ``p`` is::

    rank_p = p + 1 + #{non-matches i : (d_i, i) < (t_p, j_p)}

where the non-matches are the gallery items of *another* identity (items of the query's
own identity are either true matches, counted by ``p``, or junk). The kernel walks the
row once:

- every non-match goes to a bin: ``bins + 2`` if ``d > t_{M-1}`` (it cannot precede any
  match), else ``1 + trunc(clamp((d - t_0) * s, -1, bins))`` with
  ``s = bins / (t_{M-1} - t_0)`` (so bin 0 holds items more than one bin width below the
  first match), computed in float64 for items and matches alike: the map is monotone,
  so an item in a lower bin than a match is strictly closer;
- the histogram of bins gives the non-matches strictly below each match's bin; the few
  non-matches that share a bin with a match are compared with the matches of that bin
  exactly (distance, then index), by binary search.

Cost: one sequential pass over the row plus ``O(M log M)`` work per shared item, against
``O(G log G)`` for sorting; rows are independent. The function releases the GIL, so the
worker threads of :class:`hcm.eval.metrics.RankAccumulator` run blocks in parallel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
import numpy as np


def _compiled(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``numba.njit`` releasing the GIL, cached on disk when numba finds a writable cache location.

    Without one (a read-only install and no writable home directory; ``NUMBA_CACHE_DIR``
    sets it) numba refuses ``cache=True``; the kernel is then compiled once per process.
    """
    try:
        return numba.njit(nogil=True, cache=True)(fn)
    except RuntimeError:
        return numba.njit(nogil=True)(fn)


@numba.njit(inline="always")
def _bin(d: float, lo: float, hi: float, s: float, bins: int) -> int:
    """Bin of distance ``d``: ``1 + trunc(clamp((d - lo) * s, -1, bins))`` up to ``hi``, ``bins + 2`` above.

    Monotone in ``d``; written as selects (no branches). Always in ``0 .. bins + 2``, NaN
    included (every comparison with NaN is false): the tables are indexed without bounds
    checks.
    """
    x = (d - lo) * s
    x = x if x > -1.0 else -1.0
    x = x if x < bins else np.float64(bins)
    return 1 + int(x) if d <= hi else bins + 2


@numba.njit(inline="always")
def _precedes(d: float, i: int, t: float, j: int) -> bool:
    """``(d, i) < (t, j)`` in lexicographic order."""
    return d < t or (d == t and i < j)


@_compiled
def rank_rows(dist: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray, match_dist: np.ndarray,
              match_index: np.ndarray, num: np.ndarray, bins: int, out: np.ndarray) -> None:  # pragma: no cover
    """Write into ``out[r, p]`` (for ``p < num[r]``) the 1-based rank of row ``r``'s match ``p``.

    ``dist`` (C, G) float32/float64; ``match_dist`` / ``match_index`` (C, K): each row's true
    matches sorted by (distance, index), ``num[r]`` of them; ``out`` (C, K) int64.
    """
    num_rows, num_gallery = dist.shape
    size = bins + 3  # 0: well below lo; 1 .. bins + 1: about [lo, hi]; bins + 2: above hi
    hist = np.zeros(size, np.int64)  # non-matches per bin
    first = np.full(size, -1, np.int64)  # first match position in each bin, -1 when none
    count = np.zeros(size, np.int64)  # matches in each bin
    inc = np.zeros(match_dist.shape[1], np.int64)  # shared non-matches whose first later match is p
    for r in range(num_rows):
        n = num[r]
        if n == 0:
            continue
        lo = np.float64(match_dist[r, 0])
        hi = np.float64(match_dist[r, n - 1])
        s = bins / (hi - lo) if hi > lo else 0.0
        if not np.isfinite(s):  # span below ~1e-308
            s = 0.0
        hist[:] = 0
        for p in range(n):
            b = _bin(np.float64(match_dist[r, p]), lo, hi, s, bins)
            if first[b] < 0:
                first[b] = p
            count[b] += 1
            inc[p] = 0
        qp = q_pids[r]
        for i in range(num_gallery):
            d = np.float64(dist[r, i])
            b = _bin(d, lo, hi, s, bins)
            other = g_pids[i] != qp  # items of the query's identity are matches or junk
            hist[b] += other
            f = first[b]
            if f >= 0 and other:  # shares a bin with matches: the first of them it precedes
                a = f
                z = f + count[b]
                while a < z:
                    mid = (a + z) // 2
                    if _precedes(d, i, np.float64(match_dist[r, mid]), match_index[r, mid]):
                        z = mid
                    else:
                        a = mid + 1
                if a < f + count[b]:
                    inc[a] += 1
        # rank = matches before + non-matches in lower bins + shared non-matches before it
        below = 0
        done = 0  # bins below ``done`` are summed into ``below``
        within = 0
        for p in range(n):
            b = _bin(np.float64(match_dist[r, p]), lo, hi, s, bins)
            if b >= done:  # first match of a new bin
                for k in range(done, b):
                    below += hist[k]
                done = b + 1
                below_bin = below
                within = 0
                below += hist[b]
            within += inc[p]
            out[r, p] = p + 1 + below_bin + within
        for p in range(n):  # reset the tables for the next row
            b = _bin(np.float64(match_dist[r, p]), lo, hi, s, bins)
            first[b] = -1
            count[b] = 0


def load(dtypes: tuple[type, ...] = (np.float32, np.float64)) -> None:
    """Compile :func:`rank_rows` for ``dtypes`` (or load it from numba's on-disk cache).

    The first call in a process costs about half a second even from the cache (numba
    initialises its compiler); :class:`hcm.eval.metrics.RankAccumulator` calls this in a
    background thread so that the cost overlaps with computing the first distances.
    """
    out = np.zeros((1, 1), np.int64)
    for dtype in dtypes:
        rank_rows(np.zeros((1, 1), dtype), np.zeros(1, np.int64), np.ones(1, np.int64), np.zeros((1, 1), dtype),
                  np.zeros((1, 1), np.int64), np.ones(1, np.int64), 1, out)
