"""The study's compact result tables, from the summary table ``results/metrics/tomogan.csv``.

- **main**: one row per (test volume, dose), one column per method: FBP, SIRT, SIRT+TV, FBP+TV, FBP+BM3D,
  Noise2Inverse, TomoGAN trained here (the test volume's own model: its split's, at the configured depth with
  every loss term) and the authors' released weights; cells are ``SSIM / PSNR`` means over the evaluated
  slices, the best SSIM of the row in bold, and a last column with the settings each tuned method chose on
  the validation slices. Written twice: in the field of view and inside the object (:mod:`analysis.metrics`).
- **ablation**: every TomoGAN model on each (test volume, dose) where there are several, with its depth and loss set.

Written as Markdown (``results/tables/main.md``, pasted into docs/results.md by ``make readme``) and CSV.
``python -m analysis.tables results/metrics/tomogan.csv results/tables/main.md --main VOLUME=RUN ...``
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from analysis.classical import METHODS as CLASSICAL
from simulate.plumbing import InputError, cli, write_csv, write_text

__all__ = ["main_table", "ablation_table", "render", "main"]

logger = logging.getLogger(__name__)

# method -> column; the classical methods' labels and order are their registry's (analysis.classical)
COLUMNS = {"fbp": "FBP", **{name: m.label for name, m in CLASSICAL.items()},
           "n2i": "Noise2Inverse", "tomogan": "TomoGAN (trained here)",
           "tomogan-release": "TomoGAN (released weights)"}
REGIONS = {"fov": ("ssim", "psnr", "inside the circular field of view"),
           "object": ("ssim_object", "psnr_object", "inside the object (the sample, background excluded)")}


def _read(path) -> pd.DataFrame:
    try:
        df = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(path, f"not a readable summary table: {exc}") from None
    need = {"dataset", "dose", "method", "model", "ssim_mean", "psnr_mean", "source", "vgg_weights"}
    if need - set(df.columns):
        raise InputError(path, f"lacks columns {sorted(need - set(df.columns))}")
    for col in ("model", "vgg_weights", "tuning"):
        df[col] = df[col].fillna("") if col in df else ""
    return df


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
        row["model"] = tg["model"].iloc[0]
        row["vgg weights"] = tg["vgg_weights"].iloc[0]
        rows.append(row)
    out = pd.DataFrame(rows)
    empty = [c for c in COLUMNS.values() if c in out and not out[c].astype(bool).any()]
    return out.drop(columns=empty)


def ablation_table(df: pd.DataFrame) -> pd.DataFrame:
    """Every TomoGAN model on the (test volume, dose) pairs that several models were tested on."""
    tg = df[df["method"] == "tomogan"].copy()
    counts = tg.groupby(["dataset", "dose"])["model"].transform("count")
    tg = tg[counts > 1]
    parts = tg["model"].str.extract(r"^(?P<split>.+)-(?P<dose_>[^-]+-[^-]+)-d(?P<depth>\d+)-(?P<loss_set>.+)$")
    tg = pd.concat([tg, parts], axis=1)
    cols = ["dataset", "dose", "model", "split", "depth", "loss_set", "ssim_mean", "psnr_mean"]
    cols += [c for c in ("ssim_object_mean", "psnr_object_mean") if c in tg] + ["n_slices"]
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
                 "noise level, both relative to the input's range; † at an end of its grid, config "
                 "`classical.grids`). "
                 f"Config hash `{df['config_hash'].iloc[0] if 'config_hash' in df else ''}`.", "",
                 main_table(df, main_models, region).to_markdown(index=False), ""]
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
                   help="each test volume's own model (the others are cross-facility applications)")
    args = p.parse_args(argv)
    df = _read(args.summary)
    main_models = {}
    for item in args.main:
        ds, _, run = item.partition("=")
        main_models.setdefault(ds, set()).add(run)
    md = render(df, main_models)
    out = Path(args.out)
    write_csv(main_table(df, main_models), out.with_suffix(".csv"))
    if "ssim_object_mean" in df:
        write_csv(main_table(df, main_models, "object"), out.with_name(out.stem + "_object.csv"))
    write_text(out, md)
    logger.info("wrote %s", out)


if __name__ == "__main__":
    main()
