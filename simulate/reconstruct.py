"""Parallel-beam projection and reconstruction behind one small interface.

Two backends do the work: ``tomopy`` (the paper's library, conda-only), used when importable, else ``astra``
(astra-toolbox's CPU algorithms, on PyPI). Both expose the same operations on stacks of slices, in one axis order:
:func:`project` (volume ``(slices, rows, cols)`` -> projections ``(angles, slices, detector)``) and
:func:`reconstruct` with ``method`` in :data:`METHODS` (FBP, and SIRT with ``n_iter`` iterations). The denoisers of
the classical comparison (:func:`tv_denoise`, :func:`bm3d_denoise`, with :func:`fbp_noise_psd` the spectrum of the
noise FBP leaves) live here too; the tuned methods built from them are registered in :mod:`analysis.classical`.

Angles are in radians over [0, pi); the rotation axis lies at detector coordinate ``center`` (pixel edges,
``detector / 2`` a centred axis: docs/methods.md, "The rotation axis"). astra's CPU algorithms are single-threaded
but release the GIL, so slices are reconstructed in a thread pool (``threads``). SIRT on astra runs as sparse
products with astra's own projector matrix, several slices per pass (:mod:`simulate.sirt_matrix`), where it fits.
"""

from __future__ import annotations

import functools
import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from .sirt_matrix import SirtProducts, matrix_fits

__all__ = [
    "METHODS",
    "BACKENDS",
    "available_backends",
    "resolve_backend",
    "project",
    "reconstruct",
    "fbp",
    "sirt",
    "sirt_iterates",
    "SirtRun",
    "tv_denoise",
    "bm3d_denoise",
    "fbp_noise_psd",
    "recon_attrs",
]

logger = logging.getLogger(__name__)

METHODS = ("fbp", "sirt")
BACKENDS = ("astra", "tomopy")
FILTERS = ("ram-lak", "shepp-logan", "cosine", "hamming", "hann")


# --------------------------------------------------------------------------- helpers

def _check_sino(sino, theta):
    sino = np.asarray(sino, dtype=np.float32)
    theta = np.asarray(theta, dtype=np.float64)
    if sino.ndim != 3:
        raise ValueError(f"projections must be (angles, rows, detector), got shape {sino.shape}")
    if theta.ndim != 1 or theta.size != sino.shape[0]:
        raise ValueError(f"need one angle per projection: {theta.size} angles for {sino.shape[0]} projections")
    return sino, theta


def _center_sinogram(sino, center):
    """Shift projections along the detector so that the axis sits at ``detector / 2``."""
    if center is None:
        return sino
    offset = float(center) - sino.shape[-1] / 2
    if offset == 0:
        return sino
    if abs(offset) >= sino.shape[-1] / 2:
        raise ValueError(f"rotation centre {center} lies outside the detector of {sino.shape[-1]} pixels")
    return ndimage.shift(sino, (0,) * (sino.ndim - 1) + (-offset,), order=1, mode="nearest")


def _map_slices(fn, n, threads, desc):
    """Apply ``fn(i)`` to slice indices 0..n-1 in a thread pool, in order, with a progress bar."""
    with ThreadPoolExecutor(max_workers=max(1, int(threads))) as pool:
        return list(tqdm(pool.map(fn, range(n)), total=n, desc=desc, unit="slice",
                         disable=None, mininterval=2.0))


# --------------------------------------------------------------------------- astra

class _Astra:
    """astra-toolbox CPU backend (2-D algorithms applied slice by slice)."""

    name = "astra"

    def __init__(self):
        import astra  # noqa: F401 -- fail early if missing

        self.astra = astra

    def _geoms(self, n_det, theta, size):
        a = self.astra
        vol = a.create_vol_geom(size, size)
        proj = a.create_proj_geom("parallel", 1.0, n_det, np.asarray(theta, dtype=np.float64))
        return vol, proj

    def project(self, volume, theta, n_det):
        a = self.astra
        size = volume.shape[-1]
        vol_geom, proj_geom = self._geoms(n_det, theta, size)

        def one(i):
            pid = a.create_projector("linear", proj_geom, vol_geom)
            try:
                sid, sino = a.create_sino(np.ascontiguousarray(volume[i]), pid)
                a.data2d.delete(sid)
            finally:
                a.projector.delete(pid)
            return sino
        return one

    def _run(self, algorithm, sino2d, theta, size, n_iter=1, options=None):
        a = self.astra
        vol_geom, proj_geom = self._geoms(sino2d.shape[-1], theta, size)
        pid = a.create_projector("linear", proj_geom, vol_geom)
        sid = a.data2d.create("-sino", proj_geom, sino2d)
        rid = a.data2d.create("-vol", vol_geom, 0.0)
        cfg = a.astra_dict(algorithm)
        cfg.update(ProjectorId=pid, ProjectionDataId=sid, ReconstructionDataId=rid)
        if options:
            cfg["option"] = options
        alg = a.algorithm.create(cfg)
        try:
            a.algorithm.run(alg, n_iter)
            return a.data2d.get(rid).astype(np.float32)
        finally:
            a.algorithm.delete(alg)
            a.data2d.delete([sid, rid])
            a.projector.delete(pid)

    def fbp(self, sino, theta, size, filter_name):
        return lambda i: self._run("FBP", sino[:, i, :], theta, size, options={"FilterType": filter_name})

    def sirt_iterates(self, sino, theta, size, n_iters, init=None):
        """Per slice: the SIRT iterates after each count in ``n_iters`` (increasing), from one run that starts at
        zero or at ``init[i]`` (for a grid whose matrix does not fit
        :data:`simulate.sirt_matrix.MATRIX_MAX_GIB`; else :class:`simulate.sirt_matrix.SirtProducts`)."""
        a = self.astra

        def one(i):
            vol_geom, proj_geom = self._geoms(sino.shape[-1], theta, size)
            pid = a.create_projector("linear", proj_geom, vol_geom)
            sid = a.data2d.create("-sino", proj_geom, sino[:, i, :])
            rid = a.data2d.create("-vol", vol_geom, 0.0 if init is None else np.ascontiguousarray(init[i]))
            cfg = a.astra_dict("SIRT")
            cfg.update(ProjectorId=pid, ProjectionDataId=sid, ReconstructionDataId=rid)
            alg = a.algorithm.create(cfg)
            try:
                out, done = [], 0
                for n in n_iters:  # astra's SIRT continues from the current volume on each run
                    a.algorithm.run(alg, n - done)
                    done = n
                    out.append(a.data2d.get(rid).astype(np.float32))
                return out
            finally:
                a.algorithm.delete(alg)
                a.data2d.delete([sid, rid])
                a.projector.delete(pid)
        return one


# --------------------------------------------------------------------------- tomopy

class _Tomopy:
    """TomoPy backend (the paper's library); whole stacks at once, TomoPy threads them."""

    name = "tomopy"
    _filters = {"ram-lak": "ramlak", "shepp-logan": "shepp", "cosine": "cosine",
                "hamming": "hamming", "hann": "hann"}

    def __init__(self):
        import tomopy  # noqa: F401

        self.tomopy = tomopy

    def project_all(self, volume, theta, n_det, threads):
        proj = self.tomopy.project(volume, theta, pad=False, ncore=threads)
        if proj.shape[-1] != n_det:
            pad = n_det - proj.shape[-1]
            proj = np.pad(proj, ((0, 0), (0, 0), (pad // 2, pad - pad // 2)))
        return proj.astype(np.float32)

    def recon_all(self, sino, theta, size, algorithm, threads, **kwargs):
        rec = self.tomopy.recon(sino, theta, center=sino.shape[-1] / 2, algorithm=algorithm,
                                ncore=threads, **kwargs)
        if rec.shape[-1] != size:  # tomopy reconstructs on a detector-sized grid
            start = (rec.shape[-1] - size) // 2
            rec = rec[:, start:start + size, start:start + size]
        return rec.astype(np.float32)


def available_backends() -> list[str]:
    """Names of the backends importable here, preferred first."""
    names = []
    for name, cls in (("tomopy", _Tomopy), ("astra", _Astra)):
        try:
            cls()
            names.append(name)
        except ImportError:
            continue
    return names


def resolve_backend(name: str = "auto") -> str:
    """Turn ``"auto"`` into a concrete backend name (tomopy if importable, else astra)."""
    if name not in ("auto",) + BACKENDS:
        raise ValueError(f"unknown backend '{name}'; choose one of auto, {', '.join(BACKENDS)}")
    have = available_backends()
    if name == "auto":
        if not have:
            raise ImportError("neither tomopy nor astra-toolbox is importable")
        return have[0]
    if name not in have:
        raise ImportError(f"backend '{name}' is not importable here (have: {', '.join(have) or 'none'})")
    return name


def _backend(name):
    return {"astra": _Astra, "tomopy": _Tomopy}[resolve_backend(name)]()


# --------------------------------------------------------------------------- public API

def project(volume, theta, *, n_det: int | None = None, backend: str = "auto", threads: int = 1):
    """Parallel-beam line integrals of a volume.

    Parameters
    ----------
    volume : ndarray, shape (slices, rows, cols)
        Attenuation per pixel (rows == cols); pixel size is the unit of length.
    theta : ndarray, shape (angles,)
        Projection angles in radians.
    n_det : int, optional
        Detector pixels (default: ``cols``). The axis projects to ``n_det / 2``.

    Returns
    -------
    ndarray of float32, shape (angles, slices, n_det)
    """
    volume = np.asarray(volume, dtype=np.float32)
    if volume.ndim != 3 or volume.shape[1] != volume.shape[2]:
        raise ValueError(f"volume must be (slices, n, n), got shape {volume.shape}")
    theta = np.asarray(theta, dtype=np.float64)
    n_det = int(n_det or volume.shape[-1])
    be = _backend(backend)
    if be.name == "tomopy":
        return be.project_all(volume, theta, n_det, threads)
    rows = _map_slices(be.project(volume, theta, n_det), volume.shape[0], threads, "project")
    return np.stack(rows, axis=1).astype(np.float32)


def fbp(sino, theta, *, center=None, size=None, filter_name="ram-lak", backend="auto", threads=1):
    """Filtered back projection of each slice; returns ``(slices, size, size)`` float32."""
    return reconstruct(sino, theta, "fbp", center=center, size=size, filter_name=filter_name,
                       backend=backend, threads=threads)


def sirt(sino, theta, *, n_iter, center=None, size=None, backend="auto", threads=1):
    """SIRT with ``n_iter`` iterations from a zero start; returns ``(slices, size, size)``."""
    return reconstruct(sino, theta, "sirt", n_iter=n_iter, center=center, size=size,
                       backend=backend, threads=threads)


def sirt_iterates(sino, theta, n_iters, *, center=None, size=None, init=None, backend="auto", threads=1):
    """SIRT reconstructions after each iteration count of ``n_iters``, from a single run per slice.

    Early stopping is SIRT's regulariser, so its iteration count is tuned like a denoiser's weight;
    running once and keeping the iterates costs ``max(n_iters)`` iterations instead of their sum.

    ``init`` (``(slices, size, size)``, on the reconstruction grid of this geometry, e.g. a denoised FBP) starts
    the iterations there instead of at zero: SIRT then moves that image toward agreement with the measured views.

    Returns
    -------
    dict
        ``{n: ndarray (slices, size, size)}`` for each ``n`` in ``n_iters``; equal to
        ``sirt(..., n_iter=n)`` for each ``n``.
    """
    n_iters = sorted({int(n) for n in n_iters})
    if not n_iters or n_iters[0] < 1:
        raise ValueError(f"iteration counts must be >= 1, got {n_iters}")
    sino, theta = _check_sino(sino, theta)
    sino = _center_sinogram(sino, center)
    size = int(size or sino.shape[-1])
    init = _check_init(init, sino, size)
    be = _backend(backend)
    if be.name == "tomopy":  # continue each run from the previous iterate
        out, rec, done = {}, init, 0
        for n in n_iters:
            rec = be.recon_all(sino, theta, size, "sirt", threads, num_iter=n - done, init_recon=rec)
            out[n], done = rec.copy(), n
        return out
    if matrix_fits(theta.size, sino.shape[-1], size):  # every slice at once, each block freed when done
        products = SirtProducts([(sino, theta, init)], size, threads, keep=False)
        products.advance(n_iters)
        return products.made[0]
    per_slice = _map_slices(be.sirt_iterates(sino, theta, size, n_iters, init), sino.shape[1], threads, "sirt")
    return {n: np.stack([s[k] for s in per_slice], axis=0) for k, n in enumerate(n_iters)}


# --------------------------------------------------------------------------- a SIRT run continued

class SirtRun:
    """SIRT iterates of one set of views, made only as far as asked.

    ``run[n]`` is the iterate after ``n`` iterations of one uninterrupted run from ``init`` (zero by default),
    for ``n`` among ``counts``. Asking for a count beyond those made continues the run from the last one (SIRT
    from its own iterate is the same run) and keeps every count of ``counts`` on the way; a search that settles at
    50 iterations never pays for 800. The arguments are :func:`sirt_iterates`'s. :meth:`together` makes the runs
    of several sets of views of one scan (the held-out folds), which then advance as one product.
    """

    def __init__(self, sino, theta, *, counts, center=None, size=None, init=None, backend="auto", threads=1):
        self.counts = sorted({int(n) for n in counts})
        if not self.counts or self.counts[0] < 1:
            raise ValueError(f"iteration counts must be >= 1, got {self.counts}")
        self._sino, self._theta = sino, theta
        self._args = dict(center=center, size=size, backend=backend, threads=threads)
        self._made = {0: init}
        self._member = _matrix_member(sino, theta, center, size, init, backend)
        # on the matrix path, the run kept in torch: (SirtProducts, this run's member index there)
        self._products = (None if self._member is None else
                          (SirtProducts([self._member[:3]], self._member[3], threads), 0))

    @classmethod
    def together(cls, members, *, counts, center=None, size=None, backend="auto", threads=1) -> list:
        """One run per ``(sino, theta, init)`` of ``members`` (same rows, detector, centre and grid): on astra's
        matrix path they advance together, every member to the count any one is asked for, one pass over the
        projector serving all (:class:`simulate.sirt_matrix.SirtProducts`); else each runs on its own."""
        runs = [cls(s, t, counts=counts, center=center, size=size, init=i, backend=backend, threads=threads)
                for s, t, i in members]
        if runs and all(run._products is not None for run in runs):
            shared = SirtProducts.group([run._member[:3] for run in runs], runs[0]._member[3], threads)
            for run, products in zip(runs, shared):
                run._products = products
        return runs

    @property
    def made(self) -> int:
        """The iterations run so far (with :meth:`together`, by any of the runs)."""
        return self._products[0].done if self._products is not None else max(self._made)

    def __getitem__(self, n) -> np.ndarray:
        n = int(n)
        if n not in self.counts:
            raise KeyError(f"{n} iterations is not one of the counts {self.counts}")
        if self._products is not None:
            products, i = self._products
            products.advance([m for m in self.counts if m <= n])
            return products.made[i][n]
        done = max(self._made)
        if n > done:
            todo = [m for m in self.counts if done < m <= n]
            more = sirt_iterates(self._sino, self._theta, [m - done for m in todo], init=self._made[done],
                                 **self._args)
            self._made.update({m: more[m - done] for m in todo})
        return self._made[n]


def _check_init(init, sino, size):
    """``init`` as float32 ``(slices, size, size)`` for ``sino``, or None."""
    if init is None:
        return None
    init = np.asarray(init, dtype=np.float32)
    if init.shape != (sino.shape[1], size, size):
        raise ValueError(f"init has shape {init.shape}, expected {(sino.shape[1], size, size)}")
    return init


def _matrix_member(sino, theta, center, size, init, backend):
    """``(centred sino, theta, init, size)`` where SIRT of these views runs as sparse products on astra
    (:func:`simulate.sirt_matrix.matrix_fits`), else None."""
    sino, theta = _check_sino(sino, theta)
    sino = _center_sinogram(sino, center)
    size = int(size or sino.shape[-1])
    init = _check_init(init, sino, size)
    if _backend(backend).name == "tomopy" or not matrix_fits(theta.size, sino.shape[-1], size):
        return None
    return sino, theta, init, size


def _robust_range(volume) -> float:
    lo, hi = np.percentile(volume, [0.5, 99.5])
    return float(hi - lo) or 1.0


def tv_denoise(volume, *, weight: float, n_iter: int = 1000, threads: int = 1):
    """Chambolle total-variation denoising of each slice, weight relative to the volume's range.

    The weight is applied to the volume divided by its robust range (99.5th minus
    0.5th percentile), so one weight suits data of any attenuation scale.
    The iteration count is fixed (tolerance 0): scikit-image's default tolerance
    stops early at large weights and makes the baseline erratic.
    """
    from skimage.restoration import denoise_tv_chambolle

    volume = np.asarray(volume, dtype=np.float32)
    scale = _robust_range(volume)

    def one(i):
        return denoise_tv_chambolle(volume[i] / scale, weight=weight, eps=0.0,
                                    max_num_iter=n_iter) * scale
    return np.stack(_map_slices(one, volume.shape[0], threads, "tv"), axis=0).astype(np.float32)


# The windows of astra's FBP filters (astra's Filters.cpp, after MATLAB's iradon), at f cycles per pixel
_FILTER_WINDOWS = {
    "ram-lak": lambda f: np.ones_like(f),
    "shepp-logan": np.sinc,  # sin(pi f) / (pi f)
    "cosine": lambda f: np.cos(np.pi * f),
    "hamming": lambda f: 0.54 + 0.46 * np.cos(2 * np.pi * f),
    "hann": lambda f: 0.5 * (1 + np.cos(2 * np.pi * f)),
}


FBP_PSD_MODELS = ("astra", "ramp")  # fbp_noise_psd: astra's FBP of white noise, measured; or the analytic ramp


def fbp_noise_psd(shape, filter_name: str = "ram-lak", *, model: str = "astra") -> np.ndarray:
    """The power spectrum of the noise that FBP makes of white projection noise, in ``bm3d``'s convention.

    ``model="astra"`` (the default) measures it: the mean periodogram of astra's FBP of
    :data:`PSD_REALISATIONS` white-noise sinograms (seeded, so always the same spectrum), with as many views as
    the grid needs to be fully sampled (``pi / 2`` per detector pixel), cut to ``shape``. It holds what the
    analytic model below leaves out, the pixel-driven interpolation near and past the Nyquist disc's edge, and on
    foam BM3D did better told this spectrum than the model or white noise (docs/methods.md). ``model="ramp"``:

    FBP filters each projection with the ramp ``|f|`` times the filter's window ``W(f)`` (:data:`FILTERS`), so
    white projection noise leaves each view with power ``f^2 W(f)^2``; back-projection spreads the views over the
    directions, ``1 / |f|`` per unit area of the plane: the image's noise power is ``|f| W(|f|)^2`` within the
    Nyquist disc ``|f| <= 1/2`` and none beyond it. (astra's pixel-driven interpolation adds some power near and
    beyond the disc's edge and takes some from just inside it; the model leaves that out.)

    Returned as ``bm3d.bm3d``'s ``sigma_psd`` takes a 2-D spectrum: the shape of the image, zero frequency at
    ``[0, 0]`` (unshifted, ``numpy.fft.fftfreq`` order), and the power of the unnormalised FFT, ``E|fft2(n)|^2``,
    for which white noise of standard deviation ``s`` is the constant ``s^2 * rows * cols`` (what ``bm3d`` itself
    makes of a scalar ``s``). It is normalised to noise of unit variance: its mean is ``rows * cols``, its sum
    ``(rows * cols)^2``. ``sigma**2 * fbp_noise_psd(shape)`` is then noise of standard deviation ``sigma`` with
    FBP's colour (:func:`bm3d_denoise`'s ``psd``).

    >>> psd = fbp_noise_psd((64, 64), model="ramp")
    >>> psd.shape, bool(np.isclose(psd.mean(), 64 * 64)), float(psd[0, 0])
    ((64, 64), True, 0.0)
    >>> bool(psd[0, 31] > psd[0, 8] > psd[0, 1] > 0), float(psd[32, 32])  # up to Nyquist, then none
    (True, 0.0)
    >>> measured = fbp_noise_psd((64, 64))
    >>> bool(np.isclose(measured.mean(), 64 * 64)), bool(measured[0, 24] > 3 * measured[0, 3])  # ramp-coloured
    (True, True)
    >>> fbp_noise_psd((8, 8), "parzen")
    Traceback (most recent call last):
        ...
    ValueError: unknown FBP filter 'parzen'; choose one of ram-lak, shepp-logan, cosine, hamming, hann
    """
    if filter_name not in FILTERS:
        raise ValueError(f"unknown FBP filter '{filter_name}'; choose one of {', '.join(FILTERS)}")
    if model not in FBP_PSD_MODELS:
        raise ValueError(f"unknown noise spectrum model '{model}'; choose one of {', '.join(FBP_PSD_MODELS)}")
    try:
        rows, cols = (int(n) for n in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape must be (rows, cols), got {shape!r}") from None
    if rows < 2 or cols < 2:
        raise ValueError(f"shape must be at least (2, 2), got {(rows, cols)}")
    if model == "astra":
        return _measured_fbp_noise_psd(rows, cols, filter_name).copy()
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(rows), np.fft.fftfreq(cols), indexing="ij"))
    psd = np.where(f <= 0.5, f * _FILTER_WINDOWS[filter_name](f) ** 2, 0.0)
    return (psd * (rows * cols / psd.mean())).astype(np.float64)


PSD_REALISATIONS = 32  # white-noise sinograms averaged by fbp_noise_psd(model="astra"): a bin's spread about 18 %


@functools.lru_cache(maxsize=8)
def _measured_fbp_noise_psd(rows: int, cols: int, filter_name: str) -> np.ndarray:
    """:func:`fbp_noise_psd`'s ``astra`` model, made once per shape and filter."""
    n = max(rows, cols)
    theta = np.linspace(0, np.pi, max(2, int(np.ceil(np.pi / 2 * n))), endpoint=False)
    noise = np.random.default_rng(0).standard_normal((len(theta), PSD_REALISATIONS, n)).astype(np.float32)
    rec = fbp(noise, theta, size=n, filter_name=filter_name, backend="astra")[:, :rows, :cols]
    psd = (np.abs(np.fft.fft2(rec.astype(np.float64))) ** 2).mean(axis=0)
    return psd * (rows * cols / psd.mean())


def _bm4d_numpy_with_trapz() -> None:
    """Let the ``bm4d`` package (under ``bm3d``) estimate its thresholds for a coloured noise spectrum on numpy 2.4.

    bm4d 4.2.5, the latest, integrates the spectrum with ``np.trapz``, which numpy 2.4 removed (``np.trapezoid`` is
    the same function); a 2-D ``sigma_psd`` then fails. bm4d's own name ``np`` is given a stand-in for numpy that
    adds ``trapz``; numpy itself, and every other module, are left alone.
    """
    import types

    import bm4d

    if hasattr(bm4d.np, "trapz"):
        return
    shim = types.ModuleType("numpy", "numpy, with trapz = numpy.trapezoid for bm4d")
    shim.__getattr__ = lambda name: getattr(np, name)  # module __getattr__ (PEP 562)
    shim.trapz = np.trapezoid
    bm4d.np = shim


BM3D_PROFILES = ("np", "lc")  # the bm3d package's normal profile, and its low-complexity one (sparser steps, smaller windows)


def bm3d_denoise(volume, *, sigma: float, threads: int = 1, profile: str = "np", psd=None):
    """BM3D (the ``bm3d`` package, both stages) of each slice, noise level relative to the volume's range.

    ``sigma`` is the noise standard deviation assumed by BM3D, as a fraction of the volume's robust
    range (99.5th minus 0.5th percentile), like :func:`tv_denoise`'s weight. ``profile``: ``np``, the package's
    normal profile, or ``lc``, its low-complexity one (``bm3d.BM3DProfileLC``: sparser block steps, smaller search
    windows). ``psd``: None, white noise (``bm3d`` is given the scalar ``sigma``); or the noise's spectrum for one
    slice normalised to unit variance, as :func:`fbp_noise_psd` makes it (shape ``(rows, cols)``, mean
    ``rows * cols``), and ``bm3d`` is given ``sigma**2 * psd``: noise of the same standard deviation, coloured.
    Slices are denoised one after another: the ``bm3d`` binary runs its own thread pool and is not safe to call
    from several Python threads, so ``threads`` is accepted for a uniform interface and ignored.
    """
    import bm3d

    volume = np.asarray(volume, dtype=np.float32)
    if not sigma > 0:
        raise ValueError(f"BM3D sigma must be > 0, got {sigma}")
    if profile not in BM3D_PROFILES:
        raise ValueError(f"BM3D profile must be one of {', '.join(BM3D_PROFILES)}, got '{profile}'")
    if psd is not None:
        psd = np.asarray(psd, dtype=np.float64)
        if psd.shape != volume.shape[1:]:
            raise ValueError(f"the noise PSD has shape {psd.shape}, a slice {volume.shape[1:]}")
        if not (np.isfinite(psd).all() and (psd >= 0).all() and psd.any()):
            raise ValueError("the noise PSD must be finite, non-negative and not all zero")
        _bm4d_numpy_with_trapz()
    chosen = bm3d.BM3DProfileLC() if profile == "lc" else "np"
    scale = _robust_range(volume)
    noise = float(sigma) if psd is None else float(sigma) ** 2 * psd

    def one(i):
        return np.asarray(bm3d.bm3d(volume[i] / scale, sigma_psd=noise, profile=chosen),
                          dtype=np.float32) * scale
    return np.stack(_map_slices(one, volume.shape[0], 1, "bm3d"), axis=0).astype(np.float32)


def reconstruct(sino, theta, method, *, center=None, size=None, filter_name="ram-lak",
                n_iter=None, backend="auto", threads=1):
    """Reconstruct every slice of ``sino`` with one of :data:`METHODS`.

    Parameters
    ----------
    sino : ndarray, shape (angles, slices, detector)
        Line integrals (``-log`` of normalised intensity).
    theta : ndarray, shape (angles,)
        Angles in radians.
    method : {"fbp", "sirt"}
    center : float, optional
        Rotation axis on the detector, pixels (default: ``detector / 2``).
    size : int, optional
        Side of the square reconstruction grid (default: detector width).
    filter_name : str
        FBP filter, one of :data:`FILTERS`.
    n_iter : int
        SIRT iterations (``sirt``).

    Returns
    -------
    ndarray of float32, shape (slices, size, size)
    """
    if method not in METHODS:
        raise ValueError(f"unknown method '{method}'; choose one of {', '.join(METHODS)}")
    if filter_name not in FILTERS:
        raise ValueError(f"unknown FBP filter '{filter_name}'; choose one of {', '.join(FILTERS)}")
    if method != "fbp" and (n_iter is None or int(n_iter) < 1):
        raise ValueError(f"method '{method}' needs n_iter >= 1, got {n_iter}")
    if method == "sirt":  # one run, whichever way the backend runs it
        n_iter = int(n_iter)
        return sirt_iterates(sino, theta, [n_iter], center=center, size=size, backend=backend,
                             threads=threads)[n_iter]
    sino, theta = _check_sino(sino, theta)
    sino = _center_sinogram(sino, center)
    size = int(size or sino.shape[-1])
    be = _backend(backend)
    if be.name == "tomopy":
        rec = be.recon_all(sino, theta, size, "fbp", threads, filter_name=be._filters[filter_name])
    else:
        rec = np.stack(_map_slices(be.fbp(sino, theta, size, filter_name), sino.shape[1], threads, method), axis=0)
    return rec.astype(np.float32)


# --------------------------------------------------------------------------- command line

def central_slices(n_total: int, n: int) -> np.ndarray:
    """Indices of the ``n`` central slices of ``n_total`` (all of them when ``n`` is 0)."""
    if n <= 0 or n >= n_total:
        return np.arange(n_total)
    start = (n_total - n) // 2
    return np.arange(start, start + n)


def slab_rows(bytes_per_row: int, slab_mb: float | None, n: int) -> int:
    """How many slices fit a memory budget of ``slab_mb`` MiB (all ``n`` when there is no budget); at least 1."""
    if not slab_mb:
        return max(1, n)
    return int(max(1, min(n, (slab_mb * 2 ** 20) // max(1, bytes_per_row))))


def reconstruct_file(proj_path, out_path, method: str, *, slices: int = 0, slab_mb: float | None = None,
                     center=None, filter_name: str = "ram-lak", n_iter=None, backend: str = "auto",
                     threads: int = 1) -> dict:
    """Reconstruct a projection file slab by slab into a chunked reconstruction file.

    Only ``slab`` detector rows of projections and their slices are in memory at a time, as many as fit
    in ``slab_mb`` MiB (one slab, the whole volume, without a budget): the memory a volume needs stays
    flat whatever its size. The output is written through a temporary file and appears only when whole.

    Returns the attributes written.
    """
    from .io import dataset_shape, read_array, read_attrs, to_h5_attr
    from .plumbing import InputError, atomic_h5

    src = read_attrs(proj_path)
    theta = np.radians(read_array(proj_path, "/exchange/theta", ndim=1, dtype=np.float64))
    n_angles, n_rows, n_det = dataset_shape(proj_path, "/exchange/data", ndim=3)
    if theta.shape[0] != n_angles:
        raise InputError(proj_path, f"{theta.shape[0]} angles in /exchange/theta for {n_angles} projections")
    center = float(src.get("center", n_det / 2)) if center is None else float(center)
    backend = resolve_backend(backend)
    idx = central_slices(n_rows, slices)
    size = n_det
    step = slab_rows(4 * (theta.shape[0] * n_det + 2 * size * size), slab_mb, len(idx))
    attrs = recon_attrs(src, method=method, algorithm=method, backend=backend,
                         filter=filter_name if method == "fbp" else "none", n_iter=n_iter or 0, center=center,
                         parent=str(proj_path), slab_slices=step)
    with atomic_h5(out_path, nbytes=4 * len(idx) * size * size) as f:  # refused up front if the disk lacks room
        rec = f.create_dataset("/recon", shape=(len(idx), size, size), dtype=np.float32,
                               chunks=(1, size, size))
        f.create_dataset("/slices", data=idx.astype(np.int32))
        for a in range(0, len(idx), step):
            rows = idx[a:a + step]
            data = read_array(proj_path, "/exchange/data", ndim=3, dtype_kind="f",
                              index=np.s_[:, int(rows[0]):int(rows[-1]) + 1, :])
            try:
                rec[a:a + len(rows)] = reconstruct(data, theta, method, center=center, size=size,
                                                   filter_name=filter_name, n_iter=n_iter, backend=backend,
                                                   threads=threads)
            except ValueError as exc:
                raise InputError(proj_path, str(exc)) from None
        for key, value in attrs.items():
            f.attrs[key] = to_h5_attr(value)
    return attrs


def recon_attrs(src: dict, **extra) -> dict:
    from .io import software_versions

    keep = ("dataset", "source", "dose", "dose_mode", "dose_level", "noise", "seed", "center",
            "n_angles", "facility", "sample", "attenuation_scale", "family", "max_line_integral", "noise_incident",
            "matched_to", "incident_estimate", "bin_factor", "rows_start")
    attrs = {k: src[k] for k in keep if k in src}
    attrs.update(extra, axes="slices, rows, cols", units="attenuation per pixel",
                 versions=software_versions())
    return attrs


def main(argv=None):
    """``python -m simulate.reconstruct recon ...`` -- see ``--help``."""
    import argparse

    from .plumbing import cli

    @cli
    def run(argv):
        p = argparse.ArgumentParser(description="Reconstruct projections (FBP, SIRT).")
        sub = p.add_subparsers(dest="command", required=True)
        pr = sub.add_parser("recon", help="projections.h5 -> reconstruction.h5")
        pr.add_argument("proj")
        pr.add_argument("out")
        pr.add_argument("--method", choices=("fbp", "sirt"), required=True)
        pr.add_argument("--filter", default="ram-lak", choices=FILTERS)
        pr.add_argument("--n-iter", type=int)
        pr.add_argument("--slices", type=int, default=0, help="reconstruct only the N central slices (0: all)")
        pr.add_argument("--center", type=float, help="rotation axis, detector pixels (default: from the file)")
        pr.add_argument("--backend", default="auto")
        pr.add_argument("--threads", type=int, default=1)
        pr.add_argument("--slab-mb", type=float, help="memory budget: reconstruct as many slices at a time as "
                        "fit in this many MiB (default: the whole volume at once)")
        args = p.parse_args(argv)

        attrs = reconstruct_file(args.proj, args.out, args.method, slices=args.slices, slab_mb=args.slab_mb,
                                 center=args.center, filter_name=args.filter, n_iter=args.n_iter,
                                 backend=args.backend, threads=args.threads)
        logger.info("%s %s -> %s (%s slices at a time)", args.method, args.proj, args.out, attrs["slab_slices"])

    return run(argv)


if __name__ == "__main__":
    main()
