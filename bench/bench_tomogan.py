"""Benchmark of TomoGAN training: steps per second with and without each loss term.

Not a test: it measures and writes what it measured to a CSV (default ``results/bench/tomogan.csv``),
one row per measurement, with the device, the peak memory and the software versions. Run it with::

    python bench/bench_tomogan.py                       # CPU, or CUDA when present
    python bench/bench_tomogan.py --device cpu --patches 64 128
    python bench/bench_tomogan.py --threads 1 --patches 64 --precision fp32 bf16   # is bf16 worth it here?

Inference speed (execution variants against the matmul rate) is measured by ``analysis/inference_speed.py``.

Training is timed with :func:`tomogan_core.train.train_step` on random data (speed does not depend on
the values; the VGG19 weights are random for the same reason). Each figure is the median over
``--repeats`` timings after ``--warmup`` untimed steps. Peak memory is the process's maximum resident set
size so far (CPU) or ``torch.cuda.max_memory_allocated`` since the row's start (CUDA).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from analysis.inference_speed import median_seconds
from simulate.io import cpu_name, software_versions
from tomogan_core.data import PatchSampler, VolumePair
from tomogan_core.model import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
from tomogan_core.train import TrainConfig, resolve_device, train_step
from tomogan_core.vgg import load_vgg19

# loss sets timed: name -> TrainConfig overrides
VARIANTS = {
    "mse": dict(lambda_adv=0.0, lambda_vgg=0.0),
    "mse+adv (wgan-gp, itd=2)": dict(lambda_vgg=0.0),
    "mse+adv+vgg (vgg_grad)": dict(),
    "mse+adv+vgg (no vgg grad, as the release)": dict(vgg_grad=False),
}


def _peak_mb(device):
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def bench_training(device, patch, batch, depth, repeats, warmup, precision="fp32"):
    rng = np.random.default_rng(0)
    size = max(2 * patch, 64)
    vol = VolumePair(rng.normal(size=(depth + 4, size, size)).astype(np.float32),
                     rng.normal(size=(depth + 4, size, size)).astype(np.float32), "random")
    vgg, _ = load_vgg19("random-init")
    vgg = vgg.to(device)
    rows = []
    for name, overrides in VARIANTS.items():
        cfg = replace(TrainConfig(depth=depth, patch=patch, batch=batch, vgg_weights="random-init",
                                  precision=precision), **overrides)
        torch.manual_seed(0)
        gen = Generator(GeneratorConfig(in_slices=depth)).to(device)
        critic = Discriminator(DiscriminatorConfig(patch_size=patch)).to(device)
        opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr_g)
        opt_d = torch.optim.Adam(critic.parameters(), lr=cfg.lr_d)
        sampler = PatchSampler([vol], depth=depth, patch=patch, rng=np.random.default_rng(1))
        gp_rng = torch.Generator(device=device).manual_seed(2)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        seconds = median_seconds(lambda: train_step(cfg, gen, critic, opt_g, opt_d, sampler,
                                             vgg=vgg if cfg.lambda_vgg > 0 else None,
                                             vgg_input=lambda t: torch.sigmoid(t), gp_rng=gp_rng, device=device),
                          repeats, warmup, device)
        rows.append(dict(task="train step", variant=name, precision=precision, size=patch, batch=batch, depth=depth,
                         seconds=seconds, per_s=1 / seconds, ms=1000 * seconds, peak_mb=_peak_mb(device)))
        print(f"train  {name:<44} {precision} {batch}x{patch}^2  {1 / seconds:7.2f} steps/s  ({1000 * seconds:.0f} ms/step)")
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--patches", type=int, nargs="+", default=[64, 128], help="training crop sides")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--precision", nargs="+", choices=["fp32", "bf16"], default=["fp32"],
                   help="training precisions timed (TrainConfig.precision)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--out", default="results/bench/tomogan.csv")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    rows = []
    for patch in args.patches:
        for precision in args.precision:
            rows += bench_training(device, patch, args.batch, args.depth, args.repeats, args.warmup, precision)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    for row in rows:
        row.update(device=device.type, device_name=name, threads=torch.get_num_threads(), cores=os.cpu_count(),
                   versions=json.dumps(software_versions(), sort_keys=True))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(out, index=False)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
