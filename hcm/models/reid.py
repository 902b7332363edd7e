"""The re-ID network: torchvision ResNet trunk, last stride 1, GeM/avg pooling, BN neck.

Module names of the trunk are torchvision's (``conv1``, ``bn1``, ``layer1`` ... ``layer4``),
so a torchvision ResNet state_dict loads into it key for key; the head adds ``pool``
(GeM's ``pool.p``), ``bn_neck`` and, for supervised pretraining, ``classifier``.
This is the architecture of Cluster Contrast's ``ResNet`` with ``num_features=0``
(method.md, "Defaults for the real datasets").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from hcm.config import ModelConfig
from hcm.models.pooling import build_pooling

#: output width of each supported trunk (``fc.in_features`` of the torchvision model)
FEAT_DIMS: dict[str, int] = {"resnet18": 512, "resnet34": 512, "resnet50": 2048}

#: state_dict key prefixes of each part of :class:`ReIDModel`
TRUNK_PREFIXES: tuple[str, ...] = ("conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "layer4.")
HEAD_PREFIXES: tuple[str, ...] = ("pool.", "bn_neck.")
CLASSIFIER_PREFIX = "classifier."


def key_part(key: str) -> str:
    """Which part of the model a state_dict key belongs to: trunk, head, classifier or other."""
    if key.startswith(TRUNK_PREFIXES):
        return "trunk"
    if key.startswith(HEAD_PREFIXES):
        return "head"
    if key.startswith(CLASSIFIER_PREFIX):
        return "classifier"
    return "other"


def set_last_stride(layer4: nn.Sequential, stride: int) -> None:
    """Set the stride of the first block of ``layer4`` (its strided conv and its downsample).

    Works for BasicBlock (stride on ``conv1``) and torchvision's Bottleneck (stride on
    ``conv2``, ResNet v1.5), as Cluster Contrast does for ResNet-50.
    """
    block = layer4[0]
    changed = 0
    for module in block.modules():
        if isinstance(module, nn.Conv2d) and module.stride != (1, 1):
            module.stride = (stride, stride)
            changed += 1
    if changed != 2:  # the strided 3x3 conv and the 1x1 downsample
        raise RuntimeError(f"expected 2 strided convs in layer4[0], found {changed}")


class ReIDModel(nn.Module):
    """ResNet trunk + pooling + BatchNorm neck (bias frozen); see :func:`hcm.models.build_model`.

    ``forward(x)`` returns the L2-normalised BN-neck embedding ``(B, feat_dim)`` in both
    train and eval mode (eval mode uses the BN running statistics).
    """

    def __init__(self, cfg: ModelConfig, num_classes: int = 0) -> None:
        super().__init__()
        if cfg.arch not in FEAT_DIMS:
            raise ValueError(f"unsupported arch {cfg.arch!r}; choose one of {', '.join(FEAT_DIMS)}")
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        self.config = cfg.model_copy()
        self.num_classes = int(num_classes)
        self.feat_dim = FEAT_DIMS[cfg.arch]

        resnet = getattr(torchvision.models, cfg.arch)(weights=None)
        if cfg.last_stride != 2:
            set_last_stride(resnet.layer4, cfg.last_stride)
        self.conv1 = resnet.conv1
        self.bn1 = resnet.bn1
        self.relu = resnet.relu
        self.maxpool = resnet.maxpool
        self.layer1 = resnet.layer1
        self.layer2 = resnet.layer2
        self.layer3 = resnet.layer3
        self.layer4 = resnet.layer4

        self.pool = build_pooling(cfg.pooling, cfg.gem_p)
        self.bn_neck = nn.BatchNorm1d(self.feat_dim)
        nn.init.constant_(self.bn_neck.weight, 1.0)
        nn.init.constant_(self.bn_neck.bias, 0.0)
        self.bn_neck.bias.requires_grad_(False)

        self.classifier: nn.Linear | None = None
        if num_classes > 0:
            self.classifier = nn.Linear(self.feat_dim, num_classes, bias=False)
            nn.init.normal_(self.classifier.weight, std=0.001)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map of ``layer4``: ``(B, feat_dim, H/16, W/16)`` with last stride 1."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

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
