"""Host-side cost of feeding training batches from the image store, against the per-image path.

Both paths feed P x K batches (default 256 images at 256x128, the paper recipe) of
Market-1501-like images (JPEG files at Market's native 128x64, resized to the input size):

* store path (``runtime.image_store=true``): what the host does per batch when training on a
  GPU: gather the batch's uint8 rows from the memory-mapped store (into pinned memory when
  CUDA is present) and draw the batch's augmentation choices; resizing, flip, crop, erasing
  and normalisation then run on the device (on a GPU they are not host work; their CPU cost
  is printed for information);
* per-image path (``runtime.image_store=false``): a ``DataLoader`` decoding each JPEG and
  running the per-image train transform (:func:`hcm.data.transforms.build_train_transform`),
  with no worker processes, i.e. the rate of one loader worker.

Both run on one core (``torch.set_num_threads(1)``) in the same process. Target: the store
path feeds at least 20,000 images/s on one core (three times the H200's bare step rate of
5,948 images/s at the paper recipe). The last line reads
``host images/s: <store> (per-image path: <old>)``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hcm.config import InputConfig  # noqa: E402
from hcm.data.batch_augment import draw_params, train_batch  # noqa: E402
from hcm.data.feeder import StoreFeeder  # noqa: E402
from hcm.data.images import ImageDataset  # noqa: E402
from hcm.data.samplers import IdentitySampler  # noqa: E402
from hcm.data.store import open_store  # noqa: E402
from hcm.data.transforms import build_train_transform  # noqa: E402


def make_images(folder: Path, n: int, size: tuple[int, int], seed: int = 0) -> list[str]:
    """``n`` JPEGs of smooth random content (decode cost like real photos) at ``size`` (h, w)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        low = rng.integers(0, 256, size=(size[0] // 8, size[1] // 8, 3), dtype=np.uint8)
        img = Image.fromarray(low).resize((size[1], size[0]), Image.BILINEAR)
        path = folder / f"{i:05d}.jpg"
        img.save(path, quality=90)
        paths.append(str(path))
    return paths


def rate(fn, n_images: int, repeats: int) -> float:
    """Best images/s of ``repeats`` calls of ``fn`` (each handling ``n_images``), after a warm-up."""
    fn()
    best = min(_timed(fn) for _ in range(repeats))
    return n_images / best


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2000, help="images in the generated set")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--num-instances", type=int, default=16)
    ap.add_argument("--height", type=int, default=256)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--batches", type=int, default=8, help="batches per measurement of the store path")
    ap.add_argument("--old-batches", type=int, default=2, help="batches per measurement of the per-image path")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = InputConfig(height=args.height, width=args.width)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    with tempfile.TemporaryDirectory() as tmp:
        native = (max(8, args.height // 2), max(8, args.width // 2))
        paths = make_images(Path(tmp) / "images", args.images, native)
        labels = np.arange(args.images) // 20
        cams = np.arange(args.images) % 6
        t0 = time.perf_counter()
        store = open_store(paths, (cfg.height, cfg.width), Path(tmp) / "store", progress=False)
        build_s = time.perf_counter() - t0
        feeder = StoreFeeder(store, device, cfg)
        table_rows = feeder.rows_of(paths)

        def sampler(batches: int) -> IdentitySampler:
            return IdentitySampler(labels, cams, batch_size=args.batch_size, num_instances=args.num_instances,
                                   num_batches=batches, seed=[0, 0])

        def store_host() -> None:
            for batch in sampler(args.batches):
                host = feeder.gather(table_rows[[i for i, _ in batch]])
                draw_params(len(batch), cfg, torch.Generator().manual_seed(int(batch[0][1])))
                if device.type == "cuda":
                    host.to(device, non_blocking=True)
            if device.type == "cuda":
                torch.cuda.synchronize()

        gathered = feeder.gather(table_rows[: args.batch_size])

        def augment_cpu() -> None:
            for b in range(args.batches):
                train_batch(gathered, draw_params(len(gathered), cfg, torch.Generator().manual_seed(b)), cfg)

        loader = torch.utils.data.DataLoader(ImageDataset(paths, build_train_transform(cfg)),
                                             batch_sampler=sampler(args.old_batches), num_workers=0)

        def per_image() -> None:
            for _ in loader:
                pass

        n_new, n_old = args.batches * args.batch_size, args.old_batches * args.batch_size
        new = rate(store_host, n_new, args.repeats)
        aug = rate(augment_cpu, n_new, args.repeats)
        old = rate(per_image, n_old, args.repeats)
    print(f"{args.images} JPEGs at {native[0]}x{native[1]} -> {cfg.height}x{cfg.width}, batches of {args.batch_size}, "
          f"1 thread, device {device}")
    print(f"store build: {args.images / build_s:,.0f} images/s ({build_s:.1f} s, threads: min(8, CPUs))")
    print(f"store path, host side (gather + augmentation draws{' + H2D copy' if device.type == 'cuda' else ''}): "
          f"{new:,.0f} images/s")
    print(f"batched augmentation on this CPU (device work on a GPU): {aug:,.0f} images/s")
    print(f"per-image path (decode + PIL resize + per-image transforms, one process): {old:,.0f} images/s")
    print(f"target: store path >= 20,000 images/s on one core: {'met' if new >= 20000 else 'NOT met'}")
    print(f"host images/s: {new:.0f} (per-image path: {old:.0f})")


if __name__ == "__main__":
    main()
