"""Which pixels a score counts: the sample's region of a reference slice, and the reference's range.

Every score of the study is taken inside the circular field of view (:func:`simulate.plumbing.circular_mask`), and
the ``*_object`` scores inside the sample as well (:func:`object_mask`), so that a method is not rewarded for
flattening the empty background around it; :func:`reference_range` is the ``data_range`` every SSIM and PSNR of one
volume shares. :mod:`analysis.metrics` and :mod:`analysis.quality` both use them.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["OBJECT_FRACTION", "OBJECT_PERCENTILE", "OBJECT_SIGMA", "OBJECT_DILATE", "reference_range",
           "object_threshold", "object_mask"]

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
