"""The decoded image store: every image of a dataset decoded once into one uint8 array on disk.

Training reads the same images every epoch (feature extraction, then P x K batches) and
evaluation reads the test images; decoding JPEGs and resizing them with PIL, image by
image in loader workers, is what limited a GPU run (issue #17: 0% GPU utilisation in
most samples). The store decodes each image once, at one storage size, into

    <store_dir>/<H>x<W>.npy        uint8 (N, H, W, 3), memory-mapped read-only
    <store_dir>/<H>x<W>.json       key, image count, CRC-32 of every row

Rows are the images of the train, query and gallery splits in index order (each path
once; the key fixes that order). The storage size is the recipe's input size, so a stored row is exactly what
:class:`hcm.data.transforms.ResizeToTensor` gives for that image (PIL bicubic), and the
augmentation (:mod:`hcm.data.batch_augment`) has no resize to do.

- **Key**: SHA-256 of the store format, the size, and every image's path (relative to the
  dataset folder), file size and modification time. A changed dataset or size rebuilds.
- **Atomic**: the array and its sidecar are written to temporary files and renamed (the
  array first; a sidecar left behind from an older array fails the row checks). A file
  lock serialises concurrent builders of the same store (parallel workflow jobs): the
  second waits and then finds the store built.
- **Damage**: opening checks the array's header, its byte size and the CRC-32 of up to
  64 rows spread over it (``verify_store(full=True)`` checks every row); a damaged store
  is reported in one log line and rebuilt.

Disk cost: ``N x H x W x 3`` bytes, 98,304 bytes per image at 256x128
(docs/datasets.md, "Decoded image store").
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import logging
import os
import time
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from hcm.data.images import load_image
from hcm.errors import DatasetError
from hcm.utils.io import atomic_path, atomic_write_json

log = logging.getLogger(__name__)

STORE_VERSION = 1
#: rows whose CRC-32 is checked each time a store is opened
SAMPLE_ROWS = 64


@dataclass(frozen=True)
class ImageStore:
    """An opened store: ``array[row]`` is the uint8 (H, W, 3) image of ``paths[row]``."""

    path: Path
    array: np.ndarray
    paths: tuple[str, ...]

    @property
    def size(self) -> tuple[int, int]:
        return int(self.array.shape[1]), int(self.array.shape[2])

    def __len__(self) -> int:
        return int(self.array.shape[0])

    @functools.cached_property
    def _lookup(self) -> dict[str, int]:
        return {p: i for i, p in enumerate(self.paths)}

    def rows_of(self, paths: Sequence[str]) -> np.ndarray:
        """Store rows of ``paths`` (int64); a path not in the store is a :class:`DatasetError`."""
        lookup = self._lookup
        try:
            return np.fromiter((lookup[p] for p in paths), dtype=np.int64, count=len(paths))
        except KeyError as exc:
            raise DatasetError(f"{exc.args[0]}: image not in the image store {self.path}; it was built "
                               "for another dataset index (delete the store to rebuild it)") from None


def store_files(directory: str | Path, size: tuple[int, int]) -> tuple[Path, Path]:
    """(array, sidecar) paths of the store of ``size`` in ``directory``."""
    stem = f"{int(size[0])}x{int(size[1])}"
    return Path(directory) / f"{stem}.npy", Path(directory) / f"{stem}.json"


def store_key(paths: Sequence[str], size: tuple[int, int], root: str | Path | None = None) -> str:
    """SHA-256 of the format version, the size and every image's (path, byte size, mtime)."""
    digest = hashlib.sha256(f"hcm-image-store {STORE_VERSION} {size[0]}x{size[1]}\n".encode())
    base = Path(root) if root is not None else None
    for p in paths:
        try:
            st = os.stat(p)
        except FileNotFoundError:
            raise DatasetError(f"{p}: image listed in the dataset index is missing; re-run `hcm prepare` "
                               "or restore the file") from None
        name = p
        if base is not None:
            with contextlib.suppress(ValueError):
                name = Path(p).relative_to(base).as_posix()
        digest.update(f"{name}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _row_crc(row: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(row).data)


def verify_store(array_path: Path, meta_path: Path, key: str, n: int, size: tuple[int, int], *,
                 full: bool = False) -> str | None:
    """What is wrong with the store on disk (None: nothing found); see the module docstring."""
    if not array_path.is_file() and not meta_path.is_file():
        return "missing"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"unreadable sidecar {meta_path.name} ({exc})"
    if meta.get("version") != STORE_VERSION or meta.get("key") != key:
        return "stale (the dataset index, its files or the size changed)"
    try:
        array = np.load(array_path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        return f"unreadable array {array_path.name} ({exc})"
    want = (n, size[0], size[1], 3)
    if array.shape != want or array.dtype != np.uint8:
        return f"array of shape {array.shape} {array.dtype}, expected {want} uint8"
    header = array.offset if isinstance(array, np.memmap) else 0
    if array_path.stat().st_size != header + array.nbytes:
        return f"array file of {array_path.stat().st_size} bytes, expected {header + array.nbytes} (truncated?)"
    crcs = meta.get("crc32", [])
    if len(crcs) != n:
        return "sidecar without a checksum per row"
    rows = range(n) if full else np.unique(np.linspace(0, n - 1, min(n, SAMPLE_ROWS)).astype(np.int64))
    for r in rows:
        if _row_crc(array[int(r)]) != crcs[int(r)]:
            return f"row {int(r)} does not match its checksum (corrupt or overwritten file)"
    return None


@contextlib.contextmanager
def _build_lock(array_path: Path) -> Iterator[None]:
    array_path.parent.mkdir(parents=True, exist_ok=True)
    with open(array_path.with_suffix(".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _decode(path: str, size: tuple[int, int]) -> np.ndarray:
    from hcm.data.transforms import ResizeToTensor  # the per-image path's resize, bit for bit

    return ResizeToTensor(size)(load_image(path)).permute(1, 2, 0).numpy()


def build_store(paths: Sequence[str], size: tuple[int, int], array_path: Path, meta_path: Path, key: str, *,
                workers: int | None = None, progress: bool = True) -> None:
    """Decode ``paths`` at ``size`` in parallel threads into ``array_path`` (atomically) + sidecar."""
    n = len(paths)
    workers = workers or max(1, min(8, os.cpu_count() or 1))
    crcs = [0] * n
    with atomic_path(array_path) as tmp:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, size[0], size[1], 3))

        def fill(row: int) -> None:
            array[row] = _decode(paths[row], size)
            crcs[row] = _row_crc(array[row])

        with ThreadPoolExecutor(workers) as pool:  # PIL decodes and resizes without the GIL
            for _ in tqdm(pool.map(fill, range(n), chunksize=64), total=n, disable=not progress,
                          desc=f"image store {array_path.parent.name}/{array_path.name}", unit="img"):
                pass
        array.flush()
    atomic_write_json(meta_path, {"version": STORE_VERSION, "key": key, "size": list(size), "count": n,
                                  "crc32": crcs})


def open_store(paths: Sequence[str], size: tuple[int, int], directory: str | Path, *,
               root: str | Path | None = None, workers: int | None = None, progress: bool = True,
               full_check: bool = False) -> ImageStore:
    """The store of ``paths`` at ``size`` in ``directory``: opened, or (re)built first when it is
    missing, stale or damaged (one log line says which)."""
    paths = list(dict.fromkeys(paths))
    size = (int(size[0]), int(size[1]))
    array_path, meta_path = store_files(directory, size)
    key = store_key(paths, size, root)
    problem = verify_store(array_path, meta_path, key, len(paths), size, full=full_check)
    if problem is not None:
        try:
            with _build_lock(array_path):
                # another process may have built it while this one waited
                problem = verify_store(array_path, meta_path, key, len(paths), size, full=full_check)
                if problem is not None:
                    if problem != "missing":
                        log.warning("image store %s is %s; rebuilding it", array_path, problem)
                    n_bytes = len(paths) * size[0] * size[1] * 3
                    log.info("building the image store %s: %d images at %dx%d (%.2f GB)", array_path,
                             len(paths), size[0], size[1], n_bytes / 1e9)
                    t0 = time.perf_counter()
                    build_store(paths, size, array_path, meta_path, key, workers=workers, progress=progress)
                    log.info("built the image store %s in %.1f s", array_path, time.perf_counter() - t0)
        except OSError as exc:
            raise DatasetError(
                f"{array_path}: cannot write the image store ({exc}); set runtime.store_dir to a writable "
                "folder with space for it, or runtime.image_store=false") from None
    return ImageStore(array_path, np.load(array_path, mmap_mode="r"), tuple(paths))


def default_store_dir(dataset_root: str | Path, dataset_name: str) -> Path:
    """``<parent of the dataset folder>/<name>.store``: beside the dataset, not inside it."""
    return Path(dataset_root).parent / f"{dataset_name}.store"
