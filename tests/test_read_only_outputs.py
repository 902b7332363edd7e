"""Issue 21, case 4: an output folder on a read-only file system is one line naming the folder and the
fix, not an ``OSError: [Errno 30]`` traceback.

The read-only file system is real: the test folder is bind-mounted read-only in a private mount
namespace (``unshare -rm``, no root needed). Where user namespaces are unavailable the tests skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests import fake_datasets

REPO = Path(__file__).resolve().parents[1]
#: bind-mount $1 onto itself read-only, then run the rest of the arguments
READ_ONLY = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'


def _can_mount_read_only() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", READ_ONLY, "sh", "/tmp", "true"], capture_output=True)
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(not _can_mount_read_only(), reason="no user namespaces for a read-only mount")


def hcm_read_only(read_only: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(["unshare", "-rm", "sh", "-c", READ_ONLY, "sh", str(read_only),
                           sys.executable, "-m", "hcm", *argv], env=env, capture_output=True, text=True, timeout=300)


def error_line(stderr: str, command: str) -> str:
    """The one error line (log lines aside); no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith(f"hcm {command}: error: ")]
    assert len(lines) == 1, stderr
    return lines[0]


def test_prepare_with_a_read_only_dataset_root(tmp_path: Path) -> None:
    """`hcm prepare` with a read-only dataset root printed a traceback after checking every image."""
    disk = tmp_path / "disk"
    folder = fake_datasets.make_market(disk)
    proc = hcm_read_only(disk, "prepare", "market1501", "--root", str(folder))
    assert proc.returncode == 2, proc.stderr
    line = error_line(proc.stderr, "prepare")
    assert f"{disk}: cannot write the index market1501.index.csv here (Read-only file system)" in line
    assert "--out PATH" in line
    assert "checked" not in proc.stderr  # refused before checking every image, not after
    # the advice works: the index elsewhere, the dataset still read-only
    out = tmp_path / "indexes" / "market1501.index.csv"
    proc = hcm_read_only(disk, "prepare", "market1501", "--root", str(folder), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.is_file()


def test_train_into_a_read_only_output_folder(tmp_path: Path) -> None:
    """`hcm train --out-dir` on a read-only file system raised OSError [Errno 30] with a traceback."""
    disk = tmp_path / "disk"
    disk.mkdir()
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"dataset": {"name": "synth-market", "root": str(tmp_path)}}))
    proc = hcm_read_only(disk, "train", "--config", str(recipe), "--out-dir", str(disk / "run"), "--no-progress")
    assert proc.returncode == 2, proc.stderr
    line = error_line(proc.stderr, "train")
    assert f"{disk / 'run'}: cannot write the run here (Read-only file system)" in line
    assert "--out-dir on a writable disk" in line
