"""What a finished run cost, per rule: the budget table of a study.

Reads every Snakemake benchmark file of a run (``benchmarks/<job>.tsv``, one per job: wall seconds, CPU
seconds, peak memory) and sums them per rule, so that new work can find its room in the budget (``make all`` on
the default config must fit 90 minutes on 2 cores). Writes a CSV (default ``results/bench/run_cost.csv``) and a
Markdown twin beside it, which ``python -m study.pages docs/performance.md --blocks cost`` pastes::

    python bench/run_cost.py [--results results] [--out results/bench/run_cost.csv]

Columns: ``rule``, ``jobs``, ``wall_min`` and ``cpu_min`` (sums over the rule's jobs: on 2 cores two jobs run side
by side, so the wall sums exceed the run's duration), ``cpu_share`` (of all the jobs' CPU), ``max_rss_mib`` (the
largest job's). A last row ``all jobs`` sums them. The Markdown names the CPU and the run's **span**: from the first
job's start (its benchmark file's time less its wall seconds) to the last job's end, which is the wall time of the
run less Snakemake's start-up and the report. Jobs of a run that was interrupted and resumed count once, with their
last benchmark (Snakemake overwrites it).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulate.io import cpu_name, read_benchmark  # noqa: E402
from study.paths import BENCHMARKS  # noqa: E402
from simulate.plumbing import InputError, cli, write_csv, write_text  # noqa: E402

__all__ = ["read_benchmarks", "cost_table", "render", "main"]


def read_benchmarks(folder) -> pd.DataFrame:
    """One row per job: ``rule`` (the first folder under ``folder``), ``job``, ``s``, ``cpu_time``, ``max_rss``,
    ``end`` (the file's modification time, seconds since the epoch)."""
    folder = Path(folder)
    rows = []
    for path in sorted(folder.rglob("*.tsv")):
        last = read_benchmark(path, need=("s", "cpu_time", "max_rss"))
        if last is None:
            continue
        rel = path.relative_to(folder)
        rows.append({"rule": rel.parts[0] if len(rel.parts) > 1 else rel.stem, "job": str(rel.with_suffix("")),
                     "s": float(last["s"]), "cpu_time": float(pd.to_numeric(last["cpu_time"], errors="coerce")),
                     "max_rss": float(pd.to_numeric(last["max_rss"], errors="coerce")),
                     "end": os.path.getmtime(path)})
    if not rows:
        raise InputError(folder, "no benchmark files: run the workflow first")
    return pd.DataFrame(rows)


def cost_table(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per rule, dearest first by CPU, and a last row ``all jobs``."""
    g = jobs.groupby("rule")
    table = pd.DataFrame({"jobs": g.size(), "wall_min": g["s"].sum() / 60, "cpu_min": g["cpu_time"].sum() / 60,
                          "max_rss_mib": g["max_rss"].max()}).sort_values("cpu_min", ascending=False)
    table["cpu_share"] = table["cpu_min"] / table["cpu_min"].sum()
    total = pd.DataFrame({"jobs": [len(jobs)], "wall_min": [jobs["s"].sum() / 60],
                          "cpu_min": [jobs["cpu_time"].sum() / 60], "max_rss_mib": [jobs["max_rss"].max()],
                          "cpu_share": [1.0]}, index=["all jobs"])
    out = pd.concat([table, total]).rename_axis("rule").reset_index()
    return out[["rule", "jobs", "wall_min", "cpu_min", "cpu_share", "max_rss_mib"]]


def span_min(jobs: pd.DataFrame) -> float:
    """Minutes from the first job's start to the last job's end."""
    return float((jobs["end"].max() - (jobs["end"] - jobs["s"]).min()) / 60)


def render(table: pd.DataFrame, *, span: float, cpu: str, cores: int) -> str:
    shown = table.copy()
    for col in ("wall_min", "cpu_min"):
        shown[col] = shown[col].map(lambda v: f"{v:.1f}")
    shown["cpu_share"] = shown["cpu_share"].map(lambda v: f"{100 * v:.0f} %")
    shown["max_rss_mib"] = shown["max_rss_mib"].map(lambda v: f"{v:.0f}")
    total = table.iloc[-1]
    head = (f"CPU: {cpu}, {cores} cores. Span of the run (first job's start to last job's end): **{span:.1f} min**; "
            f"the jobs' wall time {total['wall_min']:.1f} min, {total['wall_min'] / span:.2f} jobs at a time on "
            f"average. Their CPU time, {total['cpu_min']:.1f} min, is Snakemake's sample of it (every 30 s after a "
            "job's first 15 s, so the last seconds of a long job are missed): a lower bound.")
    return head + "\n\n" + shown.to_markdown(index=False) + "\n"


@cli
def main(argv=None):
    p = argparse.ArgumentParser(description="Per-rule cost of a finished run, from its Snakemake benchmark files.")
    p.add_argument("--results", default="results", help="the run's results folder (the table goes to its bench/)")
    p.add_argument("--benchmarks", default=None, help="the run's benchmark folder (default: benchmarks/ beside "
                   "RESULTS, where the workflow writes them)")
    p.add_argument("--out", default=None, help="CSV to write (default: RESULTS/bench/run_cost.csv; .md beside it)")
    p.add_argument("--cores", type=int, default=os.cpu_count(), help="cores the run had (default: this machine's)")
    args = p.parse_args(argv)
    jobs = read_benchmarks(Path(args.benchmarks) if args.benchmarks else Path(args.results).parent / BENCHMARKS)
    table = cost_table(jobs)
    out = Path(args.out or Path(args.results) / "bench" / "run_cost.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(table, out)
    text = render(table, span=span_min(jobs), cpu=cpu_name(), cores=args.cores)
    write_text(out.with_suffix(".md"), text)
    print(text)


if __name__ == "__main__":
    main()
