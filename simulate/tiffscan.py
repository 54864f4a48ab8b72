"""A scan saved as TIFF files -- projections, flat and dark fields, and a text file of angles -- as a raw DXchange
file, which ``tomogan-scan`` and the ``scans:`` study read.

Many beamlines write one 2-D TIFF per projection; this gathers them (tifffile reads them) into the layout
:mod:`simulate.dxchange` checks and normalises, so that everything downstream is the same for both readers::

    python -m simulate.tiffscan scan.h5 --projections "proj_*.tif" --flats "flat_*.tif" --darks "dark_*.tif" \\
        --angles angles.txt [--angle-units degrees|radians]

Files of a glob are taken in natural order (``proj_2`` before ``proj_10``); a multi-page TIFF counts as its pages.
``angles.txt`` holds one angle per projection (whitespace- or comma-separated; ``#`` comments); ``--angle-units``
records what they are (default: guessed later by :func:`simulate.acquisition.check_theta`, which converts radians
and refuses a span that is neither 180° nor 360°). Refused, each with one line naming the file: no file matching a
pattern, an unreadable TIFF, frames of different shapes, an angles file of another length than the projections.
"""

from __future__ import annotations

import argparse
import glob
import re
from pathlib import Path
from typing import List

import numpy as np

from .io import write_arrays
from .plumbing import InputError, cli

__all__ = ["natural_files", "read_frames", "read_angles", "tiff_to_dxchange", "main"]


def natural_files(pattern: str) -> List[Path]:
    """The files matching a glob, in natural order (digits compared as numbers); none is an :class:`InputError`."""
    files = [Path(p) for p in glob.glob(pattern) if Path(p).is_file()]
    if not files:
        raise InputError(pattern, "no file matches this pattern")
    return sorted(files, key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)])


def read_frames(pattern: str) -> np.ndarray:
    """Every frame of the matching TIFF files, stacked ``(frames, rows, detector)``, as float32."""
    import tifffile

    frames = []
    for path in natural_files(pattern):
        try:
            image = np.asarray(tifffile.imread(path))
        except Exception as exc:  # tifffile raises its own classes, ValueError and OSError for a bad file
            raise InputError(path, f"not a readable TIFF ({type(exc).__name__}: {exc})") from None
        image = image[np.newaxis] if image.ndim == 2 else image
        if image.ndim != 3:
            raise InputError(path, f"expected a 2-D image (or pages of them), got shape {image.shape}")
        if frames and image.shape[1:] != frames[0].shape[1:]:
            raise InputError(path, f"frames of {image.shape[1:]} pixels, the first file's are {frames[0].shape[1:]}")
        frames.append(image.astype(np.float32))
    return np.concatenate(frames)


def read_angles(path) -> np.ndarray:
    """The angles of a text file: numbers separated by whitespace or commas, ``#`` starting a comment."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from None
    tokens = [t for line in text.splitlines() for t in re.split(r"[,\s]+", line.split("#", 1)[0]) if t]
    try:
        return np.array([float(t) for t in tokens], dtype=np.float64)
    except ValueError as exc:
        raise InputError(path, f"not a list of angles ({exc})") from None


def tiff_to_dxchange(out, projections: str, flats: str, darks: str, angles, *, units: str = "auto") -> dict:
    """Write the raw DXchange file ``out`` from TIFF projections, flats, darks and an angles file; returns the
    attributes written."""
    data, white, dark = read_frames(projections), read_frames(flats), read_frames(darks)
    theta = read_angles(angles)
    if theta.size != data.shape[0]:
        raise InputError(angles, f"{theta.size} angles for {data.shape[0]} projections ({projections})")
    for name, frames, pattern in (("flat", white, flats), ("dark", dark, darks)):
        if frames.shape[1:] != data.shape[1:]:
            raise InputError(pattern, f"{name} frames of {frames.shape[1:]} pixels, projections of {data.shape[1:]}")
    if units == "radians":
        theta = np.degrees(theta)
    attrs = {"source": f"tiff:{Path(projections).parent.name or '.'}", "units": "counts",
             "axes": "angles, rows, detector", "theta_units": "degrees" if units != "auto" else "as given",
             "tiff_projections": projections, "tiff_flats": flats, "tiff_darks": darks, "tiff_angles": str(angles)}
    write_arrays(out, {"/exchange/data": data, "/exchange/data_white": white, "/exchange/data_dark": dark,
                       "/exchange/theta": theta}, attrs)
    return attrs


@cli
def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m simulate.tiffscan", description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="raw DXchange file to write (.h5)")
    p.add_argument("--projections", required=True, help="glob of the projection TIFFs (quote it)")
    p.add_argument("--flats", required=True, help="glob of the flat-field TIFFs (beam, no sample)")
    p.add_argument("--darks", required=True, help="glob of the dark-field TIFFs (no beam)")
    p.add_argument("--angles", required=True, help="text file: one angle per projection")
    p.add_argument("--angle-units", choices=["auto", "degrees", "radians"], default="auto")
    args = p.parse_args(argv)
    tiff_to_dxchange(args.out, args.projections, args.flats, args.darks, args.angles, units=args.angle_units)
    print(f"wrote {args.out}: now `tomogan-scan {args.out} -o <out-dir>`")


if __name__ == "__main__":
    main()
