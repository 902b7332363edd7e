"""Supervised pretraining end to end on the tiny generated dataset: epoch table, determinism, resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

from hcm.config import PretrainConfig
from hcm.engine.loop import LoopContext
from hcm.engine.pretrain import PRETRAIN_COLUMNS, Pretrainer, pretrain
from hcm.models import load_weights


def make_cfg(index: Path) -> PretrainConfig:
    return PretrainConfig.model_validate({
        "seed": 0, "dataset": {"name": "synth-market", "index": str(index)},
        "model": {"arch": "resnet18", "width": 16, "weights": "none"},
        "input": {"height": 32, "width": 16, "pad": 2},
        "sampler": {"batch_size": 8, "num_instances": 2},
        "optim": {"lr": 1e-3, "epochs": 2, "iters": 3},
        "eval": {"every": 0, "batch_size": 32},
        "runtime": {"device": "cpu", "threads": 1},
    })


class _Crash(Pretrainer):
    """A job killed after its first epoch's checkpoint."""

    def epoch(self, epoch: int, ctx: LoopContext) -> dict[str, Any]:
        if epoch == 1:
            raise KeyboardInterrupt("simulated kill")
        return super().epoch(epoch, ctx)


def without_times(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "epochs.csv").drop(columns="train_time_s")


def test_epoch_table_is_the_mean_of_the_iterations(data_index: Path, tmp_path: Path) -> None:
    summary = pretrain(make_cfg(data_index), tmp_path / "run", progress=False)
    hist = pd.read_csv(tmp_path / "run" / "epochs.csv")
    assert tuple(hist.columns) == PRETRAIN_COLUMNS
    assert list(hist["epoch"]) == [1, 2]
    # loss = loss_ce + loss_tri per iteration, so their epoch means add up too
    assert (hist["loss"] - hist["loss_ce"] - hist["loss_tri"]).abs().max() < 1e-5
    # accuracy: a mean of per-batch fractions of 8 images
    assert hist["acc"].between(0, 1).all()
    assert ((hist["acc"] * 3 * 8).round(6) % 1 == 0).all()
    assert hist["loss_ce"].gt(0).all() and hist["loss_tri"].ge(0).all()
    assert summary["epochs"] == 2 and 0 <= summary["source_mAP"] <= 1
    # the checkpoint depends on the machine's CPU kernels: the summary says which
    written = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert written["environment"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()


def test_resume_after_a_kill_gives_the_same_checkpoint(data_index: Path, tmp_path: Path) -> None:
    cfg = make_cfg(data_index)
    pretrain(cfg, tmp_path / "full", progress=False)
    with pytest.raises(KeyboardInterrupt):
        _Crash(cfg, tmp_path / "resumed", progress=False).run()
    pretrain(cfg, tmp_path / "resumed", resume=True, progress=False)
    a = load_weights(tmp_path / "full" / "checkpoint.pt")["model"]
    b = load_weights(tmp_path / "resumed" / "checkpoint.pt")["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    pd.testing.assert_frame_equal(without_times(tmp_path / "full"), without_times(tmp_path / "resumed"))


def test_finished_pretraining_without_checkpoint_is_not_overwritten(data_index: Path, tmp_path: Path) -> None:
    """Issue 21, case 2, for `hcm pretrain`: its finished outputs are checkpoint.pt and summary.json."""
    from hcm.errors import ConfigError

    cfg = make_cfg(data_index).model_copy(update={"optim": make_cfg(data_index).optim.model_copy(
        update={"epochs": 1, "iters": 1})})
    run = tmp_path / "pre"
    pretrain(cfg, run, progress=False)
    (run / "checkpoints" / "last.pt").unlink()
    before = (run / "checkpoint.pt").read_bytes()
    with pytest.raises(ConfigError, match=r"holds a finished run \(checkpoint.pt, summary.json\).*--overwrite"):
        pretrain(cfg, run, resume=True, progress=False)
    assert (run / "checkpoint.pt").read_bytes() == before
    pretrain(cfg, run, overwrite=True, progress=False)
