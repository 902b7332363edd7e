"""Validation of the features handed to a clusterer.

Every clusterer takes ``features``: an (N, d) array (numpy or torch, any float dtype) of
L2-normalised image features (method.md, "Pipeline" step 1). This module turns it into
the one form the algorithms use: a C-contiguous float32 numpy array with unit rows.

Policy on bad input:

* non-finite values (NaN/inf) are **refused** with :class:`FeatureError` naming the rows:
  they mean the network diverged or an image is corrupt, and clustering them would
  silently produce meaningless pseudo labels;
* all-zero rows are refused (they cannot be normalised and have no direction);
* rows whose norm differs from 1 by more than ``NORM_TOLERANCE`` are **normalised with a
  warning** (:class:`FeatureNormWarning`). The Jaccard distance is defined on the unit
  sphere (its weights use ``2 - 2 f_i . f_j``, the squared Euclidean distance of unit
  vectors), so unnormalised features cannot be used as they are; normalising is what the
  pipeline prescribes anyway, so refusing would only make the library harder to use on
  raw backbone outputs, while the warning makes the caller's mistake visible. Rows within
  the tolerance (float32 / fp16 rounding of features that were normalised) are used
  unchanged, exactly as the public Cluster Contrast / SpCL code does.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np

from hcm.errors import HCMError

logger = logging.getLogger(__name__)

#: largest |norm - 1| accepted as "already normalised" (fp16 features reach ~5e-4)
NORM_TOLERANCE = 1e-3


class FeatureError(HCMError):
    """Features handed to a clusterer are malformed (wrong shape, non-finite, zero rows)."""


class DegenerateFeaturesError(FeatureError):
    """The features have no neighbourhood structure (near-identical features, one giant
    neighbourhood): clustering them would take ~N^2 time and find nothing."""


class FeatureNormWarning(UserWarning):
    """Features were not L2-normalised and have been normalised."""


def _rows_text(rows: np.ndarray, limit: int = 10) -> str:
    shown = ", ".join(str(int(r)) for r in rows[:limit])
    more = f", ... ({len(rows)} rows in all)" if len(rows) > limit else ""
    return f"[{shown}{more}]"


def to_numpy_float32(features: Any, name: str = "features") -> np.ndarray:
    """Convert a numpy array or torch tensor to a C-contiguous float32 numpy array (no checks)."""
    if hasattr(features, "detach") and hasattr(features, "cpu"):  # a torch.Tensor
        tensor = features.detach().cpu()
        if tensor.is_floating_point():
            tensor = tensor.float()  # bf16/fp16 -> fp32 (numpy has no bf16)
        features = tensor.numpy()
    array = np.asarray(features)
    if not np.issubdtype(array.dtype, np.floating):
        raise FeatureError(
            f"{name}: expected floating-point features, got dtype {array.dtype}; "
            "pass the float features extracted by the model"
        )
    return np.ascontiguousarray(array, dtype=np.float32)


def prepare_features(features: Any, name: str = "features",
                     tol: float = NORM_TOLERANCE) -> np.ndarray:
    """Validate ``features`` and return them as C-contiguous float32 with unit-norm rows.

    Raises :class:`FeatureError` for a wrong shape, non-finite values or all-zero rows;
    normalises (with a :class:`FeatureNormWarning`) rows whose norm is off by more than
    ``tol``. See the module docstring for why.
    """
    x = to_numpy_float32(features, name)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise FeatureError(
            f"{name}: expected a non-empty (N, d) matrix of image features, got shape {x.shape}"
        )
    # a row sum is non-finite iff the row holds NaN/inf (or overflows: checked exactly);
    # this avoids an N x d temporary
    suspect = np.flatnonzero(~np.isfinite(x.sum(axis=1)))
    bad = suspect[~np.isfinite(x[suspect]).all(axis=1)]
    if bad.size:
        raise FeatureError(
            f"{name}: non-finite values (NaN/inf) in rows {_rows_text(bad)} of {x.shape[0]}; "
            "the model produced invalid features (diverged training: lower the learning rate; "
            "or a corrupt input image at those rows)"
        )
    norms = np.sqrt(np.einsum("nd,nd->n", x, x, dtype=np.float64))
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise FeatureError(
            f"{name}: all-zero rows {_rows_text(zero)} of {x.shape[0]} cannot be normalised; "
            "check the images and the model output at those rows"
        )
    off = np.abs(norms - 1.0)
    if float(off.max()) > tol:
        message = (
            f"{name}: {int((off > tol).sum())} of {x.shape[0]} rows are not L2-normalised "
            f"(norms {float(norms.min()):.4g}..{float(norms.max()):.4g}); normalising them. "
            "Pass L2-normalised features to silence this warning."
        )
        logger.warning(message)
        warnings.warn(message, FeatureNormWarning, stacklevel=2)
        x = np.ascontiguousarray(x / norms[:, None].astype(np.float32), dtype=np.float32)
    return x
