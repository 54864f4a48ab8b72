"""Classical methods tuned honestly: each hyper-parameter chosen by a grid search on validation slices only.

A comparison is only fair if every method gets the same care. TomoGAN picks its checkpoint on the
validation slices; the classical methods it is compared with pick their one parameter there too, and
are then applied unchanged to the test volumes:

================  =====================================  ===========================================
method            what it is                             tuned parameter
================  =====================================  ===========================================
``fbp-tv``        Chambolle TV denoising of the FBP      ``weight`` (relative to the input's range)
``fbp-bm3d``      BM3D (``bm3d`` package) of the FBP     ``sigma`` (relative to the input's range)
``sirt``          SIRT from a zero start                 ``n_iter`` (early stopping is its regulariser)
``sirt-tv``       TV denoising of the tuned SIRT         ``weight`` (the SIRT count is ``sirt``'s choice)
``tv-recon``      TV-regularised reconstruction (PDHG)   ``weight`` (relative to the FBP's range)
``fbp-bm3d-psd``  BM3D of the FBP, told its ramp noise   ``sigma`` (as ``fbp-bm3d``'s)
================  =====================================  ===========================================

The criterion is the mean of one metric of :mod:`analysis.metrics` over the validation slices
(default SSIM in the field of view), against the validation volume's normal-dose reference. The
validation slices are the ones TomoGAN's training validates on (:func:`tomogan_core.data.validation_indices`):
the central slices of the split's validation volume, or of the held-out end of its training volume.
Test volumes are never an input of ``tune`` -- by construction, not by care: the command takes only
the validation files and reads only the listed slices of them.

Commands::

    python -m analysis.tuning tune METHOD OUT.json --val-input FILE --val-reference REF.h5 \\
        (--val-index I [I ...] | --val-slices N [--held-out-fraction F] [--depth D]) \\
        [--grid V [V ...]] [--sirt-tuning SIRT.json [--sirt-base SIRT-VAL.h5]] [--save-best VAL.h5]
    python -m analysis.tuning apply METHOD TUNING.json INPUT.h5 OUT.h5 [--slices N]

``--val-input``/``INPUT`` is an FBP reconstruction for ``fbp-*``, a projection file for ``sirt``, ``tv-recon`` and
``sirt-tv`` (``tune``), and the tuned SIRT reconstruction for ``sirt-tv`` (``apply``).

The methods, their parameters, default grids and inputs are the registry :data:`analysis.classical.METHODS`:
``tune`` and ``apply`` dispatch through it, so a method registered there is tuned and applied by this
module as it stands.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np

from analysis.classical import METHODS, Projections
from analysis.metrics import read_slices
from simulate.io import read_array, read_attrs, software_versions, write_arrays
from simulate.plumbing import InputError, cli, write_json
from simulate.scores import compare_volumes

__all__ = ["METHODS", "CRITERIA", "grid_search", "tune", "apply", "tuning_label", "validation_score", "best_tuned",
           "validation_rows", "read_tuning", "main"]

logger = logging.getLogger(__name__)

CRITERIA = ("ssim", "psnr", "ssim_object", "psnr_object")


def grid_search(candidates: Iterable[Tuple[float, np.ndarray]], reference: np.ndarray, *,
                criterion: str = "ssim", fov_margin: float = 2.0,
                patience: Optional[int] = None) -> Tuple[float, List[dict]]:
    """Score each candidate reconstruction against the reference and return the best parameter value.

    With ``patience``, the candidates are consumed in grid order only until ``patience`` values in a row after the
    best have scored worse than it: the rest of the grid is not made. A validation curve over a regularising
    parameter (SIRT's count, a denoiser's weight) rises to one optimum and falls past it; running on past two
    falls informs nothing and, for SIRT, costs the most (its largest counts).

    Parameters
    ----------
    candidates : iterable of (value, ndarray (slices, rows, cols))
        One reconstruction of the validation slices per parameter value (a generator is consumed
        lazily, so only one candidate is held at a time).
    reference : ndarray, shape (slices, rows, cols)
        The normal-dose reference of the same slices.
    criterion : one of :data:`CRITERIA`
        The metric maximised (mean over the slices).

    Returns
    -------
    best : the value with the highest criterion (the first one on ties)
    scores : list of dict
        ``{"value", "ssim", "psnr", "ssim_object", "psnr_object"}`` per candidate made, in order.

    >>> ref = np.zeros((1, 16, 16), np.float32); ref[:, 4:12, 4:12] = 1
    >>> made = []
    >>> def candidates():  # noise falls, then rises: the best is the middle value
    ...     for v, noise in zip(range(6), (0.5, 0.2, 0.05, 0.2, 0.5, 0.8)):
    ...         made.append(v)
    ...         yield v, ref + noise * np.random.default_rng(0).standard_normal(ref.shape).astype(np.float32)
    >>> best, scores = grid_search(candidates(), ref, criterion="psnr", patience=2)
    >>> best, made
    (2, [0, 1, 2, 3, 4])
    """
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion '{criterion}'; choose one of {', '.join(CRITERIA)}")
    if patience is not None and patience < 1:
        raise ValueError(f"patience must be >= 1, got {patience}")
    scores, best_score, since_best = [], -np.inf, 0
    for value, volume in candidates:
        rows = compare_volumes(volume, reference, fov_margin=fov_margin)
        scores.append({"value": value, **{m: float(np.nanmean([r[m] for r in rows])) for m in CRITERIA}})
        logger.info("%s = %g: %s", criterion, value, ", ".join(f"{m} {scores[-1][m]:.4f}" for m in CRITERIA))
        if scores[-1][criterion] > best_score:
            best_score, since_best = scores[-1][criterion], 0
        else:
            since_best += 1
        if patience is not None and since_best >= patience:
            logger.info("stopped after %d values in a row below the best", since_best)
            break
    if not scores:
        raise ValueError("empty grid")
    values = [s[criterion] for s in scores]
    if not np.isfinite(values).any():
        raise ValueError(f"no candidate has a finite {criterion}")
    best = scores[int(np.nanargmax(values))]["value"]
    return best, scores


def tuning_label(method: str, result: dict) -> str:
    """A short text for table cells: the chosen value, ``†`` when it is an end of its grid (e.g. ``w=0.05``).

    A method that starts from others' tunings (its ``needs``) shows their values first (``n=50, w=0.1``).
    The grid itself is in the tuning file and in the output's ``tuning_grid`` attribute.
    """
    m = METHODS[method]
    parts = [f"{METHODS[need].symbol}={result[METHODS[need].tuning_key]:g}" for need in m.needs]
    parts.append(f"{m.symbol}={result['value']:g}" + ("†" if result.get("at_edge") else ""))
    return ", ".join(parts)


def validation_score(result: dict) -> float:
    """The criterion's validation score at the chosen value of a tuning result: what :func:`tune` maximised.

    ValueError where the result has no finite score at its chosen value.

    >>> validation_score({"criterion": "ssim", "value": 20, "scores": [{"value": 10, "ssim": 0.5},
    ...                                                                 {"value": 20, "ssim": 0.7}]})
    0.7
    """
    criterion, value = result.get("criterion"), result.get("value")
    if criterion not in CRITERIA:
        raise ValueError(f"its criterion '{criterion}' is not one of {', '.join(CRITERIA)}")
    hits = [s.get(criterion) for s in result.get("scores", []) if value is not None and s.get("value") == value]
    if not hits or hits[0] is None or not np.isfinite(hits[0]):
        raise ValueError(f"no finite {criterion} at its chosen value {value}")
    return float(hits[0])


def best_tuned(scores: dict) -> str:
    """The method whose validation score (:func:`validation_score`, every one on the same criterion: each of
    :data:`CRITERIA` is better higher) is the highest; on a tie exactly equal scores go to the method registered
    first in :data:`analysis.classical.METHODS`, so that neither the config's order nor a dict's decides.

    >>> best_tuned({"fbp-tv": 0.7, "sirt-tv": 0.6, "sirt": 0.7})
    'sirt'
    """
    order = list(METHODS)
    ranked = sorted((METHODS[m].name for m in scores), key=order.index)  # an unknown name: ValueError naming them
    return max(ranked, key=lambda m: scores[m])  # max keeps the first of equal scores


# ----------------------------------------------------------------------------- reading validation data

def _projection_rows(path, rows: Sequence[int]):
    """Rows ``rows`` of a projection file (:func:`simulate.acquire.write_projections` layout), angles in radians."""
    attrs = read_attrs(path)
    theta = np.radians(read_array(path, "/exchange/theta", ndim=1, dtype=np.float64))
    n_rows = read_array(path, "/exchange/data", ndim=3, dtype_kind="f", finite=False,  # shape only
                        index=np.s_[:1, :, :1]).shape[1]
    bad = [r for r in rows if not 0 <= r < n_rows]
    if bad:
        raise InputError(path, f"rows {bad[:5]} outside the {n_rows} detector rows")
    order = np.argsort(rows)
    picked = read_array(path, "/exchange/data", ndim=3, dtype_kind="f",
                        index=np.s_[:, sorted(int(r) for r in rows), :])
    data = np.empty_like(picked)
    data[:, order, :] = picked
    if theta.shape[0] != data.shape[0]:
        raise InputError(path, f"{theta.shape[0]} angles for {data.shape[0]} projections")
    return data, theta, attrs


# ----------------------------------------------------------------------------- tune and apply

def tune(method: str, val_input, val_reference, val_index: Sequence[int], *, grid=None,
         criterion: str = "ssim", sirt_tuning: dict | None = None, sirt_base: np.ndarray | None = None,
         keep: dict | None = None, fov_margin: float = 2.0, patience: Optional[int] = None,
         backend: str = "auto", threads: int = 1) -> dict:
    """Choose ``method``'s parameter on the validation slices ``val_index`` of ``val_input``.

    Returns a JSON-able dict: method, parameter, grid, criterion, chosen ``value``, per-value
    ``scores`` (of the values made: with ``patience``, :func:`grid_search` stops that many values after the best),
    ``patience``, ``at_edge`` (the best value is an end of the grid: widen it), the validation files and
    slices, and the time per validation slice per grid value made.

    The method is looked up in :data:`analysis.classical.METHODS`, which says what ``val_input`` is (an
    FBP reconstruction, or a projection file) and makes the candidates. A method whose input is the tuned
    SIRT (``sirt-tv``) starts from SIRT at ``sirt_tuning``'s count on the validation slices: ``sirt_base``
    when given (what ``keep`` held after tuning ``sirt``), else recomputed; the count is recorded in the
    result (``sirt_n_iter``). A ``keep`` dict receives the chosen candidate's validation slices under ``"best"``.
    """
    m = METHODS[method]  # ValueError naming the registered ones
    param = m.parameter
    grid = [m.value_type(v) for v in sorted(float(v) for v in (grid or m.grid))]
    ref = read_slices(val_reference, val_index, what="validation")
    t0 = time.perf_counter()
    if m.input == "fbp":
        x = read_slices(val_input, val_index, what="validation")
    else:  # projections, from which the SIRT start of sirt-tv is made too
        data, theta, attrs = _projection_rows(val_input, val_index)
        x = Projections(data, theta, float(attrs.get("center", data.shape[-1] / 2)), ref.shape[-1])
    tunings, starts = {"sirt": sirt_tuning}, {}  # the tunings a method may start from (its needs)
    for need in m.needs:
        given = tunings.get(need)
        if not given or given.get("method") != need:
            raise ValueError(f"{method} needs the tuning result of {need} (--{need}-tuning)")
        starts[need] = METHODS[need].value_type(given["value"])
    if m.input == "sirt":
        if sirt_base is None:
            x = METHODS[m.input].apply(x, starts[m.input], backend=backend, threads=threads)
        elif sirt_base.shape != ref.shape:
            raise ValueError(f"the SIRT start has shape {sirt_base.shape}, the validation slices {ref.shape}")
        else:
            x = sirt_base
    candidates = m.candidates(x, grid, backend=backend, threads=threads)
    extra = {METHODS[need].tuning_key: value for need, value in starts.items()}  # e.g. sirt_n_iter
    if keep is not None:
        candidates = _keeping(candidates, keep)
    best, scores = grid_search(candidates, ref, criterion=criterion, fov_margin=fov_margin, patience=patience)
    if keep is not None:
        keep["best"] = keep.pop("all")[best]
    seconds = time.perf_counter() - t0
    result = {"method": method, "parameter": param, "grid": grid, "criterion": criterion, "value": best,
              "at_edge": len(grid) > 1 and best in (grid[0], grid[-1]), "scores": scores, "patience": patience,
              "val_input": str(val_input), "val_reference": str(val_reference),
              "val_index": [int(i) for i in val_index],
              "seconds_per_slice_per_value": seconds / (len(val_index) * len(scores)),
              "versions": software_versions(), **extra}
    if result["at_edge"]:
        logger.warning("%s: the best %s (%g) is at the end of the grid %s; consider widening it",
                       method, param, best, grid)
    return result


def _keeping(candidates, keep: dict):
    """Pass (value, volume) pairs through, holding each volume in ``keep["all"]`` by value."""
    keep["all"] = {}
    for value, volume in candidates:
        keep["all"][value] = volume
        yield value, volume


def apply(method: str, tuning: dict, input_path, out_path, *, slices: int = 0, backend: str = "auto",
          threads: int = 1) -> dict:
    """Apply ``method`` with its tuned parameter to the central ``slices`` of a test input; write ``out_path``.

    ``input_path`` is what the method's registry entry (:data:`analysis.classical.METHODS`) works on: a
    projection file (``input == "projections"``), or a reconstruction file (``/recon``, ``/slices``): the
    test FBP (``"fbp"``) or the tuned SIRT (``"sirt"``).
    """
    from simulate.reconstruct import central_slices, recon_attrs

    if tuning.get("method") != method:
        raise ValueError(f"the tuning file is for '{tuning.get('method')}', not '{method}'")
    m = METHODS[method]
    value = tuning["value"]
    t0 = time.perf_counter()
    if m.input == "projections":
        from simulate.acquire import read_projections

        data, theta, src = read_projections(input_path)
        idx = central_slices(data.shape[1], slices)
        x = Projections(data[:, idx, :], theta, float(src.get("center", data.shape[-1] / 2)))
    else:
        rec = read_array(input_path, "/recon", ndim=3, dtype_kind="f")
        all_idx = read_array(input_path, "/slices", ndim=1, dtype_kind="iu", dtype=np.int64)
        src = read_attrs(input_path)
        pick = central_slices(len(all_idx), slices)
        idx = all_idx[pick]
        x = rec[pick]
    out = m.apply(x, m.value_type(value), backend=backend, threads=threads)
    seconds = (time.perf_counter() - t0) / len(idx)
    attrs = recon_attrs(src, method=method, tuned_parameter=tuning["parameter"], tuned_value=value,
                         tuning=tuning_label(method, tuning), tuning_criterion=tuning["criterion"],
                         tuning_grid=" ".join(f"{v:g}" for v in tuning["grid"]),
                         tuned_on=f"{tuning['val_input']} slices {tuning['val_index']}",
                         seconds_per_slice=seconds, parent=str(input_path))
    for key in ("backend", "center"):
        if key in src:
            attrs.setdefault(key, src[key])
    write_arrays(out_path, {"/recon": out.astype(np.float32), "/slices": np.asarray(idx, np.int32)}, attrs)
    logger.info("%s (%s) %s -> %s, %.3f s/slice", method, tuning_label(method, tuning), input_path, out_path,
                seconds)
    return attrs


def validation_rows(reference, *, val_slices: int, depth: int, held_out_fraction=None) -> list:
    """The validation slices (detector rows) of a volume, from its reference file's ``/slices``.

    :func:`tomogan_core.data.validation_indices` picks positions in the stack, as training does.
    """
    from tomogan_core.data import validation_indices

    idx = read_array(reference, "/slices", ndim=1, dtype_kind="iu", dtype=np.int64)
    pos = validation_indices(len(idx), val_slices=val_slices, depth=depth, held_out_fraction=held_out_fraction)
    return [int(i) for i in idx[pos]]


def read_tuning(path) -> dict:
    """A tuning JSON (what ``tune`` writes); InputError naming the file where it cannot be read."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(path, f"not a readable tuning file: {exc}") from None


@cli
def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m analysis.tuning",
                                description="Tune a classical method on validation slices, or apply the tuned method.")
    sub = p.add_subparsers(dest="command", required=True)
    pt = sub.add_parser("tune", help="grid search on validation slices -> tuning JSON")
    pt.add_argument("method", choices=list(METHODS))
    pt.add_argument("out", help="JSON to write")
    pt.add_argument("--val-input", required=True,
                    help="validation FBP (fbp-*) or projections (sirt, sirt-tv, tv-recon)")
    pt.add_argument("--val-reference", required=True, help="validation normal-dose reference reconstruction")
    which = pt.add_mutually_exclusive_group(required=True)
    which.add_argument("--val-index", type=int, nargs="+", help="validation slices (detector rows)")
    which.add_argument("--val-slices", type=int, help="as training: this many central slices of the volume, or "
                       "of its held-out end with --held-out-fraction")
    pt.add_argument("--held-out-fraction", type=float, help="the volume is a training volume: validate on its end")
    pt.add_argument("--depth", type=int, default=3, help="the gap before the held-out end (TomoGAN's d)")
    pt.add_argument("--grid", type=float, nargs="+",
                    help="parameter values (default: the method's grid in analysis.classical)")
    pt.add_argument("--criterion", default="ssim", choices=CRITERIA)
    pt.add_argument("--patience", type=int, help="stop this many grid values after the best (default: the whole grid)")
    pt.add_argument("--sirt-tuning", help="sirt's tuning JSON (sirt-tv: its iteration count)")
    pt.add_argument("--save-best", metavar="VAL.h5", help="also write the chosen candidate on the validation "
                    "slices (sirt: the start that sirt-tv's tuning reads with --sirt-base)")
    pt.add_argument("--sirt-base", metavar="VAL.h5", help="sirt-tv: SIRT at the tuned count on the validation "
                    "slices, as sirt's --save-best wrote it (default: recompute it)")
    pt.add_argument("--fov-margin", type=float, default=2.0)
    pt.add_argument("--backend", default="auto")
    pt.add_argument("--threads", type=int, default=1)
    pa = sub.add_parser("apply", help="apply the tuned method to a test input -> reconstruction file")
    pa.add_argument("method", choices=list(METHODS))
    pa.add_argument("tuning", help="the method's tuning JSON")
    pa.add_argument("input", help="test FBP (fbp-*), projections (sirt, tv-recon) or tuned SIRT (sirt-tv)")
    pa.add_argument("out")
    pa.add_argument("--slices", type=int, default=0, help="central slices to process (0: all)")
    pa.add_argument("--backend", default="auto")
    pa.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)

    if args.command == "tune":
        sirt_tuning = read_tuning(args.sirt_tuning) if args.sirt_tuning else None
        val_index = args.val_index or validation_rows(args.val_reference, val_slices=args.val_slices,
                                                      depth=args.depth, held_out_fraction=args.held_out_fraction)
        sirt_base = read_slices(args.sirt_base, val_index, what="validation") if args.sirt_base else None
        keep = {} if args.save_best else None
        try:
            result = tune(args.method, args.val_input, args.val_reference, val_index, grid=args.grid,
                          criterion=args.criterion, sirt_tuning=sirt_tuning, sirt_base=sirt_base, keep=keep,
                          fov_margin=args.fov_margin, patience=args.patience, backend=args.backend,
                          threads=args.threads)
        except ValueError as exc:
            raise InputError(args.sirt_base if sirt_base is not None else args.val_input, str(exc)) from None
        if keep is not None:
            write_arrays(args.save_best, {"recon": keep["best"].astype(np.float32), "slices": np.asarray(val_index)},
                         {"method": args.method, "tuned": json.dumps({result["parameter"]: result["value"]}),
                          "val_input": str(args.val_input)})
        write_json(args.out, result)
        logger.info("%s: %s", args.method, tuning_label(args.method, result))
        return
    tuning = read_tuning(args.tuning)
    try:
        apply(args.method, tuning, args.input, args.out, slices=args.slices, backend=args.backend,
              threads=args.threads)
    except (ValueError, KeyError) as exc:
        raise InputError(args.tuning, f"cannot apply: {exc}") from None


if __name__ == "__main__":
    main()
