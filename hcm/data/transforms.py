"""Image transforms for training and testing (method.md, "Defaults for the real datasets").

Train: resize to (h, w) bicubic -> horizontal flip (p) -> pad + random crop back to (h, w)
-> to tensor -> normalise (mean, std) -> random erasing (p). Test: resize bicubic -> to
tensor -> normalise. This is Cluster Contrast's recipe
(``examples/cluster_contrast_train_usl.py``).

Only the resize runs on the PIL image (:class:`ResizeToTensor`, PIL's bicubic as in
torchvision's ``Resize``); flip, pad, crop and the conversion to float run on the uint8
tensor, which costs a tenth of PIL's per-image overhead at re-ID sizes. Every step is
elementwise or a re-indexing, and the random draws happen in the same order, so the output
is the same tensor, bit for bit, as the all-PIL pipeline (``tests/data/test_transforms.py``
checks it against that pipeline). The transforms also accept the uint8 (3, H, W) tensors of
:class:`hcm.data.images.ImageCache`, which skips PIL altogether when H, W already are (h, w).

Every random choice is drawn from torch's global CPU RNG, so running a transform under
``torch.random.fork_rng`` + ``torch.random.default_generator.manual_seed(seed)`` (what
:class:`hcm.data.images.ImageDataset` does for ``ds[(index, seed)]``) makes the result a
pure function of ``(image, seed)``, whichever process or worker runs it.

Random erasing follows Cluster Contrast's own ``RandomErasing`` (Zhong et al., AAAI 2020):
area fraction ~ U(0.02, 0.4), aspect ratio ~ U(0.3, 1/0.3) (uniform, not log-uniform as in
torchvision), up to 100 attempts, and the erased box is filled, in *normalised* space,
with the numbers of ``mean`` (0.485, 0.456, 0.406) per channel: not zero and not the mean
colour. We keep that quirk so that our ``baseline`` matches Cluster Contrast.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F

from hcm.config import InputConfig


class ClusterContrastErasing(T.RandomErasing):
    """torchvision's :class:`RandomErasing` with Cluster Contrast's box sampling.

    Differences to torchvision's defaults: area scale (0.02, 0.4), aspect ratio drawn
    uniformly in (r1, 1/r1), 100 attempts, strict ``h < H and w < W``; randomness from
    torch's RNG (Cluster Contrast uses Python's ``random``).
    """

    def __init__(self, p: float, value: Sequence[float], *, sl: float = 0.02, sh: float = 0.4,
                 r1: float = 0.3, attempts: int = 100) -> None:
        super().__init__(p=p, scale=(sl, sh), ratio=(r1, 1.0 / r1), value=list(value))
        self.attempts = attempts

    def get_params(self, img: torch.Tensor, scale: tuple[float, float], ratio: tuple[float, float],
                   value: list[float] | None = None) -> tuple[int, int, int, int, torch.Tensor]:
        channels, height, width = img.shape[-3], img.shape[-2], img.shape[-1]
        area = height * width
        for _ in range(self.attempts):
            target_area = area * torch.empty(1).uniform_(scale[0], scale[1]).item()
            aspect = torch.empty(1).uniform_(ratio[0], ratio[1]).item()
            h = int(round(math.sqrt(target_area * aspect)))
            w = int(round(math.sqrt(target_area / aspect)))
            if h < height and w < width:
                i = int(torch.randint(0, height - h + 1, (1,)).item())
                j = int(torch.randint(0, width - w + 1, (1,)).item())
                fill = torch.tensor(value if value is not None else [0.0], dtype=img.dtype)
                fill = fill.view(-1, 1, 1).expand(channels, h, w)
                return i, j, h, w, fill
        return 0, 0, height, width, img  # no box fitted: torchvision's "leave unchanged"


class ResizeToTensor(torch.nn.Module):
    """PIL image or uint8 (3, H, W) tensor -> uint8 (3, h, w) tensor, resized bicubic by PIL.

    A tensor that already has the size passes through untouched; any other input is resized
    exactly as torchvision's ``Resize`` resizes a PIL image (a tensor goes back to PIL first,
    so cached and uncached images give the same pixels).
    """

    def __init__(self, size: tuple[int, int]) -> None:
        super().__init__()
        self.size = (int(size[0]), int(size[1]))

    def forward(self, img: Image.Image | torch.Tensor) -> torch.Tensor:
        if isinstance(img, torch.Tensor):
            if img.dtype != torch.uint8 or img.dim() != 3:
                raise TypeError(f"ResizeToTensor: expected a uint8 (3, H, W) tensor, got {img.dtype} "
                                f"{tuple(img.shape)}")
            if tuple(img.shape[-2:]) == self.size:
                return img
            img = F.to_pil_image(img)
        if img.size != (self.size[1], self.size[0]):
            img = F.resize(img, list(self.size), interpolation=InterpolationMode.BICUBIC)
        return F.pil_to_tensor(img)


def _to_normalised_float(cfg: InputConfig) -> list:
    # uint8 -> float in [0, 1] (x / 255, ToTensor's arithmetic) -> (x - mean) / std
    return [T.ConvertImageDtype(torch.float32), T.Normalize(mean=list(cfg.mean), std=list(cfg.std))]


def build_train_transform(cfg: InputConfig) -> T.Compose:
    """Training augmentation of method.md ("Train transform"), all randomness from torch's RNG."""
    size = (cfg.height, cfg.width)
    steps: list = [ResizeToTensor(size)]
    if cfg.flip_p > 0:
        steps.append(T.RandomHorizontalFlip(p=cfg.flip_p))
    if cfg.pad > 0:
        steps += [T.Pad(cfg.pad), T.RandomCrop(size)]
    steps += _to_normalised_float(cfg)
    if cfg.erasing_p > 0:
        steps.append(ClusterContrastErasing(p=cfg.erasing_p, value=cfg.mean))
    return T.Compose(steps)


def build_test_transform(cfg: InputConfig) -> T.Compose:
    """Deterministic test/feature-extraction transform: resize bicubic, to tensor, normalise."""
    return T.Compose([ResizeToTensor((cfg.height, cfg.width)), *_to_normalised_float(cfg)])
