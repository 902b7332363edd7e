"""The four real-dataset readers on tiny fake trees: counts, relabelling, cameras, layouts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from hcm.data import list_datasets, load_dataset
from hcm.errors import DatasetError
from tests import fake_datasets


def counts(df: pd.DataFrame) -> tuple[int, int]:
    """(identities, images) of a split table."""
    return int(df["orig_pid"].nunique()), len(df)


def names(df: pd.DataFrame) -> set[str]:
    return {Path(p).name for p in df["path"]}


def test_builtin_datasets_registered():
    assert {"market1501", "dukemtmcreid", "msmt17", "veri776"} <= set(list_datasets())


def test_market_counts_junk_distractors(fake_market: Path):
    ds = load_dataset("market1501", fake_market)
    assert ds.layout == "market1501"
    assert counts(ds.train) == (3, 6)
    assert counts(ds.query) == (3, 3)
    assert counts(ds.gallery) == (4, 6)  # identities 2, 7, 10 and the distractors 0
    assert not any(n.startswith("-1") for n in names(ds.gallery))
    assert sorted(set(ds.gallery["pid"])) == [0, 2, 7, 10]
    assert ds.meta["junk_dropped"] == {"train": 0, "query": 0, "gallery": 2}
    assert ds.meta["distractors"] == 2
    # non-image files are skipped, not errors
    assert not any(n in fake_datasets.JUNK_FILES for s in ("train", "query", "gallery")
                   for n in names(ds.split(s)))


def test_market_relabel_and_cameras(fake_market: Path):
    ds = load_dataset("market1501", fake_market)
    train = ds.train.set_index(ds.train["path"].map(lambda p: Path(p).name))
    # identities 2, 7, 10 -> 0, 1, 2 in increasing order of the original identity
    assert dict(zip(train["orig_pid"], train["pid"], strict=True)) == {2: 0, 7: 1, 10: 2}
    assert train.loc["0007_c6s1_000004_01.jpg", "camid"] == 5
    assert train.loc["0002_c1s1_000000_01.jpg", "camid"] == 0
    # test identities keep their original ids
    assert (ds.query["pid"] == ds.query["orig_pid"]).all()
    assert (ds.gallery["pid"] == ds.gallery["orig_pid"]).all()
    assert sorted(ds.gallery["camid"].unique()) == [0, 1, 2, 3, 5]
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in ds.train["path"])


def test_root_is_folder_or_parent(fake_market: Path):
    by_folder = load_dataset("market1501", fake_market)
    by_parent = load_dataset("market1501", fake_market.parent)
    assert by_folder.root == by_parent.root == fake_market
    pd.testing.assert_frame_equal(by_folder.gallery, by_parent.gallery)


def test_root_relative_path_gives_absolute_paths(fake_market: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(fake_market.parent)
    ds = load_dataset("market1501", ".")
    assert ds.root.is_absolute() and ds.root.name == "Market-1501-v15.09.15"


def test_torchreid_style_nesting(tmp_path: Path):
    fake_datasets.make_market(tmp_path / "market1501")
    ds = load_dataset("market1501", tmp_path)
    assert ds.root == tmp_path / "market1501" / "Market-1501-v15.09.15"


def test_duke(fake_duke: Path):
    # an option the dataset does not have is an error naming its options (MSMT17's train_lists is not Duke's)
    with pytest.raises(DatasetError, match=r"train_lists='train': Extra inputs .* \(options of dukemtmcreid: none\)"):
        load_dataset("dukemtmcreid", fake_duke.parent, train_lists="train")
    ds = load_dataset("dukemtmcreid", fake_duke.parent)
    assert ds.layout == "dukemtmcreid"
    assert (counts(ds.train), counts(ds.query), counts(ds.gallery)) == ((3, 4), (2, 2), (3, 4))
    assert sorted(ds.train["camid"].unique()) == [0, 1, 6, 7]
    assert sorted(ds.train["pid"].unique()) == [0, 1, 2]


def test_msmt_lists_train_plus_val(fake_msmt_lists: Path):
    ds = load_dataset("msmt17", fake_msmt_lists)
    version = fake_msmt_lists.name[-2:]
    assert ds.layout == f"msmt17-{version.lower()}-lists"
    assert ds.meta["version"] == version and ds.meta["train_lists"] == "train+val"
    assert (counts(ds.train), counts(ds.query), counts(ds.gallery)) == ((3, 6), (2, 2), (3, 5))
    assert sorted(ds.train["pid"].unique()) == [0, 1, 2]
    # camera = third "_" field of the file name, 0-based
    assert sorted(ds.train["camid"]) == sorted(c - 1 for c in (1, 3, 2, 15, 4, 6))
    assert sorted(ds.gallery["camid"]) == sorted(c - 1 for c in (2, 1, 10, 14, 7))
    # the unlisted image and the non-image files are not read
    assert "0005_999_03_0303morning_0999_0.jpg" not in names(ds.train)


def test_msmt_lists_train_only(fake_msmt_lists: Path):
    ds = load_dataset("msmt17", fake_msmt_lists.parent, train_lists="train")
    assert ds.meta["train_lists"] == "train"
    assert counts(ds.train) == (2, 4)
    assert sorted(ds.train["orig_pid"].unique()) == [0, 1]
    assert counts(ds.gallery) == (3, 5)


def test_msmt_v2_mask_folder_case_insensitive(tmp_path: Path):
    folder = fake_datasets.make_msmt_lists(tmp_path, "V2")
    (folder / "mask_train_v2").rename(folder / "mask_train_V2")
    ds = load_dataset("msmt17", tmp_path)
    assert ds.layout == "msmt17-v2-lists" and counts(ds.train) == (3, 6)
    assert all("/mask_train_V2/" in p for p in ds.train["path"])


def test_msmt_market_style(fake_msmt_market_style: Path):
    ds = load_dataset("msmt17", fake_msmt_market_style.parent)
    assert ds.layout == "msmt17-market-style"
    assert (counts(ds.train), counts(ds.query), counts(ds.gallery)) == ((2, 4), (2, 2), (3, 3))
    assert sorted(ds.train["camid"]) == [0, 1, 13, 14]  # two-digit cameras parsed whole
    assert sorted(ds.gallery["camid"]) == [2, 11, 14]


def test_veri(fake_veri: Path):
    ds = load_dataset("veri776", fake_veri.parent)
    assert ds.layout == "veri776"
    assert (counts(ds.train), counts(ds.query), counts(ds.gallery)) == ((3, 5), (2, 2), (2, 4))
    assert sorted(ds.train["camid"]) == [0, 4, 4, 12, 19]
    assert names(ds.query) == {"0002_c001_00000000_0.jpg", "0003_c007_00000001_0.jpg"}
    assert len(ds.gallery) == 4 and (ds.gallery["pid"] == ds.gallery["orig_pid"]).all()


def test_each_real_dataset_from_one_parent(fake_real_datasets: dict[str, Path], tmp_path: Path):
    for name, folder in fake_real_datasets.items():
        assert load_dataset(name, tmp_path).root == folder
