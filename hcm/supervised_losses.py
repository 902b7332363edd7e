"""Losses of supervised pretraining (the usual re-ID recipe): label-smoothed cross-entropy
and batch-hard triplet loss (Hermans et al. 2017)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def batch_hard_triplet_loss(features: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Mean over anchors of ``relu(max_pos d(a, p) - min_neg d(a, n) + margin)``, Euclidean ``d``.

    Anchors without a positive or without a negative in the batch are skipped; a batch
    with no usable anchor gives a zero that keeps the graph.
    """
    feats = features.float()
    dist = torch.cdist(feats, feats).clamp_min(1e-12)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    pos_mask, neg_mask = same & ~eye, ~same
    valid = pos_mask.any(1) & neg_mask.any(1)
    if not valid.any():
        return feats.sum() * 0.0
    hardest_pos = dist.masked_fill(~pos_mask, float("-inf")).amax(1)
    hardest_neg = dist.masked_fill(~neg_mask, float("inf")).amin(1)
    return F.relu(hardest_pos - hardest_neg + margin)[valid].mean()


def smoothed_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Cross-entropy with label smoothing ``epsilon`` (Szegedy et al. 2016), in float32."""
    return F.cross_entropy(logits.float(), labels, label_smoothing=smoothing)
