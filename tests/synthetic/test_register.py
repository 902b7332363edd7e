"""Registration: the presets are datasets that generate themselves and are read by the real readers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import hcm.data.synthetic.register  # noqa: F401  registers the presets
from hcm.data.registry import DATASETS, resolve_folder
from hcm.errors import DatasetError
from tests.synthetic.helpers import small

NAMES = ("synth-market", "synth-duke", "synth-msmt17", "synth-veri", "synth-pretrain")


def test_presets_are_registered_as_generated_datasets() -> None:
    for name in NAMES:
        spec = DATASETS.get(name)
        assert spec.create is not None and spec.folder_names == (name,)


def test_is_folder_recognises_only_its_own_generated_folder(generated: dict[str, Path], tmp_path: Path) -> None:
    market, duke = DATASETS.get("synth-market"), DATASETS.get("synth-duke")
    assert market.is_folder(generated["synth-market"])
    assert not duke.is_folder(generated["synth-market"])
    assert not market.is_folder(tmp_path)
    assert resolve_folder(market, generated["synth-market"].parent) == generated["synth-market"]


def test_create_generates_under_the_parent_with_seed_and_overrides(tmp_path: Path) -> None:
    spec = DATASETS.get("synth-veri")
    folder = spec.create(tmp_path, synth_seed=2, synth_overrides=small("synth-veri"), progress=False,
                         train_lists="train")  # reader options are ignored by create
    assert folder == tmp_path / "synth-veri" and spec.is_folder(folder)
    manifest = json.loads((folder / "synth.json").read_text())
    assert manifest["seed"] == 2 and manifest["spec"]["train_ids"] == 6


def test_reader_refuses_a_folder_generated_with_other_options(generated: dict[str, Path]) -> None:
    reader = DATASETS.get("synth-market").reader
    with pytest.raises(DatasetError, match="seed"):
        reader(generated["synth-market"], synth_seed=5, synth_overrides=small("synth-market"))
    with pytest.raises(DatasetError, match="train_ids"):
        reader(generated["synth-market"], synth_overrides={})


@pytest.mark.parametrize("name", NAMES)
def test_real_readers_load_the_generated_folders(name: str, generated: dict[str, Path]) -> None:
    pytest.importorskip("hcm.data.market1501", reason="real-dataset readers not merged yet")
    folder = generated[name]
    ds = DATASETS.get(name).reader(folder, synth_overrides=small(name))
    counts = json.loads((folder / "synth.json").read_text())["counts"]
    train = counts["train"]["images"] + counts.get("val", {}).get("images", 0)
    assert ds.name == name
    assert len(ds.train) == train
    assert len(ds.query) == counts["query"]["images"]
    assert len(ds.gallery) == counts["gallery"]["images"] - counts["junk_images"]  # junk (-1) dropped
    assert ds.num_train_pids == (9 if name == "synth-pretrain" else 6)
    assert int(ds.query["orig_pid"].nunique()) == 6
    assert ds.train["camid"].min() >= 0
    if name != "synth-msmt17":  # MSMT17 numbers test identities from 0; no distractors there
        assert (ds.gallery["orig_pid"] == 0).sum() == counts["distractor_images"]
