"""Image-quality metrics inside the reconstruction's field of view.

Convention, used everywhere in the study:

* SSIM and PSNR come from scikit-image;
* they are computed inside the circular field of view (:func:`simulate.reconstruct.circular_mask`,
  a rim margin left out), because astra fills the square's corners with values no
  method is responsible for;
* ``data_range`` is the normal-dose reference's range (max - min inside the field of
  view) over the whole evaluated volume -- one number per volume, shared by every
  method compared on it, never inferred from a dtype.

SSIM inside the mask is the mean of scikit-image's full SSIM map over masked pixels;
PSNR inside the mask is ``10 log10(data_range^2 / MSE)`` over masked pixels.
"""

from __future__ import annotations

import argparse
import csv
import logging
from pathlib import Path

import numpy as np
from skimage.metrics import structural_similarity

from simulate.io import InputError, cli, read_array, read_attrs
from simulate.reconstruct import circular_mask

__all__ = ["reference_range", "masked_ssim", "masked_psnr", "compare_volumes", "main"]

logger = logging.getLogger(__name__)


def _check_pair(image, reference):
    image = np.asarray(image, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if image.shape != reference.shape:
        raise ValueError(f"shape mismatch: image {image.shape} vs reference {reference.shape}")
    return image, reference


def reference_range(reference, mask) -> float:
    """``max - min`` of the reference inside ``mask`` (broadcast over slices)."""
    values = np.asarray(reference)[..., mask]
    rng = float(values.max() - values.min())
    if rng <= 0:
        raise ValueError("reference is constant inside the field of view")
    return rng


def masked_ssim(image, reference, mask, *, data_range: float) -> float:
    """Mean SSIM over the pixels of ``mask`` (one 2-D slice)."""
    image, reference = _check_pair(image, reference)
    _, ssim_map = structural_similarity(image, reference, data_range=data_range, full=True)
    return float(ssim_map[mask].mean())


def masked_psnr(image, reference, mask, *, data_range: float) -> float:
    """PSNR in dB over the pixels of ``mask``."""
    image, reference = _check_pair(image, reference)
    mse = float(np.mean((image[mask] - reference[mask]) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(data_range ** 2 / mse))


def compare_volumes(volume, reference, *, fov_margin: float = 2.0):
    """Per-slice SSIM and PSNR of ``volume`` against ``reference``, both ``(slices, rows, cols)``.

    Returns
    -------
    list of dict
        One ``{"slice", "ssim", "psnr"}`` per slice (``slice`` is the position in the stack).
    """
    volume, reference = _check_pair(volume, reference)
    mask = circular_mask(reference.shape, margin=fov_margin)
    data_range = reference_range(reference, mask)
    return [{"slice": i, "ssim": masked_ssim(volume[i], reference[i], mask, data_range=data_range),
             "psnr": masked_psnr(volume[i], reference[i], mask, data_range=data_range),
             "data_range": data_range}
            for i in range(volume.shape[0])]


def _read_recon(path):
    rec = read_array(path, "/recon", ndim=3, dtype_kind="f")
    idx = read_array(path, "/slices", ndim=1, dtype_kind="iu", dtype=np.int64)
    if idx.shape[0] != rec.shape[0]:
        raise InputError(path, f"{idx.shape[0]} slice indices for {rec.shape[0]} slices")
    return rec, idx, read_attrs(path)


@cli
def main(argv=None):
    """``python -m analysis.metrics OUT.csv --reference REF.h5 RECON.h5 [RECON.h5 ...]``"""
    from simulate.reconstruct import central_slices

    p = argparse.ArgumentParser(description="SSIM/PSNR in the field of view against a reference, per slice.")
    p.add_argument("out", help="CSV to write")
    p.add_argument("--reference", required=True)
    p.add_argument("--slices", type=int, default=8, help="central slices of the reference evaluated (0: all)")
    p.add_argument("--fov-margin", type=float, default=2.0)
    p.add_argument("recons", nargs="+")
    args = p.parse_args(argv)

    ref, ref_idx, _ = _read_recon(args.reference)
    wanted = ref_idx[central_slices(len(ref_idx), args.slices)]
    rows = []
    for path in args.recons:
        rec, idx, attrs = _read_recon(path)
        missing = sorted(set(wanted) - set(idx))
        if missing:
            raise InputError(path, f"lacks evaluated slices {missing[:5]}")
        if rec.shape[1:] != ref.shape[1:]:
            raise InputError(path, f"slice shape {rec.shape[1:]} differs from the reference's {ref.shape[1:]}")
        pick = [int(np.flatnonzero(idx == s)[0]) for s in wanted]
        pick_ref = [int(np.flatnonzero(ref_idx == s)[0]) for s in wanted]
        for r in compare_volumes(rec[pick], ref[pick_ref], fov_margin=args.fov_margin):
            rows.append({"dataset": attrs.get("dataset", ""), "source": attrs.get("source", ""),
                         "dose": attrs.get("dose", ""), "dose_mode": attrs.get("dose_mode", ""),
                         "dose_level": attrs.get("dose_level", ""), "method": attrs.get("method", ""),
                         "model": attrs.get("run", ""), "vgg_weights": attrs.get("vgg_weights", "n/a"),
                         "backend": attrs.get("backend", ""), "seed": attrs.get("seed", ""),
                         "versions": attrs.get("versions", ""), "slice": int(wanted[r["slice"]]),
                         "ssim": r["ssim"], "psnr": r["psnr"], "data_range": r["data_range"],
                         "file": str(path)})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(str(args.out) + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(args.out)


if __name__ == "__main__":
    main()
