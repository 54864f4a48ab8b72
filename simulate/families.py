"""Families of 3-D phantoms for a training corpus with variety.

Every family is built in 3-D, so adjacent slices are physically consistent, and is made by :func:`make`. Values
are attenuation-like (matrix ~1, as :mod:`simulate.phantoms`; :mod:`simulate.acquire` scales them to line
integrals), ``>= 0`` and zero outside a disc of radius ``0.45 * size``. A volume is a deterministic function of
``(family, size, slices, seed, params)``; contrast and geometry are drawn from the seed within the ranges below.
How the corpus uses them: docs/methods.md, "A generalist denoiser: a corpus of phantom families".

==========  ====================================================  ===========================
family      structure                                             attenuation (per volume)
==========  ====================================================  ===========================
foam        :func:`simulate.phantoms.foam_volume`: spherical      matrix ``U(0.5, 1.5)``,
            pores in a cylinder; pore radius range                pores 0
            ``min U(0.02, 0.04)``, ``max min + U(0.03, 0.06)``
            (x size), porosity ``U(0.10, 0.25)``
ellipses    ``U{8..20}`` randomly rotated ellipsoids (semi-axes   each ``U(0.2, 1.0)``, added
            ``U(0.04, 0.22)`` x size) overlapping, no matrix      where they overlap
polygons    ``U{4..9}`` convex polygonal prisms (3-8 vertices)    matrix ``U(0.1, 0.3)``,
            whose cross-section rotates (``U(-2, 2)`` deg per     each prism ``U(0.4, 1.6)``
            slice), breathes in scale and drifts slowly
fibres      ``U{40..80}`` thin straight cylinders (radius         matrix ``U(0.2, 0.5)``,
            ``U(0.8, 2.0)`` px) through the sample at random      fibres matrix + ``U(0.3, 0.8)``
            3-D orientations (fibre composite)
layers      laminate: ``U{6..14}`` layers of random thickness     each layer ``U(0.2, 1.2)``
            normal to a random tilted direction, with a
            sinusoidal undulation of amplitude ``U(1, 4)`` px
shale       the shale stand-in (:mod:`simulate.shale`): bedding   matrix ``U(0.5, 1.5)``, grains
            of thickness ``U(0.01, 0.03)``, dip ``U(0, 30)`` deg,  3-5 x matrix, pores 0.1 x
            porosity ``U(0.02, 0.05)``, ``U{2..6}`` cracks,
            ``U{8..24}`` dense grains
==========  ====================================================  ===========================

The numpy families are supersampled in-plane (``supersample`` x ``supersample`` points
per pixel, averaged) at the slice centre height ``z = k + 0.5``, like the foam.
Pixel geometry: row index along ``x``, column along ``y``, both from the slice centre.

>>> v = make("ellipses", size=32, slices=8, seed=1)
>>> v.shape, v.dtype, bool(v.min() >= 0)
((8, 32, 32), dtype('float32'), True)
>>> sorted(FAMILIES)
['ellipses', 'fibres', 'foam', 'layers', 'polygons', 'shale']

Command (the workflow's ``family_phantom`` rule)::

    python -m simulate.families OUT.h5 --family ellipses --size 256 --slices 32 --seed 7 [--dataset NAME]

writes ``/phantom`` ``(slices, size, size)`` float32 in the layout of :mod:`simulate.phantoms`' foam files
(:func:`write_phantom`), so that the same projection rules read it.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .io import software_versions, write_arrays
from .phantoms import FoamSpec, foam_volume
from .plumbing import InputError, cli

__all__ = ["Family", "FAMILIES", "make", "CYLINDER_RADIUS", "main"]

logger = logging.getLogger(__name__)

CYLINDER_RADIUS = 0.45  # sample radius / slice width, as FoamSpec.cylinder_radius


@dataclass(frozen=True)
class Family:
    """One registered phantom family: its generator and a one-line description."""

    name: str
    description: str
    generate: Callable[..., np.ndarray]


def _grid(size, slices, ss):
    """Supersampled coordinates (pixels from the centre): x rows, y cols (2-D), z per slice."""
    n = size * ss
    c = (np.arange(n, dtype=np.float32) + 0.5) / ss - size / 2
    x, y = np.meshgrid(c, c, indexing="ij")
    z = np.arange(slices, dtype=np.float32) + 0.5
    return x, y, z


def _downsample(vol, ss):
    """Average ``ss x ss`` blocks in-plane: (slices, n*ss, n*ss) -> (slices, n, n) float32."""
    s, n = vol.shape[0], vol.shape[1] // ss
    return vol.reshape(s, n, ss, n, ss).mean(axis=(2, 4)).astype(np.float32)


def _disc(x, y, size):
    return (x * x + y * y) <= (CYLINDER_RADIUS * size) ** 2


def _random_rotation(rng):
    """Uniform random 3-D rotation matrix (QR of a Gaussian matrix, sign-fixed)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    return q


def _foam(size, slices, rng, *, supersample=2, **params):
    r_min = rng.uniform(0.02, 0.04)
    spec_kw = dict(pore_radius_min=r_min, pore_radius_max=r_min + rng.uniform(0.03, 0.06),
                   porosity=rng.uniform(0.10, 0.25), seed=int(rng.integers(2**31)))
    level = rng.uniform(0.5, 1.5)
    spec_kw.update(params)
    spec = FoamSpec(size=size, slices=slices, cylinder_radius=CYLINDER_RADIUS,
                    supersample=supersample, **spec_kw)
    volume, _ = foam_volume(spec)
    # xdesign's supersampled discretisation can leave stray values outside the cylinder
    # (seen at size 48, supersample 2-3): enforce the family's disc contract
    x, y, _ = _grid(size, 1, 1)
    return (volume * level * ((x * x + y * y) <= (CYLINDER_RADIUS * size + 0.5) ** 2)).astype(np.float32)


def _ellipses(size, slices, rng, *, supersample=2, n_objects=None):
    n = int(rng.integers(8, 21)) if n_objects is None else n_objects
    x, y, z = _grid(size, slices, supersample)
    disc = _disc(x, y, size)
    out = np.zeros((slices,) + x.shape, np.float32)
    r_cyl = CYLINDER_RADIUS * size
    for _ in range(n):
        axes = rng.uniform(0.04, 0.22, size=3) * size
        rho = r_cyl * 0.8 * np.sqrt(rng.uniform())
        phi = rng.uniform(0, 2 * np.pi)
        centre = np.array([rho * np.cos(phi), rho * np.sin(phi), rng.uniform(0, slices)])
        inv = _random_rotation(rng).T / axes[:, None]  # body coordinates scaled by semi-axes
        value = rng.uniform(0.2, 1.0)
        dx, dy = x - centre[0], y - centre[1]
        for k in range(slices):
            dz = z[k] - centre[2]
            q = sum((inv[i, 0] * dx + inv[i, 1] * dy + inv[i, 2] * dz) ** 2 for i in range(3))
            out[k] += value * (q <= 1)
    out *= disc
    return _downsample(out, supersample)


def _convex_polygon_inside(x, y, verts):
    """Mask of points inside the convex polygon ``verts`` (counter-clockwise, (m, 2))."""
    inside = np.ones(x.shape, bool)
    for a, b in zip(verts, np.roll(verts, -1, axis=0)):
        inside &= (b[0] - a[0]) * (y - a[1]) - (b[1] - a[1]) * (x - a[0]) >= 0
    return inside


def _polygons(size, slices, rng, *, supersample=2, n_objects=None):
    n = int(rng.integers(4, 10)) if n_objects is None else n_objects
    x, y, _ = _grid(size, slices, supersample)
    disc = _disc(x, y, size)
    out = np.repeat((rng.uniform(0.1, 0.3) * disc)[None].astype(np.float32), slices, axis=0)
    r_cyl = CYLINDER_RADIUS * size
    for _ in range(n):
        m = int(rng.integers(3, 9))
        ang = np.sort(rng.uniform(0, 2 * np.pi, m))
        unit = np.column_stack([np.cos(ang), np.sin(ang)])  # convex, counter-clockwise
        scale = rng.uniform(0.06, 0.2, size=2) * size
        theta0, omega = rng.uniform(0, 2 * np.pi), np.deg2rad(rng.uniform(-2, 2))
        breathe, period, phase = rng.uniform(0, 0.3), rng.uniform(2, 4) * slices, rng.uniform(0, 2 * np.pi)
        rho, phi = 0.6 * r_cyl * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
        centre = np.array([rho * np.cos(phi), rho * np.sin(phi)])
        drift = rng.normal(scale=0.1, size=2)  # pixels per slice
        value = rng.uniform(0.4, 1.6)
        for k in range(slices):
            t = theta0 + omega * k
            rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
            s = 1 + breathe * np.sin(2 * np.pi * k / period + phase)
            verts = (unit * scale * s) @ rot.T + centre + drift * (k - slices / 2)
            out[k][_convex_polygon_inside(x, y, verts)] = value
    out *= disc
    return _downsample(out, supersample)


def _fibres(size, slices, rng, *, supersample=2, n_objects=None):
    n = int(rng.integers(40, 81)) if n_objects is None else n_objects
    x, y, z = _grid(size, slices, supersample)
    disc = _disc(x, y, size)
    matrix, extra = rng.uniform(0.2, 0.5), rng.uniform(0.3, 0.8)
    fibre = np.zeros((slices,) + x.shape, bool)
    r_cyl = CYLINDER_RADIUS * size
    for _ in range(n):
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        rho, phi = r_cyl * np.sqrt(rng.uniform()), rng.uniform(0, 2 * np.pi)
        p = np.array([rho * np.cos(phi), rho * np.sin(phi), rng.uniform(0, slices)])
        radius = rng.uniform(0.8, 2.0)
        dx, dy = x - p[0], y - p[1]
        for k in range(slices):
            dz = z[k] - p[2]
            # squared distance to the line = |v|^2 - (v.d)^2
            along = dx * d[0] + dy * d[1] + dz * d[2]
            dist2 = dx * dx + dy * dy + dz * dz - along * along
            fibre[k] |= dist2 <= radius * radius
    out = (matrix + extra * fibre) * disc
    return _downsample(out, supersample)


def _layers(size, slices, rng, *, supersample=2, n_layers=None):
    n = int(rng.integers(6, 15)) if n_layers is None else n_layers
    x, y, z = _grid(size, slices, supersample)
    disc = _disc(x, y, size)
    normal = rng.normal(size=3) * np.array([1.0, 1.0, 0.5])  # tilted, mostly in-plane
    normal /= np.linalg.norm(normal)
    wave = rng.normal(size=3)
    wave -= wave.dot(normal) * normal
    wave *= 2 * np.pi / (rng.uniform(0.2, 0.6) * size * np.linalg.norm(wave))
    amplitude, phase = rng.uniform(1, 4), rng.uniform(0, 2 * np.pi)
    half = np.sqrt(2 * (size / 2) ** 2 + slices ** 2) + amplitude
    cuts = np.sort(rng.uniform(-half, half, n - 1))
    values = rng.uniform(0.2, 1.2, n).astype(np.float32)
    out = np.empty((slices,) + x.shape, np.float32)
    for k in range(slices):
        zc = z[k] - slices / 2
        u = x * normal[0] + y * normal[1] + zc * normal[2]
        u = u + amplitude * np.sin(x * wave[0] + y * wave[1] + zc * wave[2] + phase)
        out[k] = values[np.searchsorted(cuts, u)] * disc
    return _downsample(out, supersample)


def _shale(size, slices, rng, **params):
    """The shale stand-in (:func:`simulate.shale.shale_volume`) with its bedding, pores, cracks and grains drawn
    around the two samples' presets (:data:`simulate.shale.SAMPLE_PRESETS`), and its matrix level drawn."""
    from .shale import ShaleSample, shale_volume

    kw = dict(layer_thickness=rng.uniform(0.01, 0.03), layer_contrast=rng.uniform(0.1, 0.25),
              layer_dip=rng.uniform(0.0, 30.0), porosity=rng.uniform(0.02, 0.05),
              pore_aspect_max=rng.uniform(0.25, 0.4), n_cracks=int(rng.integers(2, 7)),
              n_inclusions=int(rng.integers(8, 25)), seed=int(rng.integers(2**31)))
    level = rng.uniform(0.5, 1.5)
    kw.update(params)
    volume = shale_volume(ShaleSample(name="corpus", size=size, slices=slices, cylinder_radius=CYLINDER_RADIUS, **kw))
    return (volume * level).astype(np.float32)


FAMILIES: dict[str, Family] = {f.name: f for f in [
    Family("foam", "spherical pores in a solid cylinder (simulate.phantoms), randomised pores", _foam),
    Family("ellipses", "overlapping random ellipsoids with additive random attenuations", _ellipses),
    Family("polygons", "convex polygonal prisms whose cross-section rotates and breathes with z", _polygons),
    Family("fibres", "thin cylinders at random 3-D orientations in a matrix (fibre composite)", _fibres),
    Family("layers", "tilted undulating laminate of random layer thicknesses and attenuations", _layers),
    Family("shale", "the shale stand-in (simulate.shale): bedding, flat pores, cracks and dense grains, randomised",
           _shale),
]}


def make(family: str, *, size: int, slices: int, seed: int, **params) -> np.ndarray:
    """One phantom volume of ``family``.

    Parameters
    ----------
    family : str
        A key of :data:`FAMILIES`.
    size, slices : int
        Pixels per side of a slice and number of slices, both ``>= 8``.
    seed : int
        Seeds geometry and contrast; equal seeds give identical volumes.
    **params
        Family-specific overrides (``supersample``; ``n_objects`` for ellipses, polygons,
        fibres; ``n_layers`` for layers; :class:`~simulate.phantoms.FoamSpec` fields for foam;
        :class:`~simulate.shale.ShaleSample` fields for shale).

    Returns
    -------
    ndarray of float32, shape (slices, size, size)
        Attenuation ``>= 0``, zero outside the disc of radius ``0.45 * size``.

    >>> make("sponge", size=16, slices=8, seed=0)
    Traceback (most recent call last):
    ...
    ValueError: unknown phantom family 'sponge'; allowed: ellipses, fibres, foam, layers, polygons, shale
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown phantom family {family!r}; allowed: {', '.join(sorted(FAMILIES))}")
    if size < 8 or slices < 8:
        raise ValueError(f"size and slices must be >= 8, got size={size}, slices={slices}")
    rng = np.random.default_rng([seed, sorted(FAMILIES).index(family)])
    volume = FAMILIES[family].generate(int(size), int(slices), rng, **params)
    volume = np.clip(np.nan_to_num(volume), 0, None).astype(np.float32, copy=False)
    logger.debug("phantom %s size %d slices %d seed %d: mean %.3f", family, size, slices, seed, volume.mean())
    return volume


@cli
def main(argv=None):
    """``python -m simulate.families OUT.h5 --family NAME --size N --slices N --seed S [--dataset NAME]``"""
    p = argparse.ArgumentParser(prog="python -m simulate.families",
                                description="Make a 3-D phantom of one family of the training corpus and write it "
                                            "to HDF5 (dataset /phantom, (slices, rows, cols)).")
    p.add_argument("out", help="output HDF5")
    p.add_argument("--family", required=True, choices=sorted(FAMILIES))
    p.add_argument("--size", type=int, required=True, help="pixels per slice side")
    p.add_argument("--slices", type=int, required=True)
    p.add_argument("--seed", type=int, required=True, help="geometry and contrast are drawn from it")
    p.add_argument("--dataset", default="", help="dataset name recorded in the attributes (default: the family)")
    args = p.parse_args(argv)
    try:
        volume = make(args.family, size=args.size, slices=args.slices, seed=args.seed)
    except ValueError as exc:
        raise InputError("arguments", str(exc)) from None
    logger.info("%s %s: %d x %d^2, seed %d, mean %.3f", args.family, args.dataset or args.family, args.slices,
                args.size, args.seed, float(volume.mean()))
    write_phantom(args.out, volume, family=args.family, seed=args.seed, dataset=args.dataset)


def write_phantom(path, volume, *, family: str, seed: int, dataset: str = "", **extra) -> None:
    """Write a family's volume as ``/phantom`` with the attributes the projection rules read (``extra`` added,
    e.g. ``matched_to``: the scan a volume is simulated for, :mod:`simulate.scanmatch`)."""
    write_arrays(path, {"/phantom": volume},
                 {"dataset": dataset or family, "kind": "family", "family": family,
                  "description": FAMILIES[family].description, "seed": seed, "size": int(volume.shape[-1]),
                  "slices": int(volume.shape[0]), "source": f"simulated ({family} family, simulate/families.py)",
                  "units": "attenuation-like (matrix about 1), zero outside the sample disc",
                  "axes": "slices, rows, cols", "versions": software_versions(), **extra})

if __name__ == "__main__":
    main()
