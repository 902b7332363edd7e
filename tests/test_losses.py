"""HCM losses against hand computations, a slow per-anchor reference and gradcheck."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hcm.config import LossConfig
from hcm.losses import (
    DYNAMIC_FACTORS,
    FactorInputs,
    FactorWeights,
    dynamic_contrast_loss,
    focal_factor,
    sample_constraint_loss,
)
from hcm.memory import IdentityMemory, ImageMemory
from hcm.terms import total_loss

E = math.e


# ---------------------------------------------------------------- dynamic factor


def _fi(p: torch.Tensor) -> FactorInputs:
    """Factor inputs with target probabilities ``p`` (logits of two identities, target 0)."""
    logits = torch.stack([p.detach().log(), (1 - p.detach()).clamp_min(1e-30).log()], dim=1)
    return FactorInputs(logits, torch.zeros(len(p), dtype=torch.long), p)


def test_focal_factor_hand_values() -> None:
    p = torch.tensor([0.5, 0.75, 1.0])
    # (1-p)^2 = 0.25, 0.0625, 0 ; mean = 0.3125/3 ; delta = w / mean
    mean = (0.25 + 0.0625 + 0.0) / 3
    want = torch.tensor([0.25 / mean, 0.0625 / mean, 0.0])
    got = focal_factor(_fi(p), gamma=2.0)
    torch.testing.assert_close(got, want)
    assert got.mean().item() == pytest.approx(1.0)


def test_focal_factor_all_easy_gives_ones_and_gamma_zero_gives_ones() -> None:
    assert torch.equal(focal_factor(_fi(torch.ones(4)), gamma=2.0), torch.ones(4))
    torch.testing.assert_close(focal_factor(_fi(torch.tensor([0.1, 0.9])), gamma=0.0), torch.ones(2))


def test_factors_are_detached_and_registered() -> None:
    assert DYNAMIC_FACTORS.names() == ["focal", "focal_raw", "hard_negatives", "none"]
    p = torch.tensor([0.2, 0.6], requires_grad=True)
    for name in DYNAMIC_FACTORS:
        out = DYNAMIC_FACTORS.get(name)(_fi(p), gamma=2.0)
        for t in (out.anchor, out.negatives) if isinstance(out, FactorWeights) else (out,):
            assert not t.requires_grad
    assert torch.equal(DYNAMIC_FACTORS.get("none")(_fi(p), gamma=2.0), torch.ones(2))


def test_factor_inputs_expose_the_negatives_logits() -> None:
    logits = torch.tensor([[2.0, 5.0, -1.0], [0.0, 1.0, 3.0]])
    inputs = FactorInputs(logits, torch.tensor([1, 2]), torch.softmax(logits, 1)[[0, 1], [1, 2]])
    neg = inputs.negative_logits()
    assert neg[0].tolist() == [2.0, float("-inf"), -1.0] and neg[1].tolist() == [0.0, 1.0, float("-inf")]
    assert neg.max(dim=1).values.tolist() == [2.0, 1.0]  # the hardest negative of each anchor


# ---------------------------------------------------------------- L_id


def _two_anchor_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # centroids c0 = (1, 0), c1 = (0, 1); anchors q1 = (1, 0), q2 = (0, 1), both of class 0
    c = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 0])
    return q, c, y


def test_dynamic_contrast_none_hand_value() -> None:
    q, c, y = _two_anchor_case()
    # tau = 1: logits q1 = (1, 0) -> p1 = e / (e + 1); q2 = (0, 1) -> p2 = 1 / (1 + e)
    p1, p2 = E / (E + 1), 1 / (1 + E)
    want = (-math.log(p1) - math.log(p2)) / 2  # = (0.31326 + 1.31326) / 2 = 0.81326
    got = dynamic_contrast_loss(q, c, y, tau=1.0, factor="none")
    assert got.item() == pytest.approx(want, rel=1e-6)
    assert got.item() == pytest.approx(0.8132617, abs=1e-6)


def test_dynamic_contrast_focal_hand_value() -> None:
    q, c, y = _two_anchor_case()
    p1, p2 = E / (E + 1), 1 / (1 + E)  # 0.731059, 0.268941
    w1, w2 = (1 - p1) ** 2, (1 - p2) ** 2  # 0.072329, 0.534447
    d1, d2 = w1 / ((w1 + w2) / 2), w2 / ((w1 + w2) / 2)  # 0.238406, 1.761594
    want = (d1 * -math.log(p1) + d2 * -math.log(p2)) / 2  # (0.074683 + 2.313435) / 2
    got = dynamic_contrast_loss(q, c, y, tau=1.0, factor="focal", gamma=2.0)
    assert got.item() == pytest.approx(want, rel=1e-6)
    assert got.item() == pytest.approx(1.1940660, abs=1e-5)


def test_dynamic_contrast_temperature_hand_value() -> None:
    q, c, y = _two_anchor_case()
    # tau = 0.5 doubles the logits: p1 = e^2 / (e^2 + 1), p2 = 1 / (1 + e^2)
    want = (-math.log(E**2 / (E**2 + 1)) - math.log(1 / (1 + E**2))) / 2
    got = dynamic_contrast_loss(q, c, y, tau=0.5, factor="none")
    assert got.item() == pytest.approx(want, rel=1e-6)


def test_dynamic_contrast_none_equals_cross_entropy() -> None:
    g = torch.Generator().manual_seed(0)
    q = F.normalize(torch.randn(8, 16, generator=g), dim=1)
    c = F.normalize(torch.randn(5, 16, generator=g), dim=1)
    y = torch.randint(0, 5, (8,), generator=g)
    want = F.cross_entropy(q @ c.t() / 0.05, y)
    torch.testing.assert_close(dynamic_contrast_loss(q, c, y, tau=0.05, factor="none"), want)


def test_dynamic_contrast_focal_gradient_formula() -> None:
    """dL/dq_i = -(delta_i / B) (c_{y_i} - sum_k p_ik c_k) / tau, delta held constant."""
    g = torch.Generator().manual_seed(1)
    q = F.normalize(torch.randn(6, 8, generator=g, dtype=torch.float64), dim=1).requires_grad_()
    c = F.normalize(torch.randn(4, 8, generator=g, dtype=torch.float64), dim=1)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    tau = 0.1
    dynamic_contrast_loss(q, c, y, tau=tau, factor="focal", gamma=2.0).backward()
    with torch.no_grad():
        prob = torch.softmax(q @ c.t() / tau, dim=1)
        p = prob[torch.arange(6), y]
        w = (1 - p) ** 2
        delta = w / w.mean()
        want = -(delta[:, None] / 6) * (c[y] - prob @ c) / tau
    torch.testing.assert_close(q.grad, want)


def test_dynamic_contrast_gradcheck_none() -> None:
    g = torch.Generator().manual_seed(2)
    q = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    c = F.normalize(torch.randn(3, 4, generator=g, dtype=torch.float64), dim=1)
    y = torch.tensor([2, 0, 1])
    assert torch.autograd.gradcheck(lambda x: dynamic_contrast_loss(x, c, y, tau=0.5, factor="none"), (q,))


def test_dynamic_contrast_rejects_outlier_targets() -> None:
    q, c, _ = _two_anchor_case()
    with pytest.raises(ValueError, match="targets"):
        dynamic_contrast_loss(q, c, torch.tensor([0, -1]), tau=1.0)


def test_dynamic_contrast_float32_under_half_inputs() -> None:
    q, c, y = _two_anchor_case()
    got = dynamic_contrast_loss(q.half(), c.half(), y, tau=1.0, factor="none")
    assert got.dtype == torch.float32


def test_losses_ignore_autocast() -> None:
    """Under (CPU bf16) autocast the similarities are still float32: same value as without."""
    g = torch.Generator().manual_seed(6)
    q = F.normalize(torch.randn(8, 64, generator=g), dim=1)
    c = F.normalize(torch.randn(5, 64, generator=g), dim=1)
    y = torch.randint(0, 5, (8,), generator=g)
    labels = torch.arange(5).repeat(2)
    v = F.normalize(torch.randn(10, 64, generator=g), dim=1)
    idx = torch.arange(8)
    plain = (dynamic_contrast_loss(q, c, y, tau=0.05),
             sample_constraint_loss(q, v, labels, idx, labels[idx], tau_v=0.05, n_neg=3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert (q @ c.t()).dtype == torch.bfloat16  # autocast is active
        amp = (dynamic_contrast_loss(q, c, y, tau=0.05),
               sample_constraint_loss(q, v, labels, idx, labels[idx], tau_v=0.05, n_neg=3))
    for a, b in zip(plain, amp, strict=True):
        assert b.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=0, atol=0)


# ---------------------------------------------------------------- L_img


S3 = math.sqrt(3) / 2


def _memory_case() -> tuple[torch.Tensor, torch.Tensor]:
    v = torch.tensor([
        [1.0, 0.0],    # slot 0, label 0
        [0.8, 0.6],    # slot 1, label 0
        [0.6, 0.8],    # slot 2, label 0
        [0.0, 1.0],    # slot 3, label 1 (alone in its cluster)
        [0.5, -S3],    # slot 4, outlier
        [-1.0, 0.0],   # slot 5, label 2
    ])
    labels = torch.tensor([0, 0, 0, 1, -1, 2])
    return v, labels


def test_sample_constraint_hand_value() -> None:
    v, labels = _memory_case()
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    idx = torch.tensor([0, 3, 2])
    lab = torch.tensor([0, 1, 0])
    tau = 0.5
    # anchor 0 (slot 0): positives q.v1 = 0.8, q.v2 = 0.6 -> s+ = 0.6;
    #   negatives q.v3 = 0, q.v4 = 0.5 (outlier), q.v5 = -1 -> 2 hardest: 0.5, 0
    l0 = math.log(math.exp(0.6 / tau) + math.exp(0.5 / tau) + math.exp(0.0 / tau)) - 0.6 / tau
    # anchor 1 (slot 3, label 1): no other slot with label 1 -> skipped
    # anchor 2 (slot 2): positives q.v0 = 0.6, q.v1 = 0.48 + 0.48 = 0.96 -> s+ = 0.6;
    #   negatives q.v3 = 0.8, q.v4 = 0.3 - 0.8 S3, q.v5 = -0.6 -> 2 hardest: 0.8, 0.3 - 0.8 S3
    n4 = 0.3 - 0.8 * S3
    l2 = math.log(math.exp(0.6 / tau) + math.exp(0.8 / tau) + math.exp(n4 / tau)) - 0.6 / tau
    got = sample_constraint_loss(q, v, labels, idx, lab, tau_v=tau, n_neg=2)
    assert got.item() == pytest.approx((l0 + l2) / 2, rel=1e-6)
    # numbers: l0 = log(3.3201 + 2.7183 + 1) - 1.2 = 0.7514,
    #          l2 = log(3.3201 + 4.9530 + 0.4558) - 1.2 = 0.9666
    assert got.item() == pytest.approx(0.8590, abs=1e-4)


def test_sample_constraint_uses_all_negatives_when_fewer_than_n_neg() -> None:
    v, labels = _memory_case()
    q = torch.tensor([[1.0, 0.0]])
    tau = 0.5
    # all three negatives 0.5, 0, -1 are used
    want = math.log(sum(math.exp(s / tau) for s in (0.6, 0.5, 0.0, -1.0))) - 0.6 / tau
    got = sample_constraint_loss(q, v, labels, torch.tensor([0]), torch.tensor([0]), tau_v=tau, n_neg=50)
    assert got.item() == pytest.approx(want, rel=1e-6)


def test_sample_constraint_no_positive_is_graph_zero() -> None:
    v, labels = _memory_case()
    q = torch.tensor([[0.0, 1.0]], requires_grad=True)
    got = sample_constraint_loss(q, v, labels, torch.tensor([3]), torch.tensor([1]), tau_v=0.5, n_neg=2)
    assert got.item() == 0.0
    assert got.requires_grad and got.grad_fn is not None
    got.backward()
    assert torch.equal(q.grad, torch.zeros_like(q))


def _slow_sample_constraint(q, v, mem_labels, idx, lab, tau, n_neg) -> torch.Tensor:
    """Obviously-correct per-anchor loop with Python lists."""
    losses = []
    for i in range(q.shape[0]):
        sims = [(float(q[i] @ v[j]), j) for j in range(v.shape[0])]
        pos = [s for s, j in sims if int(mem_labels[j]) == int(lab[i]) and j != int(idx[i])]
        if not pos:
            continue
        neg = sorted((s for s, j in sims if int(mem_labels[j]) != int(lab[i])), reverse=True)[:n_neg]
        s_pos = min(pos)
        denom = math.exp(s_pos / tau) + sum(math.exp(s / tau) for s in neg)
        losses.append(-math.log(math.exp(s_pos / tau) / denom))
    return torch.tensor(sum(losses) / len(losses) if losses else 0.0, dtype=torch.float64)


@pytest.mark.parametrize("n_neg", [1, 5, 100])
def test_sample_constraint_matches_slow_reference(n_neg: int) -> None:
    g = torch.Generator().manual_seed(3)
    n, d, b = 40, 8, 10
    v = F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)
    mem_labels = torch.randint(-1, 6, (n,), generator=g)
    idx = torch.randperm(n, generator=g)[:b]
    idx = idx[mem_labels[idx] >= 0]
    lab = mem_labels[idx]
    q = F.normalize(torch.randn(len(idx), d, generator=g, dtype=torch.float64), dim=1)
    got = sample_constraint_loss(q, v, mem_labels, idx, lab, tau_v=0.1, n_neg=n_neg)
    want = _slow_sample_constraint(q, v, mem_labels, idx, lab, 0.1, n_neg)
    torch.testing.assert_close(got, want)


def test_sample_constraint_gradcheck() -> None:
    g = torch.Generator().manual_seed(4)
    v = F.normalize(torch.randn(12, 4, generator=g, dtype=torch.float64), dim=1)
    mem_labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, -1, -1, 3, 3])
    idx = torch.tensor([0, 3, 6, 10])
    lab = mem_labels[idx]
    q = torch.randn(4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x: sample_constraint_loss(x, v, mem_labels, idx, lab, tau_v=0.5, n_neg=3), (q,)
    )


def test_sample_constraint_rejects_outlier_anchor() -> None:
    v, labels = _memory_case()
    with pytest.raises(ValueError, match="outliers"):
        sample_constraint_loss(v[:1], v, labels, torch.tensor([4]), torch.tensor([-1]), tau_v=0.5, n_neg=2)


# ---------------------------------------------------------------- total


def _memories() -> tuple[torch.Tensor, IdentityMemory, ImageMemory, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    feats = F.normalize(torch.randn(30, 8, generator=g), dim=1)
    labels = torch.arange(30) % 5
    labels[::7] = -1
    ident = IdentityMemory.from_features(feats, labels)
    image = ImageMemory(feats, labels)
    idx = torch.tensor([1, 2, 3, 4, 6, 8])
    q = F.normalize(torch.randn(6, 8, generator=g), dim=1).requires_grad_()
    return q, ident, image, idx, labels[idx]


def _total(q: torch.Tensor, ident: IdentityMemory, image: ImageMemory, idx: torch.Tensor, y: torch.Tensor,
           cfg: LossConfig) -> tuple[torch.Tensor, dict[str, float]]:
    return total_loss(q, {"targets": y, "indices": idx}, {"identity": ident, "image": image}, cfg.terms)


def test_total_loss_combines_terms_with_their_weights() -> None:
    q, ident, image, idx, y = _memories()
    cfg = LossConfig(lambda_img=0.3, n_neg=4)
    loss, parts = _total(q, ident, image, idx, y, cfg)
    opts = cfg.terms["identity"]
    l_id = dynamic_contrast_loss(q, ident.features, y, tau=opts.tau, factor=opts.factor, gamma=opts.gamma)
    l_img = sample_constraint_loss(q, image.features, image.labels, idx, y, tau_v=cfg.terms["image"].tau_v, n_neg=4)
    torch.testing.assert_close(loss, l_id + 0.3 * l_img)
    assert parts["loss"] == pytest.approx(loss.item())
    assert parts["loss_id"] == pytest.approx(l_id.item())
    assert parts["loss_img"] == pytest.approx(l_img.item())
    assert parts["delta_mean"] == pytest.approx(1.0)
    assert set(parts) == {"loss", "loss_id", "loss_img", "delta_mean", "delta_max", "p_mean", "negw_max",
                          "id_grad_scale", "img_anchor_frac"}
    loss.backward()
    assert q.grad is not None and q.grad.abs().sum() > 0


def test_total_loss_uses_only_the_configured_terms() -> None:
    q, ident, image, idx, y = _memories()
    # identity off (flat switch of older recipes): no centroid use at all
    cfg = LossConfig(identity=False, lambda_img=2.0, n_neg=4)
    assert list(cfg.terms) == ["image"]
    loss, parts = total_loss(q, {"targets": y, "indices": idx}, {"image": image}, cfg.terms)
    want = 2.0 * sample_constraint_loss(q, image.features, image.labels, idx, y, tau_v=0.05, n_neg=4)
    torch.testing.assert_close(loss, want)
    assert "loss_id" not in parts and "loss_img" in parts
    # image off (terms form, null removes): exactly L_id
    cfg = LossConfig(terms={"identity": {"factor": "none"}, "image": None})
    loss, parts = total_loss(q, {"targets": y, "indices": idx}, {"identity": ident}, cfg.terms)
    torch.testing.assert_close(loss, F.cross_entropy(q @ ident.features.t() / 0.05, y))
    assert "loss_img" not in parts
    with pytest.raises(ValueError, match="keep at least one"):
        LossConfig(identity=False, image=False)
    with pytest.raises(ValueError, match="unknown loss term 'nope'"):
        LossConfig(terms={"nope": {}})


def test_hybrid_identity_memory_averages_the_banks() -> None:
    q, ident, image, idx, y = _memories()
    hybrid = IdentityMemory(ident.features, rule="hybrid", momentum=0.5)
    hybrid.update(q.detach(), y)  # the banks part ways: hard member vs batch mean
    assert not torch.equal(hybrid.banks[0], hybrid.banks[1])
    terms = LossConfig(terms={"identity": {}}).terms
    loss, _ = total_loss(q, {"targets": y, "indices": idx}, {"identity": hybrid}, terms)
    factor = terms["identity"].factor
    want = [dynamic_contrast_loss(q, bank, y, tau=0.05, factor=factor, gamma=2.0) for bank in hybrid.banks]
    torch.testing.assert_close(loss, (want[0] + want[1]) / 2)


def test_total_loss_does_not_touch_memories() -> None:
    q, ident, image, idx, y = _memories()
    before = (ident.features.clone(), image.features.clone())
    loss, _ = _total(q, ident, image, idx, y, LossConfig())
    loss.backward()
    assert torch.equal(ident.features, before[0]) and torch.equal(image.features, before[1])
    assert not ident.features.requires_grad and ident.features.grad is None


def test_a_factor_can_weigh_hard_negatives() -> None:
    """docs/extending.md's `hardest_negative` reading: only expressible because factors see the logits."""

    def hardest_negative(inputs: FactorInputs, *, gamma: float) -> torch.Tensor:
        target = inputs.logits.gather(1, inputs.targets[:, None]).squeeze(1)
        w = torch.sigmoid(inputs.negative_logits().max(dim=1).values - target).pow(gamma)
        return w / w.mean().clamp_min(torch.finfo(w.dtype).tiny)

    # anchor 1's negative mass sits on ONE hard negative (logit 1.3); anchor 0's is spread over three
    logits = torch.tensor([[2.0, 0.0, 0.0, 0.0], [2.0, 1.3, -9.0, -9.0]])
    targets = torch.tensor([0, 0])
    p = torch.softmax(logits, 1)[:, 0]
    inputs = FactorInputs(logits, targets, p)
    delta = hardest_negative(inputs, gamma=2.0)
    assert delta[1] > delta[0] and delta.mean().item() == pytest.approx(1.0)
    # focal sees only p, so it cannot tell these anchors apart as sharply
    focal = focal_factor(inputs, gamma=2.0)
    assert (delta[1] / delta[0]) > (focal[1] / focal[0])
