"""Argument and logging helpers shared by the training commands."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, type=Path, help="YAML recipe (may inherit others via _base_)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set optim.lr=0.001 (repeatable)")
    p.add_argument("--out-dir", required=True, type=Path, help="run directory to write")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT_DIR/checkpoints/last.pt if it exists (else start)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")


def log_to_file(path: Path) -> logging.Handler:
    """Also write the log to ``path`` (appending: a resumed run keeps its earlier log)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler
