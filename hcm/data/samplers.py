"""P x K identity sampler with camera diversity, reproducible from one seed.

Each batch holds ``P = batch_size // K`` pseudo identities with ``K = num_instances``
images each (method.md, "Pipeline" step 5). For DataLoader use it as
``DataLoader(dataset, batch_sampler=sampler)``: it yields lists of ``(index, aug_seed)``
that :class:`hcm.data.images.ImageDataset` turns into reproducibly augmented images (with
the image store, :class:`hcm.data.feeder.StoreFeeder` augments the whole batch from one
generator seeded with the batch's first seed), so
the sampled indices *and* their augmentations are a pure function of the seed,
independent of the number of loader workers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import torch

from hcm.errors import HCMError

logger = logging.getLogger(__name__)

SeedLike = int | np.random.SeedSequence | list[int]

#: augmentation seeds are drawn uniformly from [0, AUG_SEED_HIGH)
AUG_SEED_HIGH = 2**63 - 1


class IdentitySampler(torch.utils.data.Sampler[list[tuple[int, int]]]):
    """Batches of ``P`` identities x ``K`` images, as lists of ``(index, aug_seed)``.

    - Only images with ``labels >= 0`` are drawn (DBSCAN outliers, -1, are not anchors).
    - Identities come in a shuffled order and cycle: every identity is drawn once before
      any is drawn again. A batch never holds an identity twice unless ``P`` exceeds the
      number of identities (then it must; a warning is logged).
    - Within an identity, the first image is random; each next one is drawn among the
      unused images whose camera is not yet in this group of K, else (all cameras used)
      among the unused images of any camera; this is what Cluster Contrast's
      ``RandomMultipleGallerySampler`` intends (images from cameras other than the
      first's). An identity with fewer than K images is sampled with replacement, in
      rounds: all its images are used before any repeats.
    - Deterministic given ``seed``: every ``iter()`` restarts a ``numpy`` Generator from
      it and draws identities, images and augmentation seeds from that one generator.
      Pass a different seed per epoch, e.g. ``[run_seed, epoch]``.
    - ``len()`` is ``num_batches``.
    """

    def __init__(self, labels: np.ndarray, camids: np.ndarray, *, batch_size: int,
                 num_instances: int, num_batches: int, seed: SeedLike) -> None:
        labels = np.asarray(labels)
        camids = np.asarray(camids)
        if labels.ndim != 1 or camids.shape != labels.shape:
            raise HCMError(
                f"IdentitySampler: labels {labels.shape} and camids {camids.shape} must be 1-D "
                "arrays of the same length (one entry per training image)"
            )
        if num_instances <= 0 or batch_size <= 0 or batch_size % num_instances != 0:
            raise HCMError(
                f"sampler.batch_size={batch_size} is not a positive multiple of "
                f"sampler.num_instances={num_instances}; set batch_size = P x num_instances"
            )
        if num_batches <= 0:
            raise HCMError(f"IdentitySampler: num_batches must be > 0, got {num_batches}")
        self.batch_size = batch_size
        self.num_instances = num_instances
        self.num_batches = num_batches
        self.num_pids = batch_size // num_instances
        self.seed = seed

        valid = np.flatnonzero(labels >= 0)
        ids, inverse = np.unique(labels[valid], return_inverse=True)
        if len(ids) < 2:
            raise HCMError(
                f"IdentitySampler: {len(ids)} identity with labels >= 0 among {len(labels)} "
                "images; at least 2 are needed (clustering found too few clusters: check "
                "cluster.eps / cluster.min_samples, or the features)"
            )
        order = np.argsort(inverse, kind="stable")
        bounds = np.cumsum(np.bincount(inverse))[:-1]
        self.identities: np.ndarray = ids
        self._members: list[np.ndarray] = np.split(valid[order], bounds)
        self._cams: list[np.ndarray] = [camids[m] for m in self._members]
        if self.num_pids > len(ids):
            logger.warning(
                "IdentitySampler: %d identities per batch but only %d identities: batches "
                "repeat identities", self.num_pids, len(ids)
            )

    def __len__(self) -> int:
        return self.num_batches

    def _images_of(self, pid_pos: int, rng: np.random.Generator) -> list[int]:
        """K positions of one identity, camera-diverse, rounds without replacement."""
        members, cams = self._members[pid_pos], self._cams[pid_pos]
        unused = np.ones(len(members), dtype=bool)
        cam_used = np.zeros(len(members), dtype=bool)  # image's camera already in the group
        chosen: list[int] = []
        for _ in range(self.num_instances):
            if not unused.any():  # every image used: a new round (sampling with replacement)
                unused[:] = True
            candidates = np.flatnonzero(unused & ~cam_used)
            if len(candidates) == 0:  # every camera used: a new round of cameras
                cam_used[:] = False
                candidates = np.flatnonzero(unused)
            pick = int(candidates[rng.integers(len(candidates))])
            unused[pick] = False
            cam_used |= cams == cams[pick]
            chosen.append(int(members[pick]))
        return chosen

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        rng = np.random.default_rng(self.seed)
        n_ids = len(self.identities)
        no_repeats = self.num_pids <= n_ids
        order = rng.permutation(n_ids)
        pos = 0
        for _ in range(self.num_batches):
            batch_pids: list[int] = []
            while len(batch_pids) < self.num_pids:
                if pos == n_ids:  # a new cycle; ids already in this batch go last
                    order = rng.permutation(n_ids)
                    if no_repeats and batch_pids:
                        taken = np.isin(order, batch_pids)
                        order = np.concatenate([order[~taken], order[taken]])
                    pos = 0
                batch_pids.append(int(order[pos]))
                pos += 1
            indices = [i for p in batch_pids for i in self._images_of(p, rng)]
            seeds = rng.integers(0, AUG_SEED_HIGH, size=len(indices), dtype=np.int64)
            yield list(zip(indices, (int(s) for s in seeds), strict=True))
