"""The GPU-check scripts of issue #17 run end to end at toy sizes on the CPU (their numbers mean nothing here)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_bench_input_last_line(tmp_path: Path) -> None:
    out = _run([str(REPO / "benchmarks/bench_input.py"), "--images", "120", "--batch-size", "32",
                "--num-instances", "4", "--height", "32", "--width", "16", "--batches", "2", "--old-batches", "1",
                "--repeats", "1"], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    last = out.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"host images/s: \d+ \(per-image path: \d+\)", last), last


@pytest.mark.slow
def test_paper_scale_tiny_writes_its_report(tmp_path: Path) -> None:
    report = tmp_path / "report.md"
    out = _run([str(REPO / "benchmarks/paper_scale.py"), "--tiny", "--iters", "2", "--pretrain-epochs", "1",
                "--pretrain-iters", "2", "--bare-iters", "1", "--report", str(report)], tmp_path)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    text = report.read_text()
    for phase in ("generate synth-market", "pretrain (synth-pretrain)", "epoch 1: extraction",
                  "clustering stage knn", "epoch 1: 2 training steps", "test evaluation"):
        assert phase in text, phase
    assert "## Clustering log" in text and "stored pairs" in text


@pytest.mark.slow
def test_bench_diagnostics_last_line(tmp_path: Path) -> None:
    out = _run([str(REPO / "benchmarks/bench_diagnostics.py"), "--train-ids", "12", "--iters", "2", "--repeats", "1",
                "--threads", "1", "--set", "sampler.batch_size=16", "--set", "input.height=32",
                "--set", "input.width=16"], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    last = out.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"diagnostics throughput ratio: \d+\.\d{3} \(target >= 0\.95\)", last), last
