"""``hcm contact-sheet NAME --root DIR --out PNG``: identities x cameras grid of a dataset."""

from __future__ import annotations

import argparse
import logging

logger = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "contact-sheet",
        help="draw a PNG grid of identities (rows) across cameras (columns); generates synth-* if absent",
    )
    p.add_argument("name", help="dataset name, e.g. synth-market or market1501")
    p.add_argument("--root", default="data", help="dataset folder or its parent (default: data)")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--ids", type=int, default=8, help="number of identities (rows), default 8")
    p.add_argument("--split", choices=["train", "query", "gallery"], default="train")
    p.add_argument("--seed", type=int, default=0, help="seed picking identities and images")
    p.add_argument("--scale", type=int, default=3, help="magnification of each image, default 3")
    p.add_argument("--synth-seed", type=int, default=0, help="generator seed of a synth-* dataset")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hcm.data.synthetic import PRESETS, contact_sheet, generate
    from hcm.data.synthetic.generate import MANIFEST
    from hcm.errors import HCMError

    if args.ids < 1 or args.scale < 1:
        raise HCMError("--ids and --scale must be >= 1")
    root = Path(args.root).expanduser()
    if args.name in PRESETS:
        # an existing generated folder is drawn as it is, whatever its settings
        if (root / MANIFEST).is_file():
            source = root
        elif (root / args.name / MANIFEST).is_file():
            source = root / args.name
        else:
            source = generate(args.name, root, seed=args.synth_seed)
    else:
        from hcm.data import load_dataset

        source = load_dataset(args.name, root)
    out = contact_sheet(source, args.out, n_ids=args.ids, split=args.split, seed=args.seed, scale=args.scale)
    logger.info("wrote %s", out)
    print(out)
    return 0
