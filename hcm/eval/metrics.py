"""mAP, CMC and mINP from a query x gallery distance matrix (``method.md``, "Evaluation protocol").

- Per query, gallery items with the same identity *and* the same camera are removed;
  queries left with no true match are skipped (counted in ``num_queries`` only).
- The ranking of a query is a **stable** sort of its distances: ties are broken by
  gallery index (``hcm.eval.match_ranks`` explains how ranks are counted without
  sorting).
- AP = mean of the precision at each true match's rank; mAP = mean AP over valid queries.
- CMC[k-1] = rank-k accuracy = fraction of valid queries whose first true match has
  rank <= k.
- mINP (Ye et al., TPAMI 2021) = mean over valid queries of
  (number of true matches) / (rank of the last true match).

All values are fractions in [0, 1], not percent.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from hcm.errors import HCMError
from hcm.eval import rank_kernel
from hcm.eval.match_ranks import ChunkRanks, GalleryIndex, Workspace, match_ranks

logger = logging.getLogger(__name__)

ArrayLike = np.ndarray | torch.Tensor | Sequence[Any]

#: distances scored at once by the metric kernel (bounds its temporaries, ~20 bytes each)
KERNEL_ELEMENTS = 1 << 22
#: bytes of one block of float32 distances computed at once by ``evaluate_features``
#: (large blocks keep the matrix product efficient; the kernel then walks them in pieces)
DISTANCE_BLOCK_BYTES = 256 << 20


@dataclass(frozen=True)
class RankResult:
    """Re-ID retrieval scores; fractions in [0, 1]. ``cmc[k-1]`` is the rank-k accuracy."""

    mAP: float
    mINP: float
    cmc: np.ndarray = field(repr=False)
    num_valid_queries: int
    num_queries: int

    @property
    def rank1(self) -> float:
        return float(self.cmc[0])

    def rank(self, k: int) -> float:
        """Rank-k accuracy (``cmc[k-1]``)."""
        if not 1 <= k <= len(self.cmc):
            raise HCMError(f"rank-{k} is not available: the CMC curve was computed up to rank {len(self.cmc)}; "
                           f"pass max_rank >= {k}")
        return float(self.cmc[k - 1])

    def to_dict(self) -> dict[str, Any]:
        """JSON-able scores: ``mAP, mINP, cmc, rank1, rank5, rank10, num_valid_queries, num_queries``.

        ``rank5`` / ``rank10`` are ``None`` when ``max_rank`` is smaller.
        """
        def at(k: int) -> float | None:
            return float(self.cmc[k - 1]) if len(self.cmc) >= k else None

        return {
            "mAP": float(self.mAP),
            "mINP": float(self.mINP),
            "cmc": [float(v) for v in self.cmc],
            "rank1": at(1),
            "rank5": at(5),
            "rank10": at(10),
            "num_valid_queries": int(self.num_valid_queries),
            "num_queries": int(self.num_queries),
        }


def as_label_tensor(values: ArrayLike, name: str, length: int | None = None) -> torch.Tensor:
    """1-D int64 CPU tensor of identities or cameras; a clear error for other shapes."""
    t = values.cpu() if isinstance(values, torch.Tensor) else torch.from_numpy(np.array(values))  # a copy
    if t.dim() != 1:
        raise HCMError(f"{name} must be a 1-D array of integers, got shape {tuple(t.shape)}")
    if t.dtype.is_floating_point or t.dtype == torch.bool or t.dtype.is_complex:
        raise HCMError(f"{name} must hold integers (identity / camera labels), got dtype {t.dtype}")
    if length is not None and t.numel() != length:
        raise HCMError(f"{name} has {t.numel()} entries but there are {length} rows/columns; "
                       "pass one label per image, in the same order as the features")
    return t.to(torch.int64)


def check_labels(q_pids: ArrayLike, g_pids: ArrayLike, q_camids: ArrayLike, g_camids: ArrayLike,
                 num_q: int, num_g: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return (as_label_tensor(q_pids, "q_pids", num_q), as_label_tensor(g_pids, "g_pids", num_g),
            as_label_tensor(q_camids, "q_camids", num_q), as_label_tensor(g_camids, "g_camids", num_g))


class RankAccumulator:
    """Collects per-query statistics block by block and turns them into a :class:`RankResult`."""

    def __init__(self, g_pids: torch.Tensor, g_camids: torch.Tensor, device: torch.device,
                 max_rank: int, *, check_finite: bool = True, workers: int | None = None) -> None:
        if max_rank < 1:
            raise HCMError(f"max_rank must be >= 1, got {max_rank}")
        if workers is not None and workers < 1:
            raise HCMError(f"workers must be >= 1, got {workers}")
        self.gallery = GalleryIndex.build(g_pids.to(device), g_camids.to(device))
        self.device = device
        self.max_rank = max_rank
        self._ap: list[torch.Tensor] = []
        self._inp: list[torch.Tensor] = []
        self._first: list[torch.Tensor] = []
        self._num_queries = 0
        # CPU: blocks are scored by ``workers`` threads (default: torch's intra-op thread
        # count): the compiled kernel releases the GIL and needs no scratch buffers; the
        # torch strategies (CUDA, one block at a time) reuse ``_workspace``
        self.workers = 1 if device.type != "cpu" else (workers or torch.get_num_threads())
        self._workspace = Workspace()
        self.check_finite = check_finite  # False only when the caller guarantees finite distances
        # CPU: the compiled kernel loads in the background while the caller computes distances
        self._kernel_loader: threading.Thread | None = None
        if device.type == "cpu":
            self._kernel_loader = threading.Thread(target=rank_kernel.load, name="rank-kernel-load", daemon=True)
            self._kernel_loader.start()

    def add(self, dist: torch.Tensor, q_pids: torch.Tensor, q_camids: torch.Tensor) -> None:
        """Score query rows ``dist`` (C, G) with their labels, ``KERNEL_ELEMENTS`` distances at a time."""
        if dist.dim() != 2 or dist.shape[1] != len(self.gallery) or not (len(q_pids) == len(q_camids) == len(dist)):
            raise HCMError(f"distance block of shape {tuple(dist.shape)} does not match {len(q_pids)} query "
                           f"labels and {len(self.gallery)} gallery labels")
        dist = dist.to(self.device)
        if not dist.dtype.is_floating_point:
            dist = dist.double()
        elif dist.dtype in (torch.float16, torch.bfloat16):
            dist = dist.float()
        q_pids, q_camids = q_pids.to(self.device), q_camids.to(self.device)
        if self._kernel_loader is not None:
            self._kernel_loader.join()
            self._kernel_loader = None
        rows = block_rows(dist.shape[1], KERNEL_ELEMENTS)
        starts = list(range(0, dist.shape[0], rows))
        workers = min(self.workers, len(starts))
        with single_threaded(self.device):
            if workers == 1:
                parts = [self._score(dist, q_pids, q_camids, s, rows, self._workspace) for s in starts]
            else:  # CPU only (compiled kernel); map keeps the results in block order

                def score(start: int) -> ChunkRanks:
                    return self._score(dist, q_pids, q_camids, start, rows, None)

                with ThreadPoolExecutor(workers, thread_name_prefix="rank-kernel") as pool:
                    parts = list(pool.map(score, starts))
        for res in parts:
            valid = res.num_matches > 0
            self._ap.append(res.ap[valid].cpu())
            self._inp.append(res.inp[valid].cpu())
            self._first.append(res.first_rank[valid].cpu())
        self._num_queries += dist.shape[0]

    def _score(self, dist: torch.Tensor, q_pids: torch.Tensor, q_camids: torch.Tensor, start: int, rows: int,
               workspace: Workspace | None) -> ChunkRanks:
        part = dist[start : start + rows].contiguous()
        if self.check_finite and not _finite(part):
            raise HCMError("the distance matrix contains NaN or infinite values; check the features "
                           "(a NaN feature usually means a diverged model or an unreadable image)")
        return match_ranks(part, q_pids[start : start + rows], q_camids[start : start + rows], self.gallery,
                           workspace=workspace)

    def result(self) -> RankResult:
        ap = torch.cat(self._ap) if self._ap else torch.zeros(0, dtype=torch.float64)
        num_valid = int(ap.numel())
        if num_valid == 0:
            raise HCMError(
                f"no valid query: none of the {self._num_queries} queries has a true match in the gallery "
                "(same identity seen by another camera); check that query and gallery come from the same "
                "dataset split and that identities/cameras were parsed correctly")
        inp = torch.cat(self._inp)
        first = torch.cat(self._first).numpy()
        hits = np.bincount(np.minimum(first, self.max_rank + 1), minlength=self.max_rank + 2)
        cmc = np.cumsum(hits[1 : self.max_rank + 1]).astype(np.float64) / num_valid
        if num_valid < self._num_queries:
            logger.info("%d of %d queries have no true match in the gallery and are skipped",
                        self._num_queries - num_valid, self._num_queries)
        return RankResult(mAP=float(ap.mean()), mINP=float(inp.mean()), cmc=cmc,
                          num_valid_queries=num_valid, num_queries=self._num_queries)


@contextlib.contextmanager
def single_threaded(device: torch.device) -> Iterator[None]:
    """Run CPU torch ops with one intra-op thread, restoring the previous count afterwards.

    Around the metric kernel, each block runs a few short torch ops (finding the true
    matches, summarising their ranks; on the CPU the ranks themselves come from the
    compiled kernel, which uses no torch threads). With several OpenMP threads each op is
    a fork/join, and when the cores are shared with other processes a join can wait a
    whole scheduler time slice: on this project's 2-core machine under load, two threads
    made the (then all-torch) kernel 10-20x slower than one. :class:`RankAccumulator`
    uses the cores instead by scoring whole blocks in worker threads, each with one
    intra-op thread (no barrier between them). The distance computation keeps all threads.
    """
    if device.type != "cpu" or torch.get_num_threads() == 1:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _finite(x: torch.Tensor) -> bool:
    lo, hi = torch.aminmax(x)  # NaN propagates to both
    return bool(torch.isfinite(lo)) and bool(torch.isfinite(hi))


def block_rows(num_gallery: int, block_elements: int) -> int:
    """Query rows per block so that a block holds about ``block_elements`` distances."""
    return max(1, block_elements // max(num_gallery, 1))


def distance_rows(num_gallery: int) -> int:
    """Default query rows per distance block of ``evaluate_features`` (``DISTANCE_BLOCK_BYTES``)."""
    return block_rows(num_gallery, DISTANCE_BLOCK_BYTES // 4)


def evaluate_rank(distmat: np.ndarray | torch.Tensor, q_pids: ArrayLike, g_pids: ArrayLike,
                  q_camids: ArrayLike, g_camids: ArrayLike, max_rank: int = 50) -> RankResult:
    """mAP, mINP and CMC of a (num_query, num_gallery) distance matrix; see the module doc.

    ``distmat`` is a numpy array or torch tensor (any device); smaller = more similar.
    Raises :class:`HCMError` when shapes disagree, distances are not finite, or no query
    has a true match.
    """
    dist = torch.as_tensor(distmat) if isinstance(distmat, np.ndarray) else distmat
    if not isinstance(dist, torch.Tensor) or dist.dim() != 2:
        raise HCMError(f"distmat must be a 2-D (num_query, num_gallery) array, got "
                       f"{getattr(dist, 'shape', type(dist).__name__)}")
    num_q, num_g = dist.shape
    if num_q == 0 or num_g == 0:
        raise HCMError(f"distmat has shape {tuple(dist.shape)}: need at least one query and one gallery item")
    qp, gp, qc, gc = check_labels(q_pids, g_pids, q_camids, g_camids, num_q, num_g)
    acc = RankAccumulator(gp, gc, dist.device, max_rank)
    acc.add(dist, qp, qc)
    return acc.result()
