"""Batches from the image store to the training device: the input pipeline of a run, built once.

The host's work per batch is one gather of uint8 rows from the memory-mapped store
(``np.take`` into a pinned buffer when the device is CUDA) and an asynchronous copy;
a background thread gathers the next batches while the device computes (numpy releases
the GIL while it copies). Augmentation and normalisation run on the device
(:mod:`hcm.data.batch_augment`). No worker processes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import torch

from hcm.config import InputConfig
from hcm.data.batch_augment import draw_params, eval_batch, train_batch
from hcm.data.store import ImageStore

T = TypeVar("T")
R = TypeVar("R")

#: batches gathered ahead of the one the device works on
PREFETCH = 2


def prefetched(fn: Callable[[T], R], items: Iterable[T], depth: int = PREFETCH) -> Iterator[R]:
    """``map(fn, items)`` with up to ``depth`` calls running ahead in one background thread."""
    it = iter(items)
    with ThreadPoolExecutor(1, thread_name_prefix="hcm-feeder") as pool:
        pending: deque[Future[R]] = deque(pool.submit(fn, item) for _, item in zip(range(depth), it, strict=False))
        while pending:
            result = pending.popleft().result()
            nxt = next(it, _END)
            if nxt is not _END:
                pending.append(pool.submit(fn, nxt))
            yield result


_END = object()


class StoreFeeder:
    """Train and test batches of store rows, on ``device``."""

    def __init__(self, store: ImageStore, device: torch.device, input_cfg: InputConfig) -> None:
        self.store = store
        self.device = torch.device(device)
        self.input_cfg = input_cfg

    def rows_of(self, paths: Sequence[str]) -> np.ndarray:
        return self.store.rows_of(paths)

    def gather(self, rows: np.ndarray) -> torch.Tensor:
        """uint8 (B, h, w, 3) images of store ``rows`` on the host (pinned when the device is CUDA)."""
        shape = (len(rows), *self.store.array.shape[1:])
        if self.device.type == "cuda":  # torch's pinned-memory cache reuses a block once its copy is done
            out = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
        else:  # numpy's allocation is reused by malloc; a fresh torch.empty page-faults each time
            out = torch.from_numpy(np.empty(shape, dtype=np.uint8))
        # mode="clip": rows are valid (rows_of); "raise" would copy through a temporary buffer
        np.take(self.store.array, rows, axis=0, out=out.numpy(), mode="clip")
        return out

    def _upload(self, host: torch.Tensor) -> torch.Tensor:
        return host.to(self.device, non_blocking=True)

    def train_batches(self, table_rows: np.ndarray,
                      batches: Iterable[list[tuple[int, int]]]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(augmented float images, table indices) on the device for every sampler batch.

        ``table_rows[i]``: store row of the table's i-th image; ``batches``: lists of
        ``(table index, augmentation seed)`` (:class:`hcm.data.samplers.IdentitySampler`).
        The batch's random choices come from a generator seeded with its first seed.
        """
        def load(batch: list[tuple[int, int]]) -> tuple[torch.Tensor, list[tuple[int, int]]]:
            return self.gather(table_rows[[i for i, _ in batch]]), batch

        for host, batch in prefetched(load, batches):
            gen = torch.Generator().manual_seed(int(batch[0][1]))
            params = draw_params(len(batch), self.input_cfg, gen)
            indices = torch.tensor([i for i, _ in batch], dtype=torch.long)
            yield train_batch(self._upload(host), params, self.input_cfg), indices.to(self.device)

    def eval_batches(self, rows: np.ndarray, batch_size: int) -> Iterator[tuple[torch.Tensor, slice]]:
        """(normalised float images on the device, positions) of ``rows`` in batches, in order."""
        spans = [slice(s, min(s + batch_size, len(rows))) for s in range(0, len(rows), batch_size)]
        for host, span in prefetched(lambda s: (self.gather(rows[s]), s), spans):
            yield eval_batch(self._upload(host), self.input_cfg), span
