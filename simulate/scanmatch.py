"""Simulation matched to a user's scan: training volumes measured the way that scan was.

Phantoms of the corpus's families (:mod:`simulate.families`) are simulated *at a scan's acquisition*, read from its
prepared full-dose projections (:func:`scan_geometry`): its angles, its detector width, its rotation centre (the
projections are shifted so that the axis sits where the scan's does), its largest line integral (the
99.9th percentile of the scan's, so that a few starved pixels do not set it) and its photons per pixel, estimated
from its flat and dark fields (:func:`estimate_incident`). The full-dose projections stay noise-free (the training
target) and record that level as ``noise_incident``, which every low-dose variant then carries
(:func:`simulate.acquire.low_dose`). Why, and how the gain and the photons are estimated: docs/methods.md, "A model
for your scan: simulation matched to its acquisition". With fewer than two flat frames no variance can be measured:
the counts are taken as photons (gain 1) and ``incident_method`` says so.

Commands (the workflow's ``matched_phantom`` and ``project_matched`` rules)::

    python -m simulate.scanmatch phantom SCAN_FULL.h5 OUT.h5 --family fibres --slices 8 --seed 7 [--dataset NAME]
    python -m simulate.scanmatch project PHANTOM.h5 SCAN_FULL.h5 OUT.h5 [--backend auto] [--threads 1]
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .acquire import read_projections, scale_to_line_integral, write_projections
from .io import dataset_shape, read_array, read_attrs, software_versions
from .plumbing import InputError, cli

__all__ = ["ScanGeometry", "estimate_incident", "scan_geometry", "project_matched", "main"]

logger = logging.getLogger(__name__)

LINE_INTEGRAL_PERCENTILE = 99.9  # the scan's "largest" line integral: robust to a few starved pixels


def estimate_incident(white, dark) -> dict:
    """Photons per detector pixel from a scan's flat and dark frames.

    Parameters
    ----------
    white, dark : ndarray, shape (frames, rows, detector)
        Flat fields (beam, no sample) and dark fields (no beam), in detector counts.

    Returns
    -------
    dict
        ``incident_estimate`` (photons per pixel), ``gain_estimate`` (counts per photon) and ``incident_method``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> white = 3.0 * rng.poisson(2000.0, (20, 4, 64)) + 100.0   # gain 3, 2000 photons
    >>> est = estimate_incident(white, np.full((5, 4, 64), 100.0))
    >>> round(est["gain_estimate"], 1), abs(est["incident_estimate"] / 2000 - 1) < 0.05
    (3.0, True)
    """
    white = np.asarray(white, dtype=np.float64)
    dark = np.asarray(dark, dtype=np.float64)
    signal = white.mean(axis=0) - (dark.mean(axis=0) if dark.shape[0] else 0.0)
    if not (signal > 0).any():
        raise ValueError("flat fields are nowhere above the dark fields")
    lit = signal > 0
    if white.shape[0] < 2:
        return {"incident_estimate": float(np.median(signal[lit])), "gain_estimate": 1.0,
                "incident_method": "mean flat - dark, counts taken as photons (one flat frame: no variance)"}
    read_var = dark.var(axis=0, ddof=1) if dark.shape[0] > 1 else 0.0
    excess = white.var(axis=0, ddof=1) - read_var
    gain = float(np.median((excess / np.where(lit, signal, 1.0))[lit]))
    if not gain > 0:
        raise ValueError("flat fields vary less from frame to frame than the darks: no photon noise to measure")
    return {"incident_estimate": float(np.median(signal[lit])) / gain, "gain_estimate": gain,
            "incident_method": f"mean / (frame-to-frame variance per count) over {white.shape[0]} flat and "
                               f"{dark.shape[0]} dark frames"}


@dataclass
class ScanGeometry:
    """How a scan was acquired, as a simulation needs it (:func:`scan_geometry`)."""

    dataset: str
    theta: np.ndarray  # radians
    detector: int  # pixels across
    center: float  # pixel edges, detector / 2 = centred
    incident: float  # photons per pixel (estimated from the flats)
    max_line_integral: float

    @property
    def n_angles(self) -> int:
        return int(self.theta.shape[0])


def scan_geometry(path) -> ScanGeometry:
    """Read a scan's geometry, attenuation level and photon level from its prepared full-dose projections.

    Raises InputError when the file has no ``incident_estimate`` (a file prepared before the estimate existed, or
    a simulated volume: give it a scan's projections).
    """
    data, theta, attrs = read_projections(path)
    if "incident_estimate" not in attrs:
        raise InputError(path, "no 'incident_estimate' attribute: give a scan's projections prepared by "
                               "simulate.dxchange (the photons per pixel are estimated from its flats)")
    level = float(np.percentile(data, LINE_INTEGRAL_PERCENTILE))
    if not level > 0:
        raise InputError(path, "the scan's line integrals are not positive: nothing attenuates")
    return ScanGeometry(dataset=str(attrs.get("dataset", "")), theta=theta, detector=int(data.shape[-1]),
                        center=float(attrs.get("center", data.shape[-1] / 2)),
                        incident=float(attrs["incident_estimate"]), max_line_integral=level)


def project_matched(phantom, geometry: ScanGeometry, *, backend: str = "auto", threads: int = 1):
    """Noise-free projections of a phantom at a scan's angles, detector, rotation centre and attenuation level.

    Returns ``(data, theta, scale)`` as :func:`simulate.acquire.project_phantom`: the projections
    ``(angles, slices, detector)``, the angles in radians and the attenuation per pixel of unit phantom value.
    """
    from .reconstruct import project

    phantom = np.asarray(phantom, dtype=np.float32)
    if phantom.shape[1:] != (geometry.detector, geometry.detector):
        raise ValueError(f"phantom slices {phantom.shape[1:]} do not match the scan's detector of "
                         f"{geometry.detector} pixels")
    data = project(phantom, geometry.theta, n_det=geometry.detector, backend=backend, threads=threads)
    offset = geometry.center - geometry.detector / 2
    if offset:  # move the rotation axis to where the scan's is
        data = ndimage.shift(data, (0.0, 0.0, offset), order=1, mode="grid-constant", cval=0.0)
    data, scale = scale_to_line_integral(data, geometry.max_line_integral)
    return data, geometry.theta.copy(), scale


@cli
def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m simulate.scanmatch",
                                description="Simulate training volumes at a scan's own acquisition.")
    sub = p.add_subparsers(dest="command", required=True)
    ph = sub.add_parser("phantom", help="a corpus family's phantom as wide as the scan's detector")
    ph.add_argument("scan", help="the scan's prepared full-dose projections")
    ph.add_argument("out")
    ph.add_argument("--family", required=True)
    ph.add_argument("--slices", type=int, required=True)
    ph.add_argument("--seed", type=int, required=True)
    ph.add_argument("--dataset", default="")
    pr = sub.add_parser("project", help="noise-free projections at the scan's acquisition")
    pr.add_argument("phantom")
    pr.add_argument("scan", help="the scan's prepared full-dose projections")
    pr.add_argument("out")
    pr.add_argument("--backend", default="auto")
    pr.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)

    if args.command == "phantom":
        from .families import make, write_phantom

        detector = dataset_shape(args.scan, "/exchange/data", ndim=3)[-1]
        try:
            volume = make(args.family, size=detector, slices=args.slices, seed=args.seed)
        except ValueError as exc:
            raise InputError("arguments", str(exc)) from None
        write_phantom(args.out, volume, family=args.family, seed=args.seed, dataset=args.dataset,
                      matched_to=str(read_attrs(args.scan).get("dataset", args.scan)))
        return

    from .reconstruct import resolve_backend

    phantom = read_array(args.phantom, "/phantom", ndim=3, dtype_kind="f")
    geometry = scan_geometry(args.scan)
    backend = resolve_backend(args.backend)
    try:
        data, theta, scale = project_matched(phantom, geometry, backend=backend, threads=args.threads)
    except ValueError as exc:
        raise InputError(args.phantom, str(exc)) from None
    src = read_attrs(args.phantom)
    write_projections(args.out, data, theta, {
        "dataset": src.get("dataset", ""), "source": src.get("source", "simulated"),
        "family": src.get("family", ""), "matched_to": geometry.dataset,
        "dose": "full", "dose_mode": "full", "dose_level": 1, "noise": "none",
        "noise_incident": geometry.incident, "center": geometry.center, "attenuation_scale": scale,
        "max_line_integral": geometry.max_line_integral, "backend": backend, "seed": src.get("seed", -1),
        "versions": software_versions()})
    logger.info("%s at %s's acquisition: %s, centre %.2f, %.4g photons/pixel, largest line integral %.3g",
                args.phantom, geometry.dataset, data.shape, geometry.center, geometry.incident,
                geometry.max_line_integral)


if __name__ == "__main__":
    main()
