"""Holding out training identities as a validation split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hcm.data.dataset import make_table
from hcm.data.split import holdout_identities
from hcm.errors import DatasetError


def train_table(n_ids: int = 20, seed: int = 0) -> pd.DataFrame:
    """Identities with 1-4 cameras and 1-3 images per camera; ids 100, 103, ... (not 0-based)."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n_ids):
        pid = 100 + 3 * k
        for cam in rng.choice(6, size=rng.integers(1, 5), replace=False):
            for j in range(rng.integers(1, 4)):
                rows.append((f"/d/{pid}_c{cam}_{j}.jpg", k, int(cam), pid))
    return make_table(rows)


def test_partition_and_rules():
    train = train_table()
    rest, query, gallery = holdout_identities(train, 0.25, seed=3)
    held = set(query["orig_pid"]) | set(gallery["orig_pid"])
    assert len(held) == 5  # round(0.25 * 20)
    # a partition of the images, with disjoint identities
    assert sorted(pd.concat([rest, query, gallery])["path"]) == sorted(train["path"])
    assert not held & set(rest["orig_pid"])
    # remaining train relabelled 0..K'-1 in order of the original identity; val keeps ids
    assert sorted(rest["pid"].unique()) == list(range(15))
    order = rest.drop_duplicates("orig_pid").sort_values("orig_pid")
    assert list(order["pid"]) == list(range(15))
    assert (query["pid"] == query["orig_pid"]).all() and (gallery["pid"] == gallery["orig_pid"]).all()
    for pid in held:
        imgs = train[train["orig_pid"] == pid]
        per_cam = imgs.groupby("camid").size()
        q = query[query["orig_pid"] == pid]
        g = gallery[gallery["orig_pid"] == pid]
        # one query per camera holding >= 2 images of the identity, none elsewhere
        assert sorted(q["camid"]) == sorted(per_cam[per_cam >= 2].index)
        assert len(q) >= 1 and per_cam.size >= 2
        # each query keeps a true match in another camera
        for cam in q["camid"]:
            assert (g["camid"] != cam).any()


def test_deterministic_and_order_independent():
    train = train_table()
    a = holdout_identities(train, 0.3, seed=7)
    b = holdout_identities(train.sample(frac=1.0, random_state=1), 0.3, seed=7)
    for x, y in zip(a, b, strict=True):
        pd.testing.assert_frame_equal(x, y)
    others = [set(holdout_identities(train, 0.3, seed=s)[1]["orig_pid"]) for s in range(8)]
    assert len({frozenset(o) for o in others}) > 1  # the seed matters


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_fraction_out_of_range(fraction: float):
    with pytest.raises(DatasetError, match="strictly between 0 and 1"):
        holdout_identities(train_table(), fraction, seed=0)


def test_fraction_too_small_for_any_identity():
    with pytest.raises(DatasetError, match="holds out 0 of 20"):
        holdout_identities(train_table(), 0.01, seed=0)


def test_too_few_eligible_identities():
    # every identity in a single camera: no validation query could find a match
    rows = [(f"/d/{p}_{j}.jpg", p, 0, p) for p in range(10) for j in range(3)]
    with pytest.raises(DatasetError, match="only 0 of 10 training identities qualify"):
        holdout_identities(make_table(rows), 0.2, seed=0)
