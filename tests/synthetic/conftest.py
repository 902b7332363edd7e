"""Small generated datasets shared by the synthetic-generator tests (generated once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hcm.data.synthetic import generate
from tests.synthetic.helpers import EXTRA, small


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """name -> folder of every preset, generated small under one parent."""
    parent = tmp_path_factory.mktemp("synth")
    return {name: generate(name, parent, overrides=small(name), progress=False, workers=1) for name in EXTRA}
