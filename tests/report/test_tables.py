"""Tables derived from results.csv: statistics against a slow reference, formatting, published numbers."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hcm.errors import HCMError
from hcm.report.published import load_published
from hcm.report.tables import ablation_table, main_table, published_table, summarise, write_table

# reference_results.md (docs), copied verbatim: the packaged CSV must hold exactly these numbers
REFERENCE_TABLE = """\
| Cluster Contrast, DBSCAN (our `baseline`) | 82.1/92.3/96.7/97.9 | 72.6/84.9/91.9/93.9 | 27.6/56.0/66.8/71.5 | 40.3/84.6/89.2/91.6 |
| Cluster Contrast, InfoMap | 83.0/92.9/97.2/98.0 | 73.6/85.5/92.2/94.3 | 31.2/61.5/71.8/76.7 | 40.8/86.2/90.5/92.8 |
| SpCL | 73.1/88.1/95.1/97.0 | 65.3/81.2/90.3/92.2 | 19.1/42.3/55.6/61.2 | 36.9/79.9/86.8/89.9 |
| HHCL (hard-sample hybrid memory) | 84.2/93.4/97.7/98.5 | 73.3/85.1/92.4/94.6 | – | – |
| ICE (no camera labels) | 79.5/92.0/97.0/98.1 | – | 29.8/59.0/71.7/77.0 | – |
| CACL | 80.9/92.7/97.4/98.5 | 69.6/82.6/91.2/93.8 | 23.0/48.9/61.2/66.4 | – |
| ISE | 85.3/94.3/98.0/98.8 | – | 37.0/67.6/77.5/81.0 | – |
| PPLR | 84.4/94.3/97.8/98.6 | – | 42.2/73.3/83.5/86.5 | 43.5/88.3/92.7/94.4 |
| DCMIP | 86.7/94.7/98.0/98.8 | – | 40.9/69.3/79.7/83.6 | – |
| HCM (Si et al., TMM 2023) | not available | not available | not available | not available |
"""
DATASETS = ["market1501", "dukemtmcreid", "msmt17", "veri776"]


def results_frame(values: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    """(dataset, variant) -> mAP per seed; the other metrics are mAP + fixed offsets."""
    rows = []
    for (d, v), maps in values.items():
        for seed, m in enumerate(maps):
            rows.append({"dataset": d, "variant": v, "seed": seed, "mAP": m, "mINP": m - 20,
                         "rank1": m + 20, "rank5": m + 25, "rank10": m + 27})
    return pd.DataFrame(rows)


def test_summarise_matches_statistics_module() -> None:
    rng = np.random.default_rng(3)
    values = {(d, v): list(rng.uniform(10, 90, size=n))
              for d, v, n in [("synth-market", "hcm", 3), ("synth-market", "baseline", 2), ("synth-duke", "hcm", 1)]}
    summary = summarise(results_frame(values)).set_index(["dataset", "variant", "metric"])
    for (d, v), maps in values.items():
        row = summary.loc[(d, v, "mAP")]
        assert row["mean"] == pytest.approx(statistics.fmean(maps))
        assert row["n"] == len(maps)
        if len(maps) > 1:
            assert row["std"] == pytest.approx(statistics.stdev(maps))  # sample std, ddof = 1
        else:
            assert math.isnan(row["std"])
        assert summary.loc[(d, v, "rank10"), "mean"] == pytest.approx(statistics.fmean(maps) + 27)


def test_main_table_cells_bold_and_reference_rows() -> None:
    res = results_frame({
        ("synth-market", "hcm"): [60.0, 62.0],
        ("synth-market", "baseline"): [55.0, 56.0],
        ("synth-market", "supervised"): [80.0, 80.0],   # higher, but a reference row: never bold
        ("synth-market", "untrained"): [30.0],          # one seed: the mean alone
    })
    table = main_table(res, suite="synthetic")
    lines = {ln.split(" | ")[0].strip("| "): ln for ln in table.markdown.splitlines()}
    assert "**61.0 ± 1.4**" in lines["HCM (full)"]
    assert "55.5 ± 0.7" in lines["Baseline (Cluster Contrast)"] and "**" not in lines["Baseline (Cluster Contrast)"]
    assert "**" not in lines["*Supervised (upper bound)*"]
    assert "| 30.0 |" in lines["*No adaptation (lower bound)*"]
    # header: one column per dataset x metric
    assert "Synth-Market mAP" in table.markdown and "Synth-Market R10" in table.markdown
    # LaTeX: booktabs, grouped header, reference rows after a rule, escaped text
    tex = table.latex
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"\multicolumn{4}{c}{Synth-Market}" in tex
    body = tex.split(r"\midrule", 1)[1]
    assert body.index(r"\midrule") < body.index("Supervised")
    assert r"\textbf{61.0 $\pm$ 1.4}" in tex
    # CSV: tidy, one row per (dataset, variant, metric)
    assert len(table.data) == 4 * 4
    assert set(table.data.columns) >= {"dataset", "variant", "metric", "mean", "std", "n_seeds"}


def test_ablation_deltas_and_components() -> None:
    res = results_frame({
        ("synth-market", "hcm"): [60.0, 62.0],
        ("synth-market", "no_dynamic"): [58.0, 58.0],
        ("synth-market", "image_only"): [40.0, 41.0],
        ("synth-market", "baseline"): [55.0, 56.0],
    })
    table = ablation_table(res)
    data = table.data[table.data["metric"] == "mAP"].set_index("variant")
    assert data.loc["no_dynamic", "delta_vs_hcm"] == pytest.approx(58.0 - 61.0)
    assert data.loc["baseline", "delta_vs_hcm"] == pytest.approx(55.5 - 61.0)
    assert data.loc["hcm", "delta_vs_hcm"] == pytest.approx(0.0)
    assert not data.loc["image_only", "identity_loss"] and data.loc["image_only", "image_loss"]
    assert data.loc["baseline", "identity_loss"] and not data.loc["baseline", "dynamic_factor"]
    rows = {ln.split(" | ")[0].strip("| "): ln for ln in table.markdown.splitlines()}
    assert "−3.0" in rows["HCM w/o dynamic factor"]        # typographic minus
    assert rows["Image level only"].count("✓") == 1
    assert "identity_only" not in table.data["variant"].values  # absent variants are left out
    assert r"$-$3.0" in table.latex


def test_packaged_published_numbers_equal_the_reference() -> None:
    pub = load_published()
    methods = list(dict.fromkeys(pub["method"]))
    for line, method in zip(REFERENCE_TABLE.strip().splitlines(), methods, strict=True):
        cells = [c.strip() for c in line.strip("|").split("|")][1:5]
        for d, cell in zip(DATASETS, cells, strict=True):
            row = pub[(pub["method"] == method) & (pub["dataset"] == d)].iloc[0]
            if cell == "–":
                assert row["status"] == "not reported"
                assert row[["mAP", "rank1", "rank5", "rank10"]].isna().all()
            elif cell == "not available":
                assert row["status"] == "not available"
            else:
                assert row["status"] == "reported"
                assert [row[m] for m in ("mAP", "rank1", "rank5", "rank10")] == [float(x) for x in cell.split("/")]
    hcm = pub[pub["method"].str.startswith("HCM")]
    assert set(hcm["variant"]) == {"hcm"} and set(hcm["status"]) == {"not available"}


def test_published_table_difference_and_not_available() -> None:
    pub = load_published()
    res = results_frame({("market1501", "baseline"): [80.0, 81.0], ("market1501", "hcm"): [83.0, 84.0]})
    table = published_table(res, pub, suite="paper")
    data = table.data.set_index(["method", "dataset", "metric"])
    cc = data.loc[("Cluster Contrast (DBSCAN)", "market1501", "mAP")]
    assert cc["ours_mean"] == pytest.approx(80.5)
    assert cc["difference"] == pytest.approx(80.5 - 82.1)
    assert data.loc[("Cluster Contrast (DBSCAN)", "market1501", "rank1"), "difference"] == pytest.approx(100.5 - 92.3)
    hcm = data.loc[("HCM (Si et al., TMM 2023)", "market1501", "mAP")]
    assert hcm["status"] == "not available" and hcm["ours_mean"] == pytest.approx(83.5) and math.isnan(hcm["difference"])
    rows = {ln.split(" | ")[0].strip("| "): ln for ln in table.markdown.splitlines()}
    assert "−1.6/" in rows["*Δ Baseline (Cluster Contrast) − Cluster Contrast (DBSCAN)*"]
    assert "not available" in rows["*Δ HCM (full) − HCM (Si et al., TMM 2023)*"]
    assert "not run" in rows["*This project: HCM (full)*"]  # DukeMTMC etc. were not run
    assert "83.5/" in rows["*This project: HCM (full)*"]


def test_published_table_for_a_suite_without_the_published_datasets() -> None:
    res = results_frame({("synth-market", "hcm"): [60.0]})
    table = published_table(res, load_published(), suite="synthetic")
    assert "This project" not in table.markdown
    assert "not the published ones" in table.caption


@pytest.mark.parametrize(("line", "message"), [
    ("X,,market1501,1,2,3,4,maybe,src", "unknown status"),
    ("X,,market1501,,,,,reported,src", "empty metric cells"),
    ("X,,market1501,1,2,3,4,not available,src", "set the status to 'reported'"),
    ("X,,market1501,abc,2,3,4,reported,src", "is not a number"),
    ("X,,market1501,101,2,3,4,reported,src", r"percentages in \[0, 100\]"),
])
def test_published_file_errors(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "pub.csv"
    path.write_text("# comment\nmethod,variant,dataset,mAP,rank1,rank5,rank10,status,source\n" + line + "\n")
    with pytest.raises(HCMError, match=message):
        load_published(path)


def test_write_table_writes_three_formats(tmp_path: Path) -> None:
    res = results_frame({("synth-market", "hcm"): [60.0, 61.0]})
    paths = write_table(main_table(res), tmp_path)
    assert sorted(p.name for p in paths) == ["main.csv", "main.md", "main.tex"]
    assert (tmp_path / "main.md").read_text().startswith("Main results")
    assert pd.read_csv(tmp_path / "main.csv")["mean"].max() == pytest.approx(60.5 + 27)


def test_describe_machines_names_each_training_machine_with_its_run_count() -> None:
    from hcm.report.readme import describe_machines

    cpu = {"cpu": "Xeon", "cpu_capability": "AVX512", "gpu": None, "torch": "2.14.1"}
    gpu = {"cpu": "EPYC", "cpu_capability": "AVX2", "gpu": "NVIDIA H100", "torch": "2.11.0"}
    none = {"cpu": None, "cpu_capability": None, "gpu": None, "torch": None}
    runs = pd.DataFrame([cpu, gpu, cpu, none])
    assert describe_machines(runs) == ("EPYC (AVX2), GPU NVIDIA H100, torch 2.11.0: 1 runs; "
                                       "Xeon (AVX512), torch 2.14.1: 2 runs; not recorded: 1 runs")
    # run tables written before runs recorded their machine have no such columns
    assert describe_machines(pd.DataFrame({"device": ["cpu", "cpu"]})) == "not recorded: 2 runs"


def test_describe_failed_runs_names_runs_that_did_not_train() -> None:
    """Issue 21, case 5: a run that never trained is shown in the report README, not scored silently."""
    from hcm.report.readme import describe_failed_runs

    runs = pd.DataFrame({"dataset": ["synth-market"] * 3, "variant": ["hcm", "baseline", "hcm"], "seed": [0, 0, 1],
                         "status": ["ok", "not_trained", "diverged"]})
    text = describe_failed_runs(runs)
    assert text is not None and text.startswith("synth-market/baseline/seed0 (not_trained), "
                                                 "synth-market/hcm/seed1 (diverged) -- ")
    assert describe_failed_runs(runs.iloc[:1]) is None
    assert describe_failed_runs(runs.drop(columns="status")) is None  # runs.csv from before the column
