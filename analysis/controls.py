"""A positive control for the claims: a trained model's output, blurred until it is worse by a known SSIM.

Each volume given (each seed's output) gets its own blur: ``sigma`` is bisected until that volume's mean
field-of-view SSIM (as :func:`simulate.scores.compare_volumes` scores it) drops by ``target_drop``, so that every
copy is worse by a known amount -- one blur for all would not be, since a little blur denoises a noisier output
and raises its SSIM. The copies are scored like any other method (``tomogan-degraded``). The SSIM is taken against what the
claims are decided by: the simulated volume's truth with ``--truth`` (as :func:`analysis.metrics.read_truth` reads
it), else the normal-dose reference; a drop known in one is not known in the other. Why: docs/claims.md,
"Controls".
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
from scipy import ndimage

from analysis.metrics import read_slices, read_truth, slice_indices
from simulate.io import dataset_shape, read_attrs, write_arrays
from simulate.plumbing import InputError, circular_mask, cli, write_json
from simulate.scores import masked_ssim, reference_range

__all__ = ["mean_ssim", "degrade", "calibrate_blur", "main"]

METHOD = "tomogan-degraded"
logger = logging.getLogger(__name__)


def mean_ssim(images, reference, fov_margin: float) -> float:
    """Mean over slices of the field-of-view SSIM, as :func:`simulate.scores.compare_volumes` scores each slice.

    ``images`` and ``reference`` are ``(slices, rows, cols)``; the data range is the reference's, over the stack.
    """
    reference = np.asarray(reference, dtype=np.float64)
    mask = circular_mask(reference.shape, margin=fov_margin)
    data_range = reference_range(reference, mask)
    return float(np.mean([masked_ssim(im, ref, mask, data_range=data_range) for im, ref in zip(images, reference)]))


def degrade(images, sigma: float) -> np.ndarray:
    """``images`` (``(slices, rows, cols)``) blurred within each slice by a Gaussian of ``sigma`` pixels.

    The dtype is kept; ``sigma`` 0 returns the images unchanged.

    >>> img = np.zeros((1, 5, 5), np.float32); img[0, 2, 2] = 1
    >>> out = degrade(img, 1.0)
    >>> out.dtype, round(float(out.sum()), 4), bool(np.array_equal(degrade(img, 0.0), img))
    (dtype('float32'), 1.0, True)
    """
    return ndimage.gaussian_filter(np.asarray(images), (0, float(sigma), float(sigma)))


def _calibrate(images, reference, fov_margin, target_drop, *, max_sigma=8.0, rtol=0.02, max_iter=60) -> dict:
    """:func:`calibrate_blur`, returning ``sigma`` with the SSIM before and after and the drop achieved."""
    if not target_drop >= 0:
        raise ValueError(f"the target SSIM drop must be >= 0, got {target_drop}")
    baseline = mean_ssim(images, reference, fov_margin)
    tol = rtol * target_drop

    def result(sigma, ssim):
        return {"sigma": float(sigma), "ssim_before": baseline, "ssim_after": ssim, "achieved_drop": baseline - ssim}

    if target_drop <= tol:  # nothing to lose: no blur
        return result(0.0, baseline)
    lo, hi = 0.0, float(max_sigma)
    worst = mean_ssim(degrade(images, hi), reference, fov_margin)
    if baseline - worst < target_drop - tol:
        raise ValueError(f"a blur of sigma {hi:g} px lowers the mean SSIM by only {baseline - worst:.4f}, "
                         f"less than the target {target_drop:g}")
    best = result(hi, worst)
    for _ in range(max_iter):  # drop(lo) < target <= drop(hi): a crossing lies between, even where drop dips
        mid = 0.5 * (lo + hi)
        best = result(mid, mean_ssim(degrade(images, mid), reference, fov_margin))
        if abs(best["achieved_drop"] - target_drop) <= tol:
            break
        lo, hi = (mid, hi) if best["achieved_drop"] < target_drop else (lo, mid)
    return best


def calibrate_blur(images, reference, fov_margin: float, target_drop: float, *, max_sigma: float = 8.0,
                   rtol: float = 0.02, max_iter: int = 60) -> float:
    """The blur ``sigma`` in pixels (:func:`degrade`) that lowers the mean field-of-view SSIM of ``images`` by
    ``target_drop`` (0 gives sigma 0), within ``rtol * target_drop``.

    ``images`` and ``reference`` are the evaluated slices ``(slices, rows, cols)`` of a volume and of the
    normal-dose reference; ``fov_margin`` is the metrics' ``--fov-margin``. Deterministic: at most ``max_iter``
    bisection steps on ``[0, max_sigma]``.

    Raises
    ------
    ValueError
        A negative target, or one that even ``max_sigma`` does not reach.
    """
    return _calibrate(images, reference, fov_margin, target_drop, max_sigma=max_sigma, rtol=rtol,
                      max_iter=max_iter)["sigma"]


@cli
def main(argv=None):
    """``python -m analysis.controls OUT_DIR --reference REF.h5 --target-drop 0.02 ENHANCED.h5 [ENHANCED.h5 ...]``"""
    from simulate.reconstruct import central_slices

    p = argparse.ArgumentParser(description="Positive control: blur each enhanced volume until its mean "
                                            "field-of-view SSIM drops by --target-drop; write the evaluated slices.")
    p.add_argument("out_dir", help="folder for OUT_DIR/<input stem>.h5 and OUT_DIR/control.json")
    p.add_argument("--reference", required=True)
    p.add_argument("--truth", help="calibrate against this simulated volume's truth (its phantom, or the shale "
                                   "stand-in's raw file), as analysis.metrics --truth reads it, not the reference")
    p.add_argument("--slices", type=int, default=4,
                   help="central slices of the reference evaluated (0: all; the workflow passes metrics.slices)")
    p.add_argument("--fov-margin", type=float, default=2.0)
    p.add_argument("--target-drop", type=float, default=0.02, help="mean SSIM each volume loses")
    p.add_argument("--max-sigma", type=float, default=8.0, help="largest blur tried, pixels")
    p.add_argument("--rtol", type=float, default=0.02, help="tolerance on the drop, as a fraction of it")
    p.add_argument("enhanced", nargs="+", help="enhanced volumes, each calibrated on its own")
    args = p.parse_args(argv)
    if not args.target_drop >= 0:
        raise InputError("--target-drop", f"must be >= 0, got {args.target_drop}")

    out_dir = Path(args.out_dir)
    ref_idx = slice_indices(args.reference)
    wanted = [int(s) for s in ref_idx[central_slices(len(ref_idx), args.slices)]]
    ref = read_slices(args.reference, wanted, ref_idx)
    against = ref
    if args.truth:
        against = read_truth(args.truth, args.reference, wanted, ref.shape[1:])
        if against is None:
            raise InputError(args.truth, "holds no truth to calibrate against (a measured scan)")
    outputs, volumes = {}, []
    for path in map(Path, args.enhanced):  # every input read and checked before anything is written
        shape = dataset_shape(path, "/recon", ndim=3)[1:]
        if shape != ref.shape[1:]:
            raise InputError(path, f"slice shape {shape} differs from the reference's {ref.shape[1:]}")
        out = out_dir / f"{path.stem}.h5"
        if out in outputs.values() or out.resolve() == path.resolve():
            raise InputError(path, f"its degraded copy {out} would overwrite "
                                   f"{'another copy' if out in outputs.values() else 'the input'}")
        outputs[path] = out
        volumes.append((read_slices(path, wanted), read_attrs(path)))

    calibrations = []
    for path, (images, attrs) in zip(outputs, volumes):  # each output its own blur: a known loss for every one
        try:
            cal = _calibrate(images, against, args.fov_margin, args.target_drop, max_sigma=args.max_sigma,
                             rtol=args.rtol)
        except ValueError as exc:
            raise InputError(path, str(exc)) from None
        calibrations.append(dict(cal, input=str(path), run=attrs.get("run") or str(path)))
        logger.info("%s: sigma %.4f px, mean SSIM %.4f -> %.4f (drop %.4f, target %g)", calibrations[-1]["run"],
                    cal["sigma"], cal["ssim_before"], cal["ssim_after"], cal["achieved_drop"], args.target_drop)
    written = []
    try:
        for (path, out), (images, attrs), cal in zip(outputs.items(), volumes, calibrations):
            attrs.update(method=METHOD, control="positive", blur_sigma=cal["sigma"], target_drop=args.target_drop,
                         achieved_drop=cal["achieved_drop"], calibrated_on=cal["run"], degraded_from=str(path))
            write_arrays(out, {"/recon": degrade(images, cal["sigma"]).astype(np.float32),
                               "/slices": np.asarray(wanted, dtype=np.int64)}, attrs)
            written.append(out)
        write_json(out_dir / "control.json", {
            "control": "positive", "method": METHOD, "degradation": "gaussian blur per slice, calibrated per input",
            "target_drop": args.target_drop, "rtol": args.rtol, "calibrations": calibrations,
            "reference": str(args.reference), "calibrated_against": "truth" if args.truth else "reference",
            "truth": str(args.truth or ""), "slices": wanted, "fov_margin": args.fov_margin,
            "inputs": [str(p) for p in outputs], "outputs": [str(o) for o in outputs.values()]})
    except BaseException:  # all or nothing: no copy without the control.json that describes it
        for out in written:
            out.unlink(missing_ok=True)
        raise
    return 0


if __name__ == "__main__":
    main()
