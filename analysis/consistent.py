"""A learned route made consistent with the measured views: the network's image is a start, not an answer.

The model's image (the FBP of the views, then the model) starts SIRT, which moves it toward agreement with the
measured views; Chambolle TV after it (weight 0 = none) removes the noise the iterations bring back. The iteration
count and the TV weight are tuned jointly by the held-out score (:mod:`analysis.crossval`), each fold's start and
iterations made from its kept views only; one SIRT run per fold to the largest count gives every count of the grid.
Why: docs/methods.md, "Your scan as acquired".
"""

from __future__ import annotations

import logging
from typing import Iterator, Sequence, Tuple

import numpy as np

from analysis.crossval import SEARCHES, Reconstructor, TuneResult, fold_result, grid_descent, held_out_folds
from analysis.classical import TV_ITER, TV_PROXY_ITER
from simulate.reconstruct import SirtRun, sirt_iterates, tv_denoise

__all__ = ["N_ITERS", "TV_WEIGHTS", "SUFFIX", "PARAMETER", "format_value", "parse_value", "consistent_images",
           "tune_consistent", "consistent_reconstructor"]

logger = logging.getLogger(__name__)

# SIRT iterations from the network's image: as far as SIRT's own registry grid, since a sparse scan's route may be
# best past 200 (the demo scan at 1/4 of its views and a 640-pixel scan were, at 200, when the grid ended there)
N_ITERS = (5, 10, 20, 50, 100, 200, 300, 400, 600, 800)
TV_WEIGHTS = (0.0, 0.02, 0.05, 0.1, 0.2)  # Chambolle TV after them, relative to the image's range (0: none)
SUFFIX = "+sirt"                       # the route's method name: the model's, then this
PARAMETER = "n_iter, tv_weight"


def format_value(value: Tuple[int, float]) -> str:
    """``(20, 0.05)`` -> ``'20, 0.05'``: how the ranking table and the volume's attributes write a choice."""
    return f"{int(value[0])}, {float(value[1]):g}"


def parse_value(text: str) -> Tuple[int, float]:
    """The inverse of :func:`format_value`.

    >>> parse_value(format_value((20, 0.05)))
    (20, 0.05)
    """
    n, w = (part.strip() for part in str(text).split(","))
    return int(n), float(w)


def consistent_images(start, data, theta, center, size, n_iters: Sequence[int] = N_ITERS,
                      weights: Sequence[float] = TV_WEIGHTS, *, backend: str = "auto",
                      threads: int = 1) -> Iterator[Tuple[Tuple[int, float], np.ndarray]]:
    """``((n_iter, weight), volume)`` for every pair of the grid: SIRT of ``data`` started at ``start`` (one run to
    the largest count), then TV at ``weight`` (none at 0)."""
    iterates = sirt_iterates(data, theta, n_iters, center=center, size=size, init=start, backend=backend,
                             threads=threads)
    for n in sorted(iterates):
        for w in weights:
            yield (int(n), float(w)), (tv_denoise(iterates[n], weight=w, n_iter=TV_ITER, threads=threads) if w > 0
                                       else iterates[n])


def tune_consistent(data, theta, start: Reconstructor, *, n_iters: Sequence[int] = N_ITERS,
                    weights: Sequence[float] = TV_WEIGHTS, k: int = 4, center=None, size=None, incident=None,
                    slices=None, residual: str = "auto", backend: str = "auto", threads: int = 1,
                    method: str = "consistent", search: str = "grid", proxy: bool = False) -> TuneResult:
    """The (iterations, TV weight) pair with the smallest held-out residual, from ``start`` (a reconstructor: the
    FBP of the kept views, then the model).

    Each pair's score equals ``holdout_residual(data, theta, consistent_reconstructor(start, n, w))``. Per fold, one
    SIRT run from the start's image gives every count, run only as far as the counts scored; ``search="descent"``
    (:func:`analysis.crossval.core.grid_descent`) then scores only the pairs a descent visits, each one TV run per
    fold, instead of every pair (``grid``). The descent starts at the middle count without TV (where the grid has a
    weight 0), so it walks the counts at no TV cost before it searches the weight. ``proxy``: the pairs are scored
    with TV's stand-in (:data:`analysis.classical.TV_PROXY_ITER` Chambolle iterations), then the chosen pair is made
    and scored with the full TV (``TuneResult.by_proxy``), as :func:`analysis.crossval.tune_by_holdout` does.

    Returns
    -------
    TuneResult
        ``chosen`` an ``(n_iter, weight)`` tuple; ``scores`` the :class:`analysis.crossval.HoldoutResult` of every
        pair scored, in grid order.
    """
    if search not in SEARCHES:
        raise ValueError(f"search must be one of {', '.join(SEARCHES)}, got '{search}'")
    n_iters = sorted({int(n) for n in n_iters})
    weights = sorted({float(w) for w in weights})
    if not n_iters or not weights or n_iters[0] < 1 or weights[0] < 0:
        raise ValueError(f"need iteration counts >= 1 and TV weights >= 0, got {n_iters} and {weights}")
    folds = list(held_out_folds(data, theta, k=k, center=center, size=size, incident=incident, slices=slices,
                                backend=backend, threads=threads, residual=residual))
    starts = [(kd, kt, start(kd, kt, c, s, backend=backend, threads=threads)) for kd, kt, c, s, _ in folds]
    runs = SirtRun.together(starts, counts=n_iters, center=folds[0][2], size=folds[0][3], backend=backend,
                            threads=threads)  # the folds advance as one product
    per_fold = [(f[4], run) for f, run in zip(folds, runs)]
    n_rays, kind = sum(f[0].n_rays for f in per_fold), per_fold[0][0].residual
    scores = {}
    tv_iter = TV_PROXY_ITER if proxy else TV_ITER

    def made(n, w, n_tv):
        return [scorer.scores(tv_denoise(iterates[n], weight=w, n_iter=n_tv, threads=threads) if w > 0
                              else iterates[n]) for scorer, iterates in per_fold]

    def visit(index) -> float:
        n, w = n_iters[index[0]], weights[index[1]]
        scores[(n, w)] = fold_result(made(n, w, tv_iter), k, incident is not None, n_rays, kind)
        return scores[(n, w)].score

    shape = (len(n_iters), len(weights))
    if search == "descent":  # from no TV (each pair there costs no TV run): the counts first, then the weight
        grid_descent(shape, visit, start=((len(n_iters) - 1) // 2, 0) if weights[0] == 0 else None)
    else:
        for index in np.ndindex(*shape):
            visit(index)
    scores = {g: scores[g] for g in sorted(scores)}
    chosen = min(scores, key=lambda g: scores[g].score)
    by_proxy = proxy and chosen[1] > 0  # without TV the stand-in is the route itself
    if by_proxy:
        scores[chosen] = fold_result(made(*chosen, TV_ITER), k, incident is not None, n_rays, kind)
    if chosen[0] == n_iters[-1] and len(n_iters) > 2:
        logger.warning("%s: the chosen %d iterations are the grid's largest; widen it", method, chosen[0])
    if chosen[1] == weights[-1] and len(weights) > 2:
        logger.warning("%s: the chosen TV weight %g is the grid's largest; widen it", method, chosen[1])
    return TuneResult(method, PARAMETER, chosen, scores, by_proxy)


def consistent_reconstructor(start: Reconstructor, n_iter: int, weight: float) -> Reconstructor:
    """``start``'s image, then ``n_iter`` SIRT iterations from it, then TV at ``weight`` (none at 0)."""
    n_iter, weight = int(n_iter), float(weight)

    def rec(data, theta, center, size, *, backend="auto", threads=1):
        image = start(data, theta, center, size, backend=backend, threads=threads)
        _, volume = next(consistent_images(image, data, theta, center, size, [n_iter], [weight], backend=backend,
                                           threads=threads))
        return volume
    return rec
