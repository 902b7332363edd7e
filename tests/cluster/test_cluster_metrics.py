"""label_agreement against a brute-force count over all pairs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from hcm.cluster import label_agreement
from hcm.errors import HCMError


def _pairwise_brute(pred: np.ndarray, true: np.ndarray) -> tuple[float, float, float]:
    both = same_pred = same_true = same_true_all = 0
    for i, j in itertools.combinations(range(len(pred)), 2):
        same_true_all += true[i] == true[j]
        if pred[i] < 0 or pred[j] < 0:
            continue
        same_pred += pred[i] == pred[j]
        same_true += true[i] == true[j]
        both += pred[i] == pred[j] and true[i] == true[j]
    return both / same_pred, both / same_true, both / same_true_all


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 8, 90)
    pred = np.where(rng.random(90) < 0.6, true, rng.integers(0, 10, 90))
    pred[rng.random(90) < 0.2] = -1
    got = label_agreement(pred, true)
    precision, recall, recall_all = _pairwise_brute(pred, true)
    assert got["pairwise_precision"] == pytest.approx(precision)
    assert got["pairwise_recall"] == pytest.approx(recall)
    assert got["pairwise_recall_all"] == pytest.approx(recall_all)
    assert got["pairwise_f"] == pytest.approx(2 * precision * recall / (precision + recall))
    singletons = pred.copy()
    singletons[pred == -1] = 100 + np.arange((pred == -1).sum())
    assert got["ari"] == pytest.approx(adjusted_rand_score(true, singletons))
    assert got["nmi"] == pytest.approx(normalized_mutual_info_score(true, singletons))
    assert got["num_clusters"] == len(set(pred.tolist()) - {-1})
    assert got["outlier_fraction"] == pytest.approx((pred == -1).mean())


def test_perfect_and_degenerate_labels() -> None:
    true = np.array([0, 0, 1, 1, 2, 2])
    perfect = label_agreement(np.array([3, 3, 1, 1, 0, 0]), true)
    assert perfect["ari"] == 1.0 and perfect["pairwise_f"] == 1.0
    none = label_agreement(np.full(6, -1), true)
    assert math.isnan(none["pairwise_precision"]) and none["outlier_fraction"] == 1.0
    assert none["num_clusters"] == 0 and none["pairwise_recall_all"] == 0.0


def test_length_mismatch_is_an_error() -> None:
    with pytest.raises(HCMError, match="3 pseudo labels but 2 true labels"):
        label_agreement(np.zeros(3), np.zeros(2))
