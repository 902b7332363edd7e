"""The conda environments agree with pyproject.toml (the one list of dependencies).

- ``environment.yml`` (the project: ``conda env create -f environment.yml``) holds everything
  pyproject installs for development: the runtime dependencies and the ``dev`` and ``slurm`` extras;
- ``workflow/envs/hcm.yaml`` (the rules' environment under ``snakemake --use-conda``) holds what
  the jobs run: the runtime dependencies without snakemake, which drives the jobs from outside it,
  and without the test and lint tools.

``--use-conda`` itself cannot run on the test machines (no conda channel is reachable); this is
what can be checked without it.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.workflow.smk import REPO

# conda name -> the PyPI name pyproject.toml uses (identity for all others)
CONDA_TO_PYPI: dict[str, str] = {}
#: runtime dependencies of pyproject that the jobs do not need: snakemake runs the jobs, not in them
DRIVER_ONLY = {"snakemake"}
#: never in the rules' environment
NOT_FOR_JOBS = {"snakemake", "snakemake-executor-plugin-slurm", "pytest", "pytest-timeout", "ruff"}


def requirement(spec: str) -> tuple[str, str]:
    """'numpy>=1.26' -> ('numpy', '>=1.26'); conda's '=' pins count as '=='."""
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*(#.*)?$", spec)
    assert m, spec
    name, version = m.group(1).lower(), m.group(2).replace(" ", "")
    if version.startswith("=") and not version.startswith("=="):
        version = "=" + version
    return CONDA_TO_PYPI.get(name, name), version


def conda_requirements(path: Path) -> dict[str, str]:
    env = yaml.safe_load(path.read_text(encoding="utf-8"))
    out: dict[str, str] = {}
    for dep in env["dependencies"]:
        items = dep["pip"] if isinstance(dep, dict) else [dep]
        for item in items:
            name, version = requirement(item)
            assert name not in out, f"{path}: {name} listed twice"
            out[name] = version
    out.pop("python")
    out.pop("pip")
    return out


def pyproject_requirements(*extras: str) -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    specs = project["dependencies"] + [s for e in extras for s in project["optional-dependencies"][e]]
    out = {}
    for spec in specs:
        name, version = requirement(spec)
        # pyproject pins torch/torchvision as a range admitting one release: compare the release
        pin = re.fullmatch(r">=([\d.]+),<=\1", version)
        out[name] = f"=={pin.group(1)}" if pin else version
    return out


def test_project_environment_matches_pyproject_with_its_extras() -> None:
    assert conda_requirements(REPO / "environment.yml") == pyproject_requirements("dev", "slurm")


def test_rule_environment_holds_what_the_jobs_need() -> None:
    rules_env = conda_requirements(REPO / "workflow" / "envs" / "hcm.yaml")
    runtime = pyproject_requirements()
    assert rules_env == {k: v for k, v in runtime.items() if k not in DRIVER_ONLY}
    assert not NOT_FOR_JOBS & set(rules_env)


def _top_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_package_the_jobs_run_imports_nothing_left_out_of_their_environment() -> None:
    """What the rules run (`python -m hcm`) must not import what hcm.yaml leaves out."""
    left_out = {"snakemake", "snakemake_executor_plugin_slurm", "pytest", "ruff"}
    offenders = {str(p.relative_to(REPO)): sorted(_top_level_imports(p) & left_out)
                 for p in (REPO / "hcm").rglob("*.py")}
    assert not {k: v for k, v in offenders.items() if v}


@pytest.mark.parametrize("path", ["environment.yml", "workflow/envs/hcm.yaml"])
def test_conda_environment_python_matches_pyproject(path: str) -> None:
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    deps = yaml.safe_load((REPO / path).read_text())["dependencies"]
    assert "python=3.11" in deps and requires == ">=3.11,<3.12"


@pytest.mark.parametrize("path", ["environment.yml", "workflow/envs/hcm.yaml"])
def test_environment_files_name_this_test(path: str) -> None:
    assert "tests/workflow/test_environments.py" in (REPO / path).read_text(encoding="utf-8")
