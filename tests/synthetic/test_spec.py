"""SynthSpec, presets and overrides."""

from __future__ import annotations

import pytest

from hcm.data.synthetic import PRESETS, SynthSpec, spec_for
from hcm.data.synthetic.plan import make_plan
from hcm.errors import ConfigError

BENCHMARKS = {"synth-market": 6, "synth-duke": 8, "synth-msmt17": 15, "synth-veri": 20}


def test_presets_have_the_cameras_kinds_and_layouts_of_their_real_counterparts() -> None:
    for name, cams in BENCHMARKS.items():
        assert PRESETS[name].cameras == cams
        assert PRESETS[name].pool == "target"
    assert PRESETS["synth-veri"].kind == "vehicle" and PRESETS["synth-veri"].layout == "veri"
    assert PRESETS["synth-msmt17"].layout == "msmt17"
    assert PRESETS["synth-market"].layout == PRESETS["synth-duke"].layout == "market"
    pre = PRESETS["synth-pretrain"]
    assert pre.kind == "mixed" and pre.pool == "source" and pre.layout == "market"


def test_unknown_override_names_the_key_and_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as err:
        spec_for("synth-market", {"train_idz": 5})
    msg = str(err.value)
    assert "train_idz" in msg and "train_ids" in msg and "camera_shift" in msg


def test_unknown_preset_lists_presets() -> None:
    with pytest.raises(ConfigError, match="synth-market"):
        spec_for("synth-cuhk")


def test_overrides_are_coerced_and_checked() -> None:
    spec = spec_for("synth-market", {"person_size": [32, 16], "blur": 1, "patterns": ["plain", "logo"]})
    assert spec.person_size == (32, 16) and isinstance(spec.blur, float) and spec.patterns == ("plain", "logo")
    assert spec_for("synth-market") is PRESETS["synth-market"]
    for bad in ({"train_ids": "5"}, {"train_ids": 2.5}, {"person_size": [32]}, {"query_in_gallery": 1},
                {"kind": "robot"}, {"patterns": ["plaid"]}, {"cams_per_id": [2, 7]}, {"cameras": 9},
                {"occlusion_prob": 1.5}, {"train_images": [5, 3]}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            spec_for("synth-market", bad)


def test_spec_is_frozen_and_serialisable() -> None:
    spec = SynthSpec()
    with pytest.raises(AttributeError):
        spec.train_ids = 3  # type: ignore[misc]
    d = spec.to_dict()
    assert d["person_size"] == [64, 32] and SynthSpec(**{k: tuple(v) if isinstance(v, list) else v
                                                          for k, v in d.items()}) == spec


def test_default_presets_are_sized_for_a_stable_benchmark() -> None:
    """>= 500 queries (mAP not dominated by query noise), 100-200 train ids, every query matchable."""
    for name in BENCHMARKS:
        plan = make_plan(name, PRESETS[name], 0)
        queries = [j for j in plan.jobs if j.split == "query"]
        gallery = [j for j in plan.jobs if j.split == "gallery" and j.quality == "normal"]
        train_ids = {j.pid for j in plan.jobs if j.split in ("train", "val")}
        assert len(queries) >= 500, name
        assert 100 <= len(train_ids) <= 200, name
        cams = {}
        for j in gallery:
            cams.setdefault(j.pid, set()).add(j.camera)
        for q in queries:
            assert cams[q.pid] - {q.camera}, f"{name}: query {q.relpath} has no cross-camera match"
    pre = make_plan("synth-pretrain", PRESETS["synth-pretrain"], 0)
    kinds = [i.kind for i in pre.identities.values() if i.group == "train"]
    assert 400 <= len(kinds) <= 600
    assert abs(kinds.count("vehicle") / len(kinds) - 1 / 3) < 0.02
