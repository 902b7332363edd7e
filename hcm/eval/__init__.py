"""Re-ID evaluation (``method.md``, "Evaluation protocol").

- :func:`evaluate_rank`: mAP, CMC and mINP of a query x gallery distance matrix.
- :func:`evaluate_features`: the same from features, distances computed block by block
  (never the whole matrix), optionally with k-reciprocal re-ranking.
- :func:`pairwise_distance`: cosine / squared-Euclidean distances (small sets).
- :func:`re_ranking`: k-reciprocal re-ranking of dense distance matrices.
- :func:`extract_features`: batched, L2-normalised embeddings of image files.
"""

from hcm.eval.distance import pairwise_distance
from hcm.eval.evaluate import evaluate_features
from hcm.eval.extract import extract_features
from hcm.eval.metrics import RankResult, evaluate_rank
from hcm.eval.rerank import estimate_rerank_memory, re_ranking

__all__ = [
    "RankResult",
    "estimate_rerank_memory",
    "evaluate_features",
    "evaluate_rank",
    "extract_features",
    "pairwise_distance",
    "re_ranking",
]
