"""Memory update speed: our round-vectorised sequential update vs Cluster Contrast's per-sample loop.

Both give the same table (checked here); the script prints the time of each and the
ratio loop / ours, measured in the same run. Usage:

    python -m benchmarks.bench_memory_update [--device cpu|cuda] [--repeats 5]   # from the repo root
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from hcm.memory import momentum_update_
from hcm.utils.device import resolve_device


def loop_update(table: torch.Tensor, slots: torch.Tensor, q: torch.Tensor, m: float) -> None:
    """Cluster Contrast's CM.backward loop (the reference)."""
    for x, y in zip(q, slots.tolist(), strict=True):
        table[y] = m * table[y] + (1.0 - m) * x
        table[y] /= table[y].norm()


def timed(fn, table: torch.Tensor, slots: torch.Tensor, q: torch.Tensor, repeats: int) -> float:
    """Best wall time of ``fn(copy of table, slots, q, 0.2)`` over ``repeats`` runs."""
    device = table.device
    best = float("inf")
    for _ in range(repeats):
        work = table.clone()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn(work, slots, q, 0.2)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 = least noise on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    g = torch.Generator().manual_seed(0)
    for name, n_slots, slots in [
        # identity memory: 500 clusters, a 16 x 16 batch (each cluster hit 16 times)
        ("identity 16x16 -> 500", 500, torch.randperm(500, generator=g)[:16].repeat_interleave(16)),
        # image memory: 12936 images, 256 distinct slots
        ("image 256 -> 12936", 12936, torch.randperm(12936, generator=g)[:256]),
    ]:
        table = F.normalize(torch.randn(n_slots, 2048, generator=g), dim=1).to(device)
        q = F.normalize(torch.randn(len(slots), 2048, generator=g), dim=1).to(device)
        slots = slots.to(device)
        ours, ref = table.clone(), table.clone()
        momentum_update_(ours, slots, q, 0.2)
        loop_update(ref, slots, q, 0.2)
        assert torch.allclose(ours, ref, atol=1e-6), "results differ"
        t_ours = timed(momentum_update_, table, slots, q, args.repeats)
        t_ref = timed(loop_update, table, slots, q, args.repeats)
        print(f"{name:24s} device={device.type}  loop {t_ref * 1e3:8.2f} ms  ours {t_ours * 1e3:8.2f} ms  "
              f"speed-up x{t_ref / t_ours:.1f}")


if __name__ == "__main__":
    main()
