"""Property-based tests (hypothesis) of the metrics against the slow reference: ties, duplicate
features and distances, queries without a true match, NaN and infinities on either side.

Each property runs ``max_examples`` random cases (listed in docs/errors.md) with no deadline.
"""

from __future__ import annotations

import numpy as np
import pytest
from eval_reference import reference_rank_metrics
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hcm.errors import HCMError
from hcm.eval import evaluate_features, evaluate_rank, pairwise_distance

METRIC_EXAMPLES = 200
PROPERTY = settings(max_examples=METRIC_EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

NON_FINITE = [np.nan, np.inf, -np.inf]


@st.composite
def labelled(draw: st.DrawFn, max_q: int = 6, max_g: int = 12) -> tuple:
    """Query / gallery sizes and labels from few identities and cameras (many junk and no-match cases)."""
    nq, ng = draw(st.integers(1, max_q)), draw(st.integers(1, max_g))
    ids, cams = st.integers(0, 3), st.integers(0, 2)
    return (nq, ng, np.array(draw(st.lists(ids, min_size=nq, max_size=nq))),
            np.array(draw(st.lists(ids, min_size=ng, max_size=ng))),
            np.array(draw(st.lists(cams, min_size=nq, max_size=nq))),
            np.array(draw(st.lists(cams, min_size=ng, max_size=ng))))


def assert_matches_reference(res, dist: np.ndarray, qp, gp, qc, gc, max_rank: int) -> None:
    mAP, mINP, cmc, num_valid = reference_rank_metrics(dist, qp, gp, qc, gc, max_rank=max_rank)
    assert res.num_valid_queries == num_valid
    assert res.mAP == pytest.approx(mAP, abs=1e-9)
    assert res.mINP == pytest.approx(mINP, abs=1e-9)
    np.testing.assert_allclose(res.cmc, cmc, atol=1e-12)


@PROPERTY
@given(data=st.data(), labels=labelled())
def test_rank_metrics_equal_the_reference_with_ties_and_non_finite_values(data: st.DataObject, labels) -> None:
    """Distances from a tiny set of values: ties everywhere; a non-finite entry is always refused."""
    nq, ng, qp, gp, qc, gc = labels
    values = st.sampled_from([0.0, 0.25, 0.5, 1.0, 1.0, 2.0, *NON_FINITE])
    dist = data.draw(arrays(np.float64, (nq, ng), elements=values))
    max_rank = data.draw(st.integers(1, 15))
    reference = reference_rank_metrics(np.nan_to_num(dist), qp, gp, qc, gc, max_rank=max_rank)
    event("non-finite" if not np.isfinite(dist).all() else "no valid query" if reference[3] == 0 else "scored")
    if not np.isfinite(dist).all():
        with pytest.raises(HCMError, match="NaN or infinite"):
            evaluate_rank(dist, qp, gp, qc, gc, max_rank=max_rank)
    elif reference[3] == 0:
        with pytest.raises(HCMError, match="no valid query"):
            evaluate_rank(dist, qp, gp, qc, gc, max_rank=max_rank)
    else:
        assert_matches_reference(evaluate_rank(dist, qp, gp, qc, gc, max_rank=max_rank), dist, qp, gp, qc, gc,
                                 max_rank)


@PROPERTY
@given(data=st.data(), labels=labelled(), metric=st.sampled_from(["cosine", "euclidean"]),
       chunk=st.one_of(st.none(), st.integers(1, 4)))
def test_features_score_like_the_reference_or_are_refused(data: st.DataObject, labels, metric: str, chunk) -> None:
    """Features from small integers (duplicate rows, equal distances, zero vectors); NaN / +-inf placed in
    the query side, the gallery side, both or neither."""
    nq, ng, qp, gp, qc, gc = labels
    dim = data.draw(st.integers(1, 4))
    small = st.integers(-2, 2).map(float)
    qf = data.draw(arrays(np.float32, (nq, dim), elements=small))
    gf = data.draw(arrays(np.float32, (ng, dim), elements=small))
    poisoned = data.draw(st.sampled_from(["none", "query", "gallery", "both"]))
    for side, x in (("query", qf), ("gallery", gf)):
        if poisoned in (side, "both"):
            cells = data.draw(st.lists(st.tuples(st.integers(0, x.shape[0] - 1), st.integers(0, dim - 1)),
                                       min_size=1, max_size=x.size))
            for r, c in cells:
                x[r, c] = data.draw(st.sampled_from(NON_FINITE))
    event(f"poisoned: {poisoned}")
    call = dict(metric=metric, chunk_size=chunk, max_rank=10, progress=False)
    if poisoned != "none":
        which = "query" if poisoned in ("query", "both") else "gallery"
        with pytest.raises(HCMError, match=f"{which} features contain NaN or infinite"):
            evaluate_features(qf, gf, qp, gp, qc, gc, **call)
        return
    dist = pairwise_distance(qf, gf, metric).numpy()
    if reference_rank_metrics(dist, qp, gp, qc, gc)[3] == 0:
        with pytest.raises(HCMError, match="no valid query"):
            evaluate_features(qf, gf, qp, gp, qc, gc, **call)
        return
    assert_matches_reference(evaluate_features(qf, gf, qp, gp, qc, gc, **call), dist, qp, gp, qc, gc, 10)
