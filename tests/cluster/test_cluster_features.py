"""Feature validation: non-finite and zero rows refused, unnormalised rows normalised with a warning."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from cluster_synthetic import clustered

from hcm.cluster import FeatureError, FeatureNormWarning, jaccard_distance, prepare_features
from hcm.errors import HCMError


def test_normalised_features_pass_unchanged() -> None:
    x, _ = clustered(20, 8, 2, 0.2, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = prepare_features(x)
    np.testing.assert_array_equal(out, x)
    assert out.dtype == np.float32 and out.flags["C_CONTIGUOUS"]


def test_non_finite_rows_are_refused_and_named() -> None:
    x, _ = clustered(30, 8, 2, 0.2, seed=0)
    x[3, 1] = np.nan
    x[17, 0] = np.inf
    with pytest.raises(FeatureError, match=r"rows \[3, 17\] of 30") as info:
        prepare_features(x)
    assert isinstance(info.value, HCMError)
    with pytest.raises(FeatureError, match="non-finite"):
        jaccard_distance(torch.from_numpy(x), 5, 2)


def test_many_bad_rows_are_summarised() -> None:
    x = np.full((40, 4), np.nan, dtype=np.float32)
    with pytest.raises(FeatureError, match=r"\.\.\. \(40 rows in all\)"):
        prepare_features(x)


def test_zero_rows_are_refused() -> None:
    x, _ = clustered(10, 8, 2, 0.2, seed=0)
    x[4] = 0.0
    with pytest.raises(FeatureError, match=r"all-zero rows \[4\]"):
        prepare_features(x)


def test_unnormalised_features_are_normalised_with_a_warning() -> None:
    x, _ = clustered(60, 16, 4, 0.3, seed=1)
    scaled = x * np.linspace(0.5, 3.0, 60, dtype=np.float32)[:, None]
    with pytest.warns(FeatureNormWarning, match="not L2-normalised"):
        out = prepare_features(scaled)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    with pytest.warns(FeatureNormWarning):
        d_scaled = jaccard_distance(scaled, 10, 3)
    d_unit = jaccard_distance(x, 10, 3)
    np.testing.assert_allclose(d_scaled.toarray(), d_unit.toarray(), atol=1e-5)


def test_shape_and_dtype_errors() -> None:
    with pytest.raises(FeatureError, match=r"shape \(5,\)"):
        prepare_features(np.ones(5, dtype=np.float32))
    with pytest.raises(FeatureError, match=r"shape \(0, 4\)"):
        prepare_features(np.ones((0, 4), dtype=np.float32))
    with pytest.raises(FeatureError, match="dtype int64"):
        prepare_features(np.ones((3, 4), dtype=np.int64))


def test_torch_half_precision_is_accepted() -> None:
    x, _ = clustered(20, 8, 2, 0.2, seed=0)
    # fp16 rounding moves a unit norm by at most 2^-11 < NORM_TOLERANCE: used as is
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = prepare_features(torch.from_numpy(x).half())
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, torch.from_numpy(x).half().float().numpy())
    # bf16 (8-bit mantissa) can move it further: normalised with the warning
    with pytest.warns(FeatureNormWarning):
        out = prepare_features(torch.from_numpy(x).to(torch.bfloat16))
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
