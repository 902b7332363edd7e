"""Feature extraction with a tiny model over tiny PNG files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import functional as TF

from hcm.errors import DatasetError, HCMError
from hcm.eval import extract_features


class TinyNet(torch.nn.Module):
    """Conv -> BatchNorm -> global pool -> linear: eval mode differs from train mode (BatchNorm)."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.bn = torch.nn.BatchNorm1d(4)
        self.fc = torch.nn.Linear(4, 5)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
            self.bn.running_mean.copy_(torch.randn(4, generator=g))
            self.bn.running_var.copy_(torch.rand(4, generator=g) + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.bn(self.conv(x).mean((2, 3))))


@pytest.fixture()
def images(tmp_path) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(7):
        p = tmp_path / f"{i:04d}_c1s1_000001_00.png"
        Image.fromarray(rng.integers(0, 256, (12, 6, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    return paths


def _direct(model: torch.nn.Module, paths: list[str], flip: bool = False) -> torch.Tensor:
    x = torch.stack([TF.to_tensor(Image.open(p).convert("RGB")) for p in paths])
    with torch.no_grad():
        out = model(x)
        if flip:
            out = out + model(torch.flip(x, dims=[3]))
    return F.normalize(out, dim=1)


def test_features_equal_direct_model_calls_in_path_order(images):
    model = TinyNet().eval()
    feats = extract_features(model, images, TF.to_tensor, batch_size=3, device="cpu", progress=False)
    assert feats.shape == (7, 5) and feats.dtype == torch.float32 and feats.device.type == "cpu"
    torch.testing.assert_close(feats, _direct(model, images), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(feats.norm(dim=1), torch.ones(7))


def test_flip_averaging_is_normalised_sum_of_image_and_mirror(images):
    model = TinyNet().eval()
    feats = extract_features(model, images, TF.to_tensor, batch_size=4, device=torch.device("cpu"),
                             flip=True, progress=False)
    torch.testing.assert_close(feats, _direct(model, images, flip=True), rtol=1e-5, atol=1e-6)
    plain = extract_features(model, images, TF.to_tensor, batch_size=4, device="cpu", progress=False)
    assert not torch.allclose(feats, plain)


def test_runs_in_eval_mode_and_restores_training_mode(images):
    model = TinyNet().train()
    feats = extract_features(model, images, TF.to_tensor, batch_size=2, device="cpu", progress=False)
    assert model.training and model.bn.training
    torch.testing.assert_close(feats, _direct(TinyNet().eval(), images), rtol=1e-5, atol=1e-6)


def test_amp_is_ignored_on_cpu_and_workers_give_the_same_result(images):
    model = TinyNet().eval()
    a = extract_features(model, images, TF.to_tensor, batch_size=5, device="cpu", amp=True, progress=False)
    b = extract_features(model, images, TF.to_tensor, batch_size=5, device="cpu", workers=1, progress=False)
    torch.testing.assert_close(a, b)


def test_training_mode_is_restored_after_an_error(images, tmp_path):
    model = TinyNet().train()
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(DatasetError, match="broken.png"):
        extract_features(model, [*images, str(bad)], TF.to_tensor, batch_size=4, device="cpu", progress=False)
    assert model.training


def test_wrong_model_output_shape_is_a_clear_error(images):
    class Bad(torch.nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(HCMError, match=r"\(batch, dim\)"):
        extract_features(Bad(), images, TF.to_tensor, device="cpu", progress=False)


@pytest.mark.parametrize(("paths", "batch_size", "message"), [([], 4, "empty"), (None, 0, "batch_size")])
def test_bad_arguments(images, paths, batch_size, message):
    with pytest.raises(HCMError, match=message):
        extract_features(TinyNet(), images if paths is None else paths, TF.to_tensor, batch_size=batch_size,
                         device="cpu", progress=False)
