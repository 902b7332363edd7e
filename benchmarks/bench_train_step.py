"""Training and extraction throughput of the real code path against the bare backbone.

Measured in one process, on the same batch shape and the same device:

* full HCM step: input (the image store + batched augmentation on the device, or with
  ``--set runtime.image_store=false`` the per-image loader) -> forward -> L_id + L_img ->
  backward -> optimiser step -> memory updates, i.e. ``Trainer._train_steps``;
* bare step: forward + backward + optimiser step of the same model on a batch that is
  already a tensor in memory;
* extraction: the run's feature extraction over the training images (store rows normalised on
  the device, or decode + resize + normalise per image) and batched inference, against bare
  inference on in-memory tensors.

Target (issue "HCM training"): the full step keeps at least 85% of the bare throughput;
extraction likewise. Run ``python benchmarks/bench_train_step.py [--recipe FILE]``.
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

from bare import (  # noqa: E402
    add_step_args,
    bare_inference,
    bare_train_steps,
    best_of,
    load_recipe,
    sync,
    synth_training,
)

from hcm.data.transforms import build_test_transform  # noqa: E402
from hcm.engine.trainer import Trainer  # noqa: E402
from hcm.eval import extract_features  # noqa: E402
from hcm.eval.extract import extract_store_features  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_step_args(ap, example="model.arch=resnet50")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_recipe(args, [f"optim.iters={args.iters}", *args.overrides])
        ds, splits, model, runtime = synth_training(cfg, args.train_ids, tmp)
        trainer = Trainer(cfg, Path(tmp) / "run", progress=False)
        ctx = trainer.make_context(model, splits, runtime)
        opt, cache = ctx.optimizer, ctx.cache
        labels = ds.train["pid"].to_numpy()
        paths = list(ds.train["path"])
        transform = build_test_transform(cfg.input)
        feats = extract_features(model, paths, transform, batch_size=cfg.eval.batch_size, device=runtime.device,
                                 progress=False)
        b, h, w = cfg.sampler.batch_size, cfg.input.height, cfg.input.width
        x = torch.randn(b, 3, h, w, device=runtime.device)

        xs = torch.randn(cfg.eval.batch_size, 3, h, w, device=runtime.device)

        def bare_steps() -> None:
            bare_train_steps(model, opt, x, args.iters, amp=runtime.amp)

        def full_steps() -> None:
            trainer._train_steps(0, ctx, feats, labels)
            sync(runtime.device)

        def bare_infer() -> None:
            bare_inference(model, xs, len(paths), amp=runtime.amp)

        def full_inference() -> None:
            if ctx.feeder is not None:  # runtime.image_store (default): rows of the decoded store
                extract_store_features(model, ctx.feeder, paths, batch_size=cfg.eval.batch_size, amp=runtime.amp,
                                       progress=False)
            else:
                extract_features(model, paths, transform, batch_size=cfg.eval.batch_size, device=runtime.device,
                                 amp=runtime.amp, progress=False, cache=cache)
            sync(runtime.device)

        n_train = args.iters * b
        t_bare, t_full = best_of(bare_steps, args.repeats), best_of(full_steps, args.repeats)
        t_ibare, t_ifull = best_of(bare_infer, args.repeats), best_of(full_inference, args.repeats)
        print(f"device {runtime.device}, AMP {runtime.amp}, {torch.get_num_threads()} threads, "
              f"input: {'image store + batched augmentation on the device' if ctx.feeder is not None else 'per-image'}"
              f"{', image cache' if cache is not None and ctx.feeder is None else ''}, "
              f"{cfg.model.arch} at {h}x{w}, batch {b} ({cfg.sampler.num_instances} per identity), "
              f"load average {os.getloadavg()[0]:.2f}")
        print(f"{'':<28}{'images/s':>10}{'bare images/s':>15}{'ratio':>8}")
        print(f"{'training step (full HCM)':<28}{n_train / t_full:>10.1f}{n_train / t_bare:>15.1f}"
              f"{t_bare / t_full:>8.2f}")
        print(f"{'feature extraction':<28}{len(paths) / t_ifull:>10.1f}{len(paths) / t_ibare:>15.1f}"
              f"{t_ibare / t_ifull:>8.2f}")
        print("target: ratio >= 0.85 for both (full step includes loader, losses, memory updates)")


if __name__ == "__main__":
    main()
