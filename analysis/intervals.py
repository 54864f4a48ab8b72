"""How wide a comparison's interval must be: slice correlation, a t interval over seeds, Monte-Carlo error, coverage.

Neighbouring test slices are not independent draws. This module measures how far their correlation reaches
(:func:`lag_correlation`, :func:`correlation_length`), builds the t interval (:func:`t_interval`; the block
bootstrap is :func:`analysis.verdicts.bootstrap_difference`) and simulates both on data of the study's design
(:func:`simulate_coverage`), so that :mod:`analysis.claims` can use the first that covers. The reasoning:
docs/claims.md, "The comparison and its interval".
"""

from __future__ import annotations

import math
from typing import Dict, Iterable, Optional

import numpy as np
from scipy import stats

__all__ = ["MIN_COVERAGE", "MIN_SERIES", "RHO_UNKNOWN", "INTERVALS", "lag_correlation", "correlation_length",
           "effective_slices", "quantile_mc_error", "t_interval", "simulate_coverage"]

MIN_SERIES = 8  # slices per series below which the lag-1 correlation is not estimated (lag_correlation)
RHO_UNKNOWN = (0.0, 0.5, 0.8, 0.95)  # correlations an interval must cover at when it could not be measured
MIN_COVERAGE = 0.93  # an interval is used only where simulation shows it covers at least this often (nominal 0.95)
INTERVALS = ("bootstrap", "t", "t-conservative")  # narrowest first: the first that covers is used
# (seed, slice, volume) spreads of the simulated scores; the volume part only where a design has several volumes
SCENARIOS = {"seeds dominate": (1.0, 0.25, 0.25), "balanced": (1.0, 1.0, 1.0), "slices dominate": (0.25, 1.0, 0.25),
             "volumes dominate": (0.25, 0.25, 1.0)}


def lag_correlation(series: Iterable[np.ndarray], lag: int = 1) -> float:
    """Lag-``lag`` autocorrelation pooled over several short series (each demeaned on its own), bias-corrected.

    The pooled estimate is ``sum x_j x_{j+lag} / sum x_j^2`` over every series; for ``lag = 1`` it is corrected by
    Kendall's approximation ``E[r] = rho - (1 + 3 rho) / n`` (``n`` the mean length), and clipped to ``[0, 0.95]``.
    NaN when no series has ``lag + 2`` finite values, or when the series are shorter than :data:`MIN_SERIES` on
    average: then the caller must assume the worst (:data:`RHO_UNKNOWN`).

    >>> gen = np.random.default_rng(0)
    >>> x = [gen.standard_normal(8) for _ in range(400)]
    >>> abs(lag_correlation(x)) < 0.1
    True
    """
    num = den = 0.0
    lengths = []
    for x in series:
        x = np.asarray(x, dtype=np.float64)
        x = x[np.isfinite(x)]
        if x.size < lag + 2:
            continue
        x = x - x.mean()
        num += float(np.dot(x[:-lag], x[lag:]))
        den += float(np.dot(x, x))
        lengths.append(x.size)
    if not lengths or den <= 0:
        return float("nan")
    n = float(np.mean(lengths))
    if n < MIN_SERIES:
        return float("nan")
    r = num / den
    if lag == 1:
        r = (n * r + 1.0) / (n - 3.0)
    return float(np.clip(r, 0.0, 0.95))


def correlation_length(rho: float) -> int:
    """Slices over which an AR(1) correlation ``rho`` between neighbours falls below 1/e: ``ceil(-1 / ln rho)``,
    at least 1 (independent slices).

    >>> correlation_length(0.0), correlation_length(0.5), correlation_length(0.9)
    (1, 2, 10)
    """
    if not np.isfinite(rho) or rho <= 0:
        return 1
    return max(1, int(math.ceil(-1.0 / math.log(rho))))


def effective_slices(n: int, rho: float) -> float:
    """How many independent slices ``n`` AR(1)-correlated ones are worth for their mean:
    ``n / (1 + 2 sum_{k<n} (1 - k/n) rho^k)``.

    >>> effective_slices(8, 0.0), round(effective_slices(8, 0.5), 2)
    (8.0, 3.2)
    """
    rho = 0.0 if not np.isfinite(rho) else float(rho)
    k = np.arange(1, n)
    return float(n / (1.0 + 2.0 * np.sum((1.0 - k / n) * rho ** k)))


def quantile_mc_error(replicates: np.ndarray, q: float) -> float:
    """Monte-Carlo standard error of the ``q`` quantile of bootstrap replicates: half the distance between the
    order statistics ``n q -+ sqrt(n q (1 - q))`` (the count below the true quantile is binomial; Efron and
    Tibshirani 1993, ch. 19).

    >>> r = np.random.default_rng(0).standard_normal(20000)
    >>> 0.01 < quantile_mc_error(r, 0.025) < 0.03
    True
    """
    x = np.sort(np.asarray(replicates, dtype=np.float64))
    n = x.size
    half = math.sqrt(n * q * (1.0 - q))
    lo = int(np.clip(math.floor(n * q - half), 0, n - 1))
    hi = int(np.clip(math.ceil(n * q + half), 0, n - 1))
    return float((x[hi] - x[lo]) / 2.0)


def t_interval(a, b, *, level: float, rho: float, paired: bool, trained_a: bool = True,
               trained_b: bool = True, conservative: bool = False, volumes=None) -> Dict[str, float]:
    """A t interval for ``mean(a) - mean(b)`` (matrices ``(seeds, slices)`` on the same slices, no NaN).

    The effect's variance is the seeds' part plus the test data's part, as docs/claims.md describes; an untrained
    side (one row) adds no seed part, and both trained, unpaired sides pool one seed-to-seed spread. ``volumes``
    labels each column's test volume (None: one volume). Degrees of freedom by Welch-Satterthwaite;
    ``conservative`` caps them at the fewest of any part that carries at least 5 % of the variance (with one or two
    degrees of freedom in a part, Welch-Satterthwaite under-covers). Returns ``effect``, ``lo``, ``hi``, ``df``,
    ``se``, ``n_eff``.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    n = a.shape[1]
    effect = float(a.mean() - b.mean())
    parts = []  # (variance, degrees of freedom)
    if paired:
        if a.shape[0] != b.shape[0]:
            raise ValueError(f"paired seeds need as many rows on each side, got {a.shape[0]} and {b.shape[0]}")
        if a.shape[0] > 1:
            d = a.mean(axis=1) - b.mean(axis=1)
            parts.append((d.var(ddof=1) / d.size, d.size - 1))
    else:
        sides = [(x.mean(axis=1), x.shape[0]) for x, trained in ((a, trained_a), (b, trained_b)) if trained]
        if len(sides) == 2 and min(s for _, s in sides) >= 1 and sum(s for _, s in sides) > 2:
            ss = sum(float(((m - m.mean()) ** 2).sum()) for m, _ in sides)
            df = sum(s for _, s in sides) - 2
            pooled = ss / df
            parts.append((pooled * sum(1.0 / s for _, s in sides), df))
        else:
            for m, s in sides:
                if s > 1:
                    parts.append((m.var(ddof=1) / s, s - 1))
    d = a.mean(axis=0) - b.mean(axis=0)
    labels = np.zeros(n, dtype=int) if volumes is None else np.unique(np.asarray(volumes), return_inverse=True)[1]
    groups = [d[labels == v] for v in range(labels.max() + 1)]
    within, n_eff = _within_volumes(groups, rho)
    if len(groups) > 1:
        means = np.array([g.mean() for g in groups])
        between = (means.var(ddof=1) / means.size, means.size - 1.0)
        parts.append(between if within is None or between[0] >= within[0] else within)
    elif within is not None:
        parts.append(within)
    var = sum(v for v, _ in parts)
    if var <= 0:
        return {"effect": effect, "lo": effect, "hi": effect, "df": float("inf"), "se": 0.0, "n_eff": n_eff}
    df = var ** 2 / sum(v ** 2 / f for v, f in parts if v > 0)
    if conservative:  # never more than the fewest of any part that carries weight (simulate_coverage shows why)
        df = min(df, min(f for v, f in parts if v > 0.05 * var))
    half = float(stats.t.ppf(0.5 + level / 2.0, df)) * math.sqrt(var)
    return {"effect": effect, "lo": effect - half, "hi": effect + half, "df": float(df), "se": math.sqrt(var),
            "n_eff": n_eff}


def _within_volumes(groups, rho: float):
    """The slices' part of the effect's variance, pooled over the volumes' per-slice differences: (variance of the
    mean, degrees of freedom), or None when no volume has two slices; and the effective slices per volume."""
    ss = df = 0.0
    count, n_eff = 0, 1.0
    for d in groups:
        n = d.size
        if n < 2:
            continue
        n_eff = effective_slices(n, rho)
        s2 = d.var(ddof=1) * (n - 1) / max(n - n / n_eff, 1.0)  # a correlated series' variance is biased low
        ss += s2 * max(n_eff - 1.0, 1.0)
        df += max(n_eff - 1.0, 1.0)
        count += 1
    if not count:
        return None, n_eff
    pooled = ss / df
    return (pooled / (n_eff * len(groups)), df), n_eff  # the mean over every volume's effective slices


def _ar1(gen: np.random.Generator, shape, rho: float) -> np.ndarray:
    """Stationary AR(1) series along the last axis, unit variance."""
    e = gen.standard_normal(shape)
    out = np.empty(shape)
    out[..., 0] = e[..., 0]
    scale = math.sqrt(1.0 - rho ** 2)
    for j in range(1, shape[-1]):
        out[..., j] = rho * out[..., j - 1] + scale * e[..., j]
    return out


def simulate_coverage(*, n_a: int, n_b: int, n_slices: int, paired: bool, trained_b: bool, rho: float,
                      level: float = 0.95, n_sim: int = 400, seed: int = 0, n_volumes: int = 1,
                      bootstrap: Optional[callable] = None, assumed_rho: Optional[float] = None) -> Dict[str, float]:
    """How often each interval covers the true difference (zero), on data of the study's design.

    Two sides of ``n_a`` and ``n_b`` seed rows (``trained_b`` false: a method without training) on ``n_volumes``
    test volumes of ``n_slices`` slices; scores = seed effect + slice effect (AR(1) with ``rho`` along each volume,
    shared by both sides, plus a part per side) + noise, and with several volumes a volume effect on the
    difference. Paired seeds share half their seed effect. :data:`SCENARIOS` weight the parts. The t intervals are
    told ``assumed_rho`` (default ``rho``), so that an interval built on an assumed correlation is simulated at
    another.

    ``bootstrap``: ``(a, b, level, rng) -> (lo, hi)``; without it only the t intervals are simulated. Returns the
    lowest coverage over the scenarios for ``t``, ``t-conservative`` (and ``bootstrap``), each with the scenario
    that gave it (``<name>_scenario``).
    """
    gen = np.random.default_rng(seed)
    told = rho if assumed_rho is None else assumed_rho
    worst: Dict[str, float] = {}
    volumes = np.repeat(np.arange(n_volumes), n_slices)
    scenarios = {k: v for k, v in SCENARIOS.items() if n_volumes > 1 or k != "volumes dominate"}
    for name, (sd_seed, sd_slice, sd_volume) in scenarios.items():
        hits = {"t": 0, "t-conservative": 0, "bootstrap": 0}
        for _ in range(n_sim):
            shape = (n_volumes, n_slices)
            shared = (_ar1(gen, shape, rho) * sd_slice).ravel()
            if n_volumes > 1:
                shared = shared + np.repeat(gen.standard_normal(n_volumes) * sd_volume, n_slices) / 2.0
            common = gen.standard_normal(max(n_a, n_b)) * sd_seed / math.sqrt(2.0)
            seeds_a = gen.standard_normal(n_a) * sd_seed / (math.sqrt(2.0) if paired else 1.0)
            a = shared + _side_noise(gen, n_a, shape, rho, sd_slice)
            a += (seeds_a + (common[:n_a] if paired else 0.0))[:, None]
            b = shared + _side_noise(gen, n_b, shape, rho, sd_slice)
            if n_volumes > 1:  # what each volume adds to the difference: the variation between volumes
                b += np.repeat(gen.standard_normal(n_volumes) * sd_volume, n_slices)[None, :]
            if trained_b:
                seeds_b = gen.standard_normal(n_b) * sd_seed / (math.sqrt(2.0) if paired else 1.0)
                b += (seeds_b + (common[:n_b] if paired else 0.0))[:, None]
            for key, cons in (("t", False), ("t-conservative", True)):
                t = t_interval(a, b, level=level, rho=told, paired=paired, trained_b=trained_b, conservative=cons,
                               volumes=volumes)
                hits[key] += t["lo"] <= 0.0 <= t["hi"]
            if bootstrap is not None:
                lo, hi = bootstrap(a, b, level, gen)
                hits["bootstrap"] += lo <= 0.0 <= hi
        for key in ("t", "t-conservative") + (("bootstrap",) if bootstrap is not None else ()):
            cov = hits[key] / n_sim
            if cov < worst.get(key, 2.0):
                worst[key], worst[f"{key}_scenario"] = cov, name
    return worst


def _side_noise(gen: np.random.Generator, rows: int, shape, rho: float, sd_slice: float) -> np.ndarray:
    """One side's own part: AR(1) along each volume's slices (half the slice spread) plus white noise."""
    n_volumes, n_slices = shape
    return (_ar1(gen, (rows, n_volumes, n_slices), rho) * 0.5 * sd_slice).reshape(rows, -1) \
        + 0.2 * gen.standard_normal((rows, n_volumes * n_slices))
