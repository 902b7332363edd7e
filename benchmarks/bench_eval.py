"""Benchmark of re-ID evaluation at Market-1501 and MSMT17 test scale (random features).

    python benchmarks/bench_eval.py [--scale market|msmt17|all] [--features identity|random|both]

For each scale and kind of features, a fresh child process (so that one run's peak
memory does not pollute another's):

1. draws random 2048-d L2-normalised features with the dataset's test-set sizes:
   ``identity`` = one random centre per identity plus a camera offset and noise (a
   trained-model-like ranking: mAP about 0.7, true matches near the top); ``random`` = pure noise (no
   identity structure: true matches spread uniformly over each ranking, the worst case
   for our metric kernel);
2. runs our pipeline exactly as ``hcm.eval.evaluate_features`` does (cosine distances
   in query blocks, each block scored and dropped), timing distances and metrics
   separately, and records the peak RSS of the process right after it. As in
   ``evaluate_features``, the compiled metric kernel loads in a background thread
   (numba: about 0.5 s per process, even from its cache) while the first distances are
   computed; any wait for it left after them counts in ``metric s``;
3. times the per-query reference loop of the tests (``tests/eval/eval_reference.py``:
   a stable argsort per query) on the full distance matrix (Market-1501) or on the
   first ``--ref-queries`` queries and extrapolates linearly (MSMT17, whose full matrix
   would take 3.8 GB), and checks that our metrics on those same distances agree with it
   to 1e-9.

Printed: our times, the reference loop's time, ``ratio metrics`` = reference loop /
our metrics (same distances, the like-for-like comparison) and ``ratio e2e`` =
(distances + reference loop) / (distances + our metrics), and the peak RSS
(``resource.getrusage``, whole process: it includes the features themselves, listed
as ``feat GB``). The machine's load average is printed too: on a shared machine the
times move with it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "eval"))

from eval_reference import reference_rank_metrics  # noqa: E402

from hcm.eval.distance import iter_distance_blocks  # noqa: E402
from hcm.eval.evaluate import distances_are_finite  # noqa: E402
from hcm.eval.metrics import RankAccumulator, distance_rows, evaluate_rank  # noqa: E402

#: test-set sizes: queries, gallery, identities, cameras, identity-0 distractors in the gallery
SCALES = {
    "market": dict(num_query=3368, num_gallery=15913, num_ids=750, num_cams=6, distractors=2793),
    "msmt17": dict(num_query=11659, num_gallery=82161, num_ids=3060, num_cams=15, distractors=0),
}
DIM = 2048
#: identity features: f = normalize(centre[pid] + CAM * offset[cam] + NOISE * eps)
CAM, NOISE = 0.6, 2.75


def make_split(n: int, pids: np.ndarray, cams: np.ndarray, centres: np.ndarray | None,
               offsets: np.ndarray | None, rng: np.random.Generator) -> torch.Tensor:
    """(n, DIM) float32 L2-normalised features, generated in slices to bound memory."""
    out = torch.empty(n, DIM, dtype=torch.float32)
    for s in range(0, n, 8192):
        e = min(n, s + 8192)
        x = rng.standard_normal((e - s, DIM), dtype=np.float32)
        if centres is not None and offsets is not None:
            x *= NOISE
            x += centres[pids[s:e]]
            x += CAM * offsets[cams[s:e]]
        out[s:e] = torch.nn.functional.normalize(torch.from_numpy(x), dim=1)
    return out


def make_data(scale: str, features: str, seed: int):
    cfg = SCALES[scale]
    rng = np.random.default_rng(seed)
    nq, ng, nid = cfg["num_query"], cfg["num_gallery"], cfg["num_ids"]
    q_pids = rng.integers(1, nid + 1, nq)
    g_pids = np.concatenate([np.zeros(cfg["distractors"], dtype=np.int64),
                             rng.integers(1, nid + 1, ng - cfg["distractors"])])
    q_cams = rng.integers(1, cfg["num_cams"] + 1, nq)
    g_cams = rng.integers(1, cfg["num_cams"] + 1, ng)
    if features == "identity":
        centres = rng.standard_normal((nid + 1, DIM), dtype=np.float32)
        offsets = rng.standard_normal((cfg["num_cams"] + 1, DIM), dtype=np.float32)
        centres[0] = 0.0  # distractors: camera offset and noise only
    else:
        centres = offsets = None
    qf = make_split(nq, q_pids, q_cams, centres, offsets, rng)
    gf = make_split(ng, g_pids, g_cams, centres, offsets, rng)
    return qf, gf, q_pids, g_pids, q_cams, g_cams


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30  # Linux: KiB


def child(scale: str, features: str, seed: int, ref_queries: int | None, threads: int | None) -> dict:
    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    qf, gf, qp, gp, qc, gc = make_data(scale, features, seed)
    gen_s = time.perf_counter() - t0
    feat_gb = (qf.numel() + gf.numel()) * 4 / 2**30
    device = torch.device("cpu")

    # ours: the loop of hcm.eval.evaluate_features, timed in two parts; like it, finite
    # bounded features stand for finite distances (a cheap check on Q + G rows, not Q x G)
    t = time.perf_counter()
    acc = RankAccumulator(torch.as_tensor(gp), torch.as_tensor(gc), device, 50,
                          check_finite=not distances_are_finite(qf, gf))
    qp_t, qc_t = torch.as_tensor(qp), torch.as_tensor(qc)
    dist_s, metric_s = 0.0, time.perf_counter() - t
    blocks = iter_distance_blocks(qf, gf, "cosine", distance_rows(gf.shape[0]), device)
    while True:
        t = time.perf_counter()
        item = next(blocks, None)
        dist_s += time.perf_counter() - t
        if item is None:
            break
        start, block = item
        t = time.perf_counter()
        acc.add(block, qp_t[start : start + len(block)], qc_t[start : start + len(block)])
        metric_s += time.perf_counter() - t
        del block, item
    t = time.perf_counter()
    ours = acc.result()
    metric_s += time.perf_counter() - t
    peak = peak_rss_gb()

    # reference loop on the first n queries (all of them by default for Market-1501)
    n = min(ref_queries or qf.shape[0], qf.shape[0])
    dist = (1.0 - qf[:n] @ gf.T).numpy()
    t = time.perf_counter()
    ref = reference_rank_metrics(dist, qp[:n], gp, qc[:n], gc, max_rank=50)
    ref_s = (time.perf_counter() - t) * qf.shape[0] / n
    check = evaluate_rank(dist, qp[:n], gp, qc[:n], gc, max_rank=50)
    agree = (abs(check.mAP - ref[0]) <= 1e-9 and abs(check.mINP - ref[1]) <= 1e-9
             and bool(np.all(np.abs(check.cmc - ref[2]) <= 1e-9)) and check.num_valid_queries == ref[3])
    return dict(scale=scale, features=features, num_query=qf.shape[0], num_gallery=gf.shape[0],
                gen_s=gen_s, dist_s=dist_s, metric_s=metric_s, ref_s=ref_s, ref_queries=n,
                peak_rss_gb=peak, feat_gb=feat_gb, mAP=ours.mAP, rank1=ours.rank1, mINP=ours.mINP,
                agree=agree, threads=torch.get_num_threads())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", choices=["market", "msmt17", "all"], default="all")
    p.add_argument("--features", choices=["identity", "random", "both"], default="both")
    p.add_argument("--ref-queries", type=int, default=None,
                   help="queries timed in the reference loop (default: all for market, 500 for msmt17)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--child", nargs=2, metavar=("SCALE", "FEATURES"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(*args.child, args.seed, args.ref_queries, args.threads)))
        return
    scales = list(SCALES) if args.scale == "all" else [args.scale]
    kinds = ["identity", "random"] if args.features == "both" else [args.features]
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())} "
          f"({os.cpu_count()} CPUs; torch {torch.__version__})")
    rows = []
    for scale in scales:
        for kind in kinds:
            ref_q = args.ref_queries or (500 if scale == "msmt17" else None)
            cmd = [sys.executable, __file__, "--child", scale, kind, "--seed", str(args.seed)]
            if ref_q:
                cmd += ["--ref-queries", str(ref_q)]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print_row(rows[-1], header=len(rows) == 1)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


def print_row(r: dict, header: bool) -> None:
    if header:
        print(f"{'scale':7} {'features':8} {'Q x G':>13} {'dist s':>7} {'metric s':>8} {'total s':>7} "
              f"{'ref loop s':>10} {'ratio metrics':>13} {'ratio e2e':>9} {'peak RSS GB':>11} "
              f"{'feat GB':>7} {'mAP':>6} {'mINP':>6} {'agree':>5} {'thr':>3}")
    total = r["dist_s"] + r["metric_s"]
    ref = f"{r['ref_s']:.2f}" + ("*" if r["ref_queries"] < r["num_query"] else "")
    print(f"{r['scale']:7} {r['features']:8} {r['num_query']:>6}x{r['num_gallery']:<6} {r['dist_s']:7.2f} "
          f"{r['metric_s']:8.3f} {total:7.2f} {ref:>10} {r['ref_s'] / r['metric_s']:13.1f} "
          f"{(r['dist_s'] + r['ref_s']) / total:9.1f} {r['peak_rss_gb']:11.2f} {r['feat_gb']:7.2f} "
          f"{r['mAP']:6.3f} {r['mINP']:6.3f} {str(r['agree']):>5} {r['threads']:>3}")
    if r["ref_queries"] < r["num_query"]:
        print(f"        * reference loop timed on {r['ref_queries']} queries, extrapolated linearly "
              f"to {r['num_query']}")


if __name__ == "__main__":
    main()
