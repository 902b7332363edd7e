"""Throughput of `hcm prepare --check-images` on Market-sized JPEGs (128x64).

Reference, measured in the same run: a plain sequential loop that fully decodes each
image with Pillow. Prints images/s per mode and the ratio to the reference, plus the
projected time for MSMT17's 126,441 images.

    python -m benchmarks.check_images [--n 4000] [--workers 2]   (from the repo root)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from hcm.data.validate import check_images

MSMT17_IMAGES = 32621 + 11659 + 82161


def write_images(folder: Path, n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        # smooth random content compresses like a real crop (~3-5 kB)
        small = rng.integers(0, 256, size=(16, 8, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((64, 128), Image.BILINEAR)
        path = folder / f"{i:04d}_c1s1_{i:06d}_01.jpg"
        img.save(path, quality=90)
        paths.append(str(path))
    return paths


def sequential_full(paths: list[str]) -> None:
    for p in paths:
        with Image.open(p) as img:
            img.load()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_images(Path(tmp), args.n)
        sequential_full(paths)  # warm the page cache
        ref = timed(lambda: sequential_full(paths))
        print(f"{args.n} images of 128x64; reference (sequential full decode): "
              f"{args.n / ref:,.0f} img/s")
        for mode in ("full", "header"):
            t = timed(lambda mode=mode: check_images(paths, mode, args.workers))
            print(f"check_images {mode:6s}: {args.n / t:8,.0f} img/s  ratio to reference "
                  f"{ref / t:5.2f}x  MSMT17 ({MSMT17_IMAGES:,} images) ~{MSMT17_IMAGES * t / args.n:5.0f} s")


if __name__ == "__main__":
    main()
