"""A short real-GPU check of training and evaluation, against the CPU in the same run.

    python benchmarks/cuda_check.py --out DIR [--dataset-dir results/synthetic/data/synth-market]
        [--weights results/synthetic/pretrain/synth-pretrain/checkpoint.pt] [--skip metrics,pretrain]

Needs a generated ``synth-market`` (``hcm prepare synth-market --root results/synthetic/data/synth-market``)
and the suite's pretrained checkpoint (``snakemake --cores all results/synthetic/pretrain/synth-pretrain/checkpoint.pt``);
the defaults are where the default workflow puts them. Every training or evaluation is a
fresh ``python -m hcm`` process with the workflow's recipe and overrides, as a train job of
the workflow is; only the device, AMP, TF32 and threads differ. Parts:

1. ``metrics``: re-ID metrics at MSMT17 test scale (11,659 x 82,161 random identity-like
   features, ``bench_eval.make_data``): the CUDA scoring path (torch sort and bins) against
   the CPU one (compiled kernel) on the *same* distance blocks, which must agree to 1e-9,
   then ``evaluate_features`` end to end on each device (distances computed there) with
   both times and their ratio.
2. ``untrained``: the pretrained checkpoint scored on the test split on the CPU, on CUDA in
   IEEE float32 (``runtime.amp=off``), in float32 with TF32 convolutions and matmuls
   (``runtime.tf32=on``, torch's default for convolutions) and with AMP.
3. ``train``: the ``hcm`` variant for each of ``--seeds`` (default 0) on the CPU (one thread,
   as in the suite) and in each of those CUDA settings (``--settings`` picks which).
4. ``repeat``: the first seed's CUDA AMP run again (are two CUDA runs bit-identical?), then
   once more killed (SIGKILL) after its first checkpoint and continued with ``--resume``,
   whose final weights and ``epochs.csv`` must equal the uninterrupted run's.
5. ``pretrain``: ``hcm pretrain`` with the suite's pretraining recipe (20 x 60 iterations)
   on CUDA with AMP, on ``synth-market``'s training labels, timed.

Writes ``DIR/cuda_check.json`` (every number) and ``DIR/cuda_check.md`` (the tables), and
prints the tables. A part that fails is recorded with its error and the others still run.
The CPU rows are the reference: on a CPU-only machine the CUDA rows are skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bare import REPO, sync  # noqa: E402
from bench_eval import make_data  # noqa: E402

from hcm.eval.distance import iter_distance_blocks  # noqa: E402
from hcm.eval.evaluate import evaluate_features  # noqa: E402
from hcm.eval.metrics import RankAccumulator, RankResult, distance_rows  # noqa: E402
from hcm.models import load_weights  # noqa: E402
from hcm.report.tables import render_markdown  # noqa: E402
from hcm.utils.io import atomic_write_json, atomic_write_text  # noqa: E402

RECIPE = REPO / "workflow/recipes/synth-small.yaml"
PRETRAIN_RECIPE = REPO / "workflow/recipes/synth-pretrain.yaml"
#: the per-epoch columns that are wall times (differ between any two runs)
TIMING_SUFFIX = "_time_s"
#: the device settings compared: label -> hcm --set overrides
SETTINGS = {
    "cpu": ["runtime.device=cpu", "runtime.threads=1"],
    "cuda fp32": ["runtime.device=cuda", "runtime.amp=off"],  # IEEE float32 (runtime.tf32 off)
    "cuda fp32 tf32": ["runtime.device=cuda", "runtime.amp=off", "runtime.tf32=on"],  # torch's default
    "cuda amp": ["runtime.device=cuda", "runtime.amp=auto"],
}


# ------------------------------------------------------------------------- metrics


def score_blocks(blocks: list[tuple[int, torch.Tensor]], qp: torch.Tensor, qc: torch.Tensor, gp: torch.Tensor,
                 gc: torch.Tensor, device: torch.device) -> tuple[RankResult, float]:
    """Score precomputed distance blocks with the accumulator of ``device``; result and seconds."""
    acc = RankAccumulator(gp, gc, device, 50)
    sync(device)
    t0 = time.perf_counter()
    for start, block in blocks:
        acc.add(block, qp[start:start + len(block)], qc[start:start + len(block)])
    res = acc.result()
    sync(device)
    return res, time.perf_counter() - t0


def max_difference(a: RankResult, b: RankResult) -> float:
    """Largest absolute difference of mAP, mINP and the CMC curve."""
    cmc = float((torch.as_tensor(a.cmc, dtype=torch.float64) - torch.as_tensor(b.cmc, dtype=torch.float64)).abs().max())
    return max(abs(a.mAP - b.mAP), abs(a.mINP - b.mINP), cmc)


def check_metrics(cuda: torch.device | None, max_queries: int) -> dict[str, Any]:
    qf, gf, qp, gp, qc, gc = make_data("msmt17", "identity", seed=0)
    qf, qp, qc = qf[:max_queries], qp[:max_queries], qc[:max_queries]
    qp_t, gp_t, qc_t, gc_t = (torch.as_tensor(x) for x in (qp, gp, qc, gc))
    out: dict[str, Any] = {"num_query": int(qf.shape[0]), "num_gallery": int(gf.shape[0])}
    cpu = torch.device("cpu")
    blocks = [(s, b.clone()) for s, b in iter_distance_blocks(qf, gf, "cosine", distance_rows(gf.shape[0]), cpu)]
    ref, out["cpu_scoring_s"] = score_blocks(blocks, qp_t, qc_t, gp_t, gc_t, cpu)
    out["mAP"], out["mINP"], out["rank1"] = ref.mAP, ref.mINP, ref.rank1
    t0 = time.perf_counter()
    e2e_cpu = evaluate_features(qf, gf, qp, gp, qc, gc, device=cpu, progress=False)
    out["cpu_e2e_s"] = time.perf_counter() - t0
    if cuda is None:
        return out
    res, out["cuda_scoring_s"] = score_blocks(blocks, qp_t, qc_t, gp_t, gc_t, cuda)  # includes transfers
    out["same_distances_max_diff"] = max_difference(ref, res)
    out["same_distances_agree_1e-9"] = out["same_distances_max_diff"] <= 1e-9
    del blocks
    evaluate_features(qf[:64], gf, qp[:64], gp, qc[:64], gc, device=cuda, progress=False)  # CUDA warm-up
    sync(cuda)
    t0 = time.perf_counter()
    e2e_cuda = evaluate_features(qf, gf, qp, gp, qc, gc, device=cuda, progress=False)
    sync(cuda)
    out["cuda_e2e_s"] = time.perf_counter() - t0
    out["e2e_max_diff"] = max_difference(e2e_cpu, e2e_cuda)
    out["e2e_ratio_cpu_over_cuda"] = out["cpu_e2e_s"] / out["cuda_e2e_s"]
    return out


# ------------------------------------------------------------------------- hcm runs


def dataset_sets(dataset_dir: Path) -> list[str]:
    """The --set overrides naming a prepared dataset folder (and its index) as the run's data."""
    return [f"dataset.name={dataset_dir.name}", f"dataset.root={dataset_dir}",
            f"dataset.index={dataset_dir / 'index.csv'}"]


def hcm_command(command: str, recipe: Path, out_dir: Path, sets: list[str], *extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "hcm", command, "--config", str(recipe), "--out-dir", str(out_dir),
           "--no-progress", *extra]
    for s in sets:
        cmd += ["--set", s]
    return cmd


def run_logged(cmd: list[str], log: Path, *, kill_when: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Run ``cmd`` with its output in ``log``; SIGKILL it once ``kill_when()`` holds. Return code and seconds."""
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with log.open("a") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=REPO)
        killed = False
        while proc.poll() is None:
            if kill_when is not None and not killed and kill_when():
                proc.send_signal(signal.SIGKILL)
                killed = True
            time.sleep(0.05)
    return {"rc": proc.returncode, "wall_s": round(time.perf_counter() - t0, 2), "killed": killed}


def read_run(run: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    metrics = run / "metrics.json"
    if metrics.is_file():
        m = json.loads(metrics.read_text())
        out.update({k: m.get(k) for k in ("mAP", "rank1", "mINP", "device")})
    summary = run / "train_summary.json"
    if summary.is_file():
        out["train_s"] = json.loads(summary.read_text()).get("wall_time_s")
    epochs = run / "epochs.csv"
    if epochs.is_file():
        hist = pd.read_csv(epochs)
        out["epochs"] = len(hist)
        for col in ("ari", "num_clusters"):
            if col in hist and len(hist):
                out[f"final_{col}"] = hist[col].iloc[-1]
    log = run.with_suffix(".stdout.log")
    if log.is_file():
        text = log.read_text(errors="replace")
        out["nondeterministic_warnings"] = text.count("does not have a deterministic implementation")
    return out


def weights_difference(a: Path, b: Path) -> dict[str, Any]:
    """Are two model files equal tensor for tensor; else the largest absolute difference."""
    sa, sb = load_weights(a)["model"], load_weights(b)["model"]
    equal = sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    diff = max(float((sa[k].double() - sb[k].double()).abs().max()) for k in sa if sa[k].is_floating_point())
    return {"bit_identical": equal, "max_abs_diff": diff}


def history_equal(a: Path, b: Path) -> bool:
    ha, hb = (pd.read_csv(p / "epochs.csv") for p in (a, b))
    keep = [c for c in ha.columns if not c.endswith(TIMING_SUFFIX)]
    return list(ha.columns) == list(hb.columns) and ha[keep].equals(hb[keep])


def train_run(work: Path, name: str, variant: str, setting: str, base: list[str], seed: int, *,
              kill_after_first_checkpoint: bool = False) -> dict[str, Any]:
    run = work / name
    sets = [*base, f"seed={seed}", f"variant={variant}", *SETTINGS[setting]]
    cmd = hcm_command("train", RECIPE, run, sets, "--resume", "--evaluate")
    log = run.with_suffix(".stdout.log")
    row: dict[str, Any] = {"run": name, "variant": variant, "setting": setting, "seed": seed}
    if kill_after_first_checkpoint:
        first = run_logged(cmd, log, kill_when=lambda: (run / "checkpoints" / "last.pt").is_file())
        row["killed_after_s"] = first["wall_s"]
        row["epochs_at_kill"] = len(pd.read_csv(run / "epochs.csv")) if (run / "epochs.csv").is_file() else 0
        if not first["killed"]:
            row["error"] = "the run finished before it could be killed"
    row.update(run_logged(cmd, log))
    row.update(read_run(run))
    return row


def check_runs(work: Path, base: list[str], settings: list[str], seeds: list[int], parts: set[str]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []

    def add(row: dict[str, Any]) -> None:
        rows.append(row)
        print_row(row)

    # the untrained model does not depend on the seed: one run per setting
    for variant, part, variant_seeds in (("untrained", "untrained", seeds[:1]), ("hcm", "train", seeds)):
        if part not in parts:
            continue
        for seed in variant_seeds:
            for setting in settings:
                add(train_run(work, run_name(variant, setting, seed), variant, setting, base, seed))
    checks: dict[str, Any] = {}
    if "repeat" in parts and "cuda amp" in settings:
        ref = work / run_name("hcm", "cuda amp", seeds[0])
        for suffix, kill in (("again", False), ("resumed", True)):
            name = f"{ref.name}-{suffix}"
            add(train_run(work, name, "hcm", "cuda amp", base, seeds[0], kill_after_first_checkpoint=kill))
            if (work / name / "model.pt").is_file() and (ref / "model.pt").is_file():
                checks[f"{name} vs {ref.name}"] = {**weights_difference(ref / "model.pt", work / name / "model.pt"),
                                                   "epochs_csv_equal": history_equal(ref, work / name)}
    return {"runs": rows, "repeatability": checks}


def run_name(variant: str, setting: str, seed: int) -> str:
    return f"{variant}-{setting.replace(' ', '-')}-seed{seed}"


def check_pretrain(work: Path, dataset_dir: Path) -> dict[str, Any]:
    run = work / "pretrain-cuda-amp"
    sets = [*dataset_sets(dataset_dir), "runtime.device=cuda"]
    row = run_logged(hcm_command("pretrain", PRETRAIN_RECIPE, run, sets), run.with_suffix(".stdout.log"))
    summary = run / "summary.json"
    if summary.is_file():
        row["summary"] = json.loads(summary.read_text())
    return row


def print_row(row: dict[str, Any]) -> None:
    print(json.dumps(row, default=str), flush=True)


# ------------------------------------------------------------------------- report


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# CUDA check ({report['device']}, torch {report['torch']})", ""]
    m = report.get("metrics")
    if isinstance(m, dict) and "error" not in m:
        rows = [[k, f"{v:.6g}" if isinstance(v, float) else str(v)] for k, v in m.items()]
        lines += ["## Metrics at MSMT17 scale", "", render_markdown(["quantity", "value"], rows), ""]
    runs = report.get("runs", {})
    if isinstance(runs, dict) and runs.get("runs"):
        cols = ["run", "setting", "seed", "rc", "wall_s", "train_s", "mAP", "rank1", "mINP", "final_ari",
                "nondeterministic_warnings"]
        body = [[cell(row.get(c)) for c in cols] for row in runs["runs"]]
        lines += ["## Runs (synth-market; one fresh process each)", "", render_markdown(cols, body), ""]
        for name, check in runs.get("repeatability", {}).items():
            lines.append(f"- {name}: {check}")
        lines.append("")
    if "pretrain" in report:
        lines += ["## Pretraining on CUDA", "", f"{report['pretrain']}", ""]
    errors = {k: v["error"] for k, v in report.items() if isinstance(v, dict) and "error" in v}
    if errors:
        lines += ["## Errors", "", *[f"- {k}: {v.splitlines()[-1]}" for k, v in errors.items()], ""]
    return "\n".join(lines)


def cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def guarded(name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    t0 = time.perf_counter()
    try:
        out = fn()
    except Exception:  # a report of every part, whatever breaks
        out = {"error": traceback.format_exc()}
        print(f"{name} failed:\n{out['error']}", file=sys.stderr, flush=True)
    out["part_s"] = round(time.perf_counter() - t0, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for cuda_check.json, cuda_check.md and the runs")
    ap.add_argument("--dataset-dir", type=Path, default=Path("results/synthetic/data/synth-market"))
    ap.add_argument("--weights", type=Path, default=Path("results/synthetic/pretrain/synth-pretrain/checkpoint.pt"))
    ap.add_argument("--skip", default="",
                    help="comma-separated parts to skip: metrics, untrained, train, repeat, pretrain")
    ap.add_argument("--settings", default=",".join(SETTINGS),
                    help=f"comma-separated device settings of the runs (default: all of {', '.join(SETTINGS)})")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds of the hcm runs")
    ap.add_argument("--max-queries", type=int, default=11659, help="metrics: queries used (all by default)")
    args = ap.parse_args()
    parts = {"metrics", "untrained", "train", "repeat", "pretrain"} - set(filter(None, args.skip.split(",")))
    settings = [x.strip() for x in args.settings.split(",") if x.strip()]
    unknown = set(settings) - set(SETTINGS)
    if unknown:
        sys.exit(f"--settings: unknown {sorted(unknown)}; choose from {list(SETTINGS)}")
    for path, what in ((args.dataset_dir / "index.csv", "hcm prepare synth-market --root DIR"),
                       (args.weights, "the pretraining of the default workflow")):
        if not path.is_file():
            sys.exit(f"{path} not found: create it with {what}, or point --dataset-dir/--weights at it")
    cuda = torch.cuda.is_available()
    if not cuda:
        settings = [x for x in settings if not x.startswith("cuda")]
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if cuda else "cpu only", "torch": torch.__version__,
        "cpu_count": os.cpu_count(), "parts": sorted(parts),
    }
    print(f"cuda check on {report['device']}, torch {report['torch']}, parts {sorted(parts)}", flush=True)
    work = args.out / "runs"
    if "metrics" in parts:
        report["metrics"] = guarded("metrics", lambda: check_metrics(torch.device("cuda") if cuda else None,
                                                                      args.max_queries))
        print_row({"metrics": report["metrics"]})
        save(report, args.out)
    if parts & {"untrained", "train"}:
        base = [*dataset_sets(args.dataset_dir), f"model.weights={args.weights}"]
        report["runs"] = guarded("runs", lambda: check_runs(work, base, settings, args.seeds, parts))
        save(report, args.out)
    if "pretrain" in parts and cuda:
        report["pretrain"] = guarded("pretrain", lambda: check_pretrain(work, args.dataset_dir))
        print_row({"pretrain": report["pretrain"]})
    print(save(report, args.out))


def save(report: dict[str, Any], out: Path) -> str:
    """Write what the report holds so far (a later part may be cut short); the Markdown text."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "cuda_check.json", report)
    text = markdown(report)
    atomic_write_text(out / "cuda_check.md", text + "\n")
    return text


if __name__ == "__main__":
    main()
