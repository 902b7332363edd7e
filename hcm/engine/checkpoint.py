"""Checkpoints: written atomically every epoch, read back with clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from hcm.errors import CheckpointError
from hcm.utils.io import atomic_path

CHECKPOINT_VERSION = 1


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """``torch.save`` to a temporary file, then rename: a crash never leaves a torn checkpoint."""
    state = {"version": CHECKPOINT_VERSION, **state}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return Path(path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found; check the path or re-run training")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # torch raises many types for a torn or foreign file
        raise CheckpointError(
            f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc}); delete it and re-run "
            "training, or restore it from a backup"
        ) from None
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: not a training checkpoint of this version of hcm; delete it and re-run training"
        )
    return state
