"""Register the synthetic presets as datasets: ``load_dataset("synth-market", root)`` generates and reads.

Each preset is read by the reader of the real dataset whose layout it copies
(Market-1501, MSMT17_V1, VeRi-776), so the synthetic suite exercises exactly the
code path of the real benchmarks. Importing this module registers the five
presets; ``hcm.data.registry`` imports it.

Options understood here (the rest go to the reader): ``synth_seed`` (default 0) and
``synth_overrides`` (a dict of :class:`SynthSpec` fields). When the folder already
exists and either option is given, it must match the folder's manifest.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from pydantic import Field

from hcm.data.dataset import ReIDDataset
from hcm.data.msmt17 import MSMT17Options
from hcm.data.spec import DatasetOptions, DatasetSpec, register_dataset
from hcm.data.synthetic.generate import (
    MANIFEST,
    check_manifest,
    generate,
    manifest_key,
    read_manifest,
)
from hcm.data.synthetic.plan import FOLDERS
from hcm.data.synthetic.spec import PRESETS, spec_for

SYNTH_OPTIONS: tuple[str, ...] = ("synth_seed", "synth_overrides", "progress")

class SynthOptions(DatasetOptions):
    synth_seed: int | None = Field(None, description="generator seed (default 0)")
    synth_overrides: dict[str, Any] = Field(default_factory=dict, description="generator parameters (SynthSpec)")
    progress: bool = Field(True, description="progress bar while generating")


class SynthMSMT17Options(SynthOptions, MSMT17Options):
    """The MSMT17-layout preset also takes MSMT17's reader option."""


#: label and display order of each preset (after the real datasets)
LABELS: dict[str, tuple[str, int]] = {
    "synth-market": ("Synth-Market", 50), "synth-duke": ("Synth-Duke", 60), "synth-msmt17": ("Synth-MSMT17", 70),
    "synth-veri": ("Synth-VeRi", 80), "synth-pretrain": ("Synth-Pretrain", 90),
}

DESCRIPTIONS: dict[str, str] = {
    "synth-market": "synthetic people, Market-1501 layout, 6 cameras",
    "synth-duke": "synthetic people, DukeMTMC-reID layout, 8 cameras",
    "synth-msmt17": "synthetic people, MSMT17_V1 list-file layout, 15 cameras",
    "synth-veri": "synthetic vehicles, VeRi-776 layout, 20 cameras",
    "synth-pretrain": "labelled synthetic people and vehicles for pretraining (Market-1501 layout, 8 cameras)",
}


def read_layout(name: str, folder: Path, **options: Any) -> ReIDDataset:
    """Read ``folder`` with the reader of the real dataset whose layout preset ``name`` copies.

    Market-style sets with more than 6 cameras are read with the DukeMTMC-reID reader
    (cameras 1-8); the dataset is renamed to ``name``.
    """
    manifest = read_manifest(folder)
    layout, cameras = manifest["spec"]["layout"], int(manifest["spec"]["cameras"])
    if layout == "market":
        from hcm.data.market1501 import read_dukemtmcreid, read_market1501

        reader = read_market1501 if cameras <= 6 else read_dukemtmcreid
    elif layout == "msmt17":
        from hcm.data.msmt17 import read_msmt17 as reader
    else:
        from hcm.data.veri776 import read_veri776 as reader
    ds = reader(folder, **options)
    synth = {k: manifest[k] for k in ("name", "seed", "generator_version")}
    return dataclasses.replace(ds, name=name, meta={**ds.meta, "synthetic": synth})


def is_generated_folder(folder: Path, name: str) -> bool:
    """``folder`` holds a finished synthetic dataset ``name``: manifest and the layout's folders present."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        layout = manifest["spec"]["layout"]
        return manifest["name"] == name and all((folder / sub).is_dir() for sub in set(FOLDERS[layout].values()))
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _options_match(name: str, folder: Path, options: dict[str, Any]) -> None:
    if "synth_seed" not in options and "synth_overrides" not in options:
        return
    seed = int(options.get("synth_seed") or 0)
    spec = spec_for(name, options.get("synth_overrides") or None)
    check_manifest(folder, manifest_key(name, spec, seed))


def _spec(name: str) -> DatasetSpec:
    def reader(folder: Path, **options: Any) -> ReIDDataset:
        _options_match(name, Path(folder), options)
        return read_layout(name, Path(folder), **{k: v for k, v in options.items() if k not in SYNTH_OPTIONS})

    def create(parent: Path, **options: Any) -> Path:
        return generate(name, parent, seed=int(options.get("synth_seed") or 0),
                        overrides=options.get("synth_overrides") or None, progress=options.get("progress", True))

    return DatasetSpec(
        name=name,
        folder_names=(name,),
        is_folder=lambda path: is_generated_folder(Path(path), name),
        reader=reader,
        description=DESCRIPTIONS[name],
        create=create,
        layout_help=f"It is generated on first use: `hcm prepare {name} --root DIR`.",
        label=LABELS.get(name, (name, 0))[0], order=LABELS.get(name, (name, 1000))[1],
        options=SynthMSMT17Options if PRESETS[name].layout == "msmt17" else SynthOptions,
    )


for _name in PRESETS:
    register_dataset(_spec(_name))
