"""The readings of L_id (method.md, "Readings") and the gradient-scale diagnostics, against slow
per-anchor references on small float64 inputs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from hcm.config import LossConfig
from hcm.losses import DYNAMIC_FACTORS, effective_gradient_scale, identity_parts
from hcm.memory import IdentityMemory, ImageMemory
from hcm.terms import gradient_norms, total_loss

READINGS = ("focal", "focal_raw", "hard_negatives", "none")


def _case(seed: int, b: int = 6, k: int = 5, d: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    q = F.normalize(torch.randn(b, d, generator=g, dtype=torch.float64), dim=1)
    c = F.normalize(torch.randn(k, d, generator=g, dtype=torch.float64), dim=1)
    y = torch.randint(0, k, (b,), generator=g)
    return q, c, y


def _reference(q: torch.Tensor, c: torch.Tensor, y: torch.Tensor, reading: str, gamma: float,
               tau: float) -> tuple[torch.Tensor, list[float], list[list[float]]]:
    """L_id by loops over anchors and centroids, every weight written out from its formula.

    Returns the loss (in q's graph, weights constant), the anchor weights and the negatives' weights."""
    b, k = q.shape[0], c.shape[0]
    sims = [[(q[i] * c[j]).sum() for j in range(k)] for i in range(b)]
    plain = [[float(s.detach()) for s in row] for row in sims]
    p = []
    for i in range(b):
        denom = sum(math.exp(s / tau) for s in plain[i])
        p.append(math.exp(plain[i][int(y[i])] / tau) / denom)
    if reading == "focal":
        raw = [(1 - pi) ** gamma for pi in p]
        delta = [r / (sum(raw) / b) for r in raw]
    elif reading == "focal_raw":
        delta = [(1 - pi) ** gamma for pi in p]
    else:
        delta = [1.0] * b
    weights = [[1.0] * k for _ in range(b)]
    if reading == "hard_negatives":
        for i in range(b):
            negs = [j for j in range(k) if j != int(y[i])]
            mean = sum(math.exp(gamma * plain[i][j]) for j in negs) / len(negs)
            for j in negs:
                weights[i][j] = math.exp(gamma * plain[i][j]) / mean
    loss = q.new_zeros(())
    for i in range(b):
        t = int(y[i])
        denom = sum(weights[i][j] * torch.exp(sims[i][j] / tau) for j in range(k))
        loss = loss - delta[i] * torch.log(torch.exp(sims[i][t] / tau) / denom)
    return loss / b, delta, weights


def test_the_readings_are_registered() -> None:
    assert set(READINGS) <= set(DYNAMIC_FACTORS.names())


@pytest.mark.parametrize("reading", READINGS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reading_value_and_gradient_match_the_per_anchor_reference(reading: str, seed: int) -> None:
    q, c, y = _case(seed)
    tau, gamma = 0.3, 2.0
    q1 = q.clone().requires_grad_()
    parts = identity_parts(q1, c, y, tau=tau, factor=reading, gamma=gamma)
    parts.loss.backward()
    q2 = q.clone().requires_grad_()
    want, delta, weights = _reference(q2, c, y, reading, gamma, tau)
    want.backward()
    torch.testing.assert_close(parts.loss, want)
    torch.testing.assert_close(q1.grad, q2.grad)
    torch.testing.assert_close(parts.delta, torch.tensor(delta, dtype=torch.float64))
    if reading == "hard_negatives":
        assert parts.negative_weights is not None
        torch.testing.assert_close(parts.negative_weights, torch.tensor(weights, dtype=torch.float64))
    else:
        assert parts.negative_weights is None


def test_readings_at_gamma_zero_are_cluster_nce() -> None:
    q, c, y = _case(3)
    want = F.cross_entropy(q @ c.t() / 0.05, y)
    for reading in READINGS:
        torch.testing.assert_close(identity_parts(q, c, y, tau=0.05, factor=reading, gamma=0.0).loss, want)


def test_focal_raw_is_focal_without_the_batch_normaliser() -> None:
    q, c, y = _case(4)
    norm = identity_parts(q, c, y, tau=0.1, factor="focal", gamma=2.0)
    raw = identity_parts(q, c, y, tau=0.1, factor="focal_raw", gamma=2.0)
    torch.testing.assert_close(norm.delta, raw.delta / raw.delta.mean())
    assert float(raw.delta.max()) <= 1.0
    torch.testing.assert_close(norm.loss, raw.loss / raw.delta.mean())


def _autograd_scale(q: torch.Tensor, c: torch.Tensor, y: torch.Tensor, reading: str, gamma: float,
                    tau: float) -> float:
    """||dL_reading/dq|| / ||dL_ClusterNCE/dq|| by autograd on the slow reference."""
    norms = []
    for form in (reading, "none"):
        x = q.clone().requires_grad_()
        (g,) = torch.autograd.grad(_reference(x, c, y, form, gamma, tau)[0], x)
        norms.append(float(g.norm()))
    return norms[0] / norms[1]


@pytest.mark.parametrize("reading", READINGS)
def test_effective_gradient_scale_is_the_ratio_of_gradient_norms(reading: str) -> None:
    q, c, y = _case(5, b=7, k=6)
    got = identity_parts(q, c, y, tau=0.2, factor=reading, gamma=2.0).grad_scale
    assert float(got) == pytest.approx(_autograd_scale(q, c, y, reading, 2.0, 0.2), rel=1e-9)
    if reading == "none":
        assert float(got) == 1.0


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), b=st.integers(1, 6), k=st.integers(2, 6), gamma=st.floats(0.0, 4.0),
       reading=st.sampled_from(READINGS))
def test_gradient_scale_property(seed: int, b: int, k: int, gamma: float, reading: str) -> None:
    q, c, y = _case(seed, b=b, k=k, d=4)
    got = float(identity_parts(q, c, y, tau=0.5, factor=reading, gamma=gamma).grad_scale)
    assert got == pytest.approx(_autograd_scale(q, c, y, reading, gamma, 0.5), rel=1e-7, abs=1e-12)


def test_normalised_focal_raises_the_gradient_where_correlated_centroids_make_p_middling() -> None:
    """The issue's observation: the batch-normalised factor lines its weights up with the largest
    per-anchor gradients, so L_id's gradient grows against ClusterNCE's (scale > 1); the raw form
    only shrinks it (every weight <= 1)."""
    g = torch.Generator().manual_seed(7)
    base = F.normalize(torch.randn(1, 32, generator=g, dtype=torch.float64), dim=1)
    c = F.normalize(base + 0.6 * torch.randn(40, 32, generator=g, dtype=torch.float64), dim=1)
    y = torch.randint(0, 40, (64,), generator=g)
    q = F.normalize(c[y] + 0.5 * torch.randn(64, 32, generator=g, dtype=torch.float64), dim=1)
    focal = identity_parts(q, c, y, tau=0.05, factor="focal", gamma=2.0)
    raw = identity_parts(q, c, y, tau=0.05, factor="focal_raw", gamma=2.0)
    assert float(focal.grad_scale) > 1.0 > float(raw.grad_scale)


def test_all_easy_batch_has_scale_one() -> None:
    c = torch.eye(3, dtype=torch.float64)
    logits = c * 1e4  # p = 1 for every anchor: zero gradient
    scale = effective_gradient_scale(logits, torch.arange(3), torch.ones(3, dtype=torch.float64), None, c)
    assert float(scale) == 1.0


def test_gradient_norms_and_shares_match_separate_autograd_calls() -> None:
    g = torch.Generator().manual_seed(8)
    feats = F.normalize(torch.randn(20, 8, generator=g), dim=1)
    labels = torch.arange(20) % 4
    ident, image = IdentityMemory.from_features(feats, labels), ImageMemory(feats, labels)
    idx = torch.tensor([0, 1, 4, 5, 8, 9])
    y = labels[idx]
    terms = LossConfig(lambda_img=0.5, n_neg=4).terms
    q = F.normalize(torch.randn(6, 8, generator=g), dim=1).requires_grad_()
    loss, parts = total_loss(q, {"targets": y, "indices": idx}, {"identity": ident, "image": image}, terms,
                             diagnostics=True)
    want = {}
    for name in ("identity", "image"):
        x = q.detach().clone().requires_grad_()
        one = {name: terms[name]}
        l_t, _ = total_loss(x, {"targets": y, "indices": idx}, {"identity": ident, "image": image}, one)
        (gr,) = torch.autograd.grad(l_t, x)
        want[name] = gr
    for name in ("identity", "image"):
        assert parts[f"gnorm_{name}"] == pytest.approx(float(want[name].norm()), rel=1e-5)
    total = float(want["identity"].norm() + want["image"].norm())
    assert parts["gshare_identity"] == pytest.approx(float(want["identity"].norm()) / total, rel=1e-5)
    assert parts["gshare_identity"] + parts["gshare_image"] == pytest.approx(1.0)
    assert parts["gnorm_total"] == pytest.approx(float((want["identity"] + want["image"]).norm()), rel=1e-5)
    # the diagnostics leave the training gradient alone
    loss.backward()
    x = q.detach().clone().requires_grad_()
    plain, plain_parts = total_loss(x, {"targets": y, "indices": idx}, {"identity": ident, "image": image}, terms)
    plain.backward()
    assert torch.equal(q.grad, x.grad) and not any(k.startswith("gnorm") for k in plain_parts)


def test_gradient_norms_of_an_unused_term_are_zero() -> None:
    q = torch.randn(3, 2, requires_grad=True)
    out = gradient_norms(q, {"a": (q**2).sum(), "b": torch.zeros((), requires_grad=True) * 1.0})
    assert float(out["gnorm_b"]) == 0.0 and float(out["gshare_a"]) == 1.0
