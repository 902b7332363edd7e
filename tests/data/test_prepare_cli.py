"""`hcm prepare` end to end through hcm.cli.main."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from hcm.cli import main
from hcm.data.market1501 import looks_market_style, read_market1501
from hcm.data.registry import DATASETS, DatasetSpec, register_dataset
from tests import fake_datasets

GENERATED = "test-generated"


def _create(parent: Path, **_options) -> Path:
    return fake_datasets.make_market(parent, GENERATED)


def _read(folder: Path, **options):
    return replace(read_market1501(folder, **options), name=GENERATED, layout="generated")


if GENERATED not in DATASETS:  # a generated dataset, created under --root when absent
    register_dataset(DatasetSpec(
        name=GENERATED, folder_names=(GENERATED,),
        is_folder=lambda p: p.name == GENERATED and looks_market_style(p),
        reader=_read, create=_create, description="test-only generated dataset",
    ))


def prepare(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(["prepare", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_market_table_and_index(fake_market: Path, capsys):
    rc, out, _ = prepare(capsys, "market1501", "--root", str(fake_market.parent))
    assert rc == 0
    lines = out.splitlines()
    assert lines[0] == f"market1501: layout market1501, folder {fake_market}"
    assert lines[1].split() == ["split", "ids", "images", "cameras", "published", "ids", "published", "images"]
    assert lines[2].split() == ["train", "3", "6", "4", "751", "12,936"]
    assert lines[3].split() == ["query", "3", "3", "3", "750", "3,368"]
    assert lines[4].split() == ["gallery", "4", "6", "5", "751", "15,913"]
    assert "cameras in all: 5 (published 6)" in out  # camera 5 only had junk images
    assert "warning: cameras: 5 in all, published 6" in out
    assert ("warning: train: 6 images of 3 identities, published 12,936 of 751 "
            "(12,930 images missing, 748 identities missing): an incomplete copy?") in out
    index = fake_market.parent / "market1501.index.csv"  # default: beside the dataset folder
    assert f"index: {index}" in out
    assert index.is_file() and Path(f"{index}.json").is_file()


def test_rerun_is_idempotent(fake_veri: Path, capsys):
    args = ("veri776", "--root", str(fake_veri), "--check-images", "header")
    rc1, out1, _ = prepare(capsys, *args)
    index = fake_veri.parent / "veri776.index.csv"
    first = index.read_bytes(), Path(f"{index}.json").read_bytes()
    rc2, out2, _ = prepare(capsys, *args)
    assert rc1 == rc2 == 0 and out1 == out2
    assert (index.read_bytes(), Path(f"{index}.json").read_bytes()) == first


def test_custom_out_and_train_lists(fake_msmt_lists: Path, tmp_path: Path, capsys):
    out_path = tmp_path / "idx" / "m.csv"
    rc, out, _ = prepare(capsys, "msmt17", "--root", str(fake_msmt_lists), "--out", str(out_path),
                         "--train-lists", "train")
    assert rc == 0 and out_path.is_file()
    assert "note: train: the published counts are for train_lists='train+val'" in out
    train_line = next(line for line in out.splitlines() if line.startswith("train "))
    assert train_line.split() == ["train", "2", "4", "4", "-", "-"]


def test_bad_image_is_one_line_error(fake_market: Path, capsys):
    bad = fake_datasets.write_jpeg(fake_market / "query" / "0002_c4s1_000009_01.jpg", truncated=True)
    rc, out, err = prepare(capsys, "market1501", "--root", str(fake_market))
    assert rc == 2 and out == ""
    assert err.startswith(f"hcm prepare: error: {bad}: unreadable or truncated image")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (fake_market.parent / "market1501.index.csv").exists()
    # skipping the image check accepts the copy
    assert prepare(capsys, "market1501", "--root", str(fake_market), "--check-images", "none")[0] == 0


def test_missing_dataset_error(tmp_path: Path, capsys):
    rc, _, err = prepare(capsys, "dukemtmcreid", "--root", str(tmp_path))
    assert rc == 2 and err.startswith(f"hcm prepare: error: {tmp_path}: no dukemtmcreid dataset found")
    assert "DukeMTMC-reID/bounding_box_train" in err


def test_no_name_and_list(capsys):
    rc, _, err = prepare(capsys)
    assert rc == 2 and "hcm prepare --list" in err
    rc, out, _ = prepare(capsys, "--list")
    assert rc == 0
    for name, folder in [("market1501", "Market-1501-v15.09.15"), ("dukemtmcreid", "DukeMTMC-reID"),
                         ("msmt17", "MSMT17_V1"), ("veri776", "VeRi")]:
        lines = out.splitlines()
        at = next(i for i, text in enumerate(lines) if text.startswith(f"{name}:"))
        assert folder in lines[at + 1]


def test_generated_dataset_created_then_reused(tmp_path: Path, capsys):
    rc, out, _ = prepare(capsys, GENERATED, "--root", str(tmp_path))
    assert rc == 0 and (tmp_path / GENERATED / "query").is_dir()
    assert "no published statistics" in out and "warning" not in out
    index = tmp_path / f"{GENERATED}.index.csv"
    first = index.read_bytes()
    assert prepare(capsys, GENERATED, "--root", str(tmp_path))[1] == out
    assert index.read_bytes() == first


def test_image_store_built_by_prepare_and_then_found_by_a_run(fake_market: Path, capsys):
    import numpy as np

    from hcm.data.dataset import ReIDDataset
    from hcm.data.store import default_store_dir, open_store

    rc, out, _ = prepare(capsys, "market1501", "--root", str(fake_market), "--image-store", "32x16",
                         "--check-images", "none")
    assert rc == 0 and "image store:" in out and "32x16" in out
    index = fake_market.parent / "market1501.index.csv"
    ds = ReIDDataset.read_index(index)
    store_dir = default_store_dir(ds.root, ds.name)
    assert (store_dir / "32x16.npy").is_file()
    # a run finds the same store (same key) instead of building one
    paths = [*ds.train["path"], *ds.query["path"], *ds.gallery["path"]]
    before = (store_dir / "32x16.npy").stat().st_mtime_ns
    store = open_store(paths, (32, 16), store_dir, root=ds.root, progress=False)
    assert (store_dir / "32x16.npy").stat().st_mtime_ns == before
    assert store.array.shape == (len(paths), 32, 16, 3) and store.array.dtype == np.uint8
    rc, _, err = prepare(capsys, "market1501", "--root", str(fake_market), "--image-store", "32by16",
                         "--check-images", "none")
    assert rc != 0 and "HEIGHTxWIDTH" in err


@pytest.mark.parametrize("key", ["train_ids", "test_ids"])
def test_synth_set_leaving_a_split_empty_is_refused_before_generating(tmp_path: Path, capsys, key: str):
    """Issue 21, case 6: `--synth-set train_ids=0` generated 2,108 images, then said "Re-extract the
    dataset archive"."""
    rc, _, err = prepare(capsys, "synth-market", "--root", str(tmp_path), "--synth-set", f"{key}=0")
    assert rc == 2
    assert f"synthetic dataset parameter '{key}': at least 1" in err and "Re-extract" not in err
    assert list(tmp_path.iterdir()) == []  # nothing generated
