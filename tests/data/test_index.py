"""The index file written by `hcm prepare`: round trip and byte-identical rewrites."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hcm.data import ReIDDataset, load_dataset


def test_round_trip_each_layout(fake_real_datasets: dict[str, Path], tmp_path: Path):
    for name in fake_real_datasets:
        ds = load_dataset(name, tmp_path)
        index = ds.write_index(tmp_path / f"{name}.index.csv")
        back = ReIDDataset.read_index(index)
        assert (back.name, back.layout, back.root, back.meta) == (ds.name, ds.layout, ds.root, ds.meta)
        for split in ("train", "query", "gallery"):
            want = ds.split(split).sort_values("path").reset_index(drop=True)
            pd.testing.assert_frame_equal(back.split(split), want)


def test_written_twice_byte_identical(fake_msmt_lists: Path, tmp_path: Path):
    a = load_dataset("msmt17", fake_msmt_lists).write_index(tmp_path / "a.csv")
    first = (a.read_bytes(), Path(f"{a}.json").read_bytes())
    load_dataset("msmt17", fake_msmt_lists).write_index(a)
    assert (a.read_bytes(), Path(f"{a}.json").read_bytes()) == first
    assert a.read_text().splitlines()[0] == "split,path,pid,camid,orig_pid"
    train_dir = "train" if fake_msmt_lists.name.endswith("V1") else "mask_train_v2"
    assert f"train,{train_dir}/0000/0000_000_01_0303morning_0000_0.jpg,0,0,0" in a.read_text()
