"""Acquisition: phantom -> full-dose projections -> low-dose variants.

Projection files use the DXchange layout, normalised (:func:`write_projections`); :func:`project_phantom` scales a
unit-attenuation phantom so that its largest line integral is ``max_line_integral``; :func:`low_dose` makes a
``sparse`` (every k-th view) or ``photons`` (Poisson noise at I0 photons per pixel) variant. The files, the
attenuation scale and the doses: docs/data-model.md, "Files and their attributes" and "Doses and the reference".
"""

from __future__ import annotations

import argparse
import logging
import zlib

import numpy as np

from . import noise
from .io import read_array, read_attrs, software_versions, write_arrays
from .plumbing import InputError, cli
from .reconstruct import project, resolve_backend

__all__ = [
    "angles",
    "scale_to_line_integral",
    "write_projections",
    "read_projections",
    "project_phantom",
    "low_dose",
    "dose_rng",
    "main",
]

logger = logging.getLogger(__name__)


def angles(n: int) -> np.ndarray:
    """``n`` equally spaced projection angles over [0, pi), radians."""
    if n < 2:
        raise ValueError(f"need at least 2 angles, got {n}")
    return np.linspace(0.0, np.pi, int(n), endpoint=False)


def write_projections(path, data, theta, attrs: dict) -> None:
    """Write normalised projections in the DXchange layout (theta in radians in, degrees stored)."""
    data = np.asarray(data, dtype=np.float32)
    theta = np.asarray(theta, dtype=np.float64)
    if data.ndim != 3 or theta.shape != (data.shape[0],):
        raise ValueError(f"projections {data.shape} and theta {theta.shape} do not match")
    attrs = dict(attrs, axes="angles, rows, detector", quantity="line integral -log(I/I0)",
                 theta_units="degrees", n_angles=int(data.shape[0]))
    write_arrays(path, {"/exchange/data": data, "/exchange/theta": np.degrees(theta)}, attrs)


def read_projections(path):
    """Read a normalised projection file written by :func:`write_projections`.

    Returns
    -------
    data : ndarray of float32, shape (angles, rows, detector)
    theta : ndarray of float64, radians
    attrs : dict of root attributes

    Raises
    ------
    InputError
        Unreadable file, missing datasets, NaN/Inf, or angles that do not match the projections.
    """
    data = read_array(path, "/exchange/data", ndim=3, dtype_kind="f")
    theta = read_array(path, "/exchange/theta", ndim=1, dtype=np.float64)
    if theta.shape[0] != data.shape[0]:
        raise InputError(path, f"{theta.shape[0]} angles in /exchange/theta for {data.shape[0]} projections")
    return data, np.radians(theta), read_attrs(path)


def project_phantom(phantom, n_angles: int, *, max_line_integral: float = 2.0, n_det=None,
                    backend: str = "auto", threads: int = 1):
    """Noise-free full-dose projections of a unit-attenuation phantom, in physical scale.

    Parameters
    ----------
    phantom : ndarray, shape (slices, n, n)
        Unit attenuation (xdesign values).
    n_angles : int
        Projections over [0, pi).
    max_line_integral : float
        The largest line integral over the volume after scaling.

    Returns
    -------
    data : ndarray of float32, shape (n_angles, slices, n_det)
    theta : ndarray, radians
    scale : float
        Attenuation per pixel of unit phantom value (the factor applied).
    """
    theta = angles(n_angles)
    data, scale = scale_to_line_integral(project(phantom, theta, n_det=n_det, backend=backend, threads=threads),
                                         max_line_integral)
    return data, theta, scale


def scale_to_line_integral(data, max_line_integral: float):
    """Projections of a unit-attenuation phantom scaled so that their largest value is ``max_line_integral``:
    ``(scaled float32, scale)``; all-zero projections are a ValueError."""
    peak = float(np.max(data))
    if peak <= 0:
        raise ValueError("phantom projects to all zeros")
    scale = max_line_integral / peak
    return (np.asarray(data) * scale).astype(np.float32), scale


def dose_rng(seed: int, label: str) -> np.random.Generator:
    """The random source for one (dataset seed, dose label): independent across doses, reproducible."""
    return np.random.default_rng([int(seed), zlib.crc32(label.encode())])


def low_dose(data, theta, *, mode: str, factor: int | None = None, incident: float | None = None,
             rng: np.random.Generator | None = None, noise_incident: float | None = None):
    """One low-dose variant of full-dose projections.

    Parameters
    ----------
    data : ndarray, shape (angles, rows, detector)
        Full-dose line integrals.
    theta : ndarray, radians
    mode : {"sparse", "photons"}
    factor : int
        Keep every ``factor``-th view (``sparse``).
    incident : float
        Photons per pixel I0 (``photons``).
    rng : numpy.random.Generator
        Required for ``photons``, and for ``sparse`` with ``noise_incident``.
    noise_incident : float, optional
        The instrument's own photons per pixel, for noise-free projections simulated for a scan
        (:mod:`simulate.scanmatch`): the kept views of ``sparse`` get Poisson noise at that level, as the scan's
        do. ``photons`` draws at ``incident`` (a shorter exposure) whatever it is.

    Returns
    -------
    data, theta : the low-dose projections and their angles
    """
    if mode == "sparse":
        if factor is None:
            raise ValueError("mode 'sparse' needs factor")
        data, theta = noise.subsample_views(data, theta, factor)
        if noise_incident is None:
            return data, theta
        if rng is None:
            raise ValueError("noise at the instrument's photon level needs rng")
        return noise.short_exposure(data, noise_incident, rng=rng), theta
    if mode == "photons":
        if incident is None or rng is None:
            raise ValueError("mode 'photons' needs incident and rng")
        return noise.short_exposure(data, incident, rng=rng), np.asarray(theta).copy()
    raise ValueError(f"unknown dose mode '{mode}'; choose sparse or photons")


@cli
def main(argv=None):
    p = argparse.ArgumentParser(description="Simulate acquisition: project a phantom, or derive a low-dose variant.")
    sub = p.add_subparsers(dest="command", required=True)

    pp = sub.add_parser("project", help="phantom.h5 -> full-dose projections (noise-free)")
    pp.add_argument("phantom")
    pp.add_argument("out")
    pp.add_argument("--n-angles", type=int, required=True)
    pp.add_argument("--max-line-integral", type=float, default=2.0)
    pp.add_argument("--noise-incident", type=float,
                    help="the instrument's photons per pixel, recorded: the sparse-view variants then carry Poisson "
                         "noise at that level (default: noise-free views)")
    pp.add_argument("--backend", default="auto")
    pp.add_argument("--threads", type=int, default=1)

    pl = sub.add_parser("lowdose", help="full-dose projections -> one low-dose variant")
    pl.add_argument("full")
    pl.add_argument("out")
    pl.add_argument("--label", required=True, help="dose label from the config, e.g. sparse-8")
    pl.add_argument("--mode", choices=("sparse", "photons"), required=True)
    pl.add_argument("--factor", type=int)
    pl.add_argument("--incident", type=float)
    pl.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    if args.command == "project":
        phantom = read_array(args.phantom, "/phantom", ndim=3, dtype_kind="f")
        if phantom.shape[1] != phantom.shape[2]:
            raise InputError(args.phantom, f"slices must be square, got {phantom.shape[1:]}")
        src = read_attrs(args.phantom)
        backend = resolve_backend(args.backend)
        data, theta, scale = project_phantom(phantom, args.n_angles, max_line_integral=args.max_line_integral,
                                             backend=backend, threads=args.threads)
        logger.info("projected %s: %s, attenuation scale %.4g /pixel", args.phantom, data.shape, scale)
        write_projections(args.out, data, theta, {
            "dataset": src.get("dataset", ""), "source": src.get("source", "simulated"),
            "dose": "full", "dose_mode": "full", "dose_level": 1, "noise": "none",
            "center": data.shape[-1] / 2, "attenuation_scale": scale,
            "max_line_integral": args.max_line_integral, "backend": backend,
            "seed": src.get("seed", -1), "versions": software_versions(),
            **({"family": src["family"]} if "family" in src else {}),
            **({"noise_incident": args.noise_incident} if args.noise_incident else {})})
        return

    data, theta, src = read_projections(args.full)
    # a volume simulated for a scan (simulate.scanmatch) carries the scan's photons per pixel: its views get
    # that noise, as the scan's do
    instrument = src.get("noise_incident") if src.get("noise") == "none" else None
    rng = dose_rng(args.seed, args.label) if args.mode == "photons" or instrument else None
    try:
        out, out_theta = low_dose(data, theta, mode=args.mode, factor=args.factor, incident=args.incident, rng=rng,
                                  noise_incident=instrument)
    except ValueError as exc:
        raise InputError(args.full, str(exc)) from None
    level = args.factor if args.mode == "sparse" else args.incident
    attrs = dict(src, dose=args.label, dose_mode=args.mode, dose_level=level,
                 noise="poisson" if args.mode == "photons" or instrument else src.get("noise", "none"),
                 seed=args.seed, parent=str(args.full), versions=software_versions())
    write_projections(args.out, out, out_theta, attrs)
    logger.info("%s: %s -> %s (%d angles)", args.label, args.full, args.out, out.shape[0])


if __name__ == "__main__":
    main()
