"""Raw DXchange scans -> normalised projections: one reader for TomoBank files and the stand-in.

A raw scan (as TomoBank serves it, and as :mod:`simulate.shale` writes its stand-in) holds detector counts in
:data:`RAW_DATASETS`: ``/exchange/data`` ``(angles, rows, detector)``, the flat fields ``data_white`` and dark
fields ``data_dark`` ``(n, rows, detector)``, and ``theta`` in degrees. Flat/dark normalisation then ``-log``
(:func:`normalize`, as ``tomopy.normalize`` and ``tomopy.minus_log``) gives line integrals. The acquisition is
checked on the way (:mod:`simulate.acquisition`); :func:`read_raw` reads only the detector rows asked for, angle
block by angle block, so a 20 GB TomoBank file is never loaded whole, and can bin ``bin x bin`` pixels.

:func:`prepare` writes the result with :func:`simulate.acquire.write_projections`: ``source`` is copied from the raw
file (``synthetic-shale`` for the stand-in), else ``tomobank:<dataset>``; ``center_method`` says where the rotation
centre came from (given, the file's attribute, or found by :func:`simulate.center.find_center` with
``center="auto"``). The centre convention, and how binning maps it: docs/methods.md, "The rotation axis".
"""

from __future__ import annotations

import argparse
import logging
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from .acquire import write_projections
from .acquisition import acquisition_attrs, check_finite, check_frames, check_shapes, check_theta
from .center import criterion_name, find_center
from .io import read_attrs, software_versions
from .plumbing import InputError, cli
from .scanmatch import estimate_incident

__all__ = ["RAW_DATASETS", "read_raw", "bin_frames", "normalize", "prepare", "prepare_line_integrals", "center_argument", "main"]

logger = logging.getLogger(__name__)

RAW_DATASETS = ("/exchange/data", "/exchange/data_white", "/exchange/data_dark", "/exchange/theta")

_BLOCK_BYTES = 256 * 2 ** 20   # float32 working memory per block of projections


@contextmanager
def _open(path):
    """Open an HDF5 file that :func:`simulate.io.read_attrs` already found readable."""
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(path, f"not a readable HDF5 file (truncated or corrupt?): {exc}") from None
    with f:
        yield f


def _read(path, ds, index, name) -> np.ndarray:
    try:
        return ds[index]
    except OSError as exc:
        reason = str(exc).split(";")[0].strip()
        raise InputError(path, f"dataset '{name}' cannot be read (truncated file?): {reason}") from None


def _row_range(path, rows, n_rows: int, bin_factor: int) -> tuple[int, int]:
    if rows is None:
        start, stop = 0, n_rows
    else:
        if not isinstance(rows, slice):
            rows = slice(*rows)
        if rows.step not in (None, 1):
            raise InputError(path, f"row selection must be contiguous, got step {rows.step}")
        start = 0 if rows.start is None else int(rows.start)
        stop = n_rows if rows.stop is None else int(rows.stop)
        if not 0 <= start < stop <= n_rows:
            raise InputError(path, f"rows {start}:{stop} outside the {n_rows} detector rows")
    stop = start + (stop - start) // bin_factor * bin_factor
    if stop <= start:
        raise InputError(path, f"fewer rows selected than the bin factor {bin_factor}")
    return start, stop


def bin_frames(frames, bin_factor: int) -> np.ndarray:
    """Average ``bin x bin`` blocks of rows and detector pixels.

    Parameters
    ----------
    frames : ndarray, shape (n, rows, detector)
        Rows and detector must be multiples of ``bin_factor``.
    bin_factor : int

    Returns
    -------
    ndarray of float32, shape (n, rows // bin, detector // bin)

    Examples
    --------
    >>> bin_frames(np.arange(16.0).reshape(1, 4, 4), 2)
    array([[[ 2.5,  4.5],
            [10.5, 12.5]]], dtype=float32)
    """
    frames = np.asarray(frames, dtype=np.float32)
    b = int(bin_factor)
    if b == 1:
        return frames
    n, r, d = frames.shape
    if r % b or d % b:
        raise ValueError(f"frames {frames.shape} do not divide into {b} x {b} bins")
    return frames.reshape(n, r // b, b, d // b, b).mean(axis=(2, 4), dtype=np.float64).astype(np.float32)


def read_raw(path, *, rows=None, bin_factor: int = 1):
    """Read a raw DXchange scan, checking it, optionally a band of rows and binned.

    Parameters
    ----------
    path : str or Path
        HDF5 file with :data:`RAW_DATASETS`.
    rows : slice or (start, stop), optional
        Detector rows to read, raw row indices (default: all). Only these are read.
    bin_factor : int
        Average ``bin x bin`` pixels (rows and detector; the ``n % bin`` left over at the end are dropped); 1 keeps
        full resolution.

    Returns
    -------
    data : ndarray of float32, shape (angles, rows // bin, detector // bin)
        Projections, counts.
    white : ndarray of float32, shape (n_flat, rows // bin, detector // bin)
    dark : ndarray of float32, shape (n_dark, rows // bin, detector // bin)
    theta : ndarray of float64, shape (angles,)
        Degrees, ascending (:func:`simulate.acquisition.check_theta`: radians converted, a 360°
        scan cut to its first 180°, the projections reordered and cut likewise).
    attrs : dict
        The file's root attributes.

    Raises
    ------
    InputError
        Missing or unreadable file, a missing dataset (named), wrong ranks, theta of the
        wrong length, no flat or dark frames, flats or darks of another detector shape, an
        all-zero projection or flat field, NaN/Inf, or a row selection outside the detector;
        angles that :func:`simulate.acquisition.check_theta` refuses (fewer than 2, repeated,
        a span of neither 180° nor 360°), flats not above the darks
        (:func:`simulate.acquisition.check_frames`).
    """
    return _read_checked(path, rows=rows, bin_factor=bin_factor)[:5]


def _read_checked(path, *, rows=None, bin_factor: int = 1):
    """:func:`read_raw`, and the acquisition ``info`` of :func:`simulate.acquisition.check_theta` last."""
    bin_factor = int(bin_factor)
    if bin_factor < 1:
        raise ValueError(f"bin_factor must be >= 1, got {bin_factor}")
    attrs = read_attrs(path)  # missing, truncated, non-HDF5 files fail here
    with _open(path) as f:
        ds = {}
        for name in RAW_DATASETS:
            if name not in f:
                raise InputError(path, f"missing dataset '{name}'")
            if not isinstance(f[name], h5py.Dataset):
                raise InputError(path, f"'{name}' is a group, expected a dataset")
            ds[name] = f[name]
            if ds[name].dtype.kind not in "fiu":
                raise InputError(path, f"dataset '{name}' has dtype {ds[name].dtype}, expected numbers")
        data_ds, white_ds, dark_ds, theta_ds = (ds[n] for n in RAW_DATASETS)
        check_shapes(data_ds.shape, white_ds.shape, dark_ds.shape, theta_ds.shape, path=path)
        n_ang, n_rows, n_det = data_ds.shape
        r0, r1 = _row_range(path, rows, n_rows, bin_factor)
        d1 = n_det // bin_factor * bin_factor

        theta, info = check_theta(_read(path, theta_ds, (), "/exchange/theta"), path=path)
        band = (slice(None), slice(r0, r1), slice(0, d1))
        white, dark = (_read(path, ds[name], band, name) for name in RAW_DATASETS[1:3])
        check_frames((n_ang, r1 - r0, d1), white, dark, theta_ds.shape, path=path)
        white, dark = bin_frames(white, bin_factor), bin_frames(dark, bin_factor)

        slot = np.full(n_ang, -1)  # where each stored projection goes in `data`; -1: not kept
        slot[info["views"]] = np.arange(info["views_kept"])
        data = np.empty((info["views_kept"], (r1 - r0) // bin_factor, d1 // bin_factor), dtype=np.float32)
        step = max(1, _BLOCK_BYTES // (4 * (r1 - r0) * d1))
        zero = []
        for a0 in range(0, n_ang, step):
            a1 = min(a0 + step, n_ang)
            block = _read(path, data_ds, (slice(a0, a1), slice(r0, r1), slice(0, d1)), "/exchange/data")
            check_finite(path, block, "/exchange/data", a0)
            zero.extend((a0 + np.flatnonzero(block.reshape(a1 - a0, -1).max(axis=1) == 0)).tolist())
            to, keep = slot[a0:a1], slot[a0:a1] >= 0
            data[to[keep]] = bin_frames(block if keep.all() else block[keep], bin_factor)
    if zero:
        shown = ", ".join(map(str, zero[:5])) + (", ..." if len(zero) > 5 else "")
        raise InputError(path, f"{len(zero)} of {n_ang} projections are all zero (index {shown})")
    logger.info("read %s: %d angles (%d kept), rows %d:%d of %d, detector %d, bin %d -> %s", path, n_ang,
                info["views_kept"], r0, r1, n_rows, n_det, bin_factor, data.shape)
    return data, white, dark, theta, attrs, info


def normalize(data, white, dark, *, eps: float = 1.0) -> np.ndarray:
    """Flat/dark normalisation and ``-log``: counts -> line integrals.

    ``p = -log(max(data - mean(dark), eps) / max(mean(white) - mean(dark), eps))``.

    Parameters
    ----------
    data : ndarray, shape (angles, rows, detector)
        Projections, counts.
    white, dark : ndarray, shape (n_flat, rows, detector) and (n_dark, rows, detector)
        Flat and dark frames (a single 2-D frame is accepted too).
    eps : float
        Floor in counts for the dark-subtracted signal and flat, so the result is finite.

    Returns
    -------
    ndarray of float32, same shape as ``data``
        Line integrals.

    Raises
    ------
    ValueError
        Shapes that do not match, or flats nowhere above the darks.

    Examples
    --------
    >>> p = normalize(np.full((1, 1, 1), 110.0), np.full((2, 1, 1), 1010.0), np.full((2, 1, 1), 10.0))
    >>> round(float(p[0, 0, 0]), 5)  # -log(100 / 1000)
    2.30259
    """
    data = np.asarray(data, dtype=np.float32)
    white = np.asarray(white, dtype=np.float32)
    dark = np.asarray(dark, dtype=np.float32)
    white = white[None] if white.ndim == 2 else white
    dark = dark[None] if dark.ndim == 2 else dark
    if data.ndim != 3 or white.shape[1:] != data.shape[1:] or dark.shape[1:] != data.shape[1:]:
        raise ValueError(f"projections {data.shape}, flats {white.shape} and darks {dark.shape} do not match")
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    d = dark.mean(axis=0, dtype=np.float64).astype(np.float32)
    w = np.maximum(white.mean(axis=0, dtype=np.float64).astype(np.float32) - d, eps)
    dead = int((w <= eps).sum())
    if dead == w.size:
        raise ValueError("no detector pixel has flat-field signal above the dark level")
    if dead:
        logger.warning("%d detector pixels have no flat signal above the dark level", dead)
    out = np.empty_like(data)
    for i in range(data.shape[0]):  # frame by frame: no full-size temporaries
        np.subtract(data[i], d, out=out[i])
        np.maximum(out[i], eps, out=out[i])
        np.divide(out[i], w, out=out[i])
        np.log(out[i], out=out[i])
        np.negative(out[i], out=out[i])
    if not np.isfinite(out).all():
        raise ValueError("normalised projections are not finite (Inf in the counts?)")
    return out


def prepare(raw_path, out_path, *, center=None, rows=None, bin_factor: int = 1, dataset=None,
            facility=None, sample=None, source=None) -> dict:
    """Raw scan -> normalised full-dose projection file (:func:`simulate.acquire.write_projections`).

    Parameters
    ----------
    raw_path, out_path : str or Path
    center : float or "auto", optional
        Rotation axis on the raw detector, pixels (``detector / 2`` centred). Default: the raw
        file's ``center`` attribute (the stand-in has one; TomoBank files do not). ``"auto"``
        finds it with :func:`simulate.center.find_center` on the normalised, binned
        projections (central rows of those kept) and multiplies by ``bin_factor``.
    rows : slice or (start, stop), optional
        Raw detector rows to keep.
    bin_factor : int
        Pixel binning (rows and detector).
    dataset, facility, sample : str, optional
        Names recorded in the output (default: the raw file's attributes; for ``dataset``
        the raw file's stem).
    source : str, optional
        Provenance label (default: the raw file's ``source`` attribute, else ``tomobank:<dataset>``).

    Returns
    -------
    dict
        The attributes written; ``center_method`` says where the centre came from:
        ``"given"``, ``"file attribute"`` or ``"auto (<criterion>)"``; ``theta_units_raw``,
        ``theta_span``, ``theta_order``, ``views_kept`` and ``views_total`` what the acquisition check
        found (:func:`simulate.acquisition.acquisition_attrs`).

    Raises
    ------
    InputError
        Everything :func:`read_raw` rejects, flats nowhere above the darks, no centre, a
        centre outside the detector (given or found), or a failed automatic search.
    """
    auto = isinstance(center, str) and center.strip().lower() == "auto"
    data, white, dark, theta, src, info = _read_checked(raw_path, rows=rows, bin_factor=bin_factor)
    n_det_raw = data.shape[-1] * bin_factor
    if auto:
        method = None
    elif center is None:
        if "center" not in src:
            raise InputError(raw_path, "no 'center' attribute: give the rotation centre (--center C or --center auto)")
        center, method = float(src["center"]), "file attribute"
    else:
        center, method = float(center), "given"
    if not auto and not 0 < center < n_det_raw:
        raise InputError(raw_path, f"rotation centre {center} outside the detector of {n_det_raw} pixels")
    try:
        proj = normalize(data, white, dark)
    except ValueError as exc:
        raise InputError(raw_path, str(exc)) from None
    if auto:
        center, method = _auto_center(raw_path, proj, np.radians(theta), bin_factor)
    name = dataset or src.get("dataset") or Path(raw_path).stem
    r0 = 0 if rows is None else int((rows.start if isinstance(rows, slice) else rows[0]) or 0)
    attrs = {
        "source": source or src.get("source") or f"tomobank:{name}",
        "dataset": name,
        "facility": facility or src.get("facility", "unknown"),
        "sample": sample or src.get("sample", "unknown"),
        "center": float(center) / bin_factor,
        "center_raw": float(center),
        "center_convention": "pixel edges, detector/2 = centred; binned = raw / bin",
        "center_method": method,
        "bin_factor": int(bin_factor),
        "rows_start": r0,
        "rows_stop": r0 + data.shape[1] * bin_factor,
        "dose": "full", "dose_mode": "full", "dose_level": 1, "noise": "measured",
        "seed": src.get("seed", -1),
        "n_flat": int(white.shape[0]), "n_dark": int(dark.shape[0]),
        **acquisition_attrs(info),
        "parent": str(raw_path),
        "versions": software_versions(),
    }
    try:  # photons per pixel, for a simulation matched to this scan (simulate.scanmatch)
        attrs.update(estimate_incident(white, dark))
    except ValueError as exc:
        logger.warning("%s: no photon estimate from the flats: %s", raw_path, exc)
    for key in ("sample_seed", "incident"):
        if key in src:
            attrs[key] = src[key]
    if "attenuation_scale" in src:  # per raw pixel -> per binned pixel
        attrs["attenuation_scale"] = float(src["attenuation_scale"]) * bin_factor
    write_projections(out_path, proj, np.radians(theta), attrs)
    logger.info("%s -> %s: %s line integrals, centre %.2f, source %s", raw_path, out_path, proj.shape,
                attrs["center"], attrs["source"])
    return attrs


def prepare_line_integrals(path, out_path, *, center="auto", rows=None, dataset=None) -> dict:
    """A file of line integrals already normalised (``/exchange/data`` ``(angles, rows, detector)``, floats, and
    ``/exchange/theta``) -> the same projection file as :func:`prepare` writes, its angles checked the same way
    (:func:`simulate.acquisition.check_theta`: units, order, span), no NaN/Inf. No flats, so no photon estimate.

    Raises
    ------
    InputError
        A missing or non-numeric dataset, shapes that disagree, NaN/Inf, angles refused, or a centre outside the
        detector (given or found).
    """
    attrs = read_attrs(path)
    with _open(path) as f:
        for name in ("/exchange/data", "/exchange/theta"):
            if name not in f or not isinstance(f[name], h5py.Dataset):
                raise InputError(path, f"missing dataset '{name}'")
        data_ds = f["/exchange/data"]
        if data_ds.ndim != 3 or data_ds.dtype.kind != "f":
            raise InputError(path, f"'/exchange/data' has shape {data_ds.shape} and dtype {data_ds.dtype}: line "
                                   "integrals (angles, rows, detector) as floats expected (counts? leave out "
                                   "--line-integrals)")
        theta_raw = _read(path, f["/exchange/theta"], (), "/exchange/theta")
        if theta_raw.shape != (data_ds.shape[0],):
            raise InputError(path, f"{theta_raw.shape[0] if theta_raw.ndim else 0} angles in '/exchange/theta' for "
                                   f"{data_ds.shape[0]} projections")
        theta, info = check_theta(theta_raw, path=path)
        r0, r1 = _row_range(path, rows, data_ds.shape[1], 1)
        data = _read(path, data_ds, (slice(None), slice(r0, r1), slice(None)), "/exchange/data")
    check_finite(path, data, "/exchange/data")
    proj = np.ascontiguousarray(data[info["views"]], dtype=np.float32)
    if isinstance(center, str):
        center, method = _auto_center(path, proj, np.radians(theta), 1)
    else:
        center, method = float(center), "given"
        if not 0 < center < proj.shape[-1]:
            raise InputError(path, f"rotation centre {center} outside the detector of {proj.shape[-1]} pixels")
    name = dataset or attrs.get("dataset") or Path(path).stem
    out = {"source": attrs.get("source") or f"line integrals:{name}", "dataset": name,
           "center": float(center), "center_raw": float(center),
           "center_convention": "pixel edges, detector/2 = centred", "center_method": method, "bin_factor": 1,
           "rows_start": r0, "rows_stop": r1, "dose": "full", "dose_mode": "full", "dose_level": 1,
           "noise": "measured", **acquisition_attrs(info), "parent": str(path), "versions": software_versions()}
    write_projections(out_path, proj, np.radians(theta), out)
    return out


def _auto_center(path, proj, theta, bin_factor: int) -> tuple[float, str]:
    """Centre on the raw detector found on normalised, binned projections, and how it was found."""
    try:
        found = find_center(proj, theta)
    except ValueError as exc:
        raise InputError(path, f"automatic rotation-centre search failed: {exc}") from None
    center, n_det_raw = found * bin_factor, proj.shape[-1] * bin_factor
    if not 0 < center < n_det_raw:
        raise InputError(path, f"found rotation centre {center:.2f} outside the detector of {n_det_raw} pixels")
    logger.info("%s: rotation centre found at %.2f raw pixels (%.2f binned)", path, center, found)
    return center, f"auto ({criterion_name()})"


def center_argument(text: str):
    """``--center`` value: a number of pixels or ``auto``."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of pixels or 'auto', got '{text}'") from None


@cli
def main(argv=None):
    """``python -m simulate.dxchange RAW.h5 OUT.h5 [--center C|auto] [--rows START STOP] [--bin B] [--dataset NAME]``"""
    p = argparse.ArgumentParser(prog="python -m simulate.dxchange", description="Normalise a raw DXchange scan (TomoBank or the synthetic stand-in) "
                                            "to full-dose projections.")
    p.add_argument("raw", help="raw DXchange HDF5 (/exchange/data, data_white, data_dark, theta)")
    p.add_argument("out", help="normalised projections (simulate.acquire layout)")
    p.add_argument("--center", type=center_argument,
                   help="rotation axis on the raw detector, pixels, detector/2 = centred, or 'auto' to find it "
                        "(simulate.center) (default: the raw file's 'center' attribute)")
    p.add_argument("--rows", type=int, nargs=2, metavar=("START", "STOP"), help="raw detector rows to keep")
    p.add_argument("--bin", type=int, default=1, dest="bin_factor", help="average BIN x BIN pixels")
    p.add_argument("--dataset", help="dataset name (default: from the file, else its stem)")
    p.add_argument("--facility", help="facility name (default: from the file, else 'unknown')")
    p.add_argument("--sample", help="sample name (default: from the file, else 'unknown')")
    p.add_argument("--scan", action="store_true",
                   help="a user's own scan (config `scans`): --center, --rows and --bin apply whatever the file's "
                        "attributes, and its source is the file's 'source' attribute, else 'user-scan:<file name>'")
    real = p.add_argument_group(
        "real scans", "applied only to a TomoBank file (a raw file without a 'source' attribute); the "
        "synthetic stand-in carries its own centre and is made at the working size, so these are ignored for it. "
        "They let one workflow rule serve both.")
    real.add_argument("--real-center", type=center_argument,
                      help="rotation axis of the real scan, raw detector pixels, or 'auto'")
    real.add_argument("--real-bin", type=int, default=1, help="binning of the real scan")
    real.add_argument("--real-slices", type=int, default=0,
                      help="keep this many central rows after binning (0: all)")
    args = p.parse_args(argv)
    if args.bin_factor < 1 or args.real_bin < 1:
        p.error("--bin and --real-bin must be >= 1")
    rows = slice(*args.rows) if args.rows else None
    center, bin_factor, source = args.center, args.bin_factor, None
    if args.scan:
        source = read_attrs(args.raw).get("source") or f"user-scan:{Path(args.raw).name}"
    elif "source" not in read_attrs(args.raw):      # a real TomoBank scan, not the stand-in
        center = args.center if args.center is not None else args.real_center
        bin_factor = args.real_bin
        if rows is None and args.real_slices > 0:
            rows = _central_rows(args.raw, args.real_slices * bin_factor)
    prepare(args.raw, args.out, center=center, rows=rows, bin_factor=bin_factor,
            dataset=args.dataset, facility=args.facility, sample=args.sample, source=source)


def _central_rows(path, n: int) -> slice:
    """The ``n`` central detector rows of a raw scan (all of them if it has fewer)."""

    with h5py.File(path, "r") as f:
        n_rows = f["/exchange/data"].shape[1]
    n = min(n, n_rows)
    start = (n_rows - n) // 2
    return slice(start, start + n)


if __name__ == "__main__":
    main()
