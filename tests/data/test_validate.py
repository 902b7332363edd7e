"""Image checks, the published statistics and the comparison with them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from hcm.commands.prepare import CHECK_MODES as CLI_CHECK_MODES
from hcm.data import load_dataset
from hcm.data.dataset import make_table
from hcm.data.stats import published_stats, stats_table
from hcm.data.validate import (
    CHECK_MODES,
    check_images,
    compare_with_published,
    dataset_paths,
    image_problem,
)
from hcm.errors import DatasetError
from tests import fake_datasets


def test_cli_choices_match_validate():
    assert CLI_CHECK_MODES == CHECK_MODES


# ----------------------------------------------------------------- image checks
def test_good_images_pass_every_mode(fake_market: Path):
    paths = dataset_paths(load_dataset("market1501", fake_market))
    for mode in ("full", "header"):
        assert check_images(paths, mode, workers=2) == len(paths) == 15
    assert check_images(paths, "none") == 0


@pytest.mark.parametrize("mode", ["full", "header"])
def test_truncated_jpeg_detected(tmp_path: Path, mode: str):
    bad = fake_datasets.write_jpeg(tmp_path / "0002_c1s1_000001_01.jpg", truncated=True)
    good = fake_datasets.write_jpeg(tmp_path / "0002_c1s1_000002_01.jpg")
    assert image_problem(str(good), mode) is None
    assert image_problem(str(bad), mode)
    with pytest.raises(DatasetError) as info:
        check_images([str(good), str(bad)], mode, workers=1)
    msg = str(info.value)
    assert msg.startswith(f"{bad}: unreadable or truncated image (--check-images {mode})")
    assert "Re-extract" in msg and "hcm prepare" in msg and str(good) not in msg


def test_not_an_image_detected(tmp_path: Path):
    bad = tmp_path / "0001_c1s1_000001_01.jpg"
    bad.write_bytes(b"<html>404 not found</html>")
    assert image_problem(str(bad), "header")
    assert image_problem(str(tmp_path / "gone.jpg"), "full") == "file missing"


def test_check_none_skips_bad_files(tmp_path: Path):
    bad = fake_datasets.write_jpeg(tmp_path / "a.jpg", truncated=True)
    assert check_images([str(bad)], "none") == 0


def test_many_bad_images_reported_as_count(tmp_path: Path):
    paths = [str(fake_datasets.write_jpeg(tmp_path / f"{i:04d}_c1s1_0_01.jpg", truncated=True))
             for i in range(9)]
    with pytest.raises(DatasetError) as info:
        check_images(paths, "full", workers=3)
    msg = str(info.value)
    assert "9 unreadable or truncated images" in msg and "(9 in all)" in msg
    assert paths[0] in msg and paths[4] in msg and paths[8] not in msg
    assert "\n" not in msg  # the CLI prints it on one line


def test_bad_check_mode():
    with pytest.raises(DatasetError, match="--check-images 'fast'"):
        check_images(["x.jpg"], "fast")


# ----------------------------------------------------------- published numbers
def test_stats_file_has_the_reference_numbers():
    table = stats_table()
    assert list(table["dataset"]) == ["market1501", "dukemtmcreid", "msmt17", "veri776"]
    m = published_stats("market1501")
    assert m.images == {"train": 12936, "query": 3368, "gallery": 15913}
    assert m.ids == {"train": 751, "query": 750, "gallery": 751} and m.cameras == 6
    msmt = published_stats("msmt17")
    assert msmt.images == {"train": 32621, "query": 11659, "gallery": 82161}
    assert msmt.train_lists == "train+val" and msmt.cameras == 15
    assert published_stats("dukemtmcreid").ids["gallery"] == 1110
    assert published_stats("veri776").images["gallery"] == 11579
    assert published_stats("synth-market") is None


def full_size_copy(name: str, drop_train: int = 0, extra_gallery: int = 0) -> object:
    """A dataset whose tables have exactly the published counts (no files behind them)."""
    pub = published_stats(name)
    tables = {}
    for split in ("train", "query", "gallery"):
        n, k = pub.images[split], pub.ids[split]
        n += extra_gallery if split == "gallery" else 0
        n -= drop_train if split == "train" else 0
        rows = [(f"/d/{split}/{i}.jpg", i % k, i % pub.cameras, i % k) for i in range(n)]
        tables[split] = make_table(rows)
    from hcm.data.dataset import ReIDDataset

    return ReIDDataset(name=name, root=Path("/d"), layout=name, meta={}, **tables)


def test_full_copy_matches():
    comp = compare_with_published(full_size_copy("market1501"))
    assert comp.matches and comp.differences == [] and comp.cameras == 6
    assert list(comp.table["published_images"]) == [12936, 3368, 15913]


def test_copy_that_differs_says_how():
    comp = compare_with_published(full_size_copy("market1501", drop_train=6, extra_gallery=2))
    assert not comp.matches
    assert comp.differences == [
        "train: 12,930 images of 751 identities, published 12,936 of 751 (6 images missing): "
        "an incomplete copy? Re-extract the archive (fine if you use a subset on purpose)",
        "gallery: 15,915 images of 751 identities, published 15,913 of 751 (2 images extra): "
        "files added to the folders, or another release of the dataset?",
    ]


def test_identities_and_cameras_differences():
    ds = full_size_copy("dukemtmcreid")
    query = ds.query.copy()
    query.loc[query["orig_pid"] == 5, "orig_pid"] = 6  # one identity fewer
    gallery = ds.gallery[ds.gallery["camid"] != 7]  # camera 8 gone
    comp = compare_with_published(replace(ds, query=query, gallery=gallery))
    text = "\n".join(comp.differences)
    assert "query: 2,228 images of 701 identities, published 2,228 of 702 (1 identity missing)" in text
    assert "\ncameras:" not in "\n" + text  # train and query still have camera 8
    gallery_only = replace(ds, train=ds.train[ds.train["camid"] != 7],
                           query=ds.query[ds.query["camid"] != 7], gallery=gallery)
    text = "\n".join(compare_with_published(gallery_only).differences)
    assert "cameras: 7 in all, published 8" in text


def test_msmt_train_only_not_compared():
    ds = full_size_copy("msmt17", drop_train=2373)
    comp = compare_with_published(replace(ds, meta={"train_lists": "train"}))
    assert comp.matches and comp.table.loc[0, "published_images"] is None
    assert "not compared" in comp.notes[0]
    comp = compare_with_published(replace(ds, meta={"train_lists": "train+val"}))
    assert any(d.startswith("train: 30,248 images of 1,041 identities, published 32,621 of 1,041 (2,373 images") for d in comp.differences)


def test_generated_dataset_has_nothing_to_compare():
    ds = replace(full_size_copy("veri776"), name="synth-x")
    comp = compare_with_published(ds)
    assert comp.published is None and not comp.matches and comp.differences == []
    assert pd.isna(comp.table["published_ids"]).all()


def test_mixed_difference_and_singulars():
    ds = full_size_copy("veri776")
    gallery = ds.gallery[ds.gallery["orig_pid"] != 3]  # one identity fewer ...
    gallery = pd.concat([gallery, gallery.iloc[:100]])  # ... but more images
    query = ds.query.iloc[1:]  # one image fewer
    diffs = compare_with_published(replace(ds, gallery=gallery, query=query)).differences
    assert diffs[0].startswith("query: 1,677 images of 200 identities, published 1,678 of 200 (1 image missing)")
    n = len(gallery)
    assert diffs[1] == (
        f"gallery: {n:,} images of 199 identities, published 11,579 of 200 "
        f"({n - 11579:,} images extra, 1 identity missing): a different copy or release of the dataset?"
    )


@pytest.mark.parametrize("fmt", ["PNG", "BMP"])
def test_other_formats(tmp_path: Path, fmt: str):
    path = tmp_path / f"0001_c1s1_000001_01.{fmt.lower()}"
    Image.new("RGB", (4, 8), (1, 2, 3)).save(path, format=fmt)
    assert image_problem(str(path), "header") is None and image_problem(str(path), "full") is None
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert image_problem(str(path), "full")
    if fmt == "PNG":  # BMP has no end marker: header mode cannot tell
        assert "truncated" in image_problem(str(path), "header")
