"""How close TomoGAN's inference comes to the hardware: generator GFLOP/s against matmul GFLOP/s.

One process measures, on the same device and threads:

1. the fp32 (and bf16) **matmul rate**: the median time of ``torch.mm`` on two n x n matrices, as
   ``2 n^3`` FLOPs -- the most a dense kernel reaches here;
2. the **generator's rate** in several execution variants (:data:`VARIANTS`): plain eager ``no_grad``,
   ``inference_mode``, channels-last memory format, ``torch.compile``, bfloat16 -- each at the batch
   sizes asked, on random input of ``size`` x ``size`` (speed does not depend on the values). FLOPs of a
   forward pass are counted by PyTorch's ``FlopCounterMode`` (convolutions and matmuls; 2 per
   multiply-add), so ``GFLOP/s = FLOPs / median time`` and ``fraction = GFLOP/s / matmul GFLOP/s``;
3. with a trained model and its validation slices, the **SSIM change** each variant causes on those
   slices (field of view, :mod:`analysis.metrics`) against the plain fp32 output: a reduced precision is
   only acceptable below 1e-3.

Everything goes to one CSV (one row per variant and batch) that ``fig_timing`` and the README read::

    python -m analysis.inference_speed OUT.csv --size 512 --depth 3 --batch 1 4 \\
        [--model model.pt --val-input LOW.h5 --val-reference REF.h5 --val-slices N]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from simulate.io import cpu_name, software_versions
from simulate.plumbing import InputError, cli, write_csv
from tomogan_core.train.config import TrainConfig

__all__ = ["Variant", "VARIANTS", "median_seconds", "matmul_gflops", "prepare", "ssim_changes", "measure", "render",
           "main"]

logger = logging.getLogger(__name__)

SSIM_TOLERANCE = 1e-3  # the largest validation-SSIM change a faster variant may cause


@dataclass(frozen=True)
class Variant:
    """One way of running the generator's forward pass."""

    name: str
    inference_mode: bool = False  # torch.inference_mode instead of torch.no_grad
    channels_last: bool = False  # NHWC activations and weights (oneDNN's preferred layout on CPUs)
    compile: bool = False  # torch.compile (inductor; needs a C++ compiler on CPU)
    bf16: bool = False  # bfloat16 autocast


VARIANTS = [
    Variant("eager fp32"),
    Variant("inference_mode", inference_mode=True),
    Variant("channels_last", inference_mode=True, channels_last=True),
    Variant("channels_last + compile", inference_mode=True, channels_last=True, compile=True),
    Variant("channels_last + bf16", inference_mode=True, channels_last=True, bf16=True),
]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def median_seconds(fn, repeats: int, warmup: int, device: torch.device) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` untimed ones (CUDA synchronised)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_gflops(device: torch.device, *, n: int = 2048, dtype=torch.float32, repeats: int = 5) -> float:
    """GFLOP/s of ``torch.mm`` on two n x n matrices (2 n^3 FLOPs), median of ``repeats`` after a warm-up."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    seconds = median_seconds(lambda: torch.mm(a, b), repeats, 2, device)
    return 2.0 * n ** 3 / seconds / 1e9


def prepare(generator: torch.nn.Module, variant: Variant):
    """A function ``x -> y`` running ``generator`` (eval mode, not modified) as ``variant`` says.

    The input ``x`` is (B, d, H, W) float32 with H, W multiples of 8; the output (B, 1, H, W) float32.
    """
    import copy

    model = copy.deepcopy(generator).eval()
    if variant.channels_last:
        model = model.to(memory_format=torch.channels_last)
    call = torch.compile(model) if variant.compile else model
    device_type = next(model.parameters()).device.type
    grad_off = torch.inference_mode if variant.inference_mode else torch.no_grad

    def forward(x: torch.Tensor) -> torch.Tensor:
        with grad_off(), torch.autocast(device_type, dtype=torch.bfloat16, enabled=variant.bf16):
            if variant.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            return call(x).float()

    return forward


def _validation_stacks(val_input, val_reference, val_rows, depth):
    """(n, d, H, W) neighbour stacks of the validation slices and their (n, H, W) references, reading only the
    slices from d // 2 before the first to d // 2 after the last (edges repeated as in training)."""
    from analysis.metrics import read_slices, slice_indices
    from tomogan_core.data import stack_neighbours

    idx = slice_indices(val_input)
    missing = sorted(set(val_rows) - set(idx.tolist()))
    if missing:
        raise InputError(val_input, f"lacks validation slices {missing[:5]}")
    pos = [int(np.flatnonzero(idx == r)[0]) for r in val_rows]
    lo, hi = max(min(pos) - depth // 2, 0), min(max(pos) + depth // 2 + 1, len(idx))
    block = read_slices(val_input, [int(r) for r in idx[lo:hi]], idx, what="validation")
    stacks = np.stack([stack_neighbours(block, p - lo, depth) for p in pos])
    return stacks.astype(np.float32), read_slices(val_reference, val_rows, what="validation")


def ssim_changes(model_path, val_input, val_reference, val_rows, variants, *, device="cpu") -> dict:
    """Per variant: (mean validation SSIM, largest per-slice |SSIM change| against plain fp32).

    The trained model's own normalisation is applied around each variant's forward pass, as
    :func:`tomogan_core.infer.load_any` does.
    """
    from simulate.scores import compare_volumes
    from tomogan_core.model import pad_to_multiple
    from tomogan_core.train import load_model

    generator, norm, _ = load_model(model_path, device=device)
    stacks, reference = _validation_stacks(val_input, val_reference, val_rows, generator.cfg.in_slices)
    x = (torch.from_numpy(stacks).to(device) - norm.offset) / norm.scale
    x, h, w = pad_to_multiple(x, generator.size_multiple)
    out = {}
    for v in variants:
        y = prepare(generator, v)(x)[:, 0, :h, :w] * norm.scale + norm.offset
        out[v.name] = np.array([r["ssim"] for r in compare_volumes(y.cpu().numpy(), reference)])
    base = out[variants[0].name]
    return {name: (float(s.mean()), float(np.abs(s - base).max())) for name, s in out.items()}


def measure(*, size: int, depth: int, batches, variants=VARIANTS, repeats: int = 5, warmup: int = 2,
            device: str = "cpu", ssim: dict | None = None) -> pd.DataFrame:
    """One row per (variant, batch): ms per slice, GFLOP/s and its fraction of the matmul rate."""
    from tomogan_core.model import Generator, GeneratorConfig, generator_flops

    dev = torch.device(device)
    fp32 = matmul_gflops(dev, repeats=repeats)
    bf16 = matmul_gflops(dev, dtype=torch.bfloat16, repeats=repeats)
    logger.info("matmul: fp32 %.1f GFLOP/s, bf16 %.1f GFLOP/s", fp32, bf16)
    flops = generator_flops(depth, size)
    torch.manual_seed(0)
    generator = Generator(GeneratorConfig(in_slices=depth)).to(dev).eval()
    rows = []
    for v in variants:
        forward = prepare(generator, v)
        for b in batches:
            x = torch.randn(b, depth, size, size, device=dev)
            try:
                seconds = median_seconds(lambda: forward(x), repeats, warmup, dev)
            except Exception as exc:  # e.g. torch.compile without a working compiler: say so, go on
                logger.warning("%s, batch %d: %s", v.name, b, str(exc).splitlines()[0])
                seconds = float("nan")
            gflops = b * flops / seconds / 1e9
            mean_ssim, change = (ssim or {}).get(v.name, (float("nan"), float("nan")))
            rows.append({"variant": v.name, "size": size, "depth": depth, "batch": b,
                         "ms_per_slice": 1000 * seconds / b, "gflop_per_slice": flops / 1e9, "gflops": gflops,
                         "matmul_gflops_fp32": fp32, "matmul_gflops_bf16": bf16, "fraction_of_fp32_matmul": gflops / fp32,
                         "val_ssim": mean_ssim, "val_ssim_change": change,
                         "ssim_ok": bool(change < SSIM_TOLERANCE) if np.isfinite(change) else None})
            logger.info("%-26s batch %d: %7.1f ms/slice, %6.1f GFLOP/s = %.2f of fp32 matmul", v.name, b,
                        1000 * seconds / b, gflops, gflops / fp32)
    df = pd.DataFrame(rows)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else cpu_name()
    return df.assign(device=dev.type.upper(), device_name=name, threads=torch.get_num_threads(),
                     cores=os.cpu_count(), versions=json.dumps(software_versions(), sort_keys=True))


def render(df: pd.DataFrame) -> str:
    """The CSV as the README's Markdown: one row per variant and batch, with the matmul rates above it."""
    first = df.iloc[0]
    head = (f"Generator d = {int(first['depth'])} on {int(first['size'])}² slices, {first['device']} "
            f"({first['device_name']}, {int(first['threads'])} threads); fp32 matmul {first['matmul_gflops_fp32']:.0f} "
            f"GFLOP/s, bf16 matmul {first['matmul_gflops_bf16']:.0f} GFLOP/s, measured in the same process.\n\n")
    table = df[["variant", "batch", "ms_per_slice", "gflops", "fraction_of_fp32_matmul", "val_ssim_change"]].rename(
        columns={"ms_per_slice": "ms/slice", "gflops": "GFLOP/s", "fraction_of_fp32_matmul": "÷ fp32 matmul",
                 "val_ssim_change": "validation SSIM change"})
    return head + table.to_markdown(index=False, floatfmt=("", "", ".1f", ".1f", ".2f", ".1e")) + "\n"


@cli
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", help="CSV to write")
    p.add_argument("--size", type=int, default=512, help="slice side (default %(default)s)")
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--batch", type=int, nargs="+", default=[1, 4], help="slices per forward pass")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--no-compile", action="store_true", help="leave out the torch.compile variant")
    p.add_argument("--model", help="a trained model.pt, for the SSIM change on its validation slices")
    p.add_argument("--val-input", help="low-dose reconstruction holding the validation slices")
    p.add_argument("--val-reference", help="its normal-dose reference")
    p.add_argument("--val-slices", type=int, default=TrainConfig.val_slices,
                   help="central validation slices scored, as training scores them (default %(default)s)")
    p.add_argument("--held-out-fraction", type=float, help="validation at the training volume's held-out end")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int)
    args = p.parse_args(argv)
    from analysis.tuning import validation_rows
    from tomogan_core.train import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = str(resolve_device(args.device))
    variants = [v for v in VARIANTS if not (v.compile and args.no_compile)]
    ssim = None
    if args.model:
        if not (args.val_input and args.val_reference):
            p.error("--model needs --val-input and --val-reference")
        rows = validation_rows(args.val_reference, val_slices=args.val_slices, depth=args.depth,
                               held_out_fraction=args.held_out_fraction)
        ssim = ssim_changes(args.model, args.val_input, args.val_reference, rows, variants, device=device)
    df = measure(size=args.size, depth=args.depth, batches=args.batch, variants=variants, repeats=args.repeats,
                 warmup=args.warmup, device=device, ssim=ssim)
    write_csv(df, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    main()
