"""Verdicts on the paper's claims: a paired, hierarchical bootstrap interval and a four-way rule.

Each claim of the TomoGAN paper ("depth 3 beats depth 1", "TomoGAN beats FBP", "a model trained at
another facility works about as well") is reduced to comparisons of two sides, ``a`` and ``b``, scored
by one metric on the same test slices. A side is a matrix ``(n_seeds, n_slices)``: one row per training
seed (a method without training, such as FBP or a tuned classical method, has one row), one column per
test slice, the columns in the same order on both sides.

**Effect.** ``effect = mean(a) - mean(b)``, each mean taken over all seeds and slices of its side, after
dropping every slice that is NaN in any row of either side; :func:`judge` multiplies it by the claim's
direction (``+1``: higher is better for ``a``, ``-1``: lower is better), so that a positive effect always
points the way the claim says.

**Interval.** A percentile bootstrap interval (:func:`bootstrap_difference`) with two stages per replicate:
the seed rows of each side are resampled with replacement, independently for the two sides (different
trainings), then the slice columns are resampled with replacement, the *same* columns for both sides
(the comparison is paired on slices). With one seed per side the seed stage is trivial and the interval
reflects slice variation only; the counts returned say so.

**Verdict rule.** ``margin >= 0`` is the smallest difference, in the metric's units, that would matter
(e.g. 0.01 SSIM). With ``[lo, hi]`` the interval oriented so that positive is the claimed direction,
:func:`verdict` returns exactly one label:

==================  =================================  ================================================
label               condition                          reading
==================  =================================  ================================================
``"supported"``     ``lo > margin``                    better by more than the margin
``"contradicted"``  ``hi < -margin``                   worse by more than the margin
``"equivalent"``    ``-margin <= lo`` and              any difference lies within the margin
                    ``hi <= margin``
``"inconclusive"``  otherwise                          the interval reaches across ``+margin`` or
                                                       ``-margin``: the data cannot tell
==================  =================================  ================================================

The four conditions are mutually exclusive and cover every interval, so no order of precedence is needed.
Superiority is judged against the margin (``lo > margin``), not against zero (``lo > 0``): a difference
that is real but smaller than the margin is no support for a claim that one method *beats* another, and
testing against zero would let an interval such as ``[0.002, 0.008]`` with ``margin = 0.01`` be both
"supported" and "equivalent". With ``margin = 0`` the rule reduces to the ordinary two-sided test
(supported iff ``lo > 0``, contradicted iff ``hi < 0``), and "equivalent" is then out of reach.

**Claims.** :func:`claim_holds` reads a label according to the form of the claim:

================  ==================  ====================================  ================
kind              ``"yes"``           ``"no"``                              ``"unclear"``
================  ==================  ====================================  ================
``"better"``      supported           contradicted or equivalent            inconclusive
``"not-worse"``   supported or        contradicted                          inconclusive
                  equivalent
``"equivalent"``  equivalent          supported or contradicted             inconclusive
================  ==================  ====================================  ================

The mapping uses the label only, so it is conservative: an "inconclusive" interval such as ``[-0.005, 0.03]``
with ``margin = 0.01`` excludes inferiority (``lo > -margin``) but is still read as "unclear" for a
"not-worse" claim, because it does not tell equivalence from superiority. A composite claim ("d=3 is the
best of {1, 3, 5, 7}", "TomoGAN beats FBP at every dose") is the conjunction of its pairwise comparisons:
:func:`combine` says "yes" if all are "yes", "no" if any is "no", and "unclear" otherwise.

References
----------
.. [1] B. Efron and R. J. Tibshirani, *An Introduction to the Bootstrap*, Chapman & Hall, 1993, ch. 13
   (percentile intervals).
.. [2] A. C. Davison and D. V. Hinkley, *Bootstrap Methods and their Application*, Cambridge University
   Press, 1997, sec. 3.8 (hierarchical data).
.. [3] A. B. Owen, "The pigeonhole bootstrap", *Annals of Applied Statistics* 1(2), 386-411, 2007
   (resampling rows and columns of a crossed layout).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Iterable

import numpy as np

from analysis.intervals import quantile_mc_error

__all__ = ["LABELS", "NOT_RUN", "NOT_MEASURED", "NOT_TESTED", "AT_CEILING", "KINDS", "HOLDS", "Difference", "bootstrap_difference", "bootstrap_replicates", "verdict",
           "stable_verdict", "claim_holds", "combine",
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

# claim_holds: kind -> label -> answer (see the module docstring's table)
_HOLDS_TABLE = {
    "better": {"supported": "yes", "contradicted": "no", "equivalent": "no", "inconclusive": "unclear"},
    "not-worse": {"supported": "yes", "contradicted": "no", "equivalent": "yes", "inconclusive": "unclear"},
    "equivalent": {"supported": "no", "contradicted": "no", "equivalent": "yes", "inconclusive": "unclear"},
}


@dataclass(frozen=True)
class Difference:
    """A difference of means with its bootstrap interval (the result of :func:`bootstrap_difference`).

    Attributes
    ----------
    effect : float
        ``mean(a) - mean(b)`` over the kept slices.
    lo, hi : float
        Bounds of the percentile interval.
    n_seeds_a, n_seeds_b : int
        Rows (training seeds) of each side; 1 on both sides means the interval reflects slice variation only.
    n_slices : int
        Slices kept (not NaN in any row of either side).
    n_dropped : int
        Slices dropped for a NaN.
    n_boot : int
        Bootstrap replicates.
    level : float
        Coverage the interval aims at.
    mc_lo, mc_hi : float
        Monte-Carlo standard error of each bound (:func:`analysis.intervals.quantile_mc_error`): another
        stream of the same ``n_boot`` replicates moves a bound by about this much.
    block : int
        Slices resampled together (1: each slice on its own).
    paired : bool
        Whether the seed rows of both sides were resampled together (seeds that share a warm start).
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
        One metric (e.g. SSIM) per training seed (rows) and test slice (columns) for each side. Columns
        are the same slices in the same order on both sides. A method without training has one row.
        NaN marks a missing score: that slice is dropped from both sides.
    n_boot : int, optional
        Bootstrap replicates.
    level : float, optional
        Coverage aimed at by the interval, in (0, 1).
    rng : numpy.random.Generator
        Random source of the resampling; the same seed gives the same interval.
    block : int, optional
        Slices resampled together: consecutive columns are cut into blocks of ``block`` (the last may be shorter)
        and whole blocks are drawn, so that neighbouring slices that move together are not counted as
        independent (use the correlation length, :func:`analysis.intervals.correlation_length`).
    paired : bool, optional
        Row ``s`` of ``a`` and row ``s`` of ``b`` are the same training seed (a shared warm start, one data
        order): the seed rows are drawn once for both sides. Needs as many rows on each side.

    Returns
    -------
    Difference
        ``effect``, interval ``lo``/``hi``, the counts ``n_seeds_a``, ``n_seeds_b``, ``n_slices`` (kept),
        ``n_dropped``, and ``n_boot``, ``level``.

    Raises
    ------
    ValueError
        If a side is not 2-D, the slice counts differ, a value is infinite, every slice is dropped, or an
        option is out of range.
    TypeError
        If ``rng`` is not a ``numpy.random.Generator``.

    Notes
    -----
    The effect is the mean of ``a`` minus the mean of ``b`` over the slices kept. Replicate :math:`r` draws the
    seed rows of each side with replacement (seeds first; once for both sides when ``paired``), then slice
    blocks, the same for both sides, and recomputes the effect; the interval is the :math:`(1 \mp
    \text{level})/2` quantiles of the replicates (percentile interval, [1]_).

    Seeds first: a training seed shifts its model's scores on every slice at once, so it is the top level of
    the hierarchy [2]_; the slices, shared by both sides and every seed, are drawn once per replicate for all
    rows (a crossed layout, [3]_). With few seeds the percentile interval under-covers (the bootstrap spread of
    a mean of :math:`S` rows is :math:`(S-1)/S` of its variance): :func:`analysis.intervals.simulate_coverage`
    measures it, and the claims use this interval only where it covers (docs/claims.md).

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
    """The ``n_boot`` bootstrap replicates of ``mean(a) - mean(b)`` (finite matrices on the same slices), as
    :func:`bootstrap_difference` draws them: seeds first (once for both sides if ``paired``), then blocks of
    ``block`` consecutive slices, the same blocks for both sides."""
    n_a, n_b, n_slices = a.shape[0], b.shape[0], a.shape[1]
    if n_a == 1 and n_b == 1:
        logger.info("one seed per side: the interval reflects slice variation only")
    block = max(1, min(int(block), n_slices))
    # Resampling with replacement = multinomial counts of each row/column, drawn for all replicates at once.
    # Order of draws (fixed, for determinism): seeds of a, seeds of b (unless paired), then the shared blocks.
    count_a = rng.multinomial(n_a, np.full(n_a, 1.0 / n_a), size=n_boot)              # (n_boot, n_a)
    count_b = count_a if paired else rng.multinomial(n_b, np.full(n_b, 1.0 / n_b), size=n_boot)
    n_blocks = -(-n_slices // block)
    count_k = rng.multinomial(n_blocks, np.full(n_blocks, 1.0 / n_blocks), size=n_boot)  # (n_boot, n_blocks)
    count_j = np.repeat(count_k, block, axis=1)[:, :n_slices]                         # each slice: its block's
    per_slice = count_a @ a / n_a - count_b @ b / n_b                                 # (n_boot, n_slices)
    return np.einsum("rj,rj->r", per_slice, count_j) / count_j.sum(axis=1)            # (n_boot,)


def verdict(lo: float, hi: float, *, margin: float) -> str:
    """One of four labels for an interval oriented so that positive is the claimed direction.

    Parameters
    ----------
    lo, hi : float
        Interval bounds, ``lo <= hi``.
    margin : float
        Smallest difference that matters, ``>= 0``, in the metric's units.

    Returns
    -------
    label : {"supported", "contradicted", "equivalent", "inconclusive"}
        ``"supported"`` if ``lo > margin``; ``"contradicted"`` if ``hi < -margin``; ``"equivalent"`` if
        ``-margin <= lo`` and ``hi <= margin``; ``"inconclusive"`` otherwise (see the module docstring for
        why superiority is tested against the margin rather than zero).

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
    """Whether a claim of the given form holds, read from a verdict label.

    Parameters
    ----------
    kind : {"better", "not-worse", "equivalent"}
        Superiority, non-inferiority or equivalence (the claim's direction is already in the label).
    label : {"supported", "contradicted", "equivalent", "inconclusive"}
        The output of :func:`verdict`.

    Returns
    -------
    {"yes", "no", "unclear"}
        From the module docstring's table: "better" holds iff supported (no if contradicted or
        equivalent), "not-worse" iff supported or equivalent (no if contradicted), "equivalent" iff
        equivalent (no if supported or contradicted); inconclusive is always "unclear".

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
    """The answer for a composite claim made of several comparisons that must all hold.

    Parameters
    ----------
    holds_list : iterable of {"yes", "no", "unclear"}
        One answer per pairwise comparison (at least one).

    Returns
    -------
    {"yes", "no", "unclear"}
        "yes" if all are "yes", "no" if any is "no", "unclear" otherwise.

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

    Parameters
    ----------
    a, b : array_like, shape (n_seeds, n_slices)
        Scores of the two sides on the same slices (see :func:`bootstrap_difference`).
    direction : {1, -1}
        ``1`` if a higher score is better (SSIM, PSNR), ``-1`` if lower is better (an edge width, a noise level).
    margin : float
        Smallest difference that matters, ``>= 0``, in the metric's units.
    kind : {"better", "not-worse", "equivalent"}
        Form of the claim (see :func:`claim_holds`).
    rng : numpy.random.Generator
        Random source of the bootstrap.
    n_boot : int, optional
        Bootstrap replicates.
    level : float, optional
        Coverage of the interval.

    Returns
    -------
    row : dict
        ``effect``, ``lo``, ``hi`` (oriented: ``direction * (mean(a) - mean(b))`` and its interval, so
        positive is the claimed direction), ``verdict``, ``holds``, ``kind``, ``direction``, ``margin``,
        ``n_seeds_a``, ``n_seeds_b``, ``n_slices``, ``n_dropped``, ``n_boot``, ``level``.

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
