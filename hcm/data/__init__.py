"""Datasets: registry, readers of the real layouts, synthetic benchmark, image loading."""

from hcm.data.dataset import ReIDDataset
from hcm.data.registry import DATASETS, DatasetSpec, list_datasets, load_dataset, register_dataset

__all__ = ["DATASETS", "DatasetSpec", "ReIDDataset", "list_datasets", "load_dataset", "register_dataset"]
