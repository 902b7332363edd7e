"""Exact k-nearest-neighbour lists in a deterministic order (method.md, Jaccard step 1).

faiss does the heavy search (brute force, i.e. a flat index: ``faiss.knn`` on CPU,
``GpuIndexFlatIP`` when CUDA and a faiss build with GPU support are present, else an exact
blockwise top-k in torch on the CUDA device, :class:`TorchSearcher`). The order
faiss gives to exactly tied neighbours is implementation-defined and its float32 scores
carry rounding error, so its candidates are re-ranked into one documented order:

    the image itself first, then by (squared distance ``2 - 2 f_i . f_j`` rounded to
    float32, index)

where the distance is the float64 one (float32 rounding makes mathematically equal
distances, e.g. of duplicate images, compare equal whatever the summation order). Only
candidates that faiss' float32 scores cannot order with certainty (neighbours closer than
twice :func:`faiss_error_bound`) are recomputed in float64; faiss is asked for
``k + margin`` candidates, and a row whose k-th neighbour cannot be separated from what
faiss left out is searched again with twice as many candidates, up to all N.

The result is the list a full sort of the distance matrix by that key gives (checked
against one in the tests), computed in O(N k) memory.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import faiss
import numpy as np

from hcm.cluster.features import DegenerateFeaturesError
from hcm.errors import HCMError

logger = logging.getLogger(__name__)

#: extra candidates asked from faiss beyond k, so that ties near the k-th can be re-ranked
DEFAULT_MARGIN = 8
#: largest k sent to a GPU flat index (faiss GPU k-selection limit); beyond it the CPU is used
_GPU_MAX_K = 1024


@dataclass(frozen=True)
class KnnResult:
    """``indices[i]``: the k nearest neighbours of i (i itself first); ``sqdist``: their
    squared Euclidean distances ``2 - 2 f_i . f_j`` (float64; exact where faiss' float32
    value could not order them, faiss' value otherwise); ``researched``: rows that needed a
    wider search to settle ties at the boundary; ``rescored``: pairs recomputed in float64."""

    indices: np.ndarray
    sqdist: np.ndarray
    researched: int
    rescored: int


@contextlib.contextmanager
def faiss_threads(threads: int | None) -> Iterator[None]:
    """Run faiss with ``threads`` OpenMP threads (default: torch's intra-op thread count),
    restoring the previous setting afterwards."""
    if threads is None:
        import torch

        threads = torch.get_num_threads()
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(int(threads))
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def faiss_gpu_available() -> bool:
    """True when faiss was built with GPU support (``pip install -e ".[gpu]"``) and sees a GPU."""
    if not hasattr(faiss, "StandardGpuResources"):
        return False
    try:
        return faiss.get_num_gpus() > 0
    except (AttributeError, RuntimeError):
        return False


def gpu_search_available() -> bool:
    """True when torch sees a CUDA device: the k-NN then runs on it (faiss-gpu when importable,
    else :class:`TorchSearcher`)."""
    import torch

    return bool(torch.cuda.is_available())


@contextlib.contextmanager
def _ieee_float32() -> Iterator[None]:
    """Float32 matmuls in IEEE float32 on CUDA (no TF32), as :func:`faiss_error_bound` assumes."""
    import torch

    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


class TorchSearcher:
    """Exact inner-product top-k in torch on ``device``, ``block`` queries at a time (float32
    scores, no TF32; memory: block x N scores). The fallback on a GPU when faiss has no GPU
    support; the candidates are re-ranked by :func:`exact_knn` exactly like faiss'."""

    def __init__(self, database: np.ndarray, device: str | object, block: int = 4096) -> None:
        import torch

        self.device = torch.device(device)  # type: ignore[arg-type]
        self.block = block
        self.database = torch.from_numpy(np.ascontiguousarray(database)).to(self.device)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        import torch

        scores = np.empty((len(queries), k), dtype=np.float32)
        ids = np.empty((len(queries), k), dtype=np.int64)
        with _ieee_float32(), torch.inference_mode():
            for start in range(0, len(queries), self.block):
                q = torch.from_numpy(np.ascontiguousarray(queries[start:start + self.block])).to(self.device)
                top = torch.topk(q @ self.database.T, k, dim=1, largest=True, sorted=True)
                scores[start:start + len(q)] = top.values.cpu().numpy()
                ids[start:start + len(q)] = top.indices.cpu().numpy()
        return scores, ids


class FlatSearcher:
    """Brute-force inner-product search over ``database`` (a flat index): ``faiss.knn`` on
    CPU; on a GPU one ``GpuIndexFlatIP`` built once and reused for every query batch when
    faiss has GPU support, else :class:`TorchSearcher` on the CUDA device."""

    def __init__(self, database: np.ndarray, use_gpu: bool) -> None:
        self.database = database
        self._gpu_index = None
        self._torch: TorchSearcher | None = None
        if use_gpu:
            if not gpu_search_available():
                raise HCMError(
                    "use_gpu=True but torch sees no CUDA device; pass use_gpu=None to choose automatically"
                )
            if faiss_gpu_available():
                self._resources = faiss.StandardGpuResources()
                self._gpu_index = faiss.GpuIndexFlatIP(self._resources, database.shape[1])
                self._gpu_index.add(database)
            else:
                self._torch = TorchSearcher(database, "cuda")

    @property
    def backend(self) -> str:
        if self._gpu_index is not None:
            return "faiss-gpu"
        return "torch-cuda" if self._torch is not None else "faiss-cpu"

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores float32 (nq, k), descending; ids int64 (nq, k))."""
        if self._gpu_index is not None and k <= _GPU_MAX_K:
            return self._gpu_index.search(queries, k)
        if self._torch is not None:
            return self._torch.search(queries, k)
        return faiss.knn(queries, self.database, k, metric=faiss.METRIC_INNER_PRODUCT)


def row_pair_dots(x: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                  chunk: int = 64) -> np.ndarray:
    """``x[rows[p]] . x[cols[p]]`` for every pair p, accumulated in float64.

    Products of float32 numbers are exact in float64, so the only rounding is the float64
    summation (relative error ~1e-16): far below the float32 resolution used for ranking.
    Works in chunks of ``chunk`` pairs (~2 * chunk * d * 8 bytes: small chunks stay in the
    CPU cache, which makes this several times faster than large ones).
    """
    out = np.empty(len(rows), dtype=np.float64)
    for start in range(0, len(rows), chunk):
        stop = start + chunk
        a = x[rows[start:stop]].astype(np.float64)
        b = x[cols[start:stop]].astype(np.float64)
        out[start:stop] = np.einsum("nd,nd->n", a, b)
    return out


def csr_row_inner_products(x: np.ndarray, indptr: np.ndarray, indices: np.ndarray,
                           chunk_rows: int = 2048) -> np.ndarray:
    """``x[i] . x[indices[p]]`` for every stored position p of row i of a CSR pattern (float32).

    Uses faiss' multi-threaded ``fvec_inner_products_by_idx`` (float32 accumulation, the
    precision of the public code's ``torch.mm``): rows are sorted by length and processed
    in chunks padded to the chunk's longest row, so padding costs little.
    """
    n = len(indptr) - 1
    lengths = np.diff(indptr).astype(np.int64)
    out = np.empty(int(indptr[-1]), dtype=np.float32)
    order = np.argsort(lengths, kind="stable")
    for start in range(0, n, chunk_rows):
        rows = order[start:start + chunk_rows]
        width = int(lengths[rows].max(initial=0))
        if width == 0:
            continue
        offset = np.arange(width)
        valid = offset[None, :] < lengths[rows, None]
        pos = np.where(valid, indptr[rows, None] + offset[None, :], 0)
        ids = np.where(valid, indices[pos], rows[:, None]).astype(np.int64)
        queries = np.ascontiguousarray(x[rows])
        ip = np.empty((len(rows), width), dtype=np.float32)
        faiss.fvec_inner_products_by_idx(
            faiss.swig_ptr(ip), faiss.swig_ptr(queries), faiss.swig_ptr(x),
            faiss.swig_ptr(ids), x.shape[1], len(rows), width,
        )
        out[pos[valid]] = ip[valid]
    return out


def faiss_error_bound(dim: int, lam: float = 10.0) -> float:
    """Bound on |faiss float32 squared distance - exact squared distance| for unit vectors.

    A float32 dot product of length d has error at most ``gamma_d = d u`` (u = 2^-24) in
    the worst case, but that case needs every rounding error to line up; the probabilistic
    analysis of Higham & Mary (SIAM J. Sci. Comput. 41(5), 2019) bounds it by
    ``lam sqrt(d) u`` with probability at least ``1 - 2 exp(-lam^2 / 2)`` (lam = 10:
    1 - 4e-22). The distance ``2 - 2 ip`` doubles it; |x||y| <= 1.003 within the norm
    tolerance; one float32 ulp below 4 (2^-22) is added so that pairs separated by more
    than twice the bound also differ after rounding to float32. (Measured: the largest
    error at d = 2048 is ~3e-7, the bound ~5.4e-5.)
    """
    return 2.0 * lam * np.sqrt(dim) * 2.0**-24 * 1.003 + 2.0**-22


def _rank_candidates(x: np.ndarray, rows: np.ndarray, scores: np.ndarray, cand: np.ndarray,
                     k: int, n_total: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Re-rank the faiss candidates of ``rows``.

    Candidates come in faiss' order (score descending). Consecutive candidates whose faiss
    distances differ by more than twice :func:`faiss_error_bound` are certainly in the
    right order; a run of candidates closer than that is ordered by the float64 distance
    rounded to float32, then by index. Returns (ids (n, k), sqdist (n, k), settled (n,),
    number of pairs recomputed in float64); a row is settled when its k-th neighbour's run
    ends before the last candidate (so nothing faiss left out can tie with or beat it).
    """
    n, width = cand.shape
    cand = cand.astype(np.int64, copy=True)
    is_self = cand == rows[:, None]
    has_self = is_self.any(axis=1)
    # faiss pads with -1 when it finds fewer than width neighbours (never expected for a
    # flat index with width <= N); such a row is simply searched again
    valid = (cand >= 0).all(axis=1)
    cand[~valid] = rows[~valid, None]
    sqdist = 2.0 - 2.0 * scores.astype(np.float64)
    certain_gap = np.diff(sqdist, axis=1) > 2.0 * faiss_error_bound(x.shape[1])
    ambiguous = np.zeros((n, width), dtype=bool)
    ambiguous[:, 1:] |= ~certain_gap
    ambiguous[:, :-1] |= ~certain_gap
    run = np.zeros((n, width), dtype=np.int64)
    np.cumsum(certain_gap, axis=1, out=run[:, 1:])
    run[is_self] = -1  # the image itself first
    key = np.zeros((n, width), dtype=np.float32)
    amb_row, amb_col = np.nonzero(ambiguous & ~is_self)
    exact = 2.0 - 2.0 * row_pair_dots(x, rows[amb_row], cand[amb_row, amb_col])
    key[amb_row, amb_col] = exact.astype(np.float32)
    sqdist[amb_row, amb_col] = exact
    order = np.lexsort((cand, key, run), axis=-1)
    ids = np.take_along_axis(cand, order[:, :k], axis=1)
    settled = has_self & valid
    if width < n_total:
        kth_run = np.take_along_axis(run, order[:, k - 1:k], axis=1)[:, 0]
        settled &= kth_run < run[:, -1]
    return ids, np.take_along_axis(sqdist, order[:, :k], axis=1), settled, len(exact)


def exact_knn(features: np.ndarray, k: int, *, margin: int = DEFAULT_MARGIN,
              use_gpu: bool | None = None, threads: int | None = None,
              searcher: FlatSearcher | TorchSearcher | None = None,
              max_width: int | None = None) -> KnnResult:
    """The k nearest neighbours of every row of ``features`` among all rows (itself first).

    ``features``: float32 (N, d) with unit rows (see :func:`hcm.cluster.features.prepare_features`);
    ``use_gpu``: None = on the GPU when :func:`gpu_search_available` (faiss-gpu, else torch),
    else faiss on CPU; ``threads``: faiss CPU threads (default torch's); ``searcher``: the
    search backend to use instead (a :class:`TorchSearcher` over ``features``, e.g. on the
    CPU in tests). Order: see the module docstring; the same whichever backend searches.
    ``max_width``: most candidates per row to settle ties; rows that need more (near-identical
    features) raise :class:`hcm.cluster.features.DegenerateFeaturesError` (None: up to all N).
    """
    x = np.ascontiguousarray(features, dtype=np.float32)
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k={k} must be between 1 and the number of features ({n})")
    if use_gpu is None:
        use_gpu = gpu_search_available()
    indices = np.empty((n, k), dtype=np.int64)
    sqdist = np.empty((n, k), dtype=np.float64)
    todo = np.arange(n, dtype=np.int64)
    width = min(n, k + margin)
    researched, rescored = -1, 0
    with faiss_threads(threads):
        searcher = searcher or FlatSearcher(x, use_gpu)
        while todo.size:
            scores, cand = searcher.search(x[todo] if todo.size < n else x, width)
            ids, dist, settled, recomputed = _rank_candidates(x, todo, scores, cand, k, n)
            rescored += recomputed
            done = todo[settled]
            indices[done] = ids[settled]
            sqdist[done] = dist[settled]
            todo = todo[~settled]
            if researched < 0:
                researched = int(todo.size)
            if todo.size:
                if width >= n:  # every point was a candidate: only a faiss fault gets here
                    raise RuntimeError(f"faiss returned incomplete k-NN lists for rows {todo[:10]}")
                # a wide re-search means many (near-)duplicate features: say so, it can take a while
                logger.log(logging.INFO if 2 * width >= 256 else logging.DEBUG,
                           "k-NN: %d of %d rows have ties at the boundary; searching %d candidates "
                           "(many near-identical features?)", todo.size, n, min(n, 2 * width))
                if max_width is not None and min(n, 2 * width) > max_width:
                    raise DegenerateFeaturesError(
                        f"k-NN stopped: {todo.size} of {n} features tie with more than {width} neighbours "
                        "(near-identical features: the model maps most images to the same point). Check "
                        "model.weights (start from a pretrained or ImageNet checkpoint, not 'none'); to run "
                        "it anyway, set cluster.pair_budget to null (memory grows to N x N)")
                width = min(n, 2 * width)
    return KnnResult(indices=indices, sqdist=sqdist, researched=researched, rescored=rescored)
