"""Automatic rotation-centre finding for parallel-beam scans over [0, pi).

Convention (the one of :mod:`simulate.reconstruct` and :mod:`simulate.dxchange`): the centre is a pixel-edge
coordinate along the detector, ``detector / 2`` meaning a centred axis; TomoPy's pixel-index centre is half a pixel
less.

Criterion (:data:`CRITERION`): the Shannon entropy of the histogram (:func:`histogram_entropy`) of the Hann-filtered
FBP of a few rows, inside the disc that every candidate axis sees, minimised over the centre -- the criterion of
``tomopy.find_center`` (Donath et al. 2006) -- started from a global estimate by the symmetry of the sinogram
(Vo et al. 2014, :func:`_mirror_center`) and refined within ``max(8, detector / 16)`` pixels of it. Without tomopy
(or with ``backend="astra"``) the refinement descends coarse to fine (:func:`_grid_search`): on a detector binned to
about 64 pixels, then at each halving of the bin, it walks downhill one binned pixel at a time, and at full resolution
an equiangular (V-shaped) fit through the minimum and its two integer neighbours gives the sub-pixel centre (near it
the criterion grows like ``|c - c0|``). Every candidate is a whole number of pixels from ``detector / 2``, so no
candidate's sinogram is smoothed by interpolation more than another's. With tomopy, ``tomopy.find_center``
(Nelder-Mead, row by row, the median) starts from the same estimate. Why each choice: docs/methods.md, "The rotation
axis".

Command line: ``python -m simulate.center PROJ.h5 [--rows A B]`` prints the centre of a normalised projection file
(:func:`simulate.acquire.write_projections` layout).
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
from scipy import ndimage

from .plumbing import InputError, circular_mask, cli
from .reconstruct import reconstruct, resolve_backend

__all__ = ["CRITERION", "criterion_name", "histogram_entropy", "center_scores", "find_center", "main"]

logger = logging.getLogger(__name__)

CRITERION = "minimum entropy of the FBP histogram, started from the sinogram symmetry (Vo 2014)"
"""What :func:`find_center` minimises, in words (recorded as ``center_method``)."""

N_BINS = 64          # histogram bins, as tomopy.find_center
COARSE_WIDTH = 64    # detector pixels at the coarsest level of the search
DEFAULT_ROWS = 3     # central rows used when none are given
FILTER = "hann"      # FBP filter of the criterion: a ramp filter lets noise dominate the histogram


def criterion_name(backend: str = "auto") -> str:
    """The criterion and the implementation :func:`find_center` uses with ``backend``, in words."""
    if resolve_backend(backend) == "tomopy":
        return f"{CRITERION}, tomopy.find_center"
    return f"{CRITERION}, coarse-to-fine descent, astra"


def histogram_entropy(values, lo: float, hi: float, bins: int = N_BINS) -> float:
    """Shannon entropy (bits) of the histogram of ``values`` on ``[lo, hi]``.

    Probabilities are counts over the number of values (values outside the range count in
    none of the bins), as in ``tomopy.find_center``.

    Examples
    --------
    >>> histogram_entropy(np.array([0.1, 0.1, 0.9, 0.9]), 0.0, 1.0, bins=2)
    1.0
    >>> histogram_entropy(np.full(4, 0.1), 0.0, 1.0, bins=2)
    0.0
    """
    values = np.asarray(values).ravel()
    hist, _ = np.histogram(values, bins=bins, range=(lo, hi))
    p = hist[hist > 0] / max(values.size, 1)
    return float((p * np.log2(1.0 / p)).sum())


def _row_range(rows, n_rows: int) -> tuple[int, int]:
    """``(start, stop)`` of the rows to use: the given ones or :data:`DEFAULT_ROWS` central ones."""
    if rows is None:
        n = min(DEFAULT_ROWS, n_rows)
        start = (n_rows - n) // 2
        return start, start + n
    if isinstance(rows, slice):
        if rows.step not in (None, 1):
            raise ValueError(f"rows must be contiguous, got step {rows.step}")
        rows = (rows.start or 0, n_rows if rows.stop is None else rows.stop)
    start, stop = (int(r) for r in rows)
    if not 0 <= start < stop <= n_rows:
        raise ValueError(f"rows {start}:{stop} outside the {n_rows} detector rows")
    return start, stop


def _search_range(search, n_det: int) -> tuple[float, float]:
    """The centre range to search (default: the central half of the detector)."""
    lo, hi = (n_det / 4, 3 * n_det / 4) if search is None else (float(s) for s in search)
    if not 0 < lo < hi < n_det:
        raise ValueError(f"search range {lo:g}:{hi:g} is not inside the detector of {n_det} pixels")
    if _seen_radius(lo, hi, n_det) < n_det / 8:
        raise ValueError(f"search range {lo:g}:{hi:g} is too wide: keep it within {n_det / 8:g}:"
                         f"{7 * n_det / 8:g}, so that every candidate axis sees a disc of radius detector/8")
    return lo, hi


def _seen_radius(lo: float, hi: float, n_det: int) -> float:
    """Radius of the disc about the axis that every projection sees, for every axis in ``[lo, hi]``."""
    return min(lo, n_det - hi)


def _fov_mask(n: int, radius: float) -> np.ndarray:
    """Mask of the disc of ``radius`` (less a pixel) about the centre of an ``n x n`` reconstruction."""
    return circular_mask((n, n), margin=max(n / 2 - radius + 1, 0.0))


def _level(sino, theta, b: int):
    """Average ``b`` detector pixels and thin the angles to about ``pi/2`` per detector pixel."""
    n = sino.shape[-1] // b
    if b > 1:
        sino = sino[..., :n * b].reshape(sino.shape[:-1] + (n, b)).mean(axis=-1, dtype=np.float32)
    step = max(1, int(len(theta) / (np.pi / 2 * n)))
    return np.ascontiguousarray(sino[::step]), theta[::step]


class _Scorer:
    """The criterion at integer offsets ``k`` from ``detector / 2`` on one level, memoised.

    Only the disc of ``radius`` (this level's pixels) about the axis counts, and the histogram
    range is fixed for the level by the FBP at offset ``k0``: its minimum and maximum there,
    widened by half their span on each side (as wide as tomopy's).
    """

    def __init__(self, sino, theta, backend, k0: int, radius: float):
        self.sino, self.theta, self.backend = sino, theta, backend
        self.mask = _fov_mask(sino.shape[-1], radius)
        rec = self.fbp(sino.shape[-1] / 2 + k0)
        vmin, vmax = float(rec.min()), float(rec.max())
        span = (vmax - vmin) or 1.0
        self.lo, self.hi = vmin - span / 2, vmax + span / 2
        self.scores = {k0: histogram_entropy(rec, self.lo, self.hi)}

    def fbp(self, center):
        """FBP of the level's rows at ``center``: the values inside the field of view."""
        rec = reconstruct(self.sino, self.theta, "fbp", center=center, filter_name=FILTER,
                          backend=self.backend)
        return rec[:, self.mask]

    def __call__(self, k: int) -> float:
        if k not in self.scores:
            self.scores[k] = histogram_entropy(self.fbp(self.sino.shape[-1] / 2 + k), self.lo, self.hi)
        return self.scores[k]


def center_scores(proj, theta, centers, *, rows=None, backend: str = "astra") -> np.ndarray:
    """The criterion (:func:`histogram_entropy` of the FBP) at each of ``centers``; lower is better.

    Parameters
    ----------
    proj : ndarray, shape (angles, rows, detector)
        Normalised line integrals.
    theta : ndarray, shape (angles,)
        Radians.
    centers : sequence of float
        Rotation centres, pixel edges (``detector / 2`` centred).
    rows : slice or (start, stop), optional
        Rows to use (default: :data:`DEFAULT_ROWS` central rows).
    backend : str
        Reconstruction backend (:func:`simulate.reconstruct.resolve_backend`).

    Returns
    -------
    ndarray of float, shape (len(centers),)
        Entropies (bits) inside the disc that every projection sees for every one of
        ``centers``, all on one histogram range (set by the FBP at ``detector / 2``).
    """
    proj, theta = _check(proj, theta)
    r0, r1 = _row_range(rows, proj.shape[1])
    sino = np.ascontiguousarray(proj[:, r0:r1])
    centers = [float(c) for c in centers]
    radius = _seen_radius(min(centers), max(centers), sino.shape[-1])
    if not 0 < min(centers) <= max(centers) < sino.shape[-1]:
        raise ValueError(f"centres {min(centers):g}..{max(centers):g} not inside the detector of "
                         f"{sino.shape[-1]} pixels")
    scorer = _Scorer(sino, theta, resolve_backend(backend), 0, radius)
    return np.array([histogram_entropy(scorer.fbp(c), scorer.lo, scorer.hi) for c in centers])


def _check(proj, theta):
    proj = np.asarray(proj, dtype=np.float32)
    theta = np.asarray(theta, dtype=np.float64)
    if proj.ndim != 3 or min(proj.shape) == 0:
        raise ValueError(f"projections must be a non-empty (angles, rows, detector) stack, got shape {proj.shape}")
    if theta.shape != (proj.shape[0],):
        raise ValueError(f"need one angle per projection: {theta.size} angles for {proj.shape[0]} projections")
    if not np.isfinite(proj).all():
        raise ValueError("projections hold NaN/Inf values")
    if not np.ptp(proj) > 0:
        raise ValueError("projections are constant: nothing to focus on")
    return proj, theta


def _descend(score, k: int, lo: int, hi: int) -> int:
    """Walk from integer ``k`` to a local minimum of ``score`` on ``[lo, hi]``."""
    while True:
        best = min((j for j in (k - 1, k, k + 1) if lo <= j <= hi), key=score)
        if best == k:
            return k
        k = best


def _v_fit(f_left: float, f_mid: float, f_right: float) -> float:
    """Sub-pixel position (-0.5..0.5) of the minimum of a V through three equally spaced values.

    The steeper side fixes the slope (equiangular line fit); ``f_mid`` must be the smallest.

    Examples
    --------
    >>> _v_fit(3.0, 1.0, 2.0)   # the V 0.5 + 2 * |x - 0.25| at x = -1, 0, 1
    0.25
    """
    slope = max(f_left, f_right) - f_mid
    if not slope > 0:
        return 0.0
    return float(np.clip(0.5 * (f_left - f_right) / slope, -0.5, 0.5))


def _mirror_center(proj, theta, lo: float, hi: float) -> float:
    """Coarse centre from the symmetry of the sinogram (Vo et al. 2014), global over ``[lo, hi]``.

    The projection at ``theta + pi`` is the one at ``theta`` mirrored about the axis, so the
    sinogram over [0, pi) followed by its mirror image shifted by ``2 * (center - detector / 2)``
    is the sinogram over [0, 2 pi) -- and only at the right centre is it free of jumps at pi.
    A sinogram of an object of radius ``R`` has its 2-D Fourier energy inside the double wedge
    ``|m| <= 2 pi R |u|`` (``m`` cycles per turn, ``u`` cycles per pixel); the mean magnitude
    outside it (``R`` a quarter of the detector, as Vo's default) is smallest at the right
    centre. It is evaluated at every half-pixel centre of the search range, on the rows'
    mean, smoothed (Gaussian, 3 angles x 1 pixel) and binned to at most 256 pixels.

    Returns
    -------
    float
        The centre, full-resolution pixel edges, to half a pixel of the binned detector.
    """
    sino = proj.mean(axis=1, dtype=np.float64)
    half_turn = (theta - theta[0]) < np.pi - 1e-6  # a scan over 2 pi: its first half
    sino = sino[half_turn]
    b = 1
    while sino.shape[-1] // b > 256:
        b *= 2
    n = sino.shape[-1] // b
    sino = sino[:, :n * b].reshape(len(sino), n, b).mean(axis=-1)
    sino = ndimage.gaussian_filter(sino[::max(1, len(sino) // 360)], (3, 1), mode="nearest")
    na = len(sino)
    d_lo, d_hi = int(np.ceil(2 * (lo / b - n / 2))), int(np.floor(2 * (hi / b - n / 2)))
    m = np.abs(np.fft.fftfreq(2 * na) * 2 * na)[:, None]
    outside = (m > 2 * np.pi * (n / 4) * np.fft.rfftfreq(n)[None, :]) & (m > max(1, na // 20))
    outside[:, 0] = False
    both = np.empty((2 * na, n))
    both[:na] = sino
    mirror = sino[:, ::-1]  # mirrored about detector / 2
    metric = []
    for d in range(d_lo, d_hi + 1):
        both[na:] = ndimage.shift(mirror, (0, d), order=0, mode="nearest")
        metric.append(np.abs(np.fft.rfft2(both))[outside].mean())
    i = int(np.argmin(metric))
    if i in (0, len(metric) - 1) and len(metric) > 1:
        raise ValueError(f"the sinogram-symmetry metric has no minimum inside the search range "
                         f"{lo:g}:{hi:g} (best at its edge): widen it")
    return (n / 2 + (d_lo + i) / 2) * b


def _refine_range(start: float, lo: float, hi: float, n_det: int):
    """The entropy's candidates: ``[lo, hi]`` within ``max(8, n_det / 16)`` pixels of ``start``.

    Returns ``(lo, hi, where)``, ``where`` describing the range for error messages.
    """
    reach = max(8.0, n_det / 16)
    if start - reach <= lo and hi <= start + reach:
        return lo, hi, f"inside the search range {lo:g}:{hi:g}: widen it"
    return (max(lo, start - reach), min(hi, start + reach),
            f"within {reach:g} pixels of the sinogram-symmetry estimate {start:g}")


def _grid_search(proj, theta, lo: float, hi: float, backend: str) -> float:
    """Coarse start, then level-by-level entropy descent and V fit (see the module docstring)."""
    n_det = proj.shape[-1]
    start = _mirror_center(proj, theta, lo, hi)
    logger.debug("sinogram symmetry: centre %.1f", start)
    lo, hi, where = _refine_range(start, lo, hi, n_det)
    radius, center = _seen_radius(lo, hi, n_det), start
    b = 1
    while n_det // (2 * b) >= COARSE_WIDTH:
        b *= 2
    while True:
        sino, th = _level(proj, theta, b)
        half = sino.shape[-1] / 2  # == (n_det // b) / 2, the centred axis on this level
        k_lo, k_hi = int(np.ceil(lo / b - half)), int(np.floor(hi / b - half))
        if k_hi < k_lo:
            raise ValueError(f"search range {lo:g}:{hi:g} holds no candidate at {b}-pixel steps")
        k = min(max(int(round(center / b - half)), k_lo), k_hi)
        score = _Scorer(sino, th, backend, k, radius / b)
        k = _descend(score, k, k_lo, k_hi)
        if k in (k_lo, k_hi) and k_hi > k_lo:
            raise ValueError(f"the entropy has no minimum {where} (best at its edge, {(half + k) * b:g})")
        logger.debug("bin %d: centre %.1f (%d candidates)", b, (half + k) * b, len(score.scores))
        if b == 1:
            return half + k + _v_fit(score(k - 1), score(k), score(k + 1))
        center, b = (half + k) * b, b // 2


def _tomopy_center(proj, theta, r0: int, r1: int, lo: float, hi: float) -> float:
    """``tomopy.find_center`` on each row (median), converted to pixel edges.

    Its starting guess is :func:`_mirror_center`'s and its circular mask the disc the grid
    search uses about that start (``ratio``: the disc's diameter over the reconstruction's width).
    """
    import tomopy

    start = _mirror_center(proj[:, r0:r1], theta, lo, hi)
    ratio = 2 * _seen_radius(*_refine_range(start, lo, hi, proj.shape[-1])[:2], proj.shape[-1]) / proj.shape[-1]
    init = start - 0.5  # tomopy: pixel-index coordinate
    found = [float(np.ravel(tomopy.find_center(proj, theta, ind=r, init=init, tol=0.1, mask=True,
                                               ratio=ratio))[0])
             for r in range(r0, r1)]
    return float(np.median(found)) + 0.5


def find_center(proj, theta, *, rows=None, search=None, backend: str = "auto") -> float:
    """Rotation centre of a parallel-beam scan: the one whose FBP is in focus (:data:`CRITERION`, module docstring).

    Parameters
    ----------
    proj : ndarray, shape (angles, rows, detector)
        Normalised line integrals (``-log`` of flat/dark-normalised counts).
    theta : ndarray, shape (angles,)
        Angles, radians, over [0, pi) (pi itself need not be among them).
    rows : slice or (start, stop), optional
        Rows to reconstruct (default: the :data:`DEFAULT_ROWS` central rows). One histogram
        pools them, so more rows average out noise, at proportional cost.
    search : (low, high), optional
        Centre range to search, pixel edges (default: the central half of the detector,
        ``detector / 4`` to ``3 * detector / 4``; at most ``detector / 8`` to
        ``7 * detector / 8``). It also sets the disc the criterion is evaluated in.
        A minimum at its edge, or (tomopy) a result outside it, is an error.
    backend : str
        ``"auto"`` (tomopy if importable, else astra), ``"tomopy"`` or ``"astra"``.

    Returns
    -------
    float
        The centre, pixel-edge coordinate along the detector (``detector / 2`` = centred).

    Raises
    ------
    ValueError
        Inconsistent or constant projections, rows or a search range outside the detector,
        or a criterion whose minimum lies at the edge of the search range (no centre found).
    """
    proj, theta = _check(proj, theta)
    n_det = proj.shape[-1]
    r0, r1 = _row_range(rows, proj.shape[1])
    lo, hi = _search_range(search, n_det)
    backend = resolve_backend(backend)
    t0 = time.perf_counter()
    if backend == "tomopy":
        center = _tomopy_center(proj, theta, r0, r1, lo, hi)
        if not lo <= center <= hi:
            raise ValueError(f"tomopy.find_center gave {center:g}, outside the search range {lo:g}:{hi:g}")
    else:
        center = _grid_search(np.ascontiguousarray(proj[:, r0:r1]), theta, lo, hi, backend)
    logger.info("rotation centre %.2f (rows %d:%d, %s, %.1f s)", center, r0, r1, criterion_name(backend),
                time.perf_counter() - t0)
    return float(center)


@cli
def main(argv=None):
    """``python -m simulate.center PROJ.h5 [--rows A B] [--search LO HI] [--backend B]``"""
    from .acquire import read_projections

    p = argparse.ArgumentParser(prog="python -m simulate.center",
                                description="Print the rotation centre of normalised projections (pixel edges, "
                                            "detector/2 = centred), found by " + CRITERION + ".")
    p.add_argument("proj", help="normalised projections (simulate.acquire layout, e.g. from simulate.dxchange)")
    p.add_argument("--rows", type=int, nargs=2, metavar=("A", "B"),
                   help=f"detector rows A:B to use (default: the {DEFAULT_ROWS} central rows)")
    p.add_argument("--search", type=float, nargs=2, metavar=("LO", "HI"),
                   help="centre range to search (default: the central half of the detector)")
    p.add_argument("--backend", default="auto", help="auto, tomopy or astra")
    args = p.parse_args(argv)
    data, theta, _ = read_projections(args.proj)
    try:
        center = find_center(data, theta, rows=args.rows, search=args.search, backend=args.backend)
    except ValueError as exc:
        raise InputError(args.proj, str(exc)) from None
    print(f"{center:.2f}")


if __name__ == "__main__":
    main()
