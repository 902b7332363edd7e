"""Memories: construction, the update rules (momentum, hard, hybrid) against slow per-sample loops."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hcm.memory import (
    MEMORY_RULES,
    IdentityMemory,
    ImageMemory,
    build_memory,
    momentum_update_,
    occurrence_rank,
    update_memories,
)


def _loop_update(table: torch.Tensor, slots: torch.Tensor, q: torch.Tensor, m: float) -> torch.Tensor:
    """Cluster Contrast's per-sample loop: features[y] = m f[y] + (1-m) x; f[y] /= ||f[y]||."""
    out = table.clone()
    for x, y in zip(q, slots.tolist(), strict=True):
        out[y] = m * out[y] + (1.0 - m) * x
        out[y] = out[y] / out[y].norm()
    return out


def test_occurrence_rank() -> None:
    assert occurrence_rank(torch.tensor([5, 3, 5, 5, 3, 0])).tolist() == [0, 0, 1, 2, 1, 0]
    assert occurrence_rank(torch.tensor([], dtype=torch.long)).tolist() == []


def test_from_features_centroids_by_hand() -> None:
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 4.0], [0.6, 0.8], [-1.0, 0.0]])
    labels = torch.tensor([0, 0, -1, 1, 1])
    mem = IdentityMemory.from_features(feats, labels)
    # class 0: mean (0.5, 0.5) -> (1/sqrt2, 1/sqrt2); class 1: mean (-0.2, 0.4) -> (-1, 2)/sqrt5
    # the outlier (3, 4) is ignored
    want = torch.tensor([[1 / math.sqrt(2), 1 / math.sqrt(2)], [-1 / math.sqrt(5), 2 / math.sqrt(5)]])
    torch.testing.assert_close(mem.features, want)
    assert mem.num_classes == 2


def test_from_features_num_classes_and_errors() -> None:
    feats = F.normalize(torch.randn(4, 3), dim=1)
    with pytest.raises(ValueError, match="without members"):
        IdentityMemory.from_features(feats, torch.tensor([0, 0, 2, 2]))
    with pytest.raises(ValueError, match="without members"):
        IdentityMemory.from_features(feats, torch.tensor([0, 0, 1, 1]), num_classes=3)
    with pytest.raises(ValueError, match="every label is -1"):
        IdentityMemory.from_features(feats, torch.full((4,), -1))


def test_identity_update_hand_value() -> None:
    mem = IdentityMemory(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    # c0 <- normalize(0.5 (1, 0) + 0.5 (0, 1)) = (1, 1)/sqrt2 ; then again with q = (0, 1):
    # normalize(0.5 (0.7071, 0.7071) + 0.5 (0, 1)) = normalize(0.35355, 0.85355)
    mem.update(torch.tensor([[0.0, 1.0], [0.0, 1.0]]), torch.tensor([0, 0]), momentum=0.5)
    a, b = 0.5 / math.sqrt(2), 0.5 / math.sqrt(2) + 0.5
    n = math.hypot(a, b)
    torch.testing.assert_close(mem.features, torch.tensor([[a / n, b / n], [0.0, 1.0]]))


def test_momentum_weighs_old_value() -> None:
    mem = IdentityMemory(torch.tensor([[1.0, 0.0]]))
    mem.update(torch.tensor([[0.0, 1.0]]), torch.tensor([0]), momentum=0.9)
    assert mem.features[0, 0] > mem.features[0, 1]  # old value (1, 0) dominates
    mem.update(torch.tensor([[0.0, 1.0]]), torch.tensor([0]), momentum=0.0)
    torch.testing.assert_close(mem.features, torch.tensor([[0.0, 1.0]]))  # m = 0 replaces


@pytest.mark.parametrize("momentum", [0.0, 0.1, 0.5, 0.9])
def test_update_matches_sequential_loop_with_repeats(momentum: float) -> None:
    g = torch.Generator().manual_seed(0)
    table = F.normalize(torch.randn(7, 5, generator=g, dtype=torch.float64), dim=1).float()
    slots = torch.tensor([3, 1, 3, 3, 6, 1, 0, 3, 2, 6])
    q = F.normalize(torch.randn(10, 5, generator=g), dim=1)
    want = _loop_update(table, slots, q, momentum)
    got = table.clone()
    momentum_update_(got, slots, q, momentum)
    torch.testing.assert_close(got, want)
    assert torch.allclose(got.norm(dim=1), torch.ones(7))


def test_update_order_is_batch_order() -> None:
    table = torch.tensor([[1.0, 0.0]])
    q = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    forward, backward = table.clone(), table.clone()
    momentum_update_(forward, torch.tensor([0, 0]), q, 0.5)
    momentum_update_(backward, torch.tensor([0, 0]), q.flip(0), 0.5)
    torch.testing.assert_close(forward, _loop_update(table, torch.tensor([0, 0]), q, 0.5))
    assert not torch.allclose(forward, backward)  # the order matters, and batch order is used


def test_image_memory_update_and_labels() -> None:
    g = torch.Generator().manual_seed(1)
    feats = F.normalize(torch.randn(6, 4, generator=g), dim=1)
    labels = torch.tensor([0, 0, 1, -1, 1, 2])
    mem = ImageMemory(feats, labels)
    assert len(mem) == 6 and torch.equal(mem.labels, labels)
    q = F.normalize(torch.randn(3, 4, generator=g), dim=1)
    idx = torch.tensor([4, 0, 4])
    want = _loop_update(mem.features, idx, q, 0.2)
    mem.update(q, idx, momentum=0.2)
    torch.testing.assert_close(mem.features, want)
    torch.testing.assert_close(mem.features[[1, 2, 3, 5]], feats[[1, 2, 3, 5]])  # others untouched


def test_update_rejects_bad_input() -> None:
    mem = ImageMemory(torch.eye(3), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="slots"):
        mem.update(torch.eye(3)[:1], torch.tensor([3]), 0.2)
    with pytest.raises(ValueError, match="momentum"):
        mem.update(torch.eye(3)[:1], torch.tensor([0]), 1.0)
    with pytest.raises(ValueError, match="shapes"):
        mem.update(torch.ones(1, 2), torch.tensor([0]), 0.2)


def test_update_is_outside_autograd() -> None:
    mem = IdentityMemory(torch.eye(3))
    q = torch.eye(3)[:2].clone().requires_grad_()
    mem.update(q, torch.tensor([0, 1]), 0.5)
    assert not mem.features.requires_grad


def _members(slots: torch.Tensor, q: torch.Tensor) -> dict[int, list[torch.Tensor]]:
    """slot -> its rows of q, in batch order."""
    members: dict[int, list[torch.Tensor]] = {}
    for x, y in zip(q, slots.tolist(), strict=True):
        members.setdefault(y, []).append(x)
    return members


def _hard_loop(table: torch.Tensor, slots: torch.Tensor, q: torch.Tensor, m: float) -> torch.Tensor:
    """Cluster Contrast's CM_Hard backward: per slot, the member with the LOWEST similarity to the row."""
    out = table.clone()
    for y, xs in _members(slots, q).items():
        sims = [float(x @ out[y]) for x in xs]
        hard = xs[sims.index(min(sims))]
        out[y] = m * out[y] + (1.0 - m) * hard
        out[y] = out[y] / out[y].norm()
    return out


def _mean_loop(table: torch.Tensor, slots: torch.Tensor, q: torch.Tensor, m: float) -> torch.Tensor:
    """HHCL's mean bank: per slot, the mean of its members in the batch."""
    out = table.clone()
    for y, xs in _members(slots, q).items():
        out[y] = m * out[y] + (1.0 - m) * torch.stack(xs).mean(0)
        out[y] = out[y] / out[y].norm()
    return out


def _random_case(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    table = F.normalize(torch.randn(6, 5, generator=g, dtype=torch.float64), dim=1)
    q = F.normalize(torch.randn(24, 5, generator=g, dtype=torch.float64), dim=1)
    slots = torch.randint(0, 6, (24,), generator=g)
    return table, slots, q


def test_rules_are_registered() -> None:
    assert MEMORY_RULES.names() == ["hard", "hybrid", "momentum"]
    assert MEMORY_RULES.get("hybrid").banks == 2 and MEMORY_RULES.get("hard").banks == 1


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("momentum", [0.0, 0.2, 0.9])
def test_hard_rule_matches_the_per_sample_loop(seed: int, momentum: float) -> None:
    table, slots, q = _random_case(seed)
    mem = IdentityMemory(table, rule="hard", momentum=momentum)
    mem._banks = [table.clone()]  # float64 reference precision
    mem.update(q, slots)
    torch.testing.assert_close(mem.features, _hard_loop(table, slots, q, momentum), rtol=0, atol=1e-12)


def test_hard_rule_takes_the_first_member_on_ties() -> None:
    mem = IdentityMemory(torch.tensor([[1.0, 0.0]]), rule="hard", momentum=0.0)
    # both members have similarity 0 with the row; the first one wins, as np.argmin
    mem.update(torch.tensor([[0.0, 1.0], [0.0, -1.0]]), torch.tensor([0, 0]))
    assert mem.features.tolist() == [[0.0, 1.0]]


@pytest.mark.parametrize("seed", [0, 1])
def test_hybrid_rule_matches_the_per_sample_loops(seed: int) -> None:
    table, slots, q = _random_case(seed)
    mem = IdentityMemory(table, rule="hybrid", momentum=0.3)
    mem._banks = [table.clone(), table.clone()]
    mem.update(q, slots)
    torch.testing.assert_close(mem.banks[0], _hard_loop(table, slots, q, 0.3), rtol=0, atol=1e-12)
    torch.testing.assert_close(mem.banks[1], _mean_loop(table, slots, q, 0.3), rtol=0, atol=1e-12)
    state = mem.state_dict()
    other = IdentityMemory(torch.ones(1, 5), rule="hybrid", momentum=0.3)
    other.load_state_dict(state)
    assert all(torch.equal(a, b.float()) for a, b in zip(other.banks, mem.banks, strict=True))


@pytest.mark.parametrize("rule", ["momentum", "hard", "hybrid"])
def test_every_rule_keeps_unit_rows_and_leaves_other_slots(rule: str) -> None:
    table, slots, q = _random_case(4)
    slots = slots % 3  # slots 3..5 are not in the batch
    mem = ImageMemory(table.float(), torch.arange(6), rule=rule, momentum=0.5)
    before = mem.features.clone()
    mem.update(q.float(), slots)
    for bank in mem.banks:
        torch.testing.assert_close(bank.norm(dim=1), torch.ones(6))
        assert torch.equal(bank[3:], before[3:]) and not torch.equal(bank[:3], before[:3])


def test_update_memories_updates_each_memory_by_its_slot_key() -> None:
    g = torch.Generator().manual_seed(2)
    n, d, k = 20, 6, 4
    feats = F.normalize(torch.randn(n, d, generator=g), dim=1)
    labels = torch.arange(n) % k
    q = F.normalize(torch.randn(16, d, generator=g), dim=1)
    idx = torch.randint(0, n, (16,), generator=g)  # repeats
    y = labels[idx]
    mems = {"identity": build_memory("cluster", feats, labels, rule="momentum", momentum=0.1),
            "image": build_memory("instance", feats, labels, rule="momentum", momentum=0.2)}
    start = (mems["identity"].features.clone(), mems["image"].features.clone())
    update_memories(mems, q.requires_grad_(), {"targets": y, "indices": idx})
    torch.testing.assert_close(mems["identity"].features, _loop_update(start[0], y, q.detach(), 0.1))
    torch.testing.assert_close(mems["image"].features, _loop_update(start[1], idx, q.detach(), 0.2))
    with pytest.raises(ValueError, match="unknown memory kind"):
        build_memory("nope", feats, labels, rule="momentum", momentum=0.1)


def test_state_dict_round_trip() -> None:
    g = torch.Generator().manual_seed(3)
    feats = F.normalize(torch.randn(5, 3, generator=g), dim=1)
    labels = torch.tensor([0, 1, 1, -1, 0])
    ident, image = IdentityMemory.from_features(feats, labels), ImageMemory(feats, labels)
    ident2, image2 = IdentityMemory(torch.ones(1, 3)), ImageMemory(torch.ones(1, 3), torch.zeros(1))
    ident2.load_state_dict(ident.state_dict())
    image2.load_state_dict(image.state_dict())
    assert torch.equal(ident2.features, ident.features)
    assert torch.equal(image2.features, image.features) and torch.equal(image2.labels, image.labels)
    # the state is a copy: updating the memory does not change a saved state
    state = image.state_dict()
    image.update(torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([0]), 0.0)
    assert not torch.equal(state["features"], image.features)
