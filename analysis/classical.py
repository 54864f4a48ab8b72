"""The classical methods TomoGAN is compared with, as a registry (as tomopy registers its algorithms).

Each method has one parameter, chosen on validation slices by :mod:`analysis.tuning` and then applied
unchanged to the test volumes. A :class:`Method` records what the rest of the study needs to know about it:
its table column, its parameter and default grid, the input it works on, and two functions -- one that
makes the candidates of a grid on validation data, one that applies it at one value. :mod:`analysis.tuning`
(``tune``, ``apply``), :mod:`analysis.timing` and :mod:`analysis.tables` dispatch through :data:`METHODS`
and have no per-method code of their own.

================  ===============  =========================================  =======================  ===========
name              label            what it is                                 parameter (cell symbol)  input
================  ===============  =========================================  =======================  ===========
``sirt``          SIRT             SIRT from a zero start                     ``n_iter`` (``n``)       projections
``sirt-tv``       SIRT+TV          TV denoising of the tuned SIRT             ``weight`` (``w``)       sirt
``fbp-tv``        FBP+TV           Chambolle TV denoising of the FBP          ``weight`` (``w``)       fbp
``fbp-bm3d``      FBP+BM3D         BM3D (``bm3d`` package) of the FBP,        ``sigma`` (``σ``)        fbp
                                   noise taken as white
``tv-recon``      TV-PDHG          TV-regularised least squares (corrct's     ``weight`` (``λ``)       projections
                                   PDHG), run to a stop under a cap
``fbp-bm3d-psd``  FBP+BM3D (ramp)  BM3D of the FBP, noise with FBP's ramp     ``sigma`` (``σ``)        fbp
                                   spectrum
================  ===============  =========================================  =======================  ===========

The inputs (:data:`INPUTS`):

- ``"projections"``: a :class:`Projections` bundle (line integrals, angles, rotation axis, grid size);
- ``"fbp"``: an FBP reconstruction, ndarray ``(slices, rows, cols)``;
- ``"sirt"``: the tuned SIRT reconstruction, ndarray ``(slices, rows, cols)``. On validation data it is
  made from the projections at ``sirt``'s tuned count, so such a method ``needs`` ``("sirt",)``.

The TV and BM3D parameters are relative to the input's robust range (:func:`simulate.reconstruct.tv_denoise`,
:func:`simulate.reconstruct.bm3d_denoise`); TV runs a fixed :data:`TV_ITER` Chambolle iterations. ``tv-recon``'s
weight is relative to the robust range of the FBP of its projections, and its data term is averaged over the views
(:func:`simulate.tvrecon.tv_reconstruct`); it always runs on astra's projector matrix, whatever ``backend``, and
weights its data term only where a caller gives ``incident`` (a :class:`Projections` has none: plain least squares
here). ``fbp-bm3d-psd``'s σ means what ``fbp-bm3d``'s does, the noise's standard deviation relative to the
input's range; its spectrum is :func:`simulate.reconstruct.fbp_noise_psd` for the Ram-Lak filter, the study's FBP.

Examples
--------
>>> [(m.name, m.label, m.parameter, m.input) for m in METHODS.values()]  # doctest: +NORMALIZE_WHITESPACE
[('sirt', 'SIRT', 'n_iter', 'projections'), ('sirt-tv', 'SIRT+TV', 'weight', 'sirt'),
 ('fbp-tv', 'FBP+TV', 'weight', 'fbp'), ('fbp-bm3d', 'FBP+BM3D', 'sigma', 'fbp'),
 ('tv-recon', 'TV-PDHG', 'weight', 'projections'), ('fbp-bm3d-psd', 'FBP+BM3D (ramp)', 'sigma', 'fbp')]
>>> METHODS["sirt-tv"].needs, METHODS["sirt"].tuning_key
(('sirt',), 'sirt_n_iter')
>>> import numpy as np
>>> x = np.ones((1, 8, 8), np.float32)
>>> METHODS["fbp-tv"].apply(x, 0.1).shape
(1, 8, 8)
>>> METHODS["art"]
Traceback (most recent call last):
    ...
ValueError: unknown method 'art'; choose one of sirt, sirt-tv, fbp-tv, fbp-bm3d, tv-recon, fbp-bm3d-psd
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Iterable, NamedTuple, Optional, Sequence, Tuple

import numpy as np

__all__ = ["Method", "Projections", "METHODS", "INPUTS", "TV_ITER", "TV_PROXY_ITER", "TV_RECON_ITER", "TV_RECON_TOL",
           "DEFAULT_METHODS",
           "each_value",
           "format_value"]

logger = logging.getLogger(__name__)

TV_ITER = 1000  # Chambolle iterations (fixed: see simulate.reconstruct.tv_denoise)
# Chambolle iterations of TV's stand-in in a held-out search (Method.proxy): the search ranks a grid whose weights
# step by 2 or more, which the 200th iterate already orders as the 1000th does; the value chosen is then made and
# scored with TV_ITER (tests/test_crossval.py checks both choose alike on the test scan)
TV_PROXY_ITER = 200
# PDHG iterations of tv-recon at most: the cap, where its stop (TV_RECON_TOL) has not ended a run before. Measured on
# foams (SSIM and data misfit against iterations at each weight of the grid): on 128 pixels, 11 to 90 noise-free views
# and 180 views at 100 to 10^4 photons, the best SSIM over the grid gains under 0.005 from 800 to 1600 iterations (over
# 0.01 for 23 views from 400 to 800; the noisy data settle by 150); on 256 pixels with 23 views it still gains 0.008
# from 800 to 1200 and nothing from 1200 to 1600. Sparse views and small weights converge slowest; there the cap, not
# the stop, ends the run, and a weight's image is the cap's iterate from zero. Larger grids may need more.
TV_RECON_ITER = 1200
# tv-recon's stop (simulate.tvrecon): a run ends when, over STOP_WINDOW iterations, no slice's iterate moved by more
# than this times its norm. The criterion it was chosen by: the stopped image lies no farther from the 3000th
# iterate than the cap's image does, or within 20 times the tolerance (relative L2) of it. (The stricter "as near the
# cap's image as that is to the 3000th" would forbid any stop: where the data settle, the cap's image is within 1e-5
# to 2e-4 of the 3000th.) Measured on foams at 128 pixels (23 noise-free views; 180 views at 1000 photons; the 8
# weights of the grid) and 256 (90 noise-free views; 0.001, 0.01, 0.1): at 5e-5 the stopped images lay within 4.7e-4
# of the 3000th iterate (SSIM within 6e-4) and the runs ended at 450 to 1050 where they ended before the cap; at 1e-4
# they lay up to 6.8e-4 off (SSIM 1e-3). PDHG's iterate oscillates as it settles, so the change over a window does not
# fall steadily: small weights on sparse views still reach the cap.
TV_RECON_TOL = 5e-5
INPUTS = ("projections", "sirt", "fbp")


class Projections(NamedTuple):
    """The input of a method that reconstructs (``input == "projections"``).

    Attributes
    ----------
    data : ndarray, shape (angles, slices, detector)
        Line integrals.
    theta : ndarray, shape (angles,)
        Angles in radians.
    center : float
        Rotation axis on the detector, pixels.
    size : int or None
        Side of the square reconstruction grid (None: the detector width).
    """

    data: np.ndarray
    theta: np.ndarray
    center: float
    size: Optional[int] = None


@dataclass(frozen=True)
class Method:
    """One classical method with one tuned parameter.

    Parameters
    ----------
    name : str
        The name in file names, commands and tuning files (``"sirt"``, ``"fbp-tv"``, ...).
    label : str
        The column of the result tables (``"SIRT"``, ``"FBP+TV"``, ...).
    parameter : str
        The tuned parameter (``"n_iter"``, ``"weight"``, ``"sigma"``).
    symbol : str
        Its short symbol in table cells (``"n"``, ``"w"``, ``"σ"``).
    grid : tuple of float
        The default grid of values searched.
    input : one of :data:`INPUTS`
        What the method works on: ``"projections"``, ``"fbp"``, or ``"sirt"`` (the tuned SIRT).
    candidates : callable
        ``candidates(x, grid, *, backend, threads)`` -> iterable of ``(value, volume)``, one per value of
        ``grid`` in order, on validation input ``x`` (see :data:`INPUTS`); may be lazy (one volume held at a
        time) or share work between values (SIRT's iterates).
    apply : callable
        ``apply(x, value, *, backend="auto", threads=1)`` -> ndarray ``(slices, rows, cols)``: the method at
        one value.
    needs : tuple of str
        Methods whose tuning this one starts from (``sirt-tv``: ``("sirt",)``); their chosen value is
        recorded in its tuning result under their :attr:`tuning_key`.
    value_type : type
        ``int`` or ``float``: the type of the parameter's values (SIRT's count is an integer).
    timing_name : str
        The row of :mod:`analysis.timing`, a format string with fields ``label``, ``value`` and the
        names of ``needs`` (each value as :func:`format_value` writes it).
    run : callable or None
        ``run(xs, grid, *, backend, threads)`` -> per input of ``xs``, an object whose ``[value]`` is the method's
        volume at that value, made only as far as asked (SIRT: :class:`simulate.reconstruct.SirtRun`, one run
        continued; the held-out folds of one scan advancing together), for a search that visits some values in
        turn (:func:`analysis.crossval.tune_by_holdout`); None where ``candidates`` serves.
    proxy : callable or None
        A cheaper stand-in of ``apply``, same signature, that a held-out search may rank the grid's values with
        (:func:`analysis.crossval.tune_by_holdout`, ``proxy=True``; ``tomogan-scan`` does), the value it chooses
        then made and scored by ``apply`` itself. BM3D: the ``bm3d`` package's low-complexity profile; TV:
        :data:`TV_PROXY_ITER` Chambolle iterations.
    default : bool
        Run where no list of methods is given (:data:`DEFAULT_METHODS`: the config's ``classical.methods`` and
        ``tomogan-scan --methods``). False for a method offered but not yet shown to earn its cost there:
        ``tv-recon``, up to :data:`TV_RECON_ITER` PDHG iterations per weight (and per held-out fold), and
        ``fbp-bm3d-psd``, a second BM3D whose place beside white BM3D the study has yet to measure
        (docs/methods.md).
    """

    name: str
    label: str
    parameter: str
    symbol: str
    grid: Tuple[float, ...]
    input: str
    candidates: Callable[..., Iterable[Tuple[float, np.ndarray]]]
    apply: Callable[..., np.ndarray]
    needs: Tuple[str, ...] = ()
    value_type: type = float
    timing_name: str = "{label}, tuned"
    run: Optional[Callable[..., object]] = None
    proxy: Optional[Callable[..., np.ndarray]] = None
    default: bool = True

    def __post_init__(self):
        if self.input not in INPUTS:
            raise ValueError(f"method '{self.name}': input '{self.input}' is not one of {', '.join(INPUTS)}")
        if self.input not in ("projections", "fbp") and self.input not in self.needs:  # another method's output
            raise ValueError(f"method '{self.name}' works on {self.input}'s output, so it needs {self.input}")
        if not self.grid:
            raise ValueError(f"method '{self.name}' has an empty grid")

    @property
    def per_value(self) -> bool:
        """True when each value of the grid costs a run of its own (made by :func:`each_value`), so that a search
        visiting some of them saves work; False when one run makes them all (SIRT's iterates)."""
        return bool(getattr(self.candidates, "per_value", False))

    @property
    def tuning_key(self) -> str:
        """The key under which a method that starts from this one records this one's value (``sirt_n_iter``)."""
        return f"{self.name}_{self.parameter}"


def format_value(value) -> str:
    """A parameter value as rows and settings show it: an integer as is, a float with ``:g``.

    >>> format_value(50), format_value(0.05), format_value(1.0)
    ('50', '0.05', '1')
    """
    return str(value) if isinstance(value, (int, np.integer)) else f"{value:g}"


def each_value(apply: Callable[..., np.ndarray]) -> Callable[..., Iterable[Tuple[float, np.ndarray]]]:
    """The ``candidates`` of a method without shared work: ``apply`` at each value, lazily, one at a time."""
    def candidates(x, grid: Sequence[float], *, backend: str = "auto", threads: int = 1):
        return ((v, apply(x, v, backend=backend, threads=threads)) for v in grid)
    candidates.per_value = True  # each value costs one apply: a search may visit only some (Method.per_value)
    return candidates


# ----------------------------------------------------------------------------- the methods' functions

def _sirt(p: Projections, value, *, backend: str = "auto", threads: int = 1) -> np.ndarray:
    """SIRT with ``value`` iterations from a zero start."""
    from simulate.reconstruct import sirt

    return sirt(p.data, p.theta, n_iter=int(value), center=p.center, size=p.size, backend=backend,
                threads=threads)


def _sirt_runs(ps: Sequence[Projections], grid, *, backend: str = "auto", threads: int = 1) -> list:
    """Per input, SIRT's iterates at the grid's counts, run only as far as asked; inputs of one scan (the held-out
    folds: same rows, centre and grid) advance together (:meth:`simulate.reconstruct.SirtRun.together`)."""
    from simulate.reconstruct import SirtRun

    counts = [int(v) for v in grid]
    if len({(p.center, p.size) for p in ps}) > 1:
        return [SirtRun(p.data, p.theta, counts=counts, center=p.center, size=p.size, backend=backend,
                        threads=threads) for p in ps]
    return SirtRun.together([(p.data, p.theta, None) for p in ps], counts=counts, center=ps[0].center,
                            size=ps[0].size, backend=backend, threads=threads)


def _sirt_candidates(p: Projections, grid, *, backend: str = "auto", threads: int = 1):
    """SIRT's iterates at each count of the grid, in order, from one run."""
    run, = _sirt_runs([p], grid, backend=backend, threads=threads)
    return ((v, run[int(v)]) for v in grid)


def _tv(volume, value, *, backend: str = "auto", threads: int = 1) -> np.ndarray:
    """Chambolle TV of each slice, weight ``value`` relative to the volume's range, :data:`TV_ITER` iterations."""
    from simulate.reconstruct import tv_denoise

    return tv_denoise(volume, weight=float(value), n_iter=TV_ITER, threads=threads)


def _tv_fast(volume, value, *, backend: str = "auto", threads: int = 1) -> np.ndarray:
    """:func:`_tv` with :data:`TV_PROXY_ITER` iterations: a held-out search's stand-in (``Method.proxy``)."""
    from simulate.reconstruct import tv_denoise

    return tv_denoise(volume, weight=float(value), n_iter=TV_PROXY_ITER, threads=threads)


def _bm3d(volume, value, *, backend: str = "auto", threads: int = 1, profile: str = "np") -> np.ndarray:
    """BM3D of each slice, noise level ``value`` relative to the volume's range."""
    from simulate.reconstruct import bm3d_denoise

    return bm3d_denoise(volume, sigma=float(value), threads=threads, profile=profile)


def _bm3d_fast(volume, value, *, backend: str = "auto", threads: int = 1) -> np.ndarray:
    """:func:`_bm3d` with the ``bm3d`` package's low-complexity profile (sparser block steps, smaller search windows)."""
    return _bm3d(volume, value, backend=backend, threads=threads, profile="lc")


def _tv_recon(p: Projections, value, *, backend: str = "auto", threads: int = 1) -> np.ndarray:
    """TV-regularised reconstruction (corrct's PDHG) at weight ``value`` from zero, run until its stop
    (:data:`TV_RECON_TOL`) or :data:`TV_RECON_ITER` iterations. ``backend`` is accepted for a uniform interface: the
    projector is always astra's matrix."""
    from simulate.tvrecon import tv_reconstruct

    return tv_reconstruct(p.data, p.theta, weight=float(value), n_iter=TV_RECON_ITER, tol=TV_RECON_TOL,
                          center=p.center, size=p.size, threads=threads)


def _tv_recon_candidates(p: Projections, grid, *, backend: str = "auto", threads: int = 1):
    """:func:`_tv_recon` at each weight of ``grid``, in order, lazily, sharing the projector matrix and the FBP scale.

    A weight starts from the previous weight's primal and dual iterates where that run ended at the stop (it then
    lands where :func:`_tv_recon` does to within the stop's accuracy: tests/test_baselines.py); after a run that
    reached the cap unconverged it starts from zero, as :func:`_tv_recon` does, because where the cap binds a weight's
    image is the cap's iterate from zero, which a warm run, further along, would not make."""
    from simulate.tvrecon import TVProblem

    problem = None
    for v in grid:
        if problem is None:
            problem = TVProblem(p.data, p.theta, center=p.center, size=p.size, threads=threads)
        warm = problem.converged  # False before the first run
        volume = problem.solve(float(v), n_iter=TV_RECON_ITER, tol=TV_RECON_TOL, warm=warm)
        logger.debug("tv-recon weight %g: %d PDHG iterations from %s%s", v, problem.iterations,
                     "the previous weight's" if warm else "zero", "" if problem.converged else ", at the cap")
        yield v, volume


_tv_recon_candidates.per_value = True  # each weight still costs a PDHG run of its own (Method.per_value)


def _bm3d_psd(volume, value, *, backend: str = "auto", threads: int = 1, profile: str = "np") -> np.ndarray:
    """BM3D of each slice told that the noise has FBP's spectrum (:func:`simulate.reconstruct.fbp_noise_psd`, measured
    from astra's FBP of white noise), standard deviation ``value`` relative to the volume's range."""
    from simulate.reconstruct import bm3d_denoise, fbp_noise_psd

    volume = np.asarray(volume, dtype=np.float32)
    return bm3d_denoise(volume, sigma=float(value), threads=threads, profile=profile,
                        psd=fbp_noise_psd(volume.shape[1:], "ram-lak"))


def _bm3d_psd_fast(volume, value, *, backend: str = "auto", threads: int = 1) -> np.ndarray:
    """:func:`_bm3d_psd` with the ``bm3d`` package's low-complexity profile."""
    return _bm3d_psd(volume, value, backend=backend, threads=threads, profile="lc")


class _Registry(dict):
    """A dict of methods by name whose unknown names raise ValueError naming the allowed ones."""

    def __missing__(self, name):
        raise ValueError(f"unknown method '{name}'; choose one of {', '.join(self)}")


# TV weights span over two decades: the best weight moves by more than one value between the lightest and the
# heaviest dose (relative to the input's robust range)
_TV_GRID = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
# BM3D is the dearest denoiser to tune: fewer, wider-spaced values (noise sigma, relative to the robust range)
_BM3D_GRID = (0.025, 0.05, 0.1, 0.2, 0.4, 0.8)
# tv-recon's weights: on a 128-pixel foam the best lay at 0.001 to 0.01 for 11 to 45 noise-free views and at 0.1 to
# 0.3 for 180 views at 10^4 to 100 photons; noise-free data with enough views (90 here) want the smallest weight
TV_RECON_GRID = (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)

#: The registered methods by name, in the order of the tables' columns.
METHODS: dict[str, Method] = _Registry((m.name, m) for m in (
    # past 200 the counts step by 1.5x, not 2x: a descent then stops at most 1.5 times past the optimum
    Method("sirt", "SIRT", "n_iter", "n", (10, 20, 50, 100, 200, 300, 400, 600, 800), "projections",
           candidates=_sirt_candidates, apply=_sirt, value_type=int, timing_name="SIRT ({value} it., tuned)",
           run=_sirt_runs),
    Method("sirt-tv", "SIRT+TV", "weight", "w", _TV_GRID, "sirt", candidates=each_value(_tv), apply=_tv,
           needs=("sirt",), timing_name="SIRT ({sirt} it.)+TV, tuned", proxy=_tv_fast),
    Method("fbp-tv", "FBP+TV", "weight", "w", _TV_GRID, "fbp", candidates=each_value(_tv), apply=_tv,
           proxy=_tv_fast),
    Method("fbp-bm3d", "FBP+BM3D", "sigma", "σ", _BM3D_GRID, "fbp",
           candidates=each_value(_bm3d), apply=_bm3d, proxy=_bm3d_fast),
    Method("tv-recon", "TV-PDHG", "weight", "λ", TV_RECON_GRID, "projections",
           candidates=_tv_recon_candidates, apply=_tv_recon, timing_name="{label}, tuned",
           default=False),
    Method("fbp-bm3d-psd", "FBP+BM3D (ramp)", "sigma", "σ", _BM3D_GRID, "fbp",
           candidates=each_value(_bm3d_psd), apply=_bm3d_psd, proxy=_bm3d_psd_fast, default=False),
))

#: The methods run where no list is given (Method.default): the config's classical.methods, tomogan-scan --methods.
DEFAULT_METHODS = [name for name, m in METHODS.items() if m.default]
