"""Static checks of the workflow's files: environments in sync with pyproject, profiles, recipes, folders."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import pytest
import yaml

from tests.workflow.smk import REPO, workflow_config

# conda name -> the PyPI name pyproject.toml uses (identity for all others)
CONDA_TO_PYPI: dict[str, str] = {}


def requirement(spec: str) -> tuple[str, str]:
    """'numpy>=1.26' -> ('numpy', '>=1.26'); conda's '=' pins count as '=='."""
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*(#.*)?$", spec)
    assert m, spec
    name, version = m.group(1).lower(), m.group(2).replace(" ", "")
    if version.startswith("=") and not version.startswith("=="):
        version = "=" + version
    return CONDA_TO_PYPI.get(name, name), version


def conda_requirements(path) -> dict[str, str]:
    env = yaml.safe_load(path.read_text(encoding="utf-8"))
    out: dict[str, str] = {}
    for dep in env["dependencies"]:
        items = dep["pip"] if isinstance(dep, dict) else [dep]
        for item in items:
            name, version = requirement(item)
            out[name] = version
    out.pop("python")
    out.pop("pip")
    return out


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    specs = project["dependencies"] + project["optional-dependencies"]["dev"] + \
        project["optional-dependencies"]["slurm"]
    out = {}
    for spec in specs:
        name, version = requirement(spec)
        # pyproject pins torch/torchvision as a range admitting one release: compare the release
        pin = re.fullmatch(r">=([\d.]+),<=\1", version)
        out[name] = f"=={pin.group(1)}" if pin else version
    return out


@pytest.mark.parametrize("path", ["environment.yml", "workflow/envs/hcm.yaml"])
def test_conda_environments_match_pyproject(path: str) -> None:
    assert conda_requirements(REPO / path) == pyproject_requirements()


def test_conda_environment_python_matches_pyproject() -> None:
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    for path in ("environment.yml", "workflow/envs/hcm.yaml"):
        deps = yaml.safe_load((REPO / path).read_text())["dependencies"]
        assert "python=3.11" in deps and ">=3.11,<3.12" == requires


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
