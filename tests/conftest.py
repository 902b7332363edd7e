"""Shared fixtures. Fake dataset trees are built by ``tests.fake_datasets`` (importable
from other tests and tools too)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from tests import fake_datasets

#: property tests (hypothesis) run their own max_examples; HYPOTHESIS_PROFILE=ci makes the draws
#: the same on every run (derandomize), the default profile explores new ones each run
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def fake_market(tmp_path: Path) -> Path:
    """A tiny Market-1501 tree under ``tmp_path`` (see ``fake_datasets.make_market``)."""
    return fake_datasets.make_market(tmp_path)


@pytest.fixture
def fake_duke(tmp_path: Path) -> Path:
    return fake_datasets.make_duke(tmp_path)


@pytest.fixture(params=["V1", "V2"])
def fake_msmt_lists(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A tiny MSMT17 tree with list files, once per version (V1, V2)."""
    return fake_datasets.make_msmt_lists(tmp_path, request.param)


@pytest.fixture
def fake_msmt_market_style(tmp_path: Path) -> Path:
    return fake_datasets.make_msmt_market_style(tmp_path)


@pytest.fixture
def fake_veri(tmp_path: Path) -> Path:
    return fake_datasets.make_veri(tmp_path)


@pytest.fixture
def fake_real_datasets(tmp_path: Path) -> dict[str, Path]:
    """One tiny tree per real dataset under ``tmp_path``: name -> folder."""
    return fake_datasets.make_all(tmp_path)
