"""The study's compact result tables, from the summary table ``results/metrics/tomogan.csv``.

- **main**: one row per (test volume, dose), one column per method: FBP, SIRT, SIRT+TV, FBP+TV, FBP+BM3D,
  Noise2Inverse, TomoGAN trained here (the test volume's own model: its split's, at the configured depth with
  every loss term) and the authors' released weights; cells are ``SSIM / PSNR`` means over the evaluated
  slices, the best SSIM of the row in bold, and a last column with the settings each tuned method chose on
  the validation slices. Written twice: in the field of view and inside the object (:mod:`analysis.metrics`).
- **ablation**: every TomoGAN model on each (test volume, dose) where there are several, with its depth and loss set.

A model trained at several seeds is one row: the mean over its seeds (``n_seeds``; the ablation table also gives
the seeds' standard deviation of SSIM). Which run belongs to which model, split, depth and loss set comes from
the study plan's run table (``--runs``, :meth:`study.Plan.run_table`), never from parsing names.

Written as Markdown (``results/tables/main.md``, pasted into docs/results.md by ``make readme``) and CSV.
``python -m analysis.tables results/metrics/tomogan.csv results/tables/main.md --runs JSON --main VOLUME=RUN ...``
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pandas as pd

from analysis.classical import METHODS as CLASSICAL
from simulate.io import read_table
from simulate.plumbing import InputError, cli, write_csv, write_text

__all__ = ["collapse_seeds", "main_table", "quality_table", "ablation_table", "render", "main"]

logger = logging.getLogger(__name__)

# method -> column; the classical methods' labels and order are their registry's (analysis.classical)
COLUMNS = {"fbp": "FBP", **{name: m.label for name, m in CLASSICAL.items()},
           "n2i": "Noise2Inverse", "tomogan": "TomoGAN (trained here)",
           "tomogan-release": "TomoGAN (released weights)"}
REGIONS = {"fov": ("ssim", "psnr", "inside the circular field of view"),
           "object": ("ssim_object", "psnr_object", "inside the object (the sample, background excluded)")}


def _read(path) -> pd.DataFrame:
    df = read_table(path, what="summary table",
                    need=("dataset", "dose", "method", "model", "ssim_mean", "psnr_mean", "source", "vgg_weights"))
    for col in ("model", "vgg_weights", "tuning"):
        df[col] = df[col].fillna("") if col in df else ""
    return df


def collapse_seeds(df: pd.DataFrame, runs) -> pd.DataFrame:
    """TomoGAN rows of one model at several seeds -> one row: the mean of each ``*_mean`` over the seeds.

    ``runs`` is the plan's run table (rows with ``run``, ``base``, ``split``, ``depth``, ``loss_set``, ``seed``).
    The row's ``model`` becomes the base name; ``n_seeds`` counts the seeds and ``ssim_seed_sd`` is the standard
    deviation of the seeds' mean SSIM (NaN for one seed). Other methods' rows pass through with ``n_seeds`` 1.
    """
    table = pd.DataFrame(list(runs), columns=["run", "base", "split", "depth", "loss_set", "seed", "mse_warmup"])
    table["mse_warmup"] = table["mse_warmup"].fillna(0).astype(int)
    tg = df[df["method"] == "tomogan"].merge(table.drop(columns="seed"), left_on="model", right_on="run", how="left")
    unknown = sorted(set(tg.loc[tg["base"].isna(), "model"]))
    if unknown:
        raise ValueError(f"models {unknown[:3]} are not in the run table")
    means = [c for c in df.columns if c.endswith("_mean")]
    keys = ["dataset", "dose", "base"]
    first = tg.groupby(keys, sort=False).first().reset_index()
    avg = tg.groupby(keys, sort=False)[means].mean().reset_index()
    out = first.drop(columns=means).merge(avg, on=keys)
    stats = tg.groupby(keys, sort=False)["ssim_mean"].agg(n_seeds="count", ssim_seed_sd="std").reset_index()
    out = out.merge(stats, on=keys).assign(model=lambda t: t["base"]).drop(columns=["run", "base"])
    rest = df[df["method"] != "tomogan"].assign(n_seeds=1)
    return pd.concat([rest, out], ignore_index=True)


def main_table(df: pd.DataFrame, main_models: dict, region: str = "fov") -> pd.DataFrame:
    """Wide table of SSIM / PSNR per method; TomoGAN is each test volume's own model.

    ``main_models`` maps a test volume to the names of its own models (its split's, at the configured
    depth with every loss term); cross-facility applications go to the ablation table. ``region`` is
    ``fov`` or ``object`` (:data:`REGIONS`).
    """
    ssim, psnr, _ = REGIONS[region]
    if f"{ssim}_mean" not in df:
        raise ValueError(f"the summary has no {ssim}_mean column (metrics written before object metrics?)")
    own = pd.Series([m in main_models.get(d, ()) for d, m in zip(df["dataset"], df["model"])], index=df.index)
    trained = df[(df["method"] == "tomogan") & own]
    others = df[df["method"] != "tomogan"]
    rows = []
    for (ds, dose), grp in pd.concat([others, trained]).groupby(["dataset", "dose"], sort=True):
        if not (grp["method"] == "tomogan").any():
            continue
        row = {"dataset": ds, "dose": dose, "source": grp["source"].iloc[0]}
        best = grp[f"{ssim}_mean"].max()
        for method, label in COLUMNS.items():
            sel = grp[grp["method"] == method]
            if len(sel):
                s, p = sel[f"{ssim}_mean"].iloc[0], sel[f"{psnr}_mean"].iloc[0]
                cell = f"{s:.3f} / {p:.1f}"
                cell = f"**{cell}**" if s == best else cell
                tuned = sel["tuning"].iloc[0]
                row[label] = f"{cell} ({tuned})" if tuned else cell
            else:
                row[label] = ""
        tg = grp[grp["method"] == "tomogan"]
        seeds = int(tg["n_seeds"].iloc[0]) if "n_seeds" in tg else 1
        warm = int(tg["mse_warmup"].iloc[0]) if "mse_warmup" in tg else 0
        notes = ([f"mean of {seeds} seeds"] if seeds > 1 else []) + ([f"MSE warm start {warm} steps"] if warm else [])
        row["model"] = tg["model"].iloc[0] + (f" ({', '.join(notes)})" if notes else "")
        row["vgg weights"] = tg["vgg_weights"].iloc[0]
        rows.append(row)
    out = pd.DataFrame(rows)
    empty = [c for c in COLUMNS.values() if c in out and not out[c].astype(bool).any()]
    return out.drop(columns=empty)


QUALITY_COLUMNS = {"nps_mean_freq": "NPS mean freq. (c/px)", "noise_rel": "noise / level", "frc_cutoff": "FRC 0.5 (c/px)",
                   "edge_width": "edge 10-90 % (px)", "porosity_error": "porosity error",
                   "pore_detection": "pores found", "pore_detection_small": "small pores found",
                   "false_pores": "false pores / slice"}


def quality_table(df: pd.DataFrame, main_models: dict) -> pd.DataFrame:
    """Noise texture, resolution and the porosity task (:mod:`analysis.quality`) of every method on the main
    table's rows: one row per (test volume, dose, method), means over the slices (and seeds)."""
    have = [c for c in QUALITY_COLUMNS if f"{c}_mean" in df]
    if not have:
        return pd.DataFrame()
    own = pd.Series([m in main_models.get(d, ()) for d, m in zip(df["dataset"], df["model"])], index=df.index)
    keep = df[((df["method"] == "tomogan") & own) | (df["method"] != "tomogan")]
    pairs = set(zip(keep.loc[keep["method"] == "tomogan", "dataset"], keep.loc[keep["method"] == "tomogan", "dose"]))
    keep = keep[[(d, s) in pairs for d, s in zip(keep["dataset"], keep["dose"])]]
    order = {m: i for i, m in enumerate(COLUMNS)}
    out = keep.assign(method=keep["method"].map(COLUMNS).fillna(keep["method"]),
                      _o=keep["method"].map(order)).sort_values(["dataset", "dose", "_o"])
    out = out[["dataset", "dose", "method"] + [f"{c}_mean" for c in have]]
    return out.rename(columns={f"{c}_mean": QUALITY_COLUMNS[c] for c in have}).round(3)


def ablation_table(df: pd.DataFrame) -> pd.DataFrame:
    """Every TomoGAN model on the (test volume, dose) pairs that several models were tested on (``df`` as
    :func:`collapse_seeds` returns it)."""
    tg = df[df["method"] == "tomogan"].copy()
    counts = tg.groupby(["dataset", "dose"])["model"].transform("count")
    tg = tg[counts > 1]
    cols = ["dataset", "dose", "model", "split", "depth", "loss_set"] + (["mse_warmup"] if tg.get(
        "mse_warmup", pd.Series(dtype=int)).fillna(0).any() else []) + ["ssim_mean", "psnr_mean"]
    cols += [c for c in ("ssim_object_mean", "psnr_object_mean") if c in tg] + ["n_slices", "n_seeds", "ssim_seed_sd"]
    out = tg[cols]
    return out.sort_values(["dataset", "dose", "split", "depth", "loss_set"]).round(4)


def render(df: pd.DataFrame, main_models: dict) -> str:
    """Both tables as Markdown, with a note on what the numbers are."""
    text = []
    for region, (ssim, _, where) in REGIONS.items():
        if f"{ssim}_mean" not in df:
            continue
        text += [f"SSIM / PSNR (dB) {where} against the normal-dose reference, mean over the evaluated central "
                 "slices of each test volume; best SSIM of a row in bold. In parentheses, the parameter each "
                 "classical method chose on the validation slices (n: SIRT iterations, w: TV weight, σ: BM3D "
                 "noise level, both relative to the input's range, λ: TV-PDHG's weight; † at an end of its grid, "
                 "analysis/classical.py's or config `classical.grids`). "
                 f"Config hash `{df['config_hash'].iloc[0] if 'config_hash' in df else ''}`.", "",
                 main_table(df, main_models, region).to_markdown(index=False), ""]
    quality = quality_table(df, main_models)
    if len(quality):
        text += ["Noise texture, resolution and the porosity task on the same slices (analysis/quality/; NaN where "
                 "a measure does not apply: no phantom, no uniform region or edge large enough). NPS mean frequency: "
                 "higher is finer, less blotchy residual noise; noise / level, edge width and false pores: lower is "
                 "better; FRC cutoff and pores found: higher is better; porosity error: 0 is best.", "",
                 quality.to_markdown(index=False), ""]
    ab = ablation_table(df)
    if len(ab):
        text += ["Every model on the volumes several models were tested on (ablations, cross-facility):", "",
                 ab.to_markdown(index=False), ""]
    return "\n".join(text)


@cli
def main(argv=None):
    p = argparse.ArgumentParser(description="Compact result tables from results/metrics/tomogan.csv.")
    p.add_argument("summary", help="the summary table (analysis.summary output)")
    p.add_argument("out", help="Markdown file to write (a CSV of the main table is written beside it)")
    p.add_argument("--main", nargs="*", default=[], metavar="DATASET=RUN",
                   help="each test volume's own models, every seed (the others are cross-facility applications)")
    p.add_argument("--runs", required=True, help="the plan's run table as JSON (Plan.run_table)")
    args = p.parse_args(argv)
    try:
        runs = json.loads(args.runs)
    except ValueError as exc:
        raise InputError("--runs", f"not JSON: {exc}") from None
    try:
        df = collapse_seeds(_read(args.summary), runs)
    except ValueError as exc:
        raise InputError(args.summary, str(exc)) from None
    table = {r["run"]: r["base"] for r in runs}
    main_models = {}
    for item in args.main:
        ds, _, run = item.partition("=")
        main_models.setdefault(ds, set()).add(table.get(run, run))
    md = render(df, main_models)
    out = Path(args.out)
    write_csv(main_table(df, main_models), out.with_suffix(".csv"))
    if "ssim_object_mean" in df:
        write_csv(main_table(df, main_models, "object"), out.with_name(out.stem + "_object.csv"))
    write_text(out, md)
    logger.info("wrote %s", out)


if __name__ == "__main__":
    main()
