"""Weights: ImageNet from a (fake) hub cache, checkpoint files in our, torchvision's and
Cluster Contrast's formats, and clear errors for bad files."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
import torchvision

from hcm.config import ModelConfig
from hcm.errors import CheckpointError
from hcm.models import (
    build_model,
    imagenet_weights_location,
    load_weights,
    model_from_checkpoint,
    save_weights,
)

R18 = ModelConfig(arch="resnet18", weights="none")


def _trunk_equal(model: torch.nn.Module, sd: dict[str, torch.Tensor]) -> bool:
    own = model.state_dict()
    keys = [k for k in sd if not k.startswith("fc.")]
    return bool(keys) and all(torch.equal(own[k], sd[k]) for k in keys)


@pytest.fixture()
def hub_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private torch hub cache for the test; the previous setting is restored afterwards."""
    monkeypatch.setattr(torch.hub, "_hub_dir", torch.hub._hub_dir)  # restored on teardown
    torch.hub.set_dir(str(tmp_path / "hub"))
    return tmp_path / "hub"


def test_imagenet_from_cache(hub_dir: Path) -> None:
    path, url = imagenet_weights_location("resnet18")
    assert path == hub_dir / "checkpoints" / "resnet18-f37072fd.pth"
    assert url == "https://download.pytorch.org/models/resnet18-f37072fd.pth"
    torch.manual_seed(123)
    fake = torchvision.models.resnet18(weights=None).state_dict()
    path.parent.mkdir(parents=True)
    torch.save(fake, path)
    model = build_model(ModelConfig(arch="resnet18", weights="imagenet"), seed=0)
    assert _trunk_equal(model, fake)
    assert torch.equal(model.bn_neck.weight, torch.ones(512))  # head keeps its init


def test_imagenet_missing_cache_error_names_path_and_url(hub_dir: Path) -> None:
    with pytest.raises(CheckpointError) as info:
        build_model(ModelConfig(arch="resnet50", weights="imagenet"))
    msg = str(info.value)
    assert str(hub_dir / "checkpoints" / "resnet50-0676ba61.pth") in msg
    assert "https://download.pytorch.org/models/resnet50-0676ba61.pth" in msg
    assert not (hub_dir / "checkpoints").exists()  # nothing downloaded or created


def test_imagenet_file_of_wrong_arch(hub_dir: Path) -> None:
    path, _ = imagenet_weights_location("resnet34")
    path.parent.mkdir(parents=True)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(CheckpointError, match="model.arch"):
        build_model(ModelConfig(arch="resnet34", weights="imagenet"))


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    model = build_model(R18, num_classes=4, seed=3)
    with torch.no_grad():
        model.bn_neck.running_mean.add_(1.5)
        model.pool.p.fill_(4.0)
    path = save_weights(model, tmp_path / "ckpt" / "model.pth", {"epoch": 7})
    assert [p.name for p in path.parent.iterdir()] == ["model.pth"]  # atomic: no temp file left
    obj = load_weights(path)
    assert obj["epoch"] == 7 and obj["model_config"]["arch"] == "resnet18" and obj["num_classes"] == 4
    # same architecture with a classifier: everything loads
    same = build_model(R18.model_copy(update={"weights": str(path)}), num_classes=4, seed=9)
    assert all(torch.equal(same.state_dict()[k], v) for k, v in model.state_dict().items())
    # without a classifier: backbone and head load, the classifier is ignored
    bare = build_model(R18.model_copy(update={"weights": str(path)}), seed=9)
    assert bare.classifier is None and bare.pool.p.item() == 4.0
    assert torch.equal(bare.bn_neck.running_mean, model.bn_neck.running_mean)
    rebuilt = model_from_checkpoint(str(path))
    assert rebuilt.num_classes == 4 and torch.equal(rebuilt.classifier.weight, model.classifier.weight)
    with pytest.raises(ValueError, match="reserved"):
        save_weights(model, tmp_path / "x.pth", {"model": 1})


def test_classifier_of_other_size_is_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = save_weights(build_model(R18, num_classes=4), tmp_path / "m.pth")
    with caplog.at_level(logging.INFO, logger="hcm.models.weights"):
        model = build_model(R18.model_copy(update={"weights": str(path)}), num_classes=6, seed=1)
    assert "classifier.weight" in caplog.text
    assert torch.equal(model.classifier.weight, build_model(R18, num_classes=6, seed=1).classifier.weight)


def test_plain_torchvision_state_dict(tmp_path: Path) -> None:
    sd = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(sd, tmp_path / "tv.pth")
    model = build_model(R18.model_copy(update={"weights": str(tmp_path / "tv.pth")}))
    assert _trunk_equal(model, sd)


def test_cluster_contrast_checkpoint(tmp_path: Path) -> None:
    src = build_model(R18, seed=5)
    rename = {"conv1.": "base.0.", "bn1.": "base.1.", "layer1.": "base.4.", "layer2.": "base.5.",
              "layer3.": "base.6.", "layer4.": "base.7.", "bn_neck.": "feat_bn.", "pool.": "gap."}
    cc = {}
    for key, value in src.state_dict().items():
        prefix = next(p for p in rename if key.startswith(p))
        cc["module." + rename[prefix] + key[len(prefix):]] = value
    torch.save({"state_dict": cc, "epoch": 50, "best_mAP": 0.8}, tmp_path / "cc.pth.tar")
    model = build_model(R18.model_copy(update={"weights": str(tmp_path / "cc.pth.tar")}), seed=6)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in src.state_dict().items())


def test_arch_mismatch_in_our_checkpoint(tmp_path: Path) -> None:
    path = save_weights(build_model(R18), tmp_path / "m.pth")
    with pytest.raises(CheckpointError, match="model.arch=resnet18"):
        build_model(ModelConfig(arch="resnet34", weights=str(path)))


@pytest.mark.parametrize("case", ["missing", "directory", "truncated", "garbage", "not_tensors", "unknown_keys"])
def test_bad_files(tmp_path: Path, case: str) -> None:
    path = tmp_path / "bad.pth"
    good = tmp_path / "good.pth"
    save_weights(build_model(R18), good)
    if case == "directory":
        path.mkdir()
    elif case == "truncated":
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif case == "garbage":
        path.write_text("not a checkpoint")
    elif case == "not_tensors":
        torch.save({"epoch": 3, "lr": 0.1}, path)
    elif case == "unknown_keys":
        torch.save({**torch.load(good)["model"], "transformer.weight": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError) as info:
        build_model(R18.model_copy(update={"weights": str(path)}))
    assert str(path) in str(info.value)
