"""Foam phantoms: 3-D spherical pores in a cylinder, sliced and discretised with xdesign.

The depth ablation (a network that sees ``d`` adjacent slices) only means something if adjacent slices are
physically consistent, so the foam is built in 3-D: spherical pores placed at random, without overlap, inside a
cylinder about the rotation axis until the porosity is reached (:func:`place_pores`); slice ``k`` (centre height
``z = k + 0.5`` pixels) is the matrix disc less the circles in which the spheres cut that plane, discretised with
:func:`xdesign.discrete_phantom`, supersampled (:func:`foam_slice`). Values are xdesign's unit attenuation (matrix
1, pore 0), which :mod:`simulate.acquire` scales. xdesign's unit square ``[-0.5, 0.5]^2`` maps onto the
``size x size`` slice, the row index along xdesign's ``x``.
"""

from __future__ import annotations

import argparse
import logging
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np
from tqdm import tqdm

from .io import software_versions, write_arrays
from .plumbing import cli

__all__ = ["FoamSpec", "place_pores", "pore_sections", "foam_slice", "foam_volume", "main"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FoamSpec:
    """Everything that defines one foam volume (all lengths relative to the slice width)."""

    size: int = 256                  # pixels per side of a slice
    slices: int = 64                 # number of slices (one pixel thick each)
    cylinder_radius: float = 0.45    # sample radius / width; inside the field of view (0.5)
    pore_radius_min: float = 0.008   # smallest pore radius / width
    pore_radius_max: float = 0.047   # largest pore radius / width
    porosity: float = 0.25           # target pore volume fraction inside the cylinder
    gap: float = 0.002               # minimum wall between pores / width
    supersample: int = 3             # xdesign discrete_phantom ratio (anti-aliasing)
    seed: int = 0

    def __post_init__(self):
        if not 0 < self.pore_radius_min <= self.pore_radius_max < self.cylinder_radius <= 0.5:
            raise ValueError("need 0 < pore_radius_min <= pore_radius_max < cylinder_radius <= 0.5")
        if not 0 <= self.porosity < 0.5:
            raise ValueError(f"porosity must lie in [0, 0.5), got {self.porosity}")
        if self.size < 8 or self.slices < 1:
            raise ValueError(f"size must be >= 8 and slices >= 1, got {self.size}, {self.slices}")


def place_pores(spec: FoamSpec, *, max_tries: int = 20_000) -> np.ndarray:
    """Random non-overlapping spherical pores in the cylinder.

    Parameters
    ----------
    spec : FoamSpec
        Geometry, target porosity and seed.

    Returns
    -------
    ndarray, shape (n_pores, 4)
        Columns ``x, y, z, r`` in pixels: ``x`` along rows, ``y`` along columns
        (both from the slice centre), ``z`` height from the bottom of slice 0.
        Pores may extend past the top and bottom so the slab is a cut of a longer sample.
    """
    rng = np.random.default_rng(spec.seed)
    px = spec.size
    r_cyl = spec.cylinder_radius * px
    r_min, r_max = spec.pore_radius_min * px, spec.pore_radius_max * px
    target = spec.porosity * np.pi * r_cyl ** 2 * spec.slices
    gap = spec.gap * px
    pores = np.empty((0, 4))
    filled = 0.0
    while filled < target:
        r = rng.uniform(r_min, r_max)
        for _ in range(max_tries):
            rho = (r_cyl - r - gap) * np.sqrt(rng.uniform())
            phi = rng.uniform(0, 2 * np.pi)
            cand = np.array([rho * np.cos(phi), rho * np.sin(phi), rng.uniform(-r, spec.slices + r), r])
            dist = np.sqrt(((pores[:, :3] - cand[:3]) ** 2).sum(axis=1))
            if np.all(dist >= pores[:, 3] + r + gap):
                pores = np.vstack([pores, cand])
                filled += _volume_in_slab(cand[2], r, spec.slices)
                break
        else:
            warnings.warn(f"stopped at {len(pores)} pores: cylinder too full for porosity {spec.porosity}")
            break
    return pores


def _volume_in_slab(zc, r, height):
    """Volume of a sphere (centre height ``zc``, radius ``r``) inside ``0 <= z <= height``."""
    a, b = max(-r, -zc), min(r, height - zc)
    if b <= a:
        return 0.0
    return np.pi * ((r * r * b - b ** 3 / 3) - (r * r * a - a ** 3 / 3))


def pore_sections(pores: np.ndarray, z: float) -> np.ndarray:
    """Circles ``(x, y, radius)`` in which the spherical pores cut the plane at height ``z``."""
    dz = pores[:, 2] - z
    cut = np.abs(dz) < pores[:, 3]
    rad = np.sqrt(pores[cut, 3] ** 2 - dz[cut] ** 2)
    return np.column_stack([pores[cut, 0], pores[cut, 1], rad])


def foam_slice(spec: FoamSpec, circles: np.ndarray) -> np.ndarray:
    """Discretise one slice: matrix disc (attenuation 1) minus pore circles, via xdesign.

    Parameters
    ----------
    spec : FoamSpec
    circles : ndarray, shape (n, 3)
        Pore sections ``x, y, radius`` in pixels from the slice centre.

    Returns
    -------
    ndarray of float32, shape (size, size), values in [0, 1]
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # xdesign imports the deprecated pkg_resources
        import xdesign as xd

    scale = 1.0 / spec.size
    sample = xd.Phantom(geometry=xd.Circle(xd.Point([0.0, 0.0]), spec.cylinder_radius),
                        material=xd.SimpleMaterial(1.0))
    for x, y, r in circles:
        sample.append(xd.Phantom(geometry=xd.Circle(xd.Point([x * scale, y * scale]), r * scale),
                                 material=xd.SimpleMaterial(-1.0)))
    image = xd.discrete_phantom(sample, spec.size, ratio=spec.supersample)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def _slice_job(args):
    spec, circles = args
    return foam_slice(spec, circles)


def foam_volume(spec: FoamSpec, *, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Build the whole foam volume.

    Returns
    -------
    volume : ndarray of float32, shape (slices, size, size)
        Unit attenuation (matrix 1, pores 0, outside the cylinder 0).
    pores : ndarray, shape (n_pores, 4)
        The sphere list from :func:`place_pores`.
    """
    pores = place_pores(spec)
    jobs = [(spec, pore_sections(pores, k + 0.5)) for k in range(spec.slices)]
    if threads > 1:
        with ProcessPoolExecutor(max_workers=threads) as pool:
            slices = list(tqdm(pool.map(_slice_job, jobs), total=len(jobs), desc="foam", unit="slice",
                               disable=None, mininterval=2.0))
    else:
        slices = [_slice_job(j) for j in tqdm(jobs, desc="foam", unit="slice", disable=None, mininterval=2.0)]
    return np.stack(slices), pores


@cli
def main(argv=None):
    """``python -m simulate.phantoms OUT.h5 --size 256 --slices 64 --seed 1 ...``"""
    defaults = FoamSpec()
    p = argparse.ArgumentParser(description="Make a 3-D foam phantom (xdesign) and write it to HDF5.")
    p.add_argument("out", help="output HDF5 (dataset /phantom, (slices, rows, cols))")
    for field, value in asdict(defaults).items():
        p.add_argument("--" + field.replace("_", "-"), type=type(value), default=value)
    p.add_argument("--dataset", default="foam", help="dataset name recorded in the attributes")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    spec = FoamSpec(**{k: getattr(args, k) for k in asdict(defaults)})
    volume, pores = foam_volume(spec, threads=args.threads)
    porosity = 1 - volume.sum() / (np.pi * (spec.cylinder_radius * spec.size) ** 2 * spec.slices)
    logger.info("foam %s: %d pores, porosity %.3f", args.dataset, len(pores), porosity)
    write_arrays(args.out, {"/phantom": volume, "/pores": pores.astype(np.float64)},
                 {"dataset": args.dataset, "kind": "foam", "source": "simulated (xdesign)",
                  "units": "unit attenuation (matrix 1, pore 0)", "axes": "slices, rows, cols",
                  "porosity_measured": float(porosity), "spec": asdict(spec),
                  "seed": spec.seed, "versions": software_versions()})


if __name__ == "__main__":
    main()
