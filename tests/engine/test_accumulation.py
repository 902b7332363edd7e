"""Gradient accumulation gives the whole batch's gradient: every loss normaliser is the whole batch's."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hcm.config import LossConfig
from hcm.engine.trainer import backward_whole_batch
from hcm.memory import build_memory
from hcm.terms import total_loss


class _Tiny(torch.nn.Module):
    """A linear embedding of flattened images, L2-normalised (no BatchNorm: see docs/method.md)."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.fc = torch.nn.Linear(3 * 4 * 2, 8)
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(8, 24, generator=g) * 0.3)
            self.fc.bias.copy_(torch.randn(8, generator=g) * 0.1)  # not torch's unseeded init

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.fc(x.flatten(1)), dim=1)


def _case(seed: int):
    g = torch.Generator().manual_seed(seed)
    n, k = 40, 5
    labels = torch.arange(n) % k
    feats = F.normalize(torch.randn(n, 8, generator=g), dim=1)
    mems = {"identity": build_memory("cluster", feats, labels, rule="momentum", momentum=0.1),
            "image": build_memory("instance", feats, labels, rule="momentum", momentum=0.2)}
    indices = torch.randperm(n, generator=g)[:16]
    batch = {"targets": labels[indices], "indices": indices}
    images = torch.randn(16, 3, 4, 2, generator=g)
    return images, batch, mems


def _grads(model: torch.nn.Module, images, batch, mems, terms, accum: int) -> tuple[torch.Tensor, dict]:
    model.zero_grad(set_to_none=True)
    q, parts = backward_whole_batch(model, images, batch, mems, terms, accum_steps=accum)
    return torch.cat([p.grad.flatten() for p in model.parameters()]), {"q": q, **parts}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_accumulation_1_2_4_give_the_same_gradient_and_logs(seed: int) -> None:
    images, batch, mems = _case(seed)
    # focal: the reading with a batch normaliser, the one accumulation could get wrong
    terms = LossConfig(lambda_img=0.7, n_neg=6, gamma=2.0, dynamic_factor="focal").terms
    model = _Tiny()
    g1, p1 = _grads(model, images, batch, mems, terms, 1)
    tolerance = {"rtol": 1e-4, "atol": 1e-5 * float(g1.abs().max())}
    for accum in (2, 4):
        g, p = _grads(model, images, batch, mems, terms, accum)
        # float32 sums in another order: agreement to ~1e-6 of the largest entry
        torch.testing.assert_close(g, g1, **tolerance)
        torch.testing.assert_close(p["q"], p1["q"], rtol=0, atol=1e-6)
        assert p["loss"] == pytest.approx(p1["loss"], rel=1e-6)
        assert p["delta_mean"] == pytest.approx(1.0)  # the focal normaliser is the whole batch's mean

    # the test can fail: per-micro-batch normalisers (what accumulation did before) give another gradient
    model.zero_grad(set_to_none=True)
    for img, tgt, idx in zip(images.chunk(2), batch["targets"].chunk(2), batch["indices"].chunk(2), strict=True):
        loss, _ = total_loss(model(img), {"targets": tgt, "indices": idx}, mems, terms)
        (loss / 2).backward()
    naive = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert not torch.allclose(naive, g1, **tolerance)  # fails the check accumulation passes


def test_accumulation_restores_buffers_of_the_no_grad_pass() -> None:
    """BatchNorm's running statistics are updated once per micro-batch (by the pass with gradients)."""
    images, batch, mems = _case(3)
    terms = LossConfig().terms
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(24, 8), torch.nn.BatchNorm1d(8)).train()
    embed = torch.nn.Sequential(model, _Normalize())
    backward_whole_batch(embed, images, batch, mems, terms, accum_steps=2)
    assert int(model[2].num_batches_tracked) == 2


class _Normalize(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1)
