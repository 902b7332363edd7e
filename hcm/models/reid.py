"""The re-ID network: torchvision trunk (ResNet, optionally narrowed; ShuffleNet V2), last
stride 1, GeM/avg pooling, BN neck.

Module names of the trunk are torchvision's (``conv1``, ``bn1``, ``layer1`` ... ``layer4``),
so a torchvision ResNet state_dict loads into it key for key; the head adds ``pool``
(GeM's ``pool.p``), ``bn_neck`` and, for supervised pretraining, ``classifier``.
This is the architecture of Cluster Contrast's ``ResNet`` with ``num_features=0``
(method.md, "Defaults for the real datasets").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from hcm.config import ModelConfig
from hcm.models.pooling import build_pooling
from hcm.registry import Registry


@dataclass(frozen=True)
class TrunkSpec:
    """A classification network used as a re-ID trunk (a backbone), registered in :data:`BACKBONES`.

    ``modules`` are the names of its children run in order (torchvision's names, so its
    state_dict loads key for key); ``last_stage`` is the stage whose first block's stride
    ``last_stride`` sets; ``feat_dim`` is the width of the trunk's output (at
    ``model.width`` 64). ``build(width)`` returns the network (an ``nn.Module`` with the
    named children); None = torchvision's network of the registered name (a narrowed
    ResNet when ``width`` is not 64).
    """

    modules: tuple[str, ...]
    last_stage: str
    feat_dim: int
    build: Callable[[int], nn.Module] | None = None


_RESNET = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
_SHUFFLENET = ("conv1", "maxpool", "stage2", "stage3", "stage4", "conv5")

#: backbones by ``model.arch``: torchvision ResNets (the paper's family) and ShuffleNet V2 (a light
#: torchvision network for the CPU-sized synthetic recipe); add your own with :func:`register_backbone`
BACKBONES: Registry[TrunkSpec] = Registry("backbone (model.arch)")
#: the backbones (read-only view kept for older code)
TRUNKS = BACKBONES


def register_backbone(name: str, spec: TrunkSpec) -> TrunkSpec:
    """Register ``spec`` as backbone ``name`` (``model.arch: name``)."""
    return BACKBONES.register(name)(spec)


for _name, _spec in (
    ("resnet18", TrunkSpec(_RESNET, "layer4", 512)),
    ("resnet34", TrunkSpec(_RESNET, "layer4", 512)),
    ("resnet50", TrunkSpec(_RESNET, "layer4", 2048)),
    ("shufflenet_v2_x0_5", TrunkSpec(_SHUFFLENET, "stage4", 1024)),
    ("shufflenet_v2_x1_0", TrunkSpec(_SHUFFLENET, "stage4", 1024)),
):
    register_backbone(_name, _spec)
#: output width of each built-in backbone (at ``model.width`` 64)
FEAT_DIMS: dict[str, int] = {arch: BACKBONES.get(arch).feat_dim for arch in BACKBONES}

#: ResNet depth -> (residual block, blocks per stage), as in torchvision
_RESNET_LAYOUT: dict[str, tuple[type[nn.Module], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}


def feat_dim(arch: str, width: int = 64) -> int:
    """Output width of the trunk ``arch`` whose first ResNet stage has ``width`` channels."""
    return BACKBONES.get(arch).feat_dim * width // 64


def narrow_resnet(arch: str, width: int) -> nn.Module:
    """A ResNet of torchvision's depth and blocks whose stages have ``width`` x (1, 2, 4, 8) channels.

    Built from torchvision's public ``BasicBlock``/``Bottleneck`` the way
    ``torchvision.models.ResNet`` builds its stages (a 1x1 conv + BN shortcut where the
    shape changes) and initialised as torchvision does (Kaiming-normal convs, BN weight 1,
    bias 0). Children carry torchvision's names (``conv1``, ``bn1``, ``relu``, ``maxpool``,
    ``layer1`` ... ``layer4``); ``width=64`` gives torchvision's network layer for layer.
    """
    block, counts = _RESNET_LAYOUT[arch]
    expansion = block.expansion
    net = nn.Module()
    net.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
    net.bn1 = nn.BatchNorm2d(width)
    net.relu = nn.ReLU(inplace=True)
    net.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
    inplanes = width
    for i, count in enumerate(counts):
        planes, stride = width * 2**i, (1 if i == 0 else 2)
        shortcut = None
        if stride != 1 or inplanes != planes * expansion:
            shortcut = nn.Sequential(
                nn.Conv2d(inplanes, planes * expansion, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * expansion),
            )
        blocks = [block(inplanes, planes, stride, shortcut)]
        inplanes = planes * expansion
        blocks += [block(inplanes, planes) for _ in range(count - 1)]
        setattr(net, f"layer{i + 1}", nn.Sequential(*blocks))
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.constant_(module.weight, 1)
            nn.init.constant_(module.bias, 0)
    return net

HEAD_PREFIXES: tuple[str, ...] = ("pool.", "bn_neck.")
CLASSIFIER_PREFIX = "classifier."


def key_part(key: str, arch: str) -> str:
    """Which part of an ``arch`` model a state_dict key belongs to: trunk, head, classifier or other."""
    if key.startswith(tuple(f"{m}." for m in BACKBONES.get(arch).modules)):
        return "trunk"
    if key.startswith(HEAD_PREFIXES):
        return "head"
    if key.startswith(CLASSIFIER_PREFIX):
        return "classifier"
    return "other"


def set_last_stride(stage: nn.Sequential, stride: int) -> None:
    """Set the stride of the first block of the last stage (both of its strided convs).

    ResNet: the strided 3x3 conv (``conv1`` of BasicBlock, ``conv2`` of torchvision's
    Bottleneck, v1.5) and the 1x1 downsample, as Cluster Contrast does for ResNet-50;
    ShuffleNet V2: the depthwise convs of its two branches.
    """
    block = stage[0]
    changed = 0
    for module in block.modules():
        if isinstance(module, nn.Conv2d) and module.stride != (1, 1):
            module.stride = (stride, stride)
            changed += 1
    if changed != 2:
        raise RuntimeError(f"expected 2 strided convs in the first block of the last stage, found {changed}")


class ReIDModel(nn.Module):
    """Trunk + pooling + BatchNorm neck (bias frozen); see :func:`hcm.models.build_model`.

    ``forward(x)`` returns the L2-normalised BN-neck embedding ``(B, feat_dim)`` in both
    train and eval mode (eval mode uses the BN running statistics).
    """

    def __init__(self, cfg: ModelConfig, num_classes: int = 0) -> None:
        super().__init__()
        if cfg.arch not in BACKBONES:
            raise ValueError(f"unsupported arch {cfg.arch!r}; choose one of {', '.join(BACKBONES.names())} "
                             "(a backbone of your own: list its module under plugins)")
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        self.config = cfg.model_copy()
        self.num_classes = int(num_classes)
        self.feat_dim = feat_dim(cfg.arch, cfg.width)

        spec = BACKBONES.get(cfg.arch)
        self.trunk_modules = spec.modules
        if spec.build is not None:
            net = spec.build(cfg.width)
        elif cfg.width == 64:
            net = getattr(torchvision.models, cfg.arch)(weights=None)
        else:
            net = narrow_resnet(cfg.arch, cfg.width)
        if cfg.last_stride != 2:
            set_last_stride(getattr(net, spec.last_stage), cfg.last_stride)
        for name in spec.modules:
            setattr(self, name, getattr(net, name))

        self.pool = build_pooling(cfg.pooling, cfg.gem_p)
        self.bn_neck = nn.BatchNorm1d(self.feat_dim)
        nn.init.constant_(self.bn_neck.weight, 1.0)
        nn.init.constant_(self.bn_neck.bias, 0.0)
        self.bn_neck.bias.requires_grad_(False)

        self.classifier: nn.Linear | None = None
        if num_classes > 0:
            self.classifier = nn.Linear(self.feat_dim, num_classes, bias=False)
            nn.init.normal_(self.classifier.weight, std=0.001)
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.to(memory_format=self.memory_format)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map of the last stage: ``(B, feat_dim, H/16, W/16)`` with last stride 1."""
        x = x.contiguous(memory_format=self.memory_format)
        for name in self.trunk_modules:
            x = getattr(self, name)(x)
        return x

    def key_part(self, key: str) -> str:
        """Which part of this model a state_dict key belongs to (see :func:`key_part`)."""
        return key_part(key, self.config.arch)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(pooled pre-BN feature, BN-neck feature)``, both ``(B, feat_dim)``, not normalised.

        For supervised pretraining: triplet loss on the first, cross-entropy on
        ``logits(second)``.
        """
        pooled = self.pool(self.trunk(x)).flatten(1)
        return pooled, self.bn_neck(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, bn = self.forward_features(x)
        return F.normalize(bn, dim=1)

    def logits(self, bn_feat: torch.Tensor) -> torch.Tensor:
        """Identity logits of the classifier (bias-free linear layer on the BN-neck feature)."""
        if self.classifier is None:
            raise RuntimeError("this model has no classifier; build it with num_classes > 0")
        return self.classifier(bn_feat)
