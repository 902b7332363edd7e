"""Screenshot of the MLflow UI on a suite's experiment, as a new user first sees it (README figure).

    python benchmarks/mlflow_screenshot.py --db results/mlflow.db --experiment hcm-synthetic \\
        --out docs/figures/mlflow-runs.png

Starts ``mlflow ui`` on the given SQLite store on 127.0.0.1 (a free port), waits until it
answers, opens the experiment's page in headless Chromium (``chromium --headless
--screenshot``), and stops the server it started (its process group) also on failure.
Needs Debian's ``chromium`` (``apt-get install chromium``). The page is the experiment's runs
table (Created and Duration are the runs' training times, Dataset the logged dataset input);
see :func:`experiment_route` for why the URL names the UI's "Model training" view.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_until_up(url: str, server: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"mlflow ui exited with status {server.returncode} before answering on {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"mlflow ui did not answer on {url} within {timeout:.0f} s")


def experiment_id(db: Path, name: str) -> str:
    from mlflow import MlflowClient

    exp = MlflowClient(f"sqlite:///{db.resolve()}").get_experiment_by_name(name)
    if exp is None:
        raise SystemExit(f"{db}: no experiment {name!r}; run the workflow (or `hcm track log`) first")
    return exp.experiment_id


def experiment_route(exp_id: str) -> str:
    """The experiment's page in MLflow 3.17's UI, on its runs table: the UI shows the kind of page its
    sidebar switch (GenAI / Model training) selects, GenAI unless the browser stored another choice
    or the URL names one; the experiment's ``mlflow.experimentKind`` tag does not override it."""
    return f"#/experiments/{exp_id}?workflowType=machine_learning"


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("no chromium on PATH; install it (Debian: apt-get install chromium)")


@contextlib.contextmanager
def mlflow_ui(db: Path) -> Iterator[str]:
    """``mlflow ui`` on the SQLite store ``db`` at 127.0.0.1 (a free port); yields its base URL and
    stops it (its process group: the server and the workers it forked) on the way out."""
    port = free_port()
    base = f"http://{HOST}:{port}"
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    log = tempfile.TemporaryFile()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", f"sqlite:///{db.resolve()}",
         "--host", HOST, "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_until_up(f"{base}/health", server, timeout=120)
        yield base
    except BaseException:
        log.seek(0)
        sys.stderr.write(log.read().decode(errors="replace")[-3000:])
        raise
    finally:
        with _ignore_missing():
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with _ignore_missing():
                os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def browse(url: str, *args: str, width: int = 1800, height: int = 800, wait_ms: int = 20000) -> str:
    """Run headless Chromium on ``url`` with ``args`` (e.g. ``--screenshot=FILE``, ``--dump-dom``)
    after giving the page ``wait_ms`` of virtual time to load; returns its standard output."""
    with tempfile.TemporaryDirectory() as profile:
        cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--user-data-dir={profile}", f"--window-size={width},{height}",
               f"--virtual-time-budget={wait_ms}", *args, url]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    if res.returncode != 0:
        raise SystemExit(f"chromium failed ({res.returncode}): {res.stderr[-2000:]}")
    return res.stdout


def screenshot(db: Path, experiment: str, out: Path, *, width: int, height: int, wait_ms: int) -> Path:
    route = experiment_route(experiment_id(db, experiment))
    out.parent.mkdir(parents=True, exist_ok=True)
    with mlflow_ui(db) as base:
        browse(f"{base}/{route}", f"--screenshot={out.resolve()}", width=width, height=height, wait_ms=wait_ms)
    if not out.is_file():
        raise SystemExit(f"chromium wrote no {out}")
    return out


class _ignore_missing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        return exc_type is ProcessLookupError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", type=Path, default=Path("results/mlflow.db"), help="SQLite tracking store")
    p.add_argument("--experiment", default="hcm-synthetic", help="experiment to open")
    p.add_argument("--out", type=Path, default=Path("docs/figures/mlflow-runs.png"), help="PNG to write")
    p.add_argument("--width", type=int, default=1800)
    p.add_argument("--height", type=int, default=800)
    p.add_argument("--wait-ms", type=int, default=20000, help="time the page gets to load (virtual time)")
    args = p.parse_args(argv)
    if not args.db.is_file():
        raise SystemExit(f"{args.db}: no such tracking store; run the workflow first")
    path = screenshot(args.db, args.experiment, args.out, width=args.width, height=args.height,
                      wait_ms=args.wait_ms)
    print(f"{args.experiment} in {args.db} -> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
