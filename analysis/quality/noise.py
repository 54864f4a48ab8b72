"""Noise texture: the noise power spectrum in uniform regions, its mean frequency and its power.

Part of :mod:`analysis.quality`; every public name is importable from there."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from analysis.quality.rules import MATRIX_BAND, NPS_ROI, UNIFORM_ERODE, _erode

# ----------------------------------------------------------------------------- noise texture

class NoisePowerSpectrum(NamedTuple):
    """A radially averaged noise power spectrum (:func:`noise_power_spectrum`)."""

    freqs: np.ndarray      # ring centres, cycles/pixel: k / roi for k = 1 .. roi // 2
    nps: np.ndarray        # power per ring, (image units)^2 pixel^2
    variance: float        # total noise power: mean variance of the detrended ROIs (= the 2-D NPS integrated)
    mean: float            # mean image value in the ROIs (to express the noise relative to the signal)
    n_rois: int            # ROIs averaged; 0 when none fits in the region (then everything else is NaN)


def uniform_region(reference, fov, *, erode: float = UNIFORM_ERODE, mask=None,
                   band: float = MATRIX_BAND) -> np.ndarray:
    """Pixels where the underlying object is flat: the sample's main material, away from every edge.

    Rule: the pixels of ``mask`` (default ``fov``) whose reference value lies within ``band`` (relative) of
    the reference's median there -- the main material, since pores fill less than half of the sample (the
    foam's matrix; the shale's matrix, without its pores, cracks and dense grains) -- eroded by a disc of
    radius ``erode`` pixels, so that edge blur and the reconstruction's edge ringing stay out.

    Parameters
    ----------
    reference : ndarray, shape (rows, cols)
        The normal-dose reference slice, or the phantom slice itself.
    fov : ndarray of bool, shape (rows, cols)
        Field of view.
    erode : float
        Distance in pixels kept from the material's edges (and from the rim of ``mask``).
    mask : ndarray of bool, optional
        Where to look (the sample: :func:`pore_region`); default the field of view.
    band : float
        Half-width of the accepted values, as a fraction of the median.

    Returns
    -------
    ndarray of bool, shape (rows, cols)

    Examples
    --------
    >>> img = np.ones((40, 40)); img[10:20, 10:20] = 0          # a square pore in a flat matrix
    >>> region = uniform_region(img, np.ones((40, 40), bool), erode=2)
    >>> bool(region[30, 30]), bool(region[15, 15]), bool(region[15, 21]), bool(region[15, 23])
    (True, False, False, True)
    """
    reference = np.asarray(reference, dtype=np.float64)
    where = np.asarray(fov, bool) if mask is None else np.asarray(mask, bool) & fov
    if not where.any():
        return where
    level = np.median(reference[where])
    main = where & (np.abs(reference - level) <= band * abs(level))
    return _erode(main, erode)


def _roi_corners(region, roi: int) -> list[tuple[int, int]]:
    """Top-left corners of ``roi`` x ``roi`` squares inside ``region``, overlapping by at most half a side.

    Raster order, greedy: a square is taken when it lies wholly in the region and its corner is at least
    ``roi // 2`` away (in rows or in columns) from every square taken before.
    """
    region = np.asarray(region, bool)
    rows, cols = region.shape
    if rows < roi or cols < roi:
        return []
    c = np.zeros((rows + 1, cols + 1), np.int64)
    c[1:, 1:] = region.cumsum(0).cumsum(1)
    full = (c[roi:, roi:] - c[:-roi, roi:] - c[roi:, :-roi] + c[:-roi, :-roi]) == roi * roi
    half = max(1, roi // 2)
    blocked = np.zeros_like(full)
    corners = []
    for i, j in zip(*np.nonzero(full)):
        if not blocked[i, j]:
            corners.append((int(i), int(j)))
            blocked[max(0, i - half + 1):i + half, max(0, j - half + 1):j + half] = True
    return corners


def _detrend(blocks, how: str):
    n = blocks.shape[-1]
    flat = blocks.reshape(len(blocks), -1)
    if how == "mean":
        flat = flat - flat.mean(axis=1, keepdims=True)
    elif how == "plane":
        yy, xx = np.mgrid[:n, :n]
        design = np.column_stack([np.ones(n * n), yy.ravel(), xx.ravel()])
        flat = flat - flat @ (design @ np.linalg.pinv(design)).T
    else:
        raise ValueError(f"detrend must be 'mean' or 'plane', got {how!r}")
    return flat.reshape(blocks.shape)


def _ring_index(shape) -> np.ndarray:
    """Integer ring of each FFT frequency: round(|f| * n), n the shorter side."""
    fy = np.fft.fftfreq(shape[0])
    fx = np.fft.fftfreq(shape[1])
    return np.rint(np.hypot(fy[:, None], fx[None, :]) * min(shape)).astype(np.int64)


def noise_power_spectrum(image, region, *, roi: int = NPS_ROI, detrend: str = "plane",
                         corners=None) -> NoisePowerSpectrum:
    """Radially averaged noise power spectrum of ``image`` inside a uniform ``region``.

    Square ``roi`` x ``roi`` ROIs are tiled inside the region (wholly inside it, overlapping by at most half a
    side, see :func:`_roi_corners`); each is detrended (its least-squares plane, or its mean, removed), and
    the 2-D spectrum ``NPS(f) = |DFT(roi)|^2 / roi^2`` (pixel size 1) is averaged over ROIs, then over rings
    ``|f| ~ k / roi``, ``k = 1 .. roi // 2``. The DC ring (``k = 0``) is left out: detrending removes it.
    With this normalisation the 2-D NPS integrates to the noise variance.

    Parameters
    ----------
    image : ndarray, shape (rows, cols)
    region : ndarray of bool, shape (rows, cols)
        Where the object is flat (:func:`uniform_region`).
    roi : int
        ROI side in pixels; it sets the frequency grid (spacing ``1 / roi``).
    detrend : {"plane", "mean"}
        What each ROI loses before its FFT: a fitted plane (slow shading) or only its mean.
    corners : list of (int, int), optional
        ROI corners already chosen for this region (to measure two images on the same ROIs).

    Returns
    -------
    NoisePowerSpectrum
        ``freqs``, ``nps``, ``variance``, ``mean``, ``n_rois``; NaN and ``n_rois = 0`` when no ROI fits.

    Notes
    -----
    The NPS measures the fluctuations of the image itself. Where the object inside a "uniform" region is
    not quite flat (the shale matrix has texture) that structure counts as noise for every method alike.

    Examples
    --------
    >>> noise = np.random.default_rng(0).normal(0, 2.0, (128, 128))
    >>> s = noise_power_spectrum(noise, np.ones((128, 128), bool))
    >>> s.n_rois, round(s.variance, 1), s.freqs[[0, -1]].tolist()
    (225, 3.9, [0.0625, 0.5])
    """
    image = np.asarray(image, dtype=np.float64)
    if image.shape != np.shape(region):
        raise ValueError(f"shape mismatch: image {image.shape} vs region {np.shape(region)}")
    freqs = np.arange(1, roi // 2 + 1) / roi
    corners = _roi_corners(region, roi) if corners is None else corners
    if not corners:
        nan = np.full(freqs.shape, np.nan)
        return NoisePowerSpectrum(freqs, nan, float("nan"), float("nan"), 0)
    blocks = np.stack([image[i:i + roi, j:j + roi] for i, j in corners])
    mean = float(blocks.mean())
    blocks = _detrend(blocks, detrend)
    power = (np.abs(np.fft.fft2(blocks)) ** 2).mean(axis=0) / roi ** 2
    ring = _ring_index((roi, roi)).ravel()
    sums = np.bincount(ring, power.ravel())
    counts = np.bincount(ring)
    nps = sums[1:roi // 2 + 1] / counts[1:roi // 2 + 1]
    variance = float(power.sum() / roi ** 2)
    return NoisePowerSpectrum(freqs, nps, variance, mean, len(corners))


def mean_frequency(freqs, nps) -> float:
    """Power-weighted mean spatial frequency ``sum(f * NPS(f)) / sum(NPS(f))`` of a radial spectrum.

    Lower means coarser, blotchier noise; the same ``freqs`` grid must be used for numbers that are compared
    (a flat spectrum gives :func:`white_mean_frequency`). NaN when the spectrum holds no power.

    Examples
    --------
    >>> f = np.array([0.1, 0.2, 0.3])
    >>> mean_frequency(f, np.ones(3)), mean_frequency(f, np.array([0.0, 0.0, 5.0]))
    (0.2, 0.3)
    """
    freqs = np.asarray(freqs, dtype=np.float64)
    nps = np.asarray(nps, dtype=np.float64)
    total = nps.sum()
    if not np.isfinite(total) or total <= 0:
        return float("nan")
    return float(round((freqs * nps).sum() / total, 15))


def white_mean_frequency(roi: int = NPS_ROI) -> float:
    """Mean frequency of a flat (white-noise) spectrum on the ring grid of :func:`noise_power_spectrum`.

    Examples
    --------
    >>> white_mean_frequency(16)
    0.28125
    """
    return mean_frequency(np.arange(1, roi // 2 + 1) / roi, np.ones(roi // 2))


def nps_frequency_ratio(image, reference, region, *, roi: int = NPS_ROI, detrend: str = "plane") -> float:
    """Mean NPS frequency of ``image`` over that of ``reference``, measured on the same ROIs of ``region``.

    1 means the same noise texture as the reference, below 1 coarser (blotchy, the look of an MSE-trained
    denoiser), above 1 finer.

    .. note::
       What "the reference's texture" is depends on the data. For shale (a measured normal-dose scan) it is
       the texture of real normal-dose noise, and 1 is the target. For the foam, the reference is an FBP of
       noise-free, all-view data: its fluctuations in the matrix are only the discretisation residual of the
       projector and the phantom (about 2 % of the matrix level; mean frequency about 0.39 cycles/pixel with
       16-pixel ROIs, finer than the ramp-filtered photon noise of a low-dose FBP, about 0.30, measured on a
       256^2 foam). The ratio then is the image's mean frequency in units of that residual's: it still ranks
       methods in the same order as the mean frequency itself, but 1 is no target. For the foam, compare
       :func:`mean_frequency` of a method's output with that of its low-dose input (the FBP row of the same
       table) instead; :func:`slice_quality` reports both numbers.
    """
    corners = _roi_corners(region, roi)
    a = noise_power_spectrum(image, region, roi=roi, detrend=detrend, corners=corners)
    b = noise_power_spectrum(reference, region, roi=roi, detrend=detrend, corners=corners)
    return mean_frequency(a.freqs, a.nps) / mean_frequency(b.freqs, b.nps)
