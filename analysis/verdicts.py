"""Verdicts on the paper's claims: a paired, hierarchical bootstrap interval and a four-way rule.

A claim is reduced to comparisons of two sides, ``a`` and ``b``, each a matrix ``(n_seeds, n_slices)`` of one
metric: one row per training seed (an untrained method has one row), one column per test slice, the same slices
in the same order on both sides. :func:`bootstrap_difference` gives ``mean(a) - mean(b)`` and its interval,
:func:`verdict` labels the interval against a margin, :func:`claim_holds` reads the label by the claim's kind and
:func:`combine` joins the comparisons of one claim. The rules and why: docs/claims.md, "The comparison and its
interval" and "The verdict".
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Iterable

import numpy as np

from analysis.intervals import quantile_mc_error

__all__ = ["LABELS", "NOT_RUN", "NOT_MEASURED", "NOT_TESTED", "AT_CEILING", "KINDS", "HOLDS", "Difference",
           "bootstrap_difference", "bootstrap_replicates", "verdict", "stable_verdict", "claim_holds", "combine",
           "judge"]

logger = logging.getLogger(__name__)

LABELS = ("supported", "contradicted", "equivalent", "inconclusive")
# what a comparison reads where it is not judged
NOT_RUN = "not run"  # the config trains none of the models a claim compares
NOT_MEASURED = "not measured"  # the metric does not apply on these slices (e.g. no edge large enough)
NOT_TESTED = "not tested at this budget"  # the compared runs' ranking had not settled when training stopped
AT_CEILING = "at ceiling"  # the measure is at its cap on these slices: it cannot tell the sides apart
KINDS = ("better", "not-worse", "equivalent")
HOLDS = ("yes", "no", "unclear")

# claim_holds: kind -> label -> answer (docs/claims.md, "The verdict")
_HOLDS_TABLE = {
    "better": {"supported": "yes", "contradicted": "no", "equivalent": "no", "inconclusive": "unclear"},
    "not-worse": {"supported": "yes", "contradicted": "no", "equivalent": "yes", "inconclusive": "unclear"},
    "equivalent": {"supported": "no", "contradicted": "no", "equivalent": "yes", "inconclusive": "unclear"},
}


@dataclass(frozen=True)
class Difference:
    """A difference of means with its bootstrap interval (the result of :func:`bootstrap_difference`).

    ``effect`` and ``lo``/``hi`` are over the ``n_slices`` kept (``n_dropped`` had a NaN); one seed on both sides
    means the interval reflects slice variation only. ``mc_lo``/``mc_hi`` are each bound's Monte-Carlo standard
    error (:func:`analysis.intervals.quantile_mc_error`); ``block`` is the slices resampled together, ``paired``
    whether the seed rows of both sides were drawn together.
    """

    effect: float
    lo: float
    hi: float
    n_seeds_a: int
    n_seeds_b: int
    n_slices: int
    n_dropped: int
    n_boot: int
    level: float
    mc_lo: float = 0.0
    mc_hi: float = 0.0
    block: int = 1
    paired: bool = False

    def as_dict(self) -> dict:
        """The fields as a plain ``dict`` (one row of a table)."""
        return asdict(self)


def _as_side(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_seeds, n_slices), got shape {x.shape}; "
                         f"a method with one row (no training seeds) is passed as x[np.newaxis, :]")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name} is empty: shape {x.shape}")
    if np.isinf(x).any():
        raise ValueError(f"{name} holds infinite values (e.g. a PSNR of identical images); "
                         f"replace them by NaN to drop those slices, or cap them")
    return x


def _check_rng(rng) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (e.g. numpy.random.default_rng(seed)), "
                        f"got {type(rng).__name__}")
    return rng


def _check_options(n_boot, level) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level!r}")


def _check_margin(margin) -> float:
    margin = float(margin)
    if not np.isfinite(margin) or margin < 0:
        raise ValueError(f"margin must be a finite number >= 0 (in the metric's units), got {margin!r}")
    return margin


def _common_slices(a: np.ndarray, b: np.ndarray):
    """``a`` and ``b`` without the slices that are NaN in any row of either, and how many were dropped."""
    keep = ~(np.isnan(a).any(axis=0) | np.isnan(b).any(axis=0))
    n_dropped = int(keep.size - keep.sum())
    if n_dropped == keep.size:
        raise ValueError(f"no slice left: each of the {keep.size} slices is NaN in some row of a or b")
    if n_dropped:
        logger.info("dropped %d of %d slices with a NaN score", n_dropped, keep.size)
    return a[:, keep], b[:, keep], n_dropped


def bootstrap_difference(a, b, *, n_boot: int = 2000, level: float = 0.95, rng: np.random.Generator,
                         block: int = 1, paired: bool = False) -> Difference:
    r"""Difference of mean scores of two sides on the same slices, with a paired hierarchical bootstrap interval.

    Parameters
    ----------
    a, b : array_like, shape (n_seeds_a, n_slices) and (n_seeds_b, n_slices)
        One metric per training seed (rows) and test slice (columns), the same slices in the same order on both
        sides. NaN marks a missing score: that slice is dropped from both sides.
    level : float, optional
        Coverage aimed at by the interval, in (0, 1).
    rng : numpy.random.Generator
        Random source of the resampling; the same seed gives the same interval.
    block : int, optional
        Consecutive columns are cut into blocks of ``block`` (the last may be shorter) and whole blocks are drawn,
        so that correlated neighbours are not counted as independent (:func:`analysis.intervals.correlation_length`).
    paired : bool, optional
        Row ``s`` of ``a`` and of ``b`` are the same training seed: the seed rows are drawn once for both sides.
        Needs as many rows on each side.

    Raises
    ------
    ValueError
        If a side is not 2-D, the slice counts differ, a value is infinite, every slice is dropped, or an
        option is out of range.
    TypeError
        If ``rng`` is not a ``numpy.random.Generator``.

    Notes
    -----
    Each replicate draws the seed rows of each side with replacement, then slice blocks, the same for both sides;
    the interval is the :math:`(1 \mp \text{level})/2` quantiles of the replicates (percentile interval, [1]_).
    Seeds first: a training seed shifts its model's scores on every slice at once, so it is the top level of
    the hierarchy [2]_; the slices are drawn once per replicate for all rows (a crossed layout, [3]_). With few
    seeds this interval under-covers; the claims use it only where it covers (docs/claims.md).

    References
    ----------
    .. [1] B. Efron and R. J. Tibshirani, *An Introduction to the Bootstrap*, Chapman & Hall, 1993, ch. 13.
    .. [2] A. C. Davison and D. V. Hinkley, *Bootstrap Methods and their Application*, Cambridge
       University Press, 1997, sec. 3.8.
    .. [3] A. B. Owen, "The pigeonhole bootstrap", *Annals of Applied Statistics* 1(2), 386-411, 2007.

    Examples
    --------
    Three trained seeds against a method with one row, on 16 slices:

    >>> gen = np.random.default_rng(0)
    >>> a = 0.80 + 0.01 * gen.standard_normal((3, 16))
    >>> b = 0.70 + 0.01 * gen.standard_normal((1, 16))
    >>> d = bootstrap_difference(a, b, n_boot=500, rng=np.random.default_rng(1))
    >>> round(d.effect, 2), d.lo < d.effect < d.hi, d.n_seeds_a, d.n_seeds_b, d.n_slices
    (0.1, True, 3, 1, 16)
    """
    a = _as_side(a, "a")
    b = _as_side(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must score the same slices: a has {a.shape[1]} slice columns, b has "
                         f"{b.shape[1]} (shapes {a.shape} and {b.shape}); columns are slices, rows are seeds")
    _check_options(n_boot, level)
    rng = _check_rng(rng)

    a, b, n_dropped = _common_slices(a, b)
    n_slices = a.shape[1]
    if paired and a.shape[0] != b.shape[0]:
        raise ValueError(f"paired seeds need as many rows on each side, got {a.shape[0]} and {b.shape[0]}")
    replicates = bootstrap_replicates(a, b, n_boot=n_boot, rng=rng, block=block, paired=paired)
    tail = (1.0 - float(level)) / 2.0
    lo, hi = np.quantile(replicates, [tail, 1.0 - tail])
    return Difference(effect=float(a.mean() - b.mean()), lo=float(lo), hi=float(hi), n_seeds_a=a.shape[0],
                      n_seeds_b=b.shape[0], n_slices=n_slices, n_dropped=n_dropped, n_boot=int(n_boot),
                      level=float(level), mc_lo=quantile_mc_error(replicates, tail),
                      mc_hi=quantile_mc_error(replicates, 1.0 - tail), block=int(block), paired=bool(paired))


def bootstrap_replicates(a: np.ndarray, b: np.ndarray, *, n_boot: int, rng: np.random.Generator, block: int = 1,
                         paired: bool = False) -> np.ndarray:
    """The ``n_boot`` bootstrap replicates of ``mean(a) - mean(b)`` (finite matrices on the same slices), drawn as
    :func:`bootstrap_difference` describes."""
    n_a, n_b, n_slices = a.shape[0], b.shape[0], a.shape[1]
    if n_a == 1 and n_b == 1:
        logger.info("one seed per side: the interval reflects slice variation only")
    block = max(1, min(int(block), n_slices))
    # Resampling with replacement = multinomial counts, for all replicates at once; the order of draws is fixed
    # (seeds of a, seeds of b unless paired, the shared blocks) so that a seed gives one interval.
    count_a = rng.multinomial(n_a, np.full(n_a, 1.0 / n_a), size=n_boot)              # (n_boot, n_a)
    count_b = count_a if paired else rng.multinomial(n_b, np.full(n_b, 1.0 / n_b), size=n_boot)
    n_blocks = -(-n_slices // block)
    count_k = rng.multinomial(n_blocks, np.full(n_blocks, 1.0 / n_blocks), size=n_boot)  # (n_boot, n_blocks)
    count_j = np.repeat(count_k, block, axis=1)[:, :n_slices]                         # each slice: its block's
    per_slice = count_a @ a / n_a - count_b @ b / n_b                                 # (n_boot, n_slices)
    return np.einsum("rj,rj->r", per_slice, count_j) / count_j.sum(axis=1)            # (n_boot,)


def verdict(lo: float, hi: float, *, margin: float) -> str:
    """One of :data:`LABELS` for an interval ``lo <= hi`` oriented so that positive is the claimed direction.

    ``margin >= 0`` is in the metric's units. ``"supported"`` if ``lo > margin``; ``"contradicted"`` if
    ``hi < -margin``; ``"equivalent"`` if ``-margin <= lo`` and ``hi <= margin``; ``"inconclusive"`` otherwise
    (docs/claims.md, "The verdict", says why superiority is tested against the margin rather than zero).

    Examples
    --------
    >>> verdict(0.012, 0.030, margin=0.01)
    'supported'
    >>> verdict(-0.004, 0.006, margin=0.01)
    'equivalent'
    >>> verdict(0.002, 0.030, margin=0.01)
    'inconclusive'
    """
    margin = _check_margin(margin)
    lo, hi = float(lo), float(hi)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"interval bounds must be finite, got [{lo}, {hi}]")
    if lo > hi:
        raise ValueError(f"interval bounds are reversed: lo={lo} > hi={hi}")
    if lo > margin:
        return "supported"
    if hi < -margin:
        return "contradicted"
    if lo >= -margin and hi <= margin:
        return "equivalent"
    return "inconclusive"


def stable_verdict(lo: float, hi: float, *, margin: float, mc_lo: float = 0.0, mc_hi: float = 0.0) -> tuple:
    """:func:`verdict`, unless a bound lies within its Monte-Carlo error of a margin where that would change the label.

    Returns ``(label, close)``: ``close`` is True when moving ``lo`` by ``mc_lo`` or ``hi`` by ``mc_hi`` (either
    way) gives another label; the label is then ``"inconclusive"``, because the bootstrap's own noise, not the data,
    would decide it.

    >>> stable_verdict(-0.004, 0.0099, margin=0.01, mc_hi=0.0003)
    ('inconclusive', True)
    >>> stable_verdict(-0.004, 0.009, margin=0.01, mc_hi=0.0003)
    ('equivalent', False)
    """
    label = verdict(lo, hi, margin=margin)
    for dlo in (-mc_lo, mc_lo):
        for dhi in (-mc_hi, mc_hi):
            if lo + dlo <= hi + dhi and verdict(lo + dlo, hi + dhi, margin=margin) != label:
                return "inconclusive", True
    return label, False


def claim_holds(kind: str, label: str) -> str:
    """``"yes"``, ``"no"`` or ``"unclear"``: whether a claim of ``kind`` (one of :data:`KINDS`) holds, read from a
    :func:`verdict` label (docs/claims.md, "The verdict"); the claim's direction is already in the label.

    Examples
    --------
    >>> claim_holds("better", "equivalent")
    'no'
    >>> claim_holds("not-worse", "equivalent")
    'yes'
    """
    if kind not in _HOLDS_TABLE:
        raise ValueError(f"unknown claim kind {kind!r}; expected one of {KINDS}")
    if label not in LABELS:
        raise ValueError(f"unknown verdict label {label!r}; expected one of {LABELS}")
    return _HOLDS_TABLE[kind][label]


def combine(holds_list: Iterable[str]) -> str:
    """The answer for a claim made of several comparisons (at least one) that must all hold: "yes" if all are
    "yes", "no" if any is "no", "unclear" otherwise.

    Examples
    --------
    >>> combine(["yes", "unclear", "no"])
    'no'
    >>> combine(["yes", "unclear"])
    'unclear'
    """
    answers = list(holds_list)
    if not answers:
        raise ValueError("combine needs at least one comparison; an empty conjunction is not evidence")
    bad = [x for x in answers if x not in HOLDS]
    if bad:
        raise ValueError(f"unknown answers {bad!r}; expected each of {HOLDS}")
    if "no" in answers:
        return "no"
    if all(x == "yes" for x in answers):
        return "yes"
    return "unclear"


def judge(a, b, *, direction: int, margin: float, kind: str, rng: np.random.Generator, n_boot: int = 2000,
          level: float = 0.95) -> dict:
    """Judge one pairwise claim "a is better than / not worse than / equivalent to b".

    ``a``, ``b`` as for :func:`bootstrap_difference`; ``direction`` is ``1`` if a higher score is better (SSIM),
    ``-1`` if lower is (an edge width). Returns the :class:`Difference` fields as a dict with ``effect``, ``lo``,
    ``hi`` oriented (``direction * (mean(a) - mean(b))``, so positive is the claimed direction), plus
    ``verdict``, ``holds``, ``kind``, ``direction`` and ``margin``.

    Examples
    --------
    An edge width (lower is better) of 3 seeds against a method with one row:

    >>> gen = np.random.default_rng(0)
    >>> a = 2.0 + 0.05 * gen.standard_normal((3, 20))
    >>> b = 2.5 + 0.05 * gen.standard_normal((1, 20))
    >>> row = judge(a, b, direction=-1, margin=0.1, kind="better", rng=np.random.default_rng(1), n_boot=500)
    >>> row["verdict"], row["holds"], round(row["effect"], 1)
    ('supported', 'yes', 0.5)
    """
    if direction not in (1, -1) or isinstance(direction, bool):
        raise ValueError(f"direction must be 1 (higher is better) or -1 (lower is better), got {direction!r}")
    if kind not in KINDS:
        raise ValueError(f"unknown claim kind {kind!r}; expected one of {KINDS}")
    margin = _check_margin(margin)
    d = bootstrap_difference(a, b, n_boot=n_boot, level=level, rng=rng)
    if direction == 1:
        effect, lo, hi = d.effect, d.lo, d.hi
    else:
        effect, lo, hi = -d.effect, -d.hi, -d.lo
    label = verdict(lo, hi, margin=margin)
    row = d.as_dict()
    row.update(effect=effect, lo=lo, hi=hi, verdict=label, holds=claim_holds(kind, label), kind=kind,
               direction=int(direction), margin=margin)
    return row
