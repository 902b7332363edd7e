"""A dataset registered from a module outside ``hcm/`` (one file: reader, folders, label, order,
published statistics, options), read by ``hcm prepare`` with no edit of the package."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests import fake_datasets

REPO = Path(__file__).resolve().parents[2]

TOY_DATASET = '''
"""Toy-ReID: one folder per split (train/, probe/, gallery/), names <identity>_c<camera>_*.jpg."""
import re
from dataclasses import replace
from pathlib import Path

from pydantic import Field

from hcm.data.parsing import NameRule, find_child, read_split_folders
from hcm.data.spec import DatasetOptions, DatasetSpec, PublishedStats, register_dataset

SUBDIRS = {"train": "train", "query": "probe", "gallery": "gallery"}
RULE = NameRule("Toy-ReID", re.compile(r"(-?\\d+)_c(\\d)"), (1, 6), "0002_c1s1_000451_03.jpg")


class ToyOptions(DatasetOptions):
    max_train_ids: int | None = Field(None, gt=0, description="keep only the first N training identities")


def read_toy(folder, max_train_ids=None, **_):
    ds = read_split_folders(Path(folder), name="toy-reid", layout="toy", rule=RULE, subdirs=SUBDIRS,
                            fix="put the splits in train/, probe/ and gallery/")
    if max_train_ids is not None:
        keep = sorted(ds.train["pid"].unique())[:max_train_ids]
        ds = replace(ds, train=ds.train[ds.train["pid"].isin(keep)].reset_index(drop=True))
    return ds


register_dataset(DatasetSpec(
    name="toy-reid", folder_names=("Toy-ReID", "toy_reid"),
    is_folder=lambda p: p.is_dir() and find_child(p, "probe") is not None,
    reader=read_toy, description="a toy dataset from outside hcm", label="Toy-ReID", order=5,
    stats=PublishedStats(ids={"train": 3, "query": 3, "gallery": 4},
                         images={"train": 6, "query": 3, "gallery": 6}, cameras=5),
    options=ToyOptions,
))
'''


def _toy_tree(root: Path) -> Path:
    folder = fake_datasets.make_market(root, "Toy-ReID")
    for old, new in (("bounding_box_train", "train"), ("query", "probe"), ("bounding_box_test", "gallery")):
        (folder / old).rename(folder / new)
    return folder


def _hcm(plugin_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_dir), str(REPO)])}
    return subprocess.run([sys.executable, "-m", "hcm", *args], capture_output=True, text=True, env=env)


def test_toy_dataset_from_outside_is_read_by_hcm_prepare(tmp_path: Path) -> None:
    plugin_dir = tmp_path / "ext"
    plugin_dir.mkdir()
    (plugin_dir / "toy_reid.py").write_text(textwrap.dedent(TOY_DATASET), encoding="utf-8")
    data = tmp_path / "data"
    _toy_tree(data)

    listed = _hcm(plugin_dir, "--plugin", "toy_reid", "prepare", "--list")
    assert listed.returncode == 0, listed.stderr
    assert "toy-reid: a toy dataset from outside hcm" in listed.stdout and "options: max_train_ids" in listed.stdout

    out = _hcm(plugin_dir, "--plugin", "toy_reid", "prepare", "toy-reid", "--root", str(data), "--check-images",
               "header")
    assert out.returncode == 0, out.stderr
    assert "toy-reid: layout toy" in out.stdout
    assert "matches the published statistics of Toy-ReID" in out.stdout
    assert (data / "toy-reid.index.csv").is_file()

    # its own option, validated by its own model
    out = _hcm(plugin_dir, "--plugin", "toy_reid", "prepare", "toy-reid", "--root", str(data), "--option",
               "max_train_ids=2", "--out", str(tmp_path / "two.csv"), "--check-images", "none")
    assert out.returncode == 0, out.stderr
    assert "warning: train" in out.stdout  # 2 identities, published 3
    bad = _hcm(plugin_dir, "--plugin", "toy_reid", "prepare", "toy-reid", "--root", str(data), "--option",
               "max_train=2")
    assert bad.returncode == 2 and "max_train=2: Extra inputs are not permitted (options of toy-reid: max_train_ids)" \
        in bad.stderr

    # without the plugin hcm does not know it, and says what it knows
    unknown = _hcm(plugin_dir, "prepare", "toy-reid", "--root", str(data))
    assert unknown.returncode == 2 and "unknown dataset 'toy-reid'" in unknown.stderr


def test_report_labels_and_orders_a_plugin_dataset(tmp_path: Path) -> None:
    plugin_dir = tmp_path / "ext"
    plugin_dir.mkdir()
    (plugin_dir / "toy_reid.py").write_text(textwrap.dedent(TOY_DATASET), encoding="utf-8")
    probe = ("import toy_reid\nfrom hcm.report.style import dataset_label, order_datasets\n"
             "print(dataset_label('toy-reid'), order_datasets(['synth-market', 'zzz', 'toy-reid', 'market1501']))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_dir), str(REPO)])})
    assert out.stdout.strip() == "Toy-ReID ['toy-reid', 'market1501', 'synth-market', 'zzz']"
