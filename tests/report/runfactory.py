"""Run directories written the way ``hcm train`` + ``hcm evaluate`` write them (test data).

The files follow the contract of the run directory (docs/workflow.md): ``config.yaml``
(a full resolved config, produced by ``hcm.config``), ``epochs.csv`` (the trainer's
columns), ``train_summary.json``, ``model.pt`` (placeholder bytes), ``metrics.json``
(fractions) and ``cmc.png``. Metric values are chosen by the caller or derived from a
per-variant level plus a small per-seed offset, so tests can state exact expectations.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from hcm.config import resolve_train_config
from hcm.engine.history import write_history
from hcm.utils.environment import describe_environment

#: mAP (fraction) of each variant before the per-seed offset
LEVELS = {"hcm": 0.60, "no_dynamic": 0.58, "identity_only": 0.57, "image_only": 0.40, "baseline": 0.55,
          "supervised": 0.80, "untrained": 0.30}


def png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 6), (200, 200, 200)).save(buf, format="PNG")
    return buf.getvalue()


def expected_map(variant: str, seed: int) -> float:
    """The mAP fraction :func:`write_run` writes by default: the variant's level + 0.01 * seed."""
    return LEVELS.get(variant, 0.5) + 0.01 * seed


def cmc_curve(rank1: float, n: int = 50) -> list[float]:
    """A non-decreasing CMC curve starting at ``rank1`` and approaching 1."""
    ranks = np.arange(n)
    return [float(x) for x in 1.0 - (1.0 - rank1) * np.exp(-ranks / 8.0)]


def write_run(run_dir: Path, dataset: str, variant: str, seed: int, *, mAP: float | None = None,
              n_epochs: int = 4, overrides: dict[str, Any] | None = None, dataset_root: str = "data",
              index: str | None = None, environment: dict[str, Any] | None = None,
              finished_at: str | None = "2026-11-27T10:00:00.000+00:00") -> dict[str, Any]:
    """Write a finished run directory; returns its metrics.json content.

    ``finished_at``: when training ended, as ``train_summary.json`` records it (None: not recorded,
    as in summaries written before the field existed); it took ``60 + seed`` seconds.

    ``environment``: what ``train_summary.json`` and ``metrics.json`` record about the machine
    (default: this one, :func:`hcm.utils.environment.describe_environment`).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    mAP = expected_map(variant, seed) if mAP is None else mAP
    cfg = resolve_train_config(
        {"dataset": {"name": dataset, "root": dataset_root, "index": index}},
        {"seed": seed, "variant": variant, **(overrides or {})},
    )
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
    adapt = variant != "untrained"
    epochs = n_epochs if adapt else 0
    rows = []
    for e in range(1, epochs + 1):
        rows.append({
            "epoch": e, "lr": 3.5e-4, "loss": 5.0 / e + 0.1 * seed,
            "loss_id": 4.0 / e if "identity" in cfg.loss.terms else float("nan"),
            "loss_img": 1.0 / e if "image" in cfg.loss.terms else float("nan"),
            "delta_mean": 1.0, "num_clusters": 20 + 5 * e, "outlier_fraction": 0.1,
            "ari": min(0.9, 0.2 * e), "nmi": 0.5, "pairwise_precision": 0.6, "pairwise_recall": 0.5,
            "extract_time_s": 1.0, "cluster_time_s": 0.5, "train_time_s": 2.0,
            "test_mAP": mAP if e == epochs else float("nan"), "test_rank1": mAP + 0.2 if e == epochs else float("nan"),
            "val_mAP": float("nan"), "val_rank1": float("nan"), "skipped": False,
        })
    write_history(run_dir / "epochs.csv", rows)
    (run_dir / "model.pt").write_bytes(b"placeholder checkpoint")
    summary = {"status": "ok", "selected_epoch": epochs, "selection": "final" if adapt else "initial",
               "epochs": epochs, "wall_time_s": 60.0 + seed, "device": "cpu",
               "environment": describe_environment("cpu") if environment is None else environment}
    if finished_at is not None:
        summary["finished_at"] = finished_at
    (run_dir / "train_summary.json").write_text(json.dumps(summary), encoding="utf-8")
    rank1 = min(1.0, mAP + 0.2)
    cmc = cmc_curve(rank1)
    metrics = {
        "dataset": dataset, "variant": variant, "seed": seed, "mAP": mAP, "mINP": max(0.0, mAP - 0.2),
        "cmc": cmc, "rank1": cmc[0], "rank5": cmc[4], "rank10": cmc[9],
        "num_valid_queries": 100, "num_queries": 100, "num_gallery": 1000,
        "checkpoint": {"path": str(run_dir / "model.pt"), "epoch": epochs, "selection": summary["selection"]},
        "train_wall_time_s": summary["wall_time_s"], "eval_time_s": 3.0, "rerank": False, "flip": False,
        "device": "cpu", "environment": summary["environment"],
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    (run_dir / "cmc.png").write_bytes(png_bytes())
    return metrics


BENCHMARK_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def write_benchmark(path: Path, wall: float, rss: float | str, cpu: float | str) -> Path:
    """A job's benchmark file as Snakemake 9's `benchmark:` writes it (one record; "NA" = not measured)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(BENCHMARK_HEADER + f"{wall:.4f}\t0:00:{int(wall):02d}\t{rss}\t90.0\t50.0\t55.0\t0.0\t1.0\t80.0\t{cpu}\n",
                    encoding="utf-8")
    return path


def write_suite(root: Path, datasets: list[str], variants: list[str], seeds: list[int]) -> list[Path]:
    """``root/<dataset>/<variant>/seed<seed>`` for every combination; returns the run directories."""
    dirs = []
    for d in datasets:
        for v in variants:
            for s in seeds:
                run = root / d / v / f"seed{s}"
                write_run(run, d, v, s)
                dirs.append(run)
    return dirs
