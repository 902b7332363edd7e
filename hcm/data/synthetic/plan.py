"""What a synthetic dataset contains: identities, cameras, and every file with its real-layout name.

``make_plan`` is cheap (no pixels): it draws the identities and cameras, decides for
each identity which cameras see it and how many images each split gets, and names
every file exactly as the real dataset does:

- ``market`` (Market-1501 / DukeMTMC-reID): ``bounding_box_train/``, ``query/``,
  ``bounding_box_test/`` with ``PPPP_cCsS_FFFFFF_NN.jpg`` (identity ``-1`` = junk,
  ``0000`` = distractor, both in the gallery only);
- ``msmt17`` (MSMT17_V1): ``train/PPPP/`` and ``test/PPPP/`` with
  ``PPPP_NNN_CC_DDDD<session>_FFFF_T.jpg`` (NNN = running index of the image in the
  identity's folder, CC = camera, DDDD = date, session = morning / noon / afternoon)
  and ``list_train.txt``, ``list_val.txt`` (paths relative to ``train/``),
  ``list_query.txt``, ``list_gallery.txt`` (relative to ``test/``), lines
  ``<path> <identity>``; train and test identities are both numbered from 0;
- ``veri`` (VeRi-776): ``image_train/``, ``image_query/``, ``image_test/`` with
  ``PPPP_cCCC_FFFFFFFF_0.jpg`` and ``name_train.txt``, ``name_query.txt``,
  ``name_test.txt``; each query is also in ``image_test/`` (``query_in_gallery``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from hcm.data.synthetic.attributes import Identity, sample_identities
from hcm.data.synthetic.cameras import SESSIONS, CameraParams, sample_cameras
from hcm.data.synthetic.scene import ImageJob
from hcm.data.synthetic.seeding import (
    DISTRACTOR_KEY_BASE,
    JUNK_IMAGE_BASE,
    STREAM_CAMERAS,
    STREAM_DISTRACTOR_IDS,
    STREAM_IDENTITIES,
    STREAM_PLAN,
    rng_for,
)
from hcm.data.synthetic.spec import SynthSpec

#: folders of each layout, by split
FOLDERS: dict[str, dict[str, str]] = {
    "market": {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"},
    "msmt17": {"train": "train", "query": "test", "gallery": "test"},
    "veri": {"train": "image_train", "query": "image_query", "gallery": "image_test"},
}
MSMT_LISTS: tuple[str, ...] = ("list_train.txt", "list_val.txt", "list_query.txt", "list_gallery.txt")
VERI_LISTS: tuple[str, ...] = ("name_train.txt", "name_query.txt", "name_test.txt")
MSMT_DATES: tuple[str, ...] = ("0113", "0114", "0302", "0303")


@dataclass
class Plan:
    """Identities (by key), cameras, image jobs, and the text files of the layout."""

    identities: dict[int, Identity]
    cameras: list[CameraParams]
    jobs: list[ImageJob]
    pids: dict[int, int]
    texts: dict[str, str] = field(default_factory=dict)


def _kinds(spec: SynthSpec, rng: np.random.Generator, n: int) -> list[str]:
    if spec.kind != "mixed":
        return [spec.kind] * n
    n_veh = int(round(spec.vehicle_share * n))
    kinds = np.array(["person"] * (n - n_veh) + ["vehicle"] * n_veh)
    return [str(k) for k in rng.permutation(kinds)]


def draw_identities(name: str, spec: SynthSpec, seed: int) -> dict[int, Identity]:
    """All identities of the dataset by key: train, test, gallery-only, then distractors."""
    rng = rng_for(name, seed, STREAM_IDENTITIES)
    taken: set[str] = set()
    out: list[Identity] = []
    key = 0
    for group, n in (("train", spec.train_ids), ("test", spec.test_ids), ("gallery_only", spec.gallery_only_ids)):
        out += sample_identities(spec, rng, _kinds(spec, rng, n), group, key, taken, spec.near_dup_share)
        key += n
    if spec.distractor_images:
        drng = rng_for(name, seed, STREAM_DISTRACTOR_IDS)
        kinds = _kinds(spec, drng, spec.distractor_images)
        out += sample_identities(spec, drng, kinds, "distractor", DISTRACTOR_KEY_BASE, taken, 0.0)
    return {i.key: i for i in out}


def _spread(rng: np.random.Generator, cams: np.ndarray, n: int) -> list[int]:
    """``n`` camera numbers: each of ``cams`` once (while n allows), the rest at random among them."""
    first = [int(c) for c in rng.permutation(cams)[:n]]
    rest = [int(c) for c in rng.choice(cams, size=max(0, n - len(first)))]
    return first + rest


def make_plan(name: str, spec: SynthSpec, seed: int) -> Plan:
    """The full, deterministic content of dataset ``name`` (no pixels)."""
    identities = draw_identities(name, spec, seed)
    cameras = sample_cameras(spec, rng_for(name, seed, STREAM_CAMERAS))
    regular = [i for i in identities.values() if i.group != "distractor"]
    prng = rng_for(name, seed, STREAM_PLAN)
    if spec.layout == "msmt17":
        pids = {}
        for group_ids in ([i for i in regular if i.group == "train"], [i for i in regular if i.group != "train"]):
            pids.update({ident.key: n for n, ident in enumerate(group_ids)})
    else:  # train and test identities interleave in 1..N, as in Market-1501 and VeRi-776
        numbers = prng.permutation(len(regular)) + 1
        pids = {ident.key: int(n) for ident, n in zip(regular, numbers, strict=True)}
    all_cams = np.arange(1, spec.cameras + 1)
    namer = _Namer(spec)

    jobs: list[ImageJob] = []
    ident_cams: dict[int, np.ndarray] = {}
    for ident in regular:
        rng = rng_for(name, seed, STREAM_PLAN, ident.key)
        lo, hi = spec.cams_per_id
        k = int(rng.integers(lo, hi + 1))
        pid = pids[ident.key]
        if ident.group == "train":
            n = int(rng.integers(spec.train_images[0], spec.train_images[1] + 1))
            cams = np.sort(rng.choice(all_cams, size=min(k, n), replace=False))
            ident_cams[ident.key] = cams
            for j, cam in enumerate(_spread(rng, cams, n)):
                jobs.append(namer.job("train", pid, ident.key, j, cam, rng))
        else:
            # every camera of a test identity has a gallery image, so every query has a
            # match in another camera
            g = int(rng.integers(spec.gallery_images[0], spec.gallery_images[1] + 1))
            cams = np.sort(rng.choice(all_cams, size=min(k, g), replace=False))
            ident_cams[ident.key] = cams
            gallery = [namer.job("gallery", pid, ident.key, j, cam, rng) for j, cam in enumerate(_spread(rng, cams, g))]
            queries = []
            if ident.group == "test":
                q = min(spec.queries_per_id, len(cams))
                qcams = sorted(int(c) for c in rng.choice(cams, size=q, replace=False))
                queries = [namer.job("query", pid, ident.key, g + j, cam, rng) for j, cam in enumerate(qcams)]
            jobs += gallery + queries
    test_keys = [i.key for i in regular if i.group == "test"]
    for j in range(spec.junk_images):
        key = test_keys[int(prng.integers(len(test_keys)))] if test_keys else next(iter(pids))
        cam = int(prng.choice(ident_cams[key]))
        jobs.append(namer.job("gallery", -1, key, JUNK_IMAGE_BASE + j, cam, prng, quality="junk"))
    for ident in identities.values():
        if ident.group == "distractor":
            cam = int(prng.integers(1, spec.cameras + 1))
            jobs.append(namer.job("gallery", 0, ident.key, 0, cam, prng, quality="distractor"))
    if spec.layout == "msmt17":
        jobs = namer.msmt_val(jobs, prng, spec.val_fraction)
    return Plan(identities=identities, cameras=cameras, jobs=jobs, pids=pids, texts=namer.texts(jobs))


class _Namer:
    """File names in the layout's format, unique, with plausible frame numbers."""

    def __init__(self, spec: SynthSpec) -> None:
        self.spec = spec
        self.layout = spec.layout
        self.used: set[str] = set()
        self.msmt_index: dict[tuple[str, int], int] = {}
        self.clock: dict[tuple[int, int], tuple[int, int]] = {}  # (key, camera) -> (next frame, sequence/session)

    def _time(self, key: int, cam: int, rng: np.random.Generator, frame_digits: int) -> tuple[int, int]:
        limit = 10 ** frame_digits - 1000
        if (key, cam) not in self.clock:
            self.clock[(key, cam)] = (int(rng.integers(0, limit)), int(rng.integers(0, 6)))
        frame, seq = self.clock[(key, cam)]
        self.clock[(key, cam)] = ((frame + int(rng.integers(4, 60))) % limit, seq)
        return frame, seq

    def job(self, split: str, pid: int, key: int, image: int, cam: int, rng: np.random.Generator,
            quality: str = "normal") -> ImageJob:
        folder = FOLDERS[self.layout][split]
        if self.layout == "market":
            frame, seq = self._time(key, cam, rng, 6)
            pid_s = "-1" if pid == -1 else f"{pid:04d}"
            nn = int(rng.integers(1, 5))
            while True:
                rel = f"{folder}/{pid_s}_c{cam}s{seq + 1}_{frame:06d}_{nn:02d}.jpg"
                if rel not in self.used:
                    break
                nn += 1
            session = 0
        elif self.layout == "msmt17":
            frame, seq = self._time(key, cam, rng, 4)
            session = seq % len(SESSIONS)
            date = MSMT_DATES[(seq // len(SESSIONS) + key) % len(MSMT_DATES)]
            idx = self.msmt_index.get((folder, pid), 0)
            self.msmt_index[(folder, pid)] = idx + 1
            rel = f"{folder}/{pid:04d}/{pid:04d}_{idx:03d}_{cam:02d}_{date}{SESSIONS[session]}_{frame:04d}_{int(rng.integers(0, 3))}.jpg"
        else:
            frame, _ = self._time(key, cam, rng, 8)
            t = 0
            while True:
                rel = f"{folder}/{pid:04d}_c{cam:03d}_{frame:08d}_{t}.jpg"
                if rel not in self.used:
                    break
                t += 1
            session = 0
        self.used.add(rel)
        copies: tuple[str, ...] = ()
        if split == "query" and self.spec.query_in_gallery:
            copy = f"{FOLDERS[self.layout]['gallery']}/{rel.split('/', 1)[1]}"
            self.used.add(copy)
            copies = (copy,)
        return ImageJob(relpath=rel, split=split, pid=pid, key=key, image=image, camera=cam, session=session,
                        quality=quality, copies=copies)

    def msmt_val(self, jobs: list[ImageJob], rng: np.random.Generator, fraction: float) -> list[ImageJob]:
        """Mark a share of the training images as ``val`` (listed in list_val.txt, same folder)."""
        out = []
        for job in jobs:
            if job.split == "train" and rng.random() < fraction:
                job = dataclasses.replace(job, split="val")
            out.append(job)
        return out

    def texts(self, jobs: list[ImageJob]) -> dict[str, str]:
        if self.layout == "msmt17":
            lists: dict[str, list[str]] = {n: [] for n in MSMT_LISTS}
            for job in jobs:
                rel = job.relpath.split("/", 1)[1]
                lists[f"list_{job.split}.txt"].append(f"{rel} {job.pid}")
            return {n: "".join(line + "\n" for line in sorted(v)) for n, v in lists.items()}
        if self.layout == "veri":
            names: dict[str, list[str]] = {n: [] for n in VERI_LISTS}
            for job in jobs:
                for rel in (job.relpath, *job.copies):
                    folder, file = rel.split("/", 1)
                    names[{"image_train": "name_train.txt", "image_query": "name_query.txt",
                           "image_test": "name_test.txt"}[folder]].append(file)
            return {n: "".join(line + "\n" for line in sorted(v)) for n, v in names.items()}
        return {}
