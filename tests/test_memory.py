"""Identity and image memories: construction, sequential momentum updates, accumulation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hcm.memory import (
    IdentityMemory,
    ImageMemory,
    PendingUpdates,
    momentum_update_,
    occurrence_rank,
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


def test_accumulated_micro_batches_equal_one_full_batch_update() -> None:
    g = torch.Generator().manual_seed(2)
    n, d, k = 20, 6, 4
    feats = F.normalize(torch.randn(n, d, generator=g), dim=1)
    labels = torch.arange(n) % k
    q = F.normalize(torch.randn(16, d, generator=g), dim=1)
    idx = torch.randint(0, n, (16,), generator=g)  # repeats across micro-batches
    y = labels[idx]

    full_id, full_img = IdentityMemory.from_features(feats, labels), ImageMemory(feats, labels)
    full_id.update(q, y, 0.1)
    full_img.update(q, idx, 0.2)

    acc_id, acc_img = IdentityMemory.from_features(feats, labels), ImageMemory(feats, labels)
    start = (acc_id.features.clone(), acc_img.features.clone())
    pending = PendingUpdates()
    for part in range(4):
        sl = slice(4 * part, 4 * part + 4)
        pending.add(q[sl], y[sl], idx[sl])
        # the memory the next micro-batch's loss sees is still the step's starting state
        assert torch.equal(acc_id.features, start[0]) and torch.equal(acc_img.features, start[1])
    assert len(pending) == 16
    pending.apply(acc_id, acc_img, momentum_identity=0.1, momentum_image=0.2)
    assert len(pending) == 0
    torch.testing.assert_close(acc_id.features, full_id.features, rtol=0, atol=0)
    torch.testing.assert_close(acc_img.features, full_img.features, rtol=0, atol=0)
    torch.testing.assert_close(acc_img.features, _loop_update(start[1], idx, q, 0.2))


def test_pending_updates_copy_inputs_and_skip_none() -> None:
    mem = ImageMemory(torch.eye(2), torch.tensor([0, 1]))
    pending = PendingUpdates()
    q = torch.tensor([[0.0, 1.0]])
    pending.add(q, torch.tensor([0]), torch.tensor([0]))
    q.zero_()  # later in-place changes to q do not leak into the recorded update
    pending.apply(None, mem, momentum_identity=0.1, momentum_image=0.0)
    torch.testing.assert_close(mem.features, torch.tensor([[0.0, 1.0], [0.0, 1.0]]))


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
