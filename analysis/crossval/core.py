"""The held-out residual: K interleaved folds of the views, each predicted from the others and scored.

Procedure (:func:`holdout_residual`), for a scan ``data`` ``(angles, rows, detector)`` with angles ``theta``:

1. :func:`folds` splits the views into ``K`` interleaved folds (fold ``j``: views ``j, j+K, j+2K, ...``),
   so each fold and each training set covers ``[0, pi)`` evenly.
2. For each fold, the method gets the projections and angles of the *other* folds only -- copies taken
   before the call, so it cannot reach the left-out views -- and returns ``(slices, size, size)``.
3. That image, restricted to its circular field of view (outside the disc set to 0), is forward-projected
   at the fold's angles with :func:`simulate.reconstruct.project` (the same ``linear`` projector the
   reconstructions use), and moved along the detector so that its axis sits at ``center`` -- the inverse of
   the shift :func:`simulate.reconstruct.fbp` applies to the measured data -- so measured and predicted
   projections share one geometry (checked by ``tests/test_crossval.py`` on an off-centre scan).
4. The residual ``r = A x - p`` is scored on the *rays of the field of view*: the detector pixels whose
   ray crosses the reconstruction disc (distance from the axis at most ``size / 2 - 1`` pixels). Other
   rays see what no reconstruction on this grid describes.

Scores:

- with ``incident`` (``I0`` photons per detector pixel, scalar or per detector pixel), each squared
  residual is weighted by the inverse of its Poisson variance. From ``counts = I0 exp(-p)``,
  ``var(p) ~= exp(p) / I0``; the weight ``I0 exp(-p)`` is taken from the *measured* ``p`` (the detected
  counts: the usual weights of penalised weighted least squares), so it is the same for every method.
  The score is then the residual **relative to the noise level**: a perfect image scores about 1
  (``1 - O(1/counts)``), and ``score - 1`` is the method's own error in units of the noise;
- without ``incident``: the plain mean squared residual, in (line integral)^2 -- for a perfect image,
  the mean noise variance of the held-out projections.

Which residual (``residual``, :func:`residual_kind`): the plain one charges an image's error at spatial frequency
``f`` by ``1 / |f|`` (Fourier slice theorem), so noise left in an image costs little and the plain score prefers
too little smoothing. On photon-limited data (``auto`` with ``incident``) each fold's residual is first filtered by
``sqrt(|f|)`` along the detector (``ramp``), which makes its sum of squares the image-domain squared error, every
pixel alike; it is divided by the noise level the filter passes (its mean power times the mean Poisson variance of
the rays), so a perfect image still scores about 1. Sparse-view data without noise keep the plain residual
(:func:`residual_kind` says why).

Cost: per fold, one run of the method on ``(K-1)/K`` of the views plus one forward projection of the
``N/K`` left-out views; in all about ``K`` times the method itself (the workflow's benchmark files,
``benchmarks/crossval/``, time each job). For denoisers (TV, BM3D, a model) the forward projections
are a small part of the cost.
:func:`tune_by_holdout` makes each fold's FBP (or SIRT run, for all counts at once) once for the grid.

Limits: the sample must lie inside the reconstruction disc. For a scan of a sample wider than the field
of view (local tomography) every held-out ray also crosses material outside the disc, which adds a floor
common to all methods. The held-out residual ranks methods run on ``(K-1)/K`` of the views; a method whose
best parameter depends strongly on the number of views is tuned for slightly sparser data than the scan.

Examples
--------
>>> [f.tolist() for f in folds(10, k=4)]
[[0, 4, 8], [1, 5, 9], [2, 6], [3, 7]]
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Dict, List, Protocol, Tuple

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
    """The outcome of :func:`tune_by_holdout`: ``chosen`` has the smallest score of ``scores``."""

    method: str
    parameter: str
    chosen: float
    scores: Dict[float, HoldoutResult]


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

    Why: by the Fourier slice theorem, a projection's detector frequency ``f`` samples the image's spectrum on a
    line through the origin, so the plain squared residual weights the image's error at spatial frequency ``f``
    by ``1 / |f|``: high-frequency noise left in an image costs it little, and the held-out residual then
    prefers too little smoothing. Filtering the residual by ``sqrt(|f|)`` first undoes that weight -- the sum of
    squares becomes the image-domain squared error at the held-out angles -- which is what the reference's SSIM
    and PSNR see. On sparse-view data, though, the folds' reconstructions from ``(K-1)/K`` of the views carry
    more streaks than the scan's own, and the ramp weight makes the score pick more smoothing than the whole
    scan needs; so ``auto`` keeps the plain residual there. ``bench/crossval_residual.py`` measures both
    against the reference.

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
    k : int
        Folds.
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


