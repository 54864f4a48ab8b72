"""Resolution: the edge-spread width across known pore edges, and the Fourier ring correlation.

Part of :mod:`analysis.quality`; every public name is importable from there."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage

from analysis.quality.noise import _ring_index
from analysis.quality.rules import (EDGE_GUARD, EDGE_HALF_WIDTH, EDGE_MIN_RADIUS, EDGE_STEP, FRC_TAPER,
                                    FRC_THRESHOLD, _centre)


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

    For each circle (:func:`simulate.phantoms.pore_sections`) with ``r >= min_radius``, radial profiles are
    sampled (bilinear) at offsets ``-half_width .. +half_width`` (step ``step``) from the true edge, about one per
    pixel of circumference. A profile is kept only when every sample lies inside ``mask`` (nearest pixel; default
    everywhere) and none comes within ``guard`` pixels of another circle (used or not). The kept profiles are
    averaged into one edge-spread function (ESF), plateaus the mean of its first and last pixel. ``width`` is in
    pixels (a perfectly sampled step gives about 0.8).

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


def _taper(mask, width: float) -> np.ndarray:
    """1 deep inside ``mask``, falling as a cosine to 0 over its last ``width`` pixels."""
    if width <= 0:
        return np.asarray(mask, dtype=np.float64)
    depth = ndimage.distance_transform_edt(mask)
    return np.sin(0.5 * np.pi * np.clip(depth / width, 0, 1)) ** 2


def frc(image, reference, *, fov=None, taper: float = FRC_TAPER, window=None) -> tuple[np.ndarray, np.ndarray]:
    """Fourier ring correlation of two slices, inside the field of view.

    ``FRC(k) = Re sum_ring F1 F2* / sqrt(sum_ring |F1|^2 sum_ring |F2|^2)`` over rings ``|f| ~ k / n``,
    ``k = 1 .. n // 2`` (``n`` the shorter side). Each slice loses its mean inside ``fov`` (default: the whole
    square) and is tapered by a cosine over its last ``taper`` pixels, or multiplied by a precomputed ``window``.
    Returns ``(freqs, frc)``: ring centres ``k / n`` in cycles/pixel, and the correlation per ring (NaN in a ring
    where either slice has no power).

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

    Why 0.5 and not the 1/7 of [3]_: docs/claims.md, "Primary and secondary metrics". The last ring's frequency
    (Nyquist) when the FRC never falls below; the first ring's when it is below from the start. A NaN ring (no
    power in one slice) counts as below.

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
