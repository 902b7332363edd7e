"""The two memories of HCM: identity memory (cluster centroids) and image memory (one slot per image).

Both are plain tensors on a given device, updated in place under ``torch.no_grad()``
(no autograd.Function that updates inside ``backward``, as Cluster Contrast's ``CM``
does): the trainer decides when an update happens. Updates follow method.md ("Memory
updates"), with the momentum ``m`` weighing the OLD value as in Cluster Contrast::

    c_y <- normalize(m_c * c_y + (1 - m_c) * q)        (identity memory)
    v_i <- normalize(m_v * v_i + (1 - m_v) * q)        (image memory)

applied for each anchor SEQUENTIALLY in batch order: a slot hit twice in one batch is
updated twice, the second update starting from the result of the first. The update is
computed in "rounds" (round r updates the r-th occurrence of every slot at once), which
gives exactly the sequential result with K vectorised steps instead of B scalar ones.

Gradient accumulation: compute every micro-batch's loss against the memory state at the
start of the step, collect ``(q.detach(), labels, indices)`` of each micro-batch in a
:class:`PendingUpdates`, and ``apply`` it once after the optimiser step: the result equals
one update with the whole batch in batch order.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

_EPS = 1e-12  # as F.normalize


def occurrence_rank(keys: torch.Tensor) -> torch.Tensor:
    """For each position, how many earlier positions hold the same key (0 for the first).

    >>> occurrence_rank(torch.tensor([5, 3, 5, 5, 3])).tolist()
    [0, 0, 1, 2, 1]
    """
    n = keys.numel()
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=keys.device)
    order = torch.sort(keys, stable=True).indices
    sorted_keys = keys[order]
    pos = torch.arange(n, device=keys.device)
    is_start = torch.ones(n, dtype=torch.bool, device=keys.device)
    is_start[1:] = sorted_keys[1:] != sorted_keys[:-1]
    group_start = torch.where(is_start, pos, torch.zeros_like(pos)).cummax(0).values
    rank = torch.empty_like(pos)
    rank[order] = pos - group_start
    return rank


@torch.no_grad()
def momentum_update_(table: torch.Tensor, slots: torch.Tensor, q: torch.Tensor, momentum: float) -> None:
    """In place, for each i in order: ``table[s_i] <- normalize(m table[s_i] + (1-m) q_i)``.

    Sequential semantics (method.md, "Memory updates"), computed in rounds of distinct slots.
    """
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    if q.ndim != 2 or q.shape[1] != table.shape[1] or slots.shape != (q.shape[0],):
        raise ValueError(
            f"update shapes: q {tuple(q.shape)}, slots {tuple(slots.shape)}, memory {tuple(table.shape)}"
        )
    if q.shape[0] == 0:
        return
    slots = slots.to(device=table.device, dtype=torch.long)
    if int(slots.min()) < 0 or int(slots.max()) >= table.shape[0]:
        raise ValueError(
            f"memory slots must lie in [0, {table.shape[0]}), got {int(slots.min())}..{int(slots.max())}"
        )
    q = q.detach().to(device=table.device, dtype=table.dtype)
    rank = occurrence_rank(slots)
    for r in range(int(rank.max()) + 1):
        sel = rank == r
        s = slots[sel]
        mixed = momentum * table[s] + (1.0 - momentum) * q[sel]
        table[s] = mixed / mixed.norm(dim=1, keepdim=True).clamp_min(_EPS)


def _features_2d(features: torch.Tensor, what: str) -> torch.Tensor:
    if features.ndim != 2 or features.shape[0] == 0:
        raise ValueError(f"{what}: expected a non-empty (N, d) tensor, got shape {tuple(features.shape)}")
    return features


class IdentityMemory:
    """Cluster centroids ``C`` (num_classes x d), unit rows (method.md, "Pipeline" step 3)."""

    def __init__(self, features: torch.Tensor, device: torch.device | None = None) -> None:
        features = _features_2d(features, "IdentityMemory")
        self._features = F.normalize(features.detach().float(), dim=1).to(device or features.device)

    @classmethod
    def from_features(cls, features: torch.Tensor, labels: torch.Tensor, num_classes: int | None = None,
                      *, device: torch.device | None = None) -> IdentityMemory:
        """``c_k = normalize(mean of the features with label k)``; label -1 (outlier) ignored.

        ``num_classes`` defaults to ``max(label) + 1``; every class must have a member.
        """
        features = _features_2d(features, "IdentityMemory.from_features").detach().float()
        labels = torch.as_tensor(labels, device=features.device).long()
        if labels.shape != (features.shape[0],):
            raise ValueError(f"labels {tuple(labels.shape)} must be (N,) for features {tuple(features.shape)}")
        keep = labels >= 0
        if not bool(keep.any()):
            raise ValueError("IdentityMemory.from_features: every label is -1; no cluster to build")
        feats, labs = features[keep], labels[keep]
        k = int(labs.max()) + 1 if num_classes is None else int(num_classes)
        if int(labs.max()) >= k:
            raise ValueError(f"labels reach {int(labs.max())} but num_classes={k}")
        counts = torch.bincount(labs, minlength=k)
        if bool((counts == 0).any()):
            empty = torch.nonzero(counts == 0).flatten()[:5].tolist()
            raise ValueError(f"clusters without members (e.g. {empty}); relabel clusters to 0..K-1")
        sums = torch.zeros(k, features.shape[1], dtype=features.dtype, device=features.device)
        sums.index_add_(0, labs, feats)
        return cls(sums / counts[:, None].to(sums.dtype), device=device)

    @property
    def features(self) -> torch.Tensor:
        """The centroid table (K, d); read it, do not write it."""
        return self._features

    @property
    def num_classes(self) -> int:
        return self._features.shape[0]

    @property
    def device(self) -> torch.device:
        return self._features.device

    def update(self, q: torch.Tensor, labels: torch.Tensor, momentum: float) -> None:
        """``c_y <- normalize(m c_y + (1-m) q)`` for each row in batch order (m weighs the old)."""
        momentum_update_(self._features, torch.as_tensor(labels), q, momentum)

    def to(self, device: torch.device) -> IdentityMemory:
        self._features = self._features.to(device)
        return self

    def state_dict(self) -> dict[str, Any]:
        return {"features": self._features.detach().cpu().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._features = _features_2d(state["features"], "IdentityMemory state").float().to(self.device).clone()


class ImageMemory:
    """One feature per training image ``V`` (N x d) and its pseudo label (-1 = outlier)."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, device: torch.device | None = None) -> None:
        features = _features_2d(features, "ImageMemory")
        device = device or features.device
        labels = torch.as_tensor(labels).long()
        if labels.shape != (features.shape[0],):
            raise ValueError(f"labels {tuple(labels.shape)} must be (N,) for features {tuple(features.shape)}")
        self._features = F.normalize(features.detach().float(), dim=1).to(device)
        self._labels = labels.to(device)

    @property
    def features(self) -> torch.Tensor:
        """The image feature table (N, d); read it, do not write it."""
        return self._features

    @property
    def labels(self) -> torch.Tensor:
        """Pseudo label of each slot (N,), -1 for outliers."""
        return self._labels

    @property
    def device(self) -> torch.device:
        return self._features.device

    def __len__(self) -> int:
        return self._features.shape[0]

    def update(self, q: torch.Tensor, indices: torch.Tensor, momentum: float) -> None:
        """``v_i <- normalize(m v_i + (1-m) q)`` for each row in batch order (m weighs the old)."""
        momentum_update_(self._features, torch.as_tensor(indices), q, momentum)

    def to(self, device: torch.device) -> ImageMemory:
        self._features = self._features.to(device)
        self._labels = self._labels.to(device)
        return self

    def state_dict(self) -> dict[str, Any]:
        return {"features": self._features.detach().cpu().clone(), "labels": self._labels.cpu().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        features = _features_2d(state["features"], "ImageMemory state")
        labels = torch.as_tensor(state["labels"]).long()
        if labels.shape != (features.shape[0],):
            raise ValueError(f"ImageMemory state: labels {tuple(labels.shape)} vs features {tuple(features.shape)}")
        self._features = features.float().to(self.device).clone()
        self._labels = labels.to(self.device).clone()


class PendingUpdates:
    """Memory updates collected over the micro-batches of one step, applied once, in order.

    Usage per optimiser step::

        pending = PendingUpdates()
        for micro in micro_batches:
            loss, parts = hcm_loss(q, ...)          # memory state of the step's start
            (loss / accum_steps).backward()
            pending.add(q, targets, indices)
        optimizer.step()
        pending.apply(identity_memory, image_memory, momentum_identity=m_c, momentum_image=m_v)
    """

    def __init__(self) -> None:
        self._q: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []
        self._indices: list[torch.Tensor] = []

    def add(self, q: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor) -> None:
        """Record a micro-batch (``q`` is detached and copied now)."""
        labels, indices = torch.as_tensor(labels), torch.as_tensor(indices)
        if not (q.shape[0] == labels.shape[0] == indices.shape[0]):
            raise ValueError(f"PendingUpdates.add: q {tuple(q.shape)}, labels {tuple(labels.shape)}, "
                             f"indices {tuple(indices.shape)} differ in length")
        self._q.append(q.detach().clone())
        self._labels.append(labels.detach().clone())
        self._indices.append(indices.detach().clone())

    def __len__(self) -> int:
        return sum(t.shape[0] for t in self._q)

    def apply(self, identity_memory: IdentityMemory | None, image_memory: ImageMemory | None, *,
              momentum_identity: float, momentum_image: float) -> None:
        """Update the given memories with every recorded row in order, then clear."""
        if self._q:
            q = torch.cat(self._q)
            if identity_memory is not None:
                identity_memory.update(q, torch.cat(self._labels), momentum_identity)
            if image_memory is not None:
                image_memory.update(q, torch.cat(self._indices), momentum_image)
        self.clear()

    def clear(self) -> None:
        self._q.clear()
        self._labels.clear()
        self._indices.clear()
