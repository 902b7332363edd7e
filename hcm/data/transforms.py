"""Image transforms for training and testing (method.md, "Defaults for the real datasets").

Train: resize to (h, w) bicubic -> horizontal flip (p) -> pad + random crop back to (h, w)
-> to tensor -> normalise (mean, std) -> random erasing (p). Test: resize bicubic -> to
tensor -> normalise. This is Cluster Contrast's recipe
(``examples/cluster_contrast_train_usl.py``).

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
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

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


def build_train_transform(cfg: InputConfig) -> T.Compose:
    """Training augmentation of method.md ("Train transform"), all randomness from torch's RNG."""
    size = (cfg.height, cfg.width)
    steps: list = [T.Resize(size, interpolation=InterpolationMode.BICUBIC)]
    if cfg.flip_p > 0:
        steps.append(T.RandomHorizontalFlip(p=cfg.flip_p))
    if cfg.pad > 0:
        steps += [T.Pad(cfg.pad), T.RandomCrop(size)]
    steps += [T.ToTensor(), T.Normalize(mean=list(cfg.mean), std=list(cfg.std))]
    if cfg.erasing_p > 0:
        steps.append(ClusterContrastErasing(p=cfg.erasing_p, value=cfg.mean))
    return T.Compose(steps)


def build_test_transform(cfg: InputConfig) -> T.Compose:
    """Deterministic test/feature-extraction transform: resize bicubic, to tensor, normalise."""
    return T.Compose([
        T.Resize((cfg.height, cfg.width), interpolation=InterpolationMode.BICUBIC),
        T.ToTensor(),
        T.Normalize(mean=list(cfg.mean), std=list(cfg.std)),
    ])
