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
    tau: float = 1.0  # L_id's temperature: ``logits * tau`` are the cosine similarities q . c_k

    def negative_logits(self) -> torch.Tensor:
        """``logits`` with each row's target entry set to -inf (B, K)."""
        return self.logits.scatter(1, self.targets[:, None], float("-inf"))

    def similarities(self) -> torch.Tensor:
        """The cosine similarities ``q_i . c_k`` (B, K)."""
        return self.logits * self.tau


@dataclass(frozen=True)
class FactorWeights:
    """What a reading returns when it reweighs more than whole anchors (method.md, "Readings").

    ``anchor``: delta (B,), multiplying each anchor's ``-log p``; ``negatives``: weights
    w (B, K) on the non-target terms of each anchor's softmax denominator (the target
    column is ignored), or None for all ones. Both are detached by the loss.
    """

    anchor: torch.Tensor
    negatives: torch.Tensor | None = None


class DynamicFactor(Protocol):
    """``delta = factor(inputs, gamma=gamma)``: per-anchor weights (B,) from :class:`FactorInputs`,
    or a :class:`FactorWeights` (anchor and negative weights).

    The factor sees the WHOLE batch (also under gradient accumulation), so a batch
    normaliser (as focal's mean) is the whole batch's.
    """

    def __call__(self, inputs: FactorInputs, *, gamma: float) -> torch.Tensor | FactorWeights: ...


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


@DYNAMIC_FACTORS.register("focal_raw")
def focal_raw_factor(inputs: FactorInputs, *, gamma: float) -> torch.Tensor:
    """``delta_i = (1 - p_i)^gamma``, detached, NOT divided by its batch mean (method.md, "Readings").

    The focal-loss weight of Lin et al. (ICCV 2017) applied to the identity-level softmax.
    Every weight is at most 1, so L_id's gradient shrinks against ClusterNCE's instead of
    growing as under ``focal``'s normalisation. ``gamma = 0`` gives all ones.
    """
    return (1.0 - inputs.p.detach()).clamp_min(0.0).pow(gamma)


@DYNAMIC_FACTORS.register("hard_negatives")
def hard_negatives_factor(inputs: FactorInputs, *, gamma: float) -> FactorWeights:
    """Negative-side hardness (method.md, "Readings"): delta = 1, and each non-target centroid k of
    anchor i weighs ``w_ik = exp(gamma s_ik) / mean_{j != y_i} exp(gamma s_ij)`` in the softmax
    denominator, with ``s_ik = q_i . c_k`` (detached; mean 1 over each anchor's negatives).

    The importance weights of Robinson et al. (ICLR 2021, "hard negative samples") on the
    identity-level softmax; ``gamma`` plays their beta. ``gamma = 0`` is ClusterNCE.
    """
    sims = inputs.similarities().detach()
    is_target = torch.zeros_like(sims, dtype=torch.bool).scatter(1, inputs.targets[:, None], True)
    scaled = (gamma * sims).masked_fill(is_target, float("-inf"))
    n_neg = sims.shape[1] - 1
    # exp(gamma s_ik) / mean_j exp(gamma s_ij) = n_neg * softmax over the negatives (stable for any gamma)
    w = torch.softmax(scaled, dim=1) * n_neg if n_neg > 0 else torch.ones_like(sims)
    return FactorWeights(torch.ones_like(inputs.p.detach()), w.masked_fill(is_target, 1.0))


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


@dataclass(frozen=True)
class IdentityParts:
    """L_id of a batch and its parts (all but ``loss`` detached): delta (B,), p (B,), the negatives'
    weights (B, K; None = all ones) and the effective gradient scale (:func:`effective_gradient_scale`)."""

    loss: torch.Tensor
    delta: torch.Tensor
    p: torch.Tensor
    negative_weights: torch.Tensor | None
    grad_scale: torch.Tensor


def dynamic_contrast_terms(q: torch.Tensor, centroids: torch.Tensor, targets: torch.Tensor, *,
                           tau: float, factor: str = "focal", gamma: float = 2.0
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(L_id, delta, p)``: the loss of :func:`dynamic_contrast_loss` and its per-anchor parts."""
    parts = identity_parts(q, centroids, targets, tau=tau, factor=factor, gamma=gamma)
    return parts.loss, parts.delta, parts.p


def identity_parts(q: torch.Tensor, centroids: torch.Tensor, targets: torch.Tensor, *,
                   tau: float, factor: str = "focal", gamma: float = 2.0) -> IdentityParts:
    """L_id (method.md, "Losses" and "Readings") with its factor, target probabilities and gradient scale."""
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
        centroids = centroids.to(device=q.device, dtype=dtype)
        logits = q.to(dtype) @ centroids.t() / tau
        log_p = F.log_softmax(logits, dim=1).gather(1, targets[:, None]).squeeze(1)
        p = log_p.detach().exp()
        out = form(FactorInputs(logits.detach(), targets, p, tau), gamma=gamma)
        weights = out if isinstance(out, FactorWeights) else FactorWeights(out)
        delta = weights.anchor.detach()
        neg_w = None if weights.negatives is None else weights.negatives.detach().to(dtype)
        log_p_loss = log_p
        if neg_w is not None:
            log_p_loss = F.log_softmax(logits + _log_weights(neg_w, targets), dim=1).gather(
                1, targets[:, None]).squeeze(1)
        loss = -(delta * log_p_loss).mean()
        grad_scale = effective_gradient_scale(logits.detach(), targets, delta, neg_w, centroids)
    return IdentityParts(loss, delta, p, neg_w, grad_scale)


def _log_weights(negative_weights: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``log w`` added to the logits: the negatives' log weights, 0 in each row's target column."""
    tiny = torch.finfo(negative_weights.dtype).tiny
    return negative_weights.clamp_min(tiny).log().scatter(1, targets[:, None], 0.0)


def effective_gradient_scale(logits: torch.Tensor, targets: torch.Tensor, delta: torch.Tensor,
                             negative_weights: torch.Tensor | None, centroids: torch.Tensor) -> torch.Tensor:
    """``||dL_id/dq|| / ||dL_CE/dq||`` on one batch (method.md, "Gradient-scale diagnostics").

    L_CE is ClusterNCE (delta = 1, no negative weights) on the same logits. With ``z = q C^T / tau``
    and both losses' delta and w constants, ``dL/dq_i = delta_i (softmax(z_i + log w_i) - e_{y_i}) C
    / (tau B)``; 1/(tau B) cancels in the ratio of Frobenius norms over the batch. 1 for
    ``factor=none``; all-easy batches (zero reference gradient) give 1. Detached, no graph.
    """
    with torch.no_grad():
        onehot = torch.zeros_like(logits).scatter(1, targets[:, None], 1.0)
        ref = (torch.softmax(logits, dim=1) - onehot) @ centroids
        shifted = logits if negative_weights is None else logits + _log_weights(negative_weights, targets)
        got = (delta.to(logits.dtype)[:, None] * (torch.softmax(shifted, dim=1) - onehot)) @ centroids
        ref_norm = ref.norm()
        return torch.where(ref_norm > 0, got.norm() / ref_norm.clamp_min(torch.finfo(logits.dtype).tiny),
                           torch.ones_like(ref_norm))


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
