"""IdentitySampler: P x K structure, cycling, camera diversity, determinism, loader workers."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hcm.config import InputConfig
from hcm.data.images import ImageDataset
from hcm.data.samplers import IdentitySampler
from hcm.data.transforms import build_train_transform
from hcm.errors import HCMError


def _toy(n_ids: int = 10, per_id: int = 8, n_cams: int = 4, outliers: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_ids), per_id)
    cams = np.tile(np.arange(per_id) % n_cams, n_ids)
    labels = np.concatenate([labels, np.full(outliers, -1)])
    cams = np.concatenate([cams, np.zeros(outliers, dtype=int)])
    perm = rng.permutation(len(labels))
    return labels[perm], cams[perm]


def _sampler(labels, cams, **kw) -> IdentitySampler:
    args = {"batch_size": 16, "num_instances": 4, "num_batches": 5, "seed": 0} | kw
    return IdentitySampler(labels, cams, **args)


def test_batches_are_p_identities_times_k_images() -> None:
    labels, cams = _toy()
    sampler = _sampler(labels, cams)
    batches = list(sampler)
    assert len(sampler) == len(batches) == 5
    for batch in batches:
        assert len(batch) == 16
        idx = np.array([i for i, _ in batch])
        assert np.all(labels[idx] >= 0)
        groups = labels[idx].reshape(4, 4)
        assert np.all(groups == groups[:, :1])  # K consecutive images of one identity
        assert len(set(groups[:, 0])) == 4  # P different identities
        assert all(isinstance(i, int) and isinstance(s, int) and 0 <= s < 2**63 for i, s in batch)


def test_identities_cycle_before_repeating() -> None:
    labels, cams = _toy(n_ids=10)
    # 5 batches x P=4 = 20 identity draws = exactly 2 cycles of 10, even though cycles
    # end in the middle of batches 3 and 5
    batches = list(_sampler(labels, cams, num_batches=5))
    draws = [int(labels[b[k][0]]) for b in batches for k in range(0, 16, 4)]
    assert sorted(draws[:10]) == list(range(10))
    assert Counter(draws) == {i: 2 for i in range(10)}


def test_camera_diversity() -> None:
    labels, cams = _toy(n_ids=6, per_id=8, n_cams=4)
    for batch in _sampler(labels, cams, batch_size=16, num_instances=4, num_batches=6):
        idx = np.array([i for i, _ in batch]).reshape(4, 4)
        for group in idx:
            assert len(set(cams[group])) == 4  # 4 images from 4 different cameras
    for batch in _sampler(labels, cams, batch_size=16, num_instances=8, num_batches=6):
        idx = np.array([i for i, _ in batch]).reshape(2, 8)
        for group in idx:
            assert len(set(group)) == 8  # all 8 images, none twice
            assert Counter(cams[group].tolist()) == {0: 2, 1: 2, 2: 2, 3: 2}


def test_camera_diversity_prefers_unused_cameras_over_same_camera() -> None:
    # identity 0: 5 images in camera 0, 1 in camera 1, 1 in camera 2 -> any 3 must span 3 cameras
    labels = np.array([0] * 7 + [1] * 3)
    cams = np.array([0, 0, 0, 0, 0, 1, 2, 0, 1, 2])
    for batch in _sampler(labels, cams, batch_size=6, num_instances=3, num_batches=20, seed=1):
        group = [i for i, _ in batch if labels[i] == 0]
        assert sorted(cams[group].tolist()) == [0, 1, 2]


def test_small_identities_sampled_with_replacement_in_rounds() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1])
    cams = np.array([0, 1, 1, 0, 0, 1, 1, 2, 2])
    for batch in _sampler(labels, cams, batch_size=8, num_instances=4, num_batches=10, seed=2):
        group = [i for i, _ in batch if labels[i] == 0]
        assert len(group) == 4
        counts = Counter(group)
        assert set(counts) == {0, 1, 2} and sorted(counts.values()) == [1, 1, 2]


def test_deterministic_from_seed() -> None:
    labels, cams = _toy()
    a = list(_sampler(labels, cams, seed=[3, 1]))
    b = list(_sampler(labels, cams, seed=[3, 1]))
    c = list(_sampler(labels, cams, seed=[3, 2]))
    assert a == b
    assert a != c
    sampler = _sampler(labels, cams, seed=np.random.SeedSequence(5))
    assert list(sampler) == list(sampler)  # iterating again replays the same batches


def test_errors() -> None:
    labels, cams = _toy()
    with pytest.raises(HCMError, match="multiple of"):
        _sampler(labels, cams, batch_size=10, num_instances=4)
    with pytest.raises(HCMError, match="at least 2"):
        _sampler(np.array([0, 0, -1, -1]), np.zeros(4, dtype=int))
    with pytest.raises(HCMError, match="same length"):
        _sampler(labels, cams[:-1])


def test_more_identities_per_batch_than_exist_still_yields_full_batches() -> None:
    labels, cams = _toy(n_ids=3)
    for batch in _sampler(labels, cams, batch_size=16, num_instances=4, num_batches=3):
        assert len(batch) == 16


def test_loader_output_independent_of_worker_count(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(12):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (40, 20, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    labels = np.arange(12) % 4
    cams = np.arange(12) % 3
    ds = ImageDataset(paths, build_train_transform(InputConfig(height=32, width=16, pad=2)))

    def run(workers: int) -> list[torch.Tensor]:
        sampler = IdentitySampler(labels, cams, batch_size=4, num_instances=2, num_batches=3, seed=9)
        loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, num_workers=workers)
        return [torch.cat([x.flatten(), i.float()]) for x, i in loader]

    torch.manual_seed(0)
    serial = run(0)
    torch.manual_seed(1)  # a different global RNG state must not matter
    parallel = run(2)
    assert all(torch.equal(a, b) for a, b in zip(serial, parallel, strict=True))
