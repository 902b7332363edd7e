"""Time to generate the default synthetic presets (target: well under a minute each on 2 cores).

Reference, measured in the same run: writing the same number of JPEG files of the
same size with no rendering (noise images encoded at quality 80): the I/O floor.
Prints, per preset: files, wall seconds, CPU seconds (this process and its workers;
the machine may be shared, CPU time is the steadier number), files/s, the ratio to
the I/O floor and the ratio of wall time to the 60 s budget.

    python -m benchmarks.synthetic_generation [--presets synth-market synth-veri] [--workers 2]
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from hcm.data.synthetic import PRESETS, generate

BUDGET_S = 60.0


def io_floor(folder: Path, sizes: list[tuple[int, int]], seed: int = 0) -> float:
    """Seconds to encode and write one JPEG per (height, width) in ``sizes``."""
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for i, (h, w) in enumerate(sizes):
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=80)
        (folder / f"{i:06d}.jpg").write_bytes(buf.getvalue())
    return time.perf_counter() - start


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["synth-market", "synth-veri"], choices=sorted(PRESETS))
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(f"{'preset':16s} {'files':>6s} {'wall s':>7s} {'CPU s':>6s} {'files/s':>8s} {'x I/O floor':>11s} "
          f"{'x budget':>8s}")
    for name in args.presets:
        with tempfile.TemporaryDirectory() as tmp:
            start, cpu0 = time.perf_counter(), cpu_seconds()
            folder = generate(name, Path(tmp), progress=False, workers=args.workers)
            wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu0
            counts = json.loads((folder / "synth.json").read_text())["counts"]
            files = counts["files"]
            spec = PRESETS[name]
            n_veh = counts["identities_by_kind"]["vehicle"]
            share = n_veh / max(1, n_veh + counts["identities_by_kind"]["person"])
            sizes = [spec.vehicle_size if i < share * files else spec.person_size for i in range(files)]
            floor_dir = Path(tmp) / "floor"
            floor_dir.mkdir()
            floor = io_floor(floor_dir, sizes)
        print(f"{name:16s} {files:6d} {wall:7.1f} {cpu:6.1f} {files / wall:8.0f} {wall / floor:11.1f} "
              f"{wall / BUDGET_S:8.2f}")


if __name__ == "__main__":
    main()
