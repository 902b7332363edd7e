"""Identities: near-duplicate pairs, visible attributes, and the source/target split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hcm.data.synthetic import PRESETS, spec_for
from hcm.data.synthetic.attributes import (
    AttributeSampler,
    canonical,
    differing_keys,
    pool_of,
    sample_identities,
)
from hcm.data.synthetic.cameras import camera_pool, sample_cameras
from hcm.data.synthetic.plan import draw_identities
from hcm.data.synthetic.seeding import STREAM_CAMERAS, rng_for
from hcm.errors import ConfigError


def test_near_duplicate_pairs_differ_in_exactly_one_attribute() -> None:
    for kind, name in (("person", "synth-market"), ("vehicle", "synth-veri")):
        spec = PRESETS[name]
        ids = sample_identities(spec, np.random.default_rng(1), [kind] * 40, "train", 100, set(), 1.0)
        by_key = {i.key: i for i in ids}
        assert sum(i.twin >= 0 for i in ids) == 40  # share 1.0: everyone is in a pair
        for i in ids:
            twin = by_key[i.twin]
            assert twin.twin == i.key
            assert differing_keys(i.attrs, twin.attrs) == [i.changed] == [twin.changed]
        assert len({canonical(kind, i.attrs) for i in ids}) == 40


def test_near_duplicate_pairs_in_a_generated_folder(generated: dict[str, Path]) -> None:
    for name in ("synth-market", "synth-veri"):
        idents = json.loads((generated[name] / "synth_identities.json").read_text())
        by_key = {i["key"]: i for i in idents}
        pairs = [(i, by_key[i["twin"]]) for i in idents if i["twin"] >= 0]
        assert pairs, name
        for a, b in pairs:
            diff = [k for k in a["attrs"] if a["attrs"][k] != b["attrs"][k]]
            assert diff == [a["changed"]], (name, a, b)


def test_absent_items_carry_no_colour_and_patterns_are_visible() -> None:
    spec = PRESETS["synth-market"]
    sampler = AttributeSampler(spec, "person")
    rng = np.random.default_rng(0)
    for _ in range(300):
        a = sampler.sample(rng)
        for key in ("hat", "bag", "pattern"):
            assert (a[key][0] == 0) == (a[key][1] == -1), (key, a)
        assert a["pattern"][1] != a["top"]
        m = sampler.mutate(rng, a)
        assert m is not None and differing_keys(a, m[0]) == [m[1]]
    vs = AttributeSampler(PRESETS["synth-veri"], "vehicle")
    for _ in range(200):
        v = vs.sample(rng)
        assert (v["stripes"][0] == 0) == (v["stripes"][1] == -1) and v["stripes"][1] != v["colour"]


def test_pool_split_is_a_fixed_partition_with_both_halves() -> None:
    sampler = AttributeSampler(spec_for("synth-market"), "person")
    rng = np.random.default_rng(3)
    pools = [pool_of("person", sampler.sample(rng)) for _ in range(2000)]
    share = pools.count("source") / len(pools)
    assert 0.18 < share < 0.32  # about 1/4 of combinations
    a = sampler.sample(rng)
    assert pool_of("person", dict(a)) == pool_of("person", a)


def test_pretrain_identities_and_cameras_are_disjoint_from_every_preset() -> None:
    pre_ids = draw_identities("synth-pretrain", PRESETS["synth-pretrain"], 0)
    pre = {canonical(i.kind, i.attrs) for i in pre_ids.values()}
    assert all(pool_of(i.kind, i.attrs) == "source" for i in pre_ids.values())
    pre_cams = {c.signature for c in sample_cameras(PRESETS["synth-pretrain"],
                                                    rng_for("synth-pretrain", 0, STREAM_CAMERAS))}
    assert all(camera_pool(s) == "source" for s in pre_cams) and len(pre_cams) == 8
    for name in ("synth-market", "synth-duke", "synth-msmt17", "synth-veri"):
        for seed in (0, 1):
            ids = draw_identities(name, PRESETS[name], seed)
            assert not pre & {canonical(i.kind, i.attrs) for i in ids.values()}, name
            cams = {c.signature for c in sample_cameras(PRESETS[name], rng_for(name, seed, STREAM_CAMERAS))}
            assert len(cams) == PRESETS[name].cameras and not cams & pre_cams, name


def test_too_small_an_attribute_space_is_a_clear_error() -> None:
    tiny = spec_for("synth-market", {
        "palette_size": 2, "skin_tones": 1, "hair_colours": 1, "shoe_colours": 1, "builds": 1, "leg_lengths": 1,
        "patterns": ["plain"], "hat_types": ["none"], "bag_types": ["backpack"], "bottom_types": ["skirt"],
        "near_dup_share": 0.0})
    with pytest.raises(ConfigError, match="attribute space is too small"):
        sample_identities(tiny, np.random.default_rng(0), ["person"] * 200, "train", 0, set(), 0.0)
