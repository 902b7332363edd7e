"""Order-independent random streams.

Every random decision is drawn from a ``numpy.random.Generator`` seeded with a
``SeedSequence`` built from a stable hash of the dataset name, the user's seed and
keys naming the decision (an identity and image number, or a stream tag). So the
pixels of image *j* of identity *i* do not depend on which process renders it, or in
which order. ``zlib.crc32`` is used rather than Python's ``hash()``, which changes
from one interpreter run to the next.
"""

from __future__ import annotations

import zlib

import numpy as np

#: tags of the streams that are not per-image; far above any identity key
STREAM_IDENTITIES = 1_000_000_001
STREAM_CAMERAS = 1_000_000_002
STREAM_PLAN = 1_000_000_003
STREAM_TILE = 1_000_000_004
STREAM_DISTRACTOR_IDS = 1_000_000_005

#: identity keys of images that belong to no regular identity
DISTRACTOR_KEY_BASE = 1_000_000
#: image numbers of junk (badly cropped) images of a test identity start here
JUNK_IMAGE_BASE = 100_000


def name_hash(name: str) -> int:
    """A hash of ``name`` that is the same in every Python process (CRC-32)."""
    return zlib.crc32(name.encode("utf-8"))


def rng_for(name: str, seed: int, *keys: int) -> np.random.Generator:
    """The generator of the stream ``(name, seed, *keys)``."""
    return np.random.default_rng(np.random.SeedSequence([name_hash(name), int(seed), *map(int, keys)]))
