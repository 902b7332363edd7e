"""ReIDModel: shapes, normalisation, last stride, GeM, BN neck, seeded construction."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hcm.config import ModelConfig
from hcm.models import GeM, build_model

R18 = ModelConfig(arch="resnet18", weights="none")


@pytest.fixture(scope="module")
def model18() -> torch.nn.Module:
    return build_model(R18, seed=0)


def test_output_is_unit_norm_in_train_and_eval(model18) -> None:
    x = torch.randn(4, 3, 32, 16, generator=torch.Generator().manual_seed(0))
    assert model18.feat_dim == 512
    model18.train()
    out = model18(x)
    assert out.shape == (4, 512)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(4))
    model18.eval()
    with torch.no_grad():
        out_eval = model18(x)
        pooled, bn = model18.forward_features(x)
    torch.testing.assert_close(out_eval.norm(dim=1), torch.ones(4))
    torch.testing.assert_close(out_eval, F.normalize(bn, dim=1))
    torch.testing.assert_close(bn, model18.bn_neck(pooled))
    assert not torch.allclose(out, out_eval)  # train mode uses batch statistics


def test_last_stride(model18) -> None:
    x = torch.randn(2, 3, 32, 16)
    with torch.no_grad():
        assert model18.trunk(x).shape == (2, 512, 2, 1)  # stride 16 with last stride 1
        m2 = build_model(R18.model_copy(update={"last_stride": 2}))
        assert m2.trunk(x).shape == (2, 512, 1, 1)  # stride 32


def test_resnet50_feat_dim_and_last_stride() -> None:
    model = build_model(ModelConfig(arch="resnet50", weights="none")).eval()
    assert model.feat_dim == 2048
    assert model.layer4[0].conv2.stride == (1, 1) and model.layer4[0].downsample[0].stride == (1, 1)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 16)).shape == (1, 2048)


@pytest.mark.parametrize("arch", ["shufflenet_v2_x0_5", "shufflenet_v2_x1_0"])
def test_shufflenet_trunk_last_stride_and_torchvision_weights(arch: str, tmp_path) -> None:
    import torchvision

    cfg = ModelConfig(arch=arch, weights="none")
    model = build_model(cfg).eval()
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        assert model.trunk(x).shape == (2, 1024, 4, 2)  # stride 16 with last stride 1
        assert build_model(cfg.model_copy(update={"last_stride": 2})).eval().trunk(x).shape == (2, 1024, 2, 1)
        assert model(x).shape == (2, 1024)
    # a torchvision state_dict (with its fc) loads key for key into the trunk
    net = getattr(torchvision.models, arch)(weights=None)
    torch.save(net.state_dict(), tmp_path / "tv.pth")
    loaded = build_model(cfg.model_copy(update={"weights": str(tmp_path / "tv.pth")}))
    for key, value in net.state_dict().items():
        if not key.startswith("fc."):
            assert torch.equal(loaded.state_dict()[key], value), key


def test_bn_neck_bias_frozen_and_initialised(model18) -> None:
    neck = model18.bn_neck
    assert not neck.bias.requires_grad and neck.weight.requires_grad
    assert torch.equal(neck.weight, torch.ones(512)) and torch.equal(neck.bias, torch.zeros(512))
    model = build_model(R18, seed=1).train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model(torch.randn(4, 3, 32, 16)).sum().backward()
    opt.step()
    assert model.bn_neck.bias.grad is None and torch.equal(model.bn_neck.bias, torch.zeros(512))


def test_gem_matches_formula_and_learns_p() -> None:
    gem = GeM(3.0)
    x = torch.rand(2, 5, 4, 3) + 0.1
    want = x.pow(3).mean(dim=(2, 3), keepdim=True).pow(1 / 3)
    torch.testing.assert_close(gem(x), want)
    gem(x).sum().backward()
    assert gem.p.grad is not None and gem.p.grad.abs() > 0
    torch.testing.assert_close(GeM(1.0)(x), x.mean(dim=(2, 3), keepdim=True))
    zeros = torch.zeros(1, 2, 3, 3)
    torch.testing.assert_close(GeM(3.0)(zeros), torch.full((1, 2, 1, 1), 1e-6))  # eps clamp


def test_avg_pooling_option() -> None:
    model = build_model(R18.model_copy(update={"pooling": "avg"}))
    assert isinstance(model.pool, torch.nn.AdaptiveAvgPool2d)
    assert not any(k.startswith("pool.") for k in model.state_dict())


def test_init_is_pure_function_of_seed() -> None:
    state = torch.get_rng_state()
    a, b, c = (build_model(R18, num_classes=3, seed=s).state_dict() for s in (7, 7, 8))
    assert torch.equal(state, torch.get_rng_state())  # caller's RNG untouched
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["conv1.weight"], c["conv1.weight"])
    assert not torch.equal(a["classifier.weight"], c["classifier.weight"])


def test_classifier_and_logits() -> None:
    model = build_model(R18, num_classes=5)
    pooled, bn = model.forward_features(torch.randn(2, 3, 32, 16))
    assert pooled.shape == bn.shape == (2, 512)
    assert model.logits(bn).shape == (2, 5)
    assert model.classifier.bias is None
    with pytest.raises(RuntimeError, match="no classifier"):
        build_model(R18).logits(bn)


def test_forward_under_autocast_stays_finite_float32(model18, monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedding comes out float32 and finite from a float16/bfloat16 trunk (CPU bfloat16
    autocast stands in for CUDA AMP here).

    oneDNN's bfloat16 convolutions are switched off for this check: on an AVX-512-BF16 Xeon
    (torch 2.14.1, 2026-11-27) they returned NaN or values off by ~1.7 for this tiny shape
    (the 3x3 stride-2 convolution on 4x2 maps of layer3), varying from call to call: torch's
    kernel, not this model. The harness refuses CPU autocast (``runtime.amp=on`` needs CUDA).
    """
    monkeypatch.setattr(torch.backends.mkldnn, "enabled", False)
    model18.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model18(torch.randn(2, 3, 32, 16))
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_narrow_resnet_at_width_64_is_torchvisions_network(arch: str) -> None:
    """narrow_resnet(arch, 64) takes torchvision's state_dict key for key and computes the same."""
    import torchvision

    from hcm.models.reid import narrow_resnet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        ref = getattr(torchvision.models, arch)(weights=None).eval()
        ours = narrow_resnet(arch, 64).eval()
    state = {k: v for k, v in ref.state_dict().items() if not k.startswith("fc.")}
    assert set(ours.state_dict()) == set(state)
    ours.load_state_dict(state, strict=True)
    x = torch.randn(2, 3, 64, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = ref.layer4(ref.layer3(ref.layer2(ref.layer1(ref.maxpool(ref.relu(ref.bn1(ref.conv1(x))))))))
        got = ours.layer4(ours.layer3(ours.layer2(ours.layer1(ours.maxpool(ours.relu(ours.bn1(ours.conv1(x))))))))
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize(("arch", "width", "dim"), [("resnet18", 32, 256), ("resnet18", 16, 128), ("resnet50", 16, 512)])
def test_narrow_resnet_width_sets_channels_and_feature_size(arch: str, width: int, dim: int) -> None:
    cfg = ModelConfig(arch=arch, weights="none", width=width)
    model = build_model(cfg, num_classes=5, seed=0).eval()
    full = build_model(ModelConfig(arch=arch, weights="none"))
    assert model.feat_dim == dim
    assert model.conv1.out_channels == width
    # last stride 1: no conv of the last stage's first block (strided conv and shortcut) is strided
    assert all(m.stride == (1, 1) for m in model.layer4[0].modules() if isinstance(m, torch.nn.Conv2d))
    n_params = sum(p.numel() for p in model.parameters())
    n_full = sum(p.numel() for p in full.parameters())
    assert n_params < n_full * (width / 64) ** 2 * 1.2  # parameters scale with width squared
    x = torch.randn(3, 3, 64, 32)
    with torch.no_grad():
        assert model.trunk(x).shape == (3, dim, 4, 2)
        out = model(x)
    assert out.shape == (3, dim)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))
    # seeded construction is reproducible
    again = build_model(cfg, num_classes=5, seed=0)
    for (k, a), b in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=k)


def test_narrow_width_round_trips_through_a_checkpoint(tmp_path) -> None:
    from hcm.models import model_from_checkpoint, save_weights

    model = build_model(ModelConfig(arch="resnet18", weights="none", width=16), seed=3).eval()
    path = save_weights(model, tmp_path / "w16.pt")
    back = model_from_checkpoint(str(path)).eval()
    assert back.config.width == 16 and back.feat_dim == 128
    x = torch.randn(2, 3, 32, 16)
    with torch.no_grad():
        torch.testing.assert_close(back(x), model(x))
    with pytest.raises(Exception, match="size mismatch|shape"):
        build_model(ModelConfig(arch="resnet18", weights=str(path), width=32))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"arch": "resnet18", "width": 32, "weights": "imagenet"}, "ImageNet weights exist only for width 64"),
        ({"arch": "shufflenet_v2_x1_0", "width": 32, "weights": "none"}, "applies to ResNets only"),
        ({"arch": "resnet18", "width": 2, "weights": "none"}, "greater than or equal to 4"),
    ],
)
def test_width_config_errors(kwargs: dict, match: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=match):
        ModelConfig(**kwargs)
