"""Diagnostics of pseudo labels against true identities (never fed back into training).

All measures come from the contingency table of (true identity, pseudo label), never from
N x N matrices.

How outliers (pseudo label -1) count:

* ``ari``, ``nmi``: each outlier is its own singleton cluster (not one big "-1" cluster),
  so discarding an image costs what leaving it alone costs;
* ``pairwise_precision``, ``pairwise_recall``, ``pairwise_f``: over the pairs of
  **non-outlier** images only, as the issue specifies: precision = pairs in the same
  cluster that share an identity / pairs in the same cluster; recall = that / pairs of
  non-outlier images sharing an identity; F = their harmonic mean;
* ``pairwise_recall_all``: the recall over all images, where a pair with an outlier is a
  missed pair: it shows the price of the outliers, which the non-outlier recall hides.

A ratio with an empty denominator (e.g. precision when every cluster is a singleton) is
``nan``.
"""

from __future__ import annotations

import math

import numpy as np

from hcm.errors import HCMError


def _pairs(counts: np.ndarray) -> int:
    counts = np.asarray(counts, dtype=np.int64)
    return int((counts * (counts - 1) // 2).sum())


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


def outliers_as_singletons(labels: np.ndarray) -> np.ndarray:
    """Give every -1 its own new cluster id (above all existing ones)."""
    labels = np.asarray(labels, dtype=np.int64).copy()
    outliers = labels < 0
    start = labels.max(initial=-1) + 1
    labels[outliers] = start + np.arange(int(outliers.sum()))
    return labels


def label_agreement(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """ARI, NMI, pairwise precision/recall/F, cluster and outlier counts (module docstring)."""
    # imported here: sklearn costs ~2 s to import, which runs that never cluster need not pay
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
    from sklearn.metrics.cluster import contingency_matrix

    pred = np.asarray(pred).ravel()
    true = np.asarray(true).ravel()
    if pred.shape != true.shape:
        raise HCMError(
            f"label_agreement: {pred.size} pseudo labels but {true.size} true labels; "
            "pass one label of each kind per training image"
        )
    if pred.size == 0:
        raise HCMError("label_agreement: no labels given")
    kept = pred >= 0
    if kept.any():
        table = contingency_matrix(true[kept], pred[kept], sparse=True)
        same_both = _pairs(table.data)
        same_pred = _pairs(np.asarray(table.sum(axis=0)).ravel())
        same_true = _pairs(np.asarray(table.sum(axis=1)).ravel())
    else:
        same_both = same_pred = same_true = 0
    same_true_all = _pairs(np.unique(true, return_counts=True)[1])
    precision = _ratio(same_both, same_pred)
    recall = _ratio(same_both, same_true)
    if math.isnan(precision) or math.isnan(recall) or precision + recall == 0:
        f_score = math.nan if math.isnan(precision) or math.isnan(recall) else 0.0
    else:
        f_score = 2 * precision * recall / (precision + recall)
    singletons = outliers_as_singletons(pred)
    return {
        "ari": float(adjusted_rand_score(true, singletons)),
        "nmi": float(normalized_mutual_info_score(true, singletons)),
        "pairwise_precision": precision,
        "pairwise_recall": recall,
        "pairwise_f": f_score,
        "pairwise_recall_all": _ratio(same_both, same_true_all),
        "num_clusters": int(np.unique(pred[kept]).size),
        "num_true_ids": int(np.unique(true).size),
        "outlier_fraction": float((~kept).mean()),
    }
