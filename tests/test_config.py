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


def test_batch_size_not_a_multiple_of_num_instances_is_refused_at_load() -> None:
    """Issue 21, case 6: refused only by the sampler, after epoch 1's extraction and clustering."""
    with pytest.raises(ConfigError, match=r"sampler: .*batch_size=10 is not a multiple of num_instances=4.*e\.g\. 8"):
        load_train_config(RECIPE, ["sampler.batch_size=10", "sampler.num_instances=4"])
    from hcm.config import load_pretrain_config

    with pytest.raises(ConfigError, match="not a multiple"):
        load_pretrain_config(RECIPE.parent / "synth-pretrain.yaml", ["sampler.batch_size=6", "sampler.num_instances=4"])


def test_missing_base_file_names_the_file_that_names_it(tmp_path: Path) -> None:
    """Issue 21, case 6: a missing _base_ file was reported without the recipe whose _base_ names it."""
    recipe = tmp_path / "recipes" / "mine.yaml"
    recipe.parent.mkdir()
    recipe.write_text("_base_: ../base/missing.yaml\nseed: 1\n")
    with pytest.raises(ConfigError) as info:
        load_train_config(recipe)
    msg = str(info.value)
    assert msg.startswith(f"{recipe.resolve()}: its _base_ file {(tmp_path / 'base' / 'missing.yaml').resolve()} "
                          "does not exist") and "fix the _base_ entry" in msg


def test_duplicate_keys_in_a_yaml_file_are_refused(tmp_path: Path) -> None:
    """Issue 21, case 6: a key given twice was taken silently (the last one won)."""
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"_base_: {RECIPE}\noptim:\n  lr: 0.1\n  epochs: 2\n  lr: 0.001\n")
    with pytest.raises(ConfigError) as info:
        load_train_config(recipe)
    msg = str(info.value)
    assert msg.startswith(f"{recipe}: not valid YAML") and "key 'lr' appears twice" in msg
    assert "lines 3 and 5" in msg
