"""Summarise per-slice metrics into one row per (dataset, dose, method).

Each row gives the mean, standard deviation and a 95 % confidence interval
(Student t over the evaluated slices) of SSIM and PSNR in both regions of :mod:`simulate.scores`
(field of view: ``ssim_*``/``psnr_*``; object: ``ssim_object_*``/``psnr_object_*``), the number of slices,
and its provenance: data source (simulated / synthetic-shale / tomobank:...),
backend, seed, software versions and the hash of the config that made it.
Written as CSV (the data), Markdown (for people) and LaTeX (for a paper) side by side.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import pandas as pd
from scipy import stats

from simulate.io import read_table
from simulate.plumbing import cli, write_csv

__all__ = ["summarise", "main"]

logger = logging.getLogger(__name__)

GROUP = ["dataset", "source", "dose", "dose_mode", "dose_level", "method", "model", "vgg_weights", "tuning",
         "backend", "seed", "versions"]
METRICS = ("ssim", "psnr", "ssim_object", "psnr_object")
# noise texture, resolution and pores (analysis/quality/): their means over the slices
from analysis.quality import COLUMNS as QUALITY  # noqa: E402


def _ci95(values) -> float:
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        return float("nan")
    return float(stats.t.ppf(0.975, values.size - 1) * values.std(ddof=1) / np.sqrt(values.size))


def summarise(per_slice: pd.DataFrame) -> pd.DataFrame:
    """Group per-slice rows and reduce SSIM/PSNR to mean, std, 95 % CI half-width and count."""
    rows = []
    per_slice = per_slice.copy()
    for col in ("model", "vgg_weights", "tuning"):  # per-slice files written before these columns existed
        if col not in per_slice:
            per_slice[col] = ""
        per_slice[col] = per_slice[col].astype(object).fillna("")
    for key, grp in per_slice.groupby(GROUP, sort=False, dropna=False):
        row = dict(zip(GROUP, key))
        for m in METRICS:
            if m not in grp:
                continue
            values = grp[m].dropna()  # object metrics are NaN on slices without sample
            row[f"{m}_mean"] = float(values.mean()) if len(values) else float("nan")
            row[f"{m}_std"] = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
            row[f"{m}_ci95"] = _ci95(values)
        for m in QUALITY:
            if m in grp:
                row[f"{m}_mean"] = float(grp[m].mean()) if grp[m].notna().any() else float("nan")
        row["n_slices"] = int(len(grp))
        rows.append(row)
    out = pd.DataFrame(rows)
    cols = [c for c in out.columns if c != "versions"] + ["versions"]
    return out[cols]


def to_latex(table: pd.DataFrame) -> str:
    """A LaTeX tabular of the main columns (mean +- 95 % CI), for a paper; the CSV keeps everything."""
    cols = [c for c in ("dataset", "source", "dose", "method", "model", "vgg_weights") if c in table]
    body = table[cols].copy()
    for m, digits, label in (("ssim", 3, "SSIM"), ("psnr", 2, "PSNR"), ("ssim_object", 3, "SSIM (object)"),
                             ("psnr_object", 2, "PSNR (object)")):
        if f"{m}_mean" not in table:
            continue
        body[label] = [f"{v:.{digits}f} $\\pm$ {c:.{digits}f}" if np.isfinite(c) else f"{v:.{digits}f}"
                           for v, c in zip(table[f"{m}_mean"], table[f"{m}_ci95"])]
    body["n"] = table["n_slices"]
    return body.to_latex(index=False, escape=False).replace("_", "\\_")


@cli
def main(argv=None):
    p = argparse.ArgumentParser(description="Summarise per-slice metric CSVs into one table.")
    p.add_argument("out", help="CSV to write (a .md twin is written beside it)")
    p.add_argument("inputs", nargs="+")
    p.add_argument("--config-hash", default="")
    args = p.parse_args(argv)
    table = summarise(pd.concat([read_table(path, what="per-slice metrics CSV") for path in args.inputs],
                                ignore_index=True))
    table.insert(len(table.columns) - 1, "config_hash", args.config_hash)
    out = write_csv(table, args.out)
    md = table.drop(columns=["versions"]).round(4).to_markdown(index=False)
    out.with_suffix(".md").write_text(md + "\n")
    out.with_suffix(".tex").write_text(to_latex(table))
    logger.info("%d rows -> %s", len(table), out)


if __name__ == "__main__":
    main()
