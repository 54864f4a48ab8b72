"""The per-slice metrics table of a volume against its references, and the command that writes it.

Each row has the scores of :func:`simulate.scores.compare_volumes` (SSIM and PSNR inside the field of view and
inside the object, one ``data_range`` per volume: the convention is stated there).

Two references. Every row scores the image against the normal-dose reference (the full-dose FBP, for a real scan the
only one there is); a simulated volume with ``--truth`` is also scored against its phantom, in the reconstructions'
units (:func:`read_truth`): columns ``ssim_truth``, ``psnr_truth``, ``ssim_object_truth``, ``psnr_object_truth``
(NaN without a truth). The full-dose FBP carries its own blur and aliasing, which the truth does not.

Every per-slice row of the command also carries the columns of :func:`analysis.quality.slice_quality`
(noise texture, resolution, pores found), after the columns above. With ``--phantom`` (the foam), the pore
geometry comes from the phantom (:func:`read_phantom_geometry`); without it the pore columns are measured
against the reference's own segmentation and the edge columns are NaN.
"""

from __future__ import annotations

import argparse
import csv
import logging

import numpy as np
from scipy import ndimage

from simulate.io import dataset_shape, has_dataset, read_array, read_attrs
from simulate.plumbing import InputError, atomic_path, circular_mask, cli
from simulate.scores import compare_volumes

__all__ = ["slice_indices", "read_slices", "read_phantom_geometry", "DIRECTIONS", "CEILINGS", "derive_metrics", "main"]

logger = logging.getLogger(__name__)

# Which way is better, for each per-slice metric a claim can be judged on (+1 higher, -1 lower). The noise texture has
# no better direction of its own (a smoothing denoiser shifts it low, a sharpening one high): it is judged as the
# distance of the image's NPS mean frequency from the reference's, nps_texture_error = |nps_freq_ratio - 1|
# (derive_metrics), lower is better.
DIRECTIONS = {"ssim": 1, "psnr": 1, "ssim_object": 1, "psnr_object": 1,
              "ssim_truth": 1, "psnr_truth": 1, "ssim_object_truth": 1, "psnr_object_truth": 1,
              "nps_texture_error": -1, "noise_rel": -1, "noise_power_ratio": -1, "frc_cutoff": 1, "edge_width": -1,
              "pore_detection": 1, "pore_detection_small": 1, "false_pores": -1, "psd_wasserstein": -1}
TRUTH_METRICS = ("ssim", "psnr", "ssim_object", "psnr_object")  # also scored against the phantom: <name>_truth
# Metrics with a cap: at it, two images cannot be told apart (the FRC cut-off is the last ring, Nyquist, when the
# correlation never falls below its threshold), so an equal score there is no evidence of equivalence.
CEILINGS = {"frc_cutoff": 0.5}
# Columns computed from others when a table is read: name -> (columns needed, function of the table)
DERIVED = {"nps_texture_error": (("nps_freq_ratio",), lambda t: (t["nps_freq_ratio"] - 1.0).abs())}


def derive_metrics(table):
    """The table with the :data:`DERIVED` columns added wherever their inputs are present.

    >>> import pandas as pd
    >>> derive_metrics(pd.DataFrame({"nps_freq_ratio": [0.8, 1.1]}))["nps_texture_error"].round(3).tolist()
    [0.2, 0.1]
    """
    table = table.copy()
    for name, (need, fn) in DERIVED.items():
        if all(col in table for col in need):
            table[name] = fn(table)
    return table


def read_truth(truth_path, reference_path, wanted, shape) -> np.ndarray | None:
    """A simulated volume's truth on the evaluated slices, in the reconstructions' units (attenuation per pixel).

    Two kinds of file hold one:

    - a phantom (``/phantom``, foam and the corpus): unit attenuation, each pixel the average of its supersampled
      area as a detector pixel integrates, times the reference's ``attenuation_scale``;
    - a raw scan this suite simulated (``/truth/volume``, the shale stand-in): the sample on the detector grid,
      already in attenuation per detector pixel (the volume its noise-free line integrals project), one slice per
      detector row; the reference's ``rows_start`` says which raw row its slice 0 is. A binned reference is refused
      (the truth is on the raw grid).

    A raw scan without ``/truth/volume`` is a measured one (a real TomoBank file): there is no truth, and None is
    returned, so the ``*_truth`` columns are NaN.
    """
    if has_dataset(truth_path, "/truth/volume") or has_dataset(truth_path, "/exchange/data"):
        return _read_scan_truth(truth_path, reference_path, wanted, shape)
    scale = read_attrs(reference_path).get("attenuation_scale")
    if scale is None:
        raise InputError(reference_path, "no attenuation_scale attribute: the truth cannot be put in its units")
    n = dataset_shape(truth_path, "/phantom", ndim=3)
    if tuple(n[1:]) != tuple(shape):
        raise InputError(truth_path, f"slice shape {tuple(n[1:])} differs from the reference's {tuple(shape)}")
    if max(wanted) >= n[0]:
        raise InputError(truth_path, f"{n[0]} slices, but slice {max(wanted)} is evaluated")
    phantom = read_array(truth_path, "/phantom", ndim=3, dtype_kind="f")
    return phantom[list(wanted)].astype(np.float64) * float(scale)


def _read_scan_truth(raw_path, reference_path, wanted, shape) -> np.ndarray | None:
    """:func:`read_truth` of a raw DXchange scan: its ``/truth/volume`` rows, or None for a measured scan."""
    if not has_dataset(raw_path, "/truth/volume"):
        if "synthetic" in str(read_attrs(raw_path).get("source", "")):
            raise InputError(raw_path, "a simulated scan without /truth/volume")
        logger.info("%s: a measured scan, no truth: the *_truth columns are NaN", raw_path)
        return None
    ref = read_attrs(reference_path)
    if int(ref.get("bin_factor", 1)) != 1:
        raise InputError(reference_path, f"binned {ref['bin_factor']}x: the truth of {raw_path} is on the raw grid")
    n = dataset_shape(raw_path, "/truth/volume", ndim=3)
    if tuple(n[1:]) != tuple(shape):
        raise InputError(raw_path, f"truth slice shape {tuple(n[1:])} differs from the reference's {tuple(shape)}")
    rows = [int(ref.get("rows_start", 0)) + int(k) for k in wanted]
    if max(rows) >= n[0] or min(rows) < 0:
        raise InputError(raw_path, f"{n[0]} truth rows, but row {max(rows)} is evaluated")
    truth = read_array(raw_path, "/truth/volume", ndim=3, dtype_kind="f")
    return truth[rows].astype(np.float64)


def slice_indices(path) -> np.ndarray:
    """A reconstruction file's ``/slices`` (detector rows of its slices), checked against ``/recon``."""
    idx = read_array(path, "/slices", ndim=1, dtype_kind="iu", dtype=np.int64)
    n = dataset_shape(path, "/recon", ndim=3)[0]
    if idx.shape[0] != n:
        raise InputError(path, f"{idx.shape[0]} slice indices for {n} slices")
    return idx


def read_slices(path, wanted, idx: np.ndarray | None = None, *, what: str = "evaluated") -> np.ndarray:
    """The slices ``wanted`` (detector rows) of a reconstruction, in that order, reading only those.

    ``idx`` is the file's :func:`slice_indices` when already known. NaN/Inf is checked in what is read.
    """
    idx = slice_indices(path) if idx is None else idx
    missing = sorted(set(wanted) - set(idx.tolist()))
    if missing:
        raise InputError(path, f"lacks {what} slices {missing[:5]}")
    pos = [int(np.flatnonzero(idx == s)[0]) for s in wanted]
    order = np.argsort(pos)
    picked = read_array(path, "/recon", ndim=3, dtype_kind="f", index=np.s_[sorted(pos)])
    out = np.empty_like(picked)
    out[order] = picked
    return out


def read_phantom_geometry(path, wanted, shape, *, fov) -> tuple[list, list]:
    """The true pores and the sample region of the evaluated slices, from a foam phantom file.

    Slice ``k`` of the volume (a detector row, as in a reconstruction's ``/slices``) is phantom slice ``k``;
    its pores are the circles in which the spheres of ``/pores`` (``x, y, z, r`` in pixels) cut the plane
    ``z = k + 0.5`` (:func:`simulate.phantoms.pore_sections`). The region where pores are looked for is the
    phantom's cylinder (``/phantom > 0.5``, holes filled) eroded by
    :data:`analysis.quality.PORE_MASK_ERODE` pixels, cut to ``fov``.

    Parameters
    ----------
    path : str or Path
        Phantom HDF5 (:mod:`simulate.phantoms`): ``/phantom`` (slices, rows, cols), ``/pores`` (n, 4).
    wanted : list of int
        Slice indices evaluated.
    shape : tuple of int
        ``(rows, cols)`` of the reconstructions; the phantom's slices must have it.
    fov : ndarray of bool, shape ``shape``
        Field of view.

    Returns
    -------
    circles : list of ndarray, shape (n, 3)
        ``x, y, r`` per evaluated slice (pixels from the slice centre, ``x`` along rows).
    masks : list of ndarray of bool
        The pore search region per evaluated slice.

    Raises
    ------
    InputError
        Missing or malformed ``/pores`` or ``/phantom``, a slice shape that differs from ``shape``, or an
        evaluated slice the phantom does not have.
    """
    from analysis.quality import pore_region
    from simulate.phantoms import pore_sections

    pores = read_array(path, "/pores", ndim=2, dtype_kind="f", dtype=np.float64)
    if pores.shape[1] != 4:
        raise InputError(path, f"dataset '/pores' has shape {pores.shape}, expected (n, 4): x, y, z, r")
    n_slices, *phantom_shape = dataset_shape(path, "/phantom", ndim=3)
    if tuple(phantom_shape) != tuple(shape):
        raise InputError(path, f"phantom slice shape {tuple(phantom_shape)} differs from the reconstructions' "
                               f"{tuple(shape)}")
    outside = sorted(k for k in wanted if not 0 <= k < n_slices)
    if outside:
        raise InputError(path, f"has {n_slices} slices; lacks evaluated slices {outside[:5]}")
    order = np.argsort(wanted)
    picked = read_array(path, "/phantom", ndim=3, dtype_kind="fiu", index=np.s_[sorted(wanted)])
    phantom = np.empty_like(picked)
    phantom[order] = picked
    circles = [pore_sections(pores, k + 0.5) for k in wanted]
    masks = [pore_region(ndimage.binary_fill_holes(sl > 0.5)) & fov for sl in phantom]
    return circles, masks


@cli
def main(argv=None):
    """``python -m analysis.metrics OUT.csv --reference REF.h5 [--phantom PHANTOM.h5] RECON.h5 [RECON.h5 ...]``"""
    from analysis.quality import quality_context, slice_quality
    from simulate.reconstruct import central_slices

    p = argparse.ArgumentParser(description="SSIM/PSNR in the field of view against a reference, and the quality "
                                            "columns of analysis.quality, per slice.")
    p.add_argument("out", help="CSV to write")
    p.add_argument("--reference", required=True)
    p.add_argument("--slices", type=int, default=4,
                   help="central slices of the reference evaluated (0: all; the workflow passes metrics.slices)")
    p.add_argument("--fov-margin", type=float, default=2.0)
    p.add_argument("--phantom", help="foam phantom HDF5 (/pores, /phantom): true pores for the edge and pore columns")
    p.add_argument("--truth", help="a simulated volume's truth: its phantom HDF5 (/phantom, unit attenuation on the "
                   "reconstruction grid, scaled by the reference's attenuation_scale) or the raw scan it was measured "
                   "from (/truth/volume, the shale stand-in); the *_truth columns score against it (NaN for a "
                   "measured scan, which has none)")
    p.add_argument("recons", nargs="+")
    args = p.parse_args(argv)

    ref_idx = slice_indices(args.reference)
    wanted = [int(s) for s in ref_idx[central_slices(len(ref_idx), args.slices)]]
    ref = read_slices(args.reference, wanted, ref_idx)  # only the evaluated slices are ever read
    fov = circular_mask(ref.shape, margin=args.fov_margin)
    circles, masks = [None] * len(wanted), [None] * len(wanted)
    if args.phantom:
        circles, masks = read_phantom_geometry(args.phantom, wanted, ref.shape[1:], fov=fov)
    contexts = [quality_context(ref[i], fov, circles=circles[i], object_mask=masks[i]) for i in range(len(wanted))]
    truth = read_truth(args.truth, args.reference, wanted, ref.shape[1:]) if args.truth else None
    rows = []
    for path in args.recons:
        if dataset_shape(path, "/recon")[1:] != ref.shape[1:]:
            raise InputError(path, f"slice shape {dataset_shape(path, '/recon')[1:]} differs from the "
                                   f"reference's {ref.shape[1:]}")
        rec = read_slices(path, wanted)
        attrs = read_attrs(path)
        against_truth = compare_volumes(rec, truth, fov_margin=args.fov_margin) if truth is not None else None
        for r in compare_volumes(rec, ref, fov_margin=args.fov_margin):
            t = against_truth[r["slice"]] if against_truth else {}
            rows.append({"dataset": attrs.get("dataset", ""), "source": attrs.get("source", ""),
                         "dose": attrs.get("dose", ""), "dose_mode": attrs.get("dose_mode", ""),
                         "dose_level": attrs.get("dose_level", ""), "method": attrs.get("method", ""),
                         "model": attrs.get("run", ""), "vgg_weights": attrs.get("vgg_weights", "n/a"),
                         "tuning": attrs.get("tuning", ""),
                         "backend": attrs.get("backend", ""), "seed": attrs.get("seed", ""),
                         "versions": attrs.get("versions", ""), "slice": int(wanted[r["slice"]]),
                         "ssim": r["ssim"], "psnr": r["psnr"], "ssim_object": r["ssim_object"],
                         "psnr_object": r["psnr_object"], "object_fraction": r["object_fraction"],
                         "data_range": r["data_range"],
                         "file": str(path),
                         **slice_quality(rec[r["slice"]], ref[r["slice"]], fov, context=contexts[r["slice"]]),
                         **{f"{m}_truth": t.get(m, float("nan")) for m in TRUTH_METRICS}})
    with atomic_path(args.out) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
