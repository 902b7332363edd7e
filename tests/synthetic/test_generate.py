"""generate(): determinism, idempotence, manifest checks, atomicity, and the real layouts' names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from hcm.data.synthetic import generate
from hcm.data.synthetic.generate import IMAGES_CSV, MANIFEST
from hcm.errors import DatasetError
from tests.synthetic.helpers import file_hashes, small

MARKET_RE = re.compile(r"([-\d]+)_c(\d)")
VERI_RE = re.compile(r"([-\d]+)_c(\d+)")


def _jpgs(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.jpg"))


@pytest.mark.parametrize("name", ["synth-market", "synth-veri"])
def test_same_spec_and_seed_give_byte_identical_files_whatever_the_workers(
        name: str, generated: dict[str, Path], tmp_path: Path) -> None:
    again = generate(name, tmp_path, overrides=small(name), progress=False, workers=2)
    assert file_hashes(again) == file_hashes(generated[name])


def test_another_seed_gives_other_images(generated: dict[str, Path], tmp_path: Path) -> None:
    other = generate("synth-market", tmp_path, seed=1, overrides=small("synth-market"), progress=False)
    a, b = file_hashes(generated["synth-market"]), file_hashes(other)
    assert set(a.values()).isdisjoint({v for k, v in b.items() if k.endswith(".jpg")})


def test_existing_folder_with_the_same_manifest_is_left_alone(generated: dict[str, Path]) -> None:
    folder = generated["synth-market"]
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    assert generate("synth-market", folder.parent, overrides=small("synth-market"), progress=False) == folder
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == before


def test_existing_folder_with_other_settings_is_an_error(generated: dict[str, Path]) -> None:
    parent = generated["synth-market"].parent
    with pytest.raises(DatasetError, match=r"train_ids 6 \(wanted 7\).*[Dd]elete"):
        generate("synth-market", parent, overrides=small("synth-market", train_ids=7), progress=False)
    with pytest.raises(DatasetError, match=r"seed 0 \(wanted 3\)"):
        generate("synth-market", parent, seed=3, overrides=small("synth-market"), progress=False)


def test_manifest_from_before_a_later_parameter_matches_its_earlier_value(generated: dict[str, Path]) -> None:
    # a folder generated before `camera_draw` existed has no such key; its cameras are the
    # independent draw, so it matches camera_draw=independent and nothing else
    folder = generated["synth-market"]
    path = folder / MANIFEST
    original = path.read_text()
    manifest = json.loads(original)
    del manifest["spec"]["camera_draw"]
    path.write_text(json.dumps(manifest))
    try:
        assert generate("synth-market", folder.parent, progress=False,
                        overrides=small("synth-market", camera_draw="independent")) == folder
        with pytest.raises(DatasetError, match=r"camera_draw None \(wanted 'stratified'\)"):
            generate("synth-market", folder.parent, overrides=small("synth-market"), progress=False)
    finally:
        path.write_text(original)


def test_folder_that_is_not_generated_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "synth-duke").mkdir()
    with pytest.raises(DatasetError, match="not a generated synthetic dataset"):
        generate("synth-duke", tmp_path, overrides=small("synth-duke"), progress=False)


@pytest.mark.parametrize("workers", [1, 2])
def test_interrupted_generation_leaves_nothing(tmp_path: Path, workers: int) -> None:
    calls = []

    def stop(done: int, total: int) -> None:
        calls.append((done, total))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate("synth-market", tmp_path, overrides=small("synth-market"), progress=stop, workers=workers)
    assert calls and calls[0][0] < calls[0][1]
    assert list(tmp_path.iterdir()) == []


def test_market_layout_names_parse_like_the_real_set(generated: dict[str, Path]) -> None:
    folder = generated["synth-market"]
    pids: dict[str, list[int]] = {}
    for split in ("bounding_box_train", "query", "bounding_box_test"):
        files = _jpgs(folder / split)
        assert files, split
        pids[split] = []
        for f in files:
            m = MARKET_RE.match(f.name)
            assert m and re.fullmatch(r"(-1|\d{4})_c\ds\d_\d{6}_\d{2}\.jpg", f.name), f.name
            assert 1 <= int(m.group(2)) <= 6
            pids[split].append(int(m.group(1)))
    gallery = pids["bounding_box_test"]
    assert gallery.count(-1) == 3 and gallery.count(0) == 4  # junk and distractors, gallery only
    assert -1 not in pids["query"] + pids["bounding_box_train"] and 0 not in pids["query"] + pids["bounding_box_train"]
    assert set(pids["query"]) <= set(gallery)
    assert not set(pids["bounding_box_train"]) & set(gallery)
    assert len(set(pids["bounding_box_train"])) == 6 and len(set(pids["query"])) == 6


def test_duke_layout_has_8_cameras_and_gallery_only_identities(generated: dict[str, Path]) -> None:
    folder = generated["synth-duke"]
    cams, query, gallery = set(), set(), set()
    for split, ids in (("query", query), ("bounding_box_test", gallery), ("bounding_box_train", set())):
        for f in _jpgs(folder / split):
            m = MARKET_RE.match(f.name)
            assert m, f.name
            cams.add(int(m.group(2)))
            ids.add(int(m.group(1)))
    assert cams <= set(range(1, 9)) and max(cams) > 6
    assert len(gallery - query) == 2


def test_msmt17_list_files_name_existing_files(generated: dict[str, Path]) -> None:
    folder = generated["synth-msmt17"]
    listed: list[str] = []
    lists = {}
    for lst, sub in (("list_train.txt", "train"), ("list_val.txt", "train"), ("list_query.txt", "test"),
                     ("list_gallery.txt", "test")):
        lines = (folder / lst).read_text().splitlines()
        lists[lst] = lines
        for line in lines:
            rel, pid = line.split(" ")
            path = folder / sub / rel
            assert path.is_file(), line
            assert re.fullmatch(r"\d{4}/\d{4}_\d{3}_\d{2}_\d{4}(morning|noon|afternoon)_\d{4}_\d\.jpg", rel), rel
            assert rel.split("/")[0] == f"{int(pid):04d}" == rel.split("/")[1][:4]
            assert 1 <= int(rel.split("_")[2]) <= 15  # camera = third `_` field (as the readers parse it)
            listed.append(f"{sub}/{rel}")
    assert lists["list_val.txt"] and not set(lists["list_val.txt"]) & set(lists["list_train.txt"])
    on_disk = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.jpg"))
    assert sorted(listed) == on_disk  # every image listed exactly once
    train_ids = {line.split()[1] for line in lists["list_train.txt"] + lists["list_val.txt"]}
    assert train_ids == {str(i) for i in range(6)}  # train and test identities both count from 0
    assert {line.split()[1] for line in lists["list_query.txt"]} == {str(i) for i in range(6)}


def test_veri_layout_names_and_queries_in_the_test_folder(generated: dict[str, Path]) -> None:
    folder = generated["synth-veri"]
    cams = set()
    for sub, lst in (("image_train", "name_train.txt"), ("image_query", "name_query.txt"),
                     ("image_test", "name_test.txt")):
        names = [f.name for f in _jpgs(folder / sub)]
        assert names and (folder / lst).read_text().split() == names
        for n in names:
            assert re.fullmatch(r"\d{4}_c\d{3}_\d{8}_\d\.jpg", n), n
            m = VERI_RE.match(n)
            assert m
            cams.add(int(m.group(2)))
    assert cams <= set(range(1, 21))
    for q in _jpgs(folder / "image_query"):
        assert (folder / "image_test" / q.name).read_bytes() == q.read_bytes()


def test_images_have_the_configured_size_and_pretrain_mixes_people_and_vehicles(generated: dict[str, Path]) -> None:
    with Image.open(next((generated["synth-market"] / "query").glob("*.jpg"))) as im:
        assert im.size == (16, 32) and im.format == "JPEG"
    with Image.open(next((generated["synth-veri"] / "image_train").glob("*.jpg"))) as im:
        assert im.size == (32, 32)
    rows = (generated["synth-pretrain"] / IMAGES_CSV).read_text().splitlines()[1:]
    sizes = set()
    for row in rows:
        path, kind = row.split(",")[0], row.split(",")[6]
        with Image.open(generated["synth-pretrain"] / path) as im:
            sizes.add((kind, im.size))
    assert sizes == {("person", (16, 32)), ("vehicle", (32, 32))}


def test_manifest_counts_match_the_files(generated: dict[str, Path]) -> None:
    folder = generated["synth-market"]
    manifest = json.loads((folder / MANIFEST).read_text())
    counts = manifest["counts"]
    assert counts["train"]["images"] == len(_jpgs(folder / "bounding_box_train")) == 18
    assert counts["query"]["images"] == len(_jpgs(folder / "query"))
    assert counts["gallery"]["images"] == len(_jpgs(folder / "bounding_box_test"))
    assert manifest["spec"]["train_ids"] == 6 and manifest["seed"] == 0 and manifest["name"] == "synth-market"
    rows = (folder / IMAGES_CSV).read_text().splitlines()
    assert len(rows) - 1 == counts["files"] == len(list(folder.rglob("*.jpg")))


def test_progress_callback_counts_every_rendered_image(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    folder = generate("synth-veri", tmp_path, overrides=small("synth-veri"), progress=lambda d, t: calls.append((d, t)))
    done = [d for d, _ in calls]
    total = calls[-1][1]
    assert done == sorted(done) and done[-1] == total
    # queries are written twice (image_query/ and image_test/) but rendered once
    files = json.loads((folder / MANIFEST).read_text())["counts"]["files"]
    assert total == files - len(_jpgs(folder / "image_query"))


def test_generation_killed_with_sigkill_leaves_no_temporary_folder(tmp_path: Path) -> None:
    """Issue 21, case 7: a `hcm prepare` killed during generation left a .synth-market.*.tmp folder behind
    (SIGKILL runs no cleanup); the next generation now removes it."""
    import os
    import subprocess
    import sys

    code = ("import os, signal, sys\n"
            "from hcm.data.synthetic import generate\n"
            "from tests.synthetic.helpers import small\n"
            "def kill(done, total): os.kill(os.getpid(), signal.SIGKILL)\n"
            "generate('synth-market', sys.argv[1], overrides=small('synth-market'), progress=kill, workers=1)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=env, capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    left = list(tmp_path.glob(".synth-market.*.tmp"))
    assert len(left) == 1 and any(left[0].rglob("*.jpg"))  # killed mid-way, images written
    folder = generate("synth-market", tmp_path, overrides=small("synth-market"), progress=False, workers=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]


def test_generated_folders_get_the_usual_mode_not_0700(tmp_path: Path) -> None:
    """Issue 21, case 7: the folder renamed from mkdtemp kept mode 0700 (unreadable to the group)."""
    folder = generate("synth-market", tmp_path, overrides=small("synth-market"), progress=False, workers=1)
    (tmp_path / "plain").mkdir()
    usual = (tmp_path / "plain").stat().st_mode & 0o777  # what mkdir gives under this umask
    assert folder.stat().st_mode & 0o777 == usual
    assert all(p.stat().st_mode & 0o777 == usual for p in folder.rglob("*") if p.is_dir())
