"""The trainer end to end on a tiny generated dataset: files, variants, resume, failure paths."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
import yaml

from hcm.cli import main
from hcm.config import resolve_train_config
from hcm.engine.loop import LoopContext
from hcm.engine.trainer import Trainer, train
from hcm.errors import ConfigError, TrainingError
from hcm.models import load_weights
from tests.engine.recipes import tiny_recipe


def make_cfg(index: Path, **sets: Any) -> Any:
    data = tiny_recipe(index)
    overrides: dict[str, Any] = {}
    for key, value in sets.items():
        node = overrides
        *parents, leaf = key.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return resolve_train_config(data, overrides)


def history(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "epochs.csv")


def test_two_epoch_run_writes_every_file_and_evaluates(data_index: Path, tmp_path: Path) -> None:
    cfg = make_cfg(data_index)
    run = tmp_path / "run"
    began = datetime.now(UTC)
    summary = train(cfg, run, progress=False)
    ended = datetime.now(UTC)
    assert summary["status"] == "ok" and summary["selection"] == "final" and summary["selected_epoch"] == 2
    # when training ended (MLflow's run times come from it), within the call, after wall_time_s of training
    finished = datetime.fromisoformat(summary["finished_at"])
    assert began <= finished <= ended and summary["wall_time_s"] <= (finished - began).total_seconds()
    for name in ("config.yaml", "epochs.csv", "checkpoints/last.pt", "model.pt", "train_summary.json"):
        assert (run / name).is_file(), name
    # what it was trained on, as written (torch's CPU kernels differ by instruction set)
    written = json.loads((run / "train_summary.json").read_text())
    assert written["environment"] == summary["environment"]
    assert written["environment"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    # the resolved config round-trips
    stored = yaml.safe_load((run / "config.yaml").read_text())
    assert resolve_train_config(stored) == cfg
    h = history(run)
    assert list(h["epoch"]) == [1, 2]
    assert h["test_mAP"].between(0, 1).all()  # eval.every=1: test curve at every epoch
    assert (h["num_clusters"] >= 0).all() and h["ari"].notna().all()
    # model.pt is the final model: equal to the weights in the last checkpoint
    final = load_weights(run / "model.pt")
    last = torch.load(run / "checkpoints" / "last.pt", weights_only=False)
    assert final["epoch"] == 2 and final["selection"] == "final"
    for k, v in last["model"].items():
        assert torch.equal(v, final["model"][k]), k

    assert main(["evaluate", "--run", str(run)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 <= metrics["mAP"] <= 1 and len(metrics["cmc"]) == 50
    assert metrics["checkpoint"]["epoch"] == 2 and metrics["variant"] == "hcm"
    assert metrics["environment"]["torch"] == written["environment"]["torch"]
    assert (run / "cmc.png").stat().st_size > 0


def test_train_evaluate_flag_writes_what_hcm_evaluate_writes(data_index: Path, tmp_path: Path, capsys) -> None:
    """`hcm train --evaluate` scores model.pt in the training process: same metrics.json as a
    separate `hcm evaluate --run` (all but the timing), and the CMC plot; --no-progress holds for
    the evaluation too (tqdm draws its bars on stderr)."""
    cfg = make_cfg(data_index, optim__epochs=1, eval__every=0)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    run = tmp_path / "run"
    capsys.readouterr()
    assert main(["train", "--config", str(recipe), "--out-dir", str(run), "--no-progress", "--evaluate"]) == 0
    assert "batch/s" not in capsys.readouterr().err
    in_train = json.loads((run / "metrics.json").read_text())
    assert (run / "cmc.png").stat().st_size > 0 and (run / "curves.png").read_bytes().startswith(b"\x89PNG")
    assert main(["evaluate", "--run", str(run), "--out", str(tmp_path / "again.json"),
                 "--plot", str(tmp_path / "again.png"), "--no-progress"]) == 0
    assert "batch/s" not in capsys.readouterr().err
    assert main(["evaluate", "--run", str(run), "--out", str(tmp_path / "bars.json")]) == 0
    assert "batch/s" in capsys.readouterr().err  # the bars are on by default: the check above can fail
    separate = json.loads((tmp_path / "again.json").read_text())
    assert in_train["train_wall_time_s"] is not None and in_train["checkpoint"]["epoch"] == 1
    for timing in ("eval_time_s",):
        in_train.pop(timing), separate.pop(timing)
    assert in_train == separate
    # what Snakemake does when only metrics.json went missing: it deletes the job's other outputs
    # and runs the job again; the run resumes from checkpoints/last.pt (finished), only evaluates
    epochs, last = (run / "epochs.csv").read_text(), (run / "checkpoints" / "last.pt").stat().st_mtime_ns
    for name in ("metrics.json", "cmc.png", "model.pt", "train_summary.json", "epochs.csv"):
        (run / name).unlink()
    assert main(["train", "--config", str(recipe), "--out-dir", str(run), "--no-progress", "--resume",
                 "--evaluate"]) == 0
    again = json.loads((run / "metrics.json").read_text())
    assert (run / "checkpoints" / "last.pt").stat().st_mtime_ns == last  # no epoch trained again
    assert (run / "epochs.csv").read_text() == epochs
    for timing in ("eval_time_s", "train_wall_time_s"):
        again.pop(timing), in_train.pop(timing, None)
    assert again == in_train


@pytest.mark.parametrize("variant, has_id, has_img, dynamic", [
    ("baseline", True, False, False),
    ("identity_only", True, False, True),
    ("image_only", False, True, None),
    ("no_dynamic", True, True, False),
])
def test_variant_switches_change_what_is_trained(data_index: Path, tmp_path: Path, variant: str, has_id: bool,
                                                 has_img: bool, dynamic: bool | None) -> None:
    cfg = make_cfg(data_index, variant=variant, optim__epochs=1, eval__every=0)
    train(cfg, tmp_path / variant, progress=False)
    h = history(tmp_path / variant)
    assert not h["skipped"].any()
    assert h["loss_id"].notna().all() == has_id
    assert h["loss_img"].notna().all() == has_img
    if dynamic is not None:
        # a dynamic factor weighs anchors (delta) or negatives (w) unequally; `none` leaves both at exactly 1
        weighted = (h["delta_max"] > 1.0 + 1e-6) | (h["negw_max"] > 1.0 + 1e-6)
        assert weighted.all() == dynamic


@pytest.mark.parametrize("rule", ["hard", "hybrid"])
def test_memory_rules_train(data_index: Path, tmp_path: Path, rule: str) -> None:
    """The update rules are config values on the same trainer (their maths: tests/test_memory.py)."""
    cfg = make_cfg(data_index, optim__epochs=1, eval__every=0, memory__identity__rule=rule,
                   memory__image__rule=rule)
    train(cfg, tmp_path / rule, progress=False)
    h = history(tmp_path / rule)
    assert not h["skipped"].any() and h["loss_id"].notna().all() and h["loss_img"].notna().all()
    assert yaml.safe_load((tmp_path / rule / "config.yaml").read_text())["memory"]["identity"]["rule"] == rule


def test_supervised_uses_true_labels(data_index: Path, tmp_path: Path) -> None:
    cfg = make_cfg(data_index, variant="supervised", optim__epochs=1, eval__every=0)
    train(cfg, tmp_path / "sup", progress=False)
    h = history(tmp_path / "sup")
    assert h["ari"].iloc[0] == pytest.approx(1.0) and h["num_clusters"].iloc[0] == 10


def test_untrained_reports_the_initial_backbone(data_index: Path, tmp_path: Path) -> None:
    cfg = make_cfg(data_index, variant="untrained")
    summary = train(cfg, tmp_path / "u", progress=False)
    assert summary["selection"] == "initial" and summary["epochs"] == 0
    assert len(history(tmp_path / "u")) == 0
    from hcm.models import build_model

    initial = build_model(cfg.model, seed=cfg.seed).state_dict()
    saved = load_weights(tmp_path / "u" / "model.pt")["model"]
    assert all(torch.equal(initial[k], saved[k]) for k in initial)


class _Crash(Trainer):
    """Simulates a job killed after its first epoch's checkpoint."""

    def epoch(self, epoch: int, ctx: LoopContext) -> dict[str, Any]:
        if epoch == 1:
            raise KeyboardInterrupt("simulated kill")
        return super().epoch(epoch, ctx)


def test_resume_continues_to_the_same_weights_bit_for_bit(data_index: Path, tmp_path: Path) -> None:
    cfg = make_cfg(data_index, eval__every=0)
    train(cfg, tmp_path / "full", progress=False)
    with pytest.raises(KeyboardInterrupt):
        _Crash(cfg, tmp_path / "resumed", progress=False).run()
    assert len(history(tmp_path / "resumed")) == 1
    with pytest.raises(ConfigError, match="--resume"):
        train(cfg, tmp_path / "resumed", progress=False)
    train(cfg, tmp_path / "resumed", resume=True, progress=False)
    a = load_weights(tmp_path / "full" / "model.pt")["model"]
    b = load_weights(tmp_path / "resumed" / "model.pt")["model"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    timing = [c for c in history(tmp_path / "full").columns if c.endswith("_time_s")]
    pd.testing.assert_frame_equal(history(tmp_path / "full").drop(columns=timing),
                                  history(tmp_path / "resumed").drop(columns=timing))


def test_resume_refuses_a_changed_config(data_index: Path, tmp_path: Path) -> None:
    cfg = make_cfg(data_index, optim__epochs=1, eval__every=0)
    train(cfg, tmp_path / "r", progress=False)
    changed = make_cfg(data_index, optim__epochs=1, eval__every=0, loss__gamma=1.0)
    with pytest.raises(ConfigError, match="different config.*loss"):
        train(changed, tmp_path / "r", resume=True, progress=False)


class _Diverge(Trainer):
    """A run whose learning rate explodes in its second epoch."""

    def epoch(self, epoch: int, ctx: LoopContext) -> dict[str, Any]:
        if epoch == 1:
            for group in ctx.optimizer.param_groups:
                group["lr"] = 1e30
        return super().epoch(epoch, ctx)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(data_index: Path, tmp_path: Path) -> None:
    cfg = make_cfg(data_index, optim__iters=3, optim__epochs=3, eval__every=0)
    with pytest.raises(TrainingError, match="non-finite loss at epoch 2.*last good checkpoint .*last.pt is kept"):
        _Diverge(cfg, tmp_path / "nan", progress=False).run()
    ckpt = torch.load(tmp_path / "nan" / "checkpoints" / "last.pt", weights_only=False)
    assert ckpt["state"]["epoch"] == 1 == len(history(tmp_path / "nan"))
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


def test_non_finite_loss_in_the_first_epoch_says_no_checkpoint_exists(data_index: Path, tmp_path: Path) -> None:
    cfg = make_cfg(data_index, optim__lr=1e30, optim__iters=3, eval__every=0)
    with pytest.raises(TrainingError, match="no checkpoint had been written yet"):
        train(cfg, tmp_path / "nan1", progress=False)


def test_epoch_with_fewer_than_two_clusters_is_skipped(data_index: Path, tmp_path: Path) -> None:
    cfg = make_cfg(data_index, cluster__min_samples=1000, optim__epochs=1, eval__every=0)  # no core point
    summary = train(cfg, tmp_path / "few", progress=False)
    h = history(tmp_path / "few")
    assert summary["status"] == "not_trained" and bool(h["skipped"].iloc[0])  # issue 21: no epoch trained
    assert h["num_clusters"].iloc[0] < 2 and math.isnan(h["loss"].iloc[0])


def test_gradient_accumulation_runs_micro_batches(data_index: Path, tmp_path: Path) -> None:
    cfg = make_cfg(data_index, sampler__accum_steps=2, optim__epochs=1, eval__every=0)
    train(cfg, tmp_path / "acc", progress=False)
    h = history(tmp_path / "acc")
    assert h["loss"].notna().all() and math.isfinite(h["loss"].iloc[0])


def test_image_cache_changes_nothing_but_decoding(data_index: Path, tmp_path: Path) -> None:
    """runtime.cache_images keeps decoded images across epochs; the trained weights are identical."""
    train(make_cfg(data_index, eval__every=0, runtime__image_store=False), tmp_path / "plain", progress=False)
    train(make_cfg(data_index, eval__every=0, runtime__image_store=False, runtime__cache_images=True),
          tmp_path / "cached", progress=False)
    a = load_weights(tmp_path / "plain" / "model.pt")["model"]
    b = load_weights(tmp_path / "cached" / "model.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    timing = [c for c in history(tmp_path / "plain").columns if c.endswith("_time_s")]
    pd.testing.assert_frame_equal(history(tmp_path / "plain").drop(columns=timing),
                                  history(tmp_path / "cached").drop(columns=timing))


def test_image_store_extraction_equals_the_per_image_path(data_index: Path, tmp_path: Path) -> None:
    """Features from the store (resized once, normalised batched) equal those of decoding and
    transforming each file (CPU, bit for bit); training from the store writes the store once."""
    from hcm.engine.evaluation import extract_table
    from hcm.engine.setup import build_feeder, load_splits, setup_runtime
    from hcm.models import build_model

    cfg = make_cfg(data_index, input__height=24, input__width=12, runtime__store_dir=str(tmp_path / "store"))
    runtime = setup_runtime(cfg.runtime)
    splits = load_splits(cfg.dataset, cfg.seed)
    feeder = build_feeder(cfg, splits, runtime, progress=False)
    assert feeder is not None and (tmp_path / "store" / "24x12.npy").is_file()
    model = build_model(cfg.model, seed=0)
    table = pd.concat([splits.train, splits.query], ignore_index=True)
    a = extract_table(model, table, cfg.input, cfg.eval, runtime, feeder=feeder)
    b = extract_table(model, table, cfg.input, cfg.eval, runtime)
    assert torch.equal(a, b)
    off = make_cfg(data_index, runtime__image_store=False)
    assert build_feeder(off, splits, runtime) is None


def test_store_and_per_image_runs_both_train_and_resume_exactly(data_index: Path, tmp_path: Path) -> None:
    """Switching the store off gives the per-image path (different augmentation streams, so
    different weights); each path is deterministic."""
    cfg_off = make_cfg(data_index, eval__every=0, optim__epochs=1, runtime__image_store=False)
    cfg_on = make_cfg(data_index, eval__every=0, optim__epochs=1)
    train(cfg_on, tmp_path / "on1", progress=False)
    train(cfg_on, tmp_path / "on2", progress=False)
    train(cfg_off, tmp_path / "off", progress=False)
    on1 = load_weights(tmp_path / "on1" / "model.pt")["model"]
    on2 = load_weights(tmp_path / "on2" / "model.pt")["model"]
    off = load_weights(tmp_path / "off" / "model.pt")["model"]
    assert all(torch.equal(on1[k], on2[k]) for k in on1)
    assert not all(torch.equal(on1[k], off[k]) for k in on1)


@pytest.mark.parametrize("factor", ["focal", "focal_raw", "hard_negatives"])
def test_readings_train_through_the_config(data_index: Path, tmp_path: Path, factor: str) -> None:
    cfg = make_cfg(data_index, eval__every=0, optim__epochs=1, loss__terms__identity__factor=factor)
    train(cfg, tmp_path / "run", progress=False)
    h = history(tmp_path / "run")
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["loss"]["terms"]["identity"]["factor"] == factor
    if factor == "focal":  # weights (1 - p)^gamma over their batch mean: mean 1, the hardest above 1
        assert (h["delta_max"] > 1.0).all() and h["delta_mean"].round(5).eq(1.0).all() and (h["negw_max"] == 1.0).all()
    elif factor == "focal_raw":  # weights (1 - p)^gamma <= 1, no normaliser
        assert (h["delta_max"] <= 1.0).all() and (h["delta_mean"] < 1.0).all() and (h["negw_max"] == 1.0).all()
    else:  # delta = 1, the negatives weighed
        assert (h["delta_max"] == 1.0).all() and (h["negw_max"] > 1.0).all()


@pytest.mark.parametrize("accum", [1, 2])
def test_gradient_diagnostics_change_no_weight(data_index: Path, tmp_path: Path, accum: int) -> None:
    """runtime.diagnostics (on by default) logs each term's gradient norm and share and L_id's effective
    gradient scale; the trained weights and every other logged value are the same bit for bit without it."""
    on = make_cfg(data_index, eval__every=0, sampler__accum_steps=accum)
    assert on.runtime.diagnostics
    train(on, tmp_path / "on", progress=False)
    train(make_cfg(data_index, eval__every=0, sampler__accum_steps=accum, runtime__diagnostics=False),
          tmp_path / "off", progress=False)
    a = load_weights(tmp_path / "on" / "model.pt")["model"]
    b = load_weights(tmp_path / "off" / "model.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    h_on, h_off = history(tmp_path / "on"), history(tmp_path / "off")
    diag = ["gnorm_identity", "gnorm_image", "gshare_identity", "gshare_image", "gnorm_total"]
    assert h_on[diag].notna().all().all() and h_off[diag].isna().all().all()
    assert (h_on["gshare_identity"] + h_on["gshare_image"]).round(6).eq(1.0).all()
    assert (h_on["id_grad_scale"] > 0).all() and (h_on["negw_max"] > 1.0).all()  # the default hard_negatives
    timing = [c for c in h_on.columns if c.endswith("_time_s")]
    pd.testing.assert_frame_equal(h_on.drop(columns=[*timing, *diag]), h_off.drop(columns=[*timing, *diag]))
