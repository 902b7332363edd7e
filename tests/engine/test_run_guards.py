"""Issue 21: bad input to `hcm train` never overwrites a finished run, never resumes under a changed
config unnoticed, never reports an untrained model as a success, and its advice works."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
import yaml

from hcm.cli import main
from hcm.engine.trainer import Trainer, train
from hcm.errors import ConfigError, TrainingError
from hcm.report.aggregate import aggregate
from tests.engine.test_trainer import _Crash, _Diverge, make_cfg


def snapshot(run: Path) -> dict[str, bytes]:
    return {p.relative_to(run).as_posix(): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def write_recipe(cfg: Any, path: Path) -> Path:
    path.write_text(yaml.safe_dump(cfg.to_dict()), encoding="utf-8")
    return path


@pytest.mark.parametrize("how", ["checkpoint_deleted", "epochs_0"])
def test_finished_run_without_checkpoint_is_never_overwritten(data_index: Path, tmp_path: Path, how: str) -> None:
    """Case 2: with checkpoints/last.pt absent, a second `hcm train` into a finished run replaced model.pt,
    epochs.csv and config.yaml, exit 0."""
    run = tmp_path / "run"
    if how == "epochs_0":
        first = make_cfg(data_index, optim__epochs=0, eval__every=0)
    else:
        first = make_cfg(data_index, optim__epochs=1, optim__iters=1, eval__every=0)
    train(first, run, progress=False)
    if how == "checkpoint_deleted":
        shutil.rmtree(run / "checkpoints")  # to save space
    assert not (run / "checkpoints" / "last.pt").exists()
    before = snapshot(run)
    again = make_cfg(data_index, optim__epochs=1, optim__iters=1, eval__every=0, seed=1)
    for resume in (False, True):
        with pytest.raises(ConfigError, match=r"holds a finished run \(model.pt, train_summary.json\).*--overwrite"):
            train(again, run, resume=resume, progress=False)
        assert snapshot(run) == before
    train(again, run, overwrite=True, progress=False)  # explicit: replaced
    assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == 1


def test_resume_compares_the_config_inside_the_checkpoint(data_index: Path, tmp_path: Path) -> None:
    """Case 3: with config.yaml missing, a resume continued at the old rate and recorded the new one."""
    cfg = make_cfg(data_index, eval__every=0)
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        _Crash(cfg, run, progress=False).run()
    (run / "config.yaml").unlink()
    changed = make_cfg(data_index, eval__every=0, optim__lr=1e-4)
    with pytest.raises(ConfigError, match=r"last.pt: cannot resume.*differing: optim.lr.*--allow-change optim.lr"):
        train(changed, run, resume=True, progress=False)
    assert not (run / "config.yaml").exists()  # the refused config is not recorded
    train(cfg, run, resume=True, progress=False)  # the unchanged config continues


def test_non_finite_loss_advice_is_accepted_by_resume(data_index: Path, tmp_path: Path) -> None:
    """Case 6: the advice after a non-finite loss ("Lower optim.lr ... continue with --resume") was then
    refused by --resume (changed config). The advice given now is a command line that works."""
    cfg = make_cfg(data_index, optim__iters=3, optim__epochs=3, optim__step_size=1, optim__lr_gamma=0.5,
                   eval__every=0)
    run = tmp_path / "nan"
    with pytest.raises(TrainingError) as info:
        _Diverge(cfg, run, progress=False).run()
    m = re.search(r"--resume --set optim\.lr=(\S+) --allow-change optim\.lr", str(info.value))
    assert m, str(info.value)
    new_lr = float(m.group(1))
    assert new_lr == pytest.approx(cfg.optim.lr / 10)
    lowered = make_cfg(data_index, optim__iters=3, optim__epochs=3, optim__step_size=1, optim__lr_gamma=0.5,
                       eval__every=0, optim__lr=new_lr)
    with pytest.raises(ConfigError, match="--allow-change optim.lr"):  # not without saying so
        train(lowered, run, resume=True, progress=False)
    with pytest.raises(ConfigError, match="may change only optim.lr"):
        train(lowered, run, resume=True, allow_change=("loss.gamma",), progress=False)
    summary = train(lowered, run, resume=True, allow_change=("optim.lr",), progress=False)
    assert summary["status"] == "ok" and summary["epochs"] == 3
    h = pd.read_csv(run / "epochs.csv")
    # epoch 1 at the old rate; epochs 2 and 3 at the new one, decayed by the schedule as before
    assert h["lr"].tolist() == pytest.approx([cfg.optim.lr, new_lr * 0.5, new_lr * 0.25])
    assert h["loss"].notna().all()
    assert yaml.safe_load((run / "config.yaml").read_text())["optim"]["lr"] == new_lr
    ckpt = torch.load(run / "checkpoints" / "last.pt", weights_only=False)
    assert ckpt["config"]["optim"]["lr"] == new_lr
    assert ckpt["optimizer"]["param_groups"][0]["initial_lr"] == new_lr


def test_run_that_never_trained_exits_non_zero_and_reports_show_it(data_index: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Case 5: fewer than two clusters in every epoch logged a warning, exited 0 and reported the untrained
    checkpoint like any other."""
    cfg = make_cfg(data_index, cluster__min_samples=1000, optim__epochs=2, eval__every=0)
    recipe = write_recipe(cfg, tmp_path / "recipe.yaml")
    run = tmp_path / "run"
    assert main(["train", "--config", str(recipe), "--out-dir", str(run), "--no-progress", "--evaluate"]) == 3
    err = capsys.readouterr().err
    assert "status not_trained" in err and "cluster.eps" in err
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["status"] == "not_trained" and "no epoch was trained (all 2 skipped)" in summary["reason"]
    assert json.loads((run / "metrics.json").read_text())["train_status"] == "not_trained"
    assert aggregate([run]).runs["status"].tolist() == ["not_trained"]


def test_diverged_model_hint_blames_the_learning_rate_not_eps(data_index: Path, tmp_path: Path) -> None:
    """Case 5: the hint always blamed cluster.eps, also when optim.lr=0.3 had diverged the model. Depending
    on the kernels' numerics the diverged features are NaN (the clusterer refuses them: the run stops) or
    collapsed to one point (the run ends with status diverged); either way the advice is optim.lr. (The
    tiny width-16 model still trains at lr 1.0; 3.0 diverges it.)"""
    cfg = make_cfg(data_index, optim__lr=3.0, optim__epochs=2, optim__iters=3, eval__every=0)
    try:
        summary = train(cfg, tmp_path / "lr", progress=False)
    except TrainingError as exc:
        text = str(exc)
        assert "clustering refused the training features" in text
        # the checkpoint entering the failed epoch is the diverged model: no advice to resume it
        assert "resuming it cannot help" in text and "another --out-dir" in text and "optim.lr=0.3" in text
    else:
        assert summary["status"] == "diverged"
        text = summary["reason"]
        assert "collapsed" in text and "optim.lr (now 3.0)" in text
    assert "cluster.eps" not in text


def test_skip_hint_tells_collapsed_features_from_a_bad_radius(data_index: Path) -> None:
    """The reason given when clustering finds fewer than two clusters: collapsed features blame the model
    (optim.lr, model.weights), spread features the clustering radius (cluster.eps)."""
    from hcm.engine.trainer import skip_hint

    cfg = make_cfg(data_index)
    gen = torch.Generator().manual_seed(0)
    spread = torch.nn.functional.normalize(torch.randn(40, 16, generator=gen), dim=1)
    collapsed = torch.nn.functional.normalize(torch.ones(40, 16) + 1e-4 * torch.randn(40, 16, generator=gen), dim=1)
    degenerate, text = skip_hint(collapsed, cfg)
    assert degenerate and "collapsed" in text and "optim.lr" in text and "cluster.eps" not in text
    degenerate, text = skip_hint(spread, cfg)
    assert not degenerate and "cluster.eps=0.7" in text and "optim.lr" not in text


def test_out_dir_naming_a_file_is_one_line(data_index: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Case 4: --out-dir naming a file raised FileExistsError with a traceback."""
    recipe = write_recipe(make_cfg(data_index), tmp_path / "recipe.yaml")
    target = tmp_path / "results.txt"
    target.write_text("keep me")
    assert main(["train", "--config", str(recipe), "--out-dir", str(target), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{target}: --out-dir names a file" in err
    assert target.read_text() == "keep me"
    with pytest.raises(ConfigError, match="names a file"):  # the Python API too
        train(make_cfg(data_index), target, progress=False)


def test_no_progress_shows_no_bars(data_index: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """Case 7: --no-progress still printed the per-epoch extraction (and test) bars."""
    recipe = write_recipe(make_cfg(data_index, optim__epochs=1, optim__iters=1, eval__every=1),
                          tmp_path / "recipe.yaml")
    assert main(["train", "--config", str(recipe), "--out-dir", str(tmp_path / "run"), "--no-progress"]) == 0
    out, err = capfd.readouterr()
    assert "it/s" not in err and "batch/s" not in err and "query/s" not in err and "%|" not in err, err[-2000:]


def test_trainer_api_refuses_an_unknown_allowed_change(data_index: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--allow-change model.arch"):
        Trainer(make_cfg(data_index), tmp_path / "x", allow_change=("model.arch",))


def test_evaluate_run_without_model_names_the_missing_file(data_index: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Case 6: `hcm evaluate --run DIR` without model.pt said "check model.weights"."""
    run = tmp_path / "unfinished"
    run.mkdir()
    write_recipe(make_cfg(data_index), run / "config.yaml")
    assert main(["evaluate", "--run", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"{run / 'model.pt'}: not found" in err and "--resume" in err and "model.weights" not in err


def test_evaluate_run_that_is_not_a_run_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`hcm evaluate --run DIR` on a folder without config.yaml advised passing a file to --config."""
    assert main(["evaluate", "--run", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'config.yaml'}: not found; {tmp_path} is not a run directory written by `hcm train`" in err
