"""Image loading and a torch ``Dataset`` over image paths, with reproducible augmentation.

An item can be requested as ``dataset[i]`` or as ``dataset[(i, seed)]``. With a
seed, the transform runs under a forked torch RNG seeded with ``seed``, so the
augmentation of a sample is a pure function of ``(image, seed)``: the same whatever
the number of loader workers, the process, or what ran before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from hcm.errors import DatasetError

Transform = Callable[[Image.Image | torch.Tensor], Any]


def load_image(path: str | Path) -> Image.Image:
    """Open an image as RGB, fully decoded; a bad file raises :class:`DatasetError` naming it."""
    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("RGB")
    except FileNotFoundError:
        raise DatasetError(
            f"{path}: image listed in the dataset index is missing; re-run `hcm prepare` "
            "or restore the file"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DatasetError(
            f"{path}: unreadable or truncated image ({exc}); re-extract this file from the "
            "dataset archive, or delete it and re-run `hcm prepare`"
        ) from None


class ImageCache:
    """Decoded images kept in memory as uint8 (3, H, W) tensors, keyed by path.

    Training decodes the same images every epoch (extraction, then batches); a run
    whose images fit in memory (``runtime.cache_images``) decodes each once. The
    transforms of :mod:`hcm.data.transforms` take these tensors as they take PIL images.
    Only useful with ``runtime.workers=0``: worker processes fill their own copies.
    """

    def __init__(self) -> None:
        self._images: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self._images)

    def load(self, path: str) -> torch.Tensor:
        """The image as a uint8 (3, H, W) tensor; decoded from the file on the first call only.

        The tensor is shared between calls: transforms must not modify it in place (those
        of :mod:`hcm.data.transforms` do not).
        """
        img = self._images.get(path)
        if img is None:
            img = torch.from_numpy(np.array(load_image(path), dtype=np.uint8)).permute(2, 0, 1).contiguous()
            self._images[path] = img
        return img


class ImageDataset(torch.utils.data.Dataset):
    """``(transform(image), index)`` for each path; see the module docstring for seeds."""

    def __init__(self, paths: Sequence[str], transform: Transform | None = None,
                 cache: ImageCache | None = None) -> None:
        self.paths = list(paths)
        self.transform = transform
        self.cache = cache

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[Any, int]:
        if isinstance(item, tuple):
            index, seed = item
        else:
            index, seed = item, None
        path = self.paths[index]
        img = self.cache.load(path) if self.cache is not None else load_image(path)
        if self.transform is None:
            return img, index
        if seed is None:
            return self.transform(img), index
        with torch.random.fork_rng(devices=[]):
            # seed the CPU generator only: torch.manual_seed would also (re)seed CUDA for the
            # whole process, or queue that with a captured stack trace (~2 ms per image)
            torch.random.default_generator.manual_seed(seed)
            return self.transform(img), index
