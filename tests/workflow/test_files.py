"""Static checks of the workflow's files: profiles, recipes, folders (environments: test_environments.py)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

from tests.workflow.smk import REPO, workflow_config


def snakemake_long_options() -> set[str]:
    out = subprocess.run([sys.executable, "-m", "snakemake", "--help"], capture_output=True, text=True).stdout
    return set(re.findall(r"--([a-z][a-z0-9-]+)", out))


@pytest.mark.parametrize("profile", ["default", "slurm"])
def test_profiles_set_only_snakemake_options(profile: str) -> None:
    settings = yaml.safe_load((REPO / "workflow" / "profiles" / profile / "config.yaml").read_text())
    unknown = set(settings) - snakemake_long_options()
    assert not unknown, f"not snakemake options: {unknown}"
    if profile == "slurm":
        assert settings["executor"] == "slurm"


def test_recipes_named_by_the_config_exist() -> None:
    recipes = REPO / "workflow" / "recipes"
    missing = []
    for name, suite in workflow_config()["suites"].items():
        files = [d["recipe"] for d in suite["datasets"].values()]
        files += [suite["pretrain"]["recipe"]] if suite.get("pretrain") else []
        missing += [f"{name}: {f}" for f in files if not (recipes / f).is_file()]
    assert not missing


def test_paper_folders_match_the_dataset_registry() -> None:
    from hcm.data import registry

    specs = {name: registry.get_spec(name) for name in workflow_config()["suites"]["paper"]["datasets"]}
    for name, spec in specs.items():
        assert workflow_config()["suites"]["paper"]["datasets"][name]["folders"] == list(spec.folder_names)
