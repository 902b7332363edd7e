"""The paper recipe end to end at Market-1501's size: per-phase times, images/s beside the bare rates.

Steps (each timed):

1. generate ``synth-market`` with Market-1501's split sizes (751 training identities with
   12-22 images each, about 12,900 images; 750 test identities with up to 5 queries and
   16-26 gallery images each, about 3,300 queries and 15,800 gallery images), using every
   CPU core; ``--data DIR`` reuses a set generated before;
2. optionally (``--pretrain-epochs N``, default 8) pretrain the recipe's backbone (ResNet-50,
   256x128) on ``synth-pretrain`` with ``hcm pretrain``, so that its features cluster
   (the GPU machines have no internet, so no ImageNet weights); 0 = random weights, whose
   degenerate features the clustering refuses (cluster.pair_budget), which is reported;
3. ``--epochs`` (default 1) epochs of ``workflow/recipes/paper-market1501.yaml`` (HCM) with
   the image store: the store build, feature extraction, clustering by stage, the training
   steps; then the test evaluation (query + gallery extraction and ranking);
4. the bare rates of the same model (:mod:`bare`): train steps and inference on in-memory
   batches; peak GPU memory; GPU utilisation sampled every second (``nvidia-smi``).

Prints the table and writes it as Markdown (``--report``, default
``paper_scale_report.md``). Sized for a short GPU check: about 5-8 minutes on one H200
(docs/gpu-check.md). ``--tiny`` runs the same steps at toy sizes on the CPU (a test of the
script, its numbers mean nothing).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bare import REPO, bare_inference, bare_train_steps, sync  # noqa: E402

from hcm.cluster.summary import ClusterSummary  # noqa: E402
from hcm.config import load_pretrain_config, load_train_config  # noqa: E402
from hcm.data import load_dataset  # noqa: E402
from hcm.data.synthetic.generate import generate  # noqa: E402
from hcm.engine.evaluation import evaluate_model  # noqa: E402
from hcm.engine.pretrain import pretrain  # noqa: E402
from hcm.engine.trainer import Trainer  # noqa: E402
from hcm.errors import HCMError  # noqa: E402
from hcm.models import build_model  # noqa: E402
from hcm.utils.io import atomic_write_text  # noqa: E402

#: Market-1501's split sizes, approximately (published: 12,936 / 3,368 / 15,913)
MARKET_SIZED = {"train_ids": 751, "train_images": [12, 22], "test_ids": 750, "queries_per_id": 5,
                "cams_per_id": [2, 6], "gallery_images": [16, 26]}
TINY = {"train_ids": 12, "train_images": [4, 6], "test_ids": 8, "queries_per_id": 1, "gallery_images": [3, 3],
        "person_size": [32, 16]}
TINY_PRETRAIN = {"person_size": [32, 16], "vehicle_size": [32, 32], "train_ids": 12, "test_ids": 4}


class GpuSampler:
    """``nvidia-smi`` utilisation / memory samples every ``interval`` seconds, in a thread."""

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self.samples: list[tuple[float, int, int]] = []  # (time, utilisation %, memory MiB)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.available = torch.cuda.is_available() and shutil.which("nvidia-smi") is not None

    def __enter__(self) -> GpuSampler:
        if self.available:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        index = torch.cuda.current_device()
        while not self._stop.wait(self.interval):
            try:
                out = subprocess.run(
                    ["nvidia-smi", f"--id={index}", "--query-gpu=utilization.gpu,memory.used",
                     "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=5, check=True)
                util, mem = (int(float(v)) for v in out.stdout.strip().split(","))
                self.samples.append((time.time(), util, mem))
            except (subprocess.SubprocessError, ValueError):
                continue

    def between(self, t0: float, t1: float) -> list[int]:
        return [u for t, u, _ in self.samples if t0 <= t < t1]


class PhaseLog(logging.Handler):
    """Keeps the clustering summaries the trainer logs (their stage times) and log times."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.cluster: list[ClusterSummary] = []
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "hcm.engine.trainer" and isinstance(record.args, tuple):
            self.cluster += [a for a in record.args if isinstance(a, ClusterSummary)]
        if record.name.startswith("hcm.cluster"):
            self.lines.append(f"{time.strftime('%H:%M:%S', time.localtime(record.created))} {record.getMessage()}")


def generated_index(name: str, data: Path, overrides: dict[str, Any], workers: int) -> Path:
    """Generate ``name`` under ``data`` (every core; reused when present) and write its index."""
    generate(name, data, overrides=overrides, workers=workers)
    ds = load_dataset(name, data, synth_overrides=overrides)
    return ds.write_index(data / f"{name}.index.csv")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help="folder for the generated sets (default: a temporary one)")
    ap.add_argument("--recipe", default=str(REPO / "workflow/recipes/paper-market1501.yaml"))
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--iters", type=int, default=None, help="optimiser steps per epoch (default: the recipe's 200)")
    ap.add_argument("--pretrain-epochs", type=int, default=8, help="0: no pretraining (random weights)")
    ap.add_argument("--pretrain-iters", type=int, default=60)
    ap.add_argument("--bare-iters", type=int, default=20)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--report", type=Path, default=Path("paper_scale_report.md"))
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--tiny", action="store_true", help="toy sizes (CPU test of the script)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    phase_log = PhaseLog()
    logging.getLogger().addHandler(phase_log)
    tmp = tempfile.TemporaryDirectory()
    data = args.data or Path(tmp.name) / "data"
    work = Path(tmp.name) / "work"
    times: dict[str, float] = {}
    notes: list[str] = []

    tiny_sets = ["model.arch=resnet18", "input.height=32", "input.width=16", "sampler.batch_size=16",
                 "sampler.num_instances=4", "cluster.k1=6", "cluster.k2=2", "cluster.min_samples=2",
                 "eval.batch_size=64", "runtime.threads=2"] if args.tiny else []
    with GpuSampler() as gpu:
        t0 = time.perf_counter()
        workers = os.cpu_count() or 1
        market_index = generated_index("synth-market", data, TINY if args.tiny else MARKET_SIZED, workers)
        times["generate synth-market"] = time.perf_counter() - t0

        weights = "none"
        if args.pretrain_epochs > 0:
            t0 = time.perf_counter()
            pretrain_index = generated_index("synth-pretrain", data, TINY_PRETRAIN if args.tiny else {}, workers)
            pcfg = load_pretrain_config(REPO / "workflow/recipes/synth-pretrain.yaml", [
                f"dataset.index={pretrain_index}", f"model.arch={'resnet18' if args.tiny else 'resnet50'}", "model.width=64",
                "model.weights=none", f"input.height={32 if args.tiny else 256}",
                f"input.width={16 if args.tiny else 128}", f"optim.epochs={args.pretrain_epochs}",
                f"optim.iters={args.pretrain_iters}", f"optim.step_size={max(1, args.pretrain_epochs - 2)}",
                f"runtime.device={args.device}", "runtime.amp=auto",
                *(["sampler.batch_size=16", "runtime.threads=2"] if args.tiny else []),
            ])
            summary = pretrain(pcfg, work / "pretrain", progress=False)
            weights = str(work / "pretrain" / "checkpoint.pt")
            times["pretrain (synth-pretrain)"] = time.perf_counter() - t0
            notes.append(f"pretrained {args.pretrain_epochs} x {args.pretrain_iters} iterations on synth-pretrain: "
                         f"source mAP {100 * summary.get('source_mAP', float('nan')):.1f}%")

        cfg = load_train_config(args.recipe, [
            "dataset.name=synth-market", f"dataset.index={market_index}", f"model.weights={weights}",
            f"optim.epochs={args.epochs}", "eval.every=0", f"runtime.device={args.device}",
            *([f"optim.iters={args.iters}"] if args.iters else []), *tiny_sets, *args.overrides,
        ])
        trainer = Trainer(cfg, work / "run", progress=False)
        t_run = time.time()
        t0 = time.perf_counter()
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        failed = None
        try:
            trainer.run()
        except HCMError as exc:
            failed = str(exc)
            notes.append(f"training stopped: {failed}")
        times["training run (store + epochs)"] = time.perf_counter() - t0
        t_run_end = time.time()
        history = pd.read_csv(work / "run" / "epochs.csv") if (work / "run" / "epochs.csv").is_file() else None

        # the test evaluation, timed on its own (query + gallery from the store)
        from hcm.engine.setup import build_feeder, load_splits, setup_runtime

        runtime = setup_runtime(cfg.runtime)
        splits = load_splits(cfg.dataset, cfg.seed)
        model = build_model(cfg.model, seed=cfg.seed).to(runtime.device)
        if (work / "run" / "model.pt").is_file():
            from hcm.models import load_weights

            model.load_state_dict(load_weights(work / "run" / "model.pt")["model"])
        feeder = build_feeder(cfg, splits, runtime, progress=False)
        t0 = time.perf_counter()
        res = evaluate_model(model, splits.query, splits.gallery, cfg.input, cfg.eval, runtime,
                             workers=cfg.runtime.workers, feeder=feeder, desc="test")
        sync(runtime.device)
        times["test evaluation"] = time.perf_counter() - t0
        n_test = len(splits.query) + len(splits.gallery)
        peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")

        # bare rates of the same model on in-memory batches
        b, h, w = cfg.sampler.batch_size, cfg.input.height, cfg.input.width
        opt = torch.optim.Adam(model.parameters(), lr=1e-6)
        x = torch.randn(b, 3, h, w, device=runtime.device)
        t0 = time.perf_counter()
        bare_train_steps(model, opt, x, 2, amp=runtime.amp)
        t0 = time.perf_counter()
        bare_train_steps(model, opt, x, args.bare_iters, amp=runtime.amp)
        bare_train = args.bare_iters * b / (time.perf_counter() - t0)
        xs = torch.randn(cfg.eval.batch_size, 3, h, w, device=runtime.device)
        n_inf = 20 * cfg.eval.batch_size
        bare_inference(model, xs, cfg.eval.batch_size, amp=runtime.amp)
        t0 = time.perf_counter()
        bare_inference(model, xs, n_inf, amp=runtime.amp)
        bare_infer = n_inf / (time.perf_counter() - t0)

    n_train = len(splits.train)
    rows = [("generate synth-market", times["generate synth-market"], None, None)]
    if "pretrain (synth-pretrain)" in times:
        rows.append(("pretrain (synth-pretrain)", times["pretrain (synth-pretrain)"], None, None))
    if history is not None:
        for _, r in history.iterrows():
            e = int(r["epoch"])
            rows.append((f"epoch {e}: extraction ({n_train:,} images)", r["extract_time_s"],
                         n_train / r["extract_time_s"], bare_infer))
            rows.append((f"epoch {e}: clustering", r["cluster_time_s"], None, None))
            if e - 1 < len(phase_log.cluster):
                for stage, sec in phase_log.cluster[e - 1].times.items():
                    rows.append((f"epoch {e}:   clustering stage {stage}", sec, None, None))
            if isinstance(r.get("train_time_s"), float) and r["train_time_s"] == r["train_time_s"]:
                imgs = cfg.optim.iters * b
                rows.append((f"epoch {e}: {cfg.optim.iters} training steps x {b}", r["train_time_s"],
                             imgs / r["train_time_s"], bare_train))
    rows.append((f"test evaluation ({n_test:,} images)", times["test evaluation"], n_test / times["test evaluation"],
                 bare_infer))
    rows.append(("training run in all (incl. store build)", times["training run (store + epochs)"], None, None))
    table = pd.DataFrame(rows, columns=["phase", "seconds", "images/s", "bare images/s"])
    table["ratio"] = table["images/s"] / table["bare images/s"]
    util = gpu.between(t_run, t_run_end)
    lines = [
        "# Paper-scale check: paper recipe on a Market-sized synthetic set", "",
        f"- machine: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU'}, "
        f"{os.cpu_count()} CPU cores, torch {torch.__version__}, device {runtime.device}, AMP {runtime.amp}",
        f"- data: {market_index} ({n_train:,} train / {len(splits.query):,} query / {len(splits.gallery):,} gallery)",
        f"- recipe: {args.recipe} ({cfg.model.arch}, {cfg.input.height}x{cfg.input.width}, batch {b}), "
        f"{args.epochs} epoch(s) x {cfg.optim.iters} iterations, image store "
        f"{'on' if cfg.runtime.image_store else 'off'}",
        f"- peak GPU memory: {peak:.1f} GiB" if peak == peak else "- peak GPU memory: n/a (no GPU)",
        (f"- GPU utilisation during the training run: {len(util)} samples, mean {sum(util) / len(util):.0f}%, "
         f"{sum(u == 0 for u in util)} at 0%" if util else "- GPU utilisation: no samples (no GPU or no nvidia-smi)"),
        f"- test mAP after the run: {100 * res.mAP:.1f}%, rank-1 {100 * res.cmc[0]:.1f}%",
        *[f"- {n}" for n in notes], "",
        table.round(2).astype(object).where(table.notna(), "").to_markdown(index=False), "",
        "## Clustering log", "", "```", *phase_log.lines, "```", "",
        "## GPU utilisation samples (%)", "", " ".join(str(u) for u in util) or "none", "",
    ]
    text = "\n".join(lines)
    print(text)
    atomic_write_text(args.report, text)
    print(f"report: {args.report}")
    tmp.cleanup()
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
