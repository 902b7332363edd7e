"""Pseudo labels for unsupervised training (method.md, Pipeline step 2).

* :func:`jaccard_distance` -- the k-reciprocal Jaccard distance as a sparse matrix;
* :func:`pseudo_labels` -- DBSCAN on it: labels (-1 = outlier) and a :class:`ClusterSummary`;
* :class:`Clusterer`, :data:`CLUSTERERS`, :func:`build_clusterer` -- the pluggable
  interface (``dbscan``, ``kmeans``) the trainer calls;
* :func:`label_agreement` -- diagnostics against true identities.

Design, in short (details in each module):

* memory: no N x N matrix anywhere. Peak memory is the features, the k-NN lists, the
  sparse weights (~N x 150 entries at most) and a bounded work block; ``pseudo_labels``
  keeps only the pairs at distance <= eps, the only ones DBSCAN looks at;
* exactness: the algorithm of method.md, step by step, checked entry by entry against a
  dense loop implementation (tests/cluster); k-NN ties are ordered by a documented rule
  (self first, then (float32-rounded distance, index)), so results never depend on how
  faiss orders ties;
* precision: softmax dot products in float32 (as the public code), everything after them
  in float64;
* determinism: same features, same labels (ids numbered by first appearance);
* input: numpy or torch, any float dtype; NaN/inf or all-zero rows are refused naming the
  rows; unnormalised rows are normalised with a warning (see :mod:`hcm.cluster.features`).
"""

from hcm.cluster.clusterers import (
    CLUSTERERS,
    Clusterer,
    DBSCANClusterer,
    KMeansClusterer,
    build_clusterer,
)
from hcm.cluster.dbscan import pseudo_labels
from hcm.cluster.features import FeatureError, FeatureNormWarning, prepare_features
from hcm.cluster.jaccard import jaccard_distance
from hcm.cluster.kmeans import kmeans_labels
from hcm.cluster.knn import KnnResult, exact_knn
from hcm.cluster.labels import canonical_labels
from hcm.cluster.metrics import label_agreement
from hcm.cluster.summary import ClusterSummary, StageTimer

__all__ = [
    "CLUSTERERS",
    "ClusterSummary",
    "Clusterer",
    "DBSCANClusterer",
    "FeatureError",
    "FeatureNormWarning",
    "KMeansClusterer",
    "KnnResult",
    "StageTimer",
    "build_clusterer",
    "canonical_labels",
    "exact_knn",
    "jaccard_distance",
    "kmeans_labels",
    "label_agreement",
    "prepare_features",
    "pseudo_labels",
]
