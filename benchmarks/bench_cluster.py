"""Speed and memory of pseudo labelling (sparse Jaccard + DBSCAN) at re-ID training-set sizes.

    python benchmarks/bench_cluster.py [--n 12936 32621 37778] [--noise 1.0] [--dense-max 12936]

For each N (Market-1501, MSMT17, VeRi-776 training sets) a fresh subprocess makes random
clustered features (N/30 centres on the unit sphere in 2048-d, Gaussian noise whose norm,
relative to the centre's, each cluster draws uniformly from ``--noise LOW HIGH``;
L2-normalised). Isotropic noise in 2048-d either leaves a cluster intact (noise up to ~3)
or dissolves it (above ~4), so the default range 1..5 mixes tight, loose and dissolved
identities, like early-epoch features. The child then times, in that order:

* the exact k-NN search alone (``faiss.knn``, k = k1, brute force: the floor, since the
  Jaccard distance needs it and nothing cheaper gives exact neighbours on this machine);
* ``hcm.cluster.pseudo_labels`` (k1 = 30, k2 = 6, eps = 0.6, min_samples = 4), which
  includes its own k-NN search;
* the k-NN search alone again: the ratio uses the mean of the two, and CPU times
  (``time.process_time``, all threads) are reported too, because on a shared machine
  other processes can stretch one wall-clock measurement and not the other.

and reports its peak RSS (``ru_maxrss`` of the child, features included). For N up to
``--dense-max`` another child runs a dense baseline built like the public Cluster
Contrast / SpCL code (three dense float32 N x N matrices, a Python loop over the images)
on the same features, and the two label sets are compared. The targets (issue): total
time <= 1.5 x the k-NN search alone; peak RSS < 3 GB at N = 37,778.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's hcm, not an installed one

DIM = 2048
K1, K2, EPS, MIN_SAMPLES = 30, 6, 0.6, 4


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # kB on Linux


def make_features(n: int, noise: tuple[float, float], seed: int):  # noqa: ANN201
    """Random clustered unit features (float32) and their cluster ids.

    N/30 centres uniform on the unit sphere; each cluster draws its noise norm (relative to
    the centre's) uniformly from ``noise``; Gaussian noise, then L2 normalisation.
    Generated in chunks, so memory stays at N x d.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // 30), DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    sigma = (rng.uniform(noise[0], noise[1], len(centres)) / np.sqrt(DIM)).astype(np.float32)
    ids = rng.integers(0, len(centres), n)
    x = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 4096):
        stop = min(n, start + 4096)
        chunk = rng.standard_normal((stop - start, DIM), dtype=np.float32)
        chunk *= sigma[ids[start:stop], None]
        chunk += centres[ids[start:stop]]
        x[start:stop] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    return x, ids


def dense_baseline(x, k1: int, k2: int, eps: float, min_samples: int):  # noqa: ANN001, ANN201
    """The public code's structure: dense float32 V, V_qe and distance (N x N each), loops over N."""
    import numpy as np
    from sklearn.cluster import DBSCAN

    from hcm.cluster.knn import exact_knn

    n = len(x)
    ranks = exact_knn(x, k1).indices  # same neighbour order as the sparse code

    def reciprocal(i: int, k: int) -> np.ndarray:
        forward = ranks[i, :k]
        return forward[(ranks[forward, :k] == i).any(axis=1)]

    k_half = round(k1 / 2) + 1
    s_sets = [reciprocal(i, k1) for i in range(n)]
    h_sets = [reciprocal(i, k_half) for i in range(n)]
    v = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        expanded = s_sets[i]
        for c in s_sets[i]:
            if len(np.intersect1d(h_sets[c], s_sets[i])) > 2 / 3 * len(h_sets[c]):
                expanded = np.append(expanded, h_sets[c])
        expanded = np.unique(expanded)
        logits = -(2.0 - 2.0 * (x[expanded] @ x[i]))
        w = np.exp(logits - logits.max())
        v[i, expanded] = w / w.sum()
    if k2 != 1:
        v_qe = np.zeros_like(v)
        for i in range(n):
            v_qe[i] = v[ranks[i, :k2]].mean(axis=0)
        v = v_qe
        del v_qe
    rows, cols = np.nonzero(v)
    order = np.argsort(cols, kind="stable")
    column_rows = np.split(rows[order], np.cumsum(np.bincount(cols, minlength=n))[:-1])
    dist = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        m = np.zeros(n, dtype=np.float32)
        for k in np.flatnonzero(v[i]):
            js = column_rows[k]
            m[js] += np.minimum(v[i, k], v[js, k])
        dist[i] = 1.0 - m / (2.0 - m)
    del v
    np.maximum(dist, 0.0, out=dist)
    return DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit_predict(dist)


def child(n: int, noise: tuple[float, float], seed: int, dense: bool,
          threads: int | None) -> dict:
    import faiss
    import numpy as np
    import torch
    from sklearn.metrics import adjusted_rand_score

    from hcm.cluster import canonical_labels, label_agreement, pseudo_labels
    from hcm.cluster.knn import faiss_threads
    from hcm.cluster.metrics import outliers_as_singletons

    if threads:
        torch.set_num_threads(threads)
    x, ids = make_features(n, noise, seed)
    out: dict = {"n": n, "threads": torch.get_num_threads(), "rss_features_gb": peak_rss_gb(),
                 "load_before": os.getloadavg()[0]}
    if dense:
        start = time.perf_counter()
        labels = canonical_labels(dense_baseline(x, K1, K2, EPS, MIN_SAMPLES))
        out["dense_s"] = time.perf_counter() - start
        out["dense_rss_gb"] = peak_rss_gb()
        sparse, _ = pseudo_labels(x, EPS, MIN_SAMPLES, K1, K2)
        out["labels_identical"] = bool(np.array_equal(labels, sparse))
        out["ari_dense_vs_sparse"] = adjusted_rand_score(outliers_as_singletons(labels),
                                                         outliers_as_singletons(sparse))
        return out
    def knn_alone() -> tuple[float, float]:
        with faiss_threads(None):
            wall, cpu = time.perf_counter(), time.process_time()
            faiss.knn(x, x, K1, metric=faiss.METRIC_INNER_PRODUCT)
            return time.perf_counter() - wall, time.process_time() - cpu

    before = knn_alone()
    wall, cpu = time.perf_counter(), time.process_time()
    labels, summary = pseudo_labels(x, EPS, MIN_SAMPLES, K1, K2, progress=True)
    out["total_s"], out["total_cpu_s"] = time.perf_counter() - wall, time.process_time() - cpu
    out["rss_gb"] = peak_rss_gb()
    after = knn_alone()
    out["knn_runs_s"] = [before[0], after[0]]
    out["knn_s"] = (before[0] + after[0]) / 2
    out["knn_cpu_s"] = (before[1] + after[1]) / 2
    out["stages"] = summary.times
    out["clusters"] = summary.num_clusters
    out["outlier_fraction"] = summary.outlier_fraction
    out["pairs_per_row"] = summary.extra["stored_pairs"] / n
    out["ari_vs_centres"] = label_agreement(labels, ids)["ari"]
    out["load_after"] = os.getloadavg()[0]
    return out


def run_child(n: int, args: argparse.Namespace, dense: bool) -> dict:
    cmd = [sys.executable, __file__, "--child", str(n), "--noise", *map(str, args.noise),
           "--seed", str(args.seed)]
    if dense:
        cmd.append("--dense")
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[12936, 32621, 37778])
    parser.add_argument("--noise", type=float, nargs=2, default=[1.0, 5.0], metavar=("LOW", "HIGH"),
                        help="range of the per-cluster noise norm relative to the centre's "
                             "(1: same-cluster cosine ~0.5, clusters found; above ~4 they dissolve)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch/faiss threads")
    parser.add_argument("--dense-max", type=int, default=12936,
                        help="run the dense baseline for N up to this (3 N^2 float32 matrices)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dense", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, tuple(args.noise), args.seed, args.dense, args.threads)))
        return 0

    rows = []
    for n in args.n:
        result = run_child(n, args, dense=False)
        if n <= args.dense_max:
            result.update(run_child(n, args, dense=True))
        rows.append(result)
        print(f"done N={n}: {json.dumps(result)}", file=sys.stderr, flush=True)

    print(f"\nsparse k-reciprocal Jaccard + DBSCAN, d={DIM}, k1={K1}, k2={K2}, eps={EPS}, "
          f"min_samples={MIN_SAMPLES}, noise {args.noise[0]}..{args.noise[1]}, "
          f"threads={rows[0]['threads']}")
    print("| N | kNN alone (s) | total (s) | total / kNN | CPU: total / kNN | peak RSS (GB) "
          "| features-only RSS (GB) "
                "| clusters | outliers | ARI vs centres | stored pairs/row | dense baseline (s) "
          "| dense peak RSS (GB) | same labels as dense |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        dense_s = f"{r['dense_s']:.1f}" if "dense_s" in r else "not run"
        dense_rss = f"{r['dense_rss_gb']:.2f}" if "dense_rss_gb" in r else "not run"
        same = ("yes" if r["labels_identical"] else f"no (ARI {r['ari_dense_vs_sparse']:.4f})") \
            if "labels_identical" in r else "-"
        print(f"| {r['n']} | {r['knn_s']:.1f} | {r['total_s']:.1f} | {r['total_s'] / r['knn_s']:.2f} "
              f"| {r['total_cpu_s'] / r['knn_cpu_s']:.2f} | {r['rss_gb']:.2f} | {r['rss_features_gb']:.2f} | {r['clusters']} "
              f"| {100 * r['outlier_fraction']:.1f}% | {r['ari_vs_centres']:.3f} "
              f"| {r['pairs_per_row']:.1f} | {dense_s} "
              f"| {dense_rss} | {same} |")
    print("\nstage times (s) of pseudo_labels, and the 1-minute load average of this shared "
          "machine before/after (2 cores: above ~0.5 other work competed with the timings):")
    for r in rows:
        stages = ", ".join(f"{k} {v:.2f}" for k, v in r["stages"].items())
        runs = " and ".join(f"{t:.1f}" for t in r["knn_runs_s"])
        print(f"  N={r['n']}: {stages}; kNN alone before and after: {runs} s; "
              f"load {r['load_before']:.1f} / {r['load_after']:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
