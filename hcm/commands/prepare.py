"""``hcm prepare``: read and check a dataset, write its index file, print its statistics."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hcm.data.dataset import ReIDDataset
    from hcm.data.validate import Comparison

#: --check-images choices (equal to hcm.data.validate.CHECK_MODES; kept here so --help stays fast)
CHECK_MODES: tuple[str, ...] = ("full", "header", "none")

DESCRIPTION = """\
Read dataset NAME under --root (the dataset folder or its parent; generated synth-*
datasets are created there when absent), check it, write its index file and print
identities / images / cameras per split beside the published statistics.

Checks: the expected folders and list files exist, every file name parses, cameras
are in the dataset's range, list files name only existing images, no split is empty,
and every image decodes (--check-images). Non-image files (Thumbs.db, .DS_Store,
*.txt) are skipped. A copy whose counts differ from the published ones gets a
warning per difference, not an error. Re-running is idempotent: the index files are
byte-identical.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prepare", help="check a dataset, write its index file and print its statistics",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", nargs="?", metavar="NAME", help="registered dataset name (see --list)")
    p.add_argument("--root", default="data", metavar="DIR",
                   help="the dataset folder or its parent (default: data)")
    p.add_argument("--out", metavar="INDEX.csv",
                   help="index file to write, plus INDEX.csv.json beside it "
                        "(default: <parent of the dataset folder>/<NAME>.index.csv)")
    p.add_argument("--train-lists", choices=["train+val", "train"], default=None,
                   help="MSMT17 only: list files forming the training set "
                        "(default train+val = list_train + list_val, the published protocol)")
    p.add_argument("--check-images", choices=CHECK_MODES, default="full",
                   help="full: decode every image (default; some 4,000 small images/s on "
                        "2 cores, see benchmarks/check_images.py); header: check signatures and "
                        "JPEG/PNG end markers only (several times faster, catches truncated "
                        "files); none: skip")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="threads checking images (default: min(8, CPU count))")
    p.add_argument("--synth-set", dest="synth_sets", action="append", default=[], metavar="KEY=VALUE",
                   help="generated datasets only: override a generator parameter of the preset, e.g. "
                        "--synth-set train_ids=20 (repeatable; see docs/synthetic-generator.md)")
    p.add_argument("--synth-seed", type=int, default=None, metavar="N",
                   help="generated datasets only: generator seed (default 0)")
    p.add_argument("--image-store", dest="store_sizes", action="append", default=[], metavar="HxW",
                   help="also build (or check every row of, and rebuild if damaged) the decoded image store "
                        "at this size, e.g. 256x128 (repeatable; runs otherwise build it on first use; "
                        "see docs/datasets.md, 'Decoded image store')")
    p.add_argument("--store-dir", metavar="DIR", default=None,
                   help="folder of the image store (default: <parent of the dataset folder>/<NAME>.store, "
                        "where runs look for it unless runtime.store_dir says otherwise)")
    p.add_argument("--option", dest="options", action="append", default=[], metavar="KEY=VALUE",
                   help="an option of the dataset's reader (repeatable; `--list` shows each dataset's options)")
    p.add_argument("--list", action="store_true", help="list the registered datasets and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hcm.data import load_dataset
    from hcm.data.validate import check_images, compare_with_published, dataset_paths
    from hcm.errors import HCMError

    if args.list:
        print(format_dataset_list())
        return 0
    if not args.name:
        raise HCMError("no dataset NAME given; see `hcm prepare --list` for the registered names")
    if args.workers is not None and args.workers < 1:
        raise HCMError(f"--workers {args.workers}: must be at least 1")
    from hcm.config import parse_overrides

    options: dict[str, object] = parse_overrides(args.options)
    if args.train_lists is not None:
        options["train_lists"] = args.train_lists
    if args.synth_sets:
        options["synth_overrides"] = parse_overrides(args.synth_sets)
    if args.synth_seed is not None:
        options["synth_seed"] = args.synth_seed
    ds = load_dataset(args.name, args.root, **options)
    out = Path(args.out) if args.out else ds.root.parent / f"{ds.name}.index.csv"
    check_writable(out)  # before checking every image, not after
    check_images(dataset_paths(ds), args.check_images, args.workers)
    comparison = compare_with_published(ds)
    ds.write_index(out)
    print(format_report(ds, comparison, out))
    for size in [parse_size(text) for text in args.store_sizes]:
        from hcm.data.store import default_store_dir, open_store

        paths = [*ds.train["path"], *ds.query["path"], *ds.gallery["path"]]
        store = open_store(paths, size, args.store_dir or default_store_dir(ds.root, ds.name), root=ds.root,
                           workers=args.workers, full_check=True)
        print(f"image store: {store.path} ({len(store):,} images at {size[0]}x{size[1]}, "
              f"{store.array.nbytes / 1e9:.2f} GB)")
    return 0


def parse_size(text: str) -> tuple[int, int]:
    """``"256x128"`` -> (256, 128); anything else is an :class:`HCMError` naming the form."""
    from hcm.errors import HCMError

    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise HCMError(f"--image-store {text!r}: expected HEIGHTxWIDTH, e.g. 256x128") from None
    if h < 1 or w < 1:
        raise HCMError(f"--image-store {text!r}: height and width must be positive")
    return h, w


def check_writable(out: Path) -> None:
    """Refuse (:class:`HCMError`) an index path whose folder cannot be written: a read-only dataset
    disk is common, and the index can live anywhere (``--out``)."""
    import tempfile

    from hcm.errors import HCMError

    if out.is_dir():
        raise HCMError(f"{out}: --out names a folder; pass a file path such as {out / 'dataset.index.csv'}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out.parent):
            pass
    except OSError as exc:
        raise HCMError(f"{out.parent}: cannot write the index {out.name} here ({exc.strerror}); pass "
                       "--out PATH on a writable disk (the dataset itself may stay read-only)") from None


def format_report(ds: ReIDDataset, comparison: Comparison, out: Path) -> str:
    """The table ``hcm prepare`` prints: counts per split, published counts beside."""
    from hcm.data.registry import get_spec

    pub = comparison.published
    lines = [f"{ds.name}: layout {ds.layout}, folder {ds.root}"]
    header = ["split", "ids", "images", "cameras"]
    if pub is not None:
        header += ["published ids", "published images"]
    rows = [header]
    for _, r in comparison.table.iterrows():
        row = [r["split"], f"{r['ids']:,}", f"{r['images']:,}", f"{r['cameras']:,}"]
        if pub is not None:
            row += [_num(r["published_ids"]), _num(r["published_images"])]
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
    if pub is None:
        lines.append(f"cameras in all: {comparison.cameras} (no published statistics for {ds.name})")
    else:
        lines.append(f"cameras in all: {comparison.cameras} (published {pub.cameras})")
        lines += [f"note: {n}" for n in comparison.notes]
        lines += [f"warning: {d}" for d in comparison.differences]
        if comparison.matches:
            lines.append(f"matches the published statistics of {get_spec(ds.name).display_name}")
    lines.append(f"index: {out} (+ {out.name}.json)")
    return "\n".join(lines)


def format_dataset_list() -> str:
    """Registered datasets, the folder names looked for under --root, and a description."""
    from hcm.data.registry import get_spec, list_datasets

    lines = []
    for name in list_datasets():
        spec = get_spec(name)
        how = "generated under --root when absent" if spec.create is not None else "download it"
        lines.append(f"{name}: {spec.description} [{how}]")
        lines.append(f"    folder: --root itself, or --root/{{{', '.join(spec.folder_names)}}}")
        if spec.options.model_fields:
            lines.append(f"    options: {', '.join(spec.options.model_fields)}")
    return "\n".join(lines)


def _num(value: object) -> str:
    return "-" if value is None else f"{int(value):,}"  # type: ignore[call-overload]
