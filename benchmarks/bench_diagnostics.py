"""Cost of the gradient-scale diagnostics (``runtime.diagnostics``) in the real training step.

Measured in one process, on the same model, data and batches: ``Trainer._train_steps`` (loader,
forward, L_id + L_img, backward, optimiser step, memory updates) with the diagnostics on (the
default: each loss term's gradient norm w.r.t. the embeddings, one ``torch.autograd.grad`` per
term through the loss only) against the same steps with them off. L_id's effective gradient
scale is computed either way (closed form from the logits).

Target (issue 19): the diagnostics keep at least 95% of the step throughput. Run
``python benchmarks/bench_diagnostics.py [--recipe FILE] [--set KEY=VALUE]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bare import add_step_args, best_of, load_recipe, sync, synth_training  # noqa: E402

from hcm.data.transforms import build_test_transform  # noqa: E402
from hcm.engine.trainer import Trainer  # noqa: E402
from hcm.eval import extract_features  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_step_args(ap, example="sampler.accum_steps=2")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        base = [f"optim.iters={args.iters}", *args.overrides]
        cfg_on = load_recipe(args, [*base, "runtime.diagnostics=true"])
        cfg_off = load_recipe(args, [*base, "runtime.diagnostics=false"])
        ds, splits, model, runtime = synth_training(cfg_on, args.train_ids, tmp)
        on = Trainer(cfg_on, Path(tmp) / "on", progress=False)
        off = Trainer(cfg_off, Path(tmp) / "off", progress=False)
        ctx = on.make_context(model, splits, runtime)  # one model, optimiser and loader for both
        labels = ds.train["pid"].to_numpy()
        feats = extract_features(model, list(ds.train["path"]), build_test_transform(cfg_on.input),
                                 batch_size=cfg_on.eval.batch_size, device=runtime.device, progress=False)

        def steps(trainer: Trainer) -> None:
            trainer._train_steps(0, ctx, feats, labels)
            sync(runtime.device)

        t_off = best_of(lambda: steps(off), args.repeats)
        t_on = best_of(lambda: steps(on), args.repeats)
        n = args.iters * cfg_on.sampler.batch_size
        print(f"device {runtime.device}, AMP {runtime.amp}, {torch.get_num_threads()} threads, "
              f"{cfg_on.model.arch} at {cfg_on.input.height}x{cfg_on.input.width}, batch {cfg_on.sampler.batch_size}, "
              f"accum {cfg_on.sampler.accum_steps}, load average {os.getloadavg()[0]:.2f}")
        print(f"{'training step':<28}{'images/s':>10}")
        print(f"{'  diagnostics off':<28}{n / t_off:>10.1f}")
        print(f"{'  diagnostics on (default)':<28}{n / t_on:>10.1f}")
        print(f"diagnostics throughput ratio: {t_off / t_on:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
