"""The `smoke` suite through workflow/profiles/slurm on a real one-node SLURM cluster.

The cluster comes from Debian's slurm-wlm and munge (tests/workflow/local_slurm.sh installs
them when missing, configures the daemons for this host under a temporary folder, starts
them and stops them again at the end, also when the test fails). Every prepare, pretrain and
train job must go through sbatch and finish as a SLURM job (its SLURM log and `scontrol`
record), the local rules must not, and the tables must equal the local run's value for value.
The cluster has no accounting storage, as many small clusters: the profile must cope.
"""

from __future__ import annotations

import fcntl
import os
import re
import socket
import subprocess
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from tests.workflow.smk import (
    PROFILES,
    REPO,
    check_suite_outputs,
    job_counts,
    snakemake,
    suite_runs,
)

SUITE = "smoke"
SCRIPT = REPO / "tests" / "workflow" / "local_slurm.sh"
CLUSTER_RULES = {"prepare", "pretrain", "train"}
pytestmark = pytest.mark.slow


def _free_port_pair() -> int:
    """A port p with p and p + 1 free on this host (slurmctld, slurmd), so runs of the suite side by side do not clash."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port >= 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two adjacent free ports")


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory):
    """SLURM_CONF of a running one-node cluster; the daemons are stopped when the module ends.

    One cluster per host at a time (the script links /etc/slurm/slurm.conf): a lock file makes
    a second test session on the same host wait for the first.
    """
    pytest.importorskip("snakemake_executor_plugin_slurm",
                        reason="snakemake-executor-plugin-slurm is not installed (pip install -e '.[dev]')")
    state = tmp_path_factory.mktemp("slurm")
    env = {**os.environ, "LOCAL_SLURM_PORT": str(_free_port_pair()),
           "PATH": f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"}
    with open(Path(tempfile.gettempdir()) / "hcm-local-slurm.lock", "a+") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        start = subprocess.run(["bash", str(SCRIPT), "start", str(state)], env=env, capture_output=True,
                               text=True, timeout=600)
        try:
            if start.returncode == 3:
                pytest.skip(start.stderr.strip().splitlines()[-1])
            assert start.returncode == 0, start.stdout + start.stderr
            yield {"SLURM_CONF": str(state / "slurm.conf")}
        finally:
            subprocess.run(["bash", str(SCRIPT), "stop", str(state)], env=env, capture_output=True, text=True,
                           timeout=120)


def _scontrol_state(job_id: str, env: dict[str, str]) -> str:
    out = subprocess.run(["scontrol", "show", "job", job_id], env={**os.environ, **env}, capture_output=True,
                         text=True).stdout
    m = re.search(r"JobState=(\S+)", out)
    return m.group(1) if m else f"unknown ({out.strip() or 'no record'})"


def test_smoke_suite_on_slurm_matches_the_local_run(slurm_cluster, smoke_run, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    res = snakemake(work, "--profile", str(PROFILES / "slurm"), "--verbose",
                    # test-only: keep the SLURM logs of successful jobs, poll the cluster early
                    "--slurm-keep-successful-logs", "--slurm-init-seconds-before-status-checks", "2",
                    config={"suite": SUITE}, env=slurm_cluster, timeout=900)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]

    counts = job_counts(out)
    n_cluster = sum(counts.get(rule, 0) for rule in CLUSTER_RULES)
    assert counts["train"] == len(suite_runs(SUITE)) and counts["pretrain"] == 1 and counts["prepare"] == 2
    submitted = re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)\.", out)
    assert len(submitted) == n_cluster, out[-6000:]
    assert len({job_id for _, job_id, _ in submitted}) == n_cluster
    for _, job_id, log in submitted:
        log_path = Path(log) if Path(log).is_absolute() else work / log
        rule = re.search(r"rule_(\w+)", log).group(1)
        assert rule in CLUSTER_RULES, log
        assert log_path.is_file(), log
        assert _scontrol_state(job_id, slurm_cluster) == "COMPLETED", (job_id, log_path.read_text()[-3000:])
    # the GPU-less smoke jobs ask SLURM for no GPU; every job asks for its memory and time
    calls = re.findall(r"sbatch call: (.*)", out)
    assert len(calls) == n_cluster and all("--gpus" not in c and "--mem" in c and "-t " in c for c in calls), calls

    check_suite_outputs(work, SUITE, suite_runs(SUITE))
    local_work, local = smoke_run
    assert local.returncode == 0
    tables = Path("reports") / SUITE / "tables"
    for name in ("results.csv", "cmc.csv", "main.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(work / tables / name), pd.read_csv(local_work / tables / name),
                                      check_exact=True, obj=name)
