"""The readings study's report: paired differences against a hand computation, the validation-best
row, the scale control's recipe, and every file written."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from hcm.cli import main
from hcm.config import load_train_config
from hcm.errors import HCMError
from hcm.report.study import (
    collect_study,
    measured_scale,
    paired_difference,
    readings_table,
    row_controls,
    val_best,
    write_scaled_recipe,
    write_study_reports,
)

# test mAP (%), val mAP (%) per row and seed on one dataset; hand-made to make the arithmetic checkable
SCORES = {
    "hcm": {0: (40.0, 70.0), 1: (44.0, 72.0), 2: (41.0, 69.0)},
    "hcm_focal_raw": {0: (46.0, 75.0), 1: (45.0, 74.0), 2: (47.0, 73.0)},
    "no_dynamic": {0: (43.0, 71.0), 1: (45.0, 73.0), 2: (42.0, 70.0)},
    "scale_control": {0: (41.0, 70.5), 1: (43.0, 71.0)},  # seed 2 missing: pairs on two seeds
    "supervised": {0: (60.0, 90.0), 1: (61.0, 91.0), 2: (59.0, 92.0)},
}
VARIANT = {"hcm": "hcm", "hcm_focal_raw": "hcm", "no_dynamic": "no_dynamic", "scale_control": "no_dynamic",
           "scale_control_focal_raw": "no_dynamic", "supervised": "supervised"}


def make_run(root: Path, dataset: str, row: str, seed: int, test: float, val: float, *, scale: float = 2.0,
             weight: float = 1.0) -> Path:
    """A finished run directory as `hcm train --evaluate` leaves it (the files the report reads)."""
    run = root / dataset / row / f"seed{seed}"
    run.mkdir(parents=True)
    factor = "none" if VARIANT[row] == "no_dynamic" else ("focal_raw" if row.endswith("raw") else "focal")
    config = {"variant": VARIANT[row], "seed": seed, "optim": {"epochs": 12, "iters": 25},
              "dataset": {"val_fraction": 0.2},
              "loss": {"terms": {"identity": {"weight": weight, "factor": factor, "gamma": 2.0, "tau": 0.05},
                                 "image": {"weight": 1.0}}},
              "memory": {"identity": {"rule": "momentum", "momentum": 0.1}}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    metrics = {"dataset": dataset, "variant": VARIANT[row], "seed": seed, "mAP": test / 100, "mINP": 0.1,
               "rank1": min(1.0, test / 100 + 0.1), "rank5": 1.0, "rank10": 1.0}
    (run / "metrics.json").write_text(json.dumps(metrics))
    epochs = pd.DataFrame({
        "epoch": [1, 2, 3], "delta_mean": [1.0] * 3, "delta_max": [3.0, 4.0, 3.5], "negw_max": [1.0] * 3,
        "id_grad_scale": [scale - 0.5, scale, scale + 0.5], "gshare_identity": [0.3, 0.35, 0.4],
        "gnorm_identity": [0.1] * 3, "gnorm_image": [0.2] * 3, "val_mAP": [0.5, 0.6, val / 100],
        "val_rank1": [0.5, 0.6, 0.7], "skipped": [False] * 3})
    epochs.to_csv(run / "epochs.csv", index=False)
    return run


@pytest.fixture
def study(tmp_path: Path) -> dict[str, list[Path]]:
    rows: dict[str, list[Path]] = {}
    for row, seeds in SCORES.items():
        for seed, (test, val) in seeds.items():
            extra = {"scale": 1.0, "weight": 3.0} if row == "scale_control" else {}
            rows.setdefault(row, []).append(make_run(tmp_path / "runs", "synth-market", row, seed, test, val, **extra))
    return rows


def test_paired_difference_is_the_per_seed_difference_by_hand(study) -> None:
    runs, _ = collect_study(study)
    # hcm - no_dynamic per seed: -3, -1, -1 -> mean -5/3, sample std sqrt(((4/3)^2 + 2 (2/3)^2) / 2)
    mean, std, n = paired_difference(runs, "synth-market", "hcm", "no_dynamic")
    assert n == 3 and mean == pytest.approx(-5 / 3)
    assert std == pytest.approx(math.sqrt(((-3 + 5 / 3) ** 2 + 2 * (-1 + 5 / 3) ** 2) / 2))
    # against the control: only seeds 0 and 1 are common: -1, +1 -> mean 0, std sqrt(2)
    mean, std, n = paired_difference(runs, "synth-market", "hcm", "scale_control")
    assert (mean, n) == (pytest.approx(0.0), 2) and std == pytest.approx(math.sqrt(2))
    # the validation split: focal_raw - no_dynamic = 4, 1, 3 -> mean 8/3
    mean, _, n = paired_difference(runs, "synth-market", "hcm_focal_raw", "no_dynamic", "val_mAP")
    assert n == 3 and mean == pytest.approx(8 / 3)
    assert math.isnan(paired_difference(runs, "synth-market", "hcm", "nope")[0])


def test_the_decision_is_taken_on_the_validation_split_and_excludes_the_bounds(study, tmp_path: Path) -> None:
    runs, _ = collect_study(study)
    # supervised has the best scores but is a bound; focal_raw is val-best among the candidates
    assert val_best(runs, "synth-market")[0] == "hcm_focal_raw"
    # make the test-best row differ from the val-best one: the table still names the val-best
    extra = make_run(tmp_path / "more", "synth-market", "hcm", 3, 99.0, 10.0)
    runs2, _ = collect_study({**study, "hcm": [*study["hcm"], extra]})
    assert val_best(runs2, "synth-market")[0] == "hcm_focal_raw"


def test_study_reports_are_written(study, tmp_path: Path) -> None:
    runs, per_epoch = collect_study(study)
    assert len(runs) == 14 and len(per_epoch) == 42
    assert runs.loc[runs["row"] == "hcm", "id_grad_scale"].eq(2.0).all()
    assert runs.loc[runs["row"] == "hcm", "delta_max"].eq(4.0).all()  # the largest epoch value
    assert runs.loc[runs["row"] == "scale_control", "id_scale_weighted"].eq(3.0).all()
    out = tmp_path / "reports"
    written = write_study_reports(runs, per_epoch, out, reference="no_dynamic", control="scale_control",
                                  suite="test")
    names = {p.name for p in written}
    assert names == {"study.csv", "diagnostics.csv", "study.md", "diagnostics.md", "study.png", "diagnostics.png",
                     "readings.png", "README.md"}
    table = (out / "study.md").read_text()
    assert "Validation-best row: `hcm_focal_raw`" in table and "**hcm_focal_raw** (val-best)" in table
    hcm_line = next(line for line in table.splitlines() if line.startswith("| hcm |"))
    assert "-1.7 ± 1.2 (n=3)" in hcm_line and "+0.0 ± 1.4 (n=2)" in hcm_line
    assert "val mAP (%)" in table and "test mAP (%)" in table
    readme = (out / "README.md").read_text()
    assert "](study.png)" in readme and "](diagnostics.png)" in readme and "L_id share" in readme
    assert ("Runs: 14 = 1 dataset(s) x 5 rows x 3 seed(s) (0, 1, 2); training: 12 epochs x 25 iterations"
            in readme) and "validation split: 0.2 of the training identities" in readme
    with pytest.raises(HCMError, match="'nope'"):
        write_study_reports(runs, per_epoch, out, reference="nope")


def test_scale_control_recipe_carries_the_measured_mean(tmp_path: Path) -> None:
    src = make_run(tmp_path / "runs", "synth-market", "hcm", 0, 40.0, 70.0, scale=2.5)
    epochs = pd.read_csv(src / "epochs.csv")
    epochs.loc[len(epochs)] = {**epochs.iloc[0].to_dict(), "epoch": 4, "id_grad_scale": 100.0, "skipped": True}
    epochs.to_csv(src / "epochs.csv", index=False)
    assert measured_scale(src / "epochs.csv") == pytest.approx(2.5)  # skipped epochs do not count
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump({"dataset": {"name": "synth-market", "index": str(tmp_path / "index.csv")},
                                    "loss": {"terms": {"identity": {"gamma": 1.0}}}}))
    out = tmp_path / "control" / "seed0.scale.yaml"
    assert write_scaled_recipe(base, [src], out) == pytest.approx(2.5)
    cfg = load_train_config(out, ["variant=no_dynamic"])
    ident = cfg.loss.terms["identity"]
    assert ident.weight == pytest.approx(2.5) and ident.factor == "none" and ident.gamma == 1.0
    assert "image" in cfg.loss.terms and cfg.loss.terms["image"].weight == 1.0
    with pytest.raises(HCMError, match="not found"):
        measured_scale(tmp_path / "missing" / "epochs.csv")


def test_figures_plot_every_run_and_every_epoch(study) -> None:
    from hcm.report.study_figures import diagnostics_figure, study_figure

    runs, per_epoch = collect_study(study)
    fig = study_figure(runs, reference="no_dynamic")
    ax = fig.axes[0]
    xs = sorted(x for coll in ax.collections for x in coll.get_offsets()[:, 0])
    assert xs == pytest.approx(sorted([*runs["mAP"], *runs["val_mAP"]]))
    assert [t.get_text() for t in ax.get_yticklabels()] == list(runs["row"].unique())
    fig = diagnostics_figure(per_epoch, dashed=frozenset({"scale_control"}))
    share, scale = fig.axes[0], fig.axes[1]
    styles = {line.get_label(): line.get_linestyle() for line in share.get_lines()}
    assert styles["scale_control"] == "--" and styles["hcm"] == "-"
    hcm_line = next(line for line in share.get_lines() if line.get_label() == "hcm")
    assert list(hcm_line.get_ydata()) == pytest.approx([0.3, 0.35, 0.4])
    control = next(line for line in scale.get_lines() if line.get_label() == "scale_control")
    assert list(control.get_ydata()) == pytest.approx([1.5, 3.0, 4.5])  # the factor's scale x L_id's weight 3


def test_each_reading_is_paired_with_its_own_scale_control(study, tmp_path: Path) -> None:
    # focal_raw's own control (its measured scale): test mAP 44, 46, 45 -> focal_raw minus it: +2, -1, +2
    own = [make_run(tmp_path / "runs", "synth-market", "scale_control_focal_raw", seed, test, 70.0, scale=1.0,
                    weight=0.3) for seed, test in enumerate([44.0, 46.0, 45.0])]
    runs, per_epoch = collect_study({**study, "scale_control_focal_raw": own})
    matched = {"hcm_focal_raw": "scale_control_focal_raw"}
    controls = row_controls(list(runs["row"].unique()), "scale_control", matched)
    assert controls["hcm_focal_raw"] == "scale_control_focal_raw" and controls["hcm"] == "scale_control"
    assert "scale_control" not in controls and "scale_control_focal_raw" not in controls  # controls have none
    headline = readings_table(runs, reference="no_dynamic", control="scale_control", matched=matched)
    lines = {line.split("|")[1].strip(): line for line in headline.splitlines()[2:]}
    assert set(lines) == {"hcm", "hcm_focal_raw"}  # the readings only: no reference, control or bound
    # hcm - no_dynamic: -3, -1, -1 ; hcm - scale_control on seeds 0, 1: -1, +1
    assert "-1.7 ± 1.2 (n=3)" in lines["hcm"] and "+0.0 ± 1.4 (n=2)" in lines["hcm"]
    # focal_raw - no_dynamic: +3, 0, +5 ; focal_raw - its own control: +2, -1, +2
    assert "+2.7 ± 2.5 (n=3)" in lines["hcm_focal_raw"] and "+1.0 ± 1.7 (n=3)" in lines["hcm_focal_raw"]
    assert "`scale_control_focal_raw`" in lines["hcm_focal_raw"]
    out = tmp_path / "reports"
    write_study_reports(runs, per_epoch, out, reference="no_dynamic", control="scale_control", matched=matched)
    readme = (out / "README.md").read_text()
    assert "## The readings against their controls" in readme and "+1.0 ± 1.7 (n=3)" in readme
    # the readings (hcm rows) ranked on validation mAP: focal_raw 74.0, hcm 70.33 -> runner-up 3.67 behind (two
    # decimals: a tie at one decimal is still ranked)
    assert "**Validation-best reading: `hcm_focal_raw`**" in readme and "runner-up `hcm`, 3.67 points behind" in readme
    with pytest.raises(HCMError, match="'scale_control_nope'"):
        write_study_reports(runs, per_epoch, out, reference="no_dynamic", matched={"hcm": "scale_control_nope"})
    # two rows may share a control (a memory-rule row of a reading names that reading's control):
    # hcm - scale_control_focal_raw: 40-44, 44-46, 41-45 = -4, -2, -4
    shared = {**matched, "hcm": "scale_control_focal_raw"}
    assert row_controls(list(runs["row"].unique()), "scale_control", shared)["hcm"] == "scale_control_focal_raw"
    lines = {line.split("|")[1].strip(): line
             for line in readings_table(runs, reference="no_dynamic", control="scale_control",
                                        matched=shared).splitlines()[2:]}
    assert set(lines) == {"hcm", "hcm_focal_raw"} and "-3.3 ± 1.2 (n=3)" in lines["hcm"]
    assert "+1.0 ± 1.7 (n=3)" in lines["hcm_focal_raw"]


def test_the_cli_pairs_readings_with_the_controls_it_is_given(study, tmp_path: Path, capsys) -> None:
    args = ["report", "study", "--out-dir", str(tmp_path / "out"), "--reference", "no_dynamic",
            "--control", "scale_control"]
    rows = [arg for row, dirs in study.items() for arg in ["--row", row, *map(str, dirs)]]
    assert main([*args, "--matched-control", "hcm_focal_raw=scale_control", *rows]) == 0
    assert "14 study runs, 5 rows" in capsys.readouterr().out
    assert main([*args, "--matched-control", "hcm_focal_raw", *rows]) != 0
    assert "give ROW=CONTROL" in capsys.readouterr().err


def test_the_readings_figure_draws_every_paired_difference(study, tmp_path: Path) -> None:
    from hcm.report.study_figures import readings_figure

    own = [make_run(tmp_path / "runs", "synth-market", "scale_control_focal_raw", seed, test, 70.0, scale=1.0,
                    weight=0.3) for seed, test in enumerate([44.0, 46.0, 45.0])]
    runs, _ = collect_study({**study, "scale_control_focal_raw": own})
    controls = {"hcm": "scale_control", "hcm_focal_raw": "scale_control_focal_raw"}
    fig = readings_figure(runs, ["hcm", "hcm_focal_raw"], controls, reference="no_dynamic")
    test_panel = fig.axes[0]
    xs = sorted(x for coll in test_panel.collections for x in coll.get_offsets()[:, 0])
    # hcm - no_dynamic: -3, -1, -1; focal_raw - no_dynamic: +3, 0, +5; hcm - scale_control: -1, +1;
    # focal_raw - its own control: +2, -1, +2
    assert xs == pytest.approx(sorted([-3, -1, -1, 3, 0, 5, -1, 1, 2, -1, 2]))
    assert [t.get_text() for t in test_panel.get_yticklabels()] == ["hcm", "hcm_focal_raw"]
