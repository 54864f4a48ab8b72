"""The paper's claims, judged: one row per comparison and metric, with an effect, a 95 % interval and a verdict.

The study plan (:meth:`tomogan_core.study.Plan.claim_comparisons`) turns each claim of the config's ``claims``
section into pairwise comparisons of two sides, ``a`` and ``b``. A side selects per-slice metric rows
(:mod:`analysis.metrics`) by dataset, dose, method and model, one selection per training seed. This module
builds each side's matrix ``(n_seeds, n_slices)`` of one metric on the test slices both sides share, and
:func:`analysis.verdicts.judge` gives the oriented effect, its hierarchical bootstrap interval (seeds, then
slices) and the verdict against the metric's margin. A claim of several comparisons holds if each does
(:func:`analysis.verdicts.combine`).

The speed claim is judged on the timing table (:mod:`analysis.timing`): the speed-up is SIRT's time per slice
over FBP+TomoGAN's; its range runs from the slowest FBP+TomoGAN against the fastest SIRT repeat to the reverse.
It is "supported" if even the lower end reaches the claimed factor, "contradicted" if even the upper end falls
short of it, "inconclusive" otherwise.

Command::

    python -m analysis.claims results/claims/claims.csv --spec SPEC.json \\
        --metrics results/metrics/*/{conventional,tomogan}.csv [--timing results/timing/timing.csv]

writes ``claims.csv`` (every comparison and metric) and ``claims.md`` beside it (per claim: whether it holds on
each metric, then its comparisons). ``SPEC`` (JSON, or ``@file``) holds ``comparisons``, ``margins``,
``bootstrap`` (``n``, ``level``, ``seed``), ``config_hash`` and an optional ``caveat``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
import pandas as pd

from analysis.metrics import DIRECTIONS  # which way is better, per metric
from analysis.verdicts import combine, judge
from simulate.io import read_table
from simulate.plumbing import InputError, cli, json_argument, write_csv, write_text

__all__ = ["side_matrix", "judge_comparisons", "judge_speed", "summarise_claims", "render", "main"]

logger = logging.getLogger(__name__)

NOT_RUN = "not run"  # the config trains none of the models a claim compares
NOT_MEASURED = "not measured"  # the metric does not apply on these slices (e.g. no edge large enough)


def read_metrics(paths: Sequence) -> pd.DataFrame:
    """Per-slice metric CSVs (:mod:`analysis.metrics`) as one table; ``model`` is ``""`` where none."""
    table = pd.concat([read_table(p, what="per-slice metrics table", need=("dataset", "dose", "method", "slice"))
                       for p in paths], ignore_index=True)
    table["model"] = table["model"].astype(object).fillna("").astype(str) if "model" in table else ""
    return table


def _select(table: pd.DataFrame, row: dict) -> pd.DataFrame:
    sel = (table["dataset"] == row["dataset"]) & (table["dose"] == row["dose"]) & (table["method"] == row["method"])
    if row.get("model") is not None:
        sel &= table["model"] == row["model"]
    return table[sel]


def side_matrix(table: pd.DataFrame, side: dict, metric: str, slices: Optional[Sequence[int]] = None):
    """One side's scores, shape ``(n_seeds, n_slices)``, columns in the order of ``slices`` (default: sorted union).

    Returns ``(matrix, slices)``. Raises ValueError naming the selection that has no rows, or a metric the
    table lacks.
    """
    if metric not in table:
        raise ValueError(f"no column '{metric}' in the per-slice metrics")
    picked = []
    for row in side["rows"]:
        sel = _select(table, row)
        if sel.empty:
            raise ValueError(f"no per-slice rows for {row}")
        picked.append(sel.groupby("slice")[metric].mean())
    if slices is None:
        slices = sorted(set().union(*(p.index for p in picked)))
    return np.array([p.reindex(slices).to_numpy(float) for p in picked]), list(slices)


def judge_comparisons(comparisons: List[dict], table: pd.DataFrame, *, margins: dict, n_boot: int,
                      level: float, seed: int) -> List[dict]:
    """Judge every (comparison, metric) of the table's data; a comparison without sides is "not run"."""
    rng = np.random.default_rng(seed)
    rows = []
    for comp in comparisons:
        base = {k: comp[k] for k in ("claim", "text", "kind", "part")}
        if "factor" in comp:
            continue
        if "a" not in comp:
            rows.append(dict(base, metric="", verdict=NOT_RUN, holds="n/a"))
            continue
        for metric in comp["metrics"]:
            if metric not in DIRECTIONS:
                raise ValueError(f"claim '{comp['claim']}': no direction is known for metric '{metric}'")
            if metric not in margins:
                raise ValueError(f"claim '{comp['claim']}': metric '{metric}' has no margin in claims.margins")
            b, slices = side_matrix(table, comp["b"], metric)
            a, _ = side_matrix(table, comp["a"], metric, slices)
            if not (np.isfinite(a).all(axis=0) & np.isfinite(b).all(axis=0)).any():
                rows.append(dict(base, metric=metric, a=comp["a"]["label"], b=comp["b"]["label"],
                                 verdict=NOT_MEASURED, holds="n/a"))
                continue
            result = judge(a, b, direction=DIRECTIONS[metric], margin=float(margins[metric]), kind=comp["kind"],
                           rng=rng, n_boot=n_boot, level=level)
            rows.append(dict(base, metric=metric, a=comp["a"]["label"], b=comp["b"]["label"],
                             a_models=" ".join(r["model"] or r["method"] for r in comp["a"]["rows"]),
                             b_models=" ".join(r["model"] or r["method"] for r in comp["b"]["rows"]),
                             **{k: result[k] for k in ("effect", "lo", "hi", "margin", "verdict", "holds",
                                                       "n_seeds_a", "n_seeds_b", "n_slices", "level")}))
    return rows


def judge_speed(comp: dict, timing: pd.DataFrame) -> dict:
    """The speed claim on the timing table: SIRT's time over FBP+TomoGAN's, with its range over the repeats."""
    from analysis.timing import FBP_TOMOGAN, sirt_label

    base = {k: comp[k] for k in ("claim", "text", "kind", "part")}
    by = timing.set_index("method")
    sirt = sirt_label(comp["sirt_iter"])
    for name in (FBP_TOMOGAN, sirt):
        if name not in by.index:
            raise ValueError(f"the timing table has no row '{name}'")
    fast, slow = by.loc[FBP_TOMOGAN], by.loc[sirt]
    ratio = float(slow["ms_per_slice"] / fast["ms_per_slice"])
    lo = float(slow.get("ms_per_slice_min", np.nan) / fast.get("ms_per_slice_max", np.nan))
    hi = float(slow.get("ms_per_slice_max", np.nan) / fast.get("ms_per_slice_min", np.nan))
    factor = float(comp["factor"])
    label = ("supported" if lo >= factor else "contradicted" if hi < factor else "inconclusive") \
        if np.isfinite([lo, hi]).all() else ("supported" if ratio >= factor else "contradicted")
    holds = {"supported": "yes", "contradicted": "no"}.get(label, "unclear")
    device = f"{fast.get('device', '')}, {fast.get('cpu', '')}".strip(", ")
    return dict(base, metric="speedup", a=FBP_TOMOGAN, b=sirt, a_models=FBP_TOMOGAN, b_models=sirt, effect=ratio,
                lo=lo, hi=hi, margin=factor, verdict=label, holds=holds, n_slices=int(fast.get("slices", 0)),
                level=np.nan, device=device)


def summarise_claims(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (claim, metric): whether it holds over all its comparisons, and how many were judged."""
    out = []
    for (claim, metric), grp in rows.groupby(["claim", "metric"], sort=False):
        seeds = pd.concat([grp.get("n_seeds_a", pd.Series(dtype=float)), grp.get("n_seeds_b", pd.Series(dtype=float))])
        judged = grp[~grp["verdict"].isin([NOT_RUN, NOT_MEASURED])]
        out.append({"claim": claim, "text": grp["text"].iloc[0], "kind": grp["kind"].iloc[0], "metric": metric,
                    "holds": combine(judged["holds"]) if len(judged) else "n/a",
                    "seeds": float(seeds.max()) if seeds.notna().any() else np.nan,
                    "comparisons": len(grp), "verdicts": ", ".join(f"{v} {n}" for v, n in
                                                                   grp["verdict"].value_counts().items())})
    return pd.DataFrame(out)


def _fmt(x, digits=3):
    return "" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{digits}g}"


def training_line(training: dict) -> str:
    """How the compared models were trained, in one sentence (``training``: ``max_iter``, ``mse_warmup``, ``seeds``).

    >>> training_line({"max_iter": 375, "mse_warmup": 300, "seeds": [0, 1, 2]})
    'Trained models: 375 steps each, the first 300 with pixel MSE alone (a warm start), 3 seeds.'
    >>> training_line({"max_iter": 8000, "mse_warmup": 0, "seeds": [0]})
    'Trained models: 8000 steps each, 1 seed.'
    """
    if not training:
        return ""
    warm = int(training.get("mse_warmup") or 0)
    seeds = len(training.get("seeds", [])) or 1
    return (f"Trained models: {int(training['max_iter'])} steps each"
            + (f", the first {warm} with pixel MSE alone (a warm start)" if warm else "")
            + f", {seeds} seed{'s' if seeds > 1 else ''}.")


def render(rows: pd.DataFrame, *, config_hash: str = "", caveat: str = "", learning=None,
           training: Optional[dict] = None) -> str:
    """claims.md: the rule, how the models were trained (``training``), whether the ablation was trained long enough
    (``learning``: learning-curve summaries), then per claim whether it holds on each metric and each comparison's
    numbers."""
    text = []
    if caveat:
        text += [f"**{caveat}**", ""]
    text += ["Each comparison is a paired difference a - b on the same test slices, oriented so that a positive "
             "effect is the direction the claim states, with a 95 % bootstrap interval over training seeds, then "
             "slices (analysis/verdicts.py). Verdict: *supported* if the whole interval lies above the margin, "
             "*contradicted* if below minus the margin, *equivalent* if inside plus or minus the margin, "
             "*inconclusive* otherwise. A claim holds if each of its comparisons does, read by its kind "
             "(better: supported; not-worse: supported or equivalent; equivalent: equivalent). "
             f"Config hash `{config_hash}`.", ""]
    if training:
        text += [training_line(training), ""]
    if learning is not None and len(learning):
        text += ["**Trained long enough to tell?** The ablation's runs ranked by validation metric (mean over "
                 "seeds) at each validated step (analysis/learning_curve.py): the ranking at the end, the step since "
                 "which it has not changed, and whether that covers the last quarter of training after any warm "
                 "start (`stable`); and, "
                 "on curves smoothed over a few validations, whether every pair of runs stayed in order (>) or "
                 "within the margin (~) over that stretch (`settled`; ? marks a pair that crossed).", "",
                 learning[[c for c in ("group", "metric", "final_ranking", "stable_since", "last_step", "stable",
                                       "settled", "pairs") if c in learning]].to_markdown(index=False), ""]
    summary = summarise_claims(rows)
    for claim, grp in rows.groupby("claim", sort=False):
        first = grp.iloc[0]
        holds = summary[summary["claim"] == claim]
        text += [f"### {claim}: {first['text']}", "",
                 "Holds (" + first["kind"] + "): " + "; ".join(f"{m or 'n/a'}: **{h}**" for m, h in
                                                             zip(holds["metric"], holds["holds"])), ""]
        table = pd.DataFrame({
            "comparison": grp["part"], "metric": grp["metric"],
            "effect [95 % interval]": [f"{_fmt(e)} [{_fmt(lo)}, {_fmt(hi)}]" if np.isfinite(e) else ""
                                       for e, lo, hi in zip(grp.get("effect", np.nan), grp.get("lo", np.nan),
                                                            grp.get("hi", np.nan))],
            "margin": [_fmt(m) for m in grp.get("margin", np.nan)], "verdict": grp["verdict"],
            "seeds (a, b)": [f"{int(x)}, {int(y)}" if np.isfinite([x, y]).all() else ""
                             for x, y in zip(grp.get("n_seeds_a", np.nan), grp.get("n_seeds_b", np.nan))],
            "slices": [str(int(s)) if np.isfinite(s) else "" for s in grp.get("n_slices", np.nan)]})
        text += [table.to_markdown(index=False), ""]
    return "\n".join(text)


def _load_spec(text: str) -> dict:
    spec, where = json_argument(text, flag="--spec")
    missing = {"comparisons", "margins", "bootstrap"} - set(spec if isinstance(spec, dict) else {})
    if missing:
        raise InputError(where, f"lacks {sorted(missing)}")
    return spec


@cli
def main(argv=None):
    p = argparse.ArgumentParser(description="Judge the paper's claims from the per-slice metrics (and timing).")
    p.add_argument("out", help="claims CSV to write (claims.md beside it)")
    p.add_argument("--spec", required=True, help="the claims' comparisons, margins and bootstrap settings as JSON "
                   "(or @FILE)")
    p.add_argument("--metrics", nargs="+", required=True, help="per-slice metric CSVs")
    p.add_argument("--timing", help="the timing table (the speed claim)")
    p.add_argument("--learning", nargs="*", default=[], help="learning-curve summaries (analysis.learning_curve): "
                   "whether the ablation's ranking had settled when training stopped")
    args = p.parse_args(argv)
    spec = _load_spec(args.spec)
    table = read_metrics(args.metrics)
    boot = spec["bootstrap"]
    try:
        rows = judge_comparisons(spec["comparisons"], table, margins=spec["margins"], n_boot=int(boot["n"]),
                                 level=float(boot["level"]), seed=int(boot["seed"]))
    except ValueError as exc:
        raise InputError(args.metrics[0] if len(args.metrics) == 1 else "--metrics", str(exc)) from None
    for comp in spec["comparisons"]:
        if "factor" in comp:
            if not args.timing:
                raise InputError("--timing", f"claim '{comp['claim']}' needs the timing table")
            try:
                rows.append(judge_speed(comp, read_table(args.timing, what="timing table", need=("method",))))
            except ValueError as exc:
                raise InputError(args.timing, str(exc)) from None
    order = {c["claim"]: i for i, c in enumerate(spec["comparisons"])}
    training = spec.get("training", {})  # the trained models' budget, in every row (a warm start included)
    frame = pd.DataFrame(rows).assign(config_hash=spec.get("config_hash", ""),
                                      **{k: training[k] for k in ("max_iter", "mse_warmup") if k in training})
    frame = frame.sort_values("claim", key=lambda s: s.map(order), kind="stable")
    out = write_csv(frame, args.out)
    write_csv(summarise_claims(frame), out.with_name(out.stem + "_summary.csv"))
    learning = pd.concat([read_table(p, what="learning-curve summary", need=("final_ranking", "stable"))
                          .assign(group=Path(p).stem.removeprefix("learning_curve_").removesuffix("_summary"))
                          for p in args.learning], ignore_index=True) if args.learning else None
    write_text(out.with_suffix(".md"), render(frame, config_hash=spec.get("config_hash", ""),
                                              caveat=spec.get("caveat", ""), learning=learning, training=training))
    logger.info("wrote %s (%d comparisons)", out, len(frame))


if __name__ == "__main__":
    main()
