"""Contact sheet: identities x cameras grid, blank where an identity is unseen; the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from hcm.cli import main
from hcm.data.synthetic import contact_sheet

BLANK = (226, 226, 222)


def _blank_pixels(png: Path) -> int:
    with Image.open(png) as im:
        return int((np.asarray(im.convert("RGB")) == BLANK).all(axis=2).sum())


def test_grid_has_a_blank_cell_exactly_where_an_identity_is_unseen(generated: dict[str, Path], tmp_path: Path) -> None:
    files = sorted((generated["synth-market"] / "bounding_box_train").glob("*.jpg"))[:5]
    # identity 1 in cameras 1-3; identity 2 in cameras 1 and 3 only
    table = pd.DataFrame({"path": [str(f) for f in files], "pid": [1, 1, 1, 2, 2], "camid": [0, 1, 2, 0, 2]})
    out = contact_sheet(table, tmp_path / "sheet.png", n_ids=2, scale=2)
    cell = 16 * 2 * 32 * 2
    assert _blank_pixels(out) == cell
    full = contact_sheet(table[table["pid"] == 1], tmp_path / "full.png", n_ids=1, scale=2)
    assert _blank_pixels(full) < cell // 4
    with Image.open(out) as a, Image.open(full) as b:
        assert a.height > b.height and a.width == b.width


def test_sheet_of_a_generated_folder_shows_its_cameras(generated: dict[str, Path], tmp_path: Path) -> None:
    out = contact_sheet(generated["synth-duke"], tmp_path / "duke.png", n_ids=4, scale=4)
    narrow = contact_sheet(generated["synth-duke"], tmp_path / "duke3.png", n_ids=4, scale=4, cameras=[1, 2, 3])
    with Image.open(out) as a, Image.open(narrow) as b:
        assert a.width > b.width


def test_cli_writes_the_png(generated: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cli.png"
    rc = main(["contact-sheet", "synth-veri", "--root", str(generated["synth-veri"].parent), "--out", str(out),
               "--ids", "3"])
    assert rc == 0
    with Image.open(out) as im:
        assert im.format == "PNG" and im.width > 100
