"""The tiny training config shared by the engine tests (the data comes from conftest's ``data_index``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def tiny_recipe(index: Path) -> dict[str, Any]:
    """The training config of the engine tests: ResNet-18 at width 16 (stages 16-128, a 3 MB model) and 32x16, 2 epochs x 2 steps of 8 images."""
    return {
        "seed": 0, "variant": "hcm",
        "dataset": {"name": "synth-market", "index": str(index)},
        "model": {"arch": "resnet18", "width": 16, "weights": "none"},
        "input": {"height": 32, "width": 16, "pad": 2},
        "sampler": {"batch_size": 8, "num_instances": 2},
        "cluster": {"eps": 0.7, "min_samples": 2, "k1": 6, "k2": 2},
        "loss": {"n_neg": 5},
        "optim": {"epochs": 2, "iters": 2},
        "eval": {"every": 1, "batch_size": 32},
        "runtime": {"device": "cpu", "threads": 1},
    }
