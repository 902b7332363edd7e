"""Argument and logging helpers shared by the training commands."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from hcm.errors import HCMError


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, type=Path, help="YAML recipe (may inherit others via _base_)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set optim.lr=0.001 (repeatable)")
    p.add_argument("--out-dir", required=True, type=Path, help="run directory to write")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT_DIR/checkpoints/last.pt if it exists (else start)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the outputs of a finished run in OUT_DIR that has no checkpoint to continue "
                        "(without it such a folder is refused)")
    p.add_argument("--allow-change", dest="allow_change", action="append", default=[], metavar="KEY",
                   help="with --resume: continue although KEY differs from the run's stored config; only "
                        "optim.lr (the fix after a non-finite loss). The runtime section may always change")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")


def log_to_file(path: Path) -> logging.Handler:
    """Also write the log to ``path`` (appending: a resumed run keeps its earlier log).

    An output folder that is a file or cannot be written is a :class:`HCMError` naming it.
    """
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        raise HCMError(f"{folder}: --out-dir names a file, not a folder; pass a folder path (it is created "
                       "if absent)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError as exc:
        raise HCMError(f"{exc.filename or folder}: cannot write the run here ({exc.strerror}); pass an "
                       "--out-dir on a writable disk") from None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler
