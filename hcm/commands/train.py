"""``hcm train``: train one (dataset, variant, seed) run into a run directory."""

from __future__ import annotations

import argparse
import sys

from hcm.commands._common import add_config_args, log_to_file

#: exit status of a run that finished without training (status not_trained in train_summary.json)
NOT_TRAINED_EXIT = 3


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one run (any variant) into a run directory",
                       description="Train one run. Writes OUT_DIR/config.yaml (resolved config), epochs.csv, "
                                   "checkpoints/last.pt (every epoch), model.pt (the reported checkpoint) "
                                   "train_summary.json and curves.png (training curves, when epochs were trained); "
                                   "with --evaluate also metrics.json and cmc.png.")
    add_config_args(p)
    p.add_argument("--evaluate", action="store_true",
                   help="then score model.pt on the test split in this process, writing OUT_DIR/metrics.json "
                        "and OUT_DIR/cmc.png exactly as `hcm evaluate --run OUT_DIR` does (saves a second "
                        "process start: the workflow's train jobs use it)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hcm.config import load_train_config
    from hcm.engine.trainer import train

    cfg = load_train_config(args.config, args.overrides)
    log_to_file(args.out_dir / "train.log")
    summary = train(cfg, args.out_dir, resume=args.resume, progress=not args.no_progress,
                     overwrite=args.overwrite, allow_change=tuple(args.allow_change))
    print(f"{args.out_dir}: {summary['selection']} checkpoint of epoch {summary['selected_epoch']} "
          f"({summary['wall_time_s']:.0f} s)")
    from hcm.report.figures import plot_run_curves
    from hcm.tracking import CURVES_FILE  # the file hcm track logs

    plot_run_curves(args.out_dir, args.out_dir / CURVES_FILE, variant=cfg.variant, seed=cfg.seed,
                    title=f"{cfg.dataset.name}/{cfg.variant}/seed{cfg.seed}")
    if args.evaluate:
        from hcm.commands.evaluate import score

        score(cfg, args.out_dir / "model.pt", args.out_dir / "metrics.json", args.out_dir / "cmc.png",
              run_dir=args.out_dir, progress=not args.no_progress)
    if summary["status"] != "ok":
        print(f"hcm train: error: {args.out_dir}: status {summary['status']}: {summary.get('reason', '')}",
              file=sys.stderr)
        return NOT_TRAINED_EXIT
    return 0
