"""What a run records about the machine it ran on, and the TF32 switch of the runtime."""

from __future__ import annotations

import json
import platform
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
import torch

from hcm.config import RuntimeConfig, load_train_config
from hcm.engine.setup import setup_runtime
from hcm.utils.environment import cpu_model, describe_environment, package_version

RECIPE = Path(__file__).resolve().parents[1] / "workflow" / "recipes" / "synth-small.yaml"


def test_describe_environment_on_the_cpu_names_this_machine() -> None:
    env = describe_environment("cpu")
    assert json.loads(json.dumps(env)) == env  # JSON-ready as written into the summaries
    assert env["torch"] == metadata.version("torch") and torch.__version__.startswith(env["torch"])
    assert env["numpy"] == metadata.version("numpy")
    assert env["faiss"] == package_version(("faiss-cpu", "faiss-gpu")) is not None
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert env["threads"] == torch.get_num_threads()
    assert env["deterministic"] == torch.are_deterministic_algorithms_enabled()
    assert env["python"] == platform.python_version() and env["cpu"]
    assert not {"gpu", "cuda", "cudnn", "tf32_conv", "tf32_matmul"} & set(env)  # CUDA keys on CUDA only


def test_cpu_model_reads_cpuinfo(tmp_path: Path) -> None:
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Test CPU 9000 @ 2.0GHz\n"
                   "processor\t: 1\nmodel name\t: Test CPU 9000 @ 2.0GHz\n")
    assert cpu_model(x86) == "Test CPU 9000 @ 2.0GHz"
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nBogoMIPS\t: 38.40\nHardware\t: BCM2835\n")
    assert cpu_model(arm) == "BCM2835"
    # no cpuinfo (not Linux): what the platform module knows, never empty
    assert cpu_model(tmp_path / "missing") == (platform.processor() or platform.machine())


def test_package_version_takes_the_first_installed_name() -> None:
    assert package_version(("no-such-distribution-xyz", "torch")) == metadata.version("torch")
    assert package_version(("no-such-distribution-xyz",)) is None


@pytest.fixture
def _restore_tf32() -> Iterator[None]:
    conv, matmul = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = conv, matmul


@pytest.mark.usefixtures("_restore_tf32")
def test_runtime_tf32_sets_both_switches() -> None:
    """torch's defaults differ (cuDNN convolutions TF32, matmuls IEEE); runtime.tf32 sets both."""
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = True, False
    setup_runtime(RuntimeConfig(device="cpu"))  # default: off
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == (False, False)
    assert torch.backends.cudnn.conv.fp32_precision != "tf32"  # the new API reads the same switch
    setup_runtime(RuntimeConfig(device="cpu", tf32=True))
    assert (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32) == (True, True)
    assert torch.backends.cuda.matmul.fp32_precision == "tf32"


@pytest.mark.parametrize("raw, expected", [("on", True), ("off", False), ("true", True), ("false", False)])
def test_tf32_switch_from_the_command_line(raw: str, expected: bool) -> None:
    assert load_train_config(RECIPE, [f"runtime.tf32={raw}"]).runtime.tf32 is expected
