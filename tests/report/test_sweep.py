"""Sensitivity sweep reports: knob values read from each run's config, defaults from the recipe."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from hcm.cli import main
from hcm.errors import HCMError
from hcm.report.sweep import collect_sweep
from tests.report.runfactory import write_run


def sweep_runs(root: Path) -> dict[str, list[Path]]:
    groups: dict[str, list[Path]] = {"loss.gamma": [], "cluster.eps": []}
    for i, gamma in enumerate([0.0, 2.0, 4.0]):
        for seed in (0, 1):
            run = root / f"loss.gamma={gamma:g}" / f"seed{seed}"
            write_run(run, "synth-market", "hcm", seed, mAP=0.5 + 0.05 * i + 0.01 * seed,
                      overrides={"loss": {"gamma": gamma}})
            groups["loss.gamma"].append(run)
    for eps in (0.4, 0.5):
        run = root / f"cluster.eps={eps:g}" / "seed0"
        write_run(run, "synth-market", "hcm", 0, mAP=0.3, overrides={"cluster": {"eps": eps}})
        groups["cluster.eps"].append(run)
    return groups


def test_collect_reads_values_from_the_resolved_config(tmp_path: Path) -> None:
    df = collect_sweep(sweep_runs(tmp_path))
    gamma = df[df["knob"] == "loss.gamma"]
    assert list(gamma["value"]) == [0.0, 0.0, 2.0, 2.0, 4.0, 4.0]
    assert gamma.groupby("value")["mAP"].mean().to_dict() == pytest.approx({0.0: 50.5, 2.0: 55.5, 4.0: 60.5})
    assert list(df[df["knob"] == "cluster.eps"]["value"]) == [0.4, 0.5]


def test_unknown_knob_is_an_error(tmp_path: Path) -> None:
    groups = sweep_runs(tmp_path)
    with pytest.raises(HCMError, match="no key 'loss.nothing'"):
        collect_sweep({"loss.nothing": groups["loss.gamma"]})


def test_sweep_command_writes_figures_table_and_default(tmp_path: Path) -> None:
    groups = sweep_runs(tmp_path / "runs")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("dataset: {name: synth-market}\nloss: {gamma: 2.0}\ncluster: {eps: 0.45}\n")
    argv = ["report", "sweep", "--out-dir", str(tmp_path / "out"), "--recipe", str(recipe), "--set", "variant=hcm"]
    for knob, runs in groups.items():
        argv += ["--knob", knob, *map(str, runs)]
    assert main(argv) == 0
    out = tmp_path / "out"
    assert (out / "sensitivity_loss.gamma.png").is_file() and (out / "sensitivity_cluster.eps.png").is_file()
    table = (out / "sensitivity.md").read_text()
    assert "| 2 (default) | 55.5 ± 0.7 |" in table          # the recipe's gamma
    eps_rows = [ln for ln in table.splitlines() if "DBSCAN eps" in ln]
    assert len(eps_rows) == 2 and not any("(default)" in ln for ln in eps_rows)  # 0.45 was not swept
    assert len(pd.read_csv(out / "sensitivity.csv")) == 8
    assert "sensitivity_loss.gamma.png" in (out / "README.md").read_text()
