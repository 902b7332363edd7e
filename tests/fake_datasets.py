"""Tiny fake copies of the real dataset layouts, for tests (importable: ``tests.fake_datasets``).

Every image is the same 4x8 (w x h) JPEG, so a tree is written in milliseconds.
The contents are fixed and documented per builder; tests state the expected counts
themselves. ``make_all(parent)`` builds one tree per real dataset under ``parent``
(e.g. for a dry run of the workflow on the paper's datasets).
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

from PIL import Image

JUNK_FILES = ("Thumbs.db", ".DS_Store", "readme.txt")


@cache
def jpeg_bytes() -> bytes:
    """A valid 4x8 RGB JPEG."""
    buf = io.BytesIO()
    Image.new("RGB", (4, 8), (120, 60, 30)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def write_jpeg(path: Path, truncated: bool = False) -> Path:
    """Write the tiny JPEG at ``path`` (``truncated``: only its first half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = jpeg_bytes()
    path.write_bytes(data[: len(data) // 2] if truncated else data)
    return path


def write_junk(folder: Path) -> None:
    """Non-image files that real copies carry (skipped by the readers)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in JUNK_FILES:
        (folder / name).write_bytes(b"not an image")


def _market_names(spec: list[tuple[int, int]], template: str) -> list[str]:
    return [template.format(pid=pid, cam=cam, k=k) if pid >= 0 else
            template.replace("{pid:04d}", "-1").format(pid=pid, cam=cam, k=k)
            for k, (pid, cam) in enumerate(spec)]


#: Market-1501 fake: (identity, camera) per image; -1 junk and 0000 distractors in the gallery
MARKET = {
    "bounding_box_train": [(2, 1), (2, 2), (7, 3), (7, 6), (7, 6), (10, 1)],
    "query": [(2, 1), (7, 2), (10, 3)],
    "bounding_box_test": [(2, 2), (2, 4), (7, 1), (10, 6), (0, 1), (0, 3), (-1, 1), (-1, 5)],
}
MARKET_TEMPLATE = "{pid:04d}_c{cam}s1_{k:06d}_01.jpg"

#: DukeMTMC-reID fake: cameras up to 8
DUKE = {
    "bounding_box_train": [(1, 1), (1, 8), (5, 2), (9, 7)],
    "query": [(1, 2), (5, 3)],
    "bounding_box_test": [(1, 1), (5, 8), (5, 4), (12, 6)],
}
DUKE_TEMPLATE = "{pid:04d}_c{cam}_f{k:07d}.jpg"


def make_market(parent: Path, folder_name: str = "Market-1501-v15.09.15",
                spec: dict[str, list[tuple[int, int]]] | None = None,
                template: str = MARKET_TEMPLATE) -> Path:
    """A Market-1501 tree: train 3 ids / 6 images, query 3 / 3, gallery 4 ids (incl. 0) / 6
    images after dropping two -1 junk images; Thumbs.db etc. in every folder."""
    folder = parent / folder_name
    for sub, items in (spec or MARKET).items():
        for name in _market_names(items, template):
            write_jpeg(folder / sub / name)
        write_junk(folder / sub)
    return folder


def make_duke(parent: Path, folder_name: str = "DukeMTMC-reID") -> Path:
    """A DukeMTMC-reID tree: train 3 ids / 4 images, query 2 / 2, gallery 3 / 4, cameras 1-8."""
    return make_market(parent, folder_name, DUKE, DUKE_TEMPLATE)


#: MSMT17 list-file fake: (identity, camera) per image and the list each image is in
MSMT_TRAIN = {"list_train": [(0, 1), (0, 3), (1, 2), (1, 15)], "list_val": [(0, 4), (2, 6)]}
MSMT_TEST = {"list_query": [(0, 1), (1, 9)], "list_gallery": [(0, 2), (0, 1), (1, 10), (3, 14), (0, 7)]}


def msmt_name(pid: int, k: int, cam: int) -> str:
    """``0000/0000_000_01_0303morning_0015_0.jpg`` style relative path (camera = third field)."""
    return f"{pid:04d}/{pid:04d}_{k:03d}_{cam:02d}_0303morning_{k:04d}_0.jpg"


def make_msmt_lists(parent: Path, version: str = "V1", folder_name: str | None = None) -> Path:
    """An MSMT17 tree with list files. ``version`` V1: ``train/``, ``test/``; V2:
    ``mask_train_v2/``, ``mask_test_v2/``. Train: list_train 2 ids / 4 images, list_val
    2 ids / 2 images (train+val: 3 ids / 6 images); query 2 / 2; gallery 3 / 5;
    one unlisted extra image in the train folder."""
    folder = parent / (folder_name or f"MSMT17_{version}")
    train_dir, test_dir = ("train", "test") if version == "V1" else ("mask_train_v2", "mask_test_v2")
    k = 0
    for image_dir, lists in ((train_dir, MSMT_TRAIN), (test_dir, MSMT_TEST)):
        for list_name, items in lists.items():
            lines = []
            for pid, cam in items:
                rel = msmt_name(pid, k, cam)
                k += 1
                write_jpeg(folder / image_dir / rel)
                lines.append(f"{rel} {pid}")
            (folder / f"{list_name}.txt").write_text("\n".join(lines) + "\n")
        write_junk(folder / image_dir)
    write_jpeg(folder / train_dir / msmt_name(5, 999, 3))  # present, in no list
    return folder


#: Market-style MSMT17 copy: cameras written with two digits where > 9
MSMT_MARKET = {
    "bounding_box_train": [(0, 1), (0, 14), (3, 15), (3, 2)],
    "query": [(4, 11), (5, 1)],
    "bounding_box_test": [(4, 12), (5, 3), (6, 15)],
}


def make_msmt_market_style(parent: Path, folder_name: str = "MSMT17") -> Path:
    """A Market-style MSMT17 copy: train 2 ids / 4 images, query 2 / 2, gallery 3 / 3."""
    return make_market(parent, folder_name, MSMT_MARKET, "{pid:04d}_c{cam}_{k:04d}.jpg")


VERI = {
    "image_train": [(1, 1), (1, 20), (4, 5), (4, 5), (9, 13)],
    "image_query": [(2, 1), (3, 7)],
    "image_test": [(2, 2), (3, 8), (3, 19), (2, 20)],
}


def make_veri(parent: Path, folder_name: str = "VeRi") -> Path:
    """A VeRi-776 tree: train 3 ids / 5 images, query 2 / 2, gallery 2 / 4, cameras 1-20."""
    folder = make_market(parent, folder_name, VERI, "{pid:04d}_c{cam:03d}_{k:08d}_0.jpg")
    (folder / "name_train.txt").write_text("not read\n")
    return folder


def make_all(parent: Path) -> dict[str, Path]:
    """One fake tree per real dataset under ``parent``: name -> dataset folder."""
    return {
        "market1501": make_market(parent),
        "dukemtmcreid": make_duke(parent),
        "msmt17": make_msmt_lists(parent, "V1"),
        "veri776": make_veri(parent),
    }
