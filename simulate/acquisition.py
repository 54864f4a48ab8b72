"""The acquisition of a raw scan, checked: its angles (units, span, order) and its flat and dark frames.

A user's scan is taken as acquired, so what the reconstruction cannot handle is refused here, each problem as one
:class:`simulate.plumbing.InputError`: the angles (:func:`check_theta`: radians converted, sorted, a 360° scan cut
to its first half turn), the datasets' shapes before anything is read (:func:`check_shapes`), and the flat and dark
frames (:func:`check_frames`). :func:`simulate.dxchange.read_raw` applies them all; :func:`acquisition_attrs` gives
what :func:`simulate.dxchange.prepare` records.

Examples
--------
>>> theta, info = check_theta(np.linspace(0, 2 * np.pi, 8, endpoint=False), path="scan.h5")
>>> theta.tolist(), info["theta_units"], info["theta_span"], info["views"].tolist()
([0.0, 45.0, 90.0, 135.0], 'radians (converted)', 360, [0, 1, 2, 3])
"""

from __future__ import annotations

import logging

import numpy as np

from .plumbing import InputError

__all__ = ["check_theta", "check_shapes", "check_frames", "check_finite", "check_flats", "acquisition_attrs"]

logger = logging.getLogger(__name__)

DATA, WHITE, DARK, THETA = "/exchange/data", "/exchange/data_white", "/exchange/data_dark", "/exchange/theta"
RADIANS_MAX = 2 * np.pi * 1.01    # |theta| at most this, and a span of at least RADIANS_MIN_SPAN: radians
RADIANS_MIN_SPAN = 0.49 * np.pi
SHORT_STEPS = 1.01                # a span may fall short of 180 (360) degrees by this many angular steps...
OVER_STEPS = 0.5                  # ... and exceed it by this many
FLAT_WARN = 0.01                  # warn when more than this fraction of pixels has the flat not above the dark


def check_finite(path, arr, name, offset=0) -> None:
    """Raise :class:`InputError` when the float array ``arr`` (dataset ``name``) holds NaN or Inf.

    ``offset``: index of ``arr``'s first projection in the file, named in the message when not 0.
    """
    arr = np.asarray(arr)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = int(arr.size - np.isfinite(arr).sum())
        where = "" if not offset else f" (in projections from {offset})"
        raise InputError(path, f"dataset '{name}' holds {bad} NaN/Inf values{where}")


def check_flats(path, white) -> None:
    """Raise :class:`InputError` when a flat field of ``white`` ``(n, rows, detector)`` is all zero."""
    white = np.asarray(white)
    zero = np.flatnonzero(white.reshape(white.shape[0], -1).max(axis=1) <= 0)
    if zero.size:
        shown = ", ".join(map(str, zero[:5].tolist())) + (", ..." if zero.size > 5 else "")
        raise InputError(path, f"{zero.size} of {white.shape[0]} flat fields in '{WHITE}' are all zero (index {shown})")


def check_theta(theta, *, path) -> tuple[np.ndarray, dict]:
    """Check a scan's angles and say which views to use: units, order, span.

    The rules, in this order:

    1. At least 2 views, all angles finite.
    2. Units. Radians when ``max|theta| <= 2 pi * 1.01`` and the span ``max - min >= 0.49 pi``; otherwise
       degrees. Every valid radian scan passes (2 views over [0, pi) span pi/2), and a degree scan this small
       (``max|theta| <= 6.35``, so a span of at most 12.7°) is refused by rule 4 whichever way it is read, so
       the rule never changes the fate of a scan; the message says when the values were read as radians.
       Radians are converted to degrees.
    3. Order. The angles are sorted (stable), so a descending or interlaced scan is accepted; ``info["views"]``
       reorders the projections likewise. Two equal angles are refused.
    4. Span, with ``step`` the median difference of the sorted angles. 180°: ``180 - 1.01 step <= span <=
       180 + 0.5 step`` (N views over [0, 180) span ``180 - 180/N``; [0, 180] spans 180). 360°: the same
       around 360 (checked first); only the views within 180° of the first angle (``theta - theta_0 < 180 -
       0.01 step``) are kept, as the denoiser and reconstruction work on half-turn scans; the second half
       turn sees the same lines mirrored. Any other span is refused, between 180° and 360° included.

    Parameters
    ----------
    theta : array_like, shape (views,)
        The angles as stored (``/exchange/theta``).
    path : str or Path
        The file, for the messages.

    Returns
    -------
    theta_degrees : ndarray of float64, shape (kept,)
        The angles of the views kept, degrees, ascending: ``degrees(theta)[info["views"]]``.
    info : dict
        ``theta_units`` (``"degrees"`` or ``"radians (converted)"``), ``theta_span`` (180 or 360, nominal),
        ``theta_span_measured`` (degrees, of the views kept), ``theta_order`` (``"as stored"`` or
        ``"sorted"``), ``views_total``, ``views_kept``, and ``views``: the indices of the stored views kept, in
        the order of ``theta_degrees``, for the caller to apply to the projections.

    Raises
    ------
    InputError
        Fewer than 2 views, NaN/Inf, repeated angles, a span of neither 180° nor 360°.
    """
    theta = np.asarray(theta, dtype=np.float64)
    if theta.ndim != 1:
        raise InputError(path, f"dataset '{THETA}' has shape {theta.shape}, expected 1 dimensions")
    if theta.size < 2:
        raise InputError(path, f"{theta.size} angle(s) in '{THETA}': a scan needs at least 2 views")
    check_finite(path, theta, THETA)
    lo, hi = float(theta.min()), float(theta.max())
    radians = max(abs(lo), abs(hi)) <= RADIANS_MAX and hi - lo >= RADIANS_MIN_SPAN
    degrees = np.degrees(theta) if radians else theta
    order = np.argsort(degrees, kind="stable")
    ascending = degrees[order]
    gaps = np.diff(ascending)
    repeated = np.flatnonzero(gaps <= 1e-9 * max(1.0, float(np.abs(ascending).max())))
    if repeated.size:
        first = ascending[repeated[0]]
        raise InputError(path, f"{repeated.size} repeated angle(s) in '{THETA}' (first {first:.6g}°): "
                               "one view per angle expected")
    step, span = float(np.median(gaps)), float(ascending[-1] - ascending[0])

    def covers(target, s):
        return target - SHORT_STEPS * step - 1e-6 <= s <= target + OVER_STEPS * step + 1e-6

    note = f" (values {lo:.4g} to {hi:.4g} read as radians)" if radians else ""
    if covers(360, span):
        nominal, views = 360, order[ascending - ascending[0] < 180 - 0.01 * step]
        half = float(degrees[views[-1]] - degrees[views[0]])
        if views.size < 2 or not covers(180, half):
            raise InputError(path, f"theta spans {span:.1f}°{note}, but the views of its first 180° span only "
                                   f"{half:.1f}° ({views.size} views): uneven angles?")
    elif covers(180, span):
        nominal, views = 180, order
    else:
        raise InputError(path, f"theta spans {span:.1f}°{note}: a parallel-beam scan needs 180° (or 360°)")
    kept = degrees[views]
    info = {"theta_units": "radians (converted)" if radians else "degrees", "theta_span": nominal,
            "theta_span_measured": float(kept[-1] - kept[0]),
            "theta_order": "as stored" if np.all(np.diff(views) > 0) else "sorted",
            "views_total": int(theta.size), "views_kept": int(views.size), "views": views}
    if nominal == 360 or radians or info["theta_order"] != "as stored":
        logger.info("%s: theta %s, %d° scan, %s, %d of %d views kept", path, info["theta_units"], nominal,
                    info["theta_order"], views.size, theta.size)
    return kept, info


def check_shapes(data_shape, white_shape, dark_shape, theta_shape, *, path) -> None:
    """Check that projections ``(angles, rows, detector)``, flats and darks ``(n, rows, detector)`` with
    ``n >= 1``, and theta ``(angles,)`` agree; cheap, so called on the datasets before anything is read.

    Raises
    ------
    InputError
        The first disagreement, naming the dataset.
    """
    shapes = {DATA: tuple(data_shape), WHITE: tuple(white_shape), DARK: tuple(dark_shape), THETA: tuple(theta_shape)}
    for name, shape in shapes.items():
        want = 1 if name == THETA else 3
        if len(shape) != want:
            raise InputError(path, f"dataset '{name}' has shape {shape}, expected {want} dimensions")
    n_ang, n_rows, n_det = shapes[DATA]
    if n_ang == 0 or n_rows == 0 or n_det == 0:
        raise InputError(path, f"'{DATA}' is empty, shape {shapes[DATA]}")
    if shapes[THETA][0] != n_ang:
        raise InputError(path, f"{shapes[THETA][0]} angles in '{THETA}' for {n_ang} projections")
    for name, what in ((WHITE, "flat"), (DARK, "dark")):
        shape = shapes[name]
        if shape[0] == 0:
            raise InputError(path, f"'{name}' is empty, shape {shape}: no {what} field to normalise with")
        if shape[1:] != (n_rows, n_det):
            raise InputError(path, f"'{name}' has shape {shape}: detector {shape[1:]} "
                                   f"does not match the projections' {(n_rows, n_det)}")


def check_frames(data_shape, white, dark, theta, *, path) -> float:
    """Check the flat and dark frames against the projections: shapes, values, flats above darks.

    The rules: :func:`check_shapes`; no NaN/Inf in the flats or darks; no all-zero flat field; and, with
    ``W`` and ``D`` the mean flat and dark frames, refused when no pixel has ``W > D`` or when
    ``mean(W) <= mean(D)`` (the message gives both means and the fraction of pixels with ``W <= D``). A
    mean above the darks with more than 1 % of such pixels is logged as a warning.

    Parameters
    ----------
    data_shape : tuple
        Shape of the projections read, ``(angles, rows, detector)``.
    white, dark : ndarray, shape (n_flat, rows, detector) and (n_dark, rows, detector)
        Flat and dark frames, counts.
    theta : array_like or tuple
        The angles (only their number is used), or their shape.
    path : str or Path
        The file, for the messages.

    Returns
    -------
    float
        Fraction of pixels whose mean flat is not above the mean dark.

    Raises
    ------
    InputError
        The first problem found, in the order above.
    """
    white, dark = np.asarray(white), np.asarray(dark)
    theta_shape = theta if isinstance(theta, tuple) else np.shape(theta)
    check_shapes(data_shape, white.shape, dark.shape, theta_shape, path=path)
    check_finite(path, white, WHITE)
    check_finite(path, dark, DARK)
    check_flats(path, white)
    w = white.mean(axis=0, dtype=np.float64)
    d = dark.mean(axis=0, dtype=np.float64)
    below = float(np.mean(w <= d))
    mean_w, mean_d = float(w.mean()), float(d.mean())
    means = f"mean flat {mean_w:.6g}, mean dark {mean_d:.6g} counts"
    swapped = f"; '{WHITE}' and '{DARK}' swapped?" if mean_w < mean_d else ""
    if below == 1.0:
        raise InputError(path, f"no detector pixel has flat-field signal above the dark level ({means}{swapped})")
    if mean_w <= mean_d:
        raise InputError(path, f"flat fields not above the dark fields on average ({means}; the flat is not above "
                               f"the dark in {100 * below:.1f}% of pixels{swapped})")
    if below > FLAT_WARN:
        logger.warning("%s: the flat is not above the dark in %.1f%% of pixels", path, 100 * below)
    return below


def acquisition_attrs(info: dict) -> dict:
    """The attributes a projection file records of :func:`check_theta`'s ``info``.

    ``theta_units_raw`` (the units of the raw file's angles; the projection file's own ``theta_units`` stays
    ``"degrees"``), ``theta_span`` (180 or 360), ``theta_order``, ``views_kept`` and ``views_total``.

    >>> acquisition_attrs(check_theta([0.0, 60.0, 120.0], path="scan.h5")[1])
    {'theta_units_raw': 'degrees', 'theta_span': 180, 'theta_order': 'as stored', 'views_kept': 3, 'views_total': 3}
    """
    return {"theta_units_raw": str(info["theta_units"]), "theta_span": int(info["theta_span"]),
            "theta_order": str(info["theta_order"]), "views_kept": int(info["views_kept"]),
            "views_total": int(info["views_total"])}
