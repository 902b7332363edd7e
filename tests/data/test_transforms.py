"""Train/test transforms: shapes, normalisation, erasing fill, reproducibility from a seed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hcm.config import InputConfig
from hcm.data.images import ImageDataset
from hcm.data.transforms import ClusterContrastErasing, build_test_transform, build_train_transform

CFG = InputConfig(height=32, width=16, pad=2)


@pytest.fixture()
def image_path(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, size=(64, 32, 3), dtype=np.uint8)
    path = tmp_path / "0001_c1s1_000001_00.jpg"
    Image.fromarray(arr).save(path, quality=95)
    return path


def test_test_transform_normalises_a_constant_image() -> None:
    img = Image.new("RGB", (20, 50), (255, 128, 0))
    out = build_test_transform(CFG)(img)
    assert out.shape == (3, 32, 16)
    mean, std = torch.tensor(CFG.mean), torch.tensor(CFG.std)
    want = (torch.tensor([255, 128, 0]) / 255.0 - mean) / std
    torch.testing.assert_close(out[:, 10, 5], want)
    assert torch.allclose(out, want[:, None, None].expand_as(out), atol=1e-5)


def test_train_transform_same_seed_same_tensor(image_path: Path) -> None:
    ds = ImageDataset([str(image_path)], build_train_transform(CFG))
    a, _ = ds[(0, 7)]
    b, _ = ds[(0, 7)]
    assert a.shape == (3, 32, 16)
    assert torch.equal(a, b)
    outs = [ds[(0, s)][0] for s in range(8)]
    assert sum(not torch.equal(outs[0], o) for o in outs[1:]) >= 6  # seeds give different crops


def test_train_transform_does_not_touch_global_rng(image_path: Path) -> None:
    ds = ImageDataset([str(image_path)], build_train_transform(CFG))
    state = torch.get_rng_state()
    ds[(0, 3)]
    assert torch.equal(state, torch.get_rng_state())


def test_train_transform_without_randomness_is_test_transform(image_path: Path) -> None:
    cfg = InputConfig(height=32, width=16, flip_p=0.0, pad=0, erasing_p=0.0)
    img = Image.open(image_path).convert("RGB")
    torch.testing.assert_close(build_train_transform(cfg)(img), build_test_transform(cfg)(img))
    flipped = InputConfig(height=32, width=16, flip_p=1.0, pad=0, erasing_p=0.0)
    torch.testing.assert_close(build_train_transform(flipped)(img), build_test_transform(cfg)(img).flip(-1))


def test_erasing_fills_a_box_with_the_mean_numbers() -> None:
    mean = (0.485, 0.456, 0.406)
    erase = ClusterContrastErasing(p=1.0, value=mean)
    for seed in range(20):
        torch.manual_seed(seed)
        img = torch.full((3, 64, 32), -5.0)
        out = erase(img.clone())
        changed = out[0] != -5.0
        rows, cols = torch.nonzero(changed, as_tuple=True)
        assert len(rows) > 0, "p=1 must erase (a box always fits at 64x32)"
        h, w = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
        assert int(changed.sum()) == h * w  # one rectangle
        assert h < 64 and w < 32
        assert 0.01 <= h * w / (64 * 32) <= 0.45  # area fraction in [0.02, 0.4] up to rounding
        for c in range(3):
            assert torch.all(out[c][changed] == torch.tensor(mean[c]))


def test_erasing_p_zero_is_identity() -> None:
    img = torch.randn(3, 16, 8)
    assert torch.equal(ClusterContrastErasing(p=0.0, value=(0.0, 0.0, 0.0))(img.clone()), img)


def test_seeded_items_leave_cuda_seeding_alone(tmp_path) -> None:
    """A seeded item seeds the CPU generator only: torch.manual_seed would also (re)seed CUDA
    for the whole process, or queue that seeding with a captured stack trace (~2 ms a call)."""
    from PIL import Image

    from hcm.config import InputConfig
    from hcm.data.images import ImageDataset
    from hcm.data.transforms import build_train_transform

    path = tmp_path / "a.png"
    Image.new("RGB", (16, 32), (10, 200, 30)).save(path)
    ds = ImageDataset([str(path)], build_train_transform(InputConfig(height=32, width=16, pad=2)))
    if torch.cuda.is_initialized():
        before = torch.cuda.get_rng_state()
        ds[(0, 123)]
        assert torch.equal(torch.cuda.get_rng_state(), before)
    else:
        tracker = torch.cuda._lazy_seed_tracker
        before = list(tracker.get_calls())
        a, _ = ds[(0, 123)]
        b, _ = ds[(0, 123)]
        assert torch.equal(a, b)
        assert tracker.get_calls() == before


def test_image_cache_decodes_each_file_once_and_returns_the_same_pixels(tmp_path) -> None:
    import numpy as np
    from PIL import Image

    from hcm.data.images import ImageCache

    path = tmp_path / "a.png"
    pixels = np.arange(4 * 3 * 3, dtype=np.uint8).reshape(4, 3, 3)
    Image.fromarray(pixels).save(path)
    cache = ImageCache()
    first = cache.load(str(path))
    path.unlink()  # a second load must not touch the file
    second = cache.load(str(path))
    assert len(cache) == 1
    assert first.dtype == torch.uint8 and first.shape == (3, 4, 3)
    np.testing.assert_array_equal(first.permute(1, 2, 0).numpy(), pixels)
    assert torch.equal(first, second)


def _all_pil_reference(cfg: InputConfig, train: bool):
    """The pipeline as torchvision documents it, every geometric step on the PIL image:
    the slow, obviously-correct reference for the tensor path of hcm.data.transforms."""
    from torchvision import transforms as T
    from torchvision.transforms import InterpolationMode

    size = (cfg.height, cfg.width)
    steps: list = [T.Resize(size, interpolation=InterpolationMode.BICUBIC)]
    if train:
        steps += [T.RandomHorizontalFlip(p=cfg.flip_p), T.Pad(cfg.pad), T.RandomCrop(size)]
    steps += [T.ToTensor(), T.Normalize(mean=list(cfg.mean), std=list(cfg.std))]
    if train:
        steps.append(ClusterContrastErasing(p=cfg.erasing_p, value=cfg.mean))
    return T.Compose(steps)


@pytest.mark.parametrize("source_size", [(16, 32), (24, 40)])  # (width, height): as is, and resized
def test_tensor_path_is_bitwise_the_all_pil_pipeline(tmp_path: Path, source_size) -> None:
    """Flip/pad/crop on the uint8 tensor, from a file or from the cache, give exactly the
    tensor of the all-PIL pipeline under the same seed (same draws in the same order)."""
    from hcm.data.images import ImageCache

    rng = np.random.default_rng(1)
    path = tmp_path / "a.png"
    Image.fromarray(rng.integers(0, 256, size=(source_size[1], source_size[0], 3), dtype=np.uint8)).save(path)
    cached = ImageDataset([str(path)], build_train_transform(CFG), ImageCache())
    uncached = ImageDataset([str(path)], build_train_transform(CFG))
    reference = ImageDataset([str(path)], _all_pil_reference(CFG, train=True))
    erased = 0
    for seed in range(40):
        want = reference[(0, seed)][0]
        assert torch.equal(uncached[(0, seed)][0], want), seed
        assert torch.equal(cached[(0, seed)][0], want), seed
        erased += bool((want == torch.tensor(CFG.mean)[:, None, None]).all(0).any())
    assert erased >= 10  # the seeds exercise erasing (p=0.5), so the comparison covers it
    test_ref = _all_pil_reference(CFG, train=False)(Image.open(path).convert("RGB"))
    assert torch.equal(build_test_transform(CFG)(Image.open(path).convert("RGB")), test_ref)
    assert torch.equal(build_test_transform(CFG)(ImageCache().load(str(path))), test_ref)


def test_cached_tensor_is_not_modified_by_the_transforms(tmp_path: Path) -> None:
    from hcm.data.images import ImageCache

    path = tmp_path / "a.png"
    Image.new("RGB", (16, 32), (10, 200, 30)).save(path)
    cache = ImageCache()
    before = cache.load(str(path)).clone()
    ds = ImageDataset([str(path)], build_train_transform(InputConfig(height=32, width=16, pad=2, erasing_p=1.0)),
                      cache)
    for seed in range(10):
        ds[(0, seed)]
    assert torch.equal(cache.load(str(path)), before)


def test_resize_to_tensor_refuses_a_float_tensor() -> None:
    from hcm.data.transforms import ResizeToTensor

    with pytest.raises(TypeError, match="uint8"):
        ResizeToTensor((32, 16))(torch.zeros(3, 32, 16))
