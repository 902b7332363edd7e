"""Every bad-input case raises a DatasetError whose message names the file and the fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hcm.data import load_dataset
from hcm.errors import DatasetError
from tests import fake_datasets


def error_of(name: str, root: Path, **options) -> str:
    with pytest.raises(DatasetError) as info:
        load_dataset(name, root, **options)
    return str(info.value)


def test_no_dataset_under_root(tmp_path: Path):
    msg = error_of("market1501", tmp_path)
    assert str(tmp_path / "Market-1501-v15.09.15") in msg
    assert "unpack" in msg and "bounding_box_train" in msg


def test_root_does_not_exist(tmp_path: Path):
    msg = error_of("veri776", tmp_path / "nowhere")
    assert msg.startswith(f"{tmp_path / 'nowhere'}: folder does not exist") and "VeRi" in msg


def test_unknown_dataset(tmp_path: Path):
    msg = error_of("market", tmp_path)
    assert "market" in msg and "market1501" in msg  # lists the known names


def test_missing_split_folder(fake_market: Path):
    shutil.rmtree(fake_market / "query")
    msg = error_of("market1501", fake_market)
    assert msg.startswith(f"{fake_market / 'query'}: folder missing")
    assert "bounding_box_train/, query/, bounding_box_test/" in msg
    assert "unpack" in msg


def test_msmt_missing_folder_names_layouts(tmp_path: Path):
    folder = fake_datasets.make_msmt_lists(tmp_path, "V1")
    shutil.rmtree(folder / "test")
    msg = error_of("msmt17", folder)
    assert msg.startswith(f"{folder / 'test'}: folder missing")
    assert "msmt17-v1-lists" in msg and "list_query.txt" in msg


def test_msmt_unknown_layout_lists_layouts_tried(tmp_path: Path):
    from hcm.data.msmt17 import read_msmt17

    (tmp_path / "MSMT17_V1" / "images").mkdir(parents=True)
    with pytest.raises(DatasetError) as info:
        read_msmt17(tmp_path / "MSMT17_V1")
    msg = str(info.value)
    for layout in ("msmt17-v1-lists", "msmt17-v2-lists", "msmt17-market-style"):
        assert layout in msg
    assert "MSMT17_V1.tar.gz" in msg


def test_msmt_missing_list_file(tmp_path: Path):
    folder = fake_datasets.make_msmt_lists(tmp_path, "V1")
    (folder / "list_val.txt").unlink()
    msg = error_of("msmt17", folder)
    assert msg.startswith(f"{folder / 'list_val.txt'}: list file missing")
    # train-only does not need list_val.txt
    assert len(load_dataset("msmt17", folder, train_lists="train").train) == 4


def test_unparseable_file_name(fake_market: Path):
    fake_datasets.write_jpeg(fake_market / "bounding_box_train" / "person_2.jpg")
    msg = error_of("market1501", fake_market)
    assert msg.startswith(str(fake_market / "bounding_box_train" / "person_2.jpg"))
    assert "does not parse" in msg and "0002_c1s1_000451_03.jpg" in msg
    assert "Rename or remove" in msg


def test_many_unparseable_names_counted(fake_market: Path):
    for i in range(8):
        fake_datasets.write_jpeg(fake_market / "query" / f"img{i}.jpg")
    msg = error_of("market1501", fake_market)
    assert "8 file names do not parse" in msg and "(8 in all)" in msg
    assert "img0.jpg" in msg and "img7.jpg" not in msg  # only the first few are shown


def test_camera_out_of_range(fake_market: Path):
    fake_datasets.write_jpeg(fake_market / "bounding_box_test" / "0002_c7s1_000001_01.jpg")
    msg = error_of("market1501", fake_market)
    assert msg.startswith(str(fake_market / "bounding_box_test" / "0002_c7s1_000001_01.jpg"))
    assert "outside 1-6" in msg and "really Market-1501" in msg


def test_duke_folder_read_as_market_fails_on_cameras(fake_duke: Path):
    msg = error_of("market1501", fake_duke)
    assert "outside 1-6" in msg


def test_veri_camera_out_of_range(fake_veri: Path):
    fake_datasets.write_jpeg(fake_veri / "image_test" / "0002_c021_00000001_0.jpg")
    assert "outside 1-20" in error_of("veri776", fake_veri)


def test_list_names_missing_image(tmp_path: Path):
    folder = fake_datasets.make_msmt_lists(tmp_path, "V1")
    rel = (folder / "list_gallery.txt").read_text().splitlines()[2].split()[0]
    (folder / "test" / rel).unlink()
    msg = error_of("msmt17", folder)
    assert msg.startswith(f"{folder / 'list_gallery.txt'}: names 1 image(s) missing from {folder / 'test'}")
    assert rel in msg and "Re-extract" in msg


def test_list_from_other_version(tmp_path: Path):
    v1 = fake_datasets.make_msmt_lists(tmp_path, "V1")
    (v1 / "list_query.txt").write_text("9999/9999_000_01_0303morning_0000_0.jpg 9999\n")
    msg = error_of("msmt17", v1)
    assert "list_query.txt: names 1 image(s) missing" in msg and "V1 vs V2" in msg


def test_malformed_list_line(tmp_path: Path):
    folder = fake_datasets.make_msmt_lists(tmp_path, "V1")
    with open(folder / "list_train.txt", "a") as fh:
        fh.write("0000/broken_line_without_identity.jpg\n")
    msg = error_of("msmt17", folder)
    assert msg.startswith(f"{folder / 'list_train.txt'}: 1 line(s) not of the form")
    assert "line 5" in msg


def test_list_camera_field_out_of_range(tmp_path: Path):
    folder = fake_datasets.make_msmt_lists(tmp_path, "V1")
    rel = "0000/0000_100_16_0303morning_0100_0.jpg"
    fake_datasets.write_jpeg(folder / "train" / rel)
    with open(folder / "list_train.txt", "a") as fh:
        fh.write(f"{rel} 0\n")
    msg = error_of("msmt17", folder)
    assert str(folder / "list_train.txt") in msg and "not in 1-15" in msg and rel in msg


def test_empty_split(fake_market: Path):
    for f in (fake_market / "query").iterdir():
        if f.suffix == ".jpg":
            f.unlink()
    msg = error_of("market1501", fake_market)
    assert msg.startswith(f"{fake_market / 'query'}: the query split of market1501 is empty")
    assert "Re-extract" in msg


def test_empty_list_file(tmp_path: Path):
    folder = fake_datasets.make_msmt_lists(tmp_path, "V2")
    (folder / "list_query.txt").write_text("\n")
    msg = error_of("msmt17", folder)
    assert msg.startswith(f"{folder / 'list_query.txt'}: the query split of msmt17 is empty")


def test_bad_train_lists_value(fake_msmt_lists: Path):
    msg = error_of("msmt17", fake_msmt_lists, train_lists="val")
    assert "train_lists='val'" in msg and "'train+val'" in msg


def test_train_only_impossible_on_market_style_copy(fake_msmt_market_style: Path):
    msg = error_of("msmt17", fake_msmt_market_style, train_lists="train")
    assert msg.startswith(str(fake_msmt_market_style)) and "Market-style" in msg
    assert load_dataset("msmt17", fake_msmt_market_style, train_lists="train+val").layout == "msmt17-market-style"


def test_symlink_loop_in_an_image_folder_is_a_clear_error(fake_market: Path):
    """Issue 21, case 4: `ln -s b a; ln -s a b` raised OSError [Errno 40] from parsing.py."""
    folder = fake_market / "bounding_box_train"
    (folder / "0002_c1s1_000001_01.jpg").symlink_to(folder / "0002_c1s1_000002_01.jpg")
    (folder / "0002_c1s1_000002_01.jpg").symlink_to(folder / "0002_c1s1_000001_01.jpg")
    msg = error_of("market1501", fake_market)
    assert msg.startswith(f"{folder / '0002_c1s1_000001_01.jpg'}: 2 images are broken symbolic links")
    assert "link loop" in msg and "remove the links" in msg


def test_dangling_image_symlink_is_an_error_not_a_silent_skip(fake_market: Path):
    """Issue 21, case 6: a dangling image symlink was skipped with only a debug-level log line."""
    link = fake_market / "query" / "0002_c1s1_000009_01.jpg"
    link.symlink_to(fake_market / "elsewhere" / "gone.jpg")
    msg = error_of("market1501", fake_market)
    assert msg.startswith(f"{link}: image is a broken symbolic link") and "Restore the files" in msg


def test_missing_index_names_the_path_in_its_advice(tmp_path: Path):
    """Issue 21, case 6: the advice printed a literal `--out {path}` (f-string prefix missing)."""
    from hcm.data.dataset import ReIDDataset

    index = tmp_path / "nowhere.index.csv"
    with pytest.raises(DatasetError) as info:
        ReIDDataset.read_index(index)
    assert f"--out {index}`" in str(info.value) and "{path}" not in str(info.value)
