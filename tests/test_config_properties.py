"""Property-based tests (hypothesis) of the config loader on random ``--set`` override strings: every
override list resolves to a valid config or is refused with a ConfigError, never another exception."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from hcm.config import (
    TrainConfig,
    canonical_key,
    load_yaml_chain,
    parse_overrides,
    read_yaml,
    resolve_train_config,
)
from hcm.errors import ConfigError

CONFIG_EXAMPLES = 200
PROPERTY = settings(max_examples=CONFIG_EXAMPLES, deadline=None)

RECIPE = Path(__file__).resolve().parents[1] / "workflow" / "recipes" / "synth-small.yaml"
BASE = load_yaml_chain(RECIPE)

#: dotted keys of the schema (sections and leaves), so random overrides often hit real keys
KEYS = sorted({f"{section}.{leaf}" for section, model in TrainConfig.model_fields.items()
               if hasattr(model.annotation, "model_fields") for leaf in model.annotation.model_fields}
              | set(TrainConfig.model_fields))
YAMLISH = st.text(st.one_of(st.sampled_from("0123456789.-+eE_:,[]{}'\"!&*#|>@ ~truefalsnoffnul"),
                            st.characters(blacklist_categories=("Cs",))), max_size=12)
OVERRIDE = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(KEYS), YAMLISH),
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(["variant", "seed", "labels", "dataset", "optim", "optim.lr.x",
                                                        "", ".", "dataset.synth_overrides.x"]),
              st.sampled_from(["[1]", "{}", "{a: 1}", "null", "~", "", "-1", "0", "1e-3", ".inf", ".nan", "off",
                               "2024-01-01", "!!binary AAAA", "!!python/object:os.system x", "&a [*a]", "'"])),
    st.text(max_size=30),
)
#: overrides that are valid, so that lists of them with at most one wild override often resolve
VALID = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(["optim.lr", "loss.tau", "cluster.eps"]),
              st.floats(1e-3, 0.9).map(repr)),
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(["loss.image", "eval.flip", "runtime.cache_images"]),
              st.sampled_from(["true", "false", "on", "off", "yes", "no"])),
    st.builds("variant={}".format, st.sampled_from(["hcm", "baseline", "image_only", "untrained"])),
    st.builds("seed={}".format, st.integers(0, 2**31)),
    st.builds("dataset.synth_overrides.train_ids={}".format, st.integers(1, 50)),
)
OVERRIDES = st.builds(lambda valid, wild, order: [x for _, x in sorted(zip(order, valid + wild, strict=False))],
                      st.lists(VALID, max_size=3), st.lists(OVERRIDE, max_size=1),
                      st.lists(st.floats(0, 1), min_size=4, max_size=4))


def resolve(items: list[str]) -> TrainConfig:
    return resolve_train_config(BASE, parse_overrides(items), source=str(RECIPE))


@PROPERTY
@given(items=st.one_of(st.lists(OVERRIDE, max_size=4), OVERRIDES))
# what this property found (each crashed, or resolved to a config its config.yaml did not reproduce)
@example(items=["variant=[]"])
@example(items=["dataset.synth_overrides.=.inf"])
@example(items=["optim.lr=.inf"])
@example(items=["dataset.synth_overrides.x=2024-01-01"])
@example(items=["dataset.synth_overrides.x=&a [*a]"])
def test_random_overrides_resolve_or_raise_a_config_error(items: list[str]) -> None:
    try:
        cfg = resolve(items)
    except ConfigError as exc:
        event("refused")
        assert str(exc), items
        return
    event("resolved")
    assert isinstance(cfg, TrainConfig)
    # the recorded form (config.yaml) validates to the same config (nothing lost to JSON mode)
    assert TrainConfig.model_validate(yaml.safe_load(yaml.safe_dump(cfg.to_dict()))) == cfg


FLOAT_FIELDS = {  # key -> (low, high) inside the schema's bounds
    "optim.lr": (1e-8, 10.0), "loss.gamma": (0.0, 10.0), "loss.tau": (1e-4, 1.0), "cluster.eps": (1e-3, 0.999),
    "memory.momentum_image": (0.0, 0.999), "dataset.val_fraction": (0.0, 0.9),
}


@PROPERTY
@given(key=st.sampled_from(sorted(FLOAT_FIELDS)), data=st.data(), style=st.sampled_from([repr, str, "{:.3e}".format]))
def test_a_valid_numeric_override_is_taken_exactly(key: str, data: st.DataObject, style) -> None:
    lo, hi = FLOAT_FIELDS[key]
    value = data.draw(st.floats(lo, hi, allow_nan=False, allow_infinity=False))
    text = style(value)
    node = resolve([f"{key}={text}"]).to_dict()
    for part in canonical_key(key).split("."):  # loss.gamma lives at loss.terms.identity.gamma
        node = node[part]
    assert node == pytest.approx(float(text), rel=0, abs=0)


@PROPERTY
@given(value=st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8),
                                    st.floats(allow_nan=False)),
                          lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                  st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                          max_leaves=12))
def test_the_duplicate_key_check_reads_what_safe_load_reads(value) -> None:
    """The loader that refuses duplicated keys reads every valid document as ``yaml.safe_load`` does."""
    text = yaml.safe_dump(value)
    assert read_yaml(text) == yaml.safe_load(text)
