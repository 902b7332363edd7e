"""Checks ``hcm prepare`` runs on a dataset once it is parsed.

- :func:`check_images`: every image opens (``header``) or fully decodes (``full``);
  bad files are reported together, as a count and the first few names.
- :func:`compare_with_published`: identities / images / cameras per split against the
  published statistics, with one plain-language line per difference. A copy that
  differs is a warning (subsets are legitimate), never an error.

Parsing problems (missing folders, unparseable names, list files naming missing
images, empty splits) are raised by the readers themselves (``hcm.data.parsing``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

import pandas as pd
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from hcm.data.dataset import SPLITS, ReIDDataset
from hcm.data.parsing import SHOW
from hcm.data.stats import PublishedStats, published_stats
from hcm.errors import DatasetError

logger = logging.getLogger(__name__)

#: ``--check-images`` modes: full decode, header (+ JPEG end marker), or no check
CHECK_MODES: tuple[str, ...] = ("full", "header", "none")
_JPEG_START, _JPEG_END = b"\xff\xd8\xff", b"\xff\xd9"
_PNG_START, _PNG_END = b"\x89PNG\r\n\x1a\n", b"IEND"
_TAIL = 1024  # bytes read from the end of a file in header mode
_CHUNK = 256  # paths per thread task


def image_problem(path: str, mode: str = "full") -> str | None:
    """What is wrong with the image at ``path`` (one line), or None if it passes ``mode``.

    ``full`` decodes every pixel with Pillow (catches any truncation or corruption);
    ``header`` reads only the first and last bytes: the format's signature and, for
    JPEG / PNG, the end marker, which catches files cut short by an interrupted
    download or extraction at a fraction of the cost (other formats: Pillow header).
    """
    try:
        if mode == "header":
            return _header_problem(path)
        with Image.open(path) as img:
            img.load()
        return None
    except FileNotFoundError:
        return "file missing"
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        return " ".join(str(exc).split()) or type(exc).__name__


def _header_problem(path: str) -> str | None:
    with open(path, "rb") as fh:
        head = fh.read(8)
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - _TAIL))
        tail = fh.read()
    if head.startswith(_JPEG_START):
        ok = tail.rstrip(b"\x00").endswith(_JPEG_END)
        return None if ok else "no JPEG end-of-image marker: the file is truncated"
    if head.startswith(_PNG_START):
        return None if _PNG_END in tail else "no PNG IEND chunk: the file is truncated"
    with Image.open(path):  # other formats: let Pillow read the header
        return None


def check_images(paths: Sequence[str], mode: str = "full", workers: int | None = None) -> int:
    """Check every image in ``paths`` (see :func:`image_problem`); return how many were checked.

    Runs ``workers`` threads over chunks of paths (decoding releases the GIL) with a
    tqdm progress bar. Raises one :class:`DatasetError` listing the count and the
    first few bad files.
    """
    if mode not in CHECK_MODES:
        raise DatasetError(f"--check-images {mode!r}: not one of {', '.join(CHECK_MODES)}")
    if mode == "none" or not paths:
        return 0
    workers = workers or min(8, os.cpu_count() or 1)
    chunks = [paths[i:i + _CHUNK] for i in range(0, len(paths), _CHUNK)]
    check = partial(_check_chunk, mode=mode)
    bad: list[tuple[str, str]] = []
    with ThreadPoolExecutor(max_workers=workers) as pool, tqdm(
        total=len(paths), desc=f"checking images ({mode})", unit="img", disable=None, leave=False,
    ) as bar:
        for chunk, problems in zip(chunks, pool.map(check, chunks), strict=True):
            bad += [(p, why) for p, why in zip(chunk, problems, strict=True) if why is not None]
            bar.update(len(chunk))
    if bad:
        listed = "; ".join(f"{p} ({why})" for p, why in bad[:SHOW])
        more = f"; ... ({len(bad)} in all)" if len(bad) > SHOW else ""
        what = "unreadable or truncated image" if len(bad) == 1 else f"{len(bad)} unreadable or truncated images"
        raise DatasetError(
            f"{bad[0][0]}: {what} (--check-images {mode}): {listed}{more}. Re-extract these "
            "files from the dataset archive, or delete them and re-run `hcm prepare`."
        )
    logger.info("checked %d images (%s): all readable", len(paths), mode)
    return len(paths)


def _check_chunk(paths: Sequence[str], mode: str) -> list[str | None]:
    return [image_problem(p, mode) for p in paths]


def dataset_paths(ds: ReIDDataset) -> list[str]:
    """Every image path of the three splits, in split order."""
    return [p for s in SPLITS for p in ds.split(s)["path"]]


@dataclass
class Comparison:
    """A dataset's counts beside the published ones.

    ``table`` has one row per split (split, ids, images, cameras, published_ids,
    published_images; published columns are None when nothing is published);
    ``differences`` holds one line per mismatch, ``notes`` other remarks.
    """

    table: pd.DataFrame
    cameras: int
    published: PublishedStats | None
    differences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def matches(self) -> bool:
        return self.published is not None and not self.differences


def compare_with_published(ds: ReIDDataset) -> Comparison:
    """Compare ``ds`` with the published statistics of ``ds.name`` (if any)."""
    table = ds.summary()
    cameras = len(set().union(*(set(ds.split(s)["camid"]) for s in SPLITS)))
    pub = published_stats(ds.name)
    comp = Comparison(table=table, cameras=cameras, published=pub)
    table["published_ids"] = None
    table["published_images"] = None
    if pub is None:
        return comp
    used = ds.meta.get("train_lists")
    skip_train = pub.train_lists is not None and used is not None and used != pub.train_lists
    if skip_train:
        comp.notes.append(
            f"train: the published counts are for train_lists={pub.train_lists!r}; this copy "
            f"was read with train_lists={used!r}, so train is not compared"
        )
    for i, row in table.iterrows():
        split = row["split"]
        if split == "train" and skip_train:
            continue
        table.at[i, "published_ids"] = pub.ids[split]
        table.at[i, "published_images"] = pub.images[split]
        line = _split_difference(split, int(row["images"]), int(row["ids"]),
                                 pub.images[split], pub.ids[split])
        if line:
            comp.differences.append(line)
    if cameras != pub.cameras:
        comp.differences.append(
            f"cameras: {cameras} in all, published {pub.cameras}: "
            + ("the images of some camera are missing?" if cameras < pub.cameras
               else "another dataset mixed in?")
        )
    return comp


def _split_difference(split: str, images: int, ids: int, pub_images: int, pub_ids: int) -> str | None:
    """One line saying how a split's counts differ from the published ones (None if equal)."""
    details = []
    fewer = more = False
    for n, pub, one, many in ((images, pub_images, "image", "images"),
                              (ids, pub_ids, "identity", "identities")):
        if n == pub:
            continue
        gap = abs(n - pub)
        noun = one if gap == 1 else many
        details.append(f"{gap:,} {noun} {'missing' if n < pub else 'extra'}")
        fewer, more = fewer or n < pub, more or n > pub
    if not details:
        return None
    if fewer and more:
        advice = "a different copy or release of the dataset?"
    elif fewer:
        advice = "an incomplete copy? Re-extract the archive (fine if you use a subset on purpose)"
    else:
        advice = "files added to the folders, or another release of the dataset?"
    return (f"{split}: {images:,} images of {ids:,} identities, published {pub_images:,} of "
            f"{pub_ids:,} ({', '.join(details)}): {advice}")
