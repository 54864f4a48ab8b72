"""Synthetic shale: a stand-in for the TomoBank shale scans, measured like a raw scan.

The study's shale datasets (TomoBank tomo_00001..00004: Bakken-like shales "B1 hornby" and "N1 blakely", each
scanned at APS 2-BM and at SLS TOMCAT) cannot be downloaded everywhere, so this module builds a shale-like sample
(:func:`shale_volume`: a cylinder about the rotation axis of layered, textured matrix, with flat pores along the
dipping bedding, thin cracks and dense grains, each drawn with an anti-aliased edge; the fields of
:class:`ShaleSample`) and measures it at a facility (:func:`measure`, :class:`FacilitySpec`), writing the raw
DXchange file a beamline writes (:func:`main`) plus ``/truth/volume``, the sample on the detector grid in
attenuation per detector pixel. :mod:`simulate.dxchange` reads real and synthetic files by one code path, and every
synthetic file carries ``source = "synthetic-shale"``, so a stand-in never passes as real data. Lengths are
fractions of the slice width, so one sample looks the same at any grid size, and the same :class:`ShaleSample`
(seed included) gives a bit-identical volume. The measurement model: docs/methods.md, "The shale stand-in, measured
as a beamline would".
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import asdict, dataclass, fields

import numpy as np
from scipy import ndimage

from .acquire import angles
from .io import software_versions, write_arrays
from .plumbing import cli
from .reconstruct import project, resolve_backend

__all__ = [
    "SOURCE",
    "SAMPLE_PRESETS",
    "ShaleSample",
    "FacilitySpec",
    "shale_volume",
    "beam_profile",
    "measure",
    "run",
    "main",
]

logger = logging.getLogger(__name__)

SOURCE = "synthetic-shale"
"""The ``source`` attribute of every file derived from the stand-in."""


# --------------------------------------------------------------------------- specs

@dataclass(frozen=True)
class ShaleSample:
    """Everything that defines one synthetic shale volume (lengths / slice width unless noted)."""

    name: str = "hornby"             # sample name recorded in the files (B1 hornby, N1 blakely)
    size: int = 256                  # voxels per side of a slice of the sample grid
    slices: int = 48                 # number of slices (one voxel thick)
    seed: int = 1                    # the sample's random seed (independent of the noise seed)
    cylinder_radius: float = 0.45    # sample radius; inside the field of view (0.5)
    layer_thickness: float = 0.02    # correlation length of the band profile along the bedding normal
    layer_contrast: float = 0.15     # relative density swing of the bands
    layer_dip: float = 20.0          # degrees, bedding normal out of the slice plane (0: beds parallel to the axis)
    layer_waviness: float = 0.01     # amplitude of the laminae's undulation
    texture_scale: float = 0.08      # correlation length of the low-frequency texture
    texture_contrast: float = 0.04   # relative density swing of the texture
    porosity: float = 0.03           # target pore volume fraction of the cylinder (approximate; pores may merge)
    pore_radius_min: float = 0.006   # smallest pore semi-major axis
    pore_radius_max: float = 0.03    # largest pore semi-major axis (log-uniform in between)
    pore_aspect_min: float = 0.15    # pore short / long semi-axis, lower bound (flat pores)
    pore_aspect_max: float = 0.4     # ... upper bound
    pore_density: float = 0.1        # pore attenuation (matrix ~1): partly filled with organic matter
    n_cracks: int = 3                # thin planar sheets
    crack_length_min: float = 0.12   # crack half-length, lower bound
    crack_length_max: float = 0.3    # ... upper bound
    crack_width: float = 0.005       # crack thickness (0.005 x 256 = 1.3 voxels)
    crack_density: float = 0.0       # crack attenuation (open: 0)
    n_inclusions: int = 12           # dense grains (pyrite)
    inclusion_radius_min: float = 0.005
    inclusion_radius_max: float = 0.015
    inclusion_density_min: float = 3.0   # attenuation / matrix, lower bound
    inclusion_density_max: float = 5.0   # ... upper bound

    def __post_init__(self):
        if self.size < 8 or self.slices < 1:
            raise ValueError(f"size must be >= 8 and slices >= 1, got {self.size}, {self.slices}")
        if not 0 < self.cylinder_radius <= 0.5:
            raise ValueError(f"cylinder_radius must lie in (0, 0.5], got {self.cylinder_radius}")
        if not 0 < self.pore_radius_min <= self.pore_radius_max < self.cylinder_radius:
            raise ValueError("need 0 < pore_radius_min <= pore_radius_max < cylinder_radius")
        if not 0 < self.pore_aspect_min <= self.pore_aspect_max <= 1:
            raise ValueError("need 0 < pore_aspect_min <= pore_aspect_max <= 1")
        if not 0 <= self.porosity < 0.5:
            raise ValueError(f"porosity must lie in [0, 0.5), got {self.porosity}")
        if not 0 < self.crack_length_min <= self.crack_length_max:
            raise ValueError("need 0 < crack_length_min <= crack_length_max")
        if not 0 < self.inclusion_radius_min <= self.inclusion_radius_max < self.cylinder_radius:
            raise ValueError("need 0 < inclusion_radius_min <= inclusion_radius_max < cylinder_radius")
        if not 0 <= self.inclusion_density_min <= self.inclusion_density_max:
            raise ValueError("need 0 <= inclusion_density_min <= inclusion_density_max")
        if self.n_cracks < 0 or self.n_inclusions < 0:
            raise ValueError("n_cracks and n_inclusions must be >= 0")
        if self.layer_thickness <= 0 or self.texture_scale <= 0:
            raise ValueError("layer_thickness and texture_scale must be > 0")
        if not 0 <= self.layer_dip <= 90:
            raise ValueError(f"layer_dip must lie in [0, 90] degrees, got {self.layer_dip}")


# Suggested parameters of the two samples (the config may copy or override them):
# N1 blakely is more finely laminated, with more contrast, more and flatter pores.
SAMPLE_PRESETS = {
    "hornby": {"name": "hornby", "seed": 1},
    "blakely": {"name": "blakely", "seed": 2, "layer_thickness": 0.012, "layer_contrast": 0.22,
                "layer_dip": 10.0, "porosity": 0.045, "pore_aspect_max": 0.3,
                "n_cracks": 5, "n_inclusions": 20, "inclusion_density_min": 3.5},
}


@dataclass(frozen=True)
class FacilitySpec:
    """A beamline's acquisition (all lengths in detector pixels).

    Example scaled values (paper size / 8 angles of 1501 or 1441 -> 4): APS-like
    ``n_angles=376, detector=256, incident=2e4, blur=0.6``; SLS-like
    ``n_angles=360, detector=288, incident=8e3, blur=1.0``.
    """

    name: str = "aps"                # facility name recorded in the files ('aps', 'sls')
    n_angles: int = 376              # projections over [0, pi) (paper: APS 1501, SLS 1441)
    detector: int = 256              # detector pixels across the sample grid's width (sets the pixel size)
    rows: int = 0                    # detector rows kept, central (0: all rows of the resampled sample)
    incident: float = 2e4            # photons per pixel in the flats, I0 (the dose)
    blur: float = 0.6                # detector blur, Gaussian sigma in pixels (rows and detector)
    center_offset: float = 0.0       # rotation axis minus detector/2, pixels (paper: 0, +5, -13, +24 of 2048)
    dark: float = 100.0              # dark level, counts
    dark_noise: float = 2.0          # dark (read) noise, counts, standard deviation
    n_flat: int = 10                 # flat (white) frames
    n_dark: int = 10                 # dark frames
    max_line_integral: float = 2.0   # the largest noise-free line integral (13.5 % transmission)
    flat_falloff: float = 0.1        # beam intensity drop at the detector's edges (fraction)

    def __post_init__(self):
        if self.n_angles < 2 or self.detector < 8 or self.rows < 0:
            raise ValueError(f"need n_angles >= 2, detector >= 8, rows >= 0; got {self.n_angles}, "
                             f"{self.detector}, {self.rows}")
        if not self.incident > 0 or self.blur < 0 or self.dark < 0 or self.dark_noise < 0:
            raise ValueError("need incident > 0, blur >= 0, dark >= 0, dark_noise >= 0")
        if self.n_flat < 1 or self.n_dark < 1:
            raise ValueError("need at least one flat and one dark frame")
        if not self.max_line_integral > 0 or not 0 <= self.flat_falloff < 1:
            raise ValueError("need max_line_integral > 0 and 0 <= flat_falloff < 1")
        if abs(self.center_offset) >= self.detector / 4:
            raise ValueError(f"center_offset {self.center_offset} is too large for {self.detector} pixels")
        if self.incident + self.dark + 6 * self.dark_noise > 65535:
            raise ValueError("incident + dark overflow the uint16 counts")

    @property
    def center(self) -> float:
        """Rotation axis on the detector, pixels (``detector / 2`` is centred)."""
        return self.detector / 2 + self.center_offset


# --------------------------------------------------------------------------- sample

def _coords(n: int) -> np.ndarray:
    """Voxel-centre coordinates of ``n`` voxels, measured from the grid's centre."""
    return np.arange(n, dtype=np.float64) - (n - 1) / 2


def _smooth_field(rng, shape, corr: float) -> np.ndarray:
    """Smooth random field of unit standard deviation, correlation length ``corr`` voxels.

    White noise on a coarse grid (spacing ``corr``) is interpolated with separable
    Gaussian weights: three small matrix products instead of a 3-D filter.
    """
    h = max(float(corr), 1.0)
    mats, coarse = [], []
    for n in shape:
        m = int(np.ceil(n / h)) + 5
        c = np.arange(m) - 2.0                       # coarse knots, in units of h, around the grid
        w = np.exp(-0.5 * ((np.arange(n)[:, None] / h - c[None, :]) / 0.8) ** 2)
        mats.append(w / w.sum(axis=1, keepdims=True))
        coarse.append(m)
    field = rng.standard_normal(coarse)
    for axis, w in enumerate(mats):
        field = np.moveaxis(np.tensordot(w, np.moveaxis(field, axis, 0), axes=1), 0, axis)
    field -= field.mean()
    return field / (field.std() or 1.0)


def _band_profile(rng, s: np.ndarray, corr: float) -> np.ndarray:
    """Random bands along the bedding normal: smoothed 1-D noise, sharpened, values in (-1, 1)."""
    step = 0.5
    lo, hi = float(s.min()) - 2, float(s.max()) + 2
    grid = np.arange(lo, hi + step, step)
    prof = ndimage.gaussian_filter1d(rng.standard_normal(grid.size), sigma=max(corr, 0.5) / step, mode="wrap")
    prof = (prof - prof.mean()) / (prof.std() or 1.0)
    return np.tanh(1.5 * np.interp(s, grid, prof))


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def _frame(normal, rng) -> np.ndarray:
    """Rows: two random orthonormal in-plane axes, then ``normal`` (coordinates z, y, x)."""
    n = _unit(normal)
    helper = np.array([1.0, 0.0, 0.0]) if abs(n[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = _unit(np.cross(n, helper))
    v = np.cross(n, u)
    phi = rng.uniform(0, 2 * np.pi)
    u, v = np.cos(phi) * u + np.sin(phi) * v, -np.sin(phi) * u + np.cos(phi) * v
    return np.stack([u, v, n])


def _paint_ellipsoid(vol, coords, centre, axes, semi, value) -> None:
    """Blend an anti-aliased ellipsoid of ``value`` into ``vol`` in place.

    Parameters
    ----------
    vol : ndarray, shape (slices, rows, cols)
    coords : tuple of three 1-D arrays
        Voxel-centre coordinates along z, y, x.
    centre : (3,) z, y, x
    axes : (3, 3)
        Rows are the unit principal axes.
    semi : (3,)
        Semi-axes along those rows, voxels.
    value : float
        Attenuation inside.
    """
    semi = np.maximum(np.asarray(semi, dtype=np.float64), 0.05)
    half = np.sqrt(((axes * semi[:, None]) ** 2).sum(axis=0)) + 1.5   # bounding box half-extent per axis
    box = []
    for c, ctr, h in zip(coords, centre, half):
        lo = int(np.searchsorted(c, ctr - h))
        hi = int(np.searchsorted(c, ctr + h, side="right"))
        if hi <= lo:
            return
        box.append(slice(lo, hi))
    dz = (coords[0][box[0]] - centre[0])[:, None, None]
    dy = (coords[1][box[1]] - centre[1])[None, :, None]
    dx = (coords[2][box[2]] - centre[2])[None, None, :]
    q2 = 0.0
    g2 = 0.0
    for i in range(3):
        u = axes[i, 0] * dz + axes[i, 1] * dy + axes[i, 2] * dx
        q2 = q2 + (u / semi[i]) ** 2
        g2 = g2 + (u / semi[i] ** 2) ** 2
    q = np.sqrt(q2)
    # distance to the surface to first order: (q - 1) / |grad q|, |grad q| = sqrt(g2) / q
    dist = (q - 1.0) * q / np.sqrt(np.maximum(g2, 1e-12))
    cover = np.clip(0.5 - dist, 0.0, 1.0)
    sub = vol[tuple(box)]
    sub += cover * (value - sub)


def _place_in_cylinder(rng, r_cyl, reach, slices):
    """A random centre (z, y, x) whose feature (radius ``reach``) stays inside the cylinder."""
    rho = max(r_cyl - reach, 0.0) * np.sqrt(rng.uniform())
    phi = rng.uniform(0, 2 * np.pi)
    z = rng.uniform(-slices / 2, slices / 2)
    return np.array([z, rho * np.cos(phi), rho * np.sin(phi)])


def shale_volume(sample: ShaleSample) -> np.ndarray:
    """Build a shale-like attenuation volume.

    Parameters
    ----------
    sample : ShaleSample
        Geometry, feature statistics and seed.

    Returns
    -------
    ndarray of float32, shape (slices, size, size)
        Attenuation in matrix units (matrix ~1, pores ~``pore_density``, pyrite 3-5,
        air 0 outside the cylinder). The slice axis is the cylinder's (rotation) axis.

    Examples
    --------
    >>> v = shale_volume(ShaleSample(size=32, slices=4, n_cracks=1, n_inclusions=2))
    >>> v.shape, v.dtype.name
    ((4, 32, 32), 'float32')
    """
    rng = np.random.default_rng(sample.seed)
    n, nz = sample.size, sample.slices
    coords = (_coords(nz), _coords(n), _coords(n))
    z = coords[0][:, None, None]
    y = coords[1][None, :, None]
    x = coords[2][None, None, :]
    r_cyl = sample.cylinder_radius * n

    # layered matrix: bands along the dipping bedding normal, wavy, times a slow texture
    dip = np.radians(sample.layer_dip)
    azimuth = rng.uniform(0, 2 * np.pi)
    normal = np.array([np.sin(dip), np.cos(dip) * np.cos(azimuth), np.cos(dip) * np.sin(azimuth)])
    wave = _smooth_field(rng, (nz, n, n), 4 * sample.layer_thickness * n)
    texture = _smooth_field(rng, (nz, n, n), sample.texture_scale * n)
    s = normal[0] * z + normal[1] * y + normal[2] * x + sample.layer_waviness * n * wave
    bands = _band_profile(rng, s, sample.layer_thickness * n)
    vol = (1.0 + sample.layer_contrast * bands) * (1.0 + sample.texture_contrast * texture)
    del wave, texture, s, bands

    # flat pores along the bedding, log-uniform sizes, until the target pore volume
    target = sample.porosity * np.pi * r_cyl ** 2 * nz
    a_lo, a_hi = sample.pore_radius_min * n, sample.pore_radius_max * n
    filled, n_pores = 0.0, 0
    while filled < target:
        a = np.exp(rng.uniform(np.log(a_lo), np.log(a_hi)))
        semi = np.array([a, a * rng.uniform(0.6, 1.0), a * rng.uniform(sample.pore_aspect_min,
                                                                      sample.pore_aspect_max)])
        centre = _place_in_cylinder(rng, r_cyl, a, nz)
        _paint_ellipsoid(vol, coords, centre, _frame(normal, rng), semi, sample.pore_density)
        filled += 4 / 3 * np.pi * semi.prod()
        n_pores += 1

    # cracks: thin sheets, alternately along the bedding and steep (crossing many slices)
    for i in range(sample.n_cracks):
        if i % 2 == 0:
            crack_normal = _unit(normal + 0.15 * rng.standard_normal(3))
        else:
            crack_normal = _unit([rng.uniform(-0.4, 0.4), *rng.standard_normal(2)])
        length = rng.uniform(sample.crack_length_min, sample.crack_length_max) * n
        semi = np.array([length, length * rng.uniform(0.3, 0.8), sample.crack_width * n / 2])
        centre = _place_in_cylinder(rng, r_cyl, 0.0, nz)
        _paint_ellipsoid(vol, coords, centre, _frame(crack_normal, rng), semi, sample.crack_density)

    # dense grains
    for _ in range(sample.n_inclusions):
        r = rng.uniform(sample.inclusion_radius_min, sample.inclusion_radius_max) * n
        semi = r * np.array([1.0, rng.uniform(0.7, 1.0), rng.uniform(0.7, 1.0)])
        centre = _place_in_cylinder(rng, r_cyl, r, nz)
        density = rng.uniform(sample.inclusion_density_min, sample.inclusion_density_max)
        _paint_ellipsoid(vol, coords, centre, _frame(_unit(rng.standard_normal(3)), rng), semi, density)

    # the cylinder, anti-aliased at its surface
    rho = np.sqrt(y ** 2 + x ** 2)
    vol *= np.clip(0.5 - (rho - r_cyl), 0.0, 1.0)
    logger.debug("shale %s: %d pores, %d cracks, %d inclusions", sample.name, n_pores,
                 sample.n_cracks, sample.n_inclusions)
    return vol.astype(np.float32)


# --------------------------------------------------------------------------- measurement

def beam_profile(rows: int, detector: int, falloff: float) -> np.ndarray:
    """Relative incident intensity ``f(row, det)``: 1 at the centre, ``1 - falloff`` at the edges.

    A smooth synchrotron-like beam, wider than tall; flat-field normalisation removes it.

    Returns
    -------
    ndarray of float64, shape (rows, detector)
    """
    u = _coords(detector) / (detector / 2)
    v = _coords(rows) / max(rows / 2, 1.0)
    return (1.0 - falloff * u[None, :] ** 2) * (1.0 - 0.5 * falloff * v[:, None] ** 2)


def _dark_frames(rng, shape, level, noise) -> np.ndarray:
    return np.rint(rng.normal(level, noise, shape)) if noise > 0 else np.full(shape, np.rint(level))


def _uint16(counts) -> np.ndarray:
    return np.clip(counts, 0, 65535).astype(np.uint16)


def measure(volume, facility: FacilitySpec, *, rng: np.random.Generator, backend: str = "auto",
            threads: int = 1) -> dict:
    """Scan a volume at a facility: raw counts, flats, darks and the angles.

    Parameters
    ----------
    volume : ndarray, shape (slices, size, size)
        Attenuation in any unit (rescaled, see ``facility.max_line_integral``).
    facility : FacilitySpec
    rng : numpy.random.Generator
        Source of the photon and dark noise.
    backend, threads
        Passed to :func:`simulate.reconstruct.project`.

    Returns
    -------
    dict with
        ``data`` : uint16 ``(n_angles, rows, detector)`` counts;
        ``white`` : uint16 ``(n_flat, rows, detector)``; ``dark`` : uint16 ``(n_dark, rows, detector)``;
        ``theta`` : float64 ``(n_angles,)`` degrees;
        ``truth`` : float32 ``(rows, detector, detector)``, attenuation per detector pixel, the
        volume that the noise-free line integrals are exact projections of (before shift and blur);
        ``attenuation_scale`` : float, attenuation per detector pixel per unit of the resampled volume;
        ``center`` : float, rotation axis on the detector, pixels.
    """
    volume = np.asarray(volume, dtype=np.float32)
    if volume.ndim != 3 or volume.shape[1] != volume.shape[2]:
        raise ValueError(f"volume must be (slices, n, n), got shape {volume.shape}")
    det = facility.detector
    zoom = det / volume.shape[-1]
    if zoom != 1.0:
        if zoom < 1.0:  # anti-alias before decimating
            volume = ndimage.gaussian_filter(volume, sigma=0.4 / zoom)
        n_rows = max(1, int(round(volume.shape[0] * zoom)))
        volume = ndimage.zoom(volume, (n_rows / volume.shape[0], zoom, zoom), order=1,
                              grid_mode=True, mode="grid-constant", cval=0.0)
        if volume.shape[1:] != (det, det):  # zoom rounds the output shape
            raise ValueError(f"resampling gave {volume.shape[1:]}, expected ({det}, {det})")
    rows = facility.rows or volume.shape[0]
    if rows > volume.shape[0]:
        raise ValueError(f"facility rows {rows} exceed the {volume.shape[0]} slices of the sample "
                         f"at this pixel size: give the sample more slices")
    start = (volume.shape[0] - rows) // 2
    volume = np.ascontiguousarray(volume[start:start + rows])

    theta = angles(facility.n_angles)
    p = project(volume, theta, n_det=det, backend=backend, threads=threads)
    peak = float(p.max())
    if not peak > 0:
        raise ValueError("the sample projects to all zeros")
    scale = facility.max_line_integral / peak
    p *= scale
    if facility.center_offset:
        p = ndimage.shift(p, (0.0, 0.0, facility.center_offset), order=1, mode="grid-constant", cval=0.0)
    profile = beam_profile(rows, det, facility.flat_falloff)
    intensity = facility.incident * profile[None] * np.exp(-np.maximum(p.astype(np.float64), 0.0))
    flat = facility.incident * profile
    if facility.blur > 0:
        sigma = (0.0, facility.blur, facility.blur)
        intensity = ndimage.gaussian_filter(intensity, sigma=sigma, mode="nearest")
        flat = ndimage.gaussian_filter(flat, sigma=sigma[1:], mode="nearest")
    data = rng.poisson(intensity).astype(np.float64)
    data += _dark_frames(rng, data.shape, facility.dark, facility.dark_noise)
    white = rng.poisson(np.broadcast_to(flat, (facility.n_flat, rows, det))).astype(np.float64)
    white += _dark_frames(rng, white.shape, facility.dark, facility.dark_noise)
    dark = _dark_frames(rng, (facility.n_dark, rows, det), facility.dark, facility.dark_noise)
    return {
        "data": _uint16(data), "white": _uint16(white), "dark": _uint16(dark),
        "theta": np.degrees(theta), "truth": (volume * scale).astype(np.float32),
        "attenuation_scale": scale, "center": facility.center,
    }


# --------------------------------------------------------------------------- command line

def _flag(field: str, spec: str) -> str:
    if field == "name":
        return "--" + spec
    if spec == "sample" and field == "seed":
        return "--sample-seed"
    return "--" + field.replace("_", "-")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m simulate.shale",
        description="Build a synthetic shale sample, measure it at a facility, write a raw DXchange file "
                    "(source: synthetic-shale).")
    p.add_argument("out", help="raw DXchange HDF5 (/exchange/data, data_white, data_dark, theta; /truth/volume)")
    p.add_argument("--dataset", required=True, help="dataset name recorded in the file, e.g. tomo_00001")
    p.add_argument("--preset", choices=sorted(SAMPLE_PRESETS),
                   help="start from these sample parameters (explicit flags override them)")
    p.add_argument("--seed", type=int, default=0, help="seed of the photon and dark noise")
    p.add_argument("--backend", default="auto", help="projector: auto, astra or tomopy")
    p.add_argument("--threads", type=int, default=1)
    gs = p.add_argument_group("sample (ShaleSample; lengths / slice width)")
    for f in fields(ShaleSample):
        gs.add_argument(_flag(f.name, "sample"), dest="sample_" + f.name, type=type(f.default), default=None,
                        help=f"default {f.default}")
    gf = p.add_argument_group("facility (FacilitySpec; lengths in detector pixels)")
    for f in fields(FacilitySpec):
        if f.name == "center_offset":
            continue
        gf.add_argument(_flag(f.name, "facility"), dest="facility_" + f.name, type=type(f.default),
                        default=None, help=f"default {f.default}")
    where = gf.add_mutually_exclusive_group()
    where.add_argument("--center-offset", dest="facility_center_offset", type=float, default=None,
                       help="rotation axis minus detector/2, pixels (default 0)")
    where.add_argument("--center", type=float, default=None,
                       help="rotation axis on the detector, pixels (detector/2 is centred)")
    return p


def _specs(args, parser):
    sample_kw = dict(SAMPLE_PRESETS[args.preset]) if args.preset else {}
    sample_kw.update({f.name: getattr(args, "sample_" + f.name) for f in fields(ShaleSample)
                      if getattr(args, "sample_" + f.name) is not None})
    fac_kw = {f.name: getattr(args, "facility_" + f.name) for f in fields(FacilitySpec)
              if getattr(args, "facility_" + f.name, None) is not None}
    if args.center is not None:
        fac_kw["center_offset"] = args.center - fac_kw.get("detector", FacilitySpec.detector) / 2
    try:
        return ShaleSample(**sample_kw), FacilitySpec(**fac_kw)
    except ValueError as exc:
        parser.error(str(exc))


def run(argv=None) -> None:
    """The command line's work, without :func:`simulate.plumbing.cli`'s error handling (for callers in Python)."""
    parser = _parser()
    args = parser.parse_args(argv)
    sample, facility = _specs(args, parser)
    t0 = time.perf_counter()
    volume = shale_volume(sample)
    t1 = time.perf_counter()
    backend = resolve_backend(args.backend)
    try:
        raw = measure(volume, facility, rng=np.random.default_rng(args.seed), backend=backend,
                      threads=args.threads)
    except ValueError as exc:
        parser.error(str(exc))
    t2 = time.perf_counter()
    logger.info("%s: shale %s %s built in %.1f s; measured at %s %s in %.1f s", args.dataset, sample.name,
                volume.shape, t1 - t0, facility.name, raw["data"].shape, t2 - t1)
    attrs = {
        "source": SOURCE, "dataset": args.dataset, "facility": facility.name, "sample": sample.name,
        "center": float(raw["center"]), "seed": args.seed, "sample_seed": sample.seed,
        "n_angles": facility.n_angles, "detector": facility.detector, "incident": facility.incident,
        "attenuation_scale": float(raw["attenuation_scale"]),
        "max_line_integral": facility.max_line_integral, "backend": backend,
        "axes": "angles, rows, detector", "theta_units": "degrees", "units": "counts",
        "truth_units": "attenuation per detector pixel", "truth_axes": "slices, rows, cols",
        "sample_spec": asdict(sample), "facility_spec": asdict(facility), "versions": software_versions(),
    }
    attrs.update({"sample_" + k: v for k, v in asdict(sample).items() if k not in ("name", "seed")})
    attrs.update({"facility_" + k: v for k, v in asdict(facility).items() if k != "name"})
    write_arrays(args.out, {"/exchange/data": raw["data"], "/exchange/data_white": raw["white"],
                            "/exchange/data_dark": raw["dark"], "/exchange/theta": raw["theta"],
                            "/truth/volume": raw["truth"]}, attrs)


@cli
def main(argv=None):
    """``python -m simulate.shale OUT.h5 --dataset tomo_00001 --sample hornby --facility aps ...``"""
    run(argv)


if __name__ == "__main__":
    main()
