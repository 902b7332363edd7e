"""Contact sheet: a grid of images, one row per identity and one column per camera.

Works on a generated folder (read through its ``synth_images.csv``, so near-duplicate
pairs can be shown side by side and labelled with the attribute that differs) and on
any :class:`ReIDDataset` or table with ``path``, ``pid`` and ``camid`` columns (real
datasets included). Drawn with Pillow; written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFont

from hcm.data.dataset import ReIDDataset
from hcm.data.synthetic.generate import IDENTITIES_JSON, IMAGES_CSV, MANIFEST
from hcm.errors import DatasetError
from hcm.utils.io import atomic_path

Source = str | Path | ReIDDataset | pd.DataFrame


def _table(source: Source, split: str) -> tuple[pd.DataFrame, dict[int, str], str]:
    """(rows with path, pid, cam [1-based]), labels by pid, title."""
    if isinstance(source, ReIDDataset):
        df = source.split(split)
        return (pd.DataFrame({"path": df["path"], "pid": df["orig_pid"], "cam": df["camid"] + 1}), {},
                f"{source.name} ({split})")
    if isinstance(source, pd.DataFrame):
        cam = source["camid"] + 1 if "camid" in source else source["camera"]
        pid = source["orig_pid"] if "orig_pid" in source else source["pid"]
        return pd.DataFrame({"path": source["path"], "pid": pid, "cam": cam}), {}, split
    folder = Path(source)
    if not (folder / IMAGES_CSV).is_file():
        raise DatasetError(
            f"{folder}: not a generated synthetic dataset (no {IMAGES_CSV}); pass a dataset loaded with "
            "load_dataset(...) instead, or generate it with `hcm prepare NAME --root DIR`"
        )
    images = pd.read_csv(folder / IMAGES_CSV)
    want = {"train": ("train", "val"), "query": ("query",), "gallery": ("gallery",)}.get(split, (split,))
    images = images[images["split"].isin(want) & (images["quality"] == "normal")]
    labels: dict[int, str] = {}
    name = json.loads((folder / MANIFEST).read_text(encoding="utf-8")).get("name", folder.name)
    idents = json.loads((folder / IDENTITIES_JSON).read_text(encoding="utf-8"))
    by_key = {i["key"]: i for i in idents}
    key_of_pid = dict(zip(images["pid"], images["key"], strict=False))
    for pid, key in key_of_pid.items():
        ident = by_key[int(key)]
        twin = by_key.get(ident["twin"])
        if twin is not None and twin["pid"] in key_of_pid:
            labels[int(pid)] = f"{pid}  ~{twin['pid']}: {ident['changed']}"
    table = pd.DataFrame({"path": [str(folder / p) for p in images["path"]], "pid": images["pid"],
                          "cam": images["camera"]})
    return table, labels, f"{name} ({split})"


def _pick(table: pd.DataFrame, labels: dict[int, str], n_ids: int, rng: np.random.Generator) -> list[int]:
    """Identities seen by the most cameras; near-duplicate pairs (labelled) first, next to each other."""
    n_cams = table.groupby("pid")["cam"].nunique().sort_values(ascending=False, kind="stable")
    n_cams = n_cams[n_cams.index >= 1]
    chosen: list[int] = []
    pairs = [p for p in labels if p in n_cams.index]
    for p in sorted(pairs, key=lambda p: -n_cams[p]):
        twin = int(labels[p].split("~")[1].split(":")[0])
        if p not in chosen and twin not in chosen and len(chosen) + 2 <= max(2, n_ids // 2):
            chosen += [p, twin]
    top = [int(p) for p in n_cams.index if p not in chosen][: 3 * n_ids]
    rest = list(rng.permutation(top)) if top else []
    chosen += [int(p) for p in rest[: n_ids - len(chosen)]]
    return chosen[:n_ids]


def _wrap(parts: list[str], font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> list[str]:
    """Join ``parts`` with "; " into lines no wider than ``width`` pixels."""
    lines: list[str] = []
    for p in parts:
        if lines and font.getlength(lines[-1] + "; " + p) <= width:
            lines[-1] += "; " + p
        else:
            lines.append(p)
    return lines


def contact_sheet(source: Source, out_png: str | Path, n_ids: int = 8, *, split: str = "train",
                  cameras: list[int] | None = None, seed: int = 0, scale: int = 3, title: str | None = None) -> Path:
    """Write a PNG grid: rows = ``n_ids`` identities, columns = cameras; blank where an identity is unseen.

    ``source``: a generated dataset folder, a :class:`ReIDDataset`, or a table with
    ``path``, ``pid``/``orig_pid`` and ``camid`` (0-based) columns. ``cameras`` (1-based)
    restricts the columns; ``seed`` picks the identities and images.
    """
    from hcm.data.images import load_image  # imports torch: only when drawing

    table, labels, default_title = _table(source, split)
    if table.empty:
        raise DatasetError(f"contact sheet: no images in split {split!r} of {source}")
    rng = np.random.default_rng(seed)
    cams = sorted(int(c) for c in table["cam"].unique()) if cameras is None else list(cameras)
    pids = _pick(table, labels, n_ids, rng)
    cells: dict[tuple[int, int], Image.Image] = {}
    for pid in pids:
        rows = table[table["pid"] == pid].sort_values("path")
        for cam in cams:
            paths = rows[rows["cam"] == cam]["path"].tolist()
            if paths:
                cells[(pid, cam)] = load_image(paths[int(rng.integers(len(paths)))])
    cw = max((im.width for im in cells.values()), default=32) * scale
    ch = max((im.height for im in cells.values()), default=64) * scale
    font = ImageFont.load_default(size=max(11, ch // 14))
    small = ImageFont.load_default(size=max(10, ch // 18))
    gap = 4
    label_w = int(max([small.getlength(labels.get(p, str(p))) for p in pids] + [40]) + 12)
    head_h = int(font.size * 3.2)
    parts = ["rows: identities", "columns: cameras", "grey: identity not seen by that camera"]
    if labels:
        parts.append("~N: near-duplicate of identity N (differs in the named attribute)")
    W = label_w + len(cams) * (cw + gap) + gap
    W = max(W, int(max(small.getlength(p) for p in parts)) + 2 * gap)
    caption = _wrap(parts, small, W - 2 * gap)
    line_h = int(small.size * 1.3)
    H = head_h + len(pids) * (ch + gap) + gap + line_h * len(caption) + gap
    sheet = Image.new("RGB", (W, H), (250, 250, 248))
    d = ImageDraw.Draw(sheet)
    d.text((gap, gap), title or default_title, fill=(20, 20, 20), font=font)
    for j, cam in enumerate(cams):
        x = label_w + gap + j * (cw + gap)
        d.text((x + cw / 2, head_h - 4), f"cam {cam}", fill=(40, 40, 40), font=small, anchor="mb")
    for i, pid in enumerate(pids):
        y = head_h + i * (ch + gap)
        d.text((label_w - 6, y + ch / 2), labels.get(pid, f"id {pid}"), fill=(40, 40, 40), font=small, anchor="rm")
        for j, cam in enumerate(cams):
            x = label_w + gap + j * (cw + gap)
            im = cells.get((pid, cam))
            if im is None:
                d.rectangle([x, y, x + cw - 1, y + ch - 1], fill=(226, 226, 222))
                continue
            im = im.resize((im.width * scale, im.height * scale), Image.Resampling.BICUBIC)
            sheet.paste(im, (x + (cw - im.width) // 2, y + (ch - im.height) // 2))
    for k, line in enumerate(caption):
        d.text((gap, H - gap - line_h * (len(caption) - k)), line, fill=(90, 90, 90), font=small)
    out = Path(out_png)
    with atomic_path(out) as tmp:
        sheet.save(tmp, format="PNG")
    return out
