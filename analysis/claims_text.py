"""``claims.md``: the rule, the controls and whether the run can judge, the slice correlation and the intervals' coverage,
the margins and their reasons, and every claim's comparisons (:func:`render`). The verdicts are
:mod:`analysis.claims`'."""

from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd

from analysis.learning_curve import MIN_VALIDATIONS
from analysis.intervals import MIN_COVERAGE, MIN_SERIES
from analysis.verdicts import AT_CEILING, LABELS, NOT_TESTED, claim_holds, combine, verdict

__all__ = ["answer", "control_passes", "summarise_claims", "sensitivity", "render"]


def answer(grp: pd.DataFrame) -> str:
    """Whether a claim holds on one metric over all its comparisons, with why where it does not: ``yes``,
    ``no: <the failing comparisons' verdicts>`` (so *equivalent* and *contradicted* stay apart), ``unclear``,
    ``not tested at this budget``, ``at ceiling`` or ``n/a``."""
    if (grp["verdict"] == NOT_TESTED).any():
        return NOT_TESTED
    judged = grp[grp["verdict"].isin(LABELS)]
    if judged.empty:
        return AT_CEILING if (grp["verdict"] == AT_CEILING).any() else "n/a"
    holds = combine(judged["holds"])
    if holds == "no":
        return "no: " + ", ".join(sorted(set(judged.loc[judged["holds"] == "no", "verdict"])))
    if holds == "yes" and (grp["verdict"] == AT_CEILING).any():
        return "unclear"
    return holds


def control_passes(grp: pd.DataFrame) -> bool:
    """A null control passes when no comparison reads supported or contradicted; a positive one when every
    comparison reads supported."""
    verdicts = set(grp["verdict"])
    if grp["control"].iloc[0] == "positive":
        return verdicts == {"supported"}
    return not verdicts & {"supported", "contradicted"}


def summarise_claims(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (claim, metric): its role (primary or secondary), whether it holds over all its comparisons
    (:func:`answer`; a control: ``passes`` or ``FAILS``), and how many were judged."""
    out = []
    for (claim, metric), grp in rows.groupby(["claim", "metric"], sort=False):
        seeds = pd.concat([grp.get("n_seeds_a", pd.Series(dtype=float)), grp.get("n_seeds_b", pd.Series(dtype=float))])
        is_control = "role" in grp and grp["role"].iloc[0] == "control"
        out.append({"claim": claim, "text": grp["text"].iloc[0], "kind": grp["kind"].iloc[0], "metric": metric,
                    "role": grp["metric_role"].iloc[0] if "metric_role" in grp else "",
                    "question": grp["question"].iloc[0] if "question" in grp else "",
                    "holds": ("passes" if control_passes(grp) else "FAILS") if is_control else answer(grp),
                    "seeds": float(seeds.max()) if seeds.notna().any() else np.nan,
                    "comparisons": len(grp), "verdicts": ", ".join(f"{v} {n}" for v, n in
                                                                   grp["verdict"].value_counts().items())})
    return pd.DataFrame(out)


def sensitivity(rows: pd.DataFrame, factors=(0.5, 1.0, 2.0)) -> pd.DataFrame:
    """Each claim's primary answer with every margin scaled by each factor (the intervals stay as they are)."""
    out = []
    primary = rows[(rows.get("metric_role", "") == "primary") & rows["verdict"].isin(LABELS + (NOT_TESTED, AT_CEILING))]
    for claim, grp in primary.groupby("claim", sort=False):
        row = {"claim": claim, "metric": grp["metric"].iloc[0]}
        for f in factors:
            g = grp.copy()
            judged = g["verdict"].isin(LABELS)
            g.loc[judged, "verdict"] = [verdict(lo, hi, margin=m * f) if np.isfinite([lo, hi]).all() else "inconclusive"
                                        for lo, hi, m in zip(g.loc[judged, "lo"], g.loc[judged, "hi"],
                                                             g.loc[judged, "margin"])]
            g.loc[judged, "holds"] = [claim_holds(k, v) for k, v in zip(g.loc[judged, "kind"], g.loc[judged, "verdict"])]
            row[f"margin x{f:g}"] = answer(g)
        out.append(row)
    return pd.DataFrame(out)


def _fmt(x, digits=3):
    if isinstance(x, (float, np.floating)) and np.isinf(x):
        return "∞" if x > 0 else "−∞"
    return "" if x is None or (isinstance(x, float) and not np.isfinite(x)) else f"{x:.{digits}g}"


def training_line(training: dict) -> str:
    """How the compared models were trained, in one sentence (``training``: ``max_iter``, ``mse_warmup``, ``seeds``,
    and ``ablation``, the ablation's question where its runs are trained apart).

    >>> training_line({"max_iter": 375, "mse_warmup": 300, "seeds": [0, 1, 2]})
    'Trained models: 375 steps each, the first 300 with pixel MSE alone (a warm start), 3 seeds.'
    >>> training_line({"max_iter": 8000, "mse_warmup": 0, "seeds": [0], "ablation": "compute-matched: 90 CPU-s"})
    'Trained models: 8000 steps each, 1 seed. The ablation: compute-matched: 90 CPU-s.'
    """
    if not training:
        return ""
    warm = int(training.get("mse_warmup") or 0)
    seeds = len(training.get("seeds", [])) or 1
    return (f"Trained models: {int(training['max_iter'])} steps each"
            + (f", the first {warm} with pixel MSE alone (a warm start)" if warm else "")
            + f", {seeds} seed{'s' if seeds > 1 else ''}."
            + (f" The ablation: {training['ablation']}." if training.get("ablation") else ""))


RULE = ("Each comparison is a paired difference a - b on the same test slices of its test volumes, oriented so that a "
        "positive effect is the direction the claim states. Its interval is the one whose coverage, simulated for "
        "this design (seeds per side, paired seeds, slices, volumes) at the slice correlation measured below (or, "
        "unmeasured, at the worst of several), reaches "
        f"{MIN_COVERAGE:g}, narrowest first: the block bootstrap over seeds, then slices (with each bound's "
        "Monte-Carlo error); a t interval over seeds and the test volumes (or, on one volume, the effective number "
        "of slices); the same with its degrees of freedom capped (analysis/intervals.py). A claim of k "
        "comparisons reads each at the Bonferroni-corrected level 1 - 0.05 / k. Verdict: *supported* if the whole "
        "interval lies above the margin, *contradicted* if below minus the margin, *equivalent* if inside plus or "
        "minus the margin, *inconclusive* otherwise, or when a bound lies within its Monte-Carlo error of a margin; "
        "*at ceiling* where a measure is at its cap; *not tested at this budget* where the compared runs' ranking "
        "had not settled. A claim holds if each of its comparisons does, read by its kind (better: supported; "
        "not-worse: supported or equivalent; equivalent: equivalent); *no* names the verdicts that refute it. Each "
        "claim is decided by its primary metric; the others are secondary (docs/claims.md).")


# Why each margin: a sentence from its value (docs/claims.md, "Why these margins")
MARGIN_REASONS = {
    "ssim": lambda m: "about half the seed-to-seed range of one run's validation SSIM at the end of training",
    "psnr": lambda m: f"a {100 * (10 ** (m / 10) - 1):.0f} % change of the mean squared error",
    "nps_texture_error": lambda m: f"a {100 * m:.0f} % shift of the noise spectrum's mean frequency from the reference's",
    "noise_rel": lambda m: f"{100 * m:g} percentage points of noise relative to the object's level",
    "frc_cutoff": lambda m: f"{m * 256:.1f} rings of a 256-pixel slice's FRC",
    "edge_width": lambda m: f"{m:g} of a pixel",
    "pore_detection": lambda m: f"{100 * m:.0f} percentage points of the pores",
    "false_pores": lambda m: f"{m:g} false pores per slice",
    "psd_wasserstein": lambda m: f"{m:g} of a pixel of pore size",
}


def margin_table(margins: dict, metrics) -> pd.DataFrame:
    """Each judged metric's margin and why (:data:`MARGIN_REASONS`; a ``_truth`` or ``_object`` variant reads as its
    plain metric's, ``pore_detection_small`` as ``pore_detection``'s)."""
    rows = []
    for metric in metrics:
        plain = metric.removesuffix("_truth").removesuffix("_object").removesuffix("_small")
        reason = MARGIN_REASONS.get(plain)
        rows.append({"metric": metric, "margin": margins.get(metric), "reason": reason(margins[metric]) if reason and
                     metric in margins else ""})
    return pd.DataFrame(rows)


def _interval_text(grp: pd.DataFrame) -> list:
    return [f"{_fmt(e)} [{_fmt(lo)}, {_fmt(hi)}]" if np.isfinite(e) else ""
            for e, lo, hi in zip(grp.get("effect", np.nan), grp.get("lo", np.nan), grp.get("hi", np.nan))]


def _comparisons_table(grp: pd.DataFrame) -> str:
    n = len(grp)
    col = lambda name: grp[name] if name in grp else pd.Series([np.nan] * n, index=grp.index)  # noqa: E731
    return pd.DataFrame({
        "comparison": grp["part"], "metric": grp["metric"] + np.where(col("metric_role") == "primary", " (primary)", ""),
        "effect [interval]": _interval_text(grp),
        "MC error": [f"{_fmt(x, 2)}, {_fmt(y, 2)}" if np.isfinite([x, y]).all() and (x or y) else ""
                     for x, y in zip(col("mc_lo"), col("mc_hi"))],
        "interval": [f"{i}, {lvl:.4g}" if isinstance(i, str) and np.isfinite(lvl) else (i if isinstance(i, str) else "")
                     for i, lvl in zip(col("interval"), col("level"))],
        "margin": [_fmt(m) for m in col("margin")], "verdict": grp["verdict"],
        "seeds (a, b)": [f"{int(x)}, {int(y)}" + (" paired" if p is True else "") if np.isfinite([x, y]).all() else ""
                         for x, y, p in zip(col("n_seeds_a"), col("n_seeds_b"), col("paired"))],
        "slices (all volumes)": [str(int(v)) if np.isfinite(v) else "" for v in col("n_slices")],
        "volumes": [str(int(v)) if np.isfinite(v) else "" for v in col("n_volumes")]}).to_markdown(index=False)


def render(rows: pd.DataFrame, *, config_hash: str = "", caveat: str = "", learning=None,
           training: Optional[dict] = None, correlation=None, coverage=None, margins: Optional[dict] = None) -> str:
    """claims.md: the rule; the controls, and whether the run can judge; the slice correlation and the intervals'
    coverage; how the models were trained (``training``) and whether the ablation was trained long enough
    (``learning``); each claim's primary answer, the sensitivity to the margins; then each claim's comparisons."""
    text = [f"**{caveat}**", ""] if caveat else []
    text += [RULE + f" Config hash `{config_hash}`.", ""]
    summary = summarise_claims(rows)
    controls = summary[summary["claim"].str.startswith("control-")]
    if len(controls):
        failed = controls[controls["holds"] != "passes"]
        text += ["## Controls", "",
                 ("**This run cannot judge the claims:** " + "; ".join(
                     f"the {c.removeprefix('control-')} control {'read a difference where there is none' if c == 'control-null' else 'missed a known difference'} ({v})"
                     for c, v in zip(failed["claim"], failed["verdicts"])) + "."
                  if len(failed) else "Both controls pass: the null control finds no difference between two groups of "
                                      "one run's seeds, and the positive control finds the known one."), "",
                 _comparisons_table(rows[rows["claim"].str.startswith("control-")]), ""]
    if correlation is not None and len(correlation):
        text += ["## Slice correlation and coverage", "",
                 "Neighbouring test slices move together. The lag-1 correlation of the per-slice differences, pooled "
                 "over every comparison (bias-corrected), and the slices over which it falls below 1/e. On series "
                 f"shorter than {MIN_SERIES} slices it is not estimated (blank): there a true 0.95 reads about 0, so "
                 "the intervals assume the worst of the correlations in `rho_simulated` below:", "",
                 correlation.to_markdown(index=False, floatfmt=".3g"), ""]
    if coverage is not None and len(coverage):
        text += ["How often each interval covered a known zero difference in data simulated with this design and "
                 "that correlation (the lowest over three mixes of seed and slice variation, and over every correlation in "
                 "`rho_simulated`, with intervals built on `rho_assumed`); the interval used is "
                 "the bootstrap where it reaches the threshold, else the t interval:", "",
                 coverage.drop(columns="design").drop_duplicates([c for c in coverage if c not in ("metric", "design")])
                 .to_markdown(index=False, floatfmt=".3g"), ""]
    if training:
        text += [training_line(training), ""]
    if learning is not None and len(learning):
        text += ["**Trained long enough to tell?** The ablation's runs ranked by validation metric (mean over "
                 "seeds) at each validation (analysis/learning_curve.py; `axis`: against steps, or, compute-matched, "
                 "against CPU-seconds), the steps and CPU-seconds each got (`training`), the final ranking, the "
                 "validations inside the judged stretch (the last quarter of training after any warm start), and "
                 "`state`: "
                 "*settled* when every pair of runs stayed in order (>) or within the margin (~) over that stretch, "
                 "*unsettled* when a pair crossed (?), *insufficient* with fewer than "
                 f"{MIN_VALIDATIONS} validations there. A claim on runs not settled is *not tested at this budget*.",
                 "", learning[[c for c in ("group", "metric", "axis", "training", "final_ranking", "n_judged",
                                           "state", "last_step", "pairs") if c in learning]].to_markdown(index=False), ""]
    claims = summary[~summary["claim"].str.startswith("control-")]
    if len(claims):
        prim = claims[claims["role"].isin(["primary", ""]) | (claims["metric"] == "speedup")]
        text += ["## Primary answers", "", prim[["claim", "metric", "holds", "question", "verdicts"]].fillna("")
                 .rename(columns={"holds": "answer"}).to_markdown(index=False), ""]
        sens = sensitivity(rows[~rows["claim"].str.startswith("control-")])
        if len(sens):
            text += ["Sensitivity: each primary answer with every margin halved and doubled.", "",
                     sens.to_markdown(index=False), ""]
        if margins:
            judged = [m for m in dict.fromkeys(rows["metric"]) if m in margins]
            text += ["The margins, and why each (docs/claims.md):", "",
                     margin_table(margins, judged).to_markdown(index=False), ""]
    for claim, grp in rows.groupby("claim", sort=False):
        if claim.startswith("control-"):
            continue
        first = grp.iloc[0]
        holds = summary[summary["claim"] == claim]
        text += [f"### {claim}: {first['text']}", "",
                 f"Holds ({first['kind']}): " + "; ".join(
                     f"{m or 'n/a'}{' (primary)' if r == 'primary' else ''}: **{h}**"
                     for m, r, h in zip(holds["metric"], holds["role"], holds["holds"])), ""]
        text += [_comparisons_table(grp), ""]
    return "\n".join(text)
