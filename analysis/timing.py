"""Time per slice of every method of the study, in one process on one device.

FBP, TomoGAN, FBP+TomoGAN, SIRT at the paper's 400 iterations, and -- when their tuning files and model
are given -- SIRT, SIRT+TV, FBP+TV and FBP+BM3D with the parameters chosen on validation slices
(:mod:`analysis.tuning`) and Noise2Inverse (k sub-reconstructions by FBP, then k forward passes).

The paper's claim (one V100): FBP 40 ms + TomoGAN 30 ms = 70 ms per image, against SIRT with 400
iterations at 550 ms. This module measures the same comparison on the same slices of one low-dose
sinogram: each method is run once to warm up, then ``repeats`` times, and the median is kept. The
reconstruction backend is the study's (astra CPU or tomopy); TomoGAN runs on CUDA when it is available,
else on the CPU, and the device is written in every row. Each method's SSIM and PSNR against the
normal-dose reference (field of view, :mod:`analysis.metrics`) are written beside its time.

``python -m analysis.timing OUT.csv --proj P.h5 --reference REF.h5 --model model.pt --sirt-iter 400
[--tuning sirt.json sirt-tv.json fbp-tv.json fbp-bm3d.json] [--n2i-model n2i/model.pt]``
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from simulate.io import cpu_name, read_array, software_versions
from simulate.plumbing import InputError, cli, write_csv

__all__ = ["FBP_TOMOGAN", "Span", "sirt_label", "median_time", "time_methods", "main"]

logger = logging.getLogger(__name__)


FBP_TOMOGAN = "FBP+TomoGAN"  # the timing table's row of FBP followed by TomoGAN


def sirt_label(n_iter: int) -> str:
    """The timing table's row of plain SIRT at ``n_iter`` iterations (the paper's 400), e.g. ``SIRT (400 it.)``."""
    return f"SIRT ({n_iter} it.)"


@dataclass(frozen=True)
class Span:
    """Seconds of a timed step: the median of its repeats and the fastest and slowest repeat.

    Steps add up by parts (FBP + TomoGAN: medians add, and so do the fastest and the slowest), so that a
    speed-up's range can be bounded from the repeats (:mod:`analysis.claims`).
    """

    median: float
    low: float
    high: float

    def __add__(self, other):
        o = other if isinstance(other, Span) else Span(float(other), float(other), float(other))
        return Span(self.median + o.median, self.low + o.low, self.high + o.high)

    __radd__ = __add__

    def scaled(self, factor: float) -> "Span":
        return Span(self.median * factor, self.low * factor, self.high * factor)


def median_time(fn, repeats: int):
    """Run ``fn`` once to warm up, then ``repeats`` times; return (:class:`Span` of seconds, last result)."""
    result = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return Span(statistics.median(times), min(times), max(times)), result


def time_methods(sino, theta, reference, model, *, center, sirt_iter: int, repeats: int, backend: str,
                 threads: int, tuned: dict | None = None, n2i_model=None, fov_margin: float = 2.0,
                 margin: int = 0) -> list:
    """Time every method per slice on ``sino`` ``(angles, slices, detector)``.

    The first and last ``margin`` slices only feed TomoGAN its neighbours (d // 2 each side): FBP is
    timed on all slices and divided by their number; the other methods and every score use the inner
    slices, which ``reference`` matches. ``tuned`` maps a classical method to its tuning result
    (:func:`analysis.tuning.tune`); ``n2i_model`` is a Noise2Inverse model (a path).

    The classical methods are run through their registry entries (:data:`analysis.classical.METHODS`), in
    its order, each at its tuned value on its input: the projections, the FBP (whose time is added to
    theirs) or another method's result (``sirt-tv``: the tuned SIRT, whose time is added; skipped without it).
    """
    import torch

    from analysis.classical import METHODS, Projections, format_value
    from simulate.reconstruct import fbp, sirt
    from tomogan_core.infer import denoise

    tuned = tuned or {}
    n_all = sino.shape[1]
    inner = list(range(margin, n_all - margin))
    n = len(inner)
    size = reference.shape[-1]
    sync = torch.cuda.synchronize if model.device.type == "cuda" else (lambda: None)

    def run_fbp():
        return fbp(sino, theta, center=center, size=size, backend=backend, threads=threads)

    def run_tomogan(volume):
        out = denoise(volume, model, indices=inner, repeat_edges=True)
        sync()
        return out

    t_fbp, rec_fbp_all = median_time(run_fbp, repeats)
    t_fbp = t_fbp.scaled(n / n_all)  # per slice, times the inner slices
    rec_fbp = rec_fbp_all[inner]
    t_gan, rec_gan = median_time(lambda: run_tomogan(rec_fbp_all), repeats)
    t_sirt, rec_sirt = median_time(lambda: sirt(sino[:, inner], theta, n_iter=sirt_iter, center=center, size=size,
                                                backend=backend, threads=threads), max(1, repeats // 3))
    results = [("FBP", t_fbp, rec_fbp, "cpu", ""), ("TomoGAN", t_gan, rec_gan, model.device.type, ""),
               (FBP_TOMOGAN, t_fbp + t_gan, rec_gan, f"cpu+{model.device.type}", ""),
               (sirt_label(sirt_iter), t_sirt, rec_sirt, "cpu", "paper's iteration count")]
    few = max(1, repeats // 3)  # the slow ones
    # input kind -> (seconds it took, a function that makes it); the projections are sliced inside the timing
    inputs = {"projections": (Span(0.0, 0.0, 0.0), lambda: Projections(sino[:, inner], theta, center, size)),
              "fbp": (t_fbp, lambda: rec_fbp)}
    values = {}
    for name, method in METHODS.items():
        if name not in tuned:
            continue
        missing = [m for m in (method.input, *method.needs) if m not in inputs]
        if missing:
            logger.warning("%s is not timed: it starts from %s, which has no tuning file", name, ", ".join(missing))
            continue
        t_in, make_input = inputs[method.input]
        values[name] = method.value_type(tuned[name]["value"])
        t_m, rec_m = median_time(lambda: method.apply(make_input(), values[name], backend=backend, threads=threads),
                                 few)
        inputs[name] = (t_in + t_m, lambda rec=rec_m: rec)  # what a method that starts from this one works on
        row = method.timing_name.format(label=method.label, value=format_value(values[name]),
                                        **{need: format_value(values[need]) for need in method.needs})
        results.append((row, t_in + t_m, rec_m, "cpu", f"{method.parameter}={format_value(values[name])}"))
    if n2i_model is not None:
        results.append(_time_n2i(n2i_model, sino, theta, inner, model.device, sync, center=center, backend=backend,
                                 threads=threads, repeats=few))
    return _score_rows(results, reference, n, fov_margin=fov_margin)


def _time_n2i(n2i_model, sino, theta, inner, device, sync, *, center, backend, threads, repeats) -> tuple:
    """Noise2Inverse's row of :func:`time_methods`: its k subset FBPs and the model on them, timed together."""
    from tomogan_core.infer import load_any
    from tomogan_core.noise2inverse import denoise_n2i, model_provenance, subset_reconstructions

    k = int(model_provenance(n2i_model).get("k", 4))
    n2i = load_any(n2i_model, device=str(device))

    def run_n2i():
        subsets = subset_reconstructions(sino, theta, k=k, center=center, backend=backend, threads=threads)
        out = denoise_n2i(subsets, n2i, indices=inner)
        sync()
        return out
    t_n, rec_n = median_time(run_n2i, repeats)
    return ("Noise2Inverse", t_n, rec_n, f"cpu+{device.type}", f"k={k}")


def _score_rows(results, reference, n: int, *, fov_margin: float) -> list:
    """One table row per timed method: its time per slice (median and range) and its scores against ``reference``."""
    from simulate.scores import compare_volumes

    rows = []
    for name, span, rec, device, setting in results:
        scores = compare_volumes(rec, reference, fov_margin=fov_margin)
        seconds = span.median
        rows.append({"method": name, "ms_per_slice": 1000 * seconds / n, "seconds": seconds, "slices": n,
                     "ms_per_slice_min": 1000 * span.low / n, "ms_per_slice_max": 1000 * span.high / n,
                     "ssim": float(np.mean([s["ssim"] for s in scores])),
                     "psnr": float(np.mean([s["psnr"] for s in scores])),
                     "ssim_object": float(np.nanmean([s["ssim_object"] for s in scores])),
                     "psnr_object": float(np.nanmean([s["psnr_object"] for s in scores])),
                     "device": device, "setting": setting})
        logger.info("%-26s %9.1f ms/slice  SSIM %.3f", name, 1000 * seconds / n, rows[-1]["ssim"])
    return rows


@cli
def main(argv=None):
    import torch

    from simulate.acquire import read_projections
    from simulate.reconstruct import central_slices, resolve_backend
    from tomogan_core.infer import load_any

    p = argparse.ArgumentParser(description="Time FBP, TomoGAN, SIRT and SIRT+TV per slice, in one process.")
    p.add_argument("out", help="CSV to write")
    p.add_argument("--proj", required=True, help="low-dose projections (DXchange layout)")
    p.add_argument("--reference", required=True, help="normal-dose reconstruction (/recon, /slices)")
    p.add_argument("--model", required=True, help="TomoGAN model (model.pt or served .pt)")
    p.add_argument("--slices", type=int, default=4, help="central slices timed")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--sirt-iter", type=int, default=400)
    p.add_argument("--tuning", nargs="*", default=[], help="tuning JSONs of the classical methods (analysis.tuning)")
    p.add_argument("--n2i-model", help="a Noise2Inverse model.pt, timed from the projections on")
    p.add_argument("--backend", default="auto")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--fov-margin", type=float, default=2.0)
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    data, theta, attrs = read_projections(args.proj)
    ref = read_array(args.reference, "/recon", ndim=3)
    ref_idx = read_array(args.reference, "/slices", ndim=1, dtype_kind="iu", dtype=np.int64)
    model = load_any(args.model, device=args.device)
    idx = central_slices(data.shape[1], args.slices)
    half = model.depth // 2
    lo, hi = max(int(idx[0]) - half, 0), min(int(idx[-1]) + half + 1, data.shape[1])
    if idx[0] - lo != hi - 1 - idx[-1]:  # keep the margin symmetric at a volume's end
        m = min(idx[0] - lo, hi - 1 - idx[-1])
        lo, hi = int(idx[0]) - m, int(idx[-1]) + m + 1
    missing = sorted(set(idx) - set(ref_idx))
    if missing:
        raise InputError(args.reference, f"lacks slices {missing[:5]} of the timed ones")
    reference = ref[[int(np.flatnonzero(ref_idx == i)[0]) for i in idx]]
    backend = resolve_backend(args.backend)
    center = float(attrs.get("center", data.shape[-1] / 2))
    tuned = {}
    for path in args.tuning:
        try:
            result = json.loads(Path(path).read_text())
            tuned[result["method"]] = result
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(path, f"not a readable tuning file: {exc}") from None
    rows = time_methods(data[:, lo:hi, :], theta, reference, model, center=center, sirt_iter=args.sirt_iter,
                        repeats=args.repeats, backend=backend, threads=args.threads, tuned=tuned,
                        n2i_model=args.n2i_model, fov_margin=args.fov_margin, margin=int(idx[0]) - lo)
    host = cpu_name()
    gpu = torch.cuda.get_device_name(model.device) if model.device.type == "cuda" else ""
    for row in rows:
        row.update(dataset=attrs.get("dataset", ""), dose=attrs.get("dose", ""), backend=backend,
                   threads=args.threads, host=host, gpu=gpu, repeats=args.repeats, model=str(args.model),
                   vgg_weights=model.info.get("vgg_weights", ""), versions=json.dumps(software_versions()))
    write_csv(pd.DataFrame(rows), args.out)


if __name__ == "__main__":
    main()
