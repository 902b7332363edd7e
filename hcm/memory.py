"""Memories of the loss terms and their update rules (method.md, "Memory updates").

A memory is a table of unit rows (one or more *banks* of the same shape), keyed by
slot: a cluster memory (:class:`IdentityMemory`, slot = pseudo label) or an instance
memory (:class:`ImageMemory`, slot = image index, with each slot's pseudo label). Loss
terms read memories and never write them; the trainer updates every memory once per
optimiser step, after the step, with the whole batch in batch order, under
``torch.no_grad()`` (no autograd.Function updating inside ``backward`` as Cluster
Contrast's ``CM`` does).

How a memory is updated is a registered rule (:data:`MEMORY_RULES`), chosen per memory
in the config (``memory.<name>.rule``); ``m`` is the momentum and weighs the OLD value:

- ``momentum`` (Cluster Contrast's ``CM``, the default): for each anchor i, in batch
  order, ``t[s_i] <- normalize(m t[s_i] + (1 - m) q_i)``; a slot hit twice is updated
  twice, the second update starting from the first's result. Computed in "rounds"
  (round r updates the r-th occurrence of every slot at once): exactly the sequential
  result with K vectorised steps instead of B scalar ones.
- ``hard`` (Cluster Contrast's ``CM_Hard``): once per slot in the batch, with the
  batch's member least similar to the slot's current row (the hardest positive; the
  first one on ties): ``t[s] <- normalize(m t[s] + (1 - m) q_hard(s))``.
- ``hybrid`` (HHCL's ``CM_Hybrid``): two banks; bank 0 gets the ``hard`` update, bank 1
  ``t1[s] <- normalize(m t1[s] + (1 - m) mean of the batch's members of s)``.

A user adds a rule with ``@register_memory_rule("name", banks=...)`` on a function
``update(banks, slots, q, momentum)`` that changes ``banks`` in place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from hcm.registry import Registry

_EPS = 1e-12  # as F.normalize

UpdateFn = Callable[[list[torch.Tensor], torch.Tensor, torch.Tensor, float], None]


@dataclass(frozen=True)
class MemoryRule:
    """A registered update rule: ``update(banks, slots, q, momentum)`` in place; ``banks`` tables per memory."""

    name: str
    update: UpdateFn
    banks: int = 1
    description: str = ""


#: memory update rules by name (``memory.<name>.rule``)
MEMORY_RULES: Registry[MemoryRule] = Registry("memory update rule")


def register_memory_rule(name: str, *, banks: int = 1) -> Callable[[UpdateFn], UpdateFn]:
    """Decorator registering ``update(banks, slots, q, momentum)`` as memory rule ``name``."""

    def deco(fn: UpdateFn) -> UpdateFn:
        MEMORY_RULES.register(name)(MemoryRule(name, fn, banks, (fn.__doc__ or "").strip().split("\n")[0]))
        return fn

    return deco


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


def _checked(table: torch.Tensor, slots: torch.Tensor, q: torch.Tensor,
             momentum: float) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Validate an update's inputs; ``(slots, q)`` on the table's device, or None for an empty batch."""
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    if q.ndim != 2 or q.shape[1] != table.shape[1] or slots.shape != (q.shape[0],):
        raise ValueError(
            f"update shapes: q {tuple(q.shape)}, slots {tuple(slots.shape)}, memory {tuple(table.shape)}"
        )
    if q.shape[0] == 0:
        return None
    slots = slots.to(device=table.device, dtype=torch.long)
    if int(slots.min()) < 0 or int(slots.max()) >= table.shape[0]:
        raise ValueError(
            f"memory slots must lie in [0, {table.shape[0]}), got {int(slots.min())}..{int(slots.max())}"
        )
    return slots, q.detach().to(device=table.device, dtype=table.dtype)


def _mix_(table: torch.Tensor, slots: torch.Tensor, x: torch.Tensor, momentum: float) -> None:
    """``table[s] <- normalize(m table[s] + (1 - m) x)`` for distinct ``slots``."""
    mixed = momentum * table[slots] + (1.0 - momentum) * x
    table[slots] = mixed / mixed.norm(dim=1, keepdim=True).clamp_min(_EPS)


@torch.no_grad()
def momentum_update_(table: torch.Tensor, slots: torch.Tensor, q: torch.Tensor, momentum: float) -> None:
    """In place, for each i in order: ``table[s_i] <- normalize(m table[s_i] + (1-m) q_i)``.

    Sequential semantics (method.md, "Memory updates"), computed in rounds of distinct slots.
    """
    checked = _checked(table, slots, q, momentum)
    if checked is None:
        return
    slots, q = checked
    rank = occurrence_rank(slots)
    for r in range(int(rank.max()) + 1):
        sel = rank == r
        _mix_(table, slots[sel], q[sel], momentum)


def _hardest_members(table: torch.Tensor, slots: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(distinct slots, index of each one's least similar batch member)``; first index on ties."""
    sim = (q * table[slots]).sum(dim=1)
    uniq, inverse = torch.unique(slots, return_inverse=True)
    low = torch.full((len(uniq),), float("inf"), dtype=sim.dtype, device=sim.device)
    low = low.scatter_reduce(0, inverse, sim, reduce="amin")
    is_low = sim == low[inverse]
    pos = torch.arange(len(slots), device=slots.device)
    first = torch.full((len(uniq),), len(slots), dtype=torch.long, device=slots.device)
    first = first.scatter_reduce(0, inverse[is_low], pos[is_low], reduce="amin")
    return uniq, first


@torch.no_grad()
def hard_update_(table: torch.Tensor, slots: torch.Tensor, q: torch.Tensor, momentum: float) -> None:
    """In place, once per slot s in the batch: ``table[s] <- normalize(m table[s] + (1-m) q_h)``.

    ``q_h`` = the batch member of s least similar to ``table[s]`` before the update
    (Cluster Contrast's ``CM_Hard``; the first such member on ties).
    """
    checked = _checked(table, slots, q, momentum)
    if checked is None:
        return
    slots, q = checked
    uniq, hardest = _hardest_members(table, slots, q)
    _mix_(table, uniq, q[hardest], momentum)


@torch.no_grad()
def mean_update_(table: torch.Tensor, slots: torch.Tensor, q: torch.Tensor, momentum: float) -> None:
    """In place, once per slot s in the batch: ``table[s] <- normalize(m table[s] + (1-m) mean of s's q``)."""
    checked = _checked(table, slots, q, momentum)
    if checked is None:
        return
    slots, q = checked
    uniq, inverse = torch.unique(slots, return_inverse=True)
    sums = torch.zeros(len(uniq), q.shape[1], dtype=q.dtype, device=q.device).index_add_(0, inverse, q)
    counts = torch.bincount(inverse, minlength=len(uniq)).to(q.dtype)
    _mix_(table, uniq, sums / counts[:, None], momentum)


@register_memory_rule("momentum")
def _momentum_rule(banks: list[torch.Tensor], slots: torch.Tensor, q: torch.Tensor, momentum: float) -> None:
    """Sequential momentum update per anchor (Cluster Contrast's CM; the default)."""
    momentum_update_(banks[0], slots, q, momentum)


@register_memory_rule("hard")
def _hard_rule(banks: list[torch.Tensor], slots: torch.Tensor, q: torch.Tensor, momentum: float) -> None:
    """One update per slot with its hardest batch member (Cluster Contrast's CM_Hard)."""
    hard_update_(banks[0], slots, q, momentum)


@register_memory_rule("hybrid", banks=2)
def _hybrid_rule(banks: list[torch.Tensor], slots: torch.Tensor, q: torch.Tensor, momentum: float) -> None:
    """Bank 0: hardest member, bank 1: batch mean, once per slot (HHCL's CM_Hybrid)."""
    hard_update_(banks[0], slots, q, momentum)
    mean_update_(banks[1], slots, q, momentum)


def _features_2d(features: torch.Tensor, what: str) -> torch.Tensor:
    if features.ndim != 2 or features.shape[0] == 0:
        raise ValueError(f"{what}: expected a non-empty (N, d) tensor, got shape {tuple(features.shape)}")
    return features


class Memory:
    """Unit-row table(s) (N, d), one per bank of ``rule``, updated by ``rule`` with ``momentum``.

    ``slot_key`` names what addresses a row: ``"targets"`` (pseudo labels, a cluster
    memory) or ``"indices"`` (image indices, an instance memory); :meth:`update_from`
    picks it from a batch.
    """

    slot_key = "targets"

    def __init__(self, features: torch.Tensor, device: torch.device | None = None, *,
                 rule: str = "momentum", momentum: float | None = None) -> None:
        features = _features_2d(features, type(self).__name__)
        self.rule = MEMORY_RULES.get(rule)
        self.momentum = momentum
        table = F.normalize(features.detach().float(), dim=1).to(device or features.device)
        self._banks = [table] + [table.clone() for _ in range(self.rule.banks - 1)]

    @property
    def features(self) -> torch.Tensor:
        """The table (of bank 0) (N, d); read it, do not write it."""
        return self._banks[0]

    @property
    def banks(self) -> list[torch.Tensor]:
        """Every bank's table (one for single-bank rules); read them, do not write them."""
        return list(self._banks)

    @property
    def device(self) -> torch.device:
        return self._banks[0].device

    def __len__(self) -> int:
        return self._banks[0].shape[0]

    def update(self, q: torch.Tensor, slots: torch.Tensor, momentum: float | None = None) -> None:
        """Apply the rule to rows ``slots`` with batch ``q`` (momentum: the argument, else the memory's)."""
        m = self.momentum if momentum is None else momentum
        if m is None:
            raise ValueError(f"{type(self).__name__}.update: no momentum given and none set on the memory")
        self.rule.update(self._banks, torch.as_tensor(slots), q, float(m))

    def update_from(self, q: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> None:
        """:meth:`update` with the slots of ``batch`` (a mapping with ``targets`` and ``indices``)."""
        self.update(q, batch[self.slot_key])

    def to(self, device: torch.device) -> Memory:
        self._banks = [b.to(device) for b in self._banks]
        return self

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"features": self._banks[0].detach().cpu().clone()}
        if len(self._banks) > 1:
            state["banks"] = [b.detach().cpu().clone() for b in self._banks]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        banks = state.get("banks") or [state["features"]]
        what = f"{type(self).__name__} state"
        self._banks = [_features_2d(b, what).float().to(self.device).clone() for b in banks]


class IdentityMemory(Memory):
    """Cluster centroids ``C`` (num_classes x d), unit rows (method.md, "Pipeline" step 3); slot = label."""

    slot_key = "targets"

    @classmethod
    def from_features(cls, features: torch.Tensor, labels: torch.Tensor, num_classes: int | None = None,
                      *, device: torch.device | None = None, rule: str = "momentum",
                      momentum: float | None = None) -> IdentityMemory:
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
        return cls(sums / counts[:, None].to(sums.dtype), device=device, rule=rule, momentum=momentum)

    @property
    def num_classes(self) -> int:
        return len(self)


class ImageMemory(Memory):
    """One feature per training image ``V`` (N x d) and its pseudo label (-1 = outlier); slot = image index."""

    slot_key = "indices"

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, device: torch.device | None = None, *,
                 rule: str = "momentum", momentum: float | None = None) -> None:
        features = _features_2d(features, "ImageMemory")
        labels = torch.as_tensor(labels).long()
        if labels.shape != (features.shape[0],):
            raise ValueError(f"labels {tuple(labels.shape)} must be (N,) for features {tuple(features.shape)}")
        super().__init__(features, device, rule=rule, momentum=momentum)
        self._labels = labels.to(self.device)

    @property
    def labels(self) -> torch.Tensor:
        """Pseudo label of each slot (N,), -1 for outliers."""
        return self._labels

    def to(self, device: torch.device) -> ImageMemory:
        super().to(device)
        self._labels = self._labels.to(device)
        return self

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "labels": self._labels.cpu().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        labels = torch.as_tensor(state["labels"]).long()
        if labels.shape != (state["features"].shape[0],):
            raise ValueError(f"ImageMemory state: labels {tuple(labels.shape)} vs features "
                             f"{tuple(state['features'].shape)}")
        super().load_state_dict(state)
        self._labels = labels.to(self.device).clone()


#: memory kinds a loss term can ask for (``MemoryRequest.kind``)
MEMORY_KINDS: dict[str, str] = {
    "cluster": "one row per pseudo identity (centroids), addressed by pseudo label",
    "instance": "one row per training image, addressed by image index, with its pseudo label",
}


def build_memory(kind: str, features: torch.Tensor, labels: torch.Tensor, *, rule: str,
                 momentum: float) -> Memory:
    """A memory of ``kind`` (:data:`MEMORY_KINDS`) initialised from all training features and labels."""
    if kind == "cluster":
        return IdentityMemory.from_features(features, labels, rule=rule, momentum=momentum)
    if kind == "instance":
        return ImageMemory(features, labels, rule=rule, momentum=momentum)
    raise ValueError(f"unknown memory kind {kind!r}; known: {', '.join(MEMORY_KINDS)}")


@torch.no_grad()
def update_memories(memories: Mapping[str, Memory], q: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> None:
    """Update every memory with the whole batch ``q`` (detached), in the memories' order."""
    q = q.detach().float()
    for memory in memories.values():
        memory.update_from(q, batch)
