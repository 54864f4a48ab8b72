"""Checking the held-out choices against the reference's, and every route on a scan with what it cost.

:func:`check` gathers such tables (one per dataset and dose) and says how often the holdout choice agrees
with the reference's: per method, the two values, whether they agree, the SSIM at each and the SSIM the
holdout choice loses; per scan, the Spearman correlation of the methods' two rankings, whether the top
method agrees, and the SSIM the fully automatic choice (the best holdout score of all) loses.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, NamedTuple, Optional, Sequence

import numpy as np

from analysis.crossval.candidates import _label, candidate_label
from analysis.crossval.core import KINDS, REFERENCE_COLUMNS, grid_descent
from analysis.crossval.images import _ranks
from simulate.io import benchmark_seconds
from simulate.plumbing import InputError

if TYPE_CHECKING:  # pandas is imported where tables are made
    import pandas

CHECK_NEEDS = ("dataset", "dose", "method", "value", "score", "chosen", "ssim", "chosen_by_reference")
ROUTE_NEEDS = ("dataset", "dose", "method", "value", "score", "chosen")  # what routes_table needs (no reference)
ROUTE_COLUMNS = ("dataset", "dose", "rank", "route", "method", "score", "ssim", "ssim_object", "psnr", "psnr_object",
                 "ref_rank")


class CheckResult(NamedTuple):
    """What :func:`check` finds.

    Attributes
    ----------
    methods : pandas.DataFrame
        One row per (dataset, dose, method): ``dataset, dose, method, parameter``; ``holdout_value``,
        ``reference_value`` (as the tables write them; empty for a method without a parameter); ``agree``;
        ``grid_steps`` (how far apart they are among the method's values sorted increasingly; 1: neighbours);
        ``score`` (the holdout score at ``holdout_value``); ``ssim_holdout``, ``ssim_reference`` (the
        SSIM at each value); ``ssim_lost = ssim_reference - ssim_holdout`` (>= 0); ``descent_agrees`` (a
        descent from the middle of the values, :func:`analysis.crossval.core.grid_descent`, stops at the
        holdout value: ``tomogan-scan``'s search would have chosen what the whole grid chose).
    scans : pandas.DataFrame
        One row per (dataset, dose): ``n_methods``; ``spearman``, the Spearman correlation between the
        methods' holdout ranking (each at its holdout value, by ``score``, lower better) and their reference
        ranking (each at its reference value, by SSIM, higher better) -- 1: the same order, -1: reversed,
        NaN with fewer than 3 methods; ``top_holdout``, ``top_reference`` (the first of each ranking) and
        ``top_agrees``; ``ssim_auto`` (the SSIM of the automatic choice, ``top_holdout`` at its holdout value),
        ``ssim_best`` (the best SSIM of any method at any value) and ``auto_ssim_lost = ssim_best -
        ssim_auto`` (>= 0).
    residuals : pandas.DataFrame
        What each residual kind (:data:`KINDS`) would have chosen, from the tables' ``score_<kind>`` columns,
        one row per kind and kind of data (``data``: ``photon-limited`` for weighted scores, else
        ``unweighted``): ``in_use`` (the scans whose ``score`` is that kind, of ``n_scans``), ``n_tuned``,
        ``agree``, ``within_one_step``, ``ssim_lost_mean``, ``ssim_lost_max`` (over the tuned methods) and
        ``auto_ssim_lost_mean`` (over the scans). Empty when the tables lack those columns.
    """

    methods: "pandas.DataFrame"
    scans: "pandas.DataFrame"
    residuals: "pandas.DataFrame" = None


def _flag(series, name: str, where) -> np.ndarray:
    """A column of True/False (bools, or the words as a CSV holds them) as bools."""
    words = {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}
    out = []
    for v in series:
        key = str(bool(v)).lower() if isinstance(v, (bool, np.bool_)) else str(v).strip().lower()
        if key not in words:
            raise InputError(where, f"column '{name}' holds {v!r}, expected True or False")
        out.append(words[key])
    return np.array(out, dtype=bool)


def _gather(tables, *, reference: bool = True) -> "pandas.DataFrame":
    """One table of all candidate rows, with ``_source`` naming where each came from; checked.

    With ``reference`` every row needs its SSIM and ``chosen_by_reference``; without, the reference's columns
    (:data:`REFERENCE_COLUMNS`) are taken as numbers where given and NaN where not.
    """
    import pandas as pd

    from simulate.io import read_table

    need = CHECK_NEEDS if reference else ROUTE_NEEDS
    parts = []
    for i, table in enumerate(tables):
        if isinstance(table, pd.DataFrame):
            where = f"table {i + 1}"
            missing = sorted(set(need) - set(table.columns))
            if missing:
                raise InputError(where, f"lacks columns {missing}")
        else:
            where = str(table)
            table = read_table(table, what="crossval table", need=need)
        table = table.copy()
        for col in ("dataset", "dose", "method", "parameter", "value"):
            table[col] = [_label(v) for v in table[col]] if col in table else ""
        for col in ("chosen", "chosen_by_reference") if reference else ("chosen",):
            table[col] = _flag(table[col], col, where)
        for col in ("score", "ssim") if reference else ("score",):
            table[col] = pd.to_numeric(table[col], errors="coerce")
            if table[col].isna().any():
                raise InputError(where, f"column '{col}' has missing or non-numeric values"
                                        + (" (made without --reference?)" if col == "ssim" else ""))
        if not reference:
            for col in REFERENCE_COLUMNS:
                table[col] = pd.to_numeric(table[col], errors="coerce") if col in table else np.nan
        table["_source"] = where
        parts.append(table)
    if not parts:
        raise ValueError("check needs at least one table")
    rows = pd.concat(parts, ignore_index=True)
    key = ["dataset", "dose", "method", "value"]
    twice = rows[rows.duplicated(key, keep=False)]
    if not twice.empty:
        dataset, dose, method, value = twice.iloc[0][key]
        same = twice[(twice[key] == [dataset, dose, method, value]).all(axis=1)]
        raise InputError(same["_source"].iloc[-1], f"{dataset}/{dose}: {method} {value or '(no parameter)'} "
                                                   f"appears twice (in {', '.join(dict.fromkeys(same['_source']))})")
    for col in ("k", "weighted", "n_rays"):  # scores compared across methods must be of one kind
        if col in rows:
            mixed = rows.groupby(["dataset", "dose"], sort=False)[col].nunique(dropna=False)
            if (mixed > 1).any():
                dataset, dose = mixed[mixed > 1].index[0]
                sources = sorted(set(rows.loc[(rows.dataset == dataset) & (rows.dose == dose), "_source"]))
                raise InputError(sources[-1], f"{dataset}/{dose}: scores with different {col} (other --k, "
                                              f"--slices or --incident?) cannot be compared")
    return rows


def _grid_steps(values, a, b) -> int:
    """How many steps apart values ``a`` and ``b`` lie among ``values`` sorted increasingly (1: neighbours)."""
    order = _numeric_order(values)
    return abs(order.index(values.index(a)) - order.index(values.index(b)))


def _numeric_order(values) -> list:
    """The positions of ``values`` (labels) in increasing numeric order (text after numbers)."""
    def key(i):
        try:
            return (0, float(values[i]), i)
        except ValueError:
            return (1, 0.0, i)
    return sorted(range(len(values)), key=key)


def _spearman(holdout_scores, reference_ssims) -> float:
    """Spearman's rho between ranking by score (lower better) and by SSIM (higher better); NaN below 3."""
    from scipy.stats import spearmanr

    if len(holdout_scores) < 3:
        return float("nan")
    with warnings.catch_warnings():  # a constant column: rho is undefined, NaN
        warnings.simplefilter("ignore")
        rho = spearmanr(np.asarray(holdout_scores, float), -np.asarray(reference_ssims, float)).statistic
    return float(rho)


def check(tables) -> CheckResult:
    """How often the held-out choice agrees with the reference's, from the tables of ``--reference`` runs.

    Parameters
    ----------
    tables : sequence of pandas.DataFrame or path
        Tables as the command writes them with ``--reference`` (one per dataset and dose, or several per
        scan with different methods), with at least the columns ``dataset, dose, method, value, score,
        chosen, ssim, chosen_by_reference``. Each (dataset, dose, method) needs exactly one ``chosen`` and
        one ``chosen_by_reference`` row, and those must hold its smallest score and its highest SSIM.

    Returns
    -------
    CheckResult
        ``methods`` and ``scans`` (see :class:`CheckResult`), in the order the tables list them.

    Raises
    ------
    InputError
        A table that lacks a column, has no SSIM, repeats a candidate, marks no or several choices, or marks
        one that is not the best; scores of one scan made with different ``k``, slices or weighting.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"dataset": "d", "dose": "x", "method": "fbp-tv", "value": [0.01, 0.1, 1.0],
    ...                   "score": [1.2, 1.1, 1.5], "chosen": [False, True, False], "ssim": [0.6, 0.7, 0.8],
    ...                   "chosen_by_reference": [False, False, True]})
    >>> row = check([t]).methods.iloc[0]
    >>> row.holdout_value, row.reference_value, bool(row.agree), int(row.grid_steps), round(float(row.ssim_lost), 6)
    ('0.1', '1', False, 1, 0.1)
    """
    import pandas as pd

    rows = _gather(tables)
    methods = []
    for (dataset, dose, method), g in rows.groupby(["dataset", "dose", "method"], sort=False):
        hold, ref = _choice(g, "chosen"), _choice(g, "chosen_by_reference")
        values = list(g["value"])
        steps = _grid_steps(values, hold["value"], ref["value"])
        methods.append({"dataset": dataset, "dose": dose, "method": method,
                        "parameter": _label(hold.get("parameter", "")),
                        "holdout_value": hold["value"], "reference_value": ref["value"],
                        "agree": hold["value"] == ref["value"], "grid_steps": steps, "score": float(hold["score"]),
                        "ssim_holdout": float(hold["ssim"]), "ssim_reference": float(ref["ssim"]),
                        "ssim_lost": float(ref["ssim"] - hold["ssim"]),
                        "descent_agrees": _descent_value(values, list(g["score"])) == hold["value"]})
    methods = pd.DataFrame(methods)
    scans = []
    for (dataset, dose), g in methods.groupby(["dataset", "dose"], sort=False):
        top_h = g.loc[g["score"].idxmin()]           # first of equal minima
        top_r = g.loc[g["ssim_reference"].idxmax()]  # first of equal maxima
        scans.append({"dataset": dataset, "dose": dose, "n_methods": len(g),
                      "spearman": _spearman(g["score"], g["ssim_reference"]),
                      "top_holdout": top_h["method"], "top_reference": top_r["method"],
                      "top_agrees": bool(top_h["method"] == top_r["method"]),
                      "ssim_auto": float(top_h["ssim_holdout"]), "ssim_best": float(top_r["ssim_reference"]),
                      "auto_ssim_lost": float(top_r["ssim_reference"] - top_h["ssim_holdout"])})
    return CheckResult(methods, pd.DataFrame(scans), _residual_comparison(rows))


def _descent_value(values, scores):
    """The value (label) a descent over ``values`` in numeric order, by ``scores``, stops at.

    >>> _descent_value(["0.1", "0.01", "1", "10"], [2.0, 3.0, 1.0, 4.0])
    '1'
    """
    order = _numeric_order(values)
    seen = grid_descent((len(order),), lambda i: scores[order[i[0]]])
    return values[order[min(seen, key=lambda p: (seen[p], p))[0]]]


def _choice(g, col: str) -> "pandas.Series":
    """The one row of a (dataset, dose, method) group marked ``col`` (``chosen``: its smallest score;
    ``chosen_by_reference``: its highest SSIM); none, several or another is an :class:`InputError`."""
    dataset, dose, method = g[["dataset", "dose", "method"]].iloc[0]
    where = g["_source"].iloc[-1]
    key, best, what = ("score", g["score"].min(), "smallest score") if col == "chosen" else \
        ("ssim", g["ssim"].max(), "highest ssim")
    marked = g[g[col]]
    if len(marked) != 1:
        raise InputError(where, f"{dataset}/{dose}: {method} has {len(marked)} rows marked {col}, expected 1")
    if marked[key].iloc[0] != best:
        raise InputError(where, f"{dataset}/{dose}: {method}'s {col} row is not its {what}")
    return marked.iloc[0]


def _residual_comparison(rows) -> "pandas.DataFrame":
    """:class:`CheckResult`'s ``residuals``: each kind's choices, from its score column, against the reference's."""
    import pandas as pd

    kinds = [kind for kind in KINDS if f"score_{kind}" in rows and rows[f"score_{kind}"].notna().all()]
    out = []
    for kind in kinds:
        col = f"score_{kind}"
        per_scan = []
        for (dataset, dose), scan in rows.groupby(["dataset", "dose"], sort=False):
            best_ssim = float(scan["ssim"].max())
            picks = []  # per method: (its score at its choice, ssim there, agrees, grid steps, tuned)
            for _, g in scan.groupby("method", sort=False):
                choice = g.loc[pd.to_numeric(g[col]).idxmin()]
                ref = g[g["chosen_by_reference"]].iloc[0]
                values = list(g["value"])
                steps = _grid_steps(values, choice["value"], ref["value"])
                picks.append((float(choice[col]), float(choice["ssim"]), choice["value"] == ref["value"], steps,
                              len(g) > 1, float(ref["ssim"])))
            auto = min(picks, key=lambda t: t[0])
            weighted = _flag(scan["weighted"], "weighted", "") if "weighted" in scan else np.zeros(len(scan), bool)
            in_use = "residual" in scan and (scan["residual"].astype(str) == kind).all()
            per_scan.append({"data": "photon-limited" if weighted.all() else "unweighted", "in_use": bool(in_use),
                             "tuned": [t for t in picks if t[4]], "auto_lost": best_ssim - auto[1]})
        for data in ("photon-limited", "unweighted"):
            scans = [sc for sc in per_scan if sc["data"] == data]
            if not scans:
                continue
            tuned = [t for sc in scans for t in sc["tuned"]]
            lost = [t[5] - t[1] for t in tuned]
            out.append({"residual": kind, "data": data, "in_use": sum(sc["in_use"] for sc in scans),
                        "n_scans": len(scans), "n_tuned": len(tuned), "agree": sum(t[2] for t in tuned),
                        "within_one_step": sum(t[3] <= 1 for t in tuned),
                        "ssim_lost_mean": float(np.mean(lost)) if lost else float("nan"),
                        "ssim_lost_max": float(np.max(lost)) if lost else float("nan"),
                        "auto_ssim_lost_mean": float(np.mean([sc["auto_lost"] for sc in scans]))})
    return pd.DataFrame(out, columns=["residual", "data", "in_use", "n_scans", "n_tuned", "agree", "within_one_step",
                                      "ssim_lost_mean", "ssim_lost_max", "auto_ssim_lost_mean"])


def check_markdown(result: CheckResult) -> str:
    """The Markdown twin of :func:`check`'s result: a summary line, then the two tables."""
    m, s = result.methods, result.scans
    tuned = m[m["holdout_value"] != ""]  # methods without a parameter agree by construction
    rho = s["spearman"].dropna()
    summary = [f"The holdout chose the reference's value for {int(tuned['agree'].sum())} of {len(tuned)} tuned "
               f"methods (within one grid step: {int((tuned['grid_steps'] <= 1).sum())}); SSIM lost: mean "
               f"{tuned['ssim_lost'].mean():.4f}, largest {tuned['ssim_lost'].max():.4f}. A descent from the middle "
               f"of each grid (`tomogan-scan`'s search) stops at the whole grid's choice for "
               f"{int(tuned['descent_agrees'].sum())} of them." if len(tuned) else "No method has a parameter.",
               f"The top method agreed in {int(s['top_agrees'].sum())} of {len(s)} scans; the automatic choice lost "
               f"{s['auto_ssim_lost'].mean():.4f} SSIM on average.",
               f"Spearman rho of the rankings: median {rho.median():.2f} over the {len(rho)} scans with 3 or more "
               "methods." if len(rho) else "No scan has 3 or more methods to rank."]
    lines = ["# Held-out choices against the reference", "", " ".join(summary), ""]
    r = result.residuals
    if r is not None and len(r):
        lines += ["## Which residual", "",
                  "Every candidate is scored with both residuals (`score_plain`, `score_ramp`); the choices each "
                  "would have made, against the reference's, by kind of data (`in_use`: scans whose ranking used "
                  "it):", "", _markdown_table(r), ""]
    lines += ["## Per method", "", _markdown_table(m), "", "## Per scan", "", _markdown_table(s), ""]
    return "\n".join(lines)


COST_COLUMNS = ("dataset", "what", "dose", "seconds")


def routes_table(tables, scans: Sequence[str]) -> "pandas.DataFrame":
    """Every route on the given scans: each candidate at its held-out choice, ranked, with its reference metrics.

    Parameters
    ----------
    tables : sequence of pandas.DataFrame or path
        Tables as the command writes them (one per dataset and dose), with at least the columns ``dataset, dose,
        method, value, score, chosen``; ``ssim, ssim_object, psnr, psnr_object`` (``--reference``) where known.
        Each (dataset, dose, method) of the scans needs exactly one ``chosen`` row, its smallest score (a method
        without a parameter has one row, chosen).
    scans : sequence of str
        The datasets to list (a scan's every dose is listed).

    Returns
    -------
    pandas.DataFrame
        One row per (dataset, dose, method): ``dataset, dose``; ``rank`` (by ``score``, the held-out score the
        tables ranked by, 1 = the smallest; equal scores in table order); ``route`` (:func:`candidate_label`, with
        the value chosen), ``method``, ``score``; ``ssim, ssim_object, psnr, psnr_object`` against the reference
        (NaN without one); ``ref_rank`` (by ``ssim``, 1 = the highest, equal SSIMs sharing the better rank; NaN
        where the SSIM is). Sorted by dataset, dose and rank.

    Raises
    ------
    InputError
        Naming ``--scans``: a scan with no rows in the tables; naming a table: a missing column, a repeated
        candidate, scores of one scan that cannot be compared, a method without exactly one ``chosen`` row or
        whose ``chosen`` row is not its smallest score.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"dataset": "d", "dose": "x", "method": ["fbp", "fbp-tv", "fbp-tv"], "value": ["", 0.1, 1],
    ...                   "score": [1.3, 1.1, 1.2], "chosen": [True, True, False], "ssim": [0.7, 0.6, 0.8]})
    >>> routes_table([t], ["d"])[["rank", "route", "score", "ref_rank"]].values.tolist()
    [[1, 'FBP+TV (weight 0.1)', 1.1, 2.0], [2, 'FBP', 1.3, 1.0]]
    """
    import pandas as pd

    rows = _gather(tables, reference=False)
    scans = [str(s) for s in dict.fromkeys(scans)]
    known = list(dict.fromkeys(rows["dataset"]))
    absent = [s for s in scans if s not in known]
    if absent:
        raise InputError("--scans", f"no rows of {', '.join(absent)} in the tables (their datasets: "
                                    f"{', '.join(known)})")
    out = []
    for (dataset, dose), scan in rows[rows["dataset"].isin(scans)].groupby(["dataset", "dose"], sort=False):
        picks = pd.DataFrame([_choice(g, "chosen") for _, g in scan.groupby("method", sort=False)])
        ref_ranks = picks["ssim"].rank(ascending=False, method="min", na_option="keep")
        for (_, row), rank, ref_rank in zip(picks.iterrows(), _ranks(picks["score"]), ref_ranks):
            out.append({"dataset": dataset, "dose": dose, "rank": int(rank),
                        "route": candidate_label(row["method"], row["value"]), "method": row["method"],
                        "score": float(row["score"]), **{col: float(row[col]) for col in REFERENCE_COLUMNS},
                        "ref_rank": float(ref_rank)})
    table = pd.DataFrame(out, columns=list(ROUTE_COLUMNS))
    return table.sort_values(["dataset", "dose", "rank"], kind="stable", ignore_index=True)


#: What each kind of row of a route-cost spec (``study.Plan.route_cost_spec``) is, as the table says it
COST_KINDS = {"simulation": "simulation at the scan's acquisition (all doses)",
              "matched": "scan-matched training",
              "generalist": "generalist training (shared by every scan)",
              "ranking": "held-out ranking of every route (Noise2Inverse trainings included)"}


def route_costs(benchmarks, spec: Sequence[Mapping]) -> "pandas.DataFrame":
    """What each scan's own routes cost: the wall seconds of the workflow's jobs that the plan names.

    Parameters
    ----------
    benchmarks : path
        The benchmark folder (``benchmarks/``: Snakemake's files, column ``s``).
    spec : sequence of mapping
        Rows ``{dataset, kind, dose, benchmarks}`` (``study.Plan.route_cost_spec``): ``kind`` one of
        :data:`COST_KINDS` -- ``simulation`` (the volumes simulated at the scan's acquisition, all doses: ``dose``
        empty), ``matched`` (the scan-matched training at a dose, its seeds summed), ``generalist`` (the
        generalist's training it starts from, shared by every scan), ``ranking`` (the held-out ranking at a dose,
        which runs every candidate ``k + 1`` times, so trains each Noise2Inverse route ``k + 1`` times);
        ``benchmarks`` glob patterns relative to the folder, each file counted once.

    Returns
    -------
    pandas.DataFrame
        ``dataset, what, dose, seconds`` in the spec's order, ``what`` the kind's words; rows with no file left out.

    Raises
    ------
    InputError
        A row that is not such a mapping or of an unknown kind, naming ``--costs``; a benchmark file without wall
        seconds, naming it.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "t.tsv").write_text("s\\th:m:s\\n12.5\\t0:00:12\\n")
    >>> spec = [{"dataset": "s", "kind": "matched", "dose": "x", "benchmarks": ["t.tsv", "u.tsv"]}]
    >>> route_costs(d, spec).values.tolist()
    [['s', 'scan-matched training', 'x', 12.5]]
    """
    import pandas as pd

    root = Path(benchmarks)
    rows = []
    for row in spec:
        try:
            kind, patterns = row["kind"], list(row["benchmarks"])
            dataset, dose = str(row["dataset"]), str(row["dose"])
        except (TypeError, KeyError) as exc:
            raise InputError("--costs", f"each row needs dataset, kind, dose and benchmarks (got {row!r}: "
                                        f"{type(exc).__name__} {exc})") from None
        if kind not in COST_KINDS:
            raise InputError("--costs", f"unknown kind '{kind}'; choose one of {', '.join(COST_KINDS)}")
        found = sorted({f for pattern in patterns for f in root.glob(pattern)})
        if found:
            rows.append({"dataset": dataset, "what": COST_KINDS[kind], "dose": dose,
                         "seconds": benchmark_seconds(found)})
    return pd.DataFrame(rows, columns=list(COST_COLUMNS))


_ROUTE_FORMATS = {"score": "{:.4g}", "ssim": "{:.4f}", "ssim_object": "{:.4f}", "psnr": "{:.2f}",
                  "psnr_object": "{:.2f}", "ref_rank": "{:.0f}", "seconds": "{:.1f}"}


def routes_markdown(routes, costs=None) -> str:
    """:func:`routes_table` (and :func:`route_costs`, when given) as a Markdown section, ``## Every route on your
    scans``: score to 4 significant digits, SSIM to 4 decimals, PSNR to 2, seconds to 1; ``costs`` empty: a line
    saying no benchmark was found."""
    lines = ["## Every route on your scans", "",
             "Each candidate at its held-out choice, ranked (`rank`) by how well it predicts the projections left "
             "out of its reconstruction, which needs no reference; `ssim` and `psnr` (and `ref_rank`, the order by "
             "`ssim`) are against the scan's normal-dose reference, so only a scan that has one can be checked "
             "this way.", "", _markdown_table(routes, formats=_ROUTE_FORMATS), ""]
    if costs is not None:
        lines += ["### What the scan's own routes cost", ""]
        if len(costs):
            lines += ["Wall seconds of one-core jobs of this run (Snakemake's benchmarks). The held-out ranking "
                      "trains each Noise2Inverse route k + 1 times; the generalist's training is made once for "
                      "every scan.", "", _markdown_table(costs, formats=_ROUTE_FORMATS),
                      ""]
        else:
            lines += ["No benchmark of these scans' routes was found.", ""]
    return "\n".join(lines)


_MARKDOWN_FORMATS = {"score": "{:.4g}", "spearman": "{:.2f}"}  # other numbers: 4 decimals (SSIM)


def _markdown_table(table, *, formats: Optional[Mapping[str, str]] = None) -> str:
    """A table as Markdown with its cells formatted here (parameter values stay as the tables write them);
    ``formats`` (column -> format) replace :data:`_MARKDOWN_FORMATS`."""
    formats = _MARKDOWN_FORMATS if formats is None else formats

    def cell(col, v):
        if isinstance(v, (bool, np.bool_)):
            return "yes" if v else "no"
        if isinstance(v, (float, np.floating)):
            return "n/a" if math.isnan(v) else formats.get(col, "{:.4f}").format(v)
        return str(v)
    shown = table.copy()
    for col in shown.columns:
        shown[col] = [cell(col, v) for v in table[col]]
    return shown.to_markdown(index=False, disable_numparse=True)


