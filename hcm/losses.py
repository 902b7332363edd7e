"""HCM's losses (method.md, "Losses"): the dynamic contrast loss and the sample constraint loss.

Pure functions of tensors. ``q`` is the batch of L2-normalised embeddings (B, d); the
memories are read, never written, here (see :mod:`hcm.memory`). Similarities and
softmaxes are computed in float32 at least (float64 inputs stay float64), with autocast
off, so the losses are the same under AMP.

The loss forms are this project's reading of the HCM abstract (the paper's equations
were not available); every choice is a named option of the loss terms that use these
functions (:mod:`hcm.terms.identity`, :mod:`hcm.terms.image`), which the trainer composes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

from hcm.registry import Registry


@dataclass(frozen=True)
class FactorInputs:
    """What a dynamic factor sees, all detached: the anchors' logits over every identity
    (``q . c_k / tau``, (B, K)), their targets (B,) and target probabilities ``p`` (B,).

    The negatives' logits are ``logits`` without the target column: a reading that weighs
    hard negatives (e.g. by the largest negative logit) uses them.
    """

    logits: torch.Tensor
    targets: torch.Tensor
    p: torch.Tensor

    def negative_logits(self) -> torch.Tensor:
        """``logits`` with each row's target entry set to -inf (B, K)."""
        return self.logits.scatter(1, self.targets[:, None], float("-inf"))


class DynamicFactor(Protocol):
    """``delta = factor(inputs, gamma=gamma)``: per-anchor weights (B,) from :class:`FactorInputs`.

    The factor sees the WHOLE batch (also under gradient accumulation), so a batch
    normaliser (as focal's mean) is the whole batch's.
    """

    def __call__(self, inputs: FactorInputs, *, gamma: float) -> torch.Tensor: ...


#: dynamic factor forms ``delta = factor(inputs, gamma=...)`` (``loss.terms.identity.factor``)
DYNAMIC_FACTORS: Registry[DynamicFactor] = Registry("dynamic factor")


@DYNAMIC_FACTORS.register("focal")
def focal_factor(inputs: FactorInputs, *, gamma: float) -> torch.Tensor:
    """``delta_i = (1 - p_i)^gamma / mean_j (1 - p_j)^gamma``, detached (method.md, "Losses").

    Hard samples (low p) weigh more, easy ones less; the batch mean of delta is 1. If
    every ``(1 - p)^gamma`` is 0 (all p = 1; the loss is 0 anyway) the factor is all ones.
    ``gamma = 0`` gives all ones.
    """
    w = (1.0 - inputs.p.detach()).clamp_min(0.0).pow(gamma)
    mean = w.mean()
    tiny = torch.finfo(w.dtype).tiny
    return torch.where(mean > 0, w / mean.clamp_min(tiny), torch.ones_like(w))


@DYNAMIC_FACTORS.register("none")
def no_factor(inputs: FactorInputs, *, gamma: float) -> torch.Tensor:
    """``delta_i = 1``: L_id becomes Cluster Contrast's ClusterNCE."""
    return torch.ones_like(inputs.p.detach())


def _compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    dtype = torch.float32
    for t in tensors:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def _no_autocast(device: torch.device) -> torch.autocast:
    return torch.autocast(device_type=device.type, enabled=False)


def dynamic_contrast_terms(q: torch.Tensor, centroids: torch.Tensor, targets: torch.Tensor, *,
                           tau: float, factor: str = "focal", gamma: float = 2.0
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(L_id, delta, p)``: the loss of :func:`dynamic_contrast_loss` and its per-anchor parts."""
    if q.ndim != 2 or centroids.ndim != 2 or q.shape[1] != centroids.shape[1]:
        raise ValueError(f"q {tuple(q.shape)} and centroids {tuple(centroids.shape)} must be (B, d), (K, d)")
    targets = targets.to(device=q.device, dtype=torch.long)
    if targets.shape != (q.shape[0],):
        raise ValueError(f"targets {tuple(targets.shape)} must be (B,) for q {tuple(q.shape)}")
    if q.shape[0] and (int(targets.min()) < 0 or int(targets.max()) >= centroids.shape[0]):
        raise ValueError(f"targets must lie in [0, {centroids.shape[0]}) (no outliers as anchors)")
    form = DYNAMIC_FACTORS.get(factor)
    dtype = _compute_dtype(q, centroids)
    with _no_autocast(q.device):
        logits = q.to(dtype) @ centroids.to(device=q.device, dtype=dtype).t() / tau
        log_p = F.log_softmax(logits, dim=1).gather(1, targets[:, None]).squeeze(1)
        p = log_p.detach().exp()
        delta = form(FactorInputs(logits.detach(), targets, p), gamma=gamma).detach()
        loss = -(delta * log_p).mean()
    return loss, delta, p


def dynamic_contrast_loss(q: torch.Tensor, centroids: torch.Tensor, targets: torch.Tensor, *,
                          tau: float, factor: str = "focal", gamma: float = 2.0) -> torch.Tensor:
    """Identity-level dynamic contrast loss (method.md, "Losses", L_id).

    ``p_i = softmax_k(q_i . c_k / tau)[y_i]``, ``L_id = (1/B) sum_i -delta_i log p_i`` with
    ``delta = DYNAMIC_FACTORS[factor](p, gamma=gamma)`` detached. ``factor="none"`` is
    Cluster Contrast's ClusterNCE. Gradient flows to ``q`` only (centroids are memory).
    """
    return dynamic_contrast_terms(q, centroids, targets, tau=tau, factor=factor, gamma=gamma)[0]


def sample_constraint_terms(q: torch.Tensor, memory_features: torch.Tensor, memory_labels: torch.Tensor,
                            anchor_indices: torch.Tensor, anchor_labels: torch.Tensor, *,
                            tau_v: float, n_neg: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(L_img, has_positive)``: the loss of :func:`sample_constraint_loss` and which anchors count."""
    if q.ndim != 2 or memory_features.ndim != 2 or q.shape[1] != memory_features.shape[1]:
        raise ValueError(f"q {tuple(q.shape)} and memory {tuple(memory_features.shape)} must be (B, d), (N, d)")
    if n_neg <= 0:
        raise ValueError(f"n_neg must be > 0, got {n_neg}")
    n = memory_features.shape[0]
    dev = q.device
    memory_labels = memory_labels.to(device=dev, dtype=torch.long)
    anchor_indices = anchor_indices.to(device=dev, dtype=torch.long)
    anchor_labels = anchor_labels.to(device=dev, dtype=torch.long)
    if memory_labels.shape != (n,):
        raise ValueError(f"memory_labels {tuple(memory_labels.shape)} must be ({n},)")
    if anchor_indices.shape != (q.shape[0],) or anchor_labels.shape != (q.shape[0],):
        raise ValueError("anchor_indices and anchor_labels must be (B,) like q's rows")
    if q.shape[0] and int(anchor_labels.min()) < 0:
        raise ValueError("anchor_labels must be >= 0: outliers (-1) are not anchors")
    dtype = _compute_dtype(q, memory_features)
    with _no_autocast(dev):
        sim = q.to(dtype) @ memory_features.to(device=dev, dtype=dtype).t()  # (B, N)
        same = memory_labels[None, :] == anchor_labels[:, None]
        is_self = torch.arange(n, device=dev)[None, :] == anchor_indices[:, None]
        pos_mask = same & ~is_self
        has_pos = pos_mask.any(dim=1)
        hardest_pos = sim.masked_fill(~pos_mask, float("inf")).min(dim=1).values
        hardest_pos = torch.where(has_pos, hardest_pos, torch.zeros_like(hardest_pos))
        # different label (outliers included); -inf entries (too few negatives) add exp(-inf) = 0
        neg_sim = sim.masked_fill(same | is_self, float("-inf"))
        hard_neg = neg_sim.topk(min(n_neg, n), dim=1).values
        logits = torch.cat([hardest_pos[:, None], hard_neg], dim=1) / tau_v
        per_anchor = torch.logsumexp(logits, dim=1) - logits[:, 0]
        if bool(has_pos.any()):
            loss = per_anchor[has_pos].mean()
        else:
            loss = (q.to(dtype) * 0.0).sum()  # zero, but part of the graph
    return loss, has_pos


def sample_constraint_loss(q: torch.Tensor, memory_features: torch.Tensor, memory_labels: torch.Tensor,
                           anchor_indices: torch.Tensor, anchor_labels: torch.Tensor, *,
                           tau_v: float, n_neg: int) -> torch.Tensor:
    """Image-level sample constraint loss (method.md, "Losses", L_img).

    For anchor i (memory slot ``anchor_indices[i]``, label ``anchor_labels[i]``):
    ``s_i+ = min q_i . v_j`` over slots j != i with the same label (hardest positive);
    ``H_i`` = the ``n_neg`` largest ``q_i . v_j`` over slots with another label, outliers
    (-1) included (all of them if fewer exist);
    ``l_i = -log(exp(s_i+/tau_v) / (exp(s_i+/tau_v) + sum_{j in H_i} exp(q_i . v_j/tau_v)))``.
    The loss is the mean of ``l_i`` over anchors that have a positive (anchors alone in
    their cluster are skipped); with none, a zero that is still in ``q``'s graph.
    """
    return sample_constraint_terms(q, memory_features, memory_labels, anchor_indices, anchor_labels,
                                   tau_v=tau_v, n_neg=n_neg)[0]
