"""The decoded image store: same pixels as the per-image path, rebuilt on change, atomic, damage detected."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hcm.config import InputConfig
from hcm.data import store as store_mod
from hcm.data.images import load_image
from hcm.data.store import open_store, store_files
from hcm.data.transforms import ResizeToTensor, build_test_transform
from hcm.errors import DatasetError

SIZE = (32, 16)


@pytest.fixture()
def images(tmp_path: Path) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for i, shape in enumerate([(32, 16), (40, 24), (50, 20), (32, 16), (64, 32)]):
        path = tmp_path / "ds" / f"{i:04d}_c1s1_000001_00.jpg"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8)).save(path, quality=90)
        paths.append(str(path))
    return paths


def test_rows_are_the_per_image_resize_bit_for_bit(images: list[str], tmp_path: Path) -> None:
    store = open_store(images, SIZE, tmp_path / "store", progress=False)
    assert store.array.shape == (len(images), *SIZE, 3) and store.array.dtype == np.uint8
    rows = store.rows_of(images[::-1])
    assert list(rows) == list(range(len(images)))[::-1]
    for path, row in zip(images, store.rows_of(images), strict=True):
        want = ResizeToTensor(SIZE)(load_image(path))
        assert torch.equal(torch.from_numpy(np.array(store.array[row])).permute(2, 0, 1), want)
    # the test transform of a stored row equals the per-image test transform of the file
    cfg = InputConfig(height=SIZE[0], width=SIZE[1])
    from hcm.data.batch_augment import eval_batch
    batch = eval_batch(torch.from_numpy(np.array(store.array[:2])), cfg)
    for i in range(2):
        assert torch.equal(batch[i], build_test_transform(cfg)(load_image(images[i])))


def test_second_open_reuses_the_store(images: list[str], tmp_path: Path, monkeypatch) -> None:
    open_store(images, SIZE, tmp_path / "store", progress=False)
    calls = []
    monkeypatch.setattr(store_mod, "build_store", lambda *a, **k: calls.append(a))
    open_store(images, SIZE, tmp_path / "store", progress=False)
    assert calls == []


def test_changed_image_or_size_rebuilds(images: list[str], tmp_path: Path) -> None:
    first = open_store(images, SIZE, tmp_path / "store", progress=False)
    old = np.array(first.array[1])
    Image.new("RGB", (16, 32), (255, 0, 0)).save(images[1])
    os.utime(images[1], ns=(1, 10**18))  # a new mtime whatever the file system's resolution
    second = open_store(images, SIZE, tmp_path / "store", progress=False)
    assert not np.array_equal(old, second.array[1])
    assert (np.array(second.array[1])[..., 0] > 200).all()
    other = open_store(images, (16, 8), tmp_path / "store", progress=False)
    assert other.array.shape == (len(images), 16, 8, 3)
    assert store_files(tmp_path / "store", (16, 8))[0].is_file() and store_files(tmp_path / "store", SIZE)[0].is_file()
    fewer = open_store(images[:3], SIZE, tmp_path / "store", progress=False)
    assert len(fewer) == 3


@pytest.mark.parametrize("damage", ["truncate", "flip_bytes", "sidecar"])
def test_damaged_store_is_reported_in_one_line_and_rebuilt(images: list[str], tmp_path: Path, damage: str,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    store = open_store(images, SIZE, tmp_path / "store", progress=False)
    good = np.array(store.array)
    array_path, meta_path = store_files(tmp_path / "store", SIZE)
    if damage == "truncate":
        with open(array_path, "r+b") as fh:
            fh.truncate(array_path.stat().st_size - 100)
    elif damage == "flip_bytes":
        with open(array_path, "r+b") as fh:
            fh.seek(-50, os.SEEK_END)  # inside the last row, which is always checked
            fh.write(bytes(50))
    else:
        meta_path.write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="hcm.data.store"):
        rebuilt = open_store(images, SIZE, tmp_path / "store", progress=False)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "rebuilding" in warnings[0].getMessage()
    assert "\n" not in warnings[0].getMessage()
    np.testing.assert_array_equal(np.array(rebuilt.array), good)


def test_an_interrupted_build_leaves_no_store_and_the_old_one_intact(images: list[str], tmp_path: Path,
                                                                   monkeypatch) -> None:
    directory = tmp_path / "store"
    open_store(images, SIZE, directory, progress=False)
    array_path, meta_path = store_files(directory, SIZE)
    before = (array_path.read_bytes(), meta_path.read_text())

    def boom(path: str, size: tuple[int, int]) -> np.ndarray:
        raise KeyboardInterrupt("killed while building")

    monkeypatch.setattr(store_mod, "_decode", boom)
    os.utime(images[0], ns=(1, 2 * 10**18))  # stale: a rebuild starts
    with pytest.raises(KeyboardInterrupt):
        open_store(images, SIZE, directory, progress=False)
    assert (array_path.read_bytes(), meta_path.read_text()) == before  # untouched
    assert sorted(p.name for p in directory.iterdir()) == sorted([array_path.name, meta_path.name,
                                                                  array_path.with_suffix(".lock").name])
    assert json.loads(meta_path.read_text())["count"] == len(images)


def test_unknown_path_and_missing_image_are_clear_errors(images: list[str], tmp_path: Path) -> None:
    store = open_store(images, SIZE, tmp_path / "store", progress=False)
    with pytest.raises(DatasetError, match="not in the image store"):
        store.rows_of([images[0], str(tmp_path / "other.jpg")])
    with pytest.raises(DatasetError, match="missing"):
        open_store([*images, str(tmp_path / "gone.jpg")], SIZE, tmp_path / "store", progress=False)


def test_full_check_finds_damage_the_sampled_check_may_miss(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    paths = []
    for i in range(200):  # more rows than the sampled check reads
        p = tmp_path / "ds" / f"{i}.png"
        p.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, size=(8, 4, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    open_store(paths, (8, 4), tmp_path / "store", progress=False)
    array_path, meta_path = store_files(tmp_path / "store", (8, 4))
    key = json.loads(meta_path.read_text())["key"]
    sampled = set(np.unique(np.linspace(0, 199, store_mod.SAMPLE_ROWS).astype(np.int64)).tolist())
    row = next(r for r in range(200) if r not in sampled)
    arr = np.load(array_path, mmap_mode="r+")
    arr[row] = 255 - arr[row]
    arr.flush()
    del arr
    assert store_mod.verify_store(array_path, meta_path, key, 200, (8, 4)) is None
    assert "row" in store_mod.verify_store(array_path, meta_path, key, 200, (8, 4), full=True)


def test_unwritable_store_folder_is_a_clear_error(images: list[str], tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DatasetError, match="runtime.store_dir"):
        open_store(images, SIZE, blocker / "store", progress=False)
