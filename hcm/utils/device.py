"""Device and mixed-precision selection: CUDA when present, CPU otherwise; never hard-coded."""

from __future__ import annotations

import torch

from hcm.errors import ConfigError


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` -> ``cuda`` when available else ``cpu``; ``cuda`` without a GPU is an error."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"runtime.device={spec!r} but no CUDA device is available; use runtime.device=auto or cpu"
        )
    return device


def amp_enabled(spec: str, device: torch.device) -> bool:
    """``auto`` enables AMP on CUDA only; ``on`` on CPU is refused (CPU autocast is bf16-only)."""
    if spec == "auto":
        return device.type == "cuda"
    if spec == "on":
        if device.type != "cuda":
            raise ConfigError("runtime.amp=on needs a CUDA device; use runtime.amp=auto or off")
        return True
    return False
