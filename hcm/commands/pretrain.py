"""``hcm pretrain``: supervised pretraining on a labelled source set."""

from __future__ import annotations

import argparse

from hcm.commands._common import add_config_args, log_to_file


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pretrain", help="supervised pretraining (cross-entropy + triplet) on a labelled set",
                       description="Pretrain a backbone with labels. Writes OUT_DIR/checkpoint.pt (use it as "
                                   "model.weights of a training recipe), config.yaml, epochs.csv, summary.json.")
    add_config_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hcm.config import load_pretrain_config
    from hcm.engine.pretrain import pretrain

    cfg = load_pretrain_config(args.config, args.overrides)
    log_to_file(args.out_dir / "pretrain.log")
    summary = pretrain(cfg, args.out_dir, resume=args.resume, progress=not args.no_progress,
                        overwrite=args.overwrite, allow_change=tuple(args.allow_change))
    extra = f", source mAP {100 * summary['source_mAP']:.1f}%" if "source_mAP" in summary else ""
    print(f"{args.out_dir / 'checkpoint.pt'}: {summary['epochs']} epochs ({summary['wall_time_s']:.0f} s){extra}")
    return 0
