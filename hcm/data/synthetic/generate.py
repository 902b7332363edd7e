"""``generate(name, parent)``: write a synthetic dataset folder, atomically and reproducibly.

The folder is written under a temporary sibling name (``.NAME.HOST-PID.*.tmp``) and renamed
at the end, so an interrupted run leaves no half dataset under the real name; the next run
removes the temporary folder of a killed one. Besides the images and
the layout's list files it holds

- ``synth.json``: the manifest (generator version, name, seed, full spec, counts);
  an existing folder with the same manifest makes ``generate`` a no-op, one with a
  different manifest is an error;
- ``synth_images.csv``: one row per file (identity, camera, view, occluder, ...);
- ``synth_identities.json``: every identity's attributes and near-duplicate twin;
- ``synth_cameras.json``: every camera's parameters.

Same name + spec + seed gives byte-identical files, whatever the number of worker
processes: each image has its own random stream (see :mod:`.seeding`).
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import io
import json
import logging
import multiprocessing
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from hcm.data.synthetic.plan import FOLDERS, Plan, make_plan
from hcm.data.synthetic.scene import ImageJob, RenderContext, camera_tile, render_image
from hcm.data.synthetic.spec import SynthSpec, spec_for
from hcm.errors import DatasetError
from hcm.utils.io import DIR_MODE

logger = logging.getLogger(__name__)

#: bump when the same spec + seed would give different files
GENERATOR_VERSION = 1
#: spec parameters added after version 1, with the value that reproduces the earlier files
#: (a manifest written before a parameter existed matches that value)
SPEC_ADDED: dict[str, Any] = {"camera_draw": "independent"}
MANIFEST = "synth.json"
IMAGES_CSV = "synth_images.csv"
IDENTITIES_JSON = "synth_identities.json"
CAMERAS_JSON = "synth_cameras.json"
CHUNK = 160

Progress = bool | Callable[[int, int], None]


def manifest_key(name: str, spec: SynthSpec, seed: int) -> dict[str, Any]:
    """The part of the manifest that decides the files' content."""
    return {"generator": "hcm.data.synthetic", "generator_version": GENERATOR_VERSION, "name": name,
            "seed": int(seed), "spec": spec.to_dict()}


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(
            f"{folder} exists but is not a generated synthetic dataset (no {MANIFEST}); "
            "move it away, or pass another --root"
        ) from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: unreadable manifest ({exc}); delete {folder} to regenerate it") from None


def check_manifest(folder: Path, want: dict[str, Any]) -> None:
    """Raise :class:`DatasetError` unless ``folder``'s manifest matches ``want`` (see :func:`manifest_key`)."""
    have = read_manifest(folder)
    diffs = []
    for k in ("generator", "generator_version", "name", "seed"):
        if have.get(k) != want[k]:
            diffs.append(f"{k} {have.get(k)!r} (wanted {want[k]!r})")
    have_spec = have.get("spec", {})
    for k, v in want["spec"].items():
        if k not in have_spec and k in SPEC_ADDED and v == SPEC_ADDED[k]:
            continue  # an older manifest: a parameter added later, at its value then implied
        if have_spec.get(k) != v:
            diffs.append(f"{k} {have_spec.get(k)!r} (wanted {v!r})")
    if diffs:
        shown = "; ".join(diffs[:6]) + ("; ..." if len(diffs) > 6 else "")
        raise DatasetError(
            f"{folder}: holds a synthetic dataset generated with other settings: {shown}. "
            f"Delete {folder} to regenerate it, or pass another --root"
        )


def generate(name: str, parent: str | Path, *, seed: int = 0, overrides: dict[str, Any] | None = None,
             progress: Progress = True, workers: int | None = None) -> Path:
    """Write the synthetic dataset ``name`` as ``parent/name`` (if absent) and return that folder.

    ``overrides`` replace preset parameters (see :func:`spec_for`); ``progress`` is
    True (tqdm bar), False, or a callable ``(done, total)`` called after each chunk
    of images; ``workers`` = processes (default: up to 2 for large sets; the output
    does not depend on it).
    """
    if seed < 0:
        raise DatasetError(f"synthetic dataset seed must be >= 0, got {seed}")
    spec = spec_for(name, overrides)
    parent = Path(parent).expanduser()
    folder = parent / name
    want = manifest_key(name, spec, seed)
    if folder.exists():
        check_manifest(folder, want)
        logger.info("%s already generated in %s", name, folder)
        return folder
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(parent, name)
    tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(name), suffix=".tmp", dir=parent))
    try:
        plan = make_plan(name, spec, seed)
        logger.info("generating %s (%d images, seed %d) in %s", name, len(plan.jobs), seed, folder)
        _write(tmp, name, seed, spec, plan, want, progress, workers)
        os.chmod(tmp, DIR_MODE)  # mkdtemp made it 0700; the dataset is shared like any folder
        try:
            os.rename(tmp, folder)
        except OSError:
            if folder.exists():  # another process finished the same dataset first
                check_manifest(folder, want)
                shutil.rmtree(tmp, ignore_errors=True)
                return folder
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname()) or "host"


def _tmp_prefix(name: str) -> str:
    """``.NAME.HOST-PID.``: the temporary folder says which process writes it."""
    return f".{name}.{_host()}-{os.getpid()}."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_stale_temporaries(parent: Path, name: str) -> list[Path]:
    """Delete ``parent/.NAME.HOST-PID.*.tmp`` folders of this host whose process has ended (a
    generation killed with SIGKILL or by a power cut has no chance to remove its own)."""
    removed = []
    pattern = re.compile(rf"\.{re.escape(name)}\.{re.escape(_host())}-(\d+)\..*\.tmp")
    for path in parent.glob(f".{name}.*.tmp"):
        m = pattern.fullmatch(path.name)
        if m and path.is_dir() and not _pid_alive(int(m.group(1))):
            logger.info("removing %s, left by an interrupted generation", path)
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _write(tmp: Path, name: str, seed: int, spec: SynthSpec, plan: Plan, want: dict[str, Any],
           progress: Progress, workers: int | None) -> None:
    for sub in sorted(set(FOLDERS[spec.layout].values())):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
    ctx = RenderContext(name=name, seed=seed, spec=spec, identities=plan.identities, cameras=tuple(plan.cameras))
    chunks = _chunks(plan)
    total = len(plan.jobs)
    if workers is None:
        workers = min(2, os.cpu_count() or 1) if total >= 600 else 1
    bar = tqdm(total=total, desc=f"generating {name}", unit="img", disable=progress is not True)
    rows: list[dict[str, Any]] = []
    rendered = 0

    def done(part: list[dict[str, Any]], n_jobs: int) -> None:
        nonlocal rendered
        rows.extend(part)
        rendered += n_jobs
        bar.update(n_jobs)
        if callable(progress):
            progress(rendered, total)

    try:
        if workers <= 1:
            for chunk in chunks:
                done(_render_chunk(ctx, chunk, str(tmp)), len(chunk))
        else:
            # fork where available: no re-import of __main__ (works from notebooks and
            # stdin); the workers use only numpy and Pillow
            methods = multiprocessing.get_all_start_methods()
            mp = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
            with cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp) as pool:
                futures = {pool.submit(_render_chunk, ctx, chunk, str(tmp)): len(chunk) for chunk in chunks}
                try:
                    for fut in cf.as_completed(futures):
                        done(fut.result(), futures[fut])
                except BaseException:
                    for f in futures:
                        f.cancel()
                    raise
    finally:
        bar.close()
    for fname, text in plan.texts.items():
        (tmp / fname).write_text(text, encoding="utf-8", newline="\n")
    (tmp / IMAGES_CSV).write_text(_images_csv(rows), encoding="utf-8", newline="")
    ids = sorted(plan.identities.values(), key=lambda i: i.key)
    (tmp / IDENTITIES_JSON).write_text(json.dumps(
        [{**i.to_json(), "pid": plan.pids.get(i.key, 0)} for i in ids], indent=1) + "\n", encoding="utf-8")
    (tmp / CAMERAS_JSON).write_text(json.dumps([c.to_json() for c in plan.cameras], indent=1) + "\n", encoding="utf-8")
    manifest = {**want, "layout": spec.layout, "counts": counts(plan)}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _chunks(plan: Plan) -> list[list[ImageJob]]:
    """Jobs grouped by (camera, kind) so a worker draws each background tile once per chunk."""
    groups: dict[tuple[int, str], list[ImageJob]] = {}
    for job in plan.jobs:
        groups.setdefault((job.camera, plan.identities[job.key].kind), []).append(job)
    out = []
    for key in sorted(groups):
        g = groups[key]
        out += [g[i:i + CHUNK] for i in range(0, len(g), CHUNK)]
    return out


def _render_chunk(ctx: RenderContext, jobs: list[ImageJob], folder: str) -> list[dict[str, Any]]:
    """Render and write ``jobs`` (one camera and kind); the rows of ``synth_images.csv``."""
    root = Path(folder)
    job0 = jobs[0]
    tile = camera_tile(ctx, job0.camera, ctx.identities[job0.key].kind)
    rows = []
    for job in jobs:
        data, info = render_image(ctx, job, tile)
        for rel in (job.relpath, *job.copies):
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            ident = ctx.identities[job.key]
            rows.append({
                "path": rel, "split": job.split if rel == job.relpath else "gallery", "pid": job.pid,
                "camera": job.camera, "key": job.key, "image": job.image, "kind": ident.kind,
                "quality": job.quality, "session": job.session, "view": info["view"],
                "occluder": info["occluder"], "clutter": int(info["clutter"]),
            })
    return rows


IMAGE_COLUMNS = ("path", "split", "pid", "camera", "key", "image", "kind", "quality", "session", "view",
                 "occluder", "clutter")


def _images_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(IMAGE_COLUMNS), lineterminator="\n")
    w.writeheader()
    for row in sorted(rows, key=lambda r: r["path"]):
        w.writerow(row)
    return buf.getvalue()


def counts(plan: Plan) -> dict[str, Any]:
    """Images / identities / cameras per split, and the junk, distractor and near-duplicate numbers."""
    out: dict[str, Any] = {}
    by_split: dict[str, list[ImageJob]] = {}
    for job in plan.jobs:
        by_split.setdefault(job.split, []).append(job)
        for _ in job.copies:
            by_split.setdefault("gallery", []).append(job)
    for split, jobs in sorted(by_split.items()):
        normal = [j for j in jobs if j.quality == "normal"]
        out[split] = {"images": len(jobs), "ids": len({j.pid for j in normal}),
                      "cameras": len({j.camera for j in jobs})}
    out["junk_images"] = sum(j.quality == "junk" for j in plan.jobs)
    out["distractor_images"] = sum(j.quality == "distractor" for j in plan.jobs)
    out["near_duplicate_pairs"] = sum(1 for i in plan.identities.values() if i.twin > i.key)
    out["identities_by_kind"] = {k: sum(1 for i in plan.identities.values() if i.kind == k and i.group != "distractor")
                                 for k in ("person", "vehicle")}
    out["files"] = sum(1 + len(j.copies) for j in plan.jobs)
    return out
