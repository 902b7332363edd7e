"""Label post-processing shared by the clusterers."""

from __future__ import annotations

import numpy as np


def canonical_labels(labels: np.ndarray) -> np.ndarray:
    """Renumber cluster ids 0, 1, 2, ... in order of first appearance; -1 (outlier) stays.

    Makes the ids independent of how an algorithm happens to number its clusters, so
    that the same partition always gets the same int64 labels.

    >>> canonical_labels(np.array([5, -1, 2, 5, 2, 7])).tolist()
    [0, -1, 1, 0, 1, 2]
    """
    labels = np.asarray(labels, dtype=np.int64)
    out = np.full(labels.shape, -1, dtype=np.int64)
    clustered = labels >= 0
    if not clustered.any():
        return out
    ids, first, inverse = np.unique(labels[clustered], return_index=True, return_inverse=True)
    rank = np.empty(len(ids), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(ids))
    out[clustered] = rank[inverse]
    return out
