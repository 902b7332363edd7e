"""MSMT17 in any of its three circulating layouts.

- ``msmt17-v1-lists``: the original ``MSMT17_V1/`` with ``train/``, ``test/`` and the
  list files ``list_train.txt``, ``list_val.txt``, ``list_query.txt``,
  ``list_gallery.txt`` beside them. Each line is ``<path relative to train/ or test/>
  <identity>``; the camera is the third ``_`` field of the file name (1-15), e.g.
  ``0000/0000_000_01_0303morning_0015_0.jpg 0`` is camera 1.
- ``msmt17-v2-lists``: ``MSMT17_V2/`` (faces blurred), the same list files with
  ``mask_train_v2/`` and ``mask_test_v2/`` as the image folders.
- ``msmt17-market-style``: a re-organised copy with ``bounding_box_train/``,
  ``query/``, ``bounding_box_test/`` and names matching ``(-?\\d+)_c(\\d+)``.

Training set: ``list_train`` + ``list_val`` (``train_lists="train+val"``, the
protocol behind the published numbers: 1,041 identities, 32,621 images) or
``list_train`` only (``train_lists="train"``). Query and gallery keep the identities
of the list files.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from hcm.data.dataset import ReIDDataset, make_table
from hcm.data.market1501 import MARKET_SUBDIRS, looks_market_style
from hcm.data.parsing import (
    JUNK_PID,
    NameRule,
    Row,
    absolute,
    assemble,
    find_child,
    read_split_folders,
    require_dir,
    require_file,
    summarize_names,
    walk_images,
)
from hcm.data.spec import DatasetOptions, DatasetSpec, PublishedStats, register_dataset
from hcm.errors import DatasetError

logger = logging.getLogger(__name__)

CAMERAS: tuple[int, int] = (1, 15)


class MSMT17Options(DatasetOptions):
    train_lists: Literal["train+val", "train"] = Field(
        "train+val", description="list files forming the training set (train+val: the published protocol)")


LIST_FILES: dict[str, str] = {
    "train": "list_train.txt", "val": "list_val.txt",
    "query": "list_query.txt", "gallery": "list_gallery.txt",
}
#: value of the ``train_lists`` option -> list files forming the training set
TRAIN_LISTS: dict[str, tuple[str, ...]] = {"train+val": ("train", "val"), "train": ("train",)}
DEFAULT_TRAIN_LISTS = "train+val"

MARKET_STYLE_RULE = NameRule("MSMT17", re.compile(r"(-?\d+)_c(\d+)"), CAMERAS, "0001_c14_*.jpg")

HELP = (
    "Download MSMT17 (MSMT17_V1.tar.gz or MSMT17_V2.tar.gz) and unpack it so that "
    "<root>/MSMT17_V1/list_train.txt (or <root>/MSMT17_V2/list_train.txt) exists; "
    "a Market-style copy goes to <root>/MSMT17/bounding_box_train."
)


@dataclass(frozen=True)
class ListLayout:
    """A list-file layout: its name, version tag and image folder names."""

    layout: str
    version: str
    train_dir: str
    test_dir: str


LIST_LAYOUTS: tuple[ListLayout, ...] = (
    ListLayout("msmt17-v2-lists", "V2", "mask_train_v2", "mask_test_v2"),
    ListLayout("msmt17-v1-lists", "V1", "train", "test"),
)
MARKET_STYLE_LAYOUT = "msmt17-market-style"


def _tried() -> str:
    lists = ", ".join(LIST_FILES.values())
    parts = [f"{lay.layout} ({lay.train_dir}/, {lay.test_dir}/, {lists})" for lay in LIST_LAYOUTS]
    parts.append(f"{MARKET_STYLE_LAYOUT} ({', '.join(d + '/' for d in MARKET_SUBDIRS.values())})")
    return "; ".join(parts)


def looks_msmt17(path: Path) -> bool:
    """Whether ``path`` looks like an MSMT17 folder in one of the three layouts."""
    if not path.is_dir():
        return False
    if (path / LIST_FILES["train"]).is_file() or (path / LIST_FILES["query"]).is_file():
        return True
    if any(find_child(path, lay.train_dir) or find_child(path, lay.test_dir)
           for lay in LIST_LAYOUTS if lay.version == "V2"):
        return True
    if (path / "train").is_dir() and (path / "test").is_dir():
        return True
    return looks_market_style(path)


def detect_layout(folder: Path) -> ListLayout | str:
    """The list layout found in ``folder``, or ``MARKET_STYLE_LAYOUT``."""
    for lay in LIST_LAYOUTS:
        if find_child(folder, lay.train_dir) or find_child(folder, lay.test_dir):
            return lay
    if looks_market_style(folder):
        return MARKET_STYLE_LAYOUT
    raise DatasetError(
        f"{folder}: not an MSMT17 folder in any known layout; tried {_tried()}. {HELP}"
    )


def read_msmt17(folder: str | Path, train_lists: str | None = None, **_options: Any) -> ReIDDataset:
    """Read MSMT17 from its folder, detecting the layout; unrelated options are ignored.

    ``train_lists``: ``"train+val"`` (default) or ``"train"``; see the module docstring.
    """
    chosen = DEFAULT_TRAIN_LISTS if train_lists is None else train_lists
    if chosen not in TRAIN_LISTS:
        raise DatasetError(
            f"train_lists={train_lists!r}: not one of {', '.join(map(repr, TRAIN_LISTS))}; "
            "use 'train+val' (list_train + list_val, the published protocol) or 'train'"
        )
    folder = absolute(folder)
    layout = detect_layout(folder)
    if isinstance(layout, ListLayout):
        return _read_lists(folder, layout, chosen)
    if chosen != DEFAULT_TRAIN_LISTS:
        raise DatasetError(
            f"{folder}: train_lists='{chosen}' needs the original MSMT17 list files, but this is "
            "a Market-style re-organised copy whose bounding_box_train is a fixed training set. "
            "Use train_lists='train+val' (the default), or unpack the original MSMT17_V1/V2 archive."
        )
    return read_split_folders(
        folder, name="msmt17", layout=MARKET_STYLE_LAYOUT, rule=MARKET_STYLE_RULE,
        subdirs=MARKET_SUBDIRS, fix=HELP,
        meta={"train_set": "bounding_box_train of the re-organised copy"},
    )


def _read_lists(folder: Path, lay: ListLayout, train_lists: str) -> ReIDDataset:
    expected = [f"{lay.train_dir}/", f"{lay.test_dir}/", *LIST_FILES.values()]
    dirs = {}
    for key, name in (("train", lay.train_dir), ("test", lay.test_dir)):
        path = find_child(folder, name) or folder / name
        dirs[key] = require_dir(path, dataset="msmt17", layout=lay.layout, expected=expected, fix=HELP)
    existing = {key: walk_images(path) for key, path in dirs.items()}

    def read(list_key: str, dir_key: str) -> tuple[list[Row], Path]:
        fix = HELP if list_key != "val" else (
            "Restore it from the MSMT17 archive, or train on list_train.txt only "
            "(train_lists='train', `hcm prepare --train-lists train`).")
        path = require_file(folder / LIST_FILES[list_key], dataset="msmt17", layout=lay.layout, fix=fix)
        return read_list_file(path, dirs[dir_key], existing[dir_key]), path

    train_rows: list[Row] = []
    train_sources = []
    for key in TRAIN_LISTS[train_lists]:
        rows, path = read(key, "train")
        train_rows += rows
        train_sources.append(path.name)
    train = make_table(train_rows)
    dup = train["path"].duplicated()
    if dup.any():
        logger.warning(
            "%s: %d images appear in more than one of %s; each is used once",
            folder, int(dup.sum()), ", ".join(train_sources),
        )
        train = train[~dup]
    query_rows, query_path = read("query", "test")
    gallery_rows, gallery_path = read("gallery", "test")
    tables = {"train": train, "query": make_table(query_rows), "gallery": make_table(gallery_rows)}
    sources = {
        "train": " + ".join(str(folder / n) for n in train_sources),
        "query": query_path, "gallery": gallery_path,
    }
    meta = {
        "version": lay.version, "train_lists": train_lists,
        "list_files": {"train": train_sources, "query": query_path.name, "gallery": gallery_path.name},
        "image_dirs": {"train": dirs["train"].name, "test": dirs["test"].name},
    }
    return assemble("msmt17", folder, lay.layout, tables, sources, meta)


def read_list_file(list_path: Path, image_dir: Path, existing: set[str]) -> list[Row]:
    """Rows ``(path, pid, camid, orig_pid)`` for the lines ``<relative path> <identity>`` of a list file.

    ``existing`` holds the relative paths of the images present under ``image_dir``.
    Malformed lines, out-of-range cameras and images missing from ``image_dir`` raise a
    :class:`DatasetError` naming the list file, the line(s) and what to do.
    """
    try:
        text = list_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{list_path}: unreadable list file ({exc}); restore it from the MSMT17 archive") from None
    rows: list[Row] = []
    malformed: list[str] = []
    bad_cams: list[str] = []
    missing: list[str] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not _is_int(fields[1]):
            malformed.append(f"line {lineno} {line.strip()!r}")
            continue
        rel, pid = fields[0].replace("\\", "/"), int(fields[1])
        cam_field = Path(rel).name.split("_")
        cam = int(cam_field[2]) if len(cam_field) > 2 and _is_int(cam_field[2]) else None
        if cam is None or not CAMERAS[0] <= cam <= CAMERAS[1]:
            bad_cams.append(f"line {lineno} {rel}")
            continue
        if rel not in existing:
            missing.append(rel)
            continue
        if pid == JUNK_PID:
            continue
        rows.append((str(image_dir / rel), pid, cam - 1, pid))
    if malformed:
        raise DatasetError(
            f"{list_path}: {len(malformed)} line(s) not of the form '<relative path> <identity>': "
            f"{summarize_names(malformed)}. Restore this list file from the MSMT17 archive."
        )
    if bad_cams:
        raise DatasetError(
            f"{list_path}: {len(bad_cams)} line(s) name an image whose camera (third _ field of "
            f"the file name) is not in {CAMERAS[0]}-{CAMERAS[1]}: {summarize_names(bad_cams)}. "
            "Restore this list file from the MSMT17 archive."
        )
    if missing:
        raise DatasetError(
            f"{list_path}: names {len(missing)} image(s) missing from {image_dir}: "
            f"{summarize_names(missing)}. Re-extract the MSMT17 archive (a list file of another "
            "version, V1 vs V2, beside these images also causes this)."
        )
    return rows


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


register_dataset(DatasetSpec(
    name="msmt17",
    folder_names=("MSMT17_V1", "MSMT17_V2", "MSMT17", "msmt17",
                  "msmt17/MSMT17_V1", "msmt17/MSMT17_V2", "MSMT17/MSMT17_V1", "MSMT17/MSMT17_V2"),
    is_folder=looks_msmt17,
    reader=read_msmt17,
    description="MSMT17 (Wei et al., CVPR 2018): 4,101 identities, 15 cameras; V1, V2 or Market-style copy",
    layout_help=HELP,
    label="MSMT17", order=30,
    stats=PublishedStats(ids={"train": 1041, "query": 3060, "gallery": 3060},
                         images={"train": 32621, "query": 11659, "gallery": 82161}, cameras=15,
                         train_lists="train+val", note="train = list_train + list_val"),
    options=MSMT17Options,
))
