"""MLflow tracking of finished run directories (the only module that imports mlflow).

Training writes plain files; this module logs them afterwards, from one process, so
parallel training jobs never write to the tracking store (a SQLite file cannot take
concurrent writers). The layout in MLflow:

- one experiment per suite, named ``hcm-<suite>`` (:func:`experiment_name`);
- one MLflow run per run directory, identified by the tag ``hcm.run_key`` (the run
  directory relative to the suite's results folder, e.g. ``runs/synth-market/hcm/seed0``)
  and tagged with ``suite``, ``dataset``, ``variant``, ``seed`` and ``group`` (``runs``, ``study`` or
  ``sweep``), plus what the run was computed on (:mod:`hcm.utils.environment`): ``env.*``
  from ``train_summary.json`` (training) and ``eval_env.*`` from ``metrics.json`` (evaluation),
  e.g. ``env.cpu_capability``, ``env.torch``, ``env.gpu``;
- params: the resolved ``config.yaml`` flattened (``loss.gamma``, ``cluster.eps``, ...);
- metrics: every ``epochs.csv`` column with ``step = epoch``; the final ``mAP, mINP,
  rank1, rank5, rank10`` (fractions, as in ``metrics.json``); the CMC curve as metric
  ``cmc`` with ``step = rank``; training and evaluation times;
- artifacts: ``config.yaml``, ``metrics.json``, ``epochs.csv``, ``train_summary.json``,
  ``cmc.png``, ``train.log`` when present, and ``curves.png`` (written by ``hcm train``; drawn
  here for a run directory that lacks it).
- times: the run starts and ends when its training did (:func:`run_times`, from
  ``train_summary.json``), not when it is logged, so the UI's Created and Duration are true;
- input: the run's dataset as an MLflow dataset (:func:`dataset_input`: name, digest of its
  ``index.csv``, the index's path as source, its columns and split sizes);
- the experiment carries :data:`EXPERIMENT_TAGS`: MLflow 3's experiment kind, model training.
  (MLflow 3.17's UI does not read it: its experiment page follows the sidebar's GenAI / Model
  training switch, GenAI by default; ``#/experiments/<id>?workflowType=machine_learning``
  opens the runs table.)

Logging is idempotent: a run directory is hashed (:func:`content_hash`); when the store
already holds a finished run with the same key and hash nothing is logged; when the
hash differs the old run is deleted and the directory logged again.

The default store is ``sqlite:///results/mlflow.db`` (artifacts under
``results/mlartifacts/<suite>``); any MLflow tracking URI works, e.g. a remote server.
For SQLite stores a lock file beside the database serialises writers from different
processes (e.g. the main and the sweep logging jobs).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import math
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from hcm.errors import HCMError

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///results/mlflow.db"
RUN_KEY_TAG = "hcm.run_key"
HASH_TAG = "hcm.content_hash"
#: files whose bytes define a run's content (absent files count as empty)
HASHED_FILES: tuple[str, ...] = ("config.yaml", "metrics.json", "epochs.csv", "train_summary.json")
ARTIFACT_FILES: tuple[str, ...] = ("config.yaml", "metrics.json", "epochs.csv", "train_summary.json",
                                   "cmc.png", "train.log")
CURVES_FILE = "curves.png"
FINAL_METRICS: tuple[str, ...] = ("mAP", "mINP", "rank1", "rank5", "rank10")
EXTRA_METRICS: tuple[str, ...] = ("train_wall_time_s", "eval_time_s", "num_valid_queries", "num_queries",
                                  "num_gallery")
#: experiment tags: MLflow 3's experiment kind, a model-training experiment (see the module docstring)
EXPERIMENT_TAGS: dict[str, str] = {"mlflow.experimentKind": "custom_model_development"}
#: hex digits of the SHA-256 of a dataset's index.csv kept as its MLflow digest (MLflow stores at most 36)
DIGEST_LENGTH = 16
# MLflow's limits per log_batch call
_MAX_METRICS, _MAX_PARAMS, _MAX_PARAM_LEN = 1000, 100, 6000


@dataclass(frozen=True)
class LoggedRun:
    """What happened to one run directory: ``created``, ``replaced`` or ``unchanged``."""

    run_key: str
    run_id: str
    action: str
    content_hash: str
    run_dir: str


def experiment_name(suite: str) -> str:
    return f"hcm-{suite}"


def flatten(data: Any, prefix: str = "") -> dict[str, str]:
    """Nested mappings -> ``{"a.b.c": "value"}``; lists and scalars become their YAML/str form."""
    out: dict[str, str] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    key = prefix[:-1]
    if isinstance(data, (list, tuple)):
        text = json.dumps(list(data))
    elif data is None:
        text = "null"
    else:
        text = str(data)
    out[key] = text[:_MAX_PARAM_LEN]
    return out


def content_hash(run_dir: str | Path) -> str:
    """SHA-256 over the :data:`HASHED_FILES` of a run directory (name and bytes of each)."""
    h = hashlib.sha256()
    for name in HASHED_FILES:
        path = Path(run_dir) / name
        h.update(name.encode())
        h.update(b"\0")
        if path.is_file():
            h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative to the working directory), else None."""
    if not tracking_uri.startswith("sqlite:"):
        return None
    parsed = urlparse(tracking_uri)
    path = unquote(parsed.path)
    # sqlite:///relative/path -> "/relative/path" ; sqlite:////abs/path -> "//abs/path"
    if path.startswith("//"):
        return Path(path[1:])
    return Path(path[1:]) if path.startswith("/") else Path(path)


@contextlib.contextmanager
def store_lock(tracking_uri: str) -> Iterator[None]:
    """Hold an exclusive lock beside a SQLite store (no-op for other stores)."""
    db = sqlite_path(tracking_uri)
    if db is None:
        yield
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    lock_path = db.with_name(db.name + ".lock")
    with open(lock_path, "a+") as fh:
        t0 = time.monotonic()
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        waited = time.monotonic() - t0
        if waited > 1.0:
            logger.info("waited %.1f s for the tracking-store lock %s", waited, lock_path)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _client(tracking_uri: str):
    from mlflow import MlflowClient

    db = sqlite_path(tracking_uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=tracking_uri)


def init_store(tracking_uri: str, experiment: str, artifact_root: str | Path | None = None,
               tags: dict[str, str] | None = None) -> dict[str, str]:
    """Create the store (and its tables) and the experiment if absent; returns its description.

    ``artifact_root``: folder for the experiment's artifacts (created as a ``file://`` URI);
    None lets the tracking server decide. An existing experiment keeps its artifact location.
    """
    with store_lock(tracking_uri):
        client = _client(tracking_uri)
        exp = client.get_experiment_by_name(experiment)
        if exp is not None and exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
            exp = client.get_experiment(exp.experiment_id)
        if exp is None:
            location = None
            if artifact_root is not None:
                root = Path(artifact_root).expanduser().resolve()
                root.mkdir(parents=True, exist_ok=True)
                location = root.as_uri()
            exp_id = client.create_experiment(experiment, artifact_location=location,
                                              tags={**EXPERIMENT_TAGS, **(tags or {})})
            exp = client.get_experiment(exp_id)
            logger.info("created MLflow experiment %s (id %s) in %s", experiment, exp_id, tracking_uri)
        for key, value in EXPERIMENT_TAGS.items():  # also on experiments created before these tags
            if exp.tags.get(key) != value:
                client.set_experiment_tag(exp.experiment_id, key, value)
        return {"tracking_uri": tracking_uri, "experiment": experiment,
                "experiment_id": exp.experiment_id, "artifact_location": exp.artifact_location}


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise HCMError(f"{path}: not valid JSON ({exc}); re-run the step that writes it") from None
    return data if isinstance(data, dict) else {}


def _read_config(run_dir: Path) -> dict[str, Any]:
    """The run's resolved ``config.yaml`` ({} when absent)."""
    import yaml

    path = run_dir / "config.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return config if isinstance(config, dict) else {}


def run_payload(run_dir: Path, config: dict[str, Any]) -> tuple[dict[str, str], list[tuple[str, float, int]],
                                                               dict[str, Any]]:
    """Params (the flattened ``config``, the run's ``config.yaml``), metrics as (name, value, step), and
    the metrics.json content."""
    import pandas as pd

    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        raise HCMError(f"{metrics_path}: not found; run `hcm evaluate --run {run_dir}` before logging")
    metrics = _read_json(metrics_path)
    params = flatten(config)
    values: list[tuple[str, float, int]] = []
    epochs_path = run_dir / "epochs.csv"
    if epochs_path.is_file() and epochs_path.stat().st_size > 0:
        try:
            epochs = pd.read_csv(epochs_path)
        except pd.errors.EmptyDataError:
            epochs = pd.DataFrame()
        for row in epochs.to_dict("records"):
            step = int(row.get("epoch", 0))
            for col, value in row.items():
                if col == "epoch":
                    continue
                if isinstance(value, bool):
                    value = float(value)
                if isinstance(value, (int, float)) and not math.isnan(float(value)):
                    values.append((col, float(value), step))
    for name in (*FINAL_METRICS, *EXTRA_METRICS):
        v = metrics.get(name)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(float(v)):
            values.append((name, float(v), 0))
    for rank, v in enumerate(metrics.get("cmc") or [], start=1):
        values.append(("cmc", float(v), rank))
    return params, values, metrics


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _millis(seconds: float) -> int:
    return int(round(seconds * 1000))


def run_times(run_dir: str | Path, summary: dict[str, Any] | None = None) -> tuple[int, int] | None:
    """(start, end) of a run's training in milliseconds since the epoch, from ``train_summary.json``
    (``summary``: its content when the caller has read it already).

    The end is its ``finished_at`` (UTC, written by the trainer; the file's modification time
    for summaries written without it), the start ``wall_time_s`` earlier (for a resumed run:
    the summed time of its sessions). None without a training summary.
    """
    from datetime import datetime

    path = Path(run_dir) / "train_summary.json"
    if summary is None:
        summary = _read_json(path)
    if not summary:
        return None
    finished = summary.get("finished_at")
    try:
        end = datetime.fromisoformat(finished).timestamp() if finished else path.stat().st_mtime
    except (TypeError, ValueError):
        raise HCMError(f"{path}: finished_at={finished!r} is not an ISO 8601 time; re-run the training") from None
    wall = summary.get("wall_time_s")
    wall = float(wall) if isinstance(wall, (int, float)) and not isinstance(wall, bool) and wall >= 0 else 0.0
    return _millis(end - wall), _millis(end)


def dataset_input(config: dict[str, Any], run_dir: Path) -> Any | None:
    """The run's dataset as an MLflow ``DatasetInput`` (context ``train``), from ``config.yaml``'s
    ``dataset.name`` and ``dataset.index``: digest = the first :data:`DIGEST_LENGTH` hex digits of
    the index file's SHA-256, source = the index's path, schema = its columns, profile = rows per
    split. None (with a warning) when the config names no index or the file is not there."""
    import pandas as pd
    from mlflow.entities import Dataset, DatasetInput, InputTag

    dataset = (config or {}).get("dataset") or {}
    name, index = dataset.get("name"), dataset.get("index")
    if not name or not index:
        return None
    path = Path(index)
    if not path.is_file():
        logger.warning("%s: dataset index %s not found (from %s/config.yaml); no dataset input logged",
                       run_dir, index, run_dir)
        return None
    data = path.read_bytes()
    table = pd.read_csv(path)
    schema = {"mlflow_colspec": [{"name": str(c), "type": "string"} for c in table.columns]}
    profile = {"num_rows": len(table)}
    if "split" in table:
        profile.update({f"{k}_rows": int(v) for k, v in table["split"].value_counts(sort=False).items()})
    entity = Dataset(name=str(name), digest=hashlib.sha256(data).hexdigest()[:DIGEST_LENGTH],
                     source_type="local", source=json.dumps({"uri": str(path.resolve())}),
                     schema=json.dumps(schema), profile=json.dumps(profile))
    return DatasetInput(dataset=entity, tags=[InputTag(key="mlflow.data.context", value="train")])


def log_run_dir(client: Any, experiment_id: str, run_dir: str | Path, run_key: str,
                tags: dict[str, str] | None = None) -> LoggedRun:
    """Log one run directory into ``experiment_id`` (idempotent; see the module docstring)."""
    from mlflow.entities import Metric, Param, RunTag, ViewType

    run_dir = Path(run_dir)
    digest = content_hash(run_dir)
    existing = client.search_runs(
        [experiment_id], filter_string=f"tags.`{RUN_KEY_TAG}` = '{_escape(run_key)}'",
        run_view_type=ViewType.ACTIVE_ONLY, max_results=100,
    )
    finished = [r for r in existing if r.data.tags.get(HASH_TAG) == digest and r.info.status == "FINISHED"]
    if len(existing) == 1 and finished:
        return LoggedRun(run_key, existing[0].info.run_id, "unchanged", digest, str(run_dir))
    for old in existing:
        client.delete_run(old.info.run_id)
    action = "replaced" if existing else "created"

    config = _read_config(run_dir)
    params, values, metrics = run_payload(run_dir, config)
    # what the run was trained and evaluated on, as env.* and eval_env.* tags (absent records add none)
    summary = _read_json(run_dir / "train_summary.json")
    environments = {"env": summary.get("environment"), "eval_env": metrics.get("environment")}
    all_tags = {RUN_KEY_TAG: run_key, "run_dir": str(run_dir), **(tags or {}),
                **flatten({k: v for k, v in environments.items() if isinstance(v, dict)})}
    for key in ("dataset", "variant", "seed"):
        if key in metrics:
            all_tags.setdefault(key, str(metrics[key]))
    run_name = run_key.split("/", 1)[1] if "/" in run_key else run_key
    times = run_times(run_dir, summary)
    start, end = times if times else (None, None)
    run = client.create_run(experiment_id, start_time=start, tags=all_tags, run_name=run_name)
    run_id = run.info.run_id
    try:
        stamp = end if end is not None else _millis(time.time())
        for chunk in _chunks([Param(k, v) for k, v in params.items()], _MAX_PARAMS):
            client.log_batch(run_id, params=chunk)
        for chunk in _chunks([Metric(n, v, stamp, s) for n, v, s in values], _MAX_METRICS):
            client.log_batch(run_id, metrics=chunk)
        dataset = dataset_input(config, run_dir)
        if dataset is not None:
            client.log_inputs(run_id, datasets=[dataset])
        for name in ARTIFACT_FILES:
            if (run_dir / name).is_file():
                client.log_artifact(run_id, str(run_dir / name))
        _log_curves_plot(client, run_id, run_dir, run_name)
        client.log_batch(run_id, tags=[RunTag(HASH_TAG, digest)])
        client.set_terminated(run_id, "FINISHED", end_time=end)
    except Exception:
        client.set_terminated(run_id, "FAILED")
        raise
    logger.info("%s MLflow run %s for %s", action, run_id, run_key)
    return LoggedRun(run_key, run_id, action, digest, str(run_dir))


def _log_curves_plot(client: Any, run_id: str, run_dir: Path, title: str) -> None:
    """Log ``RUN/curves.png`` (written by ``hcm train``); draw it for run directories without one."""
    if (run_dir / CURVES_FILE).is_file():
        client.log_artifact(run_id, str(run_dir / CURVES_FILE))
        return
    from hcm.report.figures import plot_run_curves

    metrics = _read_json(run_dir / "metrics.json")
    with tempfile.TemporaryDirectory() as tmp:
        path = plot_run_curves(run_dir, Path(tmp) / CURVES_FILE, variant=str(metrics.get("variant", "run")),
                               seed=int(metrics.get("seed", 0)), title=title)
        if path is not None:
            client.log_artifact(run_id, str(path))


def run_key_for(run_dir: str | Path, base: str | Path) -> str:
    """The run directory relative to ``base`` (POSIX form); the directory itself if not below it."""
    run_dir, base = Path(run_dir), Path(base)
    try:
        return run_dir.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return run_dir.as_posix()


def log_runs(tracking_uri: str, suite: str, run_dirs: Iterable[str | Path], *, base: str | Path,
             group: str = "runs", artifact_root: str | Path | None = None,
             experiment: str | None = None) -> list[LoggedRun]:
    """Log every run directory of ``suite`` (creating the store and experiment when absent)."""
    experiment = experiment or experiment_name(suite)
    info = init_store(tracking_uri, experiment, artifact_root, tags={"suite": suite})
    logged = []
    with store_lock(tracking_uri):
        client = _client(tracking_uri)
        for run_dir in run_dirs:
            key = run_key_for(run_dir, base)
            logged.append(log_run_dir(client, info["experiment_id"], run_dir, key,
                                      tags={"suite": suite, "group": group}))
    counts = {a: sum(r.action == a for r in logged) for a in ("created", "replaced", "unchanged")}
    logger.info("MLflow %s / %s: %s", tracking_uri, experiment, counts)
    return logged


def logged_frame(logged: Iterable[LoggedRun]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame([r.__dict__ for r in logged],
                        columns=["run_key", "run_id", "action", "content_hash", "run_dir"])
