"""The in-memory form of a re-ID dataset and its index file.

A :class:`ReIDDataset` holds three tables (train, query, gallery), each a
``pandas.DataFrame`` with one row per image and the columns

- ``path``  (str): absolute path of the image file,
- ``pid``   (int): identity; train identities relabelled 0..K-1, test identities as in
  the file names (identity 0 = Market-1501 distractors, kept in the gallery),
- ``camid`` (int): camera, 0-based,
- ``orig_pid`` (int): the identity as written in the file name / list file.

``hcm prepare`` writes the dataset as an index: a CSV with a ``split`` column and
paths relative to the dataset folder, plus a JSON sidecar (name, layout, root,
counts). Reading an index is much faster than scanning the folders again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from hcm.errors import DatasetError
from hcm.utils.io import atomic_write_json, atomic_write_text

SPLITS: tuple[str, ...] = ("train", "query", "gallery")
COLUMNS: tuple[str, ...] = ("path", "pid", "camid", "orig_pid")
INDEX_VERSION = 1


def make_table(rows: list[tuple[str, int, int, int]] | None = None) -> pd.DataFrame:
    """A split table with the standard columns and dtypes, from ``(path, pid, camid, orig_pid)`` rows."""
    df = pd.DataFrame(rows or [], columns=list(COLUMNS))
    return df.astype({"path": str, "pid": "int64", "camid": "int64", "orig_pid": "int64"})


def relabel(df: pd.DataFrame) -> pd.DataFrame:
    """Relabel ``pid`` to 0..K-1 in order of increasing original identity."""
    out = df.copy()
    ids = sorted(out["orig_pid"].unique())
    mapping = {pid: i for i, pid in enumerate(ids)}
    out["pid"] = out["orig_pid"].map(mapping).astype("int64")
    return out


@dataclass(frozen=True)
class ReIDDataset:
    """A dataset's three splits, where it was read from, and in which layout."""

    name: str
    root: Path
    layout: str
    train: pd.DataFrame
    query: pd.DataFrame
    gallery: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> pd.DataFrame:
        if name not in SPLITS:
            raise KeyError(f"unknown split {name!r}; one of {SPLITS}")
        return getattr(self, name)

    @property
    def num_train_pids(self) -> int:
        return int(self.train["pid"].nunique())

    def summary(self) -> pd.DataFrame:
        """Identities, images and cameras per split."""
        rows = []
        for s in SPLITS:
            df = self.split(s)
            rows.append({
                "split": s,
                "ids": int(df["orig_pid"].nunique()),
                "images": len(df),
                "cameras": int(df["camid"].nunique()),
            })
        return pd.DataFrame(rows)

    # ------------------------------------------------------------ index I/O
    def write_index(self, path: str | Path) -> Path:
        """Write ``path`` (CSV, paths relative to the dataset folder) and ``path.json`` atomically.

        Rows are in a canonical order, so equal datasets give byte-identical files.
        """
        path = Path(path)
        frames = []
        for s in SPLITS:
            df = self.split(s).copy()
            df["path"] = [Path(p).relative_to(self.root).as_posix() for p in df["path"]]
            df.insert(0, "split", s)
            frames.append(df.sort_values("path", kind="stable"))
        table = pd.concat(frames, ignore_index=True)
        atomic_write_text(path, table.to_csv(index=False, lineterminator="\n"))
        counts = self.summary().set_index("split").to_dict(orient="index")
        atomic_write_json(_meta_path(path), {
            "version": INDEX_VERSION, "name": self.name, "layout": self.layout,
            "root": str(self.root), "counts": counts, "meta": self.meta,
        })
        return path

    @classmethod
    def read_index(cls, path: str | Path, root: str | Path | None = None) -> ReIDDataset:
        """Read an index written by :meth:`write_index`; ``root`` overrides the recorded folder."""
        path = Path(path)
        meta_path = _meta_path(path)
        if not path.is_file() or not meta_path.is_file():
            raise DatasetError(
                f"{path}: dataset index (or its {meta_path.name}) not found; "
                f"create it with `hcm prepare NAME --root DIR --out {path}`, or fix dataset.index"
            )
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            table = pd.read_csv(path, dtype={"split": str, "path": str})
        except (ValueError, OSError) as exc:
            raise DatasetError(f"{path}: unreadable dataset index ({exc}); re-run `hcm prepare`") from None
        missing = {"split", *COLUMNS} - set(table.columns)
        if meta.get("version") != INDEX_VERSION or missing:
            raise DatasetError(
                f"{path}: index written by another version of hcm (missing {sorted(missing)}); "
                "re-run `hcm prepare`"
            )
        base = Path(root) if root is not None else Path(meta["root"])
        splits = {}
        for s in SPLITS:
            df = table[table["split"] == s].drop(columns="split").reset_index(drop=True)
            df["path"] = [str(base / p) for p in df["path"]]
            splits[s] = make_table(list(df[list(COLUMNS)].itertuples(index=False, name=None)))
        return cls(name=meta["name"], root=base, layout=meta["layout"], meta=meta.get("meta", {}), **splits)


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")
