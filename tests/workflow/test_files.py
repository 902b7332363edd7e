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


def test_workflow_config_repeats_no_registry() -> None:
    """Dataset folders and the variant list come from hcm, not from copies in the workflow files."""
    for suite in workflow_config()["suites"].values():
        assert all("folders" not in d for d in suite["datasets"].values())
    schema = (REPO / "workflow" / "config" / "config.schema.yaml").read_text()
    assert "identity_only" not in schema
