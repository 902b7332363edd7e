"""Query x gallery distances, computed block by block so the full matrix is never held.

Conventions (those of torchreid and Cluster Contrast):

- ``cosine``: ``1 - q_hat . g_hat`` with ``x_hat = x / ||x||`` (for L2-normalised features
  this is ``1 - q . g``); values in [0, 2].
- ``euclidean``: the *squared* Euclidean distance ``||q||^2 + ||g||^2 - 2 q . g`` (no
  square root, not clamped, as torchreid's ``euclidean_squared_distance`` and Cluster
  Contrast's ``pairwise_distance``). The square root would not change any ranking.

For L2-normalised features the two are proportional (``euclidean = 2 * cosine`` up to
rounding), so they give the same ranking.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from hcm.errors import HCMError

Metric = Literal["cosine", "euclidean"]
METRICS: tuple[str, ...] = ("cosine", "euclidean")


def as_feature_tensor(x: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
    """A 2-D floating tensor (kept on its device); integers and other shapes are refused."""
    t = torch.as_tensor(x) if isinstance(x, np.ndarray) else x
    if not isinstance(t, torch.Tensor):
        raise HCMError(f"{name} must be a numpy array or torch tensor of shape (N, d), got {type(x).__name__}")
    if t.dim() != 2:
        raise HCMError(f"{name} must have shape (N, d), got {tuple(t.shape)}")
    if not t.dtype.is_floating_point:
        raise HCMError(f"{name} must hold floating-point features, got dtype {t.dtype}")
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    return t


def check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise HCMError(f"unknown distance metric {metric!r}; use one of {', '.join(METRICS)}")


def prepare(x: torch.Tensor, metric: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Features ready for :func:`distance_block`: normalised (cosine) or with squared norms (euclidean)."""
    check_metric(metric)
    if metric == "cosine":
        return F.normalize(x, dim=1), None
    return x, (x * x).sum(1)


def distance_block(q: torch.Tensor, q_sq: torch.Tensor | None, g: torch.Tensor,
                   g_sq: torch.Tensor | None) -> torch.Tensor:
    """Distances between prepared rows ``q`` (C, d) and ``g`` (G, d); see :func:`prepare`."""
    if q_sq is None or g_sq is None:  # cosine
        return torch.addmm(torch.ones((), dtype=q.dtype, device=q.device), q, g.T, alpha=-1.0)
    return torch.addmm(q_sq[:, None] + g_sq[None, :], q, g.T, alpha=-2.0)


def pairwise_distance(qf: np.ndarray | torch.Tensor, gf: np.ndarray | torch.Tensor,
                      metric: Metric = "cosine") -> torch.Tensor:
    """Full (Q, G) distance matrix (for small sets and tests; large sets use :func:`iter_distance_blocks`)."""
    q = as_feature_tensor(qf, "query features")
    g = as_feature_tensor(gf, "gallery features")
    _check_dims(q, g)
    q, q_sq = prepare(q, metric)
    g, g_sq = prepare(g.to(q.device, q.dtype), metric)
    return distance_block(q, q_sq, g, g_sq)


def iter_distance_blocks(qf: torch.Tensor, gf: torch.Tensor, metric: Metric, rows: int,
                         device: torch.device) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(start, block)`` with ``block`` = distances of queries ``start:start+rows`` to all of ``gf``.

    The gallery is moved to ``device`` once; each query block is moved when needed.
    Memory: the gallery plus one (rows, G) block.
    """
    _check_dims(qf, gf)
    g, g_sq = prepare(gf.to(device), metric)
    for start in range(0, qf.shape[0], rows):
        q, q_sq = prepare(qf[start : start + rows].to(device, g.dtype), metric)
        yield start, distance_block(q, q_sq, g, g_sq)


def _check_dims(q: torch.Tensor, g: torch.Tensor) -> None:
    if q.shape[1] != g.shape[1]:
        raise HCMError(f"query features have dimension {q.shape[1]} but gallery features {g.shape[1]}; "
                       "extract both with the same model")
