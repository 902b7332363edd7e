"""Cost of a training step and of feature extraction against ResNet width (``model.width``).

    python benchmarks/bench_width.py [--recipe FILE] [--widths 64 32 16] [--threads N]

For each width, in one process, on the recipe's batch shape and device: the
``ReIDModel`` of the recipe at that width (random initialisation) runs ``--iters``
training steps (forward, sum of the embedding, backward, Adam step; ``bare.py``) on a
batch already in memory, and eval-mode inference over ``--images`` images. Printed: time
per step, images/s of inference, parameters, and each width's speed-up against the first
width of ``--widths`` (torchvision's 64 by default) measured in the same run. The
synthetic recipe uses width 32 (docs/synthetic-benchmark.md, experiments 22-24).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bare import add_recipe_args, bare_inference, bare_train_steps, best_of, load_recipe  # noqa: E402

from hcm.engine.setup import setup_runtime  # noqa: E402
from hcm.models import build_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_recipe_args(ap, iters=5, iters_help="training steps per measurement")
    ap.add_argument("--widths", type=int, nargs="+", default=[64, 32, 16])
    ap.add_argument("--images", type=int, default=512, help="images per inference measurement")
    args = ap.parse_args()

    cfg = load_recipe(args)
    runtime = setup_runtime(cfg.runtime)
    b, h, w = cfg.sampler.batch_size, cfg.input.height, cfg.input.width
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(b, 3, h, w, generator=gen).to(runtime.device)
    xs = torch.randn(cfg.eval.batch_size, 3, h, w, generator=gen).to(runtime.device)

    print(f"device {runtime.device}, AMP {runtime.amp}, {torch.get_num_threads()} threads, "
          f"{cfg.model.arch} at {h}x{w}, batch {b}, load average {os.getloadavg()[0]:.2f}")
    print(f"{'width':>6}{'params M':>10}{'feat dim':>10}{'s/step':>9}{'step x':>8}{'infer img/s':>13}{'infer x':>9}")
    ref: tuple[float, float] | None = None
    for width in args.widths:
        model = build_model(cfg.model.model_copy(update={"width": width}), seed=0).to(runtime.device)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr)

        def steps(model=model, opt=opt) -> None:
            bare_train_steps(model, opt, x, args.iters, amp=runtime.amp)

        def infer(model=model) -> None:
            bare_inference(model, xs, args.images, amp=runtime.amp)

        t_step = best_of(steps, args.repeats) / args.iters
        t_inf = best_of(infer, args.repeats) / args.images
        ref = ref or (t_step, t_inf)
        n_params = sum(p.numel() for p in model.parameters()) / 1e6
        print(f"{width:>6}{n_params:>10.2f}{model.feat_dim:>10}{t_step:>9.3f}{ref[0] / t_step:>8.2f}"
              f"{1 / t_inf:>13.0f}{ref[1] / t_inf:>9.2f}")
    print(f"step x / infer x: speed-up against width {args.widths[0]} in this run")


if __name__ == "__main__":
    main()
