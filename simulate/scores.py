"""Scores of an image against a reference, and which pixels they count.

The convention every score of the study follows (training's validation, the tables, the claims, the ranking):

* SSIM (scikit-image's full map) and PSNR are taken inside the circular field of view
  (:func:`simulate.plumbing.circular_mask`, a rim margin left out), because astra fills the square's corners with
  values no method is responsible for;
* the ``*_object`` scores are taken inside the sample as well (:func:`object_mask`), so that a method is not
  rewarded for flattening the empty background around it;
* ``data_range`` is the reference's range inside the field of view over the whole evaluated volume
  (:func:`reference_range`): one number per volume, shared by every method compared on it.

:mod:`analysis.metrics` adds the truth, the quality columns and the command line.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.metrics import structural_similarity

from simulate.plumbing import circular_mask

__all__ = ["OBJECT_FRACTION", "OBJECT_PERCENTILE", "OBJECT_SIGMA", "OBJECT_DILATE", "reference_range",
           "object_threshold", "object_mask", "masked_ssim", "masked_psnr", "compare_volumes"]

# object mask settings (see object_mask)
OBJECT_FRACTION = 0.5     # threshold = this fraction of the reference's high percentile
OBJECT_PERCENTILE = 99.0
OBJECT_SIGMA = 2.0        # Gaussian smoothing before thresholding, pixels
OBJECT_DILATE = 3         # dilation after hole filling, pixels


def reference_range(reference, mask) -> float:
    """``max - min`` of the reference inside ``mask`` (broadcast over slices)."""
    values = np.asarray(reference)[..., mask]
    rng = float(values.max() - values.min())
    if rng <= 0:
        raise ValueError("reference is constant inside the field of view")
    return rng


def object_threshold(reference, fov, *, fraction: float = OBJECT_FRACTION,
                     percentile: float = OBJECT_PERCENTILE, sigma: float = OBJECT_SIGMA) -> float:
    """The object threshold of a reference volume: ``fraction`` x its smoothed ``percentile`` in the field of view.

    One number per volume (``reference`` is ``(slices, rows, cols)`` or one slice), so that every slice
    and every method of a volume is judged on the same region.
    """
    reference = np.asarray(reference, dtype=np.float64)
    sigmas = (0,) * (reference.ndim - 2) + (sigma, sigma)
    smooth = ndimage.gaussian_filter(reference, sigmas)
    return float(fraction * np.percentile(smooth[..., fov], percentile))


def object_mask(reference, fov, *, threshold: float | None = None, sigma: float = OBJECT_SIGMA,
                dilate: int = OBJECT_DILATE) -> np.ndarray:
    """Pixels of one slice that belong to the sample, from the normal-dose reference.

    The reference is smoothed (Gaussian, ``sigma`` pixels) and thresholded (default
    :func:`object_threshold` of this slice: half its 99th percentile); holes are filled (pores and
    cracks inside the sample are part of it) and the result dilated by ``dilate`` pixels (so edges
    count), then cut to the field of view ``fov``.

    Parameters
    ----------
    reference : ndarray, shape (rows, cols)
    fov : ndarray of bool, shape (rows, cols)
        The field-of-view mask (:func:`simulate.reconstruct.circular_mask`).
    threshold : float, optional
        Attenuation threshold; pass the volume's :func:`object_threshold` to share it across slices.

    Returns
    -------
    ndarray of bool, shape (rows, cols)

    Raises
    ------
    ValueError
        When no pixel of the field of view is above the threshold (an empty slice has no object).

    Examples
    --------
    >>> yy, xx = np.mgrid[:64, :64]
    >>> disc = ((yy - 32) ** 2 + (xx - 32) ** 2 < 12 ** 2).astype(float)
    >>> fov = np.ones((64, 64), bool)
    >>> m = object_mask(disc, fov)
    >>> bool(m[32, 32]), bool(m[32, 32 + 14]), bool(m[2, 2])   # inside, on the dilated rim, background
    (True, True, False)
    """
    reference = np.asarray(reference, dtype=np.float64)
    if threshold is None:
        threshold = object_threshold(reference, fov, sigma=sigma)
    inside = ndimage.gaussian_filter(reference, sigma) > threshold
    inside = ndimage.binary_fill_holes(inside)
    if dilate > 0:
        r = int(dilate)
        yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
        inside = ndimage.binary_dilation(inside, structure=yy ** 2 + xx ** 2 <= r * r)
    inside &= fov
    if not inside.any():
        raise ValueError("the reference has no object above the threshold inside the field of view")
    return inside


def _check_pair(image, reference):
    image = np.asarray(image, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if image.shape != reference.shape:
        raise ValueError(f"shape mismatch: image {image.shape} vs reference {reference.shape}")
    return image, reference


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
        One ``{"slice", "ssim", "psnr", "ssim_object", "psnr_object", "object_fraction", "data_range"}``
        per slice (``slice`` is the position in the stack; ``object_fraction`` the share of the field
        of view inside the object mask).
    """
    volume, reference = _check_pair(volume, reference)
    mask = circular_mask(reference.shape, margin=fov_margin)
    data_range = reference_range(reference, mask)
    threshold = object_threshold(reference, mask)
    rows = []
    for i in range(volume.shape[0]):
        row = {"slice": i, "ssim": masked_ssim(volume[i], reference[i], mask, data_range=data_range),
               "psnr": masked_psnr(volume[i], reference[i], mask, data_range=data_range)}
        try:
            obj = object_mask(reference[i], mask, threshold=threshold)
        except ValueError:  # a slice without sample (above or below it): no object metric
            row.update(ssim_object=float("nan"), psnr_object=float("nan"), object_fraction=0.0)
        else:
            row.update(ssim_object=masked_ssim(volume[i], reference[i], obj, data_range=data_range),
                       psnr_object=masked_psnr(volume[i], reference[i], obj, data_range=data_range),
                       object_fraction=float(obj.sum() / mask.sum()))
        rows.append(dict(row, data_range=data_range))
    return rows
