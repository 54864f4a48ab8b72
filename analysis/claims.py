"""The paper's claims, judged: one row per comparison and metric, with an effect, an interval and a verdict.

The study plan (:meth:`study.Plan.claim_comparisons`) turns each claim into pairwise comparisons; this module builds
each side's ``(n_seeds, n_slices)`` matrix from the per-slice metrics (:mod:`analysis.metrics`), chooses each
design's interval by simulated coverage (:mod:`analysis.intervals`) and labels it (:mod:`analysis.verdicts`). The
speed claim is read from the timing table (:mod:`analysis.timing`). The rules: docs/claims.md.

Command::

    python -m analysis.claims results/claims/claims.csv --spec SPEC.json \\
        --metrics results/metrics/*/{conventional,tomogan}.csv [--timing results/timing/timing.csv]

writes ``claims.csv``, its ``_summary``, ``_correlation`` and ``_coverage`` CSVs, and ``claims.md`` beside it.
``SPEC`` (JSON, or ``@file``) holds ``comparisons``, ``margins``, ``bootstrap`` (``n``, ``level``, ``seed``),
``config_hash`` and an optional ``caveat``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

from analysis.intervals import (INTERVALS, MIN_COVERAGE, RHO_UNKNOWN, correlation_length, lag_correlation,
                                simulate_coverage, t_interval)
from analysis.metrics import CEILINGS, DIRECTIONS, derive_metrics  # which way is better, per metric
from analysis.claims_text import render, summarise_claims
from analysis.tuning import best_tuned, read_tuning, validation_score
from analysis.verdicts import (AT_CEILING, LABELS, NOT_MEASURED, NOT_RUN, NOT_TESTED, bootstrap_difference, claim_holds,
                               stable_verdict)
from simulate.io import read_table
from simulate.plumbing import InputError, cli, json_argument, write_csv, write_text

__all__ = ["side_matrix", "resolve_comparator", "judge_comparisons", "judge_speed", "summarise_claims", "render",
           "main"]

logger = logging.getLogger(__name__)

#: The columns of a row whose comparator was chosen on validation (:func:`resolve_comparator`)
COMPARATOR = ("comparator", "comparator_criterion", "comparator_validation")


def read_metrics(paths: Sequence) -> pd.DataFrame:
    """Per-slice metric CSVs (:mod:`analysis.metrics`) as one table; ``model`` is ``""`` where none."""
    table = pd.concat([read_table(p, what="per-slice metrics table", need=("dataset", "dose", "method", "slice"))
                       for p in paths], ignore_index=True)
    table["model"] = table["model"].astype(object).fillna("").astype(str) if "model" in table else ""
    return derive_metrics(table)


def _select(table: pd.DataFrame, row: dict) -> pd.DataFrame:
    """The per-slice rows of one side's row: its ``dataset`` (a name, or a list of test volumes), dose, method and
    model."""
    names = [row["dataset"]] if isinstance(row["dataset"], str) else list(row["dataset"])
    sel = table["dataset"].isin(names) & (table["dose"] == row["dose"]) & (table["method"] == row["method"])
    if row.get("model") is not None:
        sel &= table["model"] == row["model"]
    return table[sel]


def side_matrix(table: pd.DataFrame, side: dict, metric: str, slices: Optional[Sequence] = None):
    """``(matrix, slices)``: one side's scores ``(n_seeds, n_columns)``, a column per ``(dataset, slice)`` in the
    order of ``slices`` (default: the sorted union). ValueError for a selection with no rows or a missing metric.
    """
    if metric not in table:
        raise ValueError(f"no column '{metric}' in the per-slice metrics")
    picked = []
    for row in side["rows"]:
        sel = _select(table, row)
        if sel.empty:
            raise ValueError(f"no per-slice rows for {row}")
        picked.append(sel.groupby(["dataset", "slice"])[metric].mean())
    if slices is None:
        slices = sorted(set().union(*(p.index for p in picked)))
    index = pd.MultiIndex.from_tuples([tuple(s) for s in slices], names=["dataset", "slice"])
    return np.array([p.reindex(index).to_numpy(float) for p in picked]), [tuple(s) for s in slices]


def _condition_choice(choose: dict, dose: str) -> dict:
    """The best tuned method of one condition: per test volume, the method of ``choose["methods"]`` whose tuning
    file (``choose["tuning"][volume][method]``) has the best validation score (:func:`analysis.tuning.best_tuned`:
    ties to the first registered). Every volume of a condition is tuned on the same validation slices, so all must
    choose alike: InputError naming a tuning file where they do not, or where a file cannot be read or scored."""
    picks = {}
    for volume, files in choose["tuning"].items():
        results = {m: read_tuning(files[m]) for m in choose["methods"]}
        criteria = {m: r.get("criterion") for m, r in results.items()}
        first = criteria[choose["methods"][0]]
        odd = next((m for m in choose["methods"] if criteria[m] != first), None)
        if odd:
            raise InputError(files[odd], f"tuned on {criteria[odd]}, {choose['methods'][0]} on {first}: the best "
                             "method is chosen on one validation criterion")
        scores = {}
        for m, r in results.items():
            try:
                scores[m] = validation_score(r)
            except ValueError as exc:
                raise InputError(files[m], str(exc)) from None
        best = best_tuned(scores)
        picks[volume] = {"method": best, "score": scores[best], "criterion": first, "file": files[best]}
    (volume, pick), *others = picks.items()
    for other, theirs in others:
        if (theirs["method"], theirs["score"]) != (pick["method"], pick["score"]):
            raise InputError(theirs["file"], f"{other} at {dose} chooses {theirs['method']} (validation "
                             f"{theirs['criterion']} {theirs['score']:.4f}), {volume} {pick['method']} "
                             f"({pick['score']:.4f}): every test volume of one condition must be tuned on the same "
                             "validation slices")
    return pick


def resolve_comparator(comp: dict) -> dict:
    """A comparison whose side chooses its method (``choose``: the best tuned classical method,
    :meth:`study.claims_plan.ClaimsPlanning.claim_comparisons`) with that side's rows set to the method chosen on
    validation (:func:`_condition_choice`), ``comparator``, ``comparator_criterion`` and ``comparator_validation``
    saying which and by what score, and ``part`` naming it; any other comparison as it is."""
    sides = [s for s in ("a", "b") if "choose" in comp.get(s, {})]
    if not sides:
        return comp
    if len(sides) > 1:
        raise ValueError(f"claim '{comp['claim']}': only one side of a comparison can choose its method")
    side = comp[sides[0]]
    pick = _condition_choice(side["choose"], side["rows"][0]["dose"])
    rows = [dict(r, method=pick["method"]) for r in side["rows"]]
    chosen = {k: v for k, v in side.items() if k != "choose"}
    return dict(comp, **{sides[0]: dict(chosen, rows=rows)}, comparator=pick["method"],
                comparator_criterion=pick["criterion"], comparator_validation=pick["score"],
                part=f"{comp['part']} ({side['label']} = {pick['method']}, validation {pick['criterion']} "
                     f"{pick['score']:.4f})")


def comparison_key(comp: dict, metric: str) -> str:
    """What a comparison is, independent of the claim that asks for it: both sides' selections and the metric."""
    return json.dumps({"a": comp["a"]["rows"], "b": comp["b"]["rows"], "metric": metric}, sort_keys=True)


def comparison_rng(seed: int, key: str) -> np.random.Generator:
    """A comparison's own random stream: the run's seed and a hash of :func:`comparison_key`, so that a comparison
    shared by two claims gets the same replicates in both, whatever else is judged."""
    digest = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
    return np.random.default_rng(np.random.SeedSequence([int(seed), digest]))


def _trained(side: dict) -> bool:
    return any(r.get("model") for r in side["rows"])


def _paired(comp: dict) -> bool:
    """Seeds are paired when both sides are trained with the same seeds: they share a warm start or a data order."""
    seeds = [[r.get("seed") for r in comp[s]["rows"]] for s in ("a", "b")]
    return _trained(comp["a"]) and _trained(comp["b"]) and None not in seeds[0] and seeds[0] == seeds[1]


def _series(d: np.ndarray, slices: Sequence) -> List[np.ndarray]:
    """A per-slice difference cut into runs of consecutive slices of one volume (the lag-1 pairs that are
    neighbours); ``slices`` are ``(dataset, slice)`` columns."""
    volume = [s[0] for s in slices]
    number = np.asarray([int(s[1]) for s in slices])
    breaks = (np.diff(number) != 1) | (np.asarray(volume[1:]) != np.asarray(volume[:-1]))
    cuts = np.flatnonzero(breaks) + 1
    return [x for x in np.split(d, cuts) if x.size]


@dataclass
class _Comparison:
    """One comparison of one metric, built once and read by every claim that asks for it."""

    key: str
    a: np.ndarray
    b: np.ndarray
    slices: list
    paired: bool
    trained_a: bool
    trained_b: bool

    @property
    def volumes(self) -> List[str]:
        """The test volume of each column."""
        return [s[0] for s in self.slices]

    @property
    def design(self) -> tuple:
        """What the coverage simulation needs: seeds per side, slices per volume, pairing, training, volumes."""
        n_volumes = len(set(self.volumes))
        return (self.a.shape[0], self.b.shape[0], self.a.shape[1] // n_volumes, self.paired, self.trained_a,
                self.trained_b, n_volumes)

    @property
    def seed_spread_unknown(self) -> bool:
        """A trained side with one seed has no measured seed-to-seed spread, unless it is pooled with an unpaired
        trained side of two or more."""
        pooled = self.trained_a and self.trained_b and not self.paired and self.a.shape[0] + self.b.shape[0] > 2
        return not pooled and ((self.trained_a and self.a.shape[0] < 2) or (self.trained_b and self.b.shape[0] < 2))


def _build(comp: dict, metric: str, table: pd.DataFrame) -> Optional[_Comparison]:
    b, slices = side_matrix(table, comp["b"], metric)
    a, _ = side_matrix(table, comp["a"], metric, slices)
    keep = np.isfinite(a).all(axis=0) & np.isfinite(b).all(axis=0)
    if not keep.any():
        return None
    return _Comparison(comparison_key(comp, metric), a[:, keep], b[:, keep], [s for s, k in zip(slices, keep) if k],
                       _paired(comp), _trained(comp["a"]), _trained(comp["b"]))


def measure_correlation(built: Dict[str, _Comparison]) -> pd.DataFrame:
    """Per metric: the lag-1 correlation of neighbouring slices' differences, pooled over every comparison, and the
    correlation length in slices (:mod:`analysis.intervals`)."""
    rows = []
    for metric in sorted({json.loads(k)["metric"] for k in built}):
        series = [x for k, c in built.items() if json.loads(k)["metric"] == metric
                  for x in _series(c.a.mean(axis=0) - c.b.mean(axis=0), c.slices)]
        rho = lag_correlation(series)
        rows.append({"metric": metric, "rho": rho,
                     "correlation_length": correlation_length(rho) if np.isfinite(rho) else np.nan,
                     "series": len(series), "slices": int(sum(x.size for x in series))})
    return pd.DataFrame(rows, columns=["metric", "rho", "correlation_length", "series", "slices"])


def choose_intervals(designs: set, correlation: pd.DataFrame, *, level: float, n_sim: int, n_boot: int,
                     seed: int) -> pd.DataFrame:
    """Per (design, metric): each interval's simulated coverage at the measured correlation and the one used, the
    first of INTERVALS that covers at least MIN_COVERAGE (else the last, and ``covers`` is false).

    An unmeasured correlation (NaN) is assumed to be the largest of :data:`RHO_UNKNOWN` and simulated at each of
    them, keeping each interval's worst coverage; ``rho`` is then NaN and ``rho_assumed`` the value used."""
    rows, cache = [], {}
    for design in sorted(designs):
        n_a, n_b, n_slices, paired, trained_a, trained_b, n_volumes = design
        for rec in correlation.itertuples():
            measured = np.isfinite(rec.rho)
            assumed = round(float(rec.rho) * 20) / 20 if measured else max(RHO_UNKNOWN)  # simulated per 0.05
            block = correlation_length(assumed)
            for true in ((assumed,) if measured else RHO_UNKNOWN):
                if (design, true, assumed) in cache:
                    continue

                def boot(a, b, lvl, gen, paired=paired, block=block):
                    d = bootstrap_difference(a, b, n_boot=n_boot, level=lvl, rng=gen, block=block, paired=paired)
                    return d.lo, d.hi
                cache[(design, true, assumed)] = simulate_coverage(
                    n_a=n_a, n_b=n_b, n_slices=n_slices, paired=paired, trained_b=trained_b and trained_a, rho=true,
                    assumed_rho=assumed, level=level, n_sim=n_sim, seed=seed, n_volumes=n_volumes, bootstrap=boot)
            sims = [cache[(design, true, assumed)] for true in ((assumed,) if measured else RHO_UNKNOWN)]
            cov = {name: min(c[name] for c in sims) for name in INTERVALS}
            chosen = next((name for name in INTERVALS if cov[name] >= MIN_COVERAGE), INTERVALS[-1])
            rows.append({"metric": rec.metric, "design": json.dumps(design), "n_seeds_a": n_a, "n_seeds_b": n_b,
                         "n_slices": n_slices, "n_volumes": n_volumes, "paired": paired, "trained_a": trained_a,
                         "trained_b": trained_b, "rho": rec.rho if measured else np.nan, "rho_assumed": assumed,
                         "rho_simulated": " ".join(f"{r:g}" for r in ((assumed,) if measured else RHO_UNKNOWN)),
                         "block": block, **{f"coverage_{name}": cov[name] for name in INTERVALS}, "interval": chosen,
                         "covers": cov[chosen] >= MIN_COVERAGE, "simulations": n_sim})
    return pd.DataFrame(rows)


def interval(c: _Comparison, *, method: str, level: float, rho: float, block: int, n_boot: int, seed: int) -> dict:
    """The comparison's effect and interval at ``level`` by ``method`` (one of INTERVALS), with each bound's
    Monte-Carlo error (0 for the t interval)."""
    if method == "bootstrap":
        d = bootstrap_difference(c.a, c.b, n_boot=n_boot, level=level, rng=comparison_rng(seed, c.key), block=block,
                                 paired=c.paired)
        return {"effect": d.effect, "lo": d.lo, "hi": d.hi, "mc_lo": d.mc_lo, "mc_hi": d.mc_hi, "df": np.nan}
    if c.seed_spread_unknown:
        return {"effect": float(c.a.mean() - c.b.mean()), "lo": -np.inf, "hi": np.inf, "mc_lo": 0.0, "mc_hi": 0.0,
                "df": 0.0}
    t = t_interval(c.a, c.b, level=level, rho=rho, paired=c.paired, trained_a=c.trained_a, trained_b=c.trained_b,
                   conservative=method == "t-conservative", volumes=c.volumes)
    return {"effect": t["effect"], "lo": t["lo"], "hi": t["hi"], "mc_lo": 0.0, "mc_hi": 0.0, "df": t["df"]}


def at_ceiling(c: _Comparison, metric: str) -> bool:
    """Whether any score of either side sits at the metric's ceiling (FRC cut-off at Nyquist): there the measure
    cannot tell two images apart, so 'equivalent' would be the cap speaking."""
    cap = CEILINGS.get(metric)
    return cap is not None and bool((np.concatenate([c.a.ravel(), c.b.ravel()]) >= cap - 1e-9).any())


def _orient(result: dict, direction: int) -> dict:
    if direction == 1:
        return result
    return dict(result, effect=-result["effect"], lo=-result["hi"], hi=-result["lo"], mc_lo=result["mc_hi"],
                mc_hi=result["mc_lo"])


def judge_comparisons(comparisons: List[dict], table: pd.DataFrame, *, margins: dict, n_boot: int,
                      level: float, seed: int, coverage_sims: int = 400, primary: str = "ssim",
                      unsettled: Optional[dict] = None, extras: Optional[dict] = None) -> List[dict]:
    """Judge every (comparison, metric) of the table's data; a comparison without sides is "not run".

    ``unsettled``: learning-curve group -> why its runs cannot be judged at this budget, or -> ``{frozenset((a, b)):
    why}`` for the pairs of its runs that cannot (:func:`untested_groups`). ``extras`` (a dict) receives the
    ``correlation`` and ``coverage`` tables.
    """
    unsettled = unsettled or {}
    comparisons = [resolve_comparator(c) for c in comparisons]  # a comparator chosen on validation, named
    built: Dict[str, Optional[_Comparison]] = {}
    for comp in comparisons:
        if "a" not in comp:
            continue
        for metric in comp["metrics"]:
            if metric not in DIRECTIONS:
                raise ValueError(f"claim '{comp['claim']}': no direction is known for metric '{metric}'")
            if metric not in margins:
                raise ValueError(f"claim '{comp['claim']}': metric '{metric}' has no margin in claims.margins")
            key = comparison_key(comp, metric)
            if key not in built:
                built[key] = _build(comp, metric, table)
    real = {k: c for k, c in built.items() if c is not None}
    correlation = measure_correlation(real)
    coverage = choose_intervals({c.design for c in real.values()}, correlation, level=level, n_sim=coverage_sims,
                                n_boot=min(n_boot, 1000), seed=seed)
    if extras is not None:
        extras.update(correlation=correlation, coverage=coverage)
    k_of = {}
    for comp in comparisons:
        if "a" in comp:
            k_of[comp["claim"]] = k_of.get(comp["claim"], 0) + 1
    rows = []
    for comp in comparisons:
        base = {k: comp[k] for k in ("claim", "text", "kind", "part")}
        base.update({k: comp[k] for k in COMPARATOR if k in comp})
        base.update(role="control" if comp.get("control") else "claim", question=comp.get("question", ""),
                    control=comp.get("control") or "", group=comp.get("group", ""))
        if "factor" in comp:
            continue
        if "a" not in comp:
            rows.append(dict(base, metric="", verdict=NOT_RUN, holds="n/a"))
            continue
        k = k_of[comp["claim"]]
        lvl = 1.0 - (1.0 - level) / k
        for metric in comp["metrics"]:
            c = built[comparison_key(comp, metric)]
            names = dict(a=comp["a"]["label"], b=comp["b"]["label"],
                         metric_role="primary" if metric == comp.get("primary", primary) else "secondary")
            if c is None:
                rows.append(dict(base, metric=metric, **names, verdict=NOT_MEASURED, holds="n/a"))
                continue
            pick = coverage[(coverage["metric"] == metric) & (coverage["design"] == json.dumps(c.design))].iloc[0]
            r = _orient(interval(c, method=pick["interval"], level=lvl, rho=float(pick["rho_assumed"]),
                                 block=int(pick["block"]), n_boot=n_boot, seed=seed), DIRECTIONS[metric])
            margin = float(margins[metric])
            if not np.isfinite([r["lo"], r["hi"]]).all():
                label, close, why = "inconclusive", False, "one seed: its spread is unknown"
            else:
                label, close = stable_verdict(r["lo"], r["hi"], margin=margin, mc_lo=r["mc_lo"], mc_hi=r["mc_hi"])
                why = "a bound within its Monte-Carlo error of the margin" if close else ""
            if label in ("equivalent", "inconclusive") and at_ceiling(c, metric):
                label, why = AT_CEILING, f"scores at the measure's ceiling ({CEILINGS[metric]})"
            untested = unsettled.get(comp.get("group"))
            if isinstance(untested, dict):  # only the pairs that crossed cannot be judged
                untested = untested.get(frozenset((comp["a"]["label"], comp["b"]["label"])))
            if untested:
                label, why = NOT_TESTED, untested
            holds = claim_holds(comp["kind"], label) if label in LABELS else "n/a"
            rows.append(dict(base, metric=metric, **names,
                             a_models=" ".join(x["model"] or x["method"] for x in comp["a"]["rows"]),
                             b_models=" ".join(x["model"] or x["method"] for x in comp["b"]["rows"]),
                             effect=r["effect"], lo=r["lo"], hi=r["hi"], mc_lo=r["mc_lo"], mc_hi=r["mc_hi"],
                             margin=margin, verdict=label, holds=holds, why=why, interval=pick["interval"],
                             df=r["df"], paired=c.paired, n_seeds_a=c.a.shape[0], n_seeds_b=c.b.shape[0],
                             n_slices=c.a.shape[1], n_volumes=len(set(c.volumes)), comparisons_k=k, level=lvl,
                             correction=f"Bonferroni, k = {k}"))
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
    return dict(base, role="claim", metric_role="primary", interval="range over repeats (min to max)",
                metric="speedup", a=FBP_TOMOGAN, b=sirt, a_models=FBP_TOMOGAN, b_models=sirt, effect=ratio,
                lo=lo, hi=hi, margin=factor, verdict=label, holds=holds, n_slices=int(fast.get("slices", 0)),
                level=np.nan, device=device)


def _load_spec(text: str) -> dict:
    spec, where = json_argument(text, flag="--spec")
    missing = {"comparisons", "margins", "bootstrap"} - set(spec if isinstance(spec, dict) else {})
    if missing:
        raise InputError(where, f"lacks {sorted(missing)}")
    return spec


def untested_groups(learning: pd.DataFrame) -> dict:
    """Which comparisons of the learning-curve groups are *not tested at this budget*: a group with too few
    validations in its judged stretch (``insufficient``) as a whole; of an ``unsettled`` group only the pairs of runs
    that crossed by more than the margin (``pairs_json``; a summary without it: the whole group).

    >>> rows = pd.DataFrame([{"group": "g", "state": "unsettled", "n_judged": 5, "pairs_json": json.dumps(
    ...     [{"a": "x", "b": "y", "state": "unsettled"}, {"a": "x", "b": "z", "state": "ordered"}])},
    ...     {"group": "h", "state": "insufficient", "n_judged": 2}])
    >>> out = untested_groups(rows)
    >>> sorted(out["g"]) == [frozenset({"x", "y"})], out["h"].startswith("the h runs are insufficient")
    (True, True)
    """
    out: dict = {}
    for r in learning.to_dict("records"):
        state = r.get("state", "settled" if r.get("settled", True) else "unsettled")
        if state == "settled":
            continue
        why = (f"the {r['group']} runs are {state} over the judged stretch ({int(r.get('n_judged', 0))} "
               "validations)")
        pairs = r.get("pairs_json")
        if state == "unsettled" and isinstance(pairs, str) and pairs:
            out[r["group"]] = {frozenset((p["a"], p["b"])): f"{p['a']} and {p['b']} crossed by more than the "
                               "margin over the judged stretch" for p in json.loads(pairs) if p["state"] == "unsettled"}
        else:
            out[r["group"]] = why
    return out


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
    learning = pd.concat([read_table(p, what="learning-curve summary", need=("final_ranking", "stable"))
                          .assign(group=Path(p).stem.removeprefix("learning_curve_").removesuffix("_summary"))
                          for p in args.learning], ignore_index=True) if args.learning else None
    unsettled = {} if learning is None else untested_groups(learning)
    extras: dict = {}
    try:
        rows = judge_comparisons(spec["comparisons"], table, margins=spec["margins"], n_boot=int(boot["n"]),
                                 level=float(boot["level"]), seed=int(boot["seed"]),
                                 coverage_sims=int(spec.get("coverage_sims", 400)),
                                 primary=spec.get("primary", "ssim"), unsettled=unsettled, extras=extras)
    except InputError:  # a tuning file a comparator is chosen by: it names itself
        raise
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
    if learning is not None and "training" in learning and "group" in frame:  # what each compared run was given
        frame["training"] = frame["group"].map(dict(zip(learning["group"], learning["training"])))
    if training.get("ablation") and "group" in frame:  # the ablation's runs were not trained by the main budget
        frame.loc[frame["group"].fillna("") != "", [k for k in ("max_iter", "mse_warmup") if k in frame]] = np.nan
    out = Path(args.out)
    correlation, coverage = extras.get("correlation"), extras.get("coverage")
    for name, part in (("correlation", correlation), ("coverage", coverage)):
        write_csv(part if part is not None else pd.DataFrame(), out.with_name(f"{out.stem}_{name}.csv"))
    write_csv(summarise_claims(frame), out.with_name(out.stem + "_summary.csv"))
    write_text(out.with_suffix(".md"), render(frame, config_hash=spec.get("config_hash", ""),
                                              caveat=spec.get("caveat", ""), learning=learning, training=training,
                                              correlation=correlation, coverage=coverage,
                                              margins=spec["margins"]))
    write_csv(frame, out)  # last: the rule's main output exists only when everything beside it does
    logger.info("wrote %s (%d comparisons)", out, len(frame))


if __name__ == "__main__":
    main()
