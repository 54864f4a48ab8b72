"""Noise texture: the noise power spectrum in uniform regions, its mean frequency and its power.

Part of :mod:`analysis.quality`; every public name is importable from there."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from analysis.quality.rules import MATRIX_BAND, NPS_ROI, UNIFORM_ERODE, _erode


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

    The pixels of ``mask`` (the sample, :func:`pore_region`; default ``fov``) whose ``reference`` value (the
    normal-dose slice, or the phantom's) lies within ``band`` (relative) of its median there, eroded by a disc of
    radius ``erode`` pixels (docs/claims.md, "Primary and secondary metrics").

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
    """Radially averaged noise power spectrum of ``image`` inside a uniform ``region`` (:func:`uniform_region`).

    ``roi`` x ``roi`` ROIs wholly inside the region (:func:`_roi_corners`, or the ``corners`` given, to measure two
    images on the same ROIs) each lose their fitted plane (``detrend="plane"``) or mean; ``NPS(f) =
    |DFT(roi)|^2 / roi^2`` is averaged over ROIs, then over rings ``|f| ~ k / roi``, ``k = 1 .. roi // 2`` (no DC
    ring), so that the 2-D NPS integrates to the noise variance. NaN and ``n_rois = 0`` when no ROI fits. Where the
    object is not quite flat (the shale matrix has texture), that structure counts as noise for every method alike.

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
    denoiser), above 1 finer. For the foam 1 is no target (docs/claims.md, "Primary and secondary metrics").
    """
    corners = _roi_corners(region, roi)
    a = noise_power_spectrum(image, region, roi=roi, detrend=detrend, corners=corners)
    b = noise_power_spectrum(reference, region, roi=roi, detrend=detrend, corners=corners)
    return mean_frequency(a.freqs, a.nps) / mean_frequency(b.freqs, b.nps)
