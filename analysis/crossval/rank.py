"""Tuning a method's parameter and ranking methods by the held-out residual, and the same candidates scored against a
reference where one exists.

Lower is better. :func:`tune_by_holdout` picks a registry method's parameter on a grid (sharing the per-fold start
-- the FBP, or SIRT's iterates -- between the values); :func:`rank_methods` ranks any reconstructors. With a
reference (``--reference``), every candidate is also made from *all* the views by the same reconstructor and
scored against the reference's slices of the same detector rows (:func:`tune_against_reference`,
:func:`against_reference`): per method, the value with the best SSIM is ``chosen_by_reference``, beside the
holdout's ``chosen``, at one more run of each method (``K + 1`` instead of ``K``).
"""

from __future__ import annotations

import logging
from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from analysis.classical import METHODS, each_value
from analysis.crossval.candidates import StartCache, _start
from analysis.crossval.core import (REFERENCE_FOV_MARGIN, SEARCHES, HoldoutResult, Reconstructor, TuneResult, _check,
                                   fold_result, grid_descent, held_out_folds, holdout_residual)
from simulate.scores import compare_volumes

logger = logging.getLogger(__name__)

def _grid(method, grid) -> list:
    """The values searched: ``grid`` (default the method's own), typed, without repeats, in order."""
    grid = list(dict.fromkeys(method.value_type(v) for v in (method.grid if grid is None else grid)))
    if not grid:
        raise ValueError(f"method '{method.name}': empty grid")
    return grid


def tune_by_holdout(data, theta, method_name: str, grid: Optional[Sequence[float]] = None, *, k: int = 4,
                    center=None, size=None, incident=None, slices=None, residual: str = "auto",
                    needs: Optional[Mapping[str, float]] = None, backend: str = "auto",
                    threads: int = 1, cache: Optional[StartCache] = None, search: str = "grid",
                    proxy: bool = False) -> TuneResult:
    """The parameter value of a registry method with the smallest held-out residual.

    Per fold, the method's start is made once from the kept views, and the registry's ``candidates`` produce the
    grid's images from it (SIRT: all counts from one run); each value's score equals ``holdout_residual`` of
    ``classical_reconstructor(method_name, value)``. ``cache``: a :class:`StartCache` to keep and take starts in.
    ``search``: ``grid`` scores every value; ``descent`` (:func:`analysis.crossval.core.grid_descent`) only the
    values a descent visits, for a method whose values each cost a run of their own
    (:attr:`analysis.classical.Method.per_value`) or come from one run made only as far as asked
    (:attr:`~analysis.classical.Method.run`: SIRT, which then runs to the largest count visited, not the grid's);
    others score the whole grid, which costs them no more. ``proxy``: a method with a cheaper stand-in
    (:attr:`analysis.classical.Method.proxy`, BM3D's low-complexity profile) searches the grid with it, then makes
    and scores the value chosen with the method itself; the other values' scores are then the stand-in's
    (``TuneResult.by_proxy``).

    Returns
    -------
    TuneResult
        ``chosen`` (the first of equal minima), and the :class:`HoldoutResult` of every value scored, in grid order.
    """
    if search not in SEARCHES:
        raise ValueError(f"search must be one of {', '.join(SEARCHES)}, got '{search}'")
    method = METHODS[method_name]
    grid = _grid(method, grid)
    per_fold = list(held_out_folds(data, theta, k=k, center=center, size=size, incident=incident, slices=slices,
                                   backend=backend, threads=threads, residual=residual))
    n_rays, kind = sum(f[4].n_rays for f in per_fold), per_fold[0][4].residual
    starts = [_start(method, kd, kt, c, s, needs, backend, threads, cache) for kd, kt, c, s, _ in per_fold]
    per_value: Dict[float, list] = {}
    by_proxy = bool(proxy and method.proxy is not None)
    candidates = each_value(method.proxy) if by_proxy else method.candidates
    descent = search == "descent" and (by_proxy or method.per_value or method.run is not None)
    runs = method.run(starts, grid, backend=backend, threads=threads) if descent and method.run else None

    def score(values, made_by=candidates, keep=not by_proxy) -> None:
        for i, ((kept_data, kept_theta, c, s, scorer), x) in enumerate(zip(per_fold, starts)):
            made = (((v, runs[i][v]) for v in values) if runs is not None else
                    made_by(x, values, backend=backend, threads=threads))
            for value, volume in made:
                per_value.setdefault(method.value_type(value), []).append(scorer.scores(volume))
                if cache is not None and keep:
                    cache.put(method_name, value, kept_data, kept_theta, c, s, volume)

    def result(v) -> HoldoutResult:
        return fold_result(per_value[v], k, incident is not None, n_rays, kind)

    def visit(index) -> float:
        score([grid[index[0]]])
        return result(grid[index[0]]).score

    if descent:
        grid_descent((len(grid),), visit)
    else:
        score(grid)
    scores = {v: result(v) for v in grid if v in per_value}
    chosen = min(scores, key=lambda v: scores[v].score)
    if by_proxy:  # the value the stand-in chose, made and scored by the method itself
        del per_value[chosen]
        score([chosen], made_by=method.candidates, keep=True)
        scores[chosen] = result(chosen)
    if len(grid) > 2 and chosen in (grid[0], grid[-1]):
        logger.warning("%s: the chosen %s = %s is at the edge of the grid; widen it", method_name,
                       method.parameter, chosen)
    return TuneResult(method_name, method.parameter, chosen, scores, by_proxy)


def rank_methods(candidates: Mapping[str, Reconstructor], data, theta, *, k: int = 4, center=None, size=None,
                 incident=None, slices=None, residual: str = "auto", backend: str = "auto", threads: int = 1):
    """Held-out residuals of several methods, best first.

    Returns
    -------
    pandas.DataFrame
        Columns ``rank, method, score, fold_1 .. fold_K, weighted, k``, sorted by ``score`` (lower is
        better).
    """
    import pandas as pd

    rows = []
    for name, rec in candidates.items():
        res = holdout_residual(data, theta, rec, k=k, center=center, size=size, incident=incident,
                               slices=slices, residual=residual, backend=backend, threads=threads)
        rows.append({"method": name, **_score_columns(res)})
    table = pd.DataFrame(rows).sort_values("score", kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


def _score_columns(res: HoldoutResult) -> dict:
    cols = {"score": res.score}
    cols.update({f"fold_{j + 1}": s for j, s in enumerate(res.fold_scores)})
    cols.update({f"score_{kind}": v for kind, v in res.by_residual.items()})
    cols.update(weighted=res.weighted, residual=res.residual, k=res.k, n_rays=res.n_rays)
    return cols


# ----------------------------------------------------------------------------- against a reference

def against_reference(volume, reference, *, fov_margin: float = REFERENCE_FOV_MARGIN) -> Dict[str, float]:
    """SSIM and PSNR of a volume against the normal-dose reference, as :mod:`analysis.metrics` scores them.

    Parameters
    ----------
    volume, reference : ndarray, shape (slices, rows, cols)
        The same slices (detector rows), in the same order.
    fov_margin : float
        Pixels left out at the rim of the field of view (:func:`simulate.scores.compare_volumes`).

    Returns
    -------
    dict
        ``ssim``, ``psnr``: means over the slices in the field of view (one ``data_range`` for the volume,
        the reference's); ``ssim_object``, ``psnr_object``: means over the slices that have an object region (NaN
        if none has).
    """
    rows = compare_volumes(volume, reference, fov_margin=fov_margin)
    out = {"ssim": float(np.mean([r["ssim"] for r in rows])), "psnr": float(np.mean([r["psnr"] for r in rows]))}
    for key in ("ssim_object", "psnr_object"):
        obj = [r[key] for r in rows if np.isfinite(r[key])]
        out[key] = float(np.mean(obj)) if obj else float("nan")
    return out


def _best_by_ssim(metrics: Mapping) -> object:
    """The key with the highest ``ssim`` (the first of equal maxima, in order)."""
    keys = list(metrics)
    return max(keys, key=lambda v: (metrics[v]["ssim"], -keys.index(v)))


def tune_against_reference(data, theta, method_name: str, grid: Optional[Sequence[float]], reference, *,
                           center=None, size=None, slices=None, needs: Optional[Mapping[str, float]] = None,
                           fov_margin: float = REFERENCE_FOV_MARGIN, backend: str = "auto",
                           threads: int = 1) -> Dict[float, Dict[str, float]]:
    """Each value of a registry method's grid, reconstructed from *all* the views (:func:`all_view_candidates`),
    scored against a reference.

    Parameters
    ----------
    data : ndarray, shape (angles, rows, detector)
        Measured line integrals (all the views).
    reference : ndarray, shape (slices, size, size)
        The reference's slices of the detector rows used (all rows, or those ``slices`` selects), in order.
    slices, center, size, needs, backend, threads
        As for :func:`tune_by_holdout`.

    Returns
    -------
    dict
        ``{value: {"ssim", "psnr", "ssim_object", "psnr_object"}}`` in grid order (:func:`against_reference`); the best
        value by reference is the one with the highest ``ssim``.

    Raises
    ------
    ValueError
        A reference whose shape is not ``(rows used, size, size)``.
    """
    data, theta, center, size, _, _ = _check(data, theta, center, size, None, slices)
    reference = np.asarray(reference, dtype=np.float32)
    if reference.shape != (data.shape[1], size, size):
        raise ValueError(f"reference of shape {reference.shape} for reconstructions of shape "
                         f"({data.shape[1]}, {size}, {size})")
    return {v: against_reference(volume, reference, fov_margin=fov_margin)
            for v, volume in all_view_candidates(data, theta, method_name, grid, center=center, size=size,
                                                 needs=needs, backend=backend, threads=threads)}


def all_view_candidates(data, theta, method_name: str, grid: Optional[Sequence[float]] = None, *, center=None,
                        size=None, slices=None, needs: Optional[Mapping[str, float]] = None, backend: str = "auto",
                        threads: int = 1, cache: Optional[StartCache] = None):
    """Yield ``(value, volume)`` for each value of a registry method's grid, made from *all* the views.

    The start is made once and the registry's ``candidates`` make the grid's images from it, lazily: each volume is
    what ``classical_reconstructor(method_name, value, needs=needs)`` makes of the whole scan. A one-value grid makes
    only that value's image (SIRT: only as many iterations). ``cache``: as for :func:`tune_by_holdout`.
    """
    method = METHODS[method_name]
    grid = _grid(method, grid)
    data, theta, center, size, _, _ = _check(data, theta, center, size, None, slices)
    x = _start(method, data, theta, center, size, needs, backend, threads, cache)
    for v, volume in method.candidates(x, grid, backend=backend, threads=threads):
        if cache is not None:
            cache.put(method_name, v, data, theta, center, size, volume)
        yield method.value_type(v), volume


