"""Model weights: offline ImageNet weights from the torch hub cache, checkpoint files.

Accepted by ``model.weights`` (see :func:`hcm.models.build_model`):

- ``imagenet``: torchvision's ``IMAGENET1K_V1`` weights of the arch (what
  ``pretrained=True`` gave Cluster Contrast), read ONLY from
  ``torch.hub.get_dir()/checkpoints/<file name of the weights URL>``. Nothing is downloaded:
  a missing file is a :class:`CheckpointError` naming the path and the URL.
- ``none``: random initialisation.
- a path: a file written by :func:`save_weights` / the trainer (a dict whose ``"model"``
  holds a state_dict), a Cluster Contrast checkpoint (``"state_dict"``, keys ``base.N.``,
  ``feat_bn.``, ``gap.p``, optional ``module.`` prefix), or a plain state_dict with
  torchvision ResNet keys or ours.

Loading is strict on the trunk (every ResNet key present with the right shape); the
head (``pool.p``, ``bn_neck.*``) is loaded when the file has it; a classifier is loaded
only when the model has one of the same shape, otherwise ignored and reported;
torchvision's ``fc.*`` is ignored; any other key is an error.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
import torchvision

from hcm.errors import CheckpointError
from hcm.models.reid import ReIDModel
from hcm.utils.io import atomic_path

logger = logging.getLogger(__name__)

#: value of the ``"format"`` key of files written by :func:`save_weights`
WEIGHTS_FORMAT = "hcm-weights/1"
_RESERVED = ("format", "model", "model_config", "num_classes")

#: torchvision weights enum entry used for ``weights: imagenet``, per arch
IMAGENET_WEIGHTS: dict[str, str] = {
    "resnet18": "ResNet18_Weights.IMAGENET1K_V1",
    "resnet34": "ResNet34_Weights.IMAGENET1K_V1",
    "resnet50": "ResNet50_Weights.IMAGENET1K_V1",
    "shufflenet_v2_x0_5": "ShuffleNet_V2_X0_5_Weights.IMAGENET1K_V1",
    "shufflenet_v2_x1_0": "ShuffleNet_V2_X1_0_Weights.IMAGENET1K_V1",
}

# Cluster Contrast's ResNet wraps the trunk as ``base = Sequential(conv1, bn1, relu,
# maxpool, layer1..4)``, names the neck ``feat_bn`` and GeM ``gap``.
_CLUSTER_CONTRAST_KEYS: tuple[tuple[str, str], ...] = (
    ("base.0.", "conv1."), ("base.1.", "bn1."), ("base.4.", "layer1."), ("base.5.", "layer2."),
    ("base.6.", "layer3."), ("base.7.", "layer4."), ("feat_bn.", "bn_neck."), ("gap.", "pool."),
)


# ---------------------------------------------------------------- ImageNet cache


def imagenet_weights_location(arch: str) -> tuple[Path, str]:
    """``(path in the torch hub cache, download URL)`` of the ImageNet weights of ``arch``."""
    try:
        enum_name, member = IMAGENET_WEIGHTS[arch].split(".")
    except KeyError:
        raise CheckpointError(
            f"no ImageNet weights known for arch {arch!r}; use one of {', '.join(IMAGENET_WEIGHTS)}"
        ) from None
    url = getattr(getattr(torchvision.models, enum_name), member).url
    filename = os.path.basename(urlparse(url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename, url


def load_imagenet_state_dict(arch: str) -> dict[str, torch.Tensor]:
    """The torchvision ImageNet state_dict of ``arch`` from the local cache; never downloads."""
    path, url = imagenet_weights_location(arch)
    if not path.is_file():
        raise CheckpointError(
            f"{path}: ImageNet weights for {arch} are not in the torch hub cache and this "
            f"machine works offline. On a machine with internet download {url} "
            f"(e.g. `curl -LO {url}`) and copy the file to exactly {path} "
            "(the folder follows $TORCH_HOME; default ~/.cache/torch/hub/checkpoints), "
            "or set model.weights to a local checkpoint path or to 'none'"
        )
    obj = _torch_load(path)
    return extract_state_dict(obj, path)


# ---------------------------------------------------------------- files


def _torch_load(path: Path) -> Any:
    if not path.exists():
        raise CheckpointError(f"{path}: weights file not found; check model.weights (or the path given)")
    if not path.is_file():
        raise CheckpointError(f"{path}: is not a file; model.weights must name a checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, not a torch file, disallowed pickle content
        raise CheckpointError(
            f"{path}: cannot read as a PyTorch weights file ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); the file is truncated, corrupt or "
            "not a checkpoint: copy or download it again"
        ) from None


def save_weights(model: ReIDModel, path: str | os.PathLike[str], extra: dict[str, Any] | None = None) -> Path:
    """Write ``{"format", "model": state_dict (CPU), "model_config", "num_classes", **extra}``.

    The file is written atomically. ``extra`` must hold only tensors, containers and
    plain Python values (the file is read back with ``torch.load(weights_only=True)``)
    and must not use the reserved keys ``format``, ``model``, ``model_config``,
    ``num_classes``.
    """
    extra = dict(extra or {})
    clash = sorted(set(extra) & set(_RESERVED))
    if clash:
        raise ValueError(f"save_weights: extra uses reserved keys {clash}")
    payload: dict[str, Any] = {
        "format": WEIGHTS_FORMAT,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "model_config": model.config.model_dump(mode="json"),
        "num_classes": model.num_classes,
        **extra,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_weights(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a weights/checkpoint file to a dict (tensors on CPU); errors name the file."""
    path = Path(path)
    obj = _torch_load(path)
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"{path}: expected a dict (a checkpoint or a state_dict), found {type(obj).__name__}"
        )
    return obj


# ---------------------------------------------------------------- state dicts


def _map_cluster_contrast(key: str) -> str:
    for old, new in _CLUSTER_CONTRAST_KEYS:
        if key.startswith(old):
            return new + key[len(old):]
    return key


def extract_state_dict(obj: Any, source: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The model state_dict inside a loaded file, with keys in :class:`ReIDModel` naming.

    Accepts ``{"model": sd}`` (ours), ``{"state_dict": sd}`` (Cluster Contrast) or ``sd``;
    strips a ``module.`` (DataParallel) prefix and maps Cluster Contrast's names.
    """
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        sd = obj["model"]
    elif isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        sd = obj["state_dict"]
    else:
        sd = obj
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(
            f"{source}: no model state_dict found (expected a dict of tensors, or a dict with "
            "key 'model' or 'state_dict' holding one); is this a model checkpoint?"
        )
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        key = key.removeprefix("module.")
        if key.startswith(("base.", "feat_bn.", "gap.")):
            key = _map_cluster_contrast(key)
        out[key] = value
    return out


@dataclass
class LoadReport:
    """What :func:`load_state_into` did with each key of the file."""

    loaded: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    kept_init: list[str] = field(default_factory=list)


def _shorten(keys: list[str], n: int = 5) -> str:
    return ", ".join(keys[:n]) + (f", ... ({len(keys)} in all)" if len(keys) > n else "")


def load_state_into(model: ReIDModel, state: dict[str, torch.Tensor], source: str | os.PathLike[str]) -> LoadReport:
    """Load ``state`` (already in our key naming) into ``model`` per the rules of the module doc."""
    own = model.state_dict()
    report = LoadReport()
    unknown = sorted(k for k in state if model.key_part(k) == "other" and not k.startswith("fc."))
    if unknown:
        raise CheckpointError(
            f"{source}: keys that belong to no part of a {model.config.arch} re-ID model: "
            f"{_shorten(unknown)}; is this a checkpoint of another kind of network?"
        )
    trunk_keys = [k for k in own if model.key_part(k) == "trunk"]
    missing = [k for k in trunk_keys if k not in state and not k.endswith("num_batches_tracked")]
    extra_trunk = sorted(k for k in state if model.key_part(k) == "trunk" and k not in own)
    if missing or extra_trunk:
        raise CheckpointError(
            f"{source}: does not match the {model.config.arch} trunk (missing: "
            f"{_shorten(missing) or 'none'}; unexpected: {_shorten(extra_trunk) or 'none'}); "
            "set model.arch to the architecture the file was saved from"
        )
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in trunk_keys if k in state and state[k].shape != own[k].shape
    ]
    if mismatched:
        raise CheckpointError(
            f"{source}: tensor shapes differ from the {model.config.arch} trunk: "
            f"{_shorten(mismatched)}; set model.arch to the architecture the file was saved from"
        )
    new_state = dict(own)
    for key, value in state.items():
        part = model.key_part(key)
        if part == "trunk":
            new_state[key] = value
            report.loaded.append(key)
        elif key in own and own[key].shape == value.shape:  # head or classifier
            new_state[key] = value
            report.loaded.append(key)
        elif part == "head" and key in own:
            raise CheckpointError(
                f"{source}: {key} has shape {tuple(value.shape)}, the model expects "
                f"{tuple(own[key].shape)}; set model.arch to the architecture the file was saved from"
            )
        else:  # fc.*, a classifier the model lacks or of another size, pool.p for avg pooling
            report.ignored.append(key)
    report.kept_init = sorted(k for k in own if model.key_part(k) != "trunk" and k not in report.loaded)
    model.load_state_dict(new_state, strict=True)
    if report.ignored:
        logger.info("%s: ignored keys not used by this model: %s", source, _shorten(report.ignored))
    head_kept = [k for k in report.kept_init if model.key_part(k) == "head"]
    if head_kept and any(model.key_part(k) == "head" for k in state):
        logger.warning("%s: the file has a re-ID head but not %s; those keep their initial values",
                       source, _shorten(head_kept))
    return report


def check_saved_config(obj: dict[str, Any], model: ReIDModel, source: str | os.PathLike[str]) -> None:
    """Compare the ModelConfig stored by :func:`save_weights` with the model's; arch must agree."""
    saved = obj.get("model_config") if isinstance(obj, dict) else None
    if not isinstance(saved, dict):
        return
    cfg = model.config
    if saved.get("arch") != cfg.arch:
        raise CheckpointError(
            f"{source}: saved from arch {saved.get('arch')!r} but model.arch is {cfg.arch!r}; "
            f"set model.arch={saved.get('arch')}"
        )
    for name in ("pooling", "last_stride"):
        if name in saved and saved[name] != getattr(cfg, name):
            logger.warning("%s: saved with model.%s=%r, building with %r", source, name,
                           saved[name], getattr(cfg, name))


def apply_weights(model: ReIDModel, spec: str) -> LoadReport | None:
    """Initialise ``model`` from ``spec`` (``imagenet``, ``none`` or a file path)."""
    if spec.lower() == "none":
        return None
    if spec.lower() == "imagenet":
        path, _ = imagenet_weights_location(model.config.arch)
        return load_state_into(model, load_imagenet_state_dict(model.config.arch), path)
    path = Path(spec).expanduser()
    obj = load_weights(path)
    check_saved_config(obj, model, path)
    return load_state_into(model, extract_state_dict(obj, path), path)
