"""The held-out residual: K interleaved folds of the views, each predicted from the others and scored.

:func:`holdout_residual` splits the views into ``K`` interleaved folds (:func:`folds`); for each, the method gets
copies of the *other* folds' projections and angles only, and its image -- zero outside the reconstruction disc --
is forward-projected at the fold's angles with the reconstructions' own projector and moved along the detector so
that its axis sits at ``center``. The residual against the measured projections is scored on the rays that cross
the disc (:func:`fov_rays`): Poisson-weighted relative to the noise level with ``incident`` (a perfect image scores
about 1), else the plain mean squared residual in (line integral)^2; ``residual`` picks the plain or the
ramp-filtered kind (:func:`residual_kind`). Why, what it costs and its limits: docs/methods.md, "Choosing a method
on your own scan, without a reference".

Examples
--------
>>> [f.tolist() for f in folds(10, k=4)]
[[0, 4, 8], [1, 5, 9], [2, 6], [3, 7]]
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Protocol, Tuple

import numpy as np
from scipy import ndimage

from simulate.plumbing import circular_mask
from simulate.reconstruct import central_slices, project

logger = logging.getLogger(__name__)

FOV_MARGIN = 1.0  # pixels: rays closer than this to the rim of the reconstruction disc are not scored
REFERENCE_COLUMNS = ("ssim", "psnr", "ssim_object", "psnr_object")  # what --reference adds (and chosen_by_reference)
REFERENCE_FOV_MARGIN = 2.0  # pixels left out at the rim when scoring against a reference (analysis.metrics' default)
MODEL_PREFIX = "tomogan:"  # a model's method name: tomogan:<label>
N2I = "n2i"  # Noise2Inverse's method name (trained from scratch, or the one --n2i candidate)
N2I_PREFIX = N2I + ":"  # a further Noise2Inverse candidate's method name: n2i:<label> (a fine-tune, say)
#: how a fold's residual is scored: ``plain`` squared residual; ``ramp``, filtered by ``sqrt(|f|)`` along the
#: detector first, so that its sum is the image-domain squared error (:func:`residual_kind`); ``auto`` -- ramp
#: on photon-limited data (weighted), plain otherwise
RESIDUALS = ("auto", "plain", "ramp")
KINDS = ("plain", "ramp")  # the residuals every score is also given in (score_plain, score_ramp)
RUN_FOLDER_FILES = ("model.pt", "checkpoint.pt", "served.pt")  # what the tools write in a run's folder
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


class Reconstructor(Protocol):
    """A method under test: the kept views in, a slice stack out.

    ``rec(data, theta, center, size, *, backend="auto", threads=1)``

    Parameters
    ----------
    data : ndarray of float32, shape (angles, rows, detector)
        Line integrals of the kept views only.
    theta : ndarray, shape (angles,)
        Their angles, radians.
    center : float
        Rotation axis on the detector, pixels (``detector / 2`` when centred).
    size : int
        Side of the square reconstruction grid.

    Returns
    -------
    ndarray, shape (rows, size, size)
    """

    def __call__(self, data: np.ndarray, theta: np.ndarray, center: float, size: int, *,
                 backend: str = "auto", threads: int = 1) -> np.ndarray: ...


@dataclass(frozen=True)
class HoldoutResult:
    """A method's held-out residual.

    Attributes
    ----------
    score : float
        Mean of ``fold_scores``; lower is better.
    fold_scores : tuple of float
        One score per fold.
    k : int
        Number of folds.
    weighted : bool
        True: Poisson-weighted, relative to the noise level (a perfect image scores about 1);
        False: plain mean squared residual, (line integral)^2.
    n_rays : int
        Rays scored over all folds (field-of-view rays of the held-out views and slices).
    residual : str
        ``plain`` or ``ramp`` (filtered along the detector first, :data:`RESIDUALS`): the kind ``score`` is.
    by_residual : dict
        The mean score of each kind, ``{"plain": ..., "ramp": ...}`` (both come from one forward projection):
        what the other residual would have said, for :func:`check`'s comparison.
    """

    score: float
    fold_scores: Tuple[float, ...]
    k: int
    weighted: bool
    n_rays: int
    residual: str = "plain"
    by_residual: Dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TuneResult:
    """The outcome of :func:`tune_by_holdout`: ``chosen`` has the smallest score of ``scores``. ``by_proxy``: the
    grid was searched with the method's cheaper stand-in, so every score but the chosen value's is the stand-in's."""

    method: str
    parameter: str
    chosen: float
    scores: Dict[float, HoldoutResult]
    by_proxy: bool = False


# ----------------------------------------------------------------------------- searching a grid

SEARCHES = ("grid", "descent")  # how a tuner visits a grid: every value, or a descent from its middle


def grid_descent(shape: Tuple[int, ...], score, start: Optional[Tuple[int, ...]] = None) -> Dict[Tuple[int, ...], float]:
    """The points of a grid of ``shape`` a descent visits, each with its ``score`` (lower is better).

    From ``start`` (default the grid's middle), a line search along each axis in turn -- a step to the better
    neighbour along that axis, on while the score falls -- until a pass over every axis moves nowhere, so it stops
    at a local minimum; ``score(index)`` is called once per point visited. Where the score falls and then rises
    along each axis -- the held-out score of a regulariser's weight does, on every scan the workflow's ``crossval``
    rule scores, ``check.csv``'s ``descent_agrees`` -- the minimum it stops at is the grid's, at a fraction of the
    points. Ties go to the lower index.

    >>> curve = [5, 4, 3, 2, 1, 2, 3, 4]
    >>> seen = grid_descent((8,), lambda i: curve[i[0]])
    >>> min(seen, key=seen.get), len(seen)
    ((4,), 4)
    >>> seen = grid_descent((3, 3), lambda i: (i[0] - 2) ** 2 + i[1] ** 2)
    >>> min(seen, key=seen.get), len(seen)
    ((2, 0), 6)
    """
    seen: Dict[Tuple[int, ...], float] = {}

    def at(point):
        if point not in seen:
            seen[point] = float(score(point))
        return seen[point]
    here = tuple((n - 1) // 2 for n in shape) if start is None else tuple(int(i) for i in start)
    if len(here) != len(shape) or not all(0 <= i < n for i, n in zip(here, shape)):
        raise ValueError(f"start {start} is not a point of a grid of shape {shape}")
    moved = True
    while moved:
        moved = False
        for a in range(len(shape)):
            while True:
                near = [here] + [here[:a] + (here[a] + d,) + here[a + 1:] for d in (-1, 1)
                                 if 0 <= here[a] + d < shape[a]]
                best = min(near, key=lambda p: (at(p), p))
                if best == here:
                    break
                here, moved = best, True
    return seen


# ----------------------------------------------------------------------------- folds and rays

def folds(n_angles: int, k: int = 4) -> List[np.ndarray]:
    """``k`` interleaved folds of view indices: fold ``j`` is ``j, j+k, j+2k, ...`` (sorted).

    The folds partition ``range(n_angles)``; each spans the whole angular range.
    """
    n_angles, k = int(n_angles), int(k)
    if k < 2:
        raise ValueError(f"need k >= 2 folds, got {k}")
    if n_angles < 2 * k:
        raise ValueError(f"{n_angles} views are too few for {k} folds (need at least {2 * k})")
    return [np.arange(j, n_angles, k) for j in range(k)]


def fov_rays(n_det: int, center: float, size: int, *, margin: float = FOV_MARGIN) -> np.ndarray:
    """Boolean mask ``(n_det,)`` of the detector pixels whose ray crosses the reconstruction disc.

    Pixel ``i`` sees the ray at distance ``|i + 0.5 - center|`` from the axis; it is kept when that is at
    most ``size / 2 - margin``.

    >>> fov_rays(8, 4.0, 8).astype(int)
    array([0, 1, 1, 1, 1, 1, 1, 0])
    """
    u = np.arange(n_det) + 0.5 - float(center)
    return np.abs(u) <= size / 2 - margin


def _to_detector(pred: np.ndarray, center: float) -> np.ndarray:
    """Move projections whose axis is at ``detector / 2`` so that it sits at ``center``.

    The inverse of :func:`simulate.reconstruct._center_sinogram` (same linear interpolation).
    """
    offset = float(center) - pred.shape[-1] / 2
    if offset == 0:
        return pred
    return ndimage.shift(pred, (0,) * (pred.ndim - 1) + (offset,), order=1, mode="nearest")


# ----------------------------------------------------------------------------- the held-out residual

def _check(data, theta, center, size, incident, slices):
    data = np.asarray(data, dtype=np.float32)
    theta = np.asarray(theta, dtype=np.float64)
    if data.ndim != 3:
        raise ValueError(f"projections must be (angles, rows, detector), got shape {data.shape}")
    if theta.shape != (data.shape[0],):
        raise ValueError(f"need one angle per projection: {theta.size} angles for {data.shape[0]} projections")
    n_det = data.shape[-1]
    center = n_det / 2 if center is None else float(center)
    size = int(size or n_det)
    weights = None
    if incident is not None:
        i0 = np.asarray(incident, dtype=np.float64)
        if not (np.isfinite(i0).all() and (i0 > 0).all()):
            raise ValueError("incident photons I0 must be finite and > 0")
        try:
            i0 = np.broadcast_to(i0, data.shape[1:])
        except ValueError:
            raise ValueError(f"incident photons of shape {i0.shape} do not match detector rows x pixels "
                             f"{data.shape[1:]}") from None
        weights = i0
    if slices is not None:
        rows = (central_slices(data.shape[1], int(slices)) if np.ndim(slices) == 0
                else np.asarray(slices, dtype=int))
        data = data[:, rows]
        weights = None if weights is None else weights[rows]
    rays = fov_rays(n_det, center, size)
    if not rays.any():
        raise ValueError(f"no detector pixel of {n_det} sees the {size}-pixel disc around centre {center}")
    return data, theta, center, size, weights, rays


def residual_kind(residual: str, weighted: bool) -> str:
    """The residual a score uses: ``plain`` or ``ramp``; ``auto`` is ``ramp`` when ``weighted`` (photon-limited).

    Why: docs/methods.md, "Which residual"; ``bench/crossval_residual.py`` measures both against the reference.

    >>> residual_kind("auto", True), residual_kind("auto", False), residual_kind("ramp", False)
    ('ramp', 'plain', 'ramp')
    """
    if residual not in RESIDUALS:
        raise ValueError(f"residual must be one of {', '.join(RESIDUALS)}, got '{residual}'")
    return ("ramp" if weighted else "plain") if residual == "auto" else residual


class _Scorer:
    """Scores a fold's prediction against its measured projections (one geometry, one set of rays)."""

    def __init__(self, data, theta, held, center, size, i0, rays, backend, threads, residual="plain"):
        self.theta = theta[held]
        self.measured = data[held][:, :, rays].astype(np.float64)
        # Poisson weights from the measured counts, 1 / var(p) = I0 exp(-p)
        self.weights = None if i0 is None else i0[None, :, rays] * np.exp(-self.measured)
        self.center, self.size, self.n_det, self.rays = center, size, data.shape[-1], rays
        self.disc = circular_mask((size, size))
        self.backend, self.threads = backend, threads
        self.residual = residual
        # sqrt(|f|) on a zero-padded detector (no wrap-around). Its mean power is the variance it leaves of unit
        # white noise, so with Poisson noise of variance 1 / w per ray the filtered noise level is that power times
        # the mean variance: a perfect image's ramp score is then about 1
        n_fft = 2 * self.n_det
        self.ramp = np.sqrt(np.abs(np.fft.rfftfreq(n_fft)))
        ramp_power = float(np.mean(np.abs(np.fft.fftfreq(n_fft))))
        self.ramp_noise = None if self.weights is None else ramp_power * float(np.mean(1.0 / self.weights))

    def __call__(self, volume) -> float:
        """The score of this scorer's residual."""
        return self.scores(volume)[self.residual]

    def scores(self, volume) -> Dict[str, float]:
        """The score of every residual kind (:data:`KINDS`), from one forward projection."""
        volume = np.asarray(volume, dtype=np.float32)
        if volume.ndim != 3 or volume.shape[1:] != (self.size, self.size) or \
                volume.shape[0] != self.measured.shape[1]:
            raise ValueError(f"method returned shape {volume.shape}, expected "
                             f"({self.measured.shape[1]}, {self.size}, {self.size})")
        pred = project(volume * self.disc, self.theta, n_det=self.n_det, backend=self.backend,
                       threads=self.threads)
        r = _to_detector(pred, self.center)[:, :, self.rays] - self.measured
        r2 = r ** 2
        out = {"plain": float(np.mean(r2 if self.weights is None else self.weights * r2))}
        # not whitened: every ray, so every pixel of the image, counts alike (whitening would discount the rays
        # through dense material, and with them the errors there); relative to the noise the filter passes
        full = np.zeros(r.shape[:2] + (self.n_det,))  # rays outside the field of view add nothing
        full[:, :, self.rays] = r
        spectrum = np.fft.rfft(full, n=2 * self.n_det, axis=-1) * self.ramp
        filtered = np.fft.irfft(spectrum, n=2 * self.n_det, axis=-1)[:, :, :self.n_det][:, :, self.rays]
        out["ramp"] = float(np.mean(filtered ** 2) / (1.0 if self.weights is None else self.ramp_noise))
        return out

    @property
    def n_rays(self) -> int:
        return int(self.measured.size)


def held_out_folds(data, theta, *, k, center, size, incident, slices, backend, threads, residual="auto"):
    """Yield ``(kept_data, kept_theta, center, size, scorer)`` per fold: the kept arrays are copies without the
    fold's views, and ``scorer(volume)`` scores a volume made from them on the fold's views (every tuner's loop)."""
    data, theta, center, size, i0, rays = _check(data, theta, center, size, incident, slices)
    all_views = np.arange(data.shape[0])
    residual = residual_kind(residual, i0 is not None)
    for held in folds(data.shape[0], k):
        kept = np.setdiff1d(all_views, held)
        scorer = _Scorer(data, theta, held, center, size, i0, rays, backend, threads, residual)
        yield np.ascontiguousarray(data[kept]), theta[kept].copy(), center, size, scorer


def fold_result(fold_scores, k, weighted, n_rays, residual) -> HoldoutResult:
    """From each fold's scores of every kind (dicts), the result in ``residual``'s kind."""
    main = [f[residual] for f in fold_scores]
    return HoldoutResult(float(np.mean(main)), tuple(float(s) for s in main), int(k), bool(weighted), int(n_rays),
                         residual, {kind: float(np.mean([f[kind] for f in fold_scores])) for kind in KINDS})


def holdout_residual(data, theta, reconstructor: Reconstructor, *, k: int = 4, center=None, size=None,
                     incident=None, slices=None, residual: str = "auto", backend: str = "auto",
                     threads: int = 1) -> HoldoutResult:
    """K-fold held-out residual of a method on a scan (see the module docstring).

    Parameters
    ----------
    data : ndarray, shape (angles, rows, detector)
        Measured line integrals.
    theta : ndarray, shape (angles,)
        Angles, radians.
    reconstructor : Reconstructor
        The method; it is called once per fold with the other folds' views only.
    center : float, optional
        Rotation axis, detector pixels (default ``detector / 2``).
    size : int, optional
        Reconstruction grid side (default: the detector width).
    incident : float or ndarray, optional
        I0, photons per detector pixel (scalar, ``(detector,)`` or ``(rows, detector)``): score relative
        to the Poisson noise level. None: plain mean squared residual.
    slices : int or sequence of int, optional
        Detector rows to use: ``N`` central ones, or these indices (default all).
    residual : str
        ``plain``, ``ramp`` or ``auto`` (ramp when ``incident`` is given), :func:`residual_kind`.

    Returns
    -------
    HoldoutResult
    """
    scores, n_rays, scorer = [], 0, None
    for kept_data, kept_theta, c, s, scorer in held_out_folds(data, theta, k=k, center=center, size=size,
                                                         incident=incident, slices=slices, backend=backend,
                                                         threads=threads, residual=residual):
        scores.append(scorer.scores(reconstructor(kept_data, kept_theta, c, s, backend=backend, threads=threads)))
        n_rays += scorer.n_rays
    return fold_result(scores, k, incident is not None, n_rays, scorer.residual)


