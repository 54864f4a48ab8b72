"""Trained long enough to tell? The ablation's validation curves against training steps, and their ranking.

Reads the training logs of every run of one comparison group (every seed) and reports, per validated step (or
CPU-second mark, for a compute-matched group), each run's mean, lowest and highest validation metric over its
seeds and their ranking; then when that ranking last changed (:func:`ranking_stability`), how each pair of runs
stood over the judged stretch (:func:`pairs_settled`) and the group's ``state`` (:func:`state`). What each reading
means and why: docs/claims.md, "Trained long enough to tell?".

Command::

    python -m analysis.learning_curve OUT.csv --runs JSON --logs LOG.csv [LOG.csv ...] [--metric val_ssim]

``--runs`` is the plan's run table (:meth:`study.Plan.run_table`), restricted to the group; each
log is a run's ``log.csv`` (:mod:`tomogan_core.train`), named by its folder. Writes the long table ``OUT.csv``
(step, run, mean, lo, hi, n_seeds, rank) and ``OUT`` with ``_summary.csv``: the final ranking, ``stable_since``,
``stable``, the steps trained, and each pair's reading (``pairs``; as JSON in ``pairs_json``, which the claims read).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Dict

import pandas as pd

from simulate.io import read_table
from simulate.plumbing import InputError, cli, write_csv

__all__ = ["curves", "training_spent", "stretch_start", "ranking_stability", "pairs_settled", "format_pairs", "main"]

logger = logging.getLogger(__name__)

STABLE_FRACTION = 0.25  # the ranking must hold over at least this last share of training
WINDOW = 4              # validations the curves are averaged over for the pairwise reading
MARGIN = 0.01           # validation SSIM: closer than this, two runs are equivalent (claims.margins' ssim)
MIN_VALIDATIONS = 4     # fewer validations inside the judged stretch cannot show a ranking holding: "insufficient"


def curves(logs: Dict[str, pd.DataFrame], runs: pd.DataFrame, metric: str = "val_ssim",
           axis: str = "step") -> pd.DataFrame:
    """Validation curves of each base run over its seeds.

    ``logs`` maps a run name to its log.csv; ``runs`` has columns ``run`` and ``base``; ``axis`` is ``step`` or
    ``budget_mark`` (CPU-seconds of a budget). Returns columns ``step`` (the ``axis`` value), ``base``, ``mean``,
    ``lo``, ``hi``, ``n_seeds``, ``rank`` (1 = best by the mean), only at steps every run was validated at.

    Examples
    --------
    >>> logs = {"a-s0": pd.DataFrame({"step": [1, 2], "val_ssim": [0.5, 0.7]}),
    ...         "b-s0": pd.DataFrame({"step": [1, 2], "val_ssim": [0.6, 0.65]})}
    >>> runs = pd.DataFrame({"run": ["a-s0", "b-s0"], "base": ["a", "b"]})
    >>> curves(logs, runs)[["step", "base", "rank"]].values.tolist()
    [[1, 'a', 2], [1, 'b', 1], [2, 'a', 1], [2, 'b', 2]]
    """
    base_of = dict(zip(runs["run"], runs["base"]))
    parts = []
    for name, log in logs.items():
        if name not in base_of:
            raise ValueError(f"run '{name}' is not in the run table")
        for column in (metric, axis):
            if column not in log:
                raise ValueError(f"the log of '{name}' has no column '{column}'")
        val = log.dropna(subset=[metric, axis])[[axis, metric]].rename(columns={axis: "step"})
        val = val.assign(base=base_of[name], run=name)
        parts.append(val)
    table = pd.concat(parts, ignore_index=True)
    grouped = table.groupby(["step", "base"])[metric].agg(mean="mean", lo="min", hi="max", n_seeds="count")
    grouped = grouped.reset_index()
    complete = grouped.groupby("step")["base"].transform("count") == grouped["base"].nunique()
    grouped = grouped[complete].copy()
    grouped["rank"] = grouped.groupby("step")["mean"].rank(ascending=False, method="min").astype(int)
    return grouped.sort_values(["step", "base"]).reset_index(drop=True)


def stretch_start(last_step: int, start: int, fraction: float) -> float:
    """The first step of the stretch judged: the last ``fraction`` of the steps after ``start`` (a warm start's end).

    >>> stretch_start(600, 0, 0.25), stretch_start(400, 300, 0.5)
    (450.0, 350.0)
    """
    return start + (last_step - start) * (1 - fraction)


def ranking_stability(table: pd.DataFrame, *, fraction: float = STABLE_FRACTION, start: int = 0) -> dict:
    """When the ranking of :func:`curves` stopped changing, and whether that covers the last ``fraction`` of the
    steps after ``start`` (the end of a warm start; 0 without one).

    Returns ``{"final_ranking": "b > a", "stable_since": step, "last_step": step, "stable": bool}``.

    Examples
    --------
    >>> t = pd.DataFrame({"step": [1, 1, 2, 2, 3, 3, 4, 4], "base": ["a", "b"] * 4, "rank": [2, 1, 1, 2, 1, 2, 1, 2]})
    >>> ranking_stability(t, fraction=0.5)
    {'final_ranking': 'a > b', 'stable_since': 2, 'last_step': 4, 'stable': True}
    """
    if table.empty:
        raise ValueError("no step at which every run was validated")
    order = {step: tuple(g.sort_values(["rank", "base"])["base"]) for step, g in table.groupby("step")}
    steps = sorted(order)
    final = order[steps[-1]]
    since = steps[-1]
    for step in reversed(steps):
        if order[step] != final:
            break
        since = step
    return {"final_ranking": " > ".join(final), "stable_since": int(since), "last_step": int(steps[-1]),
            "stable": bool(since <= stretch_start(steps[-1], start, fraction))}


def pairs_settled(table: pd.DataFrame, *, fraction: float = STABLE_FRACTION, window: int = WINDOW,
                  margin: float = MARGIN, start: int = 0) -> list:
    """How each pair of runs stood over the last ``fraction`` of training after ``start``, on curves smoothed over
    ``window`` validations after ``start``.

    One dict per pair ``(a, b)``, best final smoothed mean first: ``state`` ``"ordered"`` (``a`` stayed ahead),
    ``"equivalent"`` (within ``margin``) or ``"unsettled"``; ``gap`` the final smoothed difference.

    Examples
    --------
    >>> t = pd.DataFrame({"step": [1, 2, 3, 4] * 3, "base": ["a"] * 4 + ["b"] * 4 + ["c"] * 4,
    ...                   "mean": [.5, .8, .8, .8] + [.6, .6, .6, .6] + [.55, .81, .79, .805]})
    >>> [(p["a"], p["b"], p["state"]) for p in pairs_settled(t, fraction=0.5, window=1, margin=0.02)]
    [('c', 'a', 'equivalent'), ('c', 'b', 'ordered'), ('a', 'b', 'ordered')]
    """
    wide = table.pivot(index="step", columns="base", values="mean").sort_index()
    wide = wide[wide.index > start] if (wide.index > start).any() else wide.iloc[-1:]
    smooth = wide.rolling(window, min_periods=1).mean()
    last = smooth[smooth.index >= stretch_start(smooth.index[-1], start, fraction)]
    names = list(smooth.iloc[-1].sort_values(ascending=False).index)
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            d = last[a] - last[b]
            state = "ordered" if (d > 0).all() else "equivalent" if (d.abs() <= margin).all() else "unsettled"
            out.append({"a": a, "b": b, "state": state, "gap": float(d.iloc[-1])})
    return out


def judged_validations(table: pd.DataFrame, *, fraction: float = STABLE_FRACTION, start: int = 0) -> int:
    """How many validated steps lie inside the judged stretch (the last ``fraction`` of the steps after ``start``).

    >>> t = pd.DataFrame({"step": [300, 325, 350, 375]})
    >>> judged_validations(t, fraction=0.25, start=300)
    1
    """
    steps = sorted(set(table["step"]))
    first = stretch_start(steps[-1], start, fraction)
    return sum(1 for step in steps if step >= first and step > start)


def state(pairs: list, n_judged: int, min_validations: int = MIN_VALIDATIONS) -> str:
    """``insufficient`` with fewer than ``min_validations`` validations judged, else ``unsettled`` if a pair crossed by
    more than the margin, else ``settled``.

    >>> state([{"state": "ordered"}], 1), state([{"state": "ordered"}], 4), state([{"state": "unsettled"}], 4)
    ('insufficient', 'settled', 'unsettled')
    """
    if n_judged < min_validations:
        return "insufficient"
    return "unsettled" if any(p["state"] == "unsettled" for p in pairs) else "settled"


SIGNS = {"ordered": ">", "equivalent": "~", "unsettled": "?"}  # how the summary writes each pair's state


def training_spent(logs: Dict[str, pd.DataFrame], runs: pd.DataFrame) -> str:
    """Each run's median steps and CPU-seconds over its seeds (the last row of each log), as the summary's text.

    >>> logs = {"a-s0": pd.DataFrame({"step": [10, 20], "cpu_s": [1.0, 2.1]}),
    ...         "a-s1": pd.DataFrame({"step": [10, 22], "cpu_s": [1.0, 2.3]})}
    >>> training_spent(logs, pd.DataFrame({"run": ["a-s0", "a-s1"], "base": ["a", "a"]}))
    'a: 21 steps, 2.2 CPU-s'
    """
    base_of = dict(zip(runs["run"], runs["base"]))
    last = pd.DataFrame([{"base": base_of[name], "steps": log["step"].iloc[-1],
                          "cpu_s": log["cpu_s"].iloc[-1] if "cpu_s" in log else float("nan")}
                         for name, log in logs.items() if len(log)])
    if last.empty:
        return ""
    med = last.groupby("base")[["steps", "cpu_s"]].median()
    return "; ".join(f"{base}: {row.steps:.0f} steps, {row.cpu_s:.1f} CPU-s" for base, row in med.iterrows())


def format_pairs(pairs: list) -> str:
    """The summary's ``pairs`` text of :func:`pairs_settled`'s result.

    >>> format_pairs([{"a": "x", "b": "y", "state": "ordered", "gap": 0.0123}])
    'x > y (+0.012)'
    """
    return "; ".join(f"{p['a']} {SIGNS[p['state']]} {p['b']} ({p['gap']:+.3f})" for p in pairs)


@cli
def main(argv=None):
    p = argparse.ArgumentParser(description="Validation curves of a group of runs, and when their ranking settled.")
    p.add_argument("out", help="CSV to write (a _summary.csv beside it)")
    p.add_argument("--runs", required=True, help="the plan's run table of the group, as JSON")
    p.add_argument("--logs", nargs="+", required=True, help="each run's log.csv (the folder names the run)")
    p.add_argument("--metric", default="val_ssim", choices=["val_ssim", "val_psnr"])
    p.add_argument("--fraction", type=float, default=STABLE_FRACTION)
    p.add_argument("--window", type=int, default=WINDOW, help="validations the pairwise reading averages over")
    p.add_argument("--margin", type=float, default=MARGIN, help="closer than this, two runs are equivalent")
    args = p.parse_args(argv)
    try:
        runs = pd.DataFrame(json.loads(args.runs))
    except ValueError as exc:
        raise InputError("--runs", f"not JSON: {exc}") from None
    logs = {Path(path).parent.name: read_table(path, what="training log", need=("step",)) for path in args.logs}
    budget = "cpu_budget_s" in runs and bool((runs["cpu_budget_s"].fillna(0) > 0).all())
    axis = "budget_mark" if budget else "step"  # a compute-matched group is compared at equal CPU-seconds
    start = 0 if budget else int(runs["mse_warmup"].fillna(0).max()) if "mse_warmup" in runs else 0  # one warm start
    try:
        table = curves(logs, runs, args.metric, axis)
        summary = ranking_stability(table, fraction=args.fraction, start=start)
        pairs = pairs_settled(table, fraction=args.fraction, window=args.window, margin=args.margin, start=start)
    except ValueError as exc:
        raise InputError(args.logs[0], str(exc)) from None
    n_judged = judged_validations(table, fraction=args.fraction, start=start)
    verdict = state(pairs, n_judged)
    out = write_csv(table.assign(metric=args.metric), args.out)
    write_csv(pd.DataFrame([dict(summary, settled=verdict == "settled", state=verdict, n_judged=n_judged,
                                 pairs=format_pairs(pairs), pairs_json=json.dumps(pairs),
                                 metric=args.metric, fraction=args.fraction, window=args.window, margin=args.margin,
                                 warm_start=start, axis="CPU-seconds" if budget else "steps",
                                 training=training_spent(logs, runs),
                                 runs=" ".join(sorted(set(table["base"]))))]),
              out.with_name(out.stem + "_summary.csv"))
    logger.info("%s: %s, stable since step %d of %d (%s)", args.metric, summary["final_ranking"],
                summary["stable_since"], summary["last_step"], "stable" if summary["stable"] else "NOT stable")


if __name__ == "__main__":
    main()
