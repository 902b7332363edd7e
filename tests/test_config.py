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


# ---------------------------------------------------------------- loss terms, memories, variants


def test_flat_loss_and_memory_keys_mean_the_terms_form() -> None:
    flat = load_train_config(RECIPE, ["loss.gamma=1.5", "loss.lambda_img=0.3", "loss.n_neg=7", "loss.tau_v=0.1",
                                      "memory.momentum_image=0.4", "memory.momentum_identity=0.05"])
    terms = load_train_config(RECIPE, ["loss.terms.identity.gamma=1.5", "loss.terms.image.weight=0.3",
                                       "loss.terms.image.n_neg=7", "loss.terms.image.tau_v=0.1",
                                       "memory.image.momentum=0.4", "memory.identity.momentum=0.05"])
    assert flat.to_dict() == terms.to_dict()
    assert flat.to_dict()["loss"] == {"terms": {
        "identity": {"weight": 1.0, "factor": "hard_negatives", "gamma": 1.5, "tau": 0.05},
        "image": {"weight": 0.3, "tau_v": 0.1, "n_neg": 7}}}
    assert flat.to_dict()["memory"] == {"identity": {"rule": "momentum", "momentum": 0.05},
                                        "image": {"rule": "momentum", "momentum": 0.4}}


@pytest.mark.parametrize(("variant", "terms", "factor"), [
    ("hcm", ["identity", "image"], "hard_negatives"), ("baseline", ["identity"], "none"),
    ("identity_only", ["identity"], "hard_negatives"), ("image_only", ["image"], None),
    ("no_dynamic", ["identity", "image"], "none"), ("supervised", ["identity", "image"], "hard_negatives"),
])
def test_variant_overlays_give_the_terms_of_method_md(variant: str, terms: list[str], factor: str | None) -> None:
    cfg = load_train_config(RECIPE, [f"variant={variant}"])
    assert list(cfg.loss.terms) == terms
    if factor:
        assert cfg.loss.terms["identity"].factor == factor
    # a knob of a term the variant removed is ignored, not an error (the sweep sets loss.gamma everywhere)
    assert list(load_train_config(RECIPE, [f"variant={variant}", "loss.gamma=1"]).loss.terms) == terms


def test_a_term_is_removed_with_null_and_errors_name_the_key() -> None:
    assert list(load_train_config(RECIPE, ["loss.terms.image=null"]).loss.terms) == ["identity"]
    with pytest.raises(ConfigError, match="loss.terms.identity.gama: Extra inputs"):
        load_train_config(RECIPE, ["loss.terms.identity.gama=2"])
    with pytest.raises(ConfigError, match="unknown loss term 'nope'.*list its module under plugins"):
        load_train_config(RECIPE, ["loss.terms.nope={}"])
    with pytest.raises(ConfigError, match="memory.identity.rule: unknown rule 'fast'; registered: hard, hybrid"):
        load_train_config(RECIPE, ["memory.identity.rule=fast"])
    assert load_train_config(RECIPE, ["memory.identity.rule=hybrid"]).memory["identity"].rule == "hybrid"
    with pytest.raises(ConfigError, match="loss.terms.identity.factor: .*unknown dynamic factor 'nope'"):
        load_train_config(RECIPE, ["loss.terms.identity.factor=nope"])
    for bad in ("memory.identity=5", "loss.terms=5", "loss.image=maybe"):
        with pytest.raises(ConfigError):
            load_train_config(RECIPE, [bad])


def test_canonical_keys_and_schema_enum() -> None:
    import json

    from hcm.config import canonical_key, json_schema

    assert canonical_key("loss.gamma") == "loss.terms.identity.gamma"
    assert canonical_key("loss.lambda_img") == "loss.terms.image.weight"
    assert canonical_key("memory.momentum_image") == "memory.image.momentum"
    assert canonical_key("cluster.eps") == "cluster.eps"
    enum = json.loads(json_schema())["properties"]["variant"]["enum"]
    assert {"hcm", "baseline", "image_only", "untrained"} <= set(enum)
