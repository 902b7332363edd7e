"""Aggregation of run directories into the tidy tables (results.csv in percent)."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest
import torch

from hcm.errors import HCMError
from hcm.report.aggregate import RESULTS_COLUMNS, aggregate, read_results, write_aggregate
from tests.report.runfactory import expected_map, write_run, write_suite


def test_results_one_row_per_run_in_percent(tmp_path: Path) -> None:
    dirs = write_suite(tmp_path, ["synth-duke", "synth-market"], ["untrained", "baseline", "hcm"], [1, 0])
    agg = aggregate(dirs)
    res = agg.results
    assert list(res.columns) == list(RESULTS_COLUMNS)
    assert len(res) == 12
    # sorted: dataset order (market before duke), variant order (hcm, baseline, untrained), seed
    assert list(res["dataset"].unique()) == ["synth-market", "synth-duke"]
    assert list(res["variant"].unique()) == ["hcm", "baseline", "untrained"]
    assert list(res["seed"][:2]) == [0, 1]
    for row in res.itertuples():
        metrics = json.loads((tmp_path / row.dataset / row.variant / f"seed{row.seed}" / "metrics.json").read_text())
        assert row.mAP == pytest.approx(100 * expected_map(row.variant, row.seed))
        assert row.mINP == pytest.approx(100 * metrics["mINP"])
        assert row.rank1 == pytest.approx(100 * metrics["cmc"][0])
        assert row.rank5 == pytest.approx(100 * metrics["cmc"][4])
        assert row.rank10 == pytest.approx(100 * metrics["cmc"][9])


def test_companion_tables(tmp_path: Path) -> None:
    dirs = write_suite(tmp_path, ["synth-market"], ["hcm", "untrained"], [0, 1])
    agg = aggregate(dirs)
    # CMC: 50 ranks per run, percent, rank starting at 1
    assert len(agg.cmc) == 4 * 50
    first = agg.cmc[(agg.cmc["variant"] == "hcm") & (agg.cmc["seed"] == 0)]
    assert list(first["rank"]) == list(range(1, 51))
    assert first["cmc"].iloc[0] == pytest.approx(agg.results.query("variant == 'hcm' and seed == 0")["rank1"].item())
    # curves: the epochs.csv rows; untrained has none
    assert set(agg.curves["variant"]) == {"hcm"}
    assert len(agg.curves) == 2 * 4
    assert {"epoch", "loss", "num_clusters", "ari", "test_mAP"} <= set(agg.curves.columns)
    # provenance
    runs = agg.runs.set_index(["variant", "seed"])
    assert runs.loc[("untrained", 0), "selection"] == "initial"
    assert runs.loc[("hcm", 1), "epochs"] == 4
    assert runs.loc[("hcm", 1), "train_wall_time_s"] == pytest.approx(61.0)
    # the machine each run was trained on (train_summary.json's environment)
    assert runs.loc[("hcm", 0), "cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert runs.loc[("hcm", 0), "torch"] == metadata.version("torch")
    assert pd.isna(runs.loc[("hcm", 0), "gpu"])  # trained on the CPU


def test_runs_table_tells_machines_apart(tmp_path: Path) -> None:
    gpu_box = {"cpu": "AMD EPYC 9454", "cpu_capability": "AVX512", "gpu": "NVIDIA H100 80GB HBM3",
               "torch": "2.11.0", "cuda": "13.0"}
    write_run(tmp_path / "a", "synth-market", "hcm", 0, environment=gpu_box)
    write_run(tmp_path / "b", "synth-market", "hcm", 1)
    old = tmp_path / "c"  # written before runs recorded their environment
    write_run(old, "synth-market", "hcm", 2)
    summary = json.loads((old / "train_summary.json").read_text())
    del summary["environment"]
    (old / "train_summary.json").write_text(json.dumps(summary))
    runs = aggregate([tmp_path / "a", tmp_path / "b", old]).runs.set_index("seed")
    assert runs.loc[0, ["cpu", "cpu_capability", "gpu", "torch"]].tolist() == [
        "AMD EPYC 9454", "AVX512", "NVIDIA H100 80GB HBM3", "2.11.0"]
    assert runs.loc[1, "cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert runs.loc[2, ["cpu", "cpu_capability", "gpu", "torch"]].isna().all()


def test_runs_table_records_the_factor_each_run_trained_with(tmp_path: Path) -> None:
    dirs = {v: tmp_path / v for v in ("hcm", "baseline", "image_only", "untrained")}
    for variant, run in dirs.items():
        write_run(run, "synth-market", variant, 0)
    focal = tmp_path / "focal"
    write_run(focal, "synth-duke", "hcm", 0, overrides={"loss": {"terms": {"identity": {"factor": "focal"}}}})
    runs = aggregate([*dirs.values(), focal]).runs.set_index(["dataset", "variant"])["factor"]
    assert runs[("synth-market", "hcm")] == "hard_negatives" and runs[("synth-market", "baseline")] == "none"
    assert runs[("synth-duke", "hcm")] == "focal"
    # no identity term, no adaptation: no factor
    assert pd.isna(runs[("synth-market", "image_only")]) and pd.isna(runs[("synth-market", "untrained")])


def test_write_and_read_back(tmp_path: Path) -> None:
    dirs = write_suite(tmp_path / "runs", ["synth-market"], ["hcm"], [0])
    paths = write_aggregate(aggregate(dirs), tmp_path / "tables")
    assert {p.name for p in paths.values()} == {"results.csv", "cmc.csv", "curves.csv", "runs.csv"}
    back = read_results(paths["results"])
    assert back["mAP"].item() == pytest.approx(100 * expected_map("hcm", 0), abs=1e-4)
    # writing the same runs again gives the same bytes (reports stay unchanged in git)
    before = paths["results"].read_bytes()
    write_aggregate(aggregate(dirs), tmp_path / "tables")
    assert paths["results"].read_bytes() == before


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    a = tmp_path / "a"
    b = tmp_path / "b"
    write_run(a, "synth-market", "hcm", 0)
    write_run(b, "synth-market", "hcm", 0)
    with pytest.raises(HCMError, match="also the key of"):
        aggregate([a, b])


def test_percent_in_metrics_json_is_rejected_with_the_file_named(tmp_path: Path) -> None:
    run = tmp_path / "run"
    metrics = write_run(run, "synth-market", "hcm", 0)
    metrics["mAP"] = 60.0  # percent where a fraction belongs
    (run / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(HCMError, match=r"metrics.json: mAP=60.0 is not a fraction"):
        aggregate([run])


def test_missing_metrics_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(HCMError, match="hcm evaluate --run"):
        aggregate([tmp_path / "nothing"])


def test_read_results_checks_columns(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    pd.DataFrame({"dataset": ["x"], "variant": ["hcm"]}).to_csv(path, index=False)
    with pytest.raises(HCMError, match="missing columns"):
        read_results(path)


def test_output_folder_that_is_a_file_is_one_line_not_a_traceback(tmp_path, capsys):
    """Issue 21, case 4: a file-system error (here an output folder that is a file) reaches the CLI as
    one line naming the path (exit 2), not an OSError traceback; -v still shows the traceback."""
    from hcm.cli import main

    run = tmp_path / "run"
    write_run(run, "synth-market", "hcm", 0)
    target = tmp_path / "tables"
    target.write_text("keep me")
    assert main(["report", "aggregate", "--out-dir", str(target), str(run)]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("hcm report: error: ")]
    assert len(lines) == 1 and str(target) in lines[0] and "Traceback" not in err, err
    assert target.read_text() == "keep me"
    with pytest.raises(OSError):
        main(["-v", "report", "aggregate", "--out-dir", str(target), str(run)])
