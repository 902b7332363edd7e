"""Config resolution details that YAML makes easy to get wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from hcm.config import load_train_config
from hcm.errors import ConfigError

RECIPE = Path(__file__).resolve().parents[1] / "workflow" / "recipes" / "synth-small.yaml"


@pytest.mark.parametrize(("raw", "expected"), [("off", "off"), ("on", "on"), ("auto", "auto"),
                                               ("false", "off"), ("true", "on"), ("'off'", "off")])
def test_amp_switch_from_the_command_line(raw: str, expected: str) -> None:
    # YAML 1.1 reads a bare on/off as a boolean: `--set runtime.amp=off` must still mean "off"
    assert load_train_config(RECIPE, [f"runtime.amp={raw}"]).runtime.amp == expected


def test_amp_switch_in_a_recipe_file(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"_base_: {RECIPE}\nruntime: {{amp: off}}\n")
    assert load_train_config(recipe).runtime.amp == "off"


def test_amp_rejects_other_values() -> None:
    with pytest.raises(ConfigError, match="runtime.amp"):
        load_train_config(RECIPE, ["runtime.amp=fast"])
    with pytest.raises(ConfigError, match="runtime.amp"):
        load_train_config(RECIPE, ["runtime.amp=1"])
