"""Dry runs of the workflow: the DAG of each suite, the commands it would run, config errors, lint."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.workflow.smk import (
    PROFILES,
    job_counts,
    shell_commands,
    snakemake,
    stub_recipes,
    workflow_config,
)

try:  # the shared builders of fake real-dataset trees (tests/fake_datasets.py), once merged
    from tests.fake_datasets import make_all as make_fake_real_datasets
except ImportError:  # pragma: no cover - until then, the bare folder layouts
    def make_fake_real_datasets(parent: Path) -> dict[str, Path]:
        layout = {
            "market1501": ("Market-1501-v15.09.15", ["bounding_box_train", "query", "bounding_box_test"]),
            "dukemtmcreid": ("DukeMTMC-reID", ["bounding_box_train", "query", "bounding_box_test"]),
            "msmt17": ("MSMT17_V1", ["train", "test"]),
            "veri776": ("VeRi", ["image_train", "image_query", "image_test"]),
        }
        out = {}
        for name, (folder, subdirs) in layout.items():
            for sub in subdirs:
                (parent / folder / sub).mkdir(parents=True, exist_ok=True)
            out[name] = parent / folder
        return out


@pytest.fixture(scope="module")
def recipes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return stub_recipes(tmp_path_factory.mktemp("recipes"))


def test_synthetic_suite_is_the_default(tmp_path: Path, recipes: Path) -> None:
    res = snakemake(tmp_path, "-n", "--printshellcmds", config={"recipes_dir": recipes})
    assert res.returncode == 0, res.stderr
    out = res.stdout + res.stderr
    n = 4 * 7 * 2  # datasets x (5 variants + 2 reference rows) x seeds
    assert job_counts(out) == {"prepare": 5, "pretrain": 1, "train": n, "aggregate": 1, "report": 1,
                               "mlflow_init": 1, "track": 1, "all": 1}
    cmds = shell_commands(out)
    train = next(c for c in cmds if "hcm train" in c and "runs/synth-duke/no_dynamic/seed1 " in c)
    for part in ["--config", "synth-small.yaml", "--resume", "--set seed=1", "--set variant=no_dynamic",
                 "--set dataset.name=synth-duke", "--set dataset.root=results/synthetic/data/synth-duke",
                 "--set dataset.index=results/synthetic/data/synth-duke/index.csv",
                 "--set model.weights=results/synthetic/pretrain/synth-pretrain/checkpoint.pt",
                 "--set runtime.device=auto", "--set runtime.threads=1", "--evaluate"]:
        assert part in train, (part, train)
    assert any(c.startswith("hcm prepare synth-pretrain --root results/synthetic/data/synth-pretrain") for c in cmds)
    assert any(c.startswith("hcm train") and "--out-dir results/synthetic/runs/synth-market/untrained/seed0 " in c
               and "--evaluate" in c for c in cmds)
    assert not any(c.startswith("hcm evaluate") for c in cmds)  # scored in the train jobs
    report = next(c for c in cmds if c.startswith("hcm report build"))
    assert "--readme reports/README.md" in report and "--suite synthetic" in report
    track = next(c for c in cmds if c.startswith("hcm track log"))
    assert "--tracking-uri sqlite:///results/mlflow.db" in track and track.count("/metrics.json") == 0


def test_smoke_suite_reports_elsewhere(tmp_path: Path, recipes: Path) -> None:
    res = snakemake(tmp_path, "-n", "--printshellcmds", config={"suite": "smoke", "recipes_dir": recipes})
    assert res.returncode == 0, res.stderr
    out = res.stdout + res.stderr
    assert job_counts(out) == {"prepare": 2, "pretrain": 1, "train": 6, "aggregate": 1,
                               "report": 1, "mlflow_init": 1, "track": 1, "all": 1}
    assert any("--readme reports/smoke/README.md" in c for c in shell_commands(out))


def test_paper_suite_on_fake_dataset_trees(tmp_path: Path, recipes: Path) -> None:
    data = tmp_path / "datasets"
    make_fake_real_datasets(data)
    work = tmp_path / "work"
    work.mkdir()
    res = snakemake(work, "-n", "--printshellcmds",
                    config={"suite": "paper", "data_root": data, "recipes_dir": recipes})
    assert res.returncode == 0, res.stderr
    out = res.stdout + res.stderr
    n = 4 * 7 * 3
    assert job_counts(out) == {"prepare": 4, "train": n, "aggregate": 1, "report": 1,
                               "mlflow_init": 1, "track": 1, "all": 1}  # no pretraining: ImageNet weights
    cmds = shell_commands(out)
    assert any(c.startswith(f"hcm prepare msmt17 --root {data} --out results/paper/data/msmt17/index.csv")
               for c in cmds)
    train = next(c for c in cmds if "hcm train" in c and "runs/veri776/hcm/seed2 " in c)
    assert "paper-veri776.yaml" in train and "--set model.weights=imagenet" in train
    assert f"--set dataset.root={data}" in train
    assert "gpu=1" in out  # training jobs declare a GPU
    assert any("--readme reports/paper/README.md" in c for c in cmds)


def test_paper_suite_without_data_says_what_is_missing(tmp_path: Path, recipes: Path) -> None:
    res = snakemake(tmp_path, "-n", config={"suite": "paper", "data_root": tmp_path / "none", "recipes_dir": recipes})
    assert res.returncode != 0
    assert "is not a folder" in res.stdout + res.stderr
    data = tmp_path / "datasets"
    (data / "Market-1501-v15.09.15").mkdir(parents=True)
    res = snakemake(tmp_path, "-n", config={"suite": "paper", "data_root": data, "recipes_dir": recipes})
    assert res.returncode != 0
    out = res.stdout + res.stderr
    assert "dataset dukemtmcreid not found under data_root" in out
    # the folders looked for are hcm's (DatasetSpec.folder_names), not a copy in the workflow config
    from hcm.data.registry import get_spec

    assert all(f"{data / f}" in out for f in get_spec("dukemtmcreid").folder_names)


def test_sweep_target(tmp_path: Path, recipes: Path) -> None:
    res = snakemake(tmp_path, "sweep", "-n", "--printshellcmds", config={"recipes_dir": recipes})
    assert res.returncode == 0, res.stderr
    out = res.stdout + res.stderr
    sweep = workflow_config()["suites"]["synthetic"]["sweep"]
    n = sum(len(v) for v in sweep["knobs"].values()) * len(sweep["seeds"])
    assert job_counts(out) == {"prepare": 2, "pretrain": 1, "train_sweep": n,
                               "sweep_report": 1, "mlflow_init": 1, "track_sweep": 1, "sweep": 1}
    cmds = shell_commands(out)
    run = next(c for c in cmds if "hcm train" in c and "sweep/synth-market/loss.gamma=4/seed1 " in c)
    assert run.endswith("--set loss.gamma=4 --set runtime.threads=1 > "
                        "results/synthetic/logs/sweep/train/synth-market/loss.gamma=4/seed1.log 2>&1 "
                        "|| [ $? -eq 3 ]")  # a run that finished without training keeps its record
    assert "--set variant=hcm" in run
    report = next(c for c in cmds if c.startswith("hcm report sweep"))
    assert "--knob cluster.eps results/synthetic/sweep/synth-market/cluster.eps=0.35/seed0" in report


def test_study_target(tmp_path: Path, recipes: Path) -> None:
    """The readings study's DAG: every row x dataset x seed with the study's overrides after the row's
    variant, the scale controls behind a study_scale job that reads the hcm run of the same seed."""
    res = snakemake(tmp_path, "study", "-n", "--printshellcmds", config={"recipes_dir": recipes})
    assert res.returncode == 0, res.stderr
    out = res.stdout + res.stderr
    study = workflow_config()["suites"]["synthetic"]["study"]
    n_data, n_seeds = len(study["datasets"]), len(study["seeds"])
    controls = sum(1 for row in study["rows"].values() if row.get("scale_from"))
    assert job_counts(out) == {"prepare": 3, "pretrain": 1, "train_study": len(study["rows"]) * n_data * n_seeds,
                               "study_scale": controls * n_data * n_seeds, "study_report": 1, "mlflow_init": 1,
                               "track_study": 1, "study": 1}
    cmds = shell_commands(out)
    raw = next(c for c in cmds if "hcm train" in c and "study/synth-duke/identity_only_focal_raw/seed2 " in c)
    for part in ["--set variant=identity_only", "--set optim.epochs=12", "--set dataset.val_fraction=0.2",
                 "--set loss.terms.identity.factor=focal_raw", "--set seed=2", "synth-small.yaml"]:
        assert part in raw, (part, raw)
    control = next(c for c in cmds if "hcm train" in c and "study/synth-market/scale_control_focal/seed1 " in c)
    assert "--config results/synthetic/study/synth-market/scale_control_focal/seed1.scale.yaml" in control
    assert "--set variant=no_dynamic" in control
    scale = next(c for c in cmds if c.startswith("hcm report scale-recipe")
                 and "synth-market/scale_control_focal/seed1.scale" in c)
    assert scale.split(" > ")[0].endswith("results/synthetic/study/synth-market/hcm_focal/seed1")
    report = next(c for c in cmds if c.startswith("hcm report study"))
    assert "--reference no_dynamic --control scale_control_focal" in report
    track = next(c for c in cmds if c.startswith("hcm track log") and "--group study" in c)
    assert "--out results/synthetic/mlflow/study_runs.csv" in track
    assert track.count("results/synthetic/study/") == len(study["rows"]) * n_data * n_seeds  # every study run
    for name, row in study["rows"].items():  # each scale-controlled reading is paired with its own control
        if row.get("scale_from"):
            assert f"--matched-control {row['scale_from']}={name}" in report
    # a memory-rule row of a reading is paired with that reading's control, which it names
    assert "--matched-control hcm_hard_negatives_memory_hybrid=scale_control_hard_negatives" in report
    assert report.count("--matched-control") == sum(bool(r.get("scale_from")) + bool(r.get("control"))
                                                    for r in study["rows"].values())
    assert ("--row hcm_focal_memory_hybrid results/synthetic/study/synth-market/hcm_focal_memory_hybrid/seed0"
            in report)


@pytest.mark.parametrize(("study", "message"), [
    ("datasets: [synth-veri2]", "synth-veri2"),
    ("reference: nope", "reference='nope' is not one of the study's rows"),
    ("rows: {a: {variant: hcm, scale_from: a}}", "scale_from='a' must name another row"),
    ("rows: {a: {variant: hcm, control: a}}", "control='a' must name a scale control"),
    ("rows: {a: {variant: hcm}, c: {variant: no_dynamic, scale_from: a, control: c}}", "control='c' must name"),
    ("rows: {a: {variant: magic}}", "magic"),
])
def test_study_config_errors(tmp_path: Path, recipes: Path, study: str, message: str) -> None:
    base = {"datasets": "[synth-market]", "seeds": "[0]", "reference": "a", "rows": "{a: {variant: hcm}}"}
    key, _, value = study.partition(": ")
    base[key] = value
    cfg = tmp_path / "study.yaml"
    cfg.write_text("suites:\n  smoke:\n    study:\n" + "".join(f"      {k}: {v}\n" for k, v in base.items()))
    res = snakemake(tmp_path, "study", "-n", "--configfile", str(cfg), config={"suite": "smoke", "recipes_dir": recipes})
    assert res.returncode != 0 and message in res.stdout + res.stderr, (res.stdout + res.stderr)[-2000:]


def test_unknown_suite_and_schema_errors(tmp_path: Path, recipes: Path) -> None:
    res = snakemake(tmp_path, "-n", config={"suite": "nope", "recipes_dir": recipes})
    assert res.returncode != 0
    assert "suite='nope' is not defined; choose one of synthetic, paper, smoke" in res.stdout + res.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("suites:\n  smoke:\n    variants: [hcm, magic]\n")
    res = snakemake(tmp_path, "-n", "--configfile", str(bad), config={"suite": "smoke", "recipes_dir": recipes})
    assert res.returncode != 0
    assert "magic" in res.stdout + res.stderr


def test_suite_plugins_register_variants_and_reach_every_run(tmp_path: Path, recipes: Path) -> None:
    """A variant from the suite's plugin module is accepted, trained, and its runs record the plugin."""
    ext = tmp_path / "ext"
    ext.mkdir()
    (ext / "wf_toy.py").write_text(
        "from hcm.variants import Variant, register_variant\n"
        "register_variant(Variant('hcm_wf', {'loss': {'terms': {'image': {'weight': 0.5}}}}, label='HCM wf',\n"
        "                         color='#117733', components=('identity', 'dynamic', 'image')))\n",
        encoding="utf-8")
    cfg = tmp_path / "plugins.yaml"
    cfg.write_text("suites:\n  smoke:\n    plugins: [wf_toy]\n    variants: [hcm, hcm_wf]\n", encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    env = {"PYTHONPATH": str(ext)}
    res = snakemake(work, "-n", "--printshellcmds", "--configfile", str(cfg), env=env,
                    config={"suite": "smoke", "recipes_dir": recipes})
    assert res.returncode == 0, res.stderr
    cmds = shell_commands(res.stdout + res.stderr)
    toy = [c for c in cmds if "hcm train" in c and "--set variant=hcm_wf" in c]
    assert len(toy) == 2 and all("--set 'plugins=[wf_toy]'" in c for c in toy)
    # without the plugin module the variant is unknown, and the error says where to register it
    res = snakemake(work, "-n", "--configfile", str(cfg), config={"suite": "smoke", "recipes_dir": recipes})
    assert res.returncode != 0 and "plugin module 'wf_toy' could not be imported" in res.stdout + res.stderr


def test_lint_is_clean(tmp_path: Path, recipes: Path) -> None:
    res = snakemake(tmp_path, "--lint", config={"recipes_dir": recipes})
    out = res.stdout + res.stderr
    assert res.returncode == 0 and "Congratulations, your workflow is in a good condition" in out, out


def _job_resources(out: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, resources) of every job in a dry run's log."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out):
        m = re.match(r"(?:local)?rule (\w+):", block)
        res = re.search(r"^\s*resources: (.*)$", block, re.M)
        if m and res:
            jobs.append((m.group(1), dict(kv.split("=", 1) for kv in res.group(1).split(", "))))
    return jobs


def test_paper_suite_through_the_slurm_profile_asks_for_gpus(tmp_path: Path, recipes: Path) -> None:
    """The paper suite's pretrain/train jobs carry gpu=1 through the SLURM profile, which the executor
    turns into sbatch's --gpus=1; CPU jobs ask for no GPU. (tests/workflow/test_slurm.py runs the profile.)"""
    plugin = pytest.importorskip("snakemake_executor_plugin_slurm.utils",
                                 reason="snakemake-executor-plugin-slurm is not installed")
    data = tmp_path / "datasets"
    make_fake_real_datasets(data)
    work = tmp_path / "work"
    work.mkdir()
    res = snakemake(work, "-n", "--profile", str(PROFILES / "slurm"),
                    config={"suite": "paper", "data_root": data, "recipes_dir": recipes})
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    jobs = _job_resources(out)
    rules = [rule for rule, _ in jobs]
    assert rules.count("train") == 4 * 7 * 3 and rules.count("prepare") == 4

    class Job:  # what the executor reads of a job: its resources
        def __init__(self, resources: dict[str, str]) -> None:
            self.resources = _Resources({k: int(v) if v.isdigit() else v for k, v in resources.items()})

    for rule, resources in jobs:
        gres = plugin.set_gres_string(Job(resources)).strip()
        if rule in ("train", "pretrain"):
            assert resources["gpu"] == "1" and gres == "--gpus=1", (rule, resources)
        else:
            assert resources.get("gpu", "0") == "0" and gres == "", (rule, resources)


class _Resources(dict):
    def __getattr__(self, name: str):
        return self[name]
