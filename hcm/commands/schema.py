"""``hcm schema``: print the JSON schema of a training or pretraining config."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("schema", help="print the JSON schema of the YAML training config")
    p.add_argument("kind", nargs="?", choices=["train", "pretrain"], default="train")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hcm.config import json_schema

    print(json_schema(args.kind))
    return 0
