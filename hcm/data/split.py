"""Hold out training identities as a validation split (OpenUnReID style).

Model selection on the test set inflates results; a held-out part of the training
identities gives an honest validation set instead. The rule, deterministic in the seed:

1. Eligible identities have images in at least two cameras and at least one camera
   with two or more images (so the validation query has a true match, see 3).
2. ``n = round(fraction * K)`` of the K training identities are drawn without
   replacement from the eligible ones (``numpy.random.default_rng(seed)``).
3. Val query: for each held-out identity, one randomly drawn image from every camera
   in which that identity has two or more images. Val gallery: all the other images
   of the held-out identities. Every camera keeps at least one gallery image of the
   identity, so every query has a true match in another camera, which the standard
   protocol (same identity and camera removed) still counts.
4. Remaining train: the other identities, ``pid`` relabelled 0..K'-1. Val query and
   gallery keep the original identity (``pid = orig_pid``), like the test splits.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hcm.data.dataset import COLUMNS, relabel
from hcm.errors import DatasetError


def holdout_identities(
    train: pd.DataFrame, fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Split ``train`` into ``(remaining train, val query, val gallery)``; see the module docstring."""
    if not 0.0 < fraction < 1.0:
        raise DatasetError(f"val_fraction={fraction}: must lie strictly between 0 and 1")
    df = train.sort_values("path", kind="stable").reset_index(drop=True)
    ids = np.array(sorted(df["orig_pid"].unique()))
    n_hold = int(round(fraction * len(ids)))
    if n_hold < 1 or n_hold >= len(ids):
        raise DatasetError(
            f"val_fraction={fraction}: holds out {n_hold} of {len(ids)} training identities; "
            "choose a fraction that holds out at least one identity and keeps at least one"
        )
    per_cam = df.groupby(["orig_pid", "camid"]).size()
    cams = per_cam.groupby(level="orig_pid").size()
    multi = (per_cam >= 2).groupby(level="orig_pid").any()
    eligible = np.array(sorted(p for p in ids if cams[p] >= 2 and multi[p]))
    if len(eligible) < n_hold:
        raise DatasetError(
            f"val_fraction={fraction}: needs {n_hold} held-out identities with images in at "
            f"least two cameras (and two images in one camera), but only {len(eligible)} of "
            f"{len(ids)} training identities qualify; lower val_fraction"
        )
    rng = np.random.default_rng(seed)
    held = set(rng.choice(eligible, size=n_hold, replace=False).tolist())
    is_held = df["orig_pid"].isin(held)
    val = df[is_held]
    query_idx: list[int] = []
    for _key, group in val.groupby(["orig_pid", "camid"], sort=True):
        if len(group) >= 2:
            query_idx.append(int(group.index[rng.integers(len(group))]))
    is_query = df.index.isin(query_idx)
    query = _keep_original_ids(df[is_held & is_query])
    gallery = _keep_original_ids(df[is_held & ~is_query])
    remaining = relabel(df[~is_held]).reset_index(drop=True)
    return remaining[list(COLUMNS)], query, gallery


def _keep_original_ids(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["pid"] = out["orig_pid"]
    return out[list(COLUMNS)].reset_index(drop=True)
