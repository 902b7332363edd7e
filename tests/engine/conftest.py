"""A tiny generated dataset shared by the training-loop tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from hcm.data import load_dataset

#: a tiny synth-market: 10 training identities x 4 images at 32x16
TINY = {"train_ids": 10, "test_ids": 6, "train_images": [4, 4], "gallery_images": [3, 3], "cams_per_id": [2, 3],
        "queries_per_id": 1, "person_size": [32, 16]}


@pytest.fixture(scope="package")
def data_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    ds = load_dataset("synth-market", root, synth_overrides=TINY)
    return ds.write_index(root / "synth-market.index.csv")
