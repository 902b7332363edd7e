"""Shared pieces of the dataset readers: listing image files, parsing file names,
aggregating bad-input errors, and assembling a :class:`ReIDDataset`.

Readers never let a low-level exception escape: every problem a person can fix
becomes a :class:`~hcm.errors.DatasetError` that names the file (or, for many bad
files, a count and the first few names) and says what to do.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from hcm.data.dataset import SPLITS, ReIDDataset, make_table, relabel
from hcm.errors import DatasetError

logger = logging.getLogger(__name__)

#: file suffixes read as images (case-insensitive); every other file is skipped
IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp"})
#: identity of "junk" images (Market-1501 / DukeMTMC-reID), dropped at parsing
JUNK_PID = -1
#: how many offending names an aggregated error message shows
SHOW = 5

Row = tuple[str, int, int, int]


def is_image_name(name: str) -> bool:
    """Whether a file name is read as an image: an image suffix and not hidden (``._x.jpg``)."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def absolute(path: str | Path) -> Path:
    """``path`` made absolute without resolving symbolic links (keeps the user's names)."""
    return Path(os.path.abspath(Path(path).expanduser()))


def find_child(folder: Path, name: str, *, dir_only: bool = True) -> Path | None:
    """``folder/name``, matching ``name`` case-insensitively if the exact name is absent."""
    exact = folder / name
    if exact.is_dir() if dir_only else exact.exists():
        return exact
    if not folder.is_dir():
        return None
    for child in sorted(folder.iterdir()):
        if child.name.lower() == name.lower() and (child.is_dir() or not dir_only):
            return child
    return None


def summarize_names(names: list[str], show: int = SHOW) -> str:
    """``"a, b, c"`` or ``"a, b, c, ... (12 in all)"`` for error messages."""
    head = ", ".join(names[:show])
    return head if len(names) <= show else f"{head}, ... ({len(names)} in all)"


def require_dir(path: Path, *, dataset: str, layout: str, expected: Iterable[str], fix: str) -> Path:
    """``path`` if it is a folder; otherwise a :class:`DatasetError` naming it and the layout."""
    if path.is_dir():
        return path
    raise DatasetError(
        f"{path}: folder missing; the {dataset} layout '{layout}' expects "
        f"{', '.join(expected)} inside {path.parent}. {fix}"
    )


def require_file(path: Path, *, dataset: str, layout: str, fix: str) -> Path:
    if path.is_file():
        return path
    raise DatasetError(f"{path}: list file missing for the {dataset} layout '{layout}'. {fix}")


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name.

    Non-image files (``Thumbs.db``, ``.DS_Store``, ``*.txt``), hidden files and
    sub-folders are skipped and logged at debug level. An image name that is a broken
    symbolic link (its target missing, or a loop) is a :class:`DatasetError` naming it:
    skipping it would silently change the dataset.
    """
    images: list[Path] = []
    broken: list[str] = []
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        raise DatasetError(f"{folder}: cannot list this folder ({exc.strerror}); check that it exists and "
                           "is readable") from None
    for entry in entries:
        try:
            is_file = entry.is_file()
        except OSError:  # a symbolic link loop (ELOOP)
            is_file = False
        if is_file and is_image_name(entry.name):
            images.append(Path(entry.path))
        elif is_image_name(entry.name) and entry.is_symlink() and not os.path.exists(entry.path):
            broken.append(entry.name)
        else:
            logger.debug("skipping %s (not an image file)", entry.path)
    if broken:
        what = "image is a broken symbolic link" if len(broken) == 1 else f"{len(broken)} images are broken symbolic links"
        raise DatasetError(
            f"{folder / broken[0]}: {what} (target missing, or a link loop): {summarize_names(broken)} in "
            f"{folder}. Restore the files they point to, or remove the links"
        )
    return images


def walk_images(folder: Path) -> set[str]:
    """Relative POSIX paths of every image file below ``folder`` (one walk, for list checks)."""
    found: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        rel = Path(dirpath).relative_to(folder)
        for name in filenames:
            if is_image_name(name):
                found.add((rel / name).as_posix())
    return found


@dataclass(frozen=True)
class NameRule:
    """How a dataset's image names encode identity and camera.

    ``pattern`` is matched at the start of the file name; group 1 is the identity,
    group 2 the (1-based) camera, which must lie in ``cameras`` (inclusive).
    """

    dataset: str
    pattern: re.Pattern[str]
    cameras: tuple[int, int]
    example: str

    def parse(self, name: str) -> tuple[int, int] | None:
        """``(identity, camera)`` as written in ``name``, or None if it does not parse."""
        m = self.pattern.match(name)
        if m is None:
            return None
        try:
            return int(m.group(1)), int(m.group(2))
        except ValueError:
            return None

    def camera_ok(self, camera: int) -> bool:
        return self.cameras[0] <= camera <= self.cameras[1]

    @property
    def camera_range(self) -> str:
        return f"{self.cameras[0]}-{self.cameras[1]}"


def bad_names_error(folder: Path, rule: NameRule, bad: list[str]) -> DatasetError:
    first = folder / bad[0]
    what = "file name does not" if len(bad) == 1 else f"{len(bad)} file names do not"
    return DatasetError(
        f"{first}: {what} parse as a {rule.dataset} image name like {rule.example} "
        f"(identity, then _c and the camera): {summarize_names(bad)} in {folder}. "
        "Rename or remove these files (non-image files such as Thumbs.db are skipped "
        "automatically), or check that this folder really holds "
        f"{rule.dataset}."
    )


def bad_cameras_error(where: Path, rule: NameRule, bad: list[str]) -> DatasetError:
    what = "an image" if len(bad) == 1 else f"{len(bad)} images"
    return DatasetError(
        f"{where}: {what} with a camera outside {rule.camera_range}, the cameras of "
        f"{rule.dataset}: {summarize_names(bad)}. Is this folder really {rule.dataset}? "
        "Point --root at the right dataset, or remove these files."
    )


def read_image_folder(folder: Path, rule: NameRule) -> tuple[list[Row], int]:
    """Rows ``(path, pid, camid, orig_pid)`` for the images of one split folder.

    Identity is kept as written (``pid == orig_pid``), camera becomes 0-based,
    identity -1 is dropped. Returns the rows and the number of junk images dropped.
    """
    rows: list[Row] = []
    bad_names: list[str] = []
    bad_cams: list[str] = []
    junk = 0
    for path in list_images(folder):
        parsed = rule.parse(path.name)
        if parsed is None:
            bad_names.append(path.name)
            continue
        pid, cam = parsed
        if not rule.camera_ok(cam):
            bad_cams.append(path.name)
            continue
        if pid == JUNK_PID:
            junk += 1
            continue
        rows.append((str(path), pid, cam - 1, pid))
    if bad_names:
        raise bad_names_error(folder, rule, bad_names)
    if bad_cams:
        raise bad_cameras_error(folder / bad_cams[0] if len(bad_cams) == 1 else folder, rule, bad_cams)
    return rows, junk


def read_split_folders(
    folder: Path,
    *,
    name: str,
    layout: str,
    rule: NameRule,
    subdirs: Mapping[str, str],
    fix: str,
    meta: dict[str, Any] | None = None,
) -> ReIDDataset:
    """Read a layout with one image folder per split (Market-1501 style).

    ``subdirs`` maps each split to its folder name inside ``folder``.
    """
    folder = absolute(folder)
    expected = [f"{subdirs[s]}/" for s in SPLITS]
    tables: dict[str, pd.DataFrame] = {}
    sources: dict[str, Path] = {}
    junk: dict[str, int] = {}
    for split in SPLITS:
        path = find_child(folder, subdirs[split]) or folder / subdirs[split]
        require_dir(path, dataset=name, layout=layout, expected=expected, fix=fix)
        rows, junk[split] = read_image_folder(path, rule)
        tables[split] = make_table(rows)
        sources[split] = path
    info = {"junk_dropped": junk, **(meta or {})}
    return assemble(name, folder, layout, tables, sources, info)


def assemble(
    name: str,
    folder: Path,
    layout: str,
    tables: Mapping[str, pd.DataFrame],
    sources: Mapping[str, Path | str],
    meta: dict[str, Any],
) -> ReIDDataset:
    """Check that no split is empty, relabel train to 0..K-1, and build the dataset."""
    for split in SPLITS:
        if len(tables[split]) == 0:
            raise DatasetError(
                f"{sources[split]}: the {split} split of {name} is empty (no image left after "
                "skipping non-image files and identity -1 junk). Re-extract the dataset "
                "archive so that this folder / list file holds its images."
            )
    ds = ReIDDataset(
        name=name, root=folder, layout=layout,
        train=relabel(tables["train"]).reset_index(drop=True),
        query=tables["query"].reset_index(drop=True),
        gallery=tables["gallery"].reset_index(drop=True),
        meta=dict(meta),
    )
    logger.info(
        "%s (%s): %d train / %d query / %d gallery images from %s",
        name, layout, len(ds.train), len(ds.query), len(ds.gallery), folder,
    )
    return ds
