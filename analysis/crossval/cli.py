"""The commands of :mod:`analysis.crossval` (``python -m analysis.crossval``).

Commands::

    python -m analysis.crossval OUT.csv PROJECTIONS.h5 --method fbp-tv [--grid 0.01 0.05 ...] [--k 4] \\
        [--incident I0|auto|none] [--residual auto|plain|ramp] [--model [LABEL=]MODEL.pt ...] \\
        [--grey255-model [LABEL=]MODEL.pt ...] [--n2i JSON] [--slices N] [--center C] [--needs sirt=50] \\
        [--reference REF.h5] [--images IMAGES.h5]
    python -m analysis.crossval check OUT.csv IN.csv [IN.csv ...] [--scans NAME ...] [--benchmarks DIR --costs JSON]
    python -m analysis.crossval figure IMAGES.h5 OUT.png

The first writes one row per method and value: ``dataset``, ``dose`` (the projection file's attributes), ``method``,
``parameter``, ``value``, ``score``, ``fold_1 .. fold_K``, ``score_plain``, ``score_ramp`` (the score in each
residual kind; ``score`` is one of them), ``weighted``, ``residual`` (the kind ``score`` is), ``k``, ``n_rays``,
``chosen`` (the smallest score of its method's grid); with ``--reference`` also ``ssim``, ``psnr``, ``ssim_object``,
``psnr_object`` (all views, against the reference) and ``chosen_by_reference`` (the best ``ssim`` of its method's
grid). A model (``tomogan:<label>``, :func:`model_entries`) and each ``--n2i`` candidate (``n2i``, ``n2i:<label>``,
:func:`~analysis.crossval.candidates.n2i_candidates`) have one row, without a parameter or value (chosen either way).
``--incident auto`` (the default) weights by the file's dose when its ``dose_mode`` is ``photons`` (``dose_level`` is
then I0) and scores plainly otherwise. ``--slices N`` takes the ``N`` central detector rows; the reference must hold
those rows among its ``/slices``, and slices of ``detector x detector`` pixels. ``--images`` writes each method's
image at its ``chosen`` value, made from all the views, of the central row scored
(:class:`~analysis.crossval.images.RankedImages`; with ``--reference``, the all-view candidates already made for the
SSIM, else one more run of each chosen value).

``check`` and ``figure`` are first words (to write a CSV so named with the first command, call it ``./check`` or
``./figure``). ``figure`` draws an ``--images`` file (:func:`images_figure`). ``check`` reads tables made with
``--reference`` and writes OUT.csv -- :func:`check`'s ``methods``, each row followed by its scan's ``scans``
columns -- and a Markdown twin (suffix ``.md``). With ``--scans NAME ...`` (after the tables), OUT.md also lists
every route on those scans (:func:`routes_table`), written as ``routes.csv`` beside OUT.csv too; with
``--benchmarks DIR --costs JSON``, what those scans' own routes cost (:func:`route_costs`).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from pathlib import Path

import numpy as np

from analysis.classical import METHODS, format_value
from analysis.crossval.candidates import (StartCache, _label, candidate_label, fbp_reconstructor, model_entries,
                                         model_reconstructor, n2i_candidates)
from analysis.crossval.check import check, check_markdown, route_costs, routes_markdown, routes_table
from analysis.crossval.core import REFERENCE_FOV_MARGIN, RESIDUALS, folds, holdout_residual
from analysis.crossval.images import images_figure, write_images
from analysis.crossval.rank import (_best_by_ssim, _score_columns, against_reference, all_view_candidates,
                                   tune_by_holdout)
from analysis.metrics import read_slices, slice_indices
from simulate.plumbing import InputError, circular_mask, cli, json_argument, write_csv, write_text
from simulate.reconstruct import central_slices, resolve_backend

logger = logging.getLogger(__name__)


def _incident_from(attrs: dict, option: str, path):
    """I0 for scoring: a number, ``"none"``, or ``"auto"`` (the file's photons dose, else unweighted)."""
    if option == "none":
        return None
    if option != "auto":
        try:
            value = float(option)
        except ValueError:
            raise InputError("--incident", f"expected a number, auto or none, got '{option}'") from None
        if not (math.isfinite(value) and value > 0):
            raise InputError("--incident", f"I0 must be > 0, got {option}")
        return value
    if attrs.get("dose_mode") != "photons":
        return None
    try:
        value = float(attrs.get("dose_level"))
    except (TypeError, ValueError):
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise InputError(path, f"dose_mode is photons but dose_level {attrs.get('dose_level')!r} is not a "
                               "photon count > 0")
    return value


def _read_scan(path, slices: int):
    """The projections of ``slices`` central rows (0: all), angles in radians, attributes, the detector rows
    read and the detector's row count."""
    from simulate.io import dataset_shape, read_array, read_attrs

    n_angles, n_rows, _ = dataset_shape(path, "/exchange/data", ndim=3)
    rows = central_slices(n_rows, slices)
    data = read_array(path, "/exchange/data", ndim=3, dtype_kind="f",
                      index=np.s_[:, int(rows[0]):int(rows[-1]) + 1, :])
    theta = np.radians(read_array(path, "/exchange/theta", ndim=1, dtype=np.float64))
    if theta.shape[0] != n_angles:
        raise InputError(path, f"{theta.shape[0]} angles in /exchange/theta for {n_angles} projections")
    return data, theta, read_attrs(path), rows, n_rows


def _read_reference(path, rows, n_rows: int, size: int) -> np.ndarray:
    """The reference's slices of detector rows ``rows`` (matched through its ``/slices``), in that order.

    A reference that is not of this detector -- a slice index beyond its ``n_rows`` rows, slices that are
    not ``size x size``, or without the rows scored -- or that is constant in the field of view is an
    :class:`InputError` naming it.
    """
    from simulate.scores import reference_range
    from simulate.io import dataset_shape

    idx = slice_indices(path)
    shape = tuple(dataset_shape(path, "/recon", ndim=3)[1:])
    if shape != (size, size):
        raise InputError(path, f"slice shape {shape} differs from the reconstructions' ({size}, {size}) "
                               f"(the scan's detector is {size} pixels wide)")
    beyond = sorted({int(i) for i in idx if not 0 <= i < n_rows})
    if beyond:
        raise InputError(path, f"slices {beyond[:5]} are not rows of the scan's {n_rows}-row detector")
    reference = read_slices(path, [int(r) for r in rows], idx, what="scored").astype(np.float32)
    try:
        reference_range(reference, circular_mask(reference.shape, margin=REFERENCE_FOV_MARGIN))
    except ValueError as exc:
        raise InputError(path, f"{exc} (slices {[int(r) for r in rows]})") from None
    return reference


def _needs_argument(items) -> dict:
    needs = {}
    for item in items or ():
        name, _, value = item.partition("=")
        try:
            needs[name] = float(value)
        except ValueError:
            raise InputError("--needs", f"expected NAME=VALUE, got '{item}'") from None
    return needs


@cli
def main(argv=None):
    """``python -m analysis.crossval OUT.csv PROJ.h5 ...``, ``... check OUT.csv IN.csv ...`` or ``... figure IN.h5
    OUT.png`` (see the module)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "check":
        return _check_command(argv[1:])
    if argv and argv[0] == "figure":
        return _figure_command(argv[1:])
    return _score_command(argv)


def _figure_command(argv):
    p = argparse.ArgumentParser(prog="python -m analysis.crossval figure",
                                description="Draw the methods' images of 'python -m analysis.crossval ... --images "
                                            "IN.h5', ranked best first (PNG, and a PDF beside it).")
    p.add_argument("images", help="images file written with --images")
    p.add_argument("out", help="PNG to write (a PDF is written beside it)")
    args = p.parse_args(argv)
    images_figure(args.images, args.out)


def _check_command(argv):
    p = argparse.ArgumentParser(prog="python -m analysis.crossval check",
                                description="How often the held-out choices agree with the reference's: from "
                                            "tables of 'python -m analysis.crossval ... --reference REF.h5'.")
    p.add_argument("out", help="CSV to write (a .md twin is written beside it)")
    p.add_argument("tables", nargs="+", help="crossval tables made with --reference, one per dataset and dose")
    p.add_argument("--scans", nargs="+", metavar="NAME",
                   help="datasets of the tables (after them) whose every route to list, ranked: a section of the "
                        ".md, and routes.csv beside OUT")
    p.add_argument("--benchmarks", metavar="DIR",
                   help="the workflow's benchmark folder (benchmarks/), with --costs")
    p.add_argument("--costs", metavar="JSON",
                   help="with --scans and --benchmarks, what their own routes cost: a JSON list of rows {dataset, "
                        "kind, dose, benchmarks}, or @FILE of it (the workflow's plan writes it: "
                        "Plan.route_cost_spec)")
    args = p.parse_args(argv)
    out = Path(args.out)
    routes_csv = out.parent / "routes.csv"
    costs_spec = None
    if args.benchmarks is not None or args.costs is not None:
        if not args.scans:
            raise InputError("--costs", "needs --scans (the scans whose routes it costs)")
        if args.benchmarks is None or args.costs is None:
            raise InputError("--costs", "needs --benchmarks too, and --benchmarks needs --costs")
        if not Path(args.benchmarks).is_dir():
            raise InputError(args.benchmarks, "not a folder (--benchmarks: the workflow's benchmarks/)")
        costs_spec, where = json_argument(args.costs, flag="--costs")
        if not isinstance(costs_spec, list):
            raise InputError(where, "not a JSON list of rows")
    if args.scans and routes_csv.resolve() == out.resolve():
        raise InputError(out, "--scans writes routes.csv beside OUT: name OUT otherwise")
    result = check(args.tables)
    table = result.methods.merge(result.scans, on=["dataset", "dose"], how="left")
    markdown = check_markdown(result)
    routes = None
    if args.scans:
        routes = routes_table(args.tables, args.scans)
        costs = route_costs(args.benchmarks, costs_spec) if costs_spec is not None else None
        markdown += "\n" + routes_markdown(routes, costs)
    write_csv(table, out)
    if routes is not None:
        write_csv(routes, routes_csv)
    write_text(out.with_suffix(".md"), markdown)
    logger.info("%d methods of %d scans -> %s (+ .md%s)", len(result.methods), len(result.scans), out,
                f", {routes_csv.name}" if routes is not None else "")


def _score_parser() -> argparse.ArgumentParser:
    """The options of the scoring command (the module docstring says what each writes)."""
    p = argparse.ArgumentParser(prog="python -m analysis.crossval",
                                description="Score methods on a scan without a reference: K-fold held-out "
                                            "residual of the views (lower is better). With --reference, also "
                                            "score each candidate, made from all the views, against it.",
                                epilog="python -m analysis.crossval check OUT.csv IN.csv [IN.csv ...]: compare "
                                       "the holdout and reference choices of such tables; python -m analysis.crossval "
                                       "figure IN.h5 OUT.png: draw the images of --images.")
    p.add_argument("out", help="CSV to write")
    p.add_argument("proj", help="projection file (DXchange layout)")
    p.add_argument("--method", nargs="+", default=[], choices=["fbp", *METHODS],
                   help="methods to score; a registry method is tuned over its grid")
    p.add_argument("--grid", type=float, nargs="+", help="values (with one tuned method; default its grid)")
    p.add_argument("--grids", help="grids of several methods as JSON, e.g. '{\"fbp-tv\": [0.05, 0.2]}' (the "
                   "config's classical.grids); a method it leaves out takes its registry grid")
    p.add_argument("--model", nargs="+", default=[], metavar="[LABEL=]PATH",
                   help="denoiser model files, each applied to the FBP; method tomogan:LABEL (default label: the "
                        "run folder's name for model.pt, checkpoint.pt or served.pt, else the file's stem)")
    p.add_argument("--grey255-model", nargs="+", default=[], metavar="[LABEL=]PATH",
                   help="models on 0..255 grey levels (the authors' release), applied as tomogan-infer "
                        "--grey255-from-input does: the FBP's own 0.5..99.5 percentile range mapped to 0..255 and back")
    p.add_argument("--n2i", metavar="JSON",
                   help="also rank Noise2Inverse (method n2i), trained per fold on the kept views and once on all: "
                        "the config's noise2inverse section as JSON, '{\"k\": 4, \"train\": {\"max_iter\": 150, ...}}' "
                        "(K + 1 trainings), or a list of such objects, each with a \"label\" (n2i or n2i:NAME) "
                        "and train settings that may hold \"init\": MODEL.pt (fine-tuned from that generator)")
    p.add_argument("--needs", nargs="+", help="chosen values of start methods, e.g. sirt=50 (for sirt-tv)")
    p.add_argument("--k", type=int, default=4, help="folds")
    p.add_argument("--incident", default="auto",
                   help="I0 photons per pixel for noise-weighted scores; auto: the file's photons dose; none")
    p.add_argument("--residual", default="auto", choices=RESIDUALS,
                   help="plain squared residual, or ramp: filtered by sqrt(|f|) along the detector first (the image's "
                        "squared error); auto (default): ramp on photon-limited data, plain otherwise")
    p.add_argument("--slices", type=int, default=0,
                   help="use only the N central detector rows (0: all); the reference's slices of the same rows")
    p.add_argument("--center", type=float, help="rotation axis, detector pixels (default: from the file)")
    p.add_argument("--reference", help="normal-dose reconstruction (/recon, /slices): also score every candidate, "
                                       "made from all the views, against it (one more reconstruction each)")
    p.add_argument("--images", metavar="OUT.h5",
                   help="also write each method's image at its holdout choice, made from all the views, of the "
                        "central row scored, with its label, score and rank (with --reference: its SSIM and the "
                        "reference's row)")
    p.add_argument("--backend", default="auto")
    p.add_argument("--threads", type=int, default=1)
    return p


def _tuned_rows(name, data, theta, *, scan, grid, needs, cache, opts, full, reference, keep_image, kept, mid):
    """One tuned method's rows, one per grid value: its held-out score; with a reference (``reference``), also each
    value's scores from all the views against it; ``kept[name]`` the chosen value's all-view image of row ``mid``
    when ``keep_image``. ``needs`` gains the method's choice, for the methods that start from it."""
    result = tune_by_holdout(data, theta, name, grid, needs=needs, cache=cache, **opts)
    truth = {}
    if reference is not None or keep_image:  # the same start (needs: the holdout's choices) from all views;
        #                                      without a reference only the chosen value is made
        values = grid if reference is not None else [result.chosen]
        for value, volume in all_view_candidates(data, theta, name, values, needs=needs, cache=cache, **full):
            if reference is not None:
                truth[value] = against_reference(volume, reference)
            if keep_image and value == result.chosen:
                kept[name] = np.array(volume[mid], dtype=np.float32)
    by_reference = _best_by_ssim(truth) if truth else None
    needs.setdefault(name, result.chosen)
    rows = []
    for value, res in result.scores.items():
        row = {**scan, "method": name, "parameter": result.parameter, "value": format_value(value),
               **_score_columns(res), "chosen": value == result.chosen}
        if truth:
            row.update(truth[value], chosen_by_reference=value == by_reference)
        rows.append(row)
    logger.info("%s: %s = %s (score %.4g)%s", name, result.parameter, result.chosen,
                result.scores[result.chosen].score, "" if not truth else
                f"; by reference {by_reference} (ssim {truth[by_reference]['ssim']:.4f})")
    return rows


def _save_images(path, rows, kept, *, reference, mid, attrs) -> None:
    """``--images``: each method's all-view image at its chosen value (of row ``mid``), ranked, with its label."""
    from simulate.io import software_versions

    chosen = [row for row in rows if row["chosen"]]
    write_images(path, [row["method"] for row in chosen],
                 [candidate_label(row["method"], row["value"]) for row in chosen],
                 [kept[row["method"]] for row in chosen], [row["score"] for row in chosen],
                 ssim=None if reference is None else [row["ssim"] for row in chosen],
                 reference=None if reference is None else reference[mid],
                 attrs=dict(attrs, versions=software_versions()))
    logger.info("%d images of row %d, ranked -> %s", len(chosen), attrs["row"], path)


def _score_command(argv):
    p = _score_parser()
    args = p.parse_args(argv)
    tuned = [m for m in args.method if m != "fbp"]
    if not args.method and not args.model and not args.grey255_model and not args.n2i:
        p.error("give at least one --method, --model, --grey255-model or --n2i")
    if args.grid and len(tuned) != 1:
        p.error("--grid needs exactly one tuned method")
    grids = json_argument(args.grids, flag="--grids")[0] if args.grids else {}
    if args.grid:
        grids[tuned[0]] = args.grid
    if args.k < 2:
        p.error(f"--k must be >= 2, got {args.k}")

    needs = _needs_argument(args.needs)
    names = set(tuned)  # (a list being sorted looks empty to its key function)
    tuned.sort(key=lambda m: METHODS[m].input in names)  # a method that starts from another one's choice: after it
    for name in tuned:
        start = METHODS[name].input
        if start not in ("projections", "fbp", *tuned) and not {start, METHODS[start].tuning_key} & set(needs):
            p.error(f"{name} starts from {start}: add --method {start} or --needs {start}=VALUE")

    models = [(e.method, model_reconstructor(e.path, grey255=e.grey255))  # loaded now: a bad file fails first
              for e in model_entries(args.model, args.grey255_model)]
    if args.n2i:
        models.extend(n2i_candidates(args.n2i))
    data, theta, attrs, rows_read, n_rows = _read_scan(args.proj, args.slices)
    incident = _incident_from(attrs, args.incident, args.proj)
    center = float(attrs.get("center", data.shape[-1] / 2)) if args.center is None else args.center
    size = data.shape[-1]
    reference = None if args.reference is None else _read_reference(args.reference, rows_read, n_rows, size)
    backend = resolve_backend(args.backend)
    opts = dict(k=args.k, center=center, incident=incident, residual=args.residual, backend=backend,
                threads=args.threads)
    full = dict(center=center, size=size, backend=backend, threads=args.threads)
    scan = {"dataset": _label(attrs.get("dataset", "")), "dose": _label(attrs.get("dose", ""))}
    all_views = reference is not None or args.images is not None  # candidates made from all the views too
    mid = len(rows_read) // 2  # the central row scored: the one --images keeps
    kept = {}  # method -> its all-view image at the holdout choice, of that row
    cache = StartCache()  # SIRT's images, per fold and from all views, for SIRT+TV to start from

    def single(method, rec):  # a method without a parameter: one row, chosen either way
        row = {**scan, "method": method, "parameter": "", "value": "",
               **_score_columns(holdout_residual(data, theta, rec, **opts)), "chosen": True}
        if all_views:
            volume = rec(data, theta, center, size, backend=backend, threads=args.threads)
            if reference is not None:
                row.update(against_reference(volume, reference), chosen_by_reference=True)
            if args.images is not None:
                kept[method] = np.array(volume[mid], dtype=np.float32)
        return row

    rows = []
    try:
        folds(data.shape[0], args.k)
        if "fbp" in args.method:
            rows.append(single("fbp", fbp_reconstructor()))
        for name in tuned:
            rows += _tuned_rows(name, data, theta, scan=scan, grid=grids.get(name), needs=needs, cache=cache,
                                opts=opts, full=full, reference=reference, keep_image=args.images is not None,
                                kept=kept, mid=mid)
        for method, rec in models:
            rows.append(single(method, rec))
            logger.info("%s: score %.4g", method, rows[-1]["score"])
    except ValueError as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(args.proj, str(exc)) from None

    import pandas as pd

    write_csv(pd.DataFrame(rows), args.out)
    logger.info("%d rows -> %s (%s residual, %s%s)", len(rows), args.out, rows[0]["residual"] if rows else "no",
                "relative to the noise level" if incident is not None else "mean squared",
                "" if reference is None else f"; against {args.reference}")
    if args.images is not None:
        _save_images(args.images, rows, kept, reference=reference, mid=mid,
                     attrs={**scan, "row": int(rows_read[mid]), "k": args.k, "weighted": incident is not None,
                            "projections": str(args.proj), "reference": args.reference})


if __name__ == "__main__":
    main()
