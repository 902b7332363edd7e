"""Batched augmentation against the per-image transforms: deterministic parts equal, random parts
with the same distributions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from torchvision.transforms import functional as TF

from hcm.config import InputConfig
from hcm.data.batch_augment import AugmentParams, draw_params, eval_batch, train_batch
from hcm.data.transforms import ClusterContrastErasing, build_test_transform, build_train_transform

CFG = InputConfig(height=32, width=16, pad=3)


def _batch(n: int = 6, seed: int = 0, size: tuple[int, int] = (32, 16)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *size, 3), dtype=torch.uint8, generator=g)


def _per_image(img_hwc: torch.Tensor, p: AugmentParams, i: int, cfg: InputConfig) -> torch.Tensor:
    """The per-image pipeline's deterministic steps with sample i's choices (torchvision functional)."""
    x = img_hwc.permute(2, 0, 1)
    if p.flip[i]:
        x = TF.hflip(x)
    x = TF.crop(TF.pad(x, cfg.pad), int(p.top[i]), int(p.left[i]), cfg.height, cfg.width)
    x = TF.normalize(TF.convert_image_dtype(x, torch.float32), list(cfg.mean), list(cfg.std))
    if p.erase[i]:
        fill = torch.tensor(cfg.mean).view(3, 1, 1).expand(3, int(p.erase_h[i]), int(p.erase_w[i]))
        x = TF.erase(x, int(p.erase_top[i]), int(p.erase_left[i]), int(p.erase_h[i]), int(p.erase_w[i]), fill)
    return x


def test_eval_batch_is_the_test_transform_bit_for_bit() -> None:
    imgs = _batch()
    out = eval_batch(imgs, CFG)
    assert out.shape == (6, 3, 32, 16) and out.dtype == torch.float32
    for i in range(len(imgs)):
        assert torch.equal(out[i], build_test_transform(CFG)(imgs[i].permute(2, 0, 1)))


def test_train_batch_equals_the_per_image_steps_with_the_same_choices() -> None:
    imgs = _batch(64)
    params = draw_params(64, CFG, torch.Generator().manual_seed(3))
    assert params.flip.any() and (~params.flip).any() and params.erase.any() and (~params.erase).any()
    out = train_batch(imgs, params, CFG)
    for i in range(len(imgs)):
        assert torch.equal(out[i], _per_image(imgs[i], params, i, CFG)), i


def test_no_randomness_is_the_test_transform_and_flip_one_mirrors() -> None:
    imgs = _batch()
    plain = InputConfig(height=32, width=16, flip_p=0.0, pad=0, erasing_p=0.0)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(train_batch(imgs, draw_params(6, plain, g), plain), eval_batch(imgs, plain))
    flipped = InputConfig(height=32, width=16, flip_p=1.0, pad=0, erasing_p=0.0)
    torch.testing.assert_close(train_batch(imgs, draw_params(6, flipped, g), flipped),
                               eval_batch(imgs, plain).flip(-1), rtol=0, atol=0)


def test_resize_when_the_store_is_not_at_the_input_size_is_close_to_pils_bicubic() -> None:
    g = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.interpolate(torch.rand(4, 3, 8, 4, generator=g) * 255, size=(64, 32),
                                             mode="bilinear").round().to(torch.uint8).permute(0, 2, 3, 1)
    out = eval_batch(smooth.contiguous(), CFG)
    ref = torch.stack([build_test_transform(CFG)(img.permute(2, 0, 1).contiguous()) for img in smooth])
    assert out.shape == ref.shape
    assert (out - ref).abs().max() < 3 / 255 / 0.224  # within 2-3 grey levels of PIL


def test_same_generator_same_batch_and_cpu_draws() -> None:
    imgs = _batch()
    a = train_batch(imgs, draw_params(6, CFG, torch.Generator().manual_seed(9)), CFG)
    b = train_batch(imgs, draw_params(6, CFG, torch.Generator().manual_seed(9)), CFG)
    assert torch.equal(a, b)
    state = torch.get_rng_state()
    draw_params(6, CFG, torch.Generator().manual_seed(1))
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is not touched


def _per_image_draws(n: int, cfg: InputConfig) -> dict[str, np.ndarray]:
    """Flip, crop offsets and erasing box of the per-image transform, read off its outputs."""
    # a gradient image: each pixel's value tells where it came from
    h, w = cfg.height, cfg.width
    rows = torch.arange(h).view(h, 1).expand(h, w)
    cols = torch.arange(w).view(1, w).expand(h, w)
    img = torch.stack([rows * 4 + 1, cols * 8 + 1, torch.full((h, w), 255)]).to(torch.uint8)
    tf = build_train_transform(cfg)
    # un-normalise channel values: x = (v / 255 - mean) / std
    mean, std = torch.tensor(cfg.mean).view(3, 1, 1), torch.tensor(cfg.std).view(3, 1, 1)
    out = {"flip": [], "top": [], "left": [], "erase": [], "eh": [], "ew": [], "et": [], "el": []}
    for s in range(n):
        torch.manual_seed(s)
        x = tf(img)
        erased = (x == mean.expand_as(x)).all(0)
        v = torch.round((x * std + mean) * 255)
        blue_ok = (v[2] == 255) & ~erased
        r, c = torch.nonzero(blue_ok, as_tuple=True)
        # first un-erased, un-padded pixel gives the offsets; column order gives the flip
        src_r, src_c = (v[0, r, c] - 1) / 4, (v[1, r, c] - 1) / 8
        top = int((src_r - r).mode().values) + cfg.pad
        flip = bool(len(c) > 1 and (src_c[1:] - src_c[:-1])[(r[1:] == r[:-1])].float().mean() < 0)
        left = int(((w - 1 - src_c) - c).mode().values) + cfg.pad if flip else int((src_c - c).mode().values) + cfg.pad
        out["flip"].append(flip)
        out["top"].append(top)
        out["left"].append(left)
        out["erase"].append(bool(erased.any()))
        if erased.any():
            er, ec = torch.nonzero(erased, as_tuple=True)
            out["et"].append(int(er.min()))
            out["el"].append(int(ec.min()))
            out["eh"].append(int(er.max() - er.min() + 1))
            out["ew"].append(int(ec.max() - ec.min() + 1))
    return {k: np.array(v) for k, v in out.items()}


@pytest.fixture(scope="module")
def draws() -> tuple[dict[str, np.ndarray], AugmentParams]:
    n = 3000
    return _per_image_draws(n, CFG), draw_params(n, CFG, torch.Generator().manual_seed(123))


def test_flip_and_erasing_rates_match(draws) -> None:
    old, new = draws
    for key, attr in (("flip", "flip"), ("erase", "erase")):
        a, b = old[key], getattr(new, attr).numpy()
        table = [[a.sum(), len(a) - a.sum()], [b.sum(), len(b) - b.sum()]]
        assert stats.chi2_contingency(table).pvalue > 1e-3, key
        assert abs(b.mean() - 0.5) < 0.05


def test_crop_offsets_match(draws) -> None:
    old, new = draws
    span = 2 * CFG.pad + 1
    for key in ("top", "left"):
        a = np.bincount(old[key], minlength=span)
        b = np.bincount(getattr(new, key).numpy(), minlength=span)
        assert len(a) == len(b) == span
        assert stats.chi2_contingency(np.stack([a, b])).pvalue > 1e-3, key


def test_erasing_boxes_match(draws) -> None:
    old, new = draws
    e = new.erase.numpy()
    # the per-image box is read off pixels equal to the fill, which a box's edge can extend by
    # chance only with probability ~0; compare sizes and positions (two-sample KS)
    for key, attr in (("eh", "erase_h"), ("ew", "erase_w"), ("et", "erase_top"), ("el", "erase_left")):
        a, b = old[key], getattr(new, attr).numpy()[e]
        assert stats.ks_2samp(a, b).pvalue > 1e-3, key
    area = (new.erase_h * new.erase_w).numpy()[e] / (CFG.height * CFG.width)
    assert area.min() >= 0.01 and area.max() <= 0.45
    assert (new.erase_h[e] < CFG.height).all() and (new.erase_w[e] < CFG.width).all()
    assert ((new.erase_top + new.erase_h)[e] <= CFG.height).all()
    assert ((new.erase_left + new.erase_w)[e] <= CFG.width).all()


def test_erasing_box_sampler_matches_cluster_contrasts_get_params() -> None:
    """Box sizes against ClusterContrastErasing.get_params directly (no pixel reading)."""
    erase = ClusterContrastErasing(p=1.0, value=CFG.mean)
    img = torch.zeros(3, CFG.height, CFG.width)
    old_h, old_w = [], []
    torch.manual_seed(0)
    for _ in range(3000):
        _, _, h, w, _ = erase.get_params(img, erase.scale, erase.ratio, list(CFG.mean))
        old_h.append(h)
        old_w.append(w)
    cfg = InputConfig(height=CFG.height, width=CFG.width, erasing_p=1.0)
    new = draw_params(3000, cfg, torch.Generator().manual_seed(5))
    assert new.erase.float().mean() > 0.99
    assert stats.ks_2samp(old_h, new.erase_h.numpy()).pvalue > 1e-3
    assert stats.ks_2samp(old_w, new.erase_w.numpy()).pvalue > 1e-3


@pytest.mark.parametrize("pad", [0, 3])
def test_loop_and_vectorised_paths_give_the_same_tensor(pad: int) -> None:
    """The CPU path (slice per sample) and the GPU path (whole-batch gathers) agree exactly."""
    cfg = InputConfig(height=32, width=16, pad=pad)
    imgs = _batch(48, seed=4)
    params = draw_params(48, cfg, torch.Generator().manual_seed(8))
    a = train_batch(imgs, params, cfg, vectorised=True)
    b = train_batch(imgs, params, cfg, vectorised=False)
    assert torch.equal(a, b)
    for i in range(len(imgs)):
        assert torch.equal(b[i], _per_image(imgs[i], params, i, cfg)), i
