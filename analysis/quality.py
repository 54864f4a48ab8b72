"""Image quality that SSIM and PSNR do not see: noise texture, resolution, and the pores a porosity study finds.

SSIM and PSNR reward the pixel-wise mean-squared error that a denoiser trained on MSE minimises. The losses
TomoGAN adds (adversarial, perceptual) are claimed to help elsewhere: in the texture of the noise that is left,
in sharp edges, and in small features that stay detectable (Kim et al. 2019). This module measures those,
one 2-D slice at a time, on the slices :mod:`analysis.metrics` scores with SSIM/PSNR:

* **noise texture** -- the noise power spectrum (NPS) in uniform regions, its power-weighted mean frequency
  and its total power (:func:`uniform_region`, :func:`noise_power_spectrum`, :func:`mean_frequency`,
  :func:`nps_frequency_ratio`);
* **resolution** -- the 10-90 % width of the edge-spread function across known pore edges
  (:func:`edge_width`, needs the phantom), and the Fourier ring correlation with the reference, which needs
  none (:func:`frc`, :func:`frc_cutoff`);
* **the downstream task** -- pores segmented by one fixed rule, the porosity, the pore-size distribution
  and which true pores are found or invented (:func:`segment_pores`, :func:`porosity`,
  :func:`pore_size_distribution`, :func:`detect_pores`, :func:`detection_rate_by_radius`);
* :func:`slice_quality` -- the per-slice entry point; its columns are :data:`COLUMNS`.

Geometry conventions (those of :mod:`simulate.phantoms`): a slice is ``(rows, cols)``; a circle is
``(x, y, r)`` in pixels with ``x`` along rows and ``y`` along columns, both measured from the slice centre
``((rows - 1) / 2, (cols - 1) / 2)``. Frequencies are in cycles per pixel (Nyquist 0.5).

References
----------
.. [1] Kim, Lee, Ye, "A performance comparison of convolutional neural network-based image denoising
   methods: the effect of loss functions on low-dose CT images", Med. Phys. 46:3906 (2019).
.. [2] Solomon, Christianson, Samei, "Quantitative comparison of noise texture across CT scanners from
   different manufacturers", Med. Phys. 39:6048 (2012) -- the NPS mean frequency.
.. [3] van Heel, Schatz, "Fourier shell correlation threshold criteria", J. Struct. Biol. 151:250 (2005).
.. [4] Otsu, "A threshold selection method from gray-level histograms", IEEE Trans. SMC 9:62 (1979).
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
from scipy import ndimage, stats
from skimage.filters import threshold_otsu

__all__ = ["COLUMNS", "NoisePowerSpectrum", "EdgeWidth", "PoreDetection", "QualityContext",
           "uniform_region", "noise_power_spectrum", "mean_frequency", "white_mean_frequency",
           "nps_frequency_ratio", "edge_width", "frc", "frc_cutoff", "pore_threshold", "segment_pores",
           "porosity", "pore_size_distribution", "render_circles", "detect_pores", "detect_reference_pores",
           "detection_rate_by_radius", "pore_region", "quality_context", "slice_quality"]

logger = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- the rules, in one place
MATRIX_BAND = 0.25         # uniform region: reference within this fraction of its median (the main material) ...
UNIFORM_ERODE = 3          # px: ... eroded this far from its edges
NPS_ROI = 16               # px: side of the square ROIs of the noise power spectrum
EDGE_MIN_RADIUS = 6.0      # px: smallest pore section whose edge is profiled
EDGE_HALF_WIDTH = 6.0      # px: radial profiles run from r - this to r + this
EDGE_STEP = 0.25           # px: sampling step along a radial profile
EDGE_GUARD = 2.0           # px: a profile is dropped when it comes this close to another pore
FRC_THRESHOLD = 0.5        # FRC level that defines the cutoff frequency
FRC_TAPER = 8.0            # px: cosine taper inside the field of view's rim before the FFT
PORE_LEVEL = 0.5           # pores: below this fraction of the image's median in the sample
PORE_MIN_AREA = 4          # px: connected pore components smaller than this are removed (and not counted as true)
DETECT_IOU = 0.5           # a true pore is found when a component covers its centre or has IoU >= this with it
SMALL_PORE_RADIUS = 4.0    # px: pores below this radius are "small" (pore_detection_small)
RADIUS_BINS = (0.0, 2.0, 4.0, 6.0, 8.0, 12.0, np.inf)   # px: default bins of detection_rate_by_radius
PORE_MASK_ERODE = 2        # px: the pore search region is the object mask eroded this far (partial-volume rim)

_EIGHT = np.ones((3, 3), bool)   # pores are 8-connected: diagonal neighbours belong to one pore

COLUMNS = ("nps_mean_freq", "nps_freq_ratio", "noise_power_ratio", "noise_rel", "nps_rois",
           "frc_cutoff", "edge_width", "edge_width_ref", "n_edges",
           "porosity", "porosity_error", "pore_detection", "pore_detection_small", "false_pores",
           "psd_wasserstein", "n_pores")
"""The per-slice columns of :func:`slice_quality`, in order (their meaning: :func:`slice_quality`)."""


def _disc(radius: float) -> np.ndarray:
    r = int(np.ceil(radius))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return yy ** 2 + xx ** 2 <= radius ** 2


def _erode(mask, radius: float) -> np.ndarray:
    if radius <= 0:
        return np.asarray(mask, bool)
    return ndimage.binary_erosion(mask, structure=_disc(radius), border_value=0)


def _centre(shape) -> np.ndarray:
    return (np.asarray(shape[-2:], float) - 1) / 2


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


# ----------------------------------------------------------------------------- resolution: edges of known pores

class EdgeWidth(NamedTuple):
    """The edge-spread function across pore edges and its 10-90 % width (:func:`edge_width`)."""

    width: float           # 10-90 % rise distance, pixels (NaN when no edge was usable or no rise was found)
    n_edges: int           # pore circles that contributed at least one profile
    offsets: np.ndarray    # distance from the true edge, pixels (negative: inside the pore)
    esf: np.ndarray        # mean profile at those offsets (NaN when no edge was usable)


def _rise_width(offsets, esf) -> float:
    """10-90 % distance of an edge-spread function, walking out from its 50 % crossing nearest 0.

    The plateaus are the means of its first and last pixel of samples; the polarity does not matter.
    """
    step = offsets[1] - offsets[0]
    edge = max(1, int(round(1.0 / step)))
    lo, hi = esf[:edge].mean(), esf[-edge:].mean()
    if not np.isfinite(lo - hi) or hi == lo:
        return float("nan")
    e = (esf - lo) / (hi - lo)
    above = e >= 0.5
    cross = np.flatnonzero(above[1:] != above[:-1])
    if cross.size == 0:
        return float("nan")
    c = cross[np.argmin(np.abs(offsets[cross]))]           # e[c] and e[c + 1] straddle 0.5

    def crossing(i, j, level):  # offset where e crosses ``level`` between samples i and j
        return offsets[i] + (level - e[i]) * (offsets[j] - offsets[i]) / (e[j] - e[i])

    d10 = d90 = None
    for i in range(c, -1, -1):                             # inwards from the 50 % point
        if e[i] <= 0.1:
            d10 = crossing(i, i + 1, 0.1)
            break
    for i in range(c + 1, len(e)):                         # outwards
        if e[i] >= 0.9:
            d90 = crossing(i - 1, i, 0.9)
            break
    if d10 is None or d90 is None:
        return float("nan")
    return float(d90 - d10)


def edge_width(image, circles, *, mask=None, min_radius: float = EDGE_MIN_RADIUS,
               half_width: float = EDGE_HALF_WIDTH, step: float = EDGE_STEP,
               guard: float = EDGE_GUARD) -> EdgeWidth:
    """Edge sharpness across known circular edges: the 10-90 % width of their mean edge-spread function.

    For each circle with ``r >= min_radius``, radial profiles are sampled (bilinear interpolation) at offsets
    ``-half_width .. +half_width`` (step ``step``) from the true edge, at about one profile per pixel of
    circumference. A profile is kept only when every sample of it lies inside ``mask`` (nearest pixel) and
    none comes within ``guard`` pixels of another circle (so neighbouring pores, the sample's outer wall and
    the field of view's rim stay out). The kept profiles are averaged into one edge-spread function (ESF);
    its 10-90 % rise distance is the width, plateaus taken as the mean of the ESF's first and last pixel.

    Parameters
    ----------
    image : ndarray, shape (rows, cols)
    circles : ndarray, shape (n, 3)
        ``x, y, r`` in pixels, ``x`` along rows and ``y`` along columns from the slice centre (the pore
        sections of :func:`simulate.phantoms.pore_sections`). Circles not used still act as neighbours.
    mask : ndarray of bool, shape (rows, cols), optional
        Where samples are valid (the field of view and the sample; default everywhere).

    Returns
    -------
    EdgeWidth
        ``width`` in pixels (lower is sharper; a perfectly sampled step gives about 0.8), ``n_edges``,
        ``offsets``, ``esf``.

    Notes
    -----
    A Gaussian blur of standard deviation ``s`` widens a step edge to ``2 * 1.2816 * s = 2.563 s``; a blurred
    disc follows that as long as ``s`` is small beside its radius. Widths beyond about ``1.3 * half_width``
    cannot be measured (NaN): the plateaus are then not reached inside the window.

    Examples
    --------
    >>> rr, cc = np.mgrid[:96, :96] - 47.5
    >>> disc = (np.hypot(rr, cc) < 30).astype(float)       # a sharp disc, dark outside as a pore is inside
    >>> blurred = ndimage.gaussian_filter(disc, 2.0)
    >>> round(edge_width(blurred, [[0, 0, 30]], half_width=10).width / 2.0, 1)   # about 2.56 sigma
    2.6
    """
    image = np.asarray(image, dtype=np.float64)
    circles = np.asarray(circles, dtype=np.float64).reshape(-1, 3)
    offsets = np.arange(-half_width, half_width + step / 2, step)
    empty = EdgeWidth(float("nan"), 0, offsets, np.full(offsets.shape, np.nan))
    use = np.flatnonzero(circles[:, 2] >= min_radius)
    if use.size == 0:
        return empty
    centre = _centre(image.shape)
    profiles, owners = [], []
    for i in use:
        x, y, r = circles[i]
        n_ang = max(16, int(np.ceil(2 * np.pi * r)))
        theta = np.arange(n_ang) * (2 * np.pi / n_ang)
        dist = r + offsets                                            # (n_off,)
        rows = centre[0] + x + np.cos(theta)[:, None] * dist[None, :]  # (n_ang, n_off)
        cols = centre[1] + y + np.sin(theta)[:, None] * dist[None, :]
        ok = np.ones(n_ang, bool)
        ri, ci = np.rint(rows).astype(np.int64), np.rint(cols).astype(np.int64)
        inside = (ri >= 0) & (ri < image.shape[0]) & (ci >= 0) & (ci < image.shape[1])
        ok &= inside.all(axis=1)
        if mask is not None:
            m = np.zeros_like(inside)
            m[inside] = np.asarray(mask, bool)[ri[inside], ci[inside]]
            ok &= m.all(axis=1)
        others = np.delete(circles, i, axis=0)
        near = np.hypot(others[:, 0] - x, others[:, 1] - y) < r + half_width + others[:, 2] + guard
        for ox, oy, orad in others[near]:
            ok &= ~((np.hypot(rows - centre[0] - ox, cols - centre[1] - oy) < orad + guard).any(axis=1))
        if ok.any():
            profiles.append(ndimage.map_coordinates(image, [rows[ok].ravel(), cols[ok].ravel()], order=1)
                            .reshape(-1, offsets.size))
            owners.append(i)
    if not profiles:
        return empty
    esf = np.concatenate(profiles).mean(axis=0)
    return EdgeWidth(_rise_width(offsets, esf), len(owners), offsets, esf)


# ----------------------------------------------------------------------------- resolution: Fourier ring correlation

def _taper(mask, width: float) -> np.ndarray:
    """1 deep inside ``mask``, falling as a cosine to 0 over its last ``width`` pixels."""
    if width <= 0:
        return np.asarray(mask, dtype=np.float64)
    depth = ndimage.distance_transform_edt(mask)
    return np.sin(0.5 * np.pi * np.clip(depth / width, 0, 1)) ** 2


def frc(image, reference, *, fov=None, taper: float = FRC_TAPER, window=None) -> tuple[np.ndarray, np.ndarray]:
    """Fourier ring correlation of two slices, inside the field of view.

    ``FRC(k) = Re sum_ring F1 F2* / sqrt(sum_ring |F1|^2 sum_ring |F2|^2)`` over rings ``|f| ~ k / n``,
    ``k = 1 .. n // 2`` (``n`` the shorter side). Each slice loses its mean inside ``fov`` and is multiplied by
    a window that is 1 inside the field of view and falls as a cosine over its last ``taper`` pixels (0 in
    the corners astra fills), so that neither the corners nor a hard rim add correlation.

    Parameters
    ----------
    image, reference : ndarray, shape (rows, cols)
    fov : ndarray of bool, optional
        Field of view (default: the whole square, no taper).
    window : ndarray, optional
        A precomputed window (skips ``fov``/``taper``).

    Returns
    -------
    freqs : ndarray
        Ring centres ``k / n`` in cycles/pixel.
    frc : ndarray
        Correlation per ring, in [-1, 1] (NaN in a ring where either slice has no power).

    Examples
    --------
    >>> img = np.random.default_rng(0).normal(size=(32, 32))
    >>> f, c = frc(img, img)
    >>> bool(np.allclose(c, 1)), f[[0, -1]].tolist()
    (True, [0.03125, 0.5])
    """
    a = np.asarray(image, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: image {a.shape} vs reference {b.shape}")
    if window is None:
        window = np.ones(a.shape) if fov is None else _taper(fov, taper)
    inside = window > 0
    fa = np.fft.fft2((a - a[inside].mean()) * window)
    fb = np.fft.fft2((b - b[inside].mean()) * window)
    ring = _ring_index(a.shape).ravel()
    n_ring = min(a.shape) // 2
    keep = ring <= n_ring
    ring = ring[keep]
    cross = np.bincount(ring, (fa * np.conj(fb)).real.ravel()[keep], minlength=n_ring + 1)
    pa = np.bincount(ring, (np.abs(fa) ** 2).ravel()[keep], minlength=n_ring + 1)
    pb = np.bincount(ring, (np.abs(fb) ** 2).ravel()[keep], minlength=n_ring + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cross / np.sqrt(pa * pb)
    return np.arange(1, n_ring + 1) / min(a.shape), corr[1:]


def frc_cutoff(freqs, correlation, *, threshold: float = FRC_THRESHOLD) -> float:
    """The frequency where the FRC first falls below ``threshold`` (linear between rings), cycles/pixel.

    The threshold is fixed at 0.5 by default: image and reference are not two independent half-data sets,
    so the 1/7 criterion of [3]_ does not apply; 0.5 is where the image has kept half of its correlation with
    the reference (a signal-to-error ratio of about 1/3 per ring when the reference is noise-free). Higher is
    better. The last ring's frequency (Nyquist) when the FRC never falls below; the first ring's when it is
    below from the start. A NaN ring (no power in one slice) counts as below.

    Examples
    --------
    >>> frc_cutoff(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.9, 0.7, 0.3, 0.1]))
    0.25
    """
    freqs = np.asarray(freqs, dtype=np.float64)
    c = np.nan_to_num(np.asarray(correlation, dtype=np.float64), nan=-1.0)
    below = np.flatnonzero(c < threshold)
    if below.size == 0:
        return float(freqs[-1])
    k = int(below[0])
    if k == 0:
        return float(freqs[0])
    return float(round(freqs[k - 1] + (c[k - 1] - threshold) * (freqs[k] - freqs[k - 1]) / (c[k - 1] - c[k]), 12))


# ----------------------------------------------------------------------------- the downstream task: pores

def pore_threshold(image, object_mask, *, rule: str = "half-median") -> float:
    """The grey level below which a pixel of the sample is pore.

    Rules:

    - ``"half-median"`` (default): ``PORE_LEVEL`` (0.5) x the median of ``image`` over ``object_mask`` --
      half-way between empty space (attenuation 0) and the sample's main material, which the median is as long
      as pores fill less than half of the sample. It ignores how much dense material there is.
    - ``"otsu"``: Otsu's threshold [4]_ of the same pixels. It separates the two most distinct populations,
      which are pores and matrix in the foam but the dense grains and everything else in the shale stand-in
      (measured on a 256^2 slice of :func:`simulate.shale.shale_volume`: Otsu at 2.3 x the matrix level, 99.7 %
      of the sample "pore"), so it is not the default.

    Examples
    --------
    >>> img = np.full((10, 10), 2.0); img[:3] = 0.0; img[9, 9] = 40.0    # pores, matrix, one dense grain
    >>> pore_threshold(img, np.ones((10, 10), bool))
    1.0
    """
    values = np.asarray(image, dtype=np.float64)[np.asarray(object_mask, bool)]
    if values.size == 0:
        raise ValueError("the object mask is empty")
    if rule == "half-median":
        return float(PORE_LEVEL * np.median(values))
    if rule == "otsu":
        return float(values.min()) if values.min() == values.max() else float(threshold_otsu(values))
    raise ValueError(f"rule must be 'half-median' or 'otsu', got {rule!r}")


def segment_pores(image, object_mask, *, min_area: int = PORE_MIN_AREA, rule: str = "half-median") -> np.ndarray:
    """Pores of a slice by one fixed rule, as a porosity study would segment them.

    Rule: pores are the pixels of ``object_mask`` strictly below :func:`pore_threshold` of the image (by
    default half its median over the mask, i.e. half the matrix level); 8-connected components of fewer than
    ``min_area`` pixels are then removed (isolated noise pixels). No smoothing: the segmentation sees the
    image a method delivers, and each image gets its own threshold (a calibration offset is not a pore).

    Parameters
    ----------
    image : ndarray, shape (rows, cols)
    object_mask : ndarray of bool, shape (rows, cols)
        The sample, inside its outer wall (:func:`pore_region`): pixels outside it are never pores.
    min_area : int
        Smallest pore kept, pixels.
    rule : {"half-median", "otsu"}
        The threshold (:func:`pore_threshold`).

    Returns
    -------
    ndarray of bool, shape (rows, cols)

    Examples
    --------
    >>> img = np.ones((20, 20)); img[5:9, 5:9] = 0; img[15, 15] = 0     # a 4x4 pore and a 1-pixel speck
    >>> seg = segment_pores(img, np.ones((20, 20), bool))
    >>> int(seg.sum()), bool(seg[15, 15])
    (16, False)
    """
    mask = np.asarray(object_mask, bool)
    pores = (np.asarray(image, dtype=np.float64) < pore_threshold(image, mask, rule=rule)) & mask
    if min_area > 1:
        labels, n = ndimage.label(pores, structure=_EIGHT)
        area = np.bincount(labels.ravel(), minlength=n + 1)
        small = area < min_area
        small[0] = False
        pores[small[labels]] = False
    return pores


def porosity(segmentation, object_mask) -> float:
    """Pore fraction of the object: pore pixels inside ``object_mask`` over the mask's pixels."""
    mask = np.asarray(object_mask, bool)
    if not mask.any():
        return float("nan")
    return float(np.asarray(segmentation, bool)[mask].sum() / mask.sum())


def pore_size_distribution(segmentation) -> np.ndarray:
    """Equivalent radii ``sqrt(area / pi)`` in pixels of the 8-connected pore components, largest first.

    Examples
    --------
    >>> seg = np.zeros((10, 10), bool); seg[1:3, 1:3] = True; seg[6, 6] = True
    >>> pore_size_distribution(seg).round(3).tolist()
    [1.128, 0.564]
    """
    labels, n = ndimage.label(np.asarray(segmentation, bool), structure=_EIGHT)
    area = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    return np.sort(np.sqrt(area / np.pi))[::-1]


def render_circles(shape, circles) -> np.ndarray:
    """Label image of circles: pixel ``(i, j)`` gets ``k + 1`` when its centre lies inside circle ``k``, else 0.

    Circles are ``x, y, r`` in pixels from the slice centre (``x`` along rows); a later circle wins where two
    overlap.

    Examples
    --------
    >>> render_circles((5, 5), [[0, 0, 1.0]])
    array([[0, 0, 0, 0, 0],
           [0, 0, 1, 0, 0],
           [0, 1, 1, 1, 0],
           [0, 0, 1, 0, 0],
           [0, 0, 0, 0, 0]], dtype=int32)
    """
    rows, cols = shape[-2:]
    out = np.zeros((rows, cols), np.int32)
    centre = _centre((rows, cols))
    for k, (x, y, r) in enumerate(np.asarray(circles, dtype=np.float64).reshape(-1, 3)):
        cr, cc = centre[0] + x, centre[1] + y
        r0, r1 = max(0, int(np.floor(cr - r))), min(rows, int(np.ceil(cr + r)) + 1)
        c0, c1 = max(0, int(np.floor(cc - r))), min(cols, int(np.ceil(cc + r)) + 1)
        if r0 >= r1 or c0 >= c1:
            continue
        yy, xx = np.mgrid[r0:r1, c0:c1]
        inside = (yy - cr) ** 2 + (xx - cc) ** 2 <= r * r
        out[r0:r1, c0:c1][inside] = k + 1
    return out


class PoreDetection(NamedTuple):
    """Which true pores a segmentation finds, and what it invents (:func:`detect_pores`)."""

    radius: np.ndarray     # radius of each counted true pore, pixels
    detected: np.ndarray   # bool per counted true pore
    false_pores: int       # segmented components that match no true pore
    n_components: int      # segmented components in all


def _match(segmentation, true_labels, n_true, centres, eligible, iou: float) -> tuple[np.ndarray, int, int]:
    """Detection of labelled true pores by the components of a segmentation (the rule of :func:`detect_pores`)."""
    seg_labels, n_seg = ndimage.label(np.asarray(segmentation, bool), structure=_EIGHT)
    both = (seg_labels > 0) & (true_labels > 0)
    pair = seg_labels[both].astype(np.int64) * (n_true + 1) + true_labels[both]
    inter = np.bincount(pair, minlength=(n_seg + 1) * (n_true + 1)).reshape(n_seg + 1, n_true + 1)
    seg_area = np.bincount(seg_labels.ravel(), minlength=n_seg + 1)
    true_area = np.bincount(true_labels.ravel(), minlength=n_true + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        overlap = inter / (seg_area[:, None] + true_area[None, :] - inter)
    overlap[0, :] = 0
    overlap[:, 0] = 0
    good = overlap >= iou                                        # (n_seg + 1, n_true + 1)
    rows, cols = true_labels.shape
    ci = np.clip(np.rint(centres[:, 0]).astype(np.int64), 0, rows - 1)
    cj = np.clip(np.rint(centres[:, 1]).astype(np.int64), 0, cols - 1)
    covering = seg_labels[ci, cj]                               # component at each true pore's centre (0: none)
    detected = (covering > 0) | good[:, 1:].any(axis=0)
    matched = good[:, 1:].any(axis=1)
    matched[covering[covering > 0]] = True
    matched |= 2 * inter[:, 1:].sum(axis=1) >= seg_area          # at least half of it lies in true pores
    false = int((~matched[1:]).sum())
    return detected[eligible], false, int(n_seg)


def detect_pores(segmentation, circles, *, mask=None, iou: float = DETECT_IOU,
                 min_area: int = PORE_MIN_AREA) -> PoreDetection:
    """Per true pore, whether the segmentation finds it; and how many segmented pores match no true one.

    Rule. True pores are the circles rendered on the pixel grid (:func:`render_circles`); a true pore counts
    when its rendering has at least ``min_area`` pixels (the smallest pore :func:`segment_pores` keeps) and
    lies wholly inside ``mask``. A true pore is **detected** when a segmented (8-connected) component covers
    its centre pixel or overlaps it with intersection-over-union ``>= iou``. A segmented component is a
    **false pore** when it covers no true pore's centre, has IoU ``< iou`` with every true pore and has less
    than half of its pixels inside true pores (so a fragment of a real pore is not counted as invented).
    Every true pore, counted or not, can match a component.

    Parameters
    ----------
    segmentation : ndarray of bool, shape (rows, cols)
        Pores found (:func:`segment_pores`).
    circles : ndarray, shape (n, 3)
        True pore sections ``x, y, r`` in pixels from the slice centre (``x`` along rows).
    mask : ndarray of bool, optional
        The region searched (the one given to :func:`segment_pores`).

    Returns
    -------
    PoreDetection
        ``radius`` and ``detected`` of the counted true pores, ``false_pores``, ``n_components``.

    Examples
    --------
    >>> circles = np.array([[-10.0, 0, 4], [10, 0, 4]])
    >>> seg = render_circles((48, 48), circles) == 1                # finds only the first pore
    >>> seg[40:43, 40:43] = True                                    # ... and invents one
    >>> d = detect_pores(seg, circles)
    >>> d.detected.tolist(), d.false_pores
    ([True, False], 1)
    """
    seg = np.asarray(segmentation, bool)
    circles = np.asarray(circles, dtype=np.float64).reshape(-1, 3)
    labels = render_circles(seg.shape, circles)
    n = len(circles)
    area = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    eligible = area >= min_area
    if mask is not None:
        outside = np.bincount(labels[~np.asarray(mask, bool)].ravel(), minlength=n + 1)[1:]
        eligible &= outside == 0
    centres = _centre(seg.shape) + circles[:, :2]
    detected, false, n_seg = _match(seg, labels, n, centres, eligible, iou)
    return PoreDetection(circles[eligible, 2], detected, false, n_seg)


def detect_reference_pores(segmentation, reference_segmentation, *, iou: float = DETECT_IOU) -> PoreDetection:
    """:func:`detect_pores` against the pores of a reference's segmentation, when no phantom is known (shale).

    The true pores are the 8-connected components of ``reference_segmentation`` (segmented by the same rule);
    a pore's radius is its equivalent radius ``sqrt(area / pi)`` and its centre the pixel nearest its
    centroid. The detection and false-pore rules are those of :func:`detect_pores`.
    """
    ref = np.asarray(reference_segmentation, bool)
    labels, n = ndimage.label(ref, structure=_EIGHT)
    area = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    centres = np.asarray(ndimage.center_of_mass(ref, labels, np.arange(1, n + 1))).reshape(-1, 2)
    detected, false, n_seg = _match(segmentation, labels, n, centres, np.ones(n, bool), iou)
    return PoreDetection(np.sqrt(area / np.pi), detected, false, n_seg)


def detection_rate_by_radius(radius, detected, bins=RADIUS_BINS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detection rate of true pores in radius bins ``[bins[i], bins[i + 1])`` (pixels).

    Returns
    -------
    bins : ndarray
        The bin edges.
    rate : ndarray
        Fraction detected per bin (NaN where a bin has no pore).
    count : ndarray of int
        True pores per bin.

    Examples
    --------
    >>> _, rate, count = detection_rate_by_radius([1.5, 3, 3.5, 7], [False, True, False, True], bins=[0, 2, 4, 8])
    >>> rate.tolist(), count.tolist()
    ([0.0, 0.5, 1.0], [1, 2, 1])
    """
    radius = np.asarray(radius, dtype=np.float64)
    detected = np.asarray(detected, bool)
    bins = np.asarray(bins, dtype=np.float64)
    idx = np.digitize(radius, bins) - 1
    nb = len(bins) - 1
    ok = (idx >= 0) & (idx < nb)
    count = np.bincount(idx[ok], minlength=nb)
    hits = np.bincount(idx[ok], detected[ok].astype(np.float64), minlength=nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(count > 0, hits / np.maximum(count, 1), np.nan)
    return bins, rate, count


# ----------------------------------------------------------------------------- one slice, every column

def pore_region(object_mask, *, erode: float = PORE_MASK_ERODE) -> np.ndarray:
    """Where pores are looked for: the object mask eroded by ``erode`` pixels.

    The erosion drops the object's partial-volume rim, and with :func:`analysis.regions.object_mask` (dilated
    by :data:`analysis.regions.OBJECT_DILATE` pixels) pass ``erode = OBJECT_DILATE + 2`` so that the dark
    background around the sample is not taken for a pore.
    """
    return _erode(object_mask, erode)


class QualityContext(NamedTuple):
    """What :func:`slice_quality` measures on the reference once per slice (:func:`quality_context`)."""

    reference: np.ndarray
    fov: np.ndarray
    circles: np.ndarray | None
    pore_mask: np.ndarray | None          # where pores are segmented (None: no object)
    uniform: np.ndarray                   # uniform region of the NPS
    corners: list                         # its ROIs
    ref_nps: NoisePowerSpectrum
    window: np.ndarray                    # FRC window
    edge_mask: np.ndarray                 # where edge profiles may run
    edge_ref: EdgeWidth | None
    true_seg: np.ndarray | None           # the reference's segmentation (no phantom)
    true_porosity: float
    true_radius: np.ndarray               # radii of the counted true pores


def quality_context(reference, fov, *, circles=None, object_mask=None) -> QualityContext:
    """Measure the reference side of :func:`slice_quality` once, to score many images of one slice.

    ``object_mask`` is the region pores are searched in (already inside the sample's wall, e.g.
    :func:`pore_region`); by default :func:`analysis.regions.object_mask` of the reference, eroded by
    ``OBJECT_DILATE + PORE_MASK_ERODE`` pixels. An empty slice (no object) leaves the pore columns NaN.
    """
    from analysis.regions import OBJECT_DILATE
    from analysis.regions import object_mask as find_object

    reference = np.asarray(reference, dtype=np.float64)
    fov = np.asarray(fov, bool)
    if reference.shape != fov.shape:
        raise ValueError(f"shape mismatch: reference {reference.shape} vs fov {fov.shape}")
    if object_mask is None:
        try:
            object_mask = pore_region(find_object(reference, fov), erode=OBJECT_DILATE + PORE_MASK_ERODE)
        except ValueError:
            object_mask = None
    pore_mask = None if object_mask is None or not np.any(object_mask) else np.asarray(object_mask, bool) & fov
    uniform = uniform_region(reference, fov, mask=pore_mask)
    corners = _roi_corners(uniform, NPS_ROI)
    ref_nps = noise_power_spectrum(reference, uniform, corners=corners)
    window = _taper(fov, FRC_TAPER)
    edge_mask = _erode(fov if pore_mask is None else pore_mask, 1)
    true_seg, true_porosity, true_radius = None, float("nan"), np.empty(0)
    edge_ref = None
    if circles is not None:
        circles = np.asarray(circles, dtype=np.float64).reshape(-1, 3)
        edge_ref = edge_width(reference, circles, mask=edge_mask)
    if pore_mask is not None:
        if circles is not None:
            truth = render_circles(reference.shape, circles) > 0
            true_porosity = porosity(truth, pore_mask)
            true_radius = detect_pores(truth, circles, mask=pore_mask).radius
        else:
            true_seg = segment_pores(reference, pore_mask)
            true_porosity = porosity(true_seg, pore_mask)
            true_radius = pore_size_distribution(true_seg)
    return QualityContext(reference, fov, circles, pore_mask, uniform, corners, ref_nps, window, edge_mask,
                          edge_ref, true_seg, true_porosity, true_radius)


def slice_quality(image, reference, fov, *, circles=None, object_mask=None,
                  context: QualityContext | None = None) -> dict:
    """Every quality column of one slice (:data:`COLUMNS`), NaN where a measure does not apply.

    Columns (pixels and cycles/pixel of the slice's grid):

    - ``nps_mean_freq`` -- power-weighted mean frequency of the image's NPS in the uniform region
      (:func:`noise_power_spectrum`, 16-pixel ROIs; white noise: 0.281). Not better either way: lower than the
      low-dose input's means blotchier noise; compare with the FBP row of the same dose.
    - ``nps_freq_ratio`` -- ``nps_mean_freq`` over the reference's, on the same ROIs
      (:func:`nps_frequency_ratio`): 1 = the normal-dose texture (shale); for the foam see that function's note.
    - ``noise_power_ratio`` -- the image's noise variance in the uniform region over the reference's; lower is
      less noise; for the foam 1 = no more fluctuation than the noise-free FBP's discretisation residual.
    - ``noise_rel`` -- the image's noise standard deviation over the reference's mean level in the uniform
      region (1 / SNR of the matrix); lower is better; comparable across datasets.
    - ``nps_rois`` -- ROIs that fit the uniform region (0: the NPS columns are NaN).
    - ``frc_cutoff`` -- frequency where the Fourier ring correlation with the reference first falls below 0.5
      (:func:`frc_cutoff`); higher is better (max 0.5).
    - ``edge_width`` -- 10-90 % width of the mean edge-spread function across the true pore edges of radius
      >= 6 px (:func:`edge_width`); lower is sharper. NaN without a phantom (``circles``).
    - ``edge_width_ref`` -- the same for the reference (the sharpness a method is judged against).
    - ``n_edges`` -- pore edges that contributed to ``edge_width``.
    - ``porosity`` -- pore fraction of the image's segmentation (:func:`segment_pores`: below half the image's median
      in the sample) in the pore region.
    - ``porosity_error`` -- ``porosity`` minus the truth's (rendered phantom circles; without a phantom, the
      reference's segmentation by the same rule); 0 is best, the sign says pores lost (<0) or added (>0).
    - ``pore_detection`` -- fraction of true pores detected (:func:`detect_pores`; without a phantom: the
      reference's segmented pores, :func:`detect_reference_pores`); higher is better.
    - ``pore_detection_small`` -- the same for true pores of radius < 4 px; higher is better.
    - ``false_pores`` -- segmented pores that match no true pore (invented); lower is better.
    - ``psd_wasserstein`` -- 1-D Wasserstein distance in pixels between the equivalent radii of the segmented
      pores (:func:`pore_size_distribution`) and the radii of the true pores; lower is better.
    - ``n_pores`` -- true pores counted in ``pore_detection``.

    Parameters
    ----------
    image, reference : ndarray, shape (rows, cols)
        A reconstruction and the normal-dose reference of the same slice.
    fov : ndarray of bool, shape (rows, cols)
        Field of view (:func:`simulate.plumbing.circular_mask`).
    circles : ndarray, shape (n, 3), optional
        True pore sections of this slice (foam: :func:`simulate.phantoms.pore_sections` at ``z = k + 0.5``).
    object_mask : ndarray of bool, optional
        Where pores are searched (see :func:`quality_context`).
    context : QualityContext, optional
        :func:`quality_context` of this reference (then ``reference``, ``fov``, ``circles`` and
        ``object_mask`` are taken from it).

    Returns
    -------
    dict
        ``{column: float}`` for every name in :data:`COLUMNS`, in that order.
    """
    ctx = context if context is not None else quality_context(reference, fov, circles=circles,
                                                              object_mask=object_mask)
    image = np.asarray(image, dtype=np.float64)
    if image.shape != ctx.reference.shape:
        raise ValueError(f"shape mismatch: image {image.shape} vs reference {ctx.reference.shape}")
    nan = float("nan")
    out = dict.fromkeys(COLUMNS, nan)

    s = noise_power_spectrum(image, ctx.uniform, corners=ctx.corners)
    out["nps_rois"] = s.n_rois
    if not s.n_rois:
        logger.debug("no %d-pixel ROI fits the uniform region: NPS columns NaN", NPS_ROI)
    if s.n_rois:
        f_img = mean_frequency(s.freqs, s.nps)
        out["nps_mean_freq"] = f_img
        out["nps_freq_ratio"] = f_img / mean_frequency(ctx.ref_nps.freqs, ctx.ref_nps.nps)
        out["noise_power_ratio"] = s.variance / ctx.ref_nps.variance if ctx.ref_nps.variance > 0 else nan
        out["noise_rel"] = np.sqrt(s.variance) / abs(ctx.ref_nps.mean) if ctx.ref_nps.mean != 0 else nan

    out["frc_cutoff"] = frc_cutoff(*frc(image, ctx.reference, window=ctx.window))

    if ctx.circles is not None:
        e = edge_width(image, ctx.circles, mask=ctx.edge_mask)
        out.update(edge_width=e.width, edge_width_ref=ctx.edge_ref.width, n_edges=e.n_edges)
    else:
        out["n_edges"] = 0

    if ctx.pore_mask is not None:
        seg = segment_pores(image, ctx.pore_mask)
        out["porosity"] = porosity(seg, ctx.pore_mask)
        out["porosity_error"] = out["porosity"] - ctx.true_porosity
        if ctx.circles is not None:
            det = detect_pores(seg, ctx.circles, mask=ctx.pore_mask)
        else:
            det = detect_reference_pores(seg, ctx.true_seg)
        out["n_pores"] = len(det.radius)
        out["false_pores"] = det.false_pores
        if len(det.radius):
            out["pore_detection"] = float(det.detected.mean())
            small = det.radius < SMALL_PORE_RADIUS
            if small.any():
                out["pore_detection_small"] = float(det.detected[small].mean())
        radii = pore_size_distribution(seg)
        if radii.size and ctx.true_radius.size:
            out["psd_wasserstein"] = float(stats.wasserstein_distance(radii, ctx.true_radius))
    else:
        out["n_pores"] = 0
    return {k: float(v) for k, v in out.items()}
