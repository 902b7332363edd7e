"""The local `smoke` run shared by the workflow tests (it takes a minute or two, so it runs once per session)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.workflow.smk import PROFILES, snakemake

SMOKE = "smoke"


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """The smoke suite run on this machine through the default profile (workflow/profiles/default;
    --cores 2 overrides its `cores: all`). Tests copy the folder before changing anything in it."""
    work = tmp_path_factory.mktemp("smoke")
    res = snakemake(work, "--cores", "2", config={"suite": SMOKE}, timeout=900,
                    workflow_profile=PROFILES / "default")
    return work, res
