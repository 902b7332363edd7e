"""Global pooling layers for the re-ID head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GeM(nn.Module):
    """Generalised-mean pooling with a learnable exponent ``p`` (Radenovic et al., TPAMI 2019).

    ``y_c = (mean_{h,w} max(x_{c,h,w}, eps)^p)^(1/p)``, one ``p`` shared by all channels,
    initialised to ``p`` (3 in Cluster Contrast's ``GeneralizedMeanPoolingP``, eps 1e-6).
    ``p = 1`` is average pooling, ``p -> inf`` max pooling. The power is taken in float32
    even under autocast: ``eps^p`` underflows in float16 and ``0^(1/p)`` has an infinite
    derivative.
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        if p <= 0:
            raise ValueError(f"GeM exponent p must be > 0, got {p}")
        self.p = nn.Parameter(torch.ones(1) * p)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.p.float()
        x = x.float().clamp(min=self.eps).pow(p)
        return F.adaptive_avg_pool2d(x, 1).pow(1.0 / p)

    def extra_repr(self) -> str:
        return f"p={float(self.p.detach()):.4f}, eps={self.eps}"


def build_pooling(kind: str, gem_p: float = 3.0) -> nn.Module:
    """``gem`` -> :class:`GeM` (learnable p), ``avg`` -> global average pooling."""
    if kind == "gem":
        return GeM(gem_p)
    if kind == "avg":
        return nn.AdaptiveAvgPool2d(1)
    raise ValueError(f"unknown pooling {kind!r}; choose gem or avg")
