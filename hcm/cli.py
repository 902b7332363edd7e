"""The ``hcm`` command: ``hcm prepare | pretrain | train | evaluate | report | track | schema``.

Each subcommand lives in ``hcm/commands/<name>.py`` and exposes
``register(subparsers)``; heavy imports happen inside the command, so ``hcm --help``
is fast. User errors (:class:`hcm.errors.HCMError`) and file-system failures (``OSError``)
print one line and exit 2; a run that finished without training exits 3.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from hcm import __version__
from hcm.errors import HCMError

#: environment variable naming plugin modules to import (comma-separated), as --plugin does
PLUGINS_ENV = "HCM_PLUGINS"

#: subcommand modules under hcm.commands, in the order shown by --help
COMMANDS: tuple[str, ...] = (
    "prepare", "contact_sheet", "pretrain", "train", "evaluate", "report", "track", "schema",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hcm", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"hcm {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--plugin", dest="plugins", action="append", default=[], metavar="MODULE",
                        help="import MODULE first: your own loss terms, variants, memory rules, datasets "
                             f"(repeatable; also ${PLUGINS_ENV}, comma-separated, and the hcm.plugins entry "
                             "points; docs/extending.md)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"hcm.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # faiss logs at INFO which of its CPU builds it loaded, with a traceback-like line
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    try:
        from hcm.plugins import load_plugins

        env = [m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(",") if m.strip()]
        load_plugins([*env, *args.plugins], source="--plugin" if args.plugins else PLUGINS_ENV)
        return int(args.func(args) or 0)
    except HCMError as exc:
        print(f"hcm {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # a file-system failure the user can fix (read-only or full disk, symlink loop, a file where a
        # folder belongs): one line naming the path; -v shows the traceback
        if args.verbose:
            raise
        where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f) or "a file"
        print(f"hcm {args.command}: error: {where}: {exc.strerror or exc}; check that this path exists, "
              "is what the command expects and is writable (rerun with -v for the traceback)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hcm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
