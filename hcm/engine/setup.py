"""What every loop needs before its first step: runtime, data splits, optimiser and schedule."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from hcm.config import DatasetConfig, OptimConfig, RuntimeConfig
from hcm.data.dataset import ReIDDataset
from hcm.data.feeder import StoreFeeder
from hcm.data.store import default_store_dir, open_store
from hcm.utils.device import amp_enabled, resolve_device

log = logging.getLogger(__name__)

#: the cuBLAS workspace setting torch's reproducibility notes give for deterministic CUDA matmuls
CUBLAS_WORKSPACE = ":4096:8"


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    amp: bool


def setup_runtime(cfg: RuntimeConfig) -> Runtime:
    """Pick the device and AMP, set torch's thread count, determinism and TF32 switches."""
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    # torch's defaults differ: TF32 on for cuDNN convolutions, off for matmuls; one switch
    # for both (the legacy flags: mixing them with the fp32_precision API makes torch raise)
    torch.backends.cudnn.allow_tf32 = cfg.tf32
    torch.backends.cuda.matmul.allow_tf32 = cfg.tf32
    if cfg.deterministic:
        if device.type == "cuda":
            # cuBLAS is deterministic only with a fixed workspace, which it reads from the
            # environment when its first handle is created (torch: "Reproducibility");
            # a value the user set is kept
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
        # warn_only: some CUDA kernels (e.g. index_add) have no deterministic version
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    amp = amp_enabled(cfg.amp, device)
    log.info("device %s, AMP %s, TF32 %s, %d CPU threads", device, "on" if amp else "off",
             "on" if cfg.tf32 else "off", torch.get_num_threads())
    return Runtime(device=device, amp=amp)


@dataclass(frozen=True)
class DataSplits:
    """Training images, test query/gallery, and (optionally) a validation split of training identities."""

    dataset: ReIDDataset
    train: pd.DataFrame
    query: pd.DataFrame
    gallery: pd.DataFrame
    val_query: pd.DataFrame | None = None
    val_gallery: pd.DataFrame | None = None


def load_splits(cfg: DatasetConfig, seed: int) -> DataSplits:
    """Read the dataset (from its index when given) and hold out validation identities if asked."""
    if cfg.index:
        dataset = ReIDDataset.read_index(Path(cfg.index))
    else:
        from hcm.data.registry import get_spec, load_dataset

        options = dict(cfg.options)
        if "synth_overrides" in get_spec(cfg.name).options.model_fields:
            # a generated folder must match the recipe's generator settings (the defaults when none are given)
            options.setdefault("synth_overrides", cfg.synth_overrides)
        dataset = load_dataset(cfg.name, cfg.root, **options)
    train = dataset.train
    val_query = val_gallery = None
    if cfg.val_fraction > 0:
        from hcm.data.split import holdout_identities

        train, val_query, val_gallery = holdout_identities(train, cfg.val_fraction, seed)
    return DataSplits(dataset, train.reset_index(drop=True), dataset.query, dataset.gallery,
                      val_query, val_gallery)


def build_feeder(cfg: Any, splits: DataSplits, runtime: Runtime, *, progress: bool = True) -> StoreFeeder | None:
    """The image-store feeder of a run (``runtime.image_store``; None when it is off).

    The store holds every image of the dataset (train, query, gallery) at the input size;
    it is opened, or built first (:func:`hcm.data.store.open_store`).
    """
    if not cfg.runtime.image_store:
        return None
    ds = splits.dataset
    paths = [*ds.train["path"], *ds.query["path"], *ds.gallery["path"]]
    directory = cfg.runtime.store_dir or default_store_dir(ds.root, ds.name)
    store = open_store(paths, (cfg.input.height, cfg.input.width), directory, root=ds.root, progress=progress)
    return StoreFeeder(store, runtime.device, cfg.input)


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    """Adam over trainable parameters, weight decay on all of them (Cluster Contrast's recipe)."""
    params = [p for p in model.parameters() if p.requires_grad]
    # the fused kernel (CPU and CUDA) computes the same update several times faster
    fused = all(p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig) -> torch.optim.lr_scheduler.LRScheduler:
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.lr_gamma)
