"""The re-ID backbone: construction, weights, checkpoint files.

``build_model(cfg, num_classes=0, seed=0)`` is the one entry point used by training,
pretraining and evaluation.
"""

from __future__ import annotations

import logging

import torch

from hcm.config import ModelConfig
from hcm.models.pooling import GeM, build_pooling
from hcm.models.reid import FEAT_DIMS, ReIDModel
from hcm.models.weights import (
    LoadReport,
    apply_weights,
    extract_state_dict,
    imagenet_weights_location,
    load_state_into,
    load_weights,
    save_weights,
)

logger = logging.getLogger(__name__)

__all__ = [
    "FEAT_DIMS",
    "GeM",
    "LoadReport",
    "ReIDModel",
    "build_model",
    "build_pooling",
    "extract_state_dict",
    "imagenet_weights_location",
    "load_state_into",
    "load_weights",
    "model_from_checkpoint",
    "save_weights",
]


def build_model(cfg: ModelConfig, num_classes: int = 0, *, seed: int = 0) -> ReIDModel:
    """Build the re-ID model of ``cfg`` on the CPU and initialise it per ``cfg.weights``.

    Random initialisation (torchvision's, plus the classifier's N(0, 0.001)) runs under a
    forked CPU RNG seeded with ``seed``: the initial model is a pure function of
    ``(cfg, num_classes, seed)`` and the caller's global RNG is left untouched. Then
    ``cfg.weights`` (``imagenet``, ``none`` or a path) overwrites what it provides; see
    :mod:`hcm.models.weights`. Move the model to its device afterwards.
    """
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        model = ReIDModel(cfg, num_classes)
    report = apply_weights(model, cfg.weights)
    if report is not None:
        logger.info("model %s: loaded %d tensors from %s weights", cfg.arch, len(report.loaded), cfg.weights)
    return model


def model_from_checkpoint(path: str, *, seed: int = 0) -> ReIDModel:
    """Rebuild a model from a file written by :func:`save_weights` (its stored ModelConfig)."""
    from hcm.errors import CheckpointError

    obj = load_weights(path)
    saved = obj.get("model_config")
    if not isinstance(saved, dict):
        raise CheckpointError(
            f"{path}: has no stored model_config (not written by hcm); build the model with "
            "build_model(ModelConfig(..., weights=PATH)) instead"
        )
    cfg = ModelConfig.model_validate({**saved, "weights": str(path)})
    return build_model(cfg, int(obj.get("num_classes", 0)), seed=seed)
