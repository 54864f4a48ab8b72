"""Your scan as you acquired it: ``tomogan-scan SCAN.h5 -o OUT`` ranks the methods on the scan's own views and
writes the chosen one's volume.

The scan is taken **as acquired** -- nothing is degraded further, nothing of it becomes a reference. The command reads
and checks the acquisition (:func:`simulate.dxchange.prepare`; with ``--line-integrals``,
:func:`~simulate.dxchange.prepare_line_integrals`), finds the rotation axis (:func:`simulate.center.find_center`,
unless ``--center C``) and checks it by :func:`mass_center`, ranks the candidates by held-out projections
(:func:`rank_candidates`: FBP, each classical method tuned, each ``--model`` alone and made consistent with the views,
:mod:`analysis.consistent`, and with ``--n2i`` Noise2Inverse trained on the scan), and reconstructs every row kept
with the chosen route (``--method`` forces one; ``--all-methods`` writes each), in slabs of ``--slab-mb`` MiB. The
steps and why: docs/methods.md, "Your scan as acquired".

It writes ``OUT/volume.h5`` (``/recon``, ``/slices``; its attributes: method, parameter, centre and how it was found,
photons estimate, source, software versions), ``OUT/ranking.csv`` (``method``, ``label``, ``parameter``, ``value``,
``score``, ``score_se``, ``seconds``, ``rank``, ``chosen``), ``OUT/summary.html`` (with each step's time) and
``OUT/summary.png`` (the top candidates' central row side by side on one grey scale), and ``OUT/projections.h5``
(the checked line integrals).

Command::

    tomogan-scan SCAN.h5 -o OUT [--line-integrals] [--rows START STOP] [--bin B] [--center auto|C]
        [--methods fbp sirt sirt-tv fbp-tv fbp-bm3d] [--model [LABEL=]MODEL.pt ...] [--k 4] [--rank-rows 3]
        [--incident auto|none|I0] [--no-consistent] [--n2i JSON] [--grids JSON] [--search descent|grid]
        [--method NAME | --all-methods] [--slab-mb 512] [--threads N]
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from simulate.plumbing import InputError, cli, json_argument, usable_cores

__all__ = ["OUTPUTS", "CONSISTENT_KEY", "check_grids", "mass_center", "check_center", "consistent_label",
           "rank_candidates", "reconstruct_route", "recommendation", "scan", "main"]

logger = logging.getLogger(__name__)

#: what the command writes in its output folder
OUTPUTS = ("projections.h5", "ranking.csv", "volume.h5", "summary.html", "summary.png")
RANK_ROWS = 3  # detector rows scored by default: a depth-3 model then sees real neighbours, not repeated rows
CENTER_TOLERANCE = 1.0  # pixels: two centre estimates further apart than this are said to disagree
TOP = 3  # candidates shown side by side in the summary
CONSISTENT_KEY = "consistent"  # the view-consistent route's grids in --grids: {"n_iter": [...], "tv_weight": [...]}


def mass_center(proj: np.ndarray, theta: np.ndarray) -> float:
    """The rotation axis from the views' centres of mass: a sinusoid ``a + b cos(theta) + c sin(theta)`` fitted to
    them by least squares, ``a`` the axis (pixel edges, ``detector / 2`` centred).

    Independent of the focus criterion of :func:`simulate.center.find_center`; right when the whole sample stays
    in the field of view (no truncation) and the line integrals are not negative.

    >>> theta = np.linspace(0, np.pi, 90, endpoint=False)
    >>> u = np.arange(64) + 0.5
    >>> proj = np.exp(-((u[None, :] - (30.0 + 8 * np.cos(theta[:, None] - 0.4))) / 2.0) ** 2)[:, None, :]
    >>> round(mass_center(proj, theta), 2)
    30.0
    """
    p = np.clip(np.asarray(proj, dtype=np.float64).sum(axis=1), 0.0, None)
    weight = p.sum(axis=1)
    keep = weight > 0
    if keep.sum() < 3:
        raise ValueError("fewer than three views carry any attenuation")
    u = np.arange(p.shape[1]) + 0.5
    com = (p[keep] * u).sum(axis=1) / weight[keep]
    t = np.asarray(theta, dtype=np.float64)[keep]
    design = np.stack([np.ones_like(t), np.cos(t), np.sin(t)], axis=1)
    coef, *_ = np.linalg.lstsq(design, com, rcond=None)
    return float(coef[0])


def check_center(proj: np.ndarray, theta: np.ndarray, center: float) -> Dict[str, object]:
    """The second estimate of the axis beside ``center``, and whether they agree within :data:`CENTER_TOLERANCE`."""
    try:
        second = mass_center(proj, theta)
    except ValueError as exc:
        return {"center_check": float("nan"), "center_check_method": f"centre of mass: {exc}", "center_agree": None}
    return {"center_check": second, "center_check_method": "sinusoid fit to the views' centres of mass",
            "center_agree": bool(abs(second - center) <= CENTER_TOLERANCE)}


# ----------------------------------------------------------------------------- ranking

def check_grids(grids, where: str = "--grids") -> dict:
    """``grids`` checked: each key a registry method (a non-empty list of numbers) or :data:`CONSISTENT_KEY`
    (``n_iter`` and/or ``tv_weight`` lists); anything else an :class:`InputError` naming ``where``.

    >>> check_grids({"sirt": [50, 100], "consistent": {"n_iter": [20, 50]}})
    {'sirt': [50, 100], 'consistent': {'n_iter': [20, 50]}}
    >>> check_grids({"art": [1]})
    Traceback (most recent call last):
    ...
    simulate.plumbing.InputError: --grids: unknown method 'art' (known: sirt, sirt-tv, fbp-tv, fbp-bm3d, tv-recon, fbp-bm3d-psd, consistent)
    """
    from analysis.classical import METHODS

    def values(v, what):
        if not isinstance(v, list) or not v or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                          for x in v):
            raise InputError(where, f"{what} must be a non-empty list of numbers, got {json.dumps(v)}")
        return list(v)

    if not isinstance(grids, dict):
        raise InputError(where, f"must be a JSON object, got {json.dumps(grids)}")
    out = {}
    for key, value in grids.items():
        if key in METHODS:
            out[key] = values(value, key)
        elif key == CONSISTENT_KEY:
            if not isinstance(value, dict) or not value or set(value) - {"n_iter", "tv_weight"}:
                raise InputError(where, f"{key} must be an object of n_iter and/or tv_weight lists")
            out[key] = {name: values(v, f"{key}.{name}") for name, v in value.items()}
        else:
            raise InputError(where, f"unknown method '{key}' (known: {', '.join([*METHODS, CONSISTENT_KEY])})")
    return out


def _row(method: str, label: str, parameter: str, value, res) -> dict:
    folds = np.asarray(res.fold_scores, dtype=np.float64)
    return {"method": method, "label": label, "parameter": parameter, "value": value, "score": float(res.score),
            "score_se": float(folds.std(ddof=1) / np.sqrt(folds.size)) if folds.size > 1 else float("nan"),
            "k": int(res.k), "weighted": bool(res.weighted), "residual": res.residual,
            **{f"fold_{j + 1}": float(s) for j, s in enumerate(folds)}}


def _ordered(methods: Sequence[str]) -> List[str]:
    """The methods to tune, each after the one it starts from (added when not asked for)."""
    from analysis.classical import METHODS

    out: List[str] = []

    def add(name):
        for need in METHODS[name].needs:
            add(need)
        if name not in out:
            out.append(name)
    for name in methods:
        if name != "fbp":
            add(name)
    return out


def consistent_label(model_method: str, value) -> str:
    """How a model's view-consistent route at ``(n_iter, tv_weight)`` is named in the ranking and the figure.

    >>> consistent_label("tomogan:foam", (20, 0.05)), consistent_label("tomogan:foam", (5, 0.0))
    ('TomoGAN foam, then SIRT 20 it. and TV 0.05', 'TomoGAN foam, then SIRT 5 it.')
    """
    from analysis.crossval import candidate_label

    n, w = value
    return f"{candidate_label(model_method)}, then SIRT {int(n)} it." + (f" and TV {float(w):g}" if w else "")


def rank_candidates(data, theta, center: float, *, methods: Sequence[str] = ("fbp",), models: Sequence = (),
                    k: int = 4, rows: int = RANK_ROWS, incident=None, consistent: bool = True,
                    grids: Optional[dict] = None, extras: Sequence = (), search: str = "descent",
                    backend: str = "auto", threads: int = 1, progress: bool = False):
    """Every candidate's held-out score on ``rows`` central detector rows, best first.

    Returns a DataFrame with one row per candidate (each classical method at its held-out choice; each model alone
    and, with ``consistent``, its view-consistent route ``<model>+sirt`` at its held-out choice of iterations and TV
    weight, :mod:`analysis.consistent`): ``method``, ``label`` (:func:`analysis.crossval.candidate_label`),
    ``parameter``, ``value``, ``score`` (lower is better), ``score_se`` (the standard error of the mean over the
    ``k`` folds), the fold scores, ``seconds`` (the wall time of its tuning and scoring, a start made only for it
    included), ``rank`` and ``chosen`` (rank 1); ``attrs["needs"]`` holds the chosen values a
    start method passes on (SIRT's count to SIRT+TV). ``grids``: :func:`check_grids`'s mapping (a method left out
    takes its registry grid, the view-consistent route :data:`analysis.consistent.N_ITERS` and ``TV_WEIGHTS``).
    ``search``: how each parameter's grid is searched (:data:`analysis.crossval.SEARCHES`; ``descent`` scores only
    the values a descent visits, :func:`analysis.crossval.core.grid_descent`; BM3D's σ searched with its
    low-complexity profile and TV's weights with :data:`analysis.classical.TV_PROXY_ITER` iterations, the chosen
    value then scored with the method itself). ``extras``: further ``(method, reconstructor)`` candidates
    without a parameter, such as Noise2Inverse (:func:`analysis.crossval.n2i_candidates`), each scored as it is.
    """
    import pandas as pd
    from tqdm import tqdm

    from analysis import consistent as cs
    from analysis.classical import METHODS, format_value
    from analysis.crossval import (StartCache, candidate_label, fbp_reconstructor, holdout_residual,
                                   model_reconstructor, tune_by_holdout)

    common = dict(k=k, center=center, size=data.shape[-1], incident=incident, slices=rows, backend=backend,
                  threads=threads)
    tuned = _ordered(methods)
    grids = grids or {}
    route_grid = grids.get(CONSISTENT_KEY, {})
    steps = (["fbp"] if "fbp" in methods else []) + tuned + [
        name for m in models for name in ([m.method, m.method + cs.SUFFIX] if consistent else [m.method])] + [
        name for name, _ in extras]
    extra = dict(extras)
    out, needs, cache, loaded = [], {}, StartCache(), {}
    with tqdm(steps, desc="ranking", disable=not progress, unit="candidate") as bar:
        carried = 0.0  # seconds of a start tuned only for a later candidate (SIRT for SIRT+TV): charged to it
        for name in bar:
            bar.set_postfix_str(name)
            t0, n_rows = time.perf_counter(), len(out)
            if name == "fbp":
                out.append(_row("fbp", candidate_label("fbp"), "", "", holdout_residual(
                    data, theta, fbp_reconstructor(), **common)))
            elif name in extra:
                out.append(_row(name, candidate_label(name), "", "",
                                holdout_residual(data, theta, extra[name], **common)))
            elif name in METHODS:
                m = METHODS[name]
                t = tune_by_holdout(data, theta, name, grids.get(name), needs=needs, cache=cache, search=search,
                                    proxy=True, **common)
                needs[name] = t.chosen
                if name in methods:  # a start added only for another method is not a candidate of its own
                    out.append(_row(name, candidate_label(name, t.chosen), m.parameter, format_value(t.chosen),
                                    t.scores[t.chosen]))
            else:
                base = name.removesuffix(cs.SUFFIX)
                entry = next(e for e in models if e.method == base)
                if base not in loaded:
                    loaded[base] = model_reconstructor(entry.path, grey255=entry.grey255)
                if name == base:
                    out.append(_row(name, candidate_label(name), "", "",
                                    holdout_residual(data, theta, loaded[base], **common)))
                else:
                    t = cs.tune_consistent(data, theta, loaded[base], method=name, search=search, proxy=True,
                                           n_iters=route_grid.get("n_iter", cs.N_ITERS),
                                           weights=route_grid.get("tv_weight", cs.TV_WEIGHTS), **common)
                    out.append(_row(name, consistent_label(base, t.chosen), cs.PARAMETER, cs.format_value(t.chosen),
                                    t.scores[t.chosen]))
            carried += time.perf_counter() - t0
            if len(out) > n_rows:
                out[-1]["seconds"], carried = carried, 0.0
    table = pd.DataFrame(out).sort_values("score", kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    table["chosen"] = table["rank"] == 1
    table.attrs["needs"] = needs
    return table


def recommendation(table) -> Dict[str, object]:
    """The first candidate, and whether the second can be told apart from it: their fold-by-fold difference (the
    same folds for both) against two of its standard errors.

    >>> import pandas as pd
    >>> t = pd.DataFrame({"label": ["A", "B"], "fold_1": [1.0, 1.5], "fold_2": [1.1, 1.6], "fold_3": [0.9, 1.4]})
    >>> r = recommendation(t)
    >>> r["apart"], round(r["difference"], 2)
    (True, 0.5)
    """
    folds = [c for c in table.columns if c.startswith("fold_")]
    first = table.iloc[0]
    if len(table) < 2:
        return {"best": first["label"], "second": None, "difference": float("nan"), "difference_se": float("nan"),
                "apart": True, "sentence": f"Use {first['label']}: it was the only candidate."}
    second = table.iloc[1]
    d = second[folds].to_numpy(float) - first[folds].to_numpy(float)
    se = float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else float("nan")
    diff = float(d.mean())
    apart = bool(np.isfinite(se) and diff > 2 * se)
    sentence = (f"Use {first['label']}: it predicts the views it never saw best, ahead of {second['label']} by "
                f"{diff:.3g} ({'more' if apart else 'less'} than two standard errors of the fold-by-fold "
                f"difference, {se:.2g})" + ("." if apart else "; on this scan the two cannot be told apart."))
    return {"best": first["label"], "second": second["label"], "difference": diff, "difference_se": se,
            "apart": apart, "sentence": sentence}


# ----------------------------------------------------------------------------- the volume

def _route(method: str, value, needs: dict, models: Sequence, extras: Sequence = ()):
    """A route as three parts: a reconstructor of the views, the model applied after it (or None), and the
    view-consistency step after that (``(n_iter, tv_weight)`` of :mod:`analysis.consistent`, or None). An extra
    candidate (Noise2Inverse) is a reconstructor of its own: it trains on the views of each slab it is given."""
    from analysis import consistent as cs
    from analysis.classical import METHODS
    from analysis.crossval import classical_reconstructor, fbp_reconstructor

    if method == "fbp":
        return fbp_reconstructor(), None, None
    if method in dict(extras):
        return dict(extras)[method], None, None
    if method in METHODS:
        return classical_reconstructor(method, METHODS[method].value_type(value), needs=needs), None, None
    base = method.removesuffix(cs.SUFFIX)
    entry = next((e for e in models if e.method == base), None)
    if entry is None:
        raise ValueError(f"unknown method '{method}'")
    return fbp_reconstructor(), entry, (cs.parse_value(value) if base != method else None)


def reconstruct_route(proj_path, out_path, method: str, value="", *, needs: Optional[dict] = None,
                      models: Sequence = (), extras: Sequence = (), slab_mb: float = 512.0,
                      attrs: Optional[dict] = None,
                      backend: str = "auto", threads: int = 1, progress: bool = False) -> dict:
    """Every row of a projection file reconstructed by one route, slab by slab, into ``out_path`` (``/recon``,
    ``/slices``); a model's route is the FBP of every row followed by the model (with its neighbours,
    :func:`tomogan_core.infer.denoise_file`), and its view-consistent route then SIRT from the model's image and
    TV, slab by slab (:func:`analysis.consistent.consistent_images`). Returns the attributes written."""
    from tqdm import tqdm

    from simulate.acquire import read_projections
    from simulate.io import software_versions, to_h5_attr
    from simulate.plumbing import atomic_h5
    from simulate.reconstruct import slab_rows

    data, theta, src = read_projections(proj_path)
    n_rows, size = data.shape[1], data.shape[-1]
    center = float(src.get("center", size / 2))
    rec, entry, polish = _route(method, value, needs or {}, models, extras)
    step = slab_rows(4 * size * size * 4, slab_mb, n_rows)  # the slab's images and the method's copies
    out_attrs = dict(attrs or {}, method=method, value=str(value), center=center, slab_slices=int(step),
                     versions=software_versions())
    target = Path(out_path) if entry is None else Path(out_path).with_name(Path(out_path).stem + "_fbp.h5")
    with atomic_h5(target, nbytes=4 * n_rows * size * size) as f:
        dset = f.create_dataset("/recon", shape=(n_rows, size, size), dtype=np.float32, chunks=(1, size, size))
        f.create_dataset("/slices", data=np.arange(n_rows, dtype=np.int32))
        for a in tqdm(range(0, n_rows, step), desc=method, disable=not progress, unit="slab"):
            dset[a:a + step] = rec(data[:, a:a + step, :], theta, center, size, backend=backend, threads=threads)
        for key, val in dict(out_attrs, method="fbp" if entry else method).items():
            f.attrs[key] = to_h5_attr(val)
    if entry is not None:
        from tomogan_core.infer import denoise_file
        from tomogan_core.modelfile import load_any

        model = load_any(entry.path)
        enhanced = Path(out_path) if polish is None else Path(out_path).with_name(Path(out_path).stem + "_model.h5")
        denoise_file(target, enhanced, model, slab_mb=slab_mb, repeat_edges=True, grey255=entry.grey255,
                     attrs=dict(out_attrs, model=str(entry.path), parent=str(target)), progress=progress)
        target.unlink()
        if polish is not None:
            _make_consistent(enhanced, out_path, data, theta, center, polish, step,
                             attrs=dict(out_attrs, model=str(entry.path)), backend=backend, threads=threads,
                             progress=progress)
            enhanced.unlink()
    return out_attrs


def _make_consistent(enhanced, out_path, data, theta, center, value, step, *, attrs, backend, threads, progress):
    """The model's volume ``enhanced`` moved toward the measured views, slab by slab: SIRT from it, then TV."""
    from tqdm import tqdm

    from analysis.consistent import consistent_images
    from simulate.io import read_array, to_h5_attr
    from simulate.plumbing import atomic_h5

    n_rows, size = data.shape[1], data.shape[-1]
    with atomic_h5(out_path, nbytes=4 * n_rows * size * size) as f:
        dset = f.create_dataset("/recon", shape=(n_rows, size, size), dtype=np.float32, chunks=(1, size, size))
        f.create_dataset("/slices", data=np.arange(n_rows, dtype=np.int32))
        for a in tqdm(range(0, n_rows, step), desc="consistent with the views", disable=not progress, unit="slab"):
            start = read_array(enhanced, "/recon", ndim=3, index=np.s_[a:a + step])
            _, dset[a:a + step] = next(consistent_images(start, data[:, a:a + step, :], theta, center, size,
                                                         [value[0]], [value[1]], backend=backend, threads=threads))
        for key, val in attrs.items():
            f.attrs[key] = to_h5_attr(val)


# ----------------------------------------------------------------------------- the report

def _images(data, theta, center, table, needs, models, extras=(), *, written=None, backend, threads) -> List[tuple]:
    """The central row of each of the top candidates, made from all the views; a candidate whose volume was written
    (``written``: method -> volume file) is read from it, not made again."""
    from simulate.io import read_array

    row = data.shape[1] // 2
    written = written or {}
    out = []
    for r in table.head(TOP).itertuples():
        if r.method in written:
            image = read_array(written[r.method], "/recon", ndim=3, index=np.s_[row:row + 1])
        else:
            image = _route_image(r, data[:, row:row + 1, :], theta, center, needs, models, extras, backend=backend,
                                 threads=threads)
        out.append((f"{r.rank}. {r.label}\nscore {r.score:.4g} ± {r.score_se:.2g}", image[0]))
    return out


def _route_image(r, data, theta, center, needs, models, extras, *, backend, threads) -> np.ndarray:
    """One ranked candidate's route run on ``data`` (a few rows, all the views)."""
    rec, entry, polish = _route(r.method, r.value, needs, models, extras)
    image = rec(data, theta, center, data.shape[-1], backend=backend, threads=threads)
    if entry is not None:
        from tomogan_core.modelfile import denoise, load_any

        image = denoise(image, load_any(entry.path), repeat_edges=True)
    if polish is not None:
        from analysis.consistent import consistent_images

        _, image = next(consistent_images(image, data, theta, center, data.shape[-1], [polish[0]], [polish[1]],
                                          backend=backend, threads=threads))
    return image


def _figure(images, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lo, hi = np.percentile(images[-1][1] if len(images) == 1 else np.concatenate([i.ravel() for _, i in images]),
                           [0.5, 99.5])
    fig, axes = plt.subplots(1, len(images), figsize=(3.2 * len(images), 3.5), squeeze=False)
    for ax, (title, image) in zip(axes[0], images):
        ax.imshow(image, cmap="gray", vmin=lo, vmax=hi)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _summary_html(path, *, scan, attrs, center_info, table, rec, costs, volumes) -> None:
    facts = {
        "scan": scan, "source": attrs.get("source", ""),
        "views used": f"{attrs.get('views_kept', '')} of {attrs.get('views_total', '')} "
                      f"(theta read in {attrs.get('theta_units_raw', '')}, span {attrs.get('theta_span', '')})",
        "detector": f"{attrs.get('n_rows', '')} rows x {attrs.get('n_det', '')} pixels",
        "photons per pixel (flats)": f"{attrs.get('incident_estimate', float('nan')):.4g}"
                                     if "incident_estimate" in attrs else "not estimated",
        "rotation axis": f"{attrs.get('center'):.2f} px ({attrs.get('center_method')}; pixel edges, detector/2 "
                         f"centred; TomoPy's pixel-index centre {attrs.get('center') - 0.5:.2f})",
        "second estimate": f"{center_info['center_check']:.2f} px ({center_info['center_check_method']})"
                           + ("" if center_info["center_agree"] is not False else
                              f" -- DISAGREES by more than {CENTER_TOLERANCE:g} px: check the axis"),
    }
    cols = ["rank", "label", "score", "score_se", "seconds", "chosen"]
    body = [
        "<!doctype html><meta charset='utf-8'><title>tomogan-scan</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}td,th{padding:2px 8px}</style>",
        f"<h1>{html.escape(Path(scan).name)}</h1>",
        f"<p><b>{html.escape(rec['sentence'])}</b></p>",
        "<p>Scores are held-out residuals of the views (lower is better; weighted by the photons per pixel, a "
        "perfect image scores about 1), each the mean over the folds with its standard error.</p>",
        table[cols].to_html(index=False, float_format=lambda v: f"{v:.4g}"),
        "<p><img src='summary.png' alt='the top candidates, central row, one grey scale'></p>",
        "<h2>Acquisition</h2><table>"
        + "".join(f"<tr><th align=left>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                  for k, v in facts.items()) + "</table>",
        "<h2>Cost</h2><table>" + "".join(f"<tr><th align=left>{html.escape(k)}</th><td>{v:.1f} s</td></tr>"
                                         for k, v in costs.items()) + "</table>",
        "<h2>Written</h2><ul>" + "".join(f"<li>{html.escape(v)}</li>" for v in volumes) + "</ul>",
    ]
    Path(path).write_text("\n".join(body) + "\n")


# ----------------------------------------------------------------------------- the command

def scan(raw, out_dir, *, line_integrals: bool = False, rows=None, bin_factor: int = 1, center="auto",
         methods: Sequence[str] = ("fbp", "sirt", "sirt-tv", "fbp-tv", "fbp-bm3d"), models: Sequence = (),
         k: int = 4, rank_rows: int = RANK_ROWS, incident="auto", method: Optional[str] = None,
         all_methods: bool = False, consistent: bool = True, grids: Optional[dict] = None, extras: Sequence = (),
         search: str = "descent", slab_mb: float = 512.0,
         backend: str = "auto", threads: Optional[int] = None, progress: bool = True) -> dict:
    """The whole command (module docstring); returns the ranking table, the recommendation and the paths.
    ``threads``: None for every core this process may use (:func:`simulate.plumbing.usable_cores`)."""
    from simulate.acquire import read_projections
    from simulate.dxchange import prepare, prepare_line_integrals

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    threads = usable_cores() if threads is None else int(threads)
    costs: Dict[str, float] = {}
    t0 = time.perf_counter()
    proj_path = out_dir / "projections.h5"
    if line_integrals:
        attrs = prepare_line_integrals(raw, proj_path, center=center, rows=rows)
    else:
        attrs = prepare(raw, proj_path, center=center, rows=rows, bin_factor=bin_factor)
    data, theta, attrs = read_projections(proj_path)
    attrs = dict(attrs, n_rows=int(data.shape[1]), n_det=int(data.shape[2]))
    costs["read, check and normalise; find the axis"] = time.perf_counter() - t0
    center_px = float(attrs["center"])
    center_info = check_center(data, theta, center_px)
    if incident == "auto":
        weight = attrs.get("incident_estimate")
    elif incident == "none":
        weight = None
    else:
        weight = float(incident)

    t0 = time.perf_counter()
    table = rank_candidates(data, theta, center_px, methods=methods, models=models, k=k,
                            rows=min(rank_rows, data.shape[1]), incident=weight, consistent=consistent,
                            grids=grids, extras=extras, search=search, backend=backend, threads=threads,
                            progress=progress)
    needs = table.attrs["needs"]
    costs[f"rank {len(table)} candidates on {min(rank_rows, data.shape[1])} rows, {k} folds"] = \
        time.perf_counter() - t0
    rec = recommendation(table)
    if method is not None and method not in set(table["method"]):
        raise InputError("--method", f"'{method}' was not ranked; choose one of {', '.join(table['method'])}")
    picks = list(table["method"]) if all_methods else [method or table.iloc[0]["method"]]
    volumes = {}
    t0 = time.perf_counter()
    for name in picks:
        r = table[table["method"] == name].iloc[0]
        path = out_dir / ("volume.h5" if name == picks[0] and not all_methods else
                          f"volume_{name.replace(':', '_').replace('+', '_')}.h5")
        reconstruct_route(proj_path, path, name, r["value"], needs=needs, models=models, extras=extras,
                          slab_mb=slab_mb,
                          attrs={"source": attrs.get("source", ""), "parameter": r["parameter"],
                                 "label": r["label"], "rank": int(r["rank"]), "score": float(r["score"]),
                                 "score_se": float(r["score_se"]), "center_method": attrs.get("center_method", ""),
                                 "center_check": center_info["center_check"],
                                 "incident_estimate": attrs.get("incident_estimate", float("nan")),
                                 "forced": bool(method), "parent": str(raw)},
                          backend=backend, threads=threads, progress=progress)
        volumes[name] = str(path)
    costs[f"reconstruct {data.shape[1]} rows ({', '.join(picks)})"] = time.perf_counter() - t0
    table.to_csv(out_dir / "ranking.csv", index=False)
    t0 = time.perf_counter()
    _figure(_images(data, theta, center_px, table, needs, models, extras, written=volumes, backend=backend,
                    threads=threads), out_dir / "summary.png")
    costs[f"images of the top {min(TOP, len(table))} candidates from all the views"] = time.perf_counter() - t0
    _summary_html(out_dir / "summary.html", scan=str(raw), attrs=attrs, center_info=center_info, table=table,
                  rec=rec, costs=costs, volumes=list(volumes.values()))
    return {"table": table, "recommendation": rec, "volumes": list(volumes.values()), "center": center_info,
            "costs": costs}


@cli
def main(argv=None):
    from analysis.classical import DEFAULT_METHODS, METHODS
    from analysis.crossval import SEARCHES, model_entries, n2i_candidates
    from simulate.dxchange import center_argument

    p = argparse.ArgumentParser(prog="tomogan-scan", description=__doc__.splitlines()[0].strip("`"))
    p.add_argument("scan", help="raw DXchange scan (/exchange/data, data_white, data_dark, theta)")
    p.add_argument("-o", "--out", required=True, help="output folder")
    p.add_argument("--line-integrals", action="store_true",
                   help="the file holds line integrals already (/exchange/data, /exchange/theta): no flats or darks")
    p.add_argument("--rows", type=int, nargs=2, metavar=("START", "STOP"), help="detector rows to keep")
    p.add_argument("--bin", type=int, default=1, dest="bin_factor", help="average BIN x BIN pixels")
    p.add_argument("--center", type=center_argument, default="auto",
                   help="rotation axis, raw pixels, or auto (default)")
    p.add_argument("--methods", nargs="+", default=["fbp", *DEFAULT_METHODS], choices=["fbp", *METHODS],
                   help="classical candidates (each tuned by the held-out score on its grid)")
    p.add_argument("--model", nargs="+", default=[], metavar="[LABEL=]MODEL.pt",
                   help="trained denoisers to rank, each applied to the FBP (method tomogan:LABEL) and, unless "
                        "--no-consistent, also followed by SIRT from its image and TV (tomogan:LABEL+sirt)")
    p.add_argument("--no-consistent", dest="consistent", action="store_false",
                   help="rank each model alone only, without its view-consistent route")
    p.add_argument("--k", type=int, default=4, help="folds of the views")
    p.add_argument("--n2i", metavar="JSON",
                   help="also rank Noise2Inverse, trained on the scan itself: the config's noise2inverse section as "
                        "JSON or @FILE, '{\"k\": 4, \"train\": {\"max_iter\": 150}}', or a list of such objects "
                        "each with a \"label\" (n2i:NAME) and optionally \"init\": MODEL.pt among its train "
                        "settings (a fine-tune); K + 1 trainings for the ranking, one per slab for its volume")
    p.add_argument("--grids", metavar="JSON",
                   help="grids as JSON or @FILE, e.g. '{\"fbp-tv\": [0.05, 0.2], \"consistent\": {\"n_iter\": [10, "
                        "50], \"tv_weight\": [0, 0.05]}}' (the config's classical.grids); a method it leaves out "
                        "takes its registry grid")
    p.add_argument("--search", choices=SEARCHES, default="descent",
                   help="each parameter's grid: descent (from its middle, axis by axis, scoring only the values it "
                        "visits; default) or grid (every value)")
    p.add_argument("--rank-rows", type=int, default=RANK_ROWS, help="central detector rows the ranking scores")
    p.add_argument("--incident", default="auto",
                   help="photons per pixel weighting the scores: auto (the flats' estimate), none, or a number")
    p.add_argument("--method", help="write this candidate's volume whatever the ranking says")
    p.add_argument("--all-methods", action="store_true", help="write every candidate's volume (volume_<method>.h5)")
    p.add_argument("--slab-mb", type=float, default=512.0, help="memory per slab of the reconstruction, MiB")
    p.add_argument("--backend", default="auto")
    p.add_argument("--threads", type=int, help="threads (default: every core this process may use)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    if args.k < 2:
        p.error(f"--k must be >= 2, got {args.k}")
    if args.threads is not None and args.threads < 1:
        p.error(f"--threads must be >= 1, got {args.threads}")
    if args.rank_rows < 1:
        p.error(f"--rank-rows must be >= 1, got {args.rank_rows}")
    if args.method and args.all_methods:
        p.error("give --method or --all-methods, not both")
    if args.incident not in ("auto", "none"):
        try:
            if not float(args.incident) > 0:
                raise ValueError
        except ValueError:
            p.error(f"--incident must be auto, none or a number > 0, got {args.incident}")
    grids = check_grids(*json_argument(args.grids, flag="--grids")) if args.grids else None
    extras = n2i_candidates(args.n2i) if args.n2i else ()
    result = scan(args.scan, args.out, line_integrals=args.line_integrals, rows=args.rows,
                  bin_factor=args.bin_factor, center=args.center, methods=args.methods,
                  models=model_entries(args.model), k=args.k, rank_rows=args.rank_rows, incident=args.incident,
                  method=args.method, all_methods=args.all_methods, consistent=args.consistent,
                  grids=grids, extras=extras, search=args.search, slab_mb=args.slab_mb, backend=args.backend,
                  threads=args.threads, progress=not args.quiet)
    print(result["recommendation"]["sentence"])
    print(f"wrote {', '.join(result['volumes'])}, {Path(args.out) / 'ranking.csv'}, {Path(args.out) / 'summary.html'}")


if __name__ == "__main__":
    main()
