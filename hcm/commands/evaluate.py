"""``hcm evaluate``: score a run's reported checkpoint (or any checkpoint) on the test split."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hcm.errors import ConfigError

if TYPE_CHECKING:
    from hcm.config import TrainConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="mAP / CMC / mINP of a checkpoint on a dataset's test split",
        description="Score a checkpoint. With --run RUN: RUN/model.pt under RUN/config.yaml, writing "
                    "RUN/metrics.json and RUN/cmc.png. Otherwise give --checkpoint, --config and --out.",
    )
    p.add_argument("--run", type=Path, help="run directory written by `hcm train`")
    p.add_argument("--checkpoint", type=Path, help="checkpoint to score (default RUN/model.pt)")
    p.add_argument("--config", type=Path, help="config (default RUN/config.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set dataset.root=/data (repeatable)")
    p.add_argument("--out", type=Path, help="metrics JSON to write (default RUN/metrics.json)")
    p.add_argument("--plot", type=Path, help="CMC plot to write (default RUN/cmc.png)")
    p.add_argument("--rerank", action=argparse.BooleanOptionalAction, default=None,
                   help="k-reciprocal re-ranking (default: the config's eval.rerank)")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                   help="average with horizontally flipped images (default: the config's eval.flip)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hcm.config import load_train_config

    run_dir: Path | None = args.run
    config = args.config or (run_dir / "config.yaml" if run_dir else None)
    checkpoint = args.checkpoint or (run_dir / "model.pt" if run_dir else None)
    out = args.out or (run_dir / "metrics.json" if run_dir else None)
    plot = args.plot or (run_dir / "cmc.png" if run_dir else None)
    if config is None or checkpoint is None or out is None:
        raise ConfigError("give --run RUN_DIR, or all of --config, --checkpoint and --out")
    if run_dir is not None and args.config is None and not config.is_file():
        raise ConfigError(f"{config}: not found; {run_dir} is not a run directory written by `hcm train` "
                          "(check the path), or pass --config RECIPE")
    if run_dir is not None and args.checkpoint is None and not checkpoint.is_file():
        from hcm.errors import CheckpointError

        raise CheckpointError(
            f"{checkpoint}: not found; {run_dir} holds no finished run (train it, or finish it with "
            f"`hcm train --config RECIPE --out-dir {run_dir} --resume`), or pass --checkpoint FILE")
    cfg = load_train_config(config, args.overrides)
    score(cfg, checkpoint, out, plot, run_dir=run_dir, rerank=args.rerank, flip=args.flip,
          progress=not args.no_progress)
    return 0


def score(cfg: TrainConfig, checkpoint: Path, out: Path, plot: Path | None, *, run_dir: Path | None = None,
          rerank: bool | None = None, flip: bool | None = None, progress: bool = True) -> dict[str, Any]:
    """Score ``checkpoint`` on the test split, write ``out`` (atomically) and the CMC ``plot``.

    What ``hcm evaluate`` does, and what ``hcm train --evaluate`` does in the training
    process once the run has finished. ``run_dir`` adds the run's training wall time.
    """
    from hcm.engine.evaluation import evaluate_checkpoint
    from hcm.report.figures import plot_cmc
    from hcm.utils.io import atomic_write_json

    metrics = evaluate_checkpoint(cfg, checkpoint, rerank=rerank, flip=flip, progress=progress)
    if run_dir is not None and (run_dir / "train_summary.json").is_file():
        summary = json.loads((run_dir / "train_summary.json").read_text(encoding="utf-8"))
        metrics["train_wall_time_s"] = summary.get("wall_time_s")
        metrics["train_status"] = summary.get("status")
    atomic_write_json(out, metrics)
    if plot is not None:
        plot_cmc({f"{cfg.variant} (seed {cfg.seed})": metrics["cmc"]}, plot,
                 title=f"{cfg.dataset.name}: CMC")
    print(f"{cfg.dataset.name} {cfg.variant} seed {cfg.seed}: mAP {100 * metrics['mAP']:.1f}%, "
          f"rank-1 {100 * metrics['rank1']:.1f}%, mINP {100 * metrics['mINP']:.1f}% -> {out}")
    return metrics
