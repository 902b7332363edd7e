"""What a run was computed on: library versions, CPU, GPU and the numerics settings.

The same code, config and seed give bit-identical results on one machine, but not
across machines: torch's CPU kernels (oneDNN, MKL) pick their instructions by the CPU
(``torch.backends.cpu.get_cpu_capability()``: AVX2, AVX512, ...) and sum in a different
order, and on a GPU the card, CUDA/cuDNN versions and TF32 settings matter. A few
rounding differences in pretraining or in the first clustering are enough for pseudo
labels to part ways, so every run records :func:`describe_environment` beside its
results (``train_summary.json``, the pretraining ``summary.json``, ``metrics.json``),
``hcm track`` logs it as MLflow tags and ``reports/tables/runs.csv`` keeps the columns
that tell two machines apart. A file records the process that wrote it: a run resumed on
another machine names the machine that finished it.
"""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

#: distributions whose versions are recorded (the first installed name of each entry)
PACKAGES: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "torchvision": ("torchvision",),
    "numpy": ("numpy",),
    "scikit-learn": ("scikit-learn",),
    "faiss": ("faiss-cpu", "faiss-gpu", "faiss-gpu-cu12", "faiss-gpu-cu11", "faiss"),
}


def package_version(names: tuple[str, ...]) -> str | None:
    """The version of the first of ``names`` that is installed, else None (read from metadata, no import)."""
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name (Linux: ``/proc/cpuinfo``; elsewhere ``platform.processor()``)."""
    try:
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip() in ("model name", "Model", "Hardware"):
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_environment(device: torch.device | str) -> dict[str, Any]:
    """A JSON-ready description of the software and hardware a computation on ``device`` ran with.

    Keys: ``python``, ``platform``, ``cpu``, ``cpu_capability``, ``threads``, one version
    per :data:`PACKAGES` entry, ``deterministic``; on CUDA also ``gpu``, ``cuda``,
    ``cudnn`` and the TF32 switches ``tf32_conv`` and ``tf32_matmul`` (``runtime.tf32``).
    """
    device = torch.device(device)
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
    }
    env.update({name: package_version(dists) for name, dists in PACKAGES.items()})
    env["deterministic"] = torch.are_deterministic_algorithms_enabled()
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        env.update({
            "gpu": torch.cuda.get_device_name(index),
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "tf32_conv": torch.backends.cudnn.allow_tf32,
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        })
    return env
