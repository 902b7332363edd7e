"""Helpers of the synthetic-generator tests: tiny preset overrides, file hashes."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

#: tiny versions of the presets: 6 + 6 identities, 3 training images each, 32x16 people
SMALL: dict[str, Any] = {
    "train_ids": 6, "test_ids": 6, "train_images": [3, 3], "gallery_images": [3, 4], "cams_per_id": [2, 3],
    "queries_per_id": 2, "person_size": [32, 16], "vehicle_size": [32, 32],
}
EXTRA: dict[str, dict[str, Any]] = {
    "synth-market": {"junk_images": 3, "distractor_images": 4},
    "synth-duke": {"gallery_only_ids": 2},
    "synth-msmt17": {"val_fraction": 0.3},
    "synth-veri": {},
    "synth-pretrain": {"train_ids": 9},
}


def small(name: str, **more: Any) -> dict[str, Any]:
    return {**SMALL, **EXTRA[name], **more}


def file_hashes(folder: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under ``folder``."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}
