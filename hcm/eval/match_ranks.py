"""Ranks of the true matches of each query, without sorting whole gallery rows.

Protocol (``method.md``, "Evaluation protocol"): for a query with identity ``p`` and
camera ``c``, gallery items with identity ``p`` *and* camera ``c`` are removed ("junk");
the remaining items with identity ``p`` are its *true matches*; every other item (another
identity, identity-0 distractors included) is a *non-match*.

Ranking is defined as a **stable sort** of the distances: items with equal distance are
ordered by gallery index. The 1-based rank of a true match ``j`` is therefore::

    rank(j) = 1 + #{kept items i : (d_i, i) < (d_j, j)}        (lexicographic order)

For one block of ``C`` query rows, :func:`match_ranks`:

1. finds the true matches of each row from a pid-sorted view of the gallery
   (:class:`GalleryIndex`) and sorts them by ``(distance, index)`` (``M`` per row); the
   number of *matches* before match ``p`` is then ``p``, and only gallery items up to the
   last match (``d <= hi``) can precede any match;
2. counts the *non-matches* before each match by one of three exact strategies:

   - ``compiled`` (the default on the CPU): :mod:`hcm.eval.rank_kernel`, a numba kernel
     that walks each row once, binning the non-matches between the row's first and last
     match and comparing the few that share a bin with a match directly.
   - ``sort`` (CUDA, trained models: matches near the top, few items below the last one):
     gather the non-junk items with ``d <= hi`` and stable-sort them by one int64 key,
     ``(row << 32) | order(distance)`` (``order`` = the float's bits made order-preserving;
     ties keep index order); a match's rank is its position in its row.
   - ``bins`` (CUDA, matches spread over the row, e.g. an untrained model or random data):
     the vectorised form of the compiled kernel's binning. Every distance is mapped to an
     integer bin, ``key(x) = round(clamp(x * s + c))``, with ``s, c`` per row spreading the
     row's matches over ``bins`` bins. The map is a chain of correctly rounded IEEE
     operations, each monotone, applied identically to every element, so
     ``key(x) < key(t)`` implies ``x < t``. One ``bincount`` gives, exactly, the
     non-matches in bins strictly below each match's bin; the few non-matches that share a
     bin with a match (about ``M / bins`` of the row) are compared to it directly, ties by
     index. Cost: a handful of vectorised passes over the block, against ``O(G log G)``
     per row for sorting.

   On CUDA, ``auto`` picks ``sort`` or ``bins`` from the fraction of items with
   ``d <= hi`` (estimated on a sample of rows).

All strategies give identical ranks (the tests check them against each other and
against a per-query ``argsort`` loop).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from hcm.eval.rank_kernel import rank_rows

Strategy = Literal["auto", "compiled", "sort", "bins"]

#: bins between a row's first and last true match (``compiled`` and ``bins`` strategies)
DEFAULT_BINS = 2048
#: rows x bins per call stays below 2**23, so every bin key is an exact float32 integer
_MAX_KEYS = 2**23
#: ``auto`` sorts the candidates when at most this fraction of the block precedes the last match
_SORT_FRACTION = 1 / 16
#: every this many rows are sampled to estimate that fraction
_SAMPLE_STEP = 32


@dataclass(frozen=True)
class GalleryIndex:
    """Gallery identities and cameras, plus a pid-sorted view to find each query's matches."""

    pids: torch.Tensor  # (G,) int64
    camids: torch.Tensor  # (G,) int64
    order: torch.Tensor  # gallery indices sorted by pid, ascending index within a pid
    unique_pids: torch.Tensor  # sorted distinct pids
    starts: torch.Tensor  # first position in ``order`` of each distinct pid
    counts: torch.Tensor  # number of gallery items of each distinct pid

    @classmethod
    def build(cls, pids: torch.Tensor, camids: torch.Tensor) -> GalleryIndex:
        pids = pids.to(torch.int64)
        camids = camids.to(torch.int64)
        order = torch.sort(pids, stable=True).indices
        unique_pids, counts = torch.unique_consecutive(pids[order], return_counts=True)
        starts = torch.cumsum(counts, 0) - counts
        return cls(pids, camids, order, unique_pids, starts, counts)

    def __len__(self) -> int:
        return int(self.pids.numel())

    def same_identity(self, q_pids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gallery items sharing each query's identity: ``(index (C, K), present (C, K))``.

        Row ``r`` lists, in ascending gallery index, the items with pid ``q_pids[r]``;
        ``present`` masks the padding (rows have different counts, ``K`` is the largest).
        """
        if self.unique_pids.numel() == 0:
            empty = torch.zeros(len(q_pids), 0, dtype=torch.int64, device=q_pids.device)
            return empty, empty.bool()
        pos = torch.searchsorted(self.unique_pids, q_pids).clamp(max=self.unique_pids.numel() - 1)
        found = self.unique_pids[pos] == q_pids
        count = torch.where(found, self.counts[pos], 0)
        width = int(count.max()) if count.numel() else 0
        offsets = torch.arange(width, device=q_pids.device)
        present = offsets < count[:, None]
        slot = (self.starts[pos][:, None] + offsets).clamp(max=len(self) - 1)
        index = torch.where(present, self.order[slot], 0)
        return index, present


@dataclass(frozen=True)
class ChunkRanks:
    """Per-query statistics of one block of queries (rows without a true match have 0 matches)."""

    num_matches: torch.Tensor  # (C,) int64
    ap: torch.Tensor  # (C,) float64, NaN where num_matches == 0
    inp: torch.Tensor  # (C,) float64, NaN where num_matches == 0
    first_rank: torch.Tensor  # (C,) int64, 0 where num_matches == 0

    @staticmethod
    def cat(parts: list[ChunkRanks]) -> ChunkRanks:
        return ChunkRanks(*(torch.cat([getattr(p, f) for p in parts])
                            for f in ("num_matches", "ap", "inp", "first_rank")))


class Workspace:
    """Scratch buffers reused from block to block (fresh large tensors cost page faults).

    Owned by one caller (e.g. a ``RankAccumulator``); not shared between threads.
    """

    def __init__(self) -> None:
        self._buffers: dict[tuple[str, torch.dtype, torch.device], torch.Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        size = int(np.prod(shape))
        key = (name, dtype, device)
        buf = self._buffers.get(key)
        if buf is None or buf.numel() < size:
            buf = torch.empty(size, dtype=dtype, device=device)
            self._buffers[key] = buf
        return buf[:size].view(shape)


@dataclass(frozen=True)
class _Matches:
    """True matches of each row sorted by (distance, index); ``real`` masks the padding."""

    same_id: torch.Tensor  # (C, K) gallery items of the query's identity (padded)
    present: torch.Tensor  # (C, K)
    junk: torch.Tensor  # (C, K) present and seen by the query's camera
    num: torch.Tensor  # (C,) number of true matches
    dist: torch.Tensor  # (C, K) sorted distances of the true matches (+inf padding)
    index: torch.Tensor  # (C, K) their gallery indices
    real: torch.Tensor  # (C, K) position < num


def match_ranks(
    dist: torch.Tensor,
    q_pids: torch.Tensor,
    q_camids: torch.Tensor,
    gallery: GalleryIndex,
    *,
    strategy: Strategy = "auto",
    bins: int = DEFAULT_BINS,
    workspace: Workspace | None = None,
) -> ChunkRanks:
    """AP, INP and first-match rank of each query row of ``dist`` (C, G); see the module doc.

    ``dist`` must be finite, float32 or float64 and contiguous (the caller checks). AP =
    mean over true matches of (matches up to it) / rank (``method.md``); INP = matches /
    rank of the last match (Ye et al. 2021).
    """
    num_rows = dist.shape[0]
    device = dist.device
    if strategy == "auto" and device.type == "cpu":
        strategy = "compiled"
    ws = workspace if workspace is not None else Workspace()
    step = max(1, _MAX_KEYS // (bins + 3))
    if strategy != "compiled" and num_rows > step:  # torch bin keys must stay exact integers in float32
        return ChunkRanks.cat([
            match_ranks(dist[s : s + step], q_pids[s : s + step], q_camids[s : s + step], gallery,
                        strategy=strategy, bins=bins, workspace=ws)
            for s in range(0, num_rows, step)])
    m = _true_matches(dist, q_pids, q_camids, gallery)
    if not bool(m.real.any()):
        nan = torch.full((num_rows,), float("nan"), dtype=torch.float64, device=device)
        return ChunkRanks(m.num, nan, nan.clone(), torch.zeros(num_rows, dtype=torch.int64, device=device))
    if strategy == "compiled":
        return _summarise(_ranks_compiled(dist, q_pids, gallery, m, bins), m)
    hi = m.dist.gather(1, (m.num - 1).clamp(min=0)[:, None])  # last true match of each row
    hi = torch.where(m.num[:, None] > 0, hi, torch.full_like(hi, -float("inf")))
    if strategy == "auto":
        sample = dist[::_SAMPLE_STEP] <= hi[::_SAMPLE_STEP]
        strategy = "sort" if float(sample.float().mean()) <= _SORT_FRACTION else "bins"
    if strategy == "sort":
        rank = _ranks_by_sorting(dist, hi, m, ws)
    elif strategy == "bins":
        rank = _ranks_by_bins(dist, q_pids, gallery, m, bins, ws)
    else:
        raise ValueError(f"unknown strategy {strategy!r}")
    return _summarise(rank, m)


def _true_matches(dist: torch.Tensor, q_pids: torch.Tensor, q_camids: torch.Tensor,
                  gallery: GalleryIndex) -> _Matches:
    same_id, present = gallery.same_identity(q_pids)
    is_match = present & (gallery.camids[same_id] != q_camids[:, None])
    num = is_match.sum(1)
    # same_id is ascending in gallery index, so a stable sort orders by (distance, index)
    t = dist.gather(1, same_id).masked_fill(~is_match, float("inf"))
    t_sorted, perm = torch.sort(t, dim=1, stable=True)
    real = torch.arange(t.shape[1], device=dist.device) < num[:, None]
    return _Matches(same_id, present, present & ~is_match, num, t_sorted, same_id.gather(1, perm), real)


def _ranks_compiled(dist: torch.Tensor, q_pids: torch.Tensor, gallery: GalleryIndex, m: _Matches,
                    bins: int) -> torch.Tensor:
    """1-based rank of every true match (row-major, match order) by the compiled CPU kernel."""
    if dist.device.type != "cpu":
        raise ValueError(f"strategy 'compiled' runs on the CPU only, got distances on {dist.device}")
    out = np.zeros(tuple(m.dist.shape), dtype=np.int64)
    rank_rows(dist.numpy(), q_pids.numpy(), gallery.pids.numpy(), m.dist.numpy(), m.index.numpy(),
              m.num.numpy(), bins, out)
    return torch.from_numpy(out)[m.real]


def _ranks_by_sorting(dist: torch.Tensor, hi: torch.Tensor, m: _Matches, ws: Workspace) -> torch.Tensor:
    """1-based rank of every true match (row-major, match order), by sorting the items ``d <= hi``.

    Junk items are dropped from the candidates; each candidate gets one int64 key
    ``(row << 32) | order(distance)``, stably sorted (ties keep index order); a match's
    rank is one plus the number of candidates before it in its row.
    """
    num_gallery = dist.shape[1]
    cand = torch.le(dist, hi, out=ws.get("mask", dist.shape, torch.bool, dist.device))
    cand.view(-1)[_flat_index(m.same_id, m.junk, num_gallery)] = False
    flat = _flat_nonzero(cand)  # row-major: (row, index) ascending
    row = torch.div(flat, num_gallery, rounding_mode="floor")
    dist_key, match_key = _order_keys(dist.view(-1)[flat], m.dist[m.real])
    keys, order = torch.sort((row << 32) | dist_key, stable=True)
    row_t = torch.arange(m.dist.shape[0], device=dist.device)[:, None].expand_as(m.dist)[m.real]
    key_t = (row_t << 32) | match_key
    start = torch.searchsorted(keys, key_t, side="left")  # first candidate tied with the match
    stop = torch.searchsorted(keys, key_t, side="right")
    col_t = m.index[m.real]
    before = start.clone()  # candidates strictly before the match's (row, distance) ...
    for step in range(int((stop - start).max())):  # ... plus tied ones with a smaller index
        p = (start + step).clamp(max=keys.numel() - 1)
        tied_col = flat[order[p]] - row_t * num_gallery
        before += ((start + step < stop) & (tied_col < col_t)).long()
    row_first = torch.searchsorted(keys, row_t << 32, side="left")
    return before - row_first + 1


def _ranks_by_bins(dist: torch.Tensor, q_pids: torch.Tensor, gallery: GalleryIndex, m: _Matches,
                   bins: int, ws: Workspace) -> torch.Tensor:
    """1-based rank of every true match (row-major, match order), by monotone binning."""
    device = dist.device
    num_rows, num_gallery = dist.shape
    width = bins + 3
    lo = torch.where(m.num > 0, m.dist[:, 0].double(), 0.0)
    hi = m.dist.gather(1, (m.num - 1).clamp(min=0)[:, None])[:, 0].double()
    hi = torch.where(m.num > 0, hi, 0.0)
    key = _bin_keys(dist, lo, hi, m.num > 0, bins, ws.get("keys", dist.shape, dist.dtype, device))
    flat_key = key.view(-1)

    hist = torch.bincount(flat_key, minlength=num_rows * width)
    own = key.gather(1, m.same_id)[m.present]  # matches and junk are not non-matches
    hist.index_add_(0, own, torch.full(own.shape, -1, dtype=hist.dtype, device=device))
    cum = _cumsum(hist)  # non-matches in all bins up to each one, earlier rows included

    key_t = key.gather(1, m.index)[m.real].long()  # flat keys of the true matches, ascending
    t_f = m.dist[m.real]
    j_f = m.index[m.real]
    pos_f = torch.arange(m.dist.shape[1], device=device).expand_as(m.dist)[m.real]
    row_t = torch.div(key_t, width, rounding_mode="floor")
    first_bin = row_t * width
    # non-matches of the row in bins below the match's bin: exclusive prefix sums at two bins
    below = (cum.index_select(0, key_t) - hist.index_select(0, key_t)
             - cum.index_select(0, first_bin) + hist.index_select(0, first_bin))

    # non-matches sharing a bin with a true match: exact comparison, ties by index
    shared = torch.zeros(num_rows * width, dtype=torch.uint8, device=device)
    shared[key_t] = 1
    in_shared = ws.get("mask", (flat_key.numel(),), torch.uint8, device)
    torch.index_select(shared, 0, flat_key, out=in_shared)
    amb = _flat_nonzero(in_shared.view(torch.bool))
    # gathers use index_select: advanced indexing is several times slower on the CPU
    amb_row = torch.div(amb, num_gallery, rounding_mode="floor")
    amb_col = amb - amb_row * num_gallery
    other = gallery.pids.index_select(0, amb_col) != q_pids.index_select(0, amb_row)  # not own items
    x = dist.view(-1).index_select(0, amb)
    kb = flat_key.index_select(0, amb).long()
    # matches in each shared bin: key_t is ascending, so they are positions first .. first + count - 1;
    # the two tables are read only at shared bins, so only those entries are written
    bin_keys, bin_count = torch.unique_consecutive(key_t, return_counts=True)
    first = ws.get("first", (num_rows * width,), torch.int64, device)
    count = ws.get("count", (num_rows * width,), torch.int64, device)
    first.index_copy_(0, bin_keys, torch.cumsum(bin_count, 0) - bin_count)
    count.index_copy_(0, bin_keys, bin_count)
    start = first.index_select(0, kb)
    stop = start + count.index_select(0, kb)
    extra = torch.zeros(key_t.numel(), dtype=torch.int64, device=device)
    for step in range(int((stop - start).max()) if amb.numel() else 0):
        p = (start + step).clamp(max=key_t.numel() - 1)
        t_p = t_f.index_select(0, p)
        before = other & (start + step < stop) & ((x < t_p) | ((x == t_p) & (amb_col < j_f.index_select(0, p))))
        extra.index_add_(0, p, before.long())
    return pos_f + below + extra + 1


def _summarise(rank: torch.Tensor, m: _Matches) -> ChunkRanks:
    """AP, INP and first rank per row from the ranks of its true matches (row-major, match order)."""
    device = rank.device
    num_rows, width = m.dist.shape
    nan = torch.full((num_rows,), float("nan"), dtype=torch.float64, device=device)
    rank_rows = torch.ones(num_rows, width, dtype=torch.float64, device=device)
    rank_rows[m.real] = rank.double()
    hits = torch.arange(1, width + 1, device=device, dtype=torch.float64)  # matches up to each one
    precision = torch.where(m.real, hits / rank_rows, 0.0)
    has = m.num > 0
    count = m.num.clamp(min=1).double()
    ap = torch.where(has, precision.sum(1) / count, nan)
    last = rank_rows.gather(1, (m.num - 1).clamp(min=0)[:, None])[:, 0]
    inp = torch.where(has, m.num.double() / last, nan)
    first = torch.where(has, rank_rows[:, 0], 0.0).to(torch.int64)
    return ChunkRanks(m.num, ap, inp, first)


#: float -> integer by adding 2**mantissa_bits (the low bits of the sum are the integer)
_MAGIC = {torch.float32: (2.0**23, torch.int32, 0x4B000000),
          torch.float64: (2.0**52, torch.int64, 0x4330000000000000)}


def _bin_keys(dist: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, has_match: torch.Tensor,
              bins: int, out: torch.Tensor) -> torch.Tensor:
    """Flat bin key of every distance, ``row * (bins + 3) + bin``, monotone in the distance per row.

    ``bin = round(clamp(x * s + 1 - lo * s, 0, bins + 2))`` with ``s = bins / (hi - lo)``,
    computed as separate, correctly rounded float operations (so the map is the same
    monotone function for every element). The rounding to an integer is done by adding
    the exact integer ``row * (bins + 3) + 2**23`` (float32; ``2**52`` for float64) and
    reading the low bits of the sum. Any finite ``s > 0`` would give exact ranks; ``s``
    only decides how many items share a bin with a match. ``out`` (shaped and typed like
    ``dist``) receives the result, viewed as integers.
    """
    num_rows = dist.shape[0]
    width = bins + 3
    magic, int_dtype, magic_bits = _MAGIC[dist.dtype]
    span = hi - lo
    scale = torch.where(span > 0, bins / span.where(span > 0, 1.0), bins / lo.abs().clamp(min=1.0))
    scale = torch.minimum(scale, 1e30 / lo.abs().clamp(min=1.0))  # keeps x * s + c finite
    scale = torch.where(has_match, scale, 0.0)
    base = torch.arange(num_rows, device=dist.device, dtype=torch.float64) * width + magic
    u = torch.mul(dist, scale.to(dist.dtype)[:, None], out=out)
    u.add_((1.0 - lo * scale).to(dist.dtype)[:, None])
    u.clamp_(0.0, width - 1.0)
    u.add_(base.to(dist.dtype)[:, None])  # exact integer + u, rounded to an integer
    return u.view(int_dtype).sub_(magic_bits)


def _flat_index(index: torch.Tensor, mask: torch.Tensor, num_gallery: int) -> torch.Tensor:
    """Flat positions ``row * num_gallery + index[row, k]`` of the entries selected by ``mask``."""
    rows = torch.arange(index.shape[0], device=index.device)[:, None].expand_as(index)
    return rows[mask] * num_gallery + index[mask]


def _order_keys(x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-negative int64 keys below 2**32 ordered like the floats ``x``, and the keys of ``t``.

    float32: the order-preserving bits themselves. float64: the rank among the distinct
    values of ``x`` (every value of ``t`` occurs in ``x``).
    """
    kx, kt = _ordered_int(x), _ordered_int(t)
    if x.dtype == torch.float32:
        return kx.long() + 2**31, kt.long() + 2**31
    values, inverse = torch.unique(kx, sorted=True, return_inverse=True)
    return inverse, torch.searchsorted(values, kt)


def _ordered_int(x: torch.Tensor) -> torch.Tensor:
    """Integers ordered like the floats ``x`` (finite; ``-0.0`` and ``0.0`` map to the same value).

    The IEEE bit pattern read as a signed integer is ordered for non-negative floats;
    for negative ones, flipping every bit but the sign reverses their order.
    """
    bits = (x + 0.0).view(torch.int32 if x.dtype == torch.float32 else torch.int64)  # -0.0 -> 0.0
    flip = 0x7FFFFFFF if x.dtype == torch.float32 else 0x7FFFFFFFFFFFFFFF
    return torch.where(bits < 0, bits ^ flip, bits)


def _cumsum(x: torch.Tensor) -> torch.Tensor:
    """Inclusive cumulative sum of a 1-D tensor (NumPy's is several times faster on the CPU)."""
    if x.device.type == "cpu":
        return torch.from_numpy(np.cumsum(x.numpy()))
    return x.cumsum(0)


def _flat_nonzero(mask: torch.Tensor) -> torch.Tensor:
    """Flat indices of the true entries of a bool tensor (NumPy's is faster on the CPU)."""
    if mask.device.type == "cpu":
        return torch.from_numpy(np.flatnonzero(mask.numpy()))
    return torch.nonzero(mask.reshape(-1)).squeeze(1)
