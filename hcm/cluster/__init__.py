"""Pseudo labels for unsupervised training (method.md, Pipeline step 2).

* :func:`jaccard_distance` -- the k-reciprocal Jaccard distance as a sparse matrix;
* :func:`pseudo_labels` -- DBSCAN on it: labels (-1 = outlier) and a :class:`ClusterSummary`;
* :class:`Clusterer`, :data:`CLUSTERERS`, :func:`build_clusterer` -- the pluggable
  interface (``dbscan``, ``kmeans``) the trainer calls;
* :func:`label_agreement` -- diagnostics against true identities.
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
