"""The learning-curve experiments the default training budget is chosen from, side by side.

Each experiment is an override of ``config/default.yaml`` in ``config/experiments/`` (``learning-curve-scratch``:
the ablation's four loss sets at foam, sparse-8, depth 3, three seeds, 600 steps with the full loss from the
first; ``learning-curve-warm``: the same with 300 steps of pixel MSE alone first, 525 in all), trained by the
workflow's ``learning_curve`` rule (docs/claims.md, "Trained long enough to tell?"). Not a unit test: each
experiment trains twelve models (about half an hour on 2 cores). Writes a CSV (default
``results/bench/learning_curve_budget.csv``, a Markdown twin beside it)::

    python bench/learning_curve_budget.py [--experiments NAME ...] [--workdir DIR] [--reuse NAME=DIR ...]
        [--out results/bench/learning_curve_budget.csv]

For each experiment not given by ``--reuse`` it runs Snakemake in ``DIR/NAME`` (``--configfile
config/default.yaml config/experiments/NAME.yaml``, target ``results/claims/learning_curve_loss-sets_summary.csv``)
and waits; ``--reuse NAME=DIR`` reads a finished experiment's folder instead (``DIR`` holds its ``results/``).
Without ``--experiments``, every experiment file is run, or, when ``--reuse`` is given, only the reused ones.

One row per experiment and loss set: the settings (steps trained, warm-up steps, seeds), the mean validation
SSIM over the seeds with its lowest and highest at every 75th step, the warm start's end and the last step (from
``learning_curve_loss-sets.csv``), the median training wall time of one run (``benchmarks/train/`` beside it), and
the experiment's pairwise reading from the summary (``pairs``, ``settled``, ``stable_since``). A summary written
before the pairwise reading existed gets it recomputed from the curves (:func:`analysis.learning_curve.pairs_settled`),
and says so.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulate.io import benchmark_seconds, cpu_name  # noqa: E402
from simulate.plumbing import cli, write_csv, write_text  # noqa: E402
import study  # noqa: E402

EXPERIMENTS = ROOT / "config" / "experiments"
TARGET = "results/claims/learning_curve_loss-sets_summary.csv"
CURVES = "results/claims/learning_curve_loss-sets.csv"
LOSS_SETS = tuple(study.LOSS_SETS)  # the study's loss sets, in the order of the tables
EVERY = 75  # the SSIM is shown at every EVERY-th step (and at the warm start's end and the last step)


def _snakemake(workdir: Path, name: str, *, log) -> subprocess.Popen:
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--cores", "2", "--rerun-incomplete", "--configfile", str(ROOT / "config" / "default.yaml"),
           str(EXPERIMENTS / f"{name}.yaml"), "--", TARGET]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env, start_new_session=True)


def loss_set(base: str) -> str:
    """The loss set a run is named by (its name's longest known ending), else the name itself.

    >>> loss_set("foam-sparse-8-d3-mse-adv"), loss_set("foam-sparse-8-d3-mse-ablation"), loss_set("other")
    ('mse-adv', 'mse', 'other')
    """
    base = base.removesuffix("-" + study.ABLATION_TAG)
    ends = [s for s in LOSS_SETS if base.endswith("-" + s)]
    return max(ends, key=len) if ends else base


def split_seed(run: str):
    """A run's folder name as (base run, seed); seed None when the name has none.

    >>> split_seed("foam-sparse-8-d3-all-s2"), split_seed("foam-sparse-8-d3-all")
    (('foam-sparse-8-d3-all', 2), ('foam-sparse-8-d3-all', None))
    """
    m = re.fullmatch(r"(.+)-s(\d+)", run)
    return (m.group(1), int(m.group(2))) if m else (run, None)


def report_steps(steps, warm_start: int = 0, every: int = EVERY) -> list:
    """The validated steps shown: every ``every``-th, the warm start's end (if any) and the last.

    >>> report_steps(range(25, 601, 25)), report_steps(range(25, 526, 25), 300, 100)
    ([75, 150, 225, 300, 375, 450, 525, 600], [100, 200, 300, 400, 500, 525])
    """
    steps = sorted(set(int(s) for s in steps))
    if not steps:
        return []
    keep = {s for s in steps if s % every == 0} | {steps[-1]} | ({warm_start} & set(steps) if warm_start else set())
    return sorted(keep)


def shorten(text: str, bases) -> str:
    """``text`` with every base run name replaced by its loss set (longest names first).

    >>> shorten("x-d3-mse-vgg ? x-d3-mse (+0.005)", ["x-d3-mse", "x-d3-mse-vgg"])
    'mse-vgg ? mse (+0.005)'
    """
    names = sorted(set(bases), key=len, reverse=True)
    if not names:
        return text
    return re.sub("|".join(re.escape(n) for n in names), lambda m: loss_set(m.group(0)), text)


def complete_summary(summary: dict, curves: pd.DataFrame, warm_start: int) -> dict:
    """The learning-curve summary with the fields an older one lacks (``warm_start``, ``pairs``, ``state``)
    filled in from the curves, as :mod:`analysis.learning_curve` computes them now; ``note`` says which."""
    from analysis import learning_curve as lc

    out = dict(summary)
    filled = []
    if pd.isna(out.get("warm_start", np.nan)):
        out["warm_start"] = warm_start
        filled.append("warm_start")
    for key, default in (("fraction", lc.STABLE_FRACTION), ("window", lc.WINDOW), ("margin", lc.MARGIN)):
        if pd.isna(out.get(key, np.nan)):
            out[key] = default
    if pd.isna(out.get("pairs", np.nan)) or pd.isna(out.get("state", np.nan)):
        pairs = lc.pairs_settled(curves, fraction=float(out["fraction"]), window=int(out["window"]),
                                 margin=float(out["margin"]), start=int(out["warm_start"]))
        out["pairs"] = lc.format_pairs(pairs)
        out["n_judged"] = lc.judged_validations(curves, fraction=float(out["fraction"]), start=int(out["warm_start"]))
        out["state"] = lc.state(pairs, out["n_judged"])
        out["settled"] = out["state"] == "settled"
        filled += ["pairs", "state"]
    out["note"] = f"recomputed from the curves: {', '.join(filled)}" if filled else ""
    return out


def budget_table(name: str, curves: pd.DataFrame, logs: dict, seconds: dict, summary: dict) -> pd.DataFrame:
    """One experiment's rows: one per loss set, its settings, SSIM at the steps shown, wall time, the verdict.

    Parameters
    ----------
    name : str
        The experiment (its ``config/experiments/`` file's stem).
    curves : DataFrame
        ``learning_curve_loss-sets.csv``: ``step``, ``base``, ``mean``, ``lo``, ``hi``, ``n_seeds``.
    logs : dict of run folder name -> its ``log.csv`` (DataFrame with ``step``)
    seconds : dict of run folder name -> its training wall time in seconds (the benchmark's ``s``)
    summary : dict
        The summary's row, complete (:func:`complete_summary`): ``warm_start``, ``pairs``, ``state``, ``settled``,
        ``stable_since``, ``last_step``, ``fraction``, ``window``, ``margin``.

    Returns
    -------
    DataFrame
        Columns ``experiment``, ``loss_set``, ``run``, ``max_iter`` (the last logged step), ``mse_warmup``,
        ``seeds``, ``ssim_<step>``/``_lo``/``_hi`` per step shown, ``train_s_median``, ``runs_timed``,
        ``stable_since``, ``last_step``, ``settled``, ``state``, ``n_judged``, ``pairs`` (and the ``fraction``,
        ``window``, ``margin`` they
        were read with), ``note``.
    """
    warm = int(summary["warm_start"])
    steps = report_steps(curves["step"], warm)
    bases = sorted(set(curves["base"]), key=lambda b: (LOSS_SETS.index(loss_set(b)) if loss_set(b) in LOSS_SETS
                                                       else len(LOSS_SETS), b))
    rows = []
    for base in bases:
        runs = {run: seed for run, (b, seed) in ((r, split_seed(r)) for r in logs) if b == base}
        times = [seconds[r] for r in runs if r in seconds]
        row = {"experiment": name, "loss_set": loss_set(base), "run": base,
               "max_iter": int(max(logs[r]["step"].max() for r in runs)) if runs else np.nan,
               "mse_warmup": warm, "seeds": " ".join(str(s) for s in sorted(s for s in runs.values() if s is not None))}
        mine = curves[curves["base"] == base].set_index("step")
        for step in steps:
            for key, col in (("", "mean"), ("_lo", "lo"), ("_hi", "hi")):
                row[f"ssim_{step}{key}"] = float(mine.at[step, col]) if step in mine.index else np.nan
        row.update(train_s_median=float(np.median(times)) if times else np.nan, runs_timed=len(times),
                   stable_since=int(summary["stable_since"]), last_step=int(summary["last_step"]),
                   settled=bool(summary["settled"]), state=summary["state"], n_judged=int(summary["n_judged"]),
                   pairs=shorten(str(summary["pairs"]), bases),
                   fraction=float(summary["fraction"]), window=int(summary["window"]),
                   margin=float(summary["margin"]), note=summary.get("note", ""))
        rows.append(row)
    return pd.DataFrame(rows)


def _cell(mean, lo, hi) -> str:
    return "" if pd.isna(mean) else f"{mean:.3f} ({lo:.2f}–{hi:.2f})"


def render(table: pd.DataFrame, *, cpu: str, date: str, sources: dict) -> str:
    """The Markdown twin: a header line, one row per experiment and loss set, then each experiment's reading.

    ``sources`` maps each experiment to where its numbers came from: (its experiment file, its results folder).
    """
    steps = sorted({int(c[5:]) for c in table.columns if re.fullmatch(r"ssim_\d+", c)})
    wide = pd.DataFrame({"experiment": table["experiment"], "loss set": table["loss_set"],
                         "steps": table["max_iter"].astype("Int64"), "warm-up": table["mse_warmup"],
                         "seeds": table["seeds"]})
    for step in steps:
        wide[f"SSIM @{step}"] = [_cell(*r) for r in table[[f"ssim_{step}", f"ssim_{step}_lo", f"ssim_{step}_hi"]]
                                 .itertuples(index=False)]
    wide["train s/run"] = table["train_s_median"].map(lambda s: "" if pd.isna(s) else f"{s:.0f}")
    prefix = os.path.commonprefix(list(table["run"]))
    prefix = prefix[:prefix.rfind("-") + 1] if prefix else ""
    head = (f"Learning-curve experiments (runs `{prefix}<loss set>`), on {cpu}, {date}: mean validation SSIM "
            "over the seeds (lowest–highest) at the steps shown, and the median training wall time of one run "
            "(seconds), each run training beside another on 2 cores. From "
            + ", ".join(f"`{file}`" for file, _ in sources.values())
            + ".")
    lines = [head, "", wide.to_markdown(index=False), ""]
    for name, g in table.groupby("experiment", sort=False):
        first = g.iloc[0]
        warm = f" after the warm start's {int(first['mse_warmup'])}" if first["mse_warmup"] else ""
        note = f"; {first['note']}" if first["note"] else ""
        lines.append(f"- **{name}**: {first['state']} ({int(first['n_judged'])} validations judged); ranking stable "
                     f"since step "
                     f"{int(first['stable_since'])} of {int(first['last_step'])}; pairs over the last "
                     f"{first['fraction']:.0%} of the steps{warm}, curves averaged over {int(first['window'])} "
                     f"validations, margin {first['margin']:g}{note}: {first['pairs']}")
    lines += ["", "Pairs: `>` ordered (the first stayed ahead), `~` equivalent (within the margin), `?` unsettled "
                  "(crossed by more than the margin); in brackets the final gap."]
    return "\n".join(lines) + "\n"


def read_experiment(name: str, results: Path):
    """(curves, complete summary, logs, benchmark seconds) of one finished experiment's ``results`` folder."""
    from simulate.io import read_table

    curves = read_table(results / CURVES.removeprefix("results/"), what="learning-curve table",
                        need=("step", "base", "mean", "lo", "hi"))
    summary = read_table(results / TARGET.removeprefix("results/"), what="learning-curve summary",
                         need=("stable_since", "last_step")).iloc[0].to_dict()
    bases = set(curves["base"])
    logs = {p.parent.name: read_table(p, what="training log", need=("step",))
            for p in sorted((results / "models").glob("*/log.csv")) if split_seed(p.parent.name)[0] in bases}
    seconds = {}
    for run in logs:
        path = results.parent / study.Paths.benchmark("train", run=run)  # beside results/
        if path.is_file():
            seconds[run] = benchmark_seconds([path])
    file = EXPERIMENTS / f"{name}.yaml"
    tg = (yaml.safe_load(file.read_text()) or {}).get("tomogan", {}) if file.is_file() else {}
    settings = dict(tg.get("train") or {}, **(tg.get("ablation") or {}).get("train", {}))  # the ablation's own last
    return curves, complete_summary(summary, curves, int(settings.get("mse_warmup", 0))), logs, seconds


@cli
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--experiments", nargs="+", metavar="NAME",
                   help="config/experiments/NAME.yaml to run (default: all, or only the reused ones with --reuse)")
    p.add_argument("--workdir", help="folder the experiments run in, one subfolder each (default: a new temporary one)")
    p.add_argument("--reuse", nargs="+", default=[], metavar="NAME=DIR",
                   help="read the finished experiment NAME from DIR (holding its results/) instead of running it")
    p.add_argument("--out", default="results/bench/learning_curve_budget.csv")
    args = p.parse_args(argv)
    reuse = {}
    for item in args.reuse:
        name, sep, folder = item.partition("=")
        if not sep or not name or not (Path(folder) / "results").is_dir():
            raise SystemExit(f"error: --reuse {item}: expected NAME=DIR with DIR/results a folder")
        reuse[name] = Path(folder)
    names = args.experiments or ([] if reuse else sorted(f.stem for f in EXPERIMENTS.glob("*.yaml")))
    names += [n for n in reuse if n not in names]
    missing = [n for n in names if n not in reuse and not (EXPERIMENTS / f"{n}.yaml").is_file()]
    if missing:
        raise SystemExit(f"error: no experiment file {', '.join(str(EXPERIMENTS / f'{n}.yaml') for n in missing)}")
    top = Path(args.workdir or tempfile.mkdtemp(prefix="learning-curve-budget-"))
    for name in [n for n in names if n not in reuse]:
        work = top / name
        work.mkdir(parents=True, exist_ok=True)
        print(f"running {name} in {work} (log {top / (name + '.log')})", flush=True)
        with open(top / f"{name}.log", "w") as log:
            if _snakemake(work, name, log=log).wait() != 0:
                raise SystemExit(f"error: {top / (name + '.log')}: the {name} experiment failed")
        reuse[name] = work
    parts, sources = [], {}
    for name in names:
        curves, summary, logs, seconds = read_experiment(name, reuse[name] / "results")
        parts.append(budget_table(name, curves, logs, seconds, summary))
        file = EXPERIMENTS / f"{name}.yaml"
        sources[name] = (str(file.relative_to(ROOT)) if file.is_file() else f"{name} (no experiment file)",
                         str(reuse[name] / "results"))
    cpu, date = cpu_name(), datetime.date.today().isoformat()
    table = pd.concat(parts, ignore_index=True)
    out = write_csv(table.assign(cpu=cpu, date=date, source=table["experiment"].map(lambda n: sources[n][0]),
                                 results=table["experiment"].map(lambda n: sources[n][1])), args.out)
    write_text(out.with_suffix(".md"), render(table, cpu=cpu, date=date, sources=sources))
    print(out.with_suffix(".md").read_text())
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
