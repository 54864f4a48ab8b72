"""The study's figures, one function each; ``python -m analysis.figures <figure> ...`` for the workflow.

Every figure reads the workflow's files (reconstructions and enhanced volumes as ``/recon`` + ``/slices``,
per-slice metric CSVs, training logs, timing CSV), never recomputes what a rule measured, and is written as
PNG and PDF side by side. Images share one grey scale per figure (the reference's 0.5..99.5 percentile
range) with a colour bar in the data's units; curves differ by line style as well as colour, so that a
grayscale print still reads.

The slice shown is the central evaluated slice; a line profile is the 200 pixels (or the whole width,
if narrower) centred on the slice centre along the row through the middle of the field of view.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from simulate.io import read_array, read_attrs, read_table  # noqa: E402
from simulate.plumbing import InputError, atomic_path, cli, json_argument  # noqa: E402

__all__ = ["read_slice", "profile", "image_grid", "dose_series", "metric_bars", "feature_values",
           "timing_bars", "training_curves", "claims_forest", "grey_window", "save_figure", "draw", "main"]

logger = logging.getLogger(__name__)

UNITS = "attenuation (1/pixel)"
STYLES = [dict(color="0.55", ls="-", lw=1.6), dict(color="k", ls="--", lw=1.2), dict(color="tab:red", ls=":", lw=1.6)]
PROFILE_LENGTH = 200


# -----------------------------------------------------------------------------
# data access


def read_slice(path, index: Optional[int] = None) -> Tuple[np.ndarray, int, dict]:
    """One slice of a volume file: the one with volume index ``index``, else the central one stored.

    Returns (image, its volume index, the file's attributes).
    """
    rec = read_array(path, "/recon", ndim=3)
    idx = read_array(path, "/slices", ndim=1, dtype_kind="iu", dtype=np.int64)
    if index is None:
        index = int(idx[len(idx) // 2])
    where = np.flatnonzero(idx == index)
    if not where.size:
        raise InputError(path, f"holds no slice {index} (it has {idx.min()}..{idx.max()})")
    return rec[int(where[0])], int(index), read_attrs(path)


def profile(image: np.ndarray, length: int = PROFILE_LENGTH) -> Tuple[np.ndarray, np.ndarray]:
    """The horizontal line profile through the image centre: (pixel positions, values)."""
    rows, cols = image.shape
    n = min(length, cols)
    start = (cols - n) // 2
    x = np.arange(start, start + n)
    return x, image[rows // 2, start:start + n]


def grey_window(reference: np.ndarray) -> Tuple[float, float]:
    """The grey-level window every panel of a figure shares: the 0.5 and 99.5 percentiles of ``reference``."""
    lo, hi = np.percentile(reference, [0.5, 99.5])
    return float(lo), float(hi)


def save_figure(fig, out) -> None:
    """The figure as PNG at ``out`` and PDF beside it, each written atomically (the PNG, the rule's target, last)."""
    out = Path(out)
    with atomic_path(out.with_suffix(".pdf")) as pdf:
        fig.savefig(pdf, bbox_inches="tight")
    with atomic_path(out) as png:
        fig.savefig(png, dpi=150, bbox_inches="tight")
    plt.close(fig)
    logger.info("wrote %s (and .pdf)", out)


def _mean_metric(csvs: Sequence) -> pd.DataFrame:
    """Per-slice metric CSVs -> mean SSIM (field of view and object) per (dataset, dose, method, model)."""
    df = pd.concat([read_table(path, what="metrics CSV") for path in csvs], ignore_index=True)
    df["model"] = df.get("model", pd.Series([""] * len(df))).fillna("")
    if "ssim_object" not in df:
        df["ssim_object"] = np.nan
    return df.groupby(["dataset", "dose", "method", "model"], as_index=False)[["ssim", "ssim_object"]].mean()


def _score_text(table: pd.DataFrame, path) -> str:
    """``SSIM 0.751 / obj. 0.831``: field-of-view and object SSIM of the method stored in ``path``."""
    fov, obj = _lookup(table, path), _lookup(table, path, "ssim_object")
    return f"SSIM {fov:.3f} / obj. {obj:.3f}" if np.isfinite(obj) else f"SSIM {fov:.3f}"


def _lookup(table: pd.DataFrame, path, metric="ssim") -> float:
    """The mean metric of the method stored in ``path`` (matched by its attributes), NaN if absent."""
    a = read_attrs(path)
    sel = table[(table["dataset"] == a.get("dataset")) & (table["dose"] == a.get("dose"))
                & (table["method"] == a.get("method")) & (table["model"] == a.get("run", ""))]
    return float(sel[metric].iloc[0]) if len(sel) else float("nan")


def seed_spread(values) -> Tuple[float, float, float]:
    """(mean, mean - min, max - mean) of one panel's scores over its seeds, NaN ignored; a single score has no spread.

    >>> np.round(seed_spread([0.7, 0.8, 0.9]), 12).tolist()
    [0.8, 0.1, 0.1]
    """
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if not len(v):
        return float("nan"), 0.0, 0.0
    mean = float(v.mean())
    return mean, float(mean - v.min()), float(v.max() - mean)


def _inset(ax, image, vmin, vmax, frac=0.25):
    """A 2x zoom of the centre of ``image`` in the lower right corner of ``ax``."""
    h, w = image.shape
    ch, cw = int(h * frac / 2), int(w * frac / 2)
    crop = image[h // 2 - ch:h // 2 + ch, w // 2 - cw:w // 2 + cw]
    sub = ax.inset_axes([0.58, 0.02, 0.4, 0.4])
    sub.imshow(crop, cmap="gray", vmin=vmin, vmax=vmax)
    sub.set_xticks([]), sub.set_yticks([])
    for spine in sub.spines.values():
        spine.set_edgecolor("white")
    ax.add_patch(plt.Rectangle((w // 2 - cw, h // 2 - ch), 2 * cw, 2 * ch, fill=False, ec="white", lw=0.8))


# -----------------------------------------------------------------------------
# figures


def image_grid(rows: Sequence[Tuple[str, Sequence[Tuple[str, str]]]], out, *, metrics: Sequence = (),
               title: str = "", inset: bool = True, bars: Optional[str] = None,
               seeds: Optional[Dict[str, Sequence[str]]] = None) -> None:
    """Rows of images from volume files, the same slice in each row, one grey scale per row.

    Parameters
    ----------
    rows : list of (row label, list of (panel title, file))
        The first file of a row is its reference: it sets the grey scale and the slice shown.
    metrics : per-slice metric CSVs
        When given, each panel title gets its mean SSIM (the reference's panel excepted).
    bars : str, optional
        A last column plotting SSIM per panel of each row (e.g. "SSIM vs depth d").
    seeds : {panel title: files}, optional
        Every seed's file of a panel whose image is one seed's: its bar is the mean over them, with the range
        over seeds as whiskers, and its title says that the image is the first seed's.
    """
    seeds = seeds or {}
    table = _mean_metric(metrics) if metrics else None
    ncols = max(len(panels) for _, panels in rows) + (1 if bars else 0)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(2.6 * ncols, 2.7 * len(rows)), squeeze=False,
                             layout="constrained")
    for r, (label, panels) in enumerate(rows):
        ref, index, _ = read_slice(panels[0][1])
        vmin, vmax = grey_window(ref)
        scores = []
        for c, (name, path) in enumerate(panels):
            img = ref if c == 0 else read_slice(path, index)[0]
            im = axes[r, c].imshow(img, cmap="gray", vmin=vmin, vmax=vmax)
            text = name
            if table is not None and c > 0:
                paths = seeds.get(name, [path])
                scores.append((name, [_lookup(table, p) for p in paths],
                               [_lookup(table, p, "ssim_object") for p in paths]))
                text += (f" (first of {len(paths)} seeds)" if name in seeds else "") + "\n" + _score_text(table, path)
            axes[r, c].set_title(text, fontsize=8)
            axes[r, c].set_xticks([]), axes[r, c].set_yticks([])
            if inset:
                _inset(axes[r, c], img, vmin, vmax)
        axes[r, 0].set_ylabel(f"{label}\nslice {index}", fontsize=8)
        fig.colorbar(im, ax=axes[r, :len(panels)].tolist(), fraction=0.02, pad=0.01).set_label(UNITS, fontsize=7)
        for c in range(len(panels), ncols - (1 if bars else 0)):
            axes[r, c].axis("off")
        if bars:
            ax = axes[r, -1]
            names = [n for n, _, _ in scores]
            x = np.arange(len(scores))
            for shift, k, style in ((-0.2, 1, dict(color="0.5", hatch="//", label="field of view")),
                                    (0.2, 2, dict(color="0.85", label="object"))):
                mean, below, above = np.array([seed_spread(sc[k]) for sc in scores]).T
                ax.bar(x + shift, mean, 0.4, yerr=[below, above], capsize=2, edgecolor="k", **style)
            ax.set_xticks(x, names, rotation=30, fontsize=7, ha="right")
            ax.set_ylabel("SSIM" + (" (mean, range over seeds)" if seeds else ""), fontsize=8)
            # above the bars, not over one of them
            ax.legend(fontsize=6, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
            finite = [v for _, s, o in scores for v in (*s, *o) if np.isfinite(v)]
            if finite:
                ax.set_ylim(max(0.0, min(finite) - 0.05), min(1.0, max(finite) + 0.05))
            ax.set_title(bars, fontsize=8, pad=14)
    if title:
        fig.suptitle(title, fontsize=10)
    save_figure(fig, out)


def dose_series(levels: Sequence[Tuple[str, str, str]], reference, out, *, metrics: Sequence = (),
                title: str = "") -> None:
    """For each dose level: the conventional image, the TomoGAN image and a line profile of both and the reference.

    Parameters
    ----------
    levels : list of (level label, conventional file, TomoGAN file)
    reference : file
        The normal-dose reconstruction (ground truth of the profiles).
    """
    table = _mean_metric(metrics) if metrics else None
    fig, axes = plt.subplots(len(levels), 3, figsize=(10, 2.9 * len(levels)), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1, 1.6]}, layout="constrained")
    for r, (label, conv_path, tg_path) in enumerate(levels):
        conv, index, _ = read_slice(conv_path)
        ref = read_slice(reference, index)[0]
        tg = read_slice(tg_path, index)[0]
        vmin, vmax = grey_window(ref)
        for c, (name, img, path) in enumerate((("FBP", conv, conv_path), ("TomoGAN", tg, tg_path))):
            im = axes[r, c].imshow(img, cmap="gray", vmin=vmin, vmax=vmax)
            text = f"{label}: {name}"
            if table is not None:
                text += f"\n{_score_text(table, path)}"
            axes[r, c].set_title(text, fontsize=8)
            axes[r, c].set_xticks([]), axes[r, c].set_yticks([])
            x, _ = profile(img)
            axes[r, c].plot([x[0], x[-1]], [img.shape[0] // 2] * 2, color="tab:red", lw=0.6, ls="--")
        fig.colorbar(im, ax=axes[r, :2].tolist(), fraction=0.03, pad=0.01).set_label(UNITS, fontsize=7)
        ax = axes[r, 2]
        for (name, img), style in zip((("FBP", conv), ("TomoGAN", tg), ("reference", ref)), STYLES):
            x, v = profile(img)
            ax.plot(x, v, label=name, **style)
        ax.set_xlabel("pixel along the line", fontsize=8)
        ax.set_ylabel(UNITS, fontsize=8)
        ax.legend(fontsize=7, loc="upper right")
    if title:
        fig.suptitle(title, fontsize=10)
    save_figure(fig, out)


def metric_bars(csvs: Sequence, groups: Sequence[Tuple[str, Dict[str, str]]], out, *, title: str = "",
                metric: str = "ssim") -> None:
    """Bars of a metric's mean for labelled selections of the per-slice metric rows.

    ``groups`` is a list of (bar label, {column: value}) selections, e.g. ("APS -> SLS",
    {"dataset": "shale-sls-n1", "model": "shale-aps-photons-1e3-d3-all"}).
    """
    df = pd.concat([read_table(p, what="metrics CSV") for p in csvs], ignore_index=True)
    df["model"] = df["model"].fillna("") if "model" in df else ""
    metrics = [(metric, "field of view", "0.55", "//")]
    if f"{metric}_object" in df:
        metrics.append((f"{metric}_object", "object", "0.85", ""))
    width = 0.8 / len(metrics)
    fig, ax = plt.subplots(figsize=(1.4 * len(groups) + 2, 3.2))
    for m, (column, region, colour, hatch) in enumerate(metrics):
        for i, (label, sel) in enumerate(groups):
            rows = df
            for k, v in sel.items():
                rows = rows[rows[k].astype(str) == str(v)]
            v = rows[column].mean() if len(rows) else np.nan
            e = rows[column].std(ddof=1) if len(rows) > 1 else 0.0
            x = i + (m - (len(metrics) - 1) / 2) * width
            ax.bar(x, v, width, yerr=e, color=colour, edgecolor="k", hatch=hatch, capsize=2,
                   label=region if i == 0 else None)
            ax.text(x, v, f"{v:.3f}", ha="center", va="bottom", fontsize=6)
    ax.set_xticks(range(len(groups)), [label for label, _ in groups], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(f"{metric.upper()} (mean, std over slices)", fontsize=8)
    ax.legend(fontsize=7, loc="lower right")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, out)


def feature_values(panels: Sequence[Tuple[str, str, str, str]], out, *, title: str = "") -> None:
    """Pixel values across one feature in several datasets: conventional, TomoGAN and reference.

    ``panels`` is a list of (dataset label, conventional file, TomoGAN file, reference file). The feature is
    the densest spot of the reference's central slice (its maximum after a 5-pixel median filter, so an
    inclusion rather than a single noisy pixel); the profile is the 40 pixels through it along its row.
    """
    from scipy.ndimage import median_filter

    from simulate.plumbing import circular_mask

    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.0), squeeze=False)
    for ax, (label, conv_path, tg_path, ref_path) in zip(axes[0], panels):
        conv, index, _ = read_slice(conv_path)
        ref = read_slice(ref_path, index)[0]
        tg = read_slice(tg_path, index)[0]
        smooth = median_filter(ref, size=5)
        smooth[~circular_mask(ref.shape, margin=8)] = -np.inf
        r, c = np.unravel_index(int(np.argmax(smooth)), ref.shape)
        lo, hi = max(0, c - 20), min(ref.shape[1], c + 20)
        for (name, img), style in zip((("FBP", conv), ("TomoGAN", tg), ("reference", ref)), STYLES):
            ax.plot(np.arange(lo, hi), img[r, lo:hi], label=name, **style)
        ax.set_title(f"{label}\nslice {index}, row {r}", fontsize=8)
        ax.set_xlabel("pixel", fontsize=8)
    axes[0, 0].set_ylabel(UNITS, fontsize=8)
    axes[0, 0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, out)


def timing_bars(timing_csv, out, *, speed_csv=None, title: str = "") -> None:
    """Per-slice time of each method (log scale), with its SSIM and speed-up against SIRT on the bars;
    with ``speed_csv`` (:mod:`analysis.inference_speed`), a second panel of the generator's GFLOP/s per
    execution variant against the matmul rate measured in the same process."""
    df = read_table(timing_csv, what="timing table", need=("method", "ms_per_slice"))
    width = max(7.0, 0.85 * len(df))
    if speed_csv:
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(width + 5.0, 3.6), gridspec_kw={"width_ratios": [width, 5.0]})
    else:
        fig, ax = plt.subplots(figsize=(width, 3.6))
    sirt = df.loc[df["method"].str.startswith("SIRT") & ~df["method"].str.contains("TV|tuned"), "ms_per_slice"]
    base = float(sirt.iloc[0]) if len(sirt) else np.nan
    for i, row in enumerate(df.itertuples()):
        ax.bar(i, row.ms_per_slice, color="0.6", edgecolor="k", hatch="//" if "TomoGAN" in row.method else "")
        text = f"{row.ms_per_slice:.0f} ms"
        if np.isfinite(base) and row.ms_per_slice > 0:
            text += f"\n{base / row.ms_per_slice:.1f}x vs SIRT"
        if "ssim" in df and np.isfinite(row.ssim):
            text += f"\nSSIM {row.ssim:.3f}"
        if "ssim_object" in df and np.isfinite(row.ssim_object):
            text += f"\nobject {row.ssim_object:.3f}"
        ax.text(i, row.ms_per_slice, text, ha="center", va="bottom", fontsize=6.5)
    ax.set_yscale("log")
    ax.set_xticks(range(len(df)), df["method"], rotation=15, ha="right", fontsize=8)
    ax.set_ylabel("time per slice (ms, log scale)", fontsize=8)
    device = df["device"].iloc[0] if "device" in df else "?"
    ax.set_title(title or f"Time per slice on {device}", fontsize=9)
    ax.set_ylim(top=ax.get_ylim()[1] * 8)
    if speed_csv:
        _speed_panel(ax2, speed_csv)
    fig.tight_layout()
    save_figure(fig, out)


def _speed_panel(ax, speed_csv) -> None:
    """Generator GFLOP/s of each inference variant at its best batch, against fp32 matmul GFLOP/s."""
    sp = read_table(speed_csv, what="speed CSV", need=("variant", "gflops"))
    best = sp.dropna(subset=["gflops"]).sort_values("gflops").groupby("variant", sort=False).tail(1)
    best = best.set_index("variant").reindex([v for v in sp["variant"].unique() if v in set(best["variant"])])
    y = np.arange(len(best))
    ax.barh(y, best["gflops"], color="0.75", edgecolor="k")
    matmul = float(sp["matmul_gflops_fp32"].iloc[0])
    ax.axvline(matmul, color="k", ls="--", lw=1)
    label_box = dict(facecolor="white", edgecolor="none", pad=0.3)  # labels stay readable over the matmul line
    ax.text(matmul, len(best) - 0.5, f" fp32 matmul {matmul:.0f} GFLOP/s", fontsize=6.5, va="bottom", bbox=label_box)
    for i, (name, row) in enumerate(best.iterrows()):
        text = f" {row.fraction_of_fp32_matmul:.2f}x, {row.ms_per_slice:.0f} ms (batch {int(row.batch)})"
        if np.isfinite(row.val_ssim_change):
            text += f", dSSIM {row.val_ssim_change:.0e}"
        ax.text(row.gflops, i, text, va="center", fontsize=6.5, bbox=label_box)
    ax.set_yticks(y, best.index, fontsize=7)
    ax.set_ylim(len(best) - 0.4 + 0.5, -0.6)  # first variant on top, room for the matmul label below
    ax.set_xlabel("generator GFLOP/s", fontsize=8)
    ax.set_xlim(right=max(best["gflops"].max(), matmul) * 2.2)
    ax.set_title(f"TomoGAN inference, {int(sp['size'].iloc[0])}$^2$, d={int(sp['depth'].iloc[0])}, "
                 f"{sp['device'].iloc[0]} x{int(sp['threads'].iloc[0])} threads", fontsize=9)


VERDICT_STYLE = {"supported": ("tab:green", "o"), "contradicted": ("tab:red", "s"),
                 "equivalent": ("tab:blue", "D"), "inconclusive": ("0.5", "^")}


def claims_forest(claims_csv, out, *, caveat: str = "", title: str = "") -> None:
    """Each claim comparison's effect with its interval, in units of its margin, coloured by verdict.

    Reads ``claims.csv`` (:mod:`analysis.claims`). Effects are oriented (right = the claim's direction) and divided
    by the metric's margin, so one axis serves every metric and the shaded band [-1, 1] is "too small to matter".
    Each claim's primary metric only (the controls first); the speed claim, the claims this config does not run and
    the comparisons without a finite interval (not tested at this budget, at ceiling, one seed) are counted under
    the plot instead.
    """
    df = read_table(claims_csv, what="claims table", need=("claim", "part", "metric", "verdict"))
    if "metric_role" in df:
        df = df[(df["metric_role"] == "primary") | df["metric_role"].isna()].reset_index(drop=True)
    finite = np.isfinite(df.get("lo", pd.Series(np.nan, index=df.index)).astype(float)) & \
        np.isfinite(df.get("hi", pd.Series(np.nan, index=df.index)).astype(float))
    shown = df["verdict"].isin(list(VERDICT_STYLE)) & (df["metric"] != "speedup") & finite
    judged = df[shown].reset_index(drop=True)
    other = df[~shown].groupby(["claim", "verdict"], sort=False).agg(
        metric=("metric", "first"), effect=("effect", "first"), lo=("lo", "first"), hi=("hi", "first"),
        margin=("margin", "first"), n=("verdict", "size")).reset_index()
    fig, ax = plt.subplots(figsize=(9, 0.22 * max(len(judged), 4) + 1.6))
    ax.axvspan(-1, 1, color="0.9", zorder=0)
    ax.axvline(0, color="k", lw=0.6)
    for i, row in judged.iterrows():
        colour, marker = VERDICT_STYLE[row["verdict"]]
        m = row["margin"] if row["margin"] > 0 else 1.0
        ax.errorbar(row["effect"] / m, i, xerr=[[(row["effect"] - row["lo"]) / m], [(row["hi"] - row["effect"]) / m]],
                    fmt=marker, color=colour, ms=4, lw=1, capsize=2)
    ax.set_yticks(range(len(judged)), [f"{c}: {p} [{m}]" for c, p, m in zip(judged["claim"], judged["part"],
                                                                            judged["metric"])], fontsize=5.5)
    ax.set_ylim(len(judged) - 0.5, -0.5)
    ax.set_xlabel("effect / margin (right: as claimed; band: within the margin)", fontsize=8)
    handles = [plt.Line2D([], [], color=c, marker=mk, ls="", label=v) for v, (c, mk) in VERDICT_STYLE.items()]
    ax.legend(handles=handles, fontsize=6, loc="lower right")
    notes = [f"{r.claim}: {r.verdict}" + (f" (speed-up {r.effect:.2g}x, range {r.lo:.2g}-{r.hi:.2g}x, claimed "
                                          f"{r.margin:g}x)" if r.metric == "speedup" else
                                          f" ({r.n} comparison{'s' if r.n > 1 else ''})")
             for r in other.itertuples()]
    if notes:
        ax.text(0, -0.1, "\n".join(notes), transform=ax.transAxes, va="top", fontsize=6)
    ax.set_title("\n".join(t for t in (title, caveat) if t) or "The paper's claims", fontsize=9)
    fig.tight_layout()
    save_figure(fig, out)


def training_curves(logs: Sequence[Tuple[str, Sequence[str]]], out, *, title: str = "") -> None:
    """Generator MSE and validation SSIM against step: one line per run (the mean over its seeds' logs) and a
    band from the lowest to the highest seed, so that the spread between trainings shows. Runs trained on a CPU
    budget (every log with ``budget_mark``) are drawn against CPU-seconds instead: the marks they validated at."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.6))
    styles = ["-", "--", ":", "-."]
    every = [read_table(p, what="training log", need=("step",))
             for _, paths in logs for p in ([paths] if isinstance(paths, str) else paths)]
    budget = all("budget_mark" in df and df["budget_mark"].notna().any() for df in every)
    for i, (label, paths) in enumerate(logs):
        paths = [paths] if isinstance(paths, str) else list(paths)
        frames = [read_table(p, what="training log", need=("step",)) for p in paths]
        style = dict(ls=styles[i % len(styles)], color=plt.cm.gray(0.8 * (i % 5) / 5), lw=1.1)
        label = f"{label} ({len(frames)} seeds)" if len(frames) > 1 else label
        # on a budget: the losses at the CPU-seconds they were logged at, the validations at the budget's marks
        x_of = {"mse": "cpu_s", "val_ssim": "budget_mark"} if budget else {"mse": "step", "val_ssim": "step"}
        for ax, column, kw in ((a1, "mse", {}), (a2, "val_ssim", dict(marker="o", ms=2.5))):
            series = [df.dropna(subset=[column, x_of[column]]).groupby(x_of[column])[column].mean()
                      for df in frames if column in df]
            if not series:
                continue
            table = pd.concat(series, axis=1)
            ax.plot(table.index, table.mean(axis=1), label=label, **style, **kw)
            if table.shape[1] > 1:
                ax.fill_between(table.index, table.min(axis=1), table.max(axis=1), color=style["color"], alpha=0.2,
                                lw=0)
    a1.set_yscale("log")
    xlabel = "CPU-seconds of training steps" if budget else "step"
    a1.set_xlabel(xlabel), a1.set_ylabel("training MSE (network units)")
    a2.set_xlabel(xlabel), a2.set_ylabel("validation SSIM (field of view)")
    a2.legend(fontsize=6, ncol=2)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, out)


# -----------------------------------------------------------------------------
# command line


def draw(spec: dict, out) -> None:
    """Draw the figure a spec describes (:class:`study.figures.FigureSpec` as JSON) to ``out`` (PNG + PDF)."""
    kind, title = spec["kind"], spec.get("title", "")
    if kind == "grid":
        rows = [(row["label"], [(p["title"], p["path"]) for p in row["panels"]]) for row in spec["rows"]]
        image_grid(rows, out, metrics=spec.get("metrics", ()), title=title, bars=spec.get("bars"),
                   seeds=spec.get("seeds"))
    elif kind == "doses":
        levels = [(lv["label"], lv["conventional"], lv["tomogan"]) for lv in spec["levels"]]
        dose_series(levels, spec["reference"], out, metrics=spec.get("metrics", ()), title=title)
    elif kind == "bars":
        metric_bars(spec["metrics"], [(g["label"], g["where"]) for g in spec["groups"]], out, title=title)
    elif kind == "features":
        panels = [(p["label"], p["conventional"], p["tomogan"], p["reference"]) for p in spec["panels"]]
        feature_values(panels, out, title=title)
    elif kind == "timing":
        timing_bars(spec["timing"], out, speed_csv=spec.get("speed"), title=title)
    elif kind == "claims":
        claims_forest(spec["claims"], out, caveat=spec.get("caveat", ""), title=title)
    elif kind == "curves":
        training_curves([(log["label"], log["paths"]) for log in spec["logs"]], out, title=title)
    else:
        raise ValueError(f"unknown figure kind {kind!r}; choose one of {', '.join(KINDS)}")


KINDS = ("grid", "doses", "bars", "features", "timing", "curves", "claims")


@cli
def main(argv=None):
    p = argparse.ArgumentParser(description="Draw one of the study's figures (PNG + PDF) from its JSON spec "
                                "(study/figures.py plans them).")
    p.add_argument("out", help="PNG to write (a PDF is written beside it)")
    p.add_argument("--spec", required=True, help="the figure's spec as JSON, or @FILE to read it from a file")
    args = p.parse_args(argv)
    spec, where = json_argument(args.spec, flag="--spec")
    if not isinstance(spec, dict) or spec.get("kind") not in KINDS:
        raise InputError(where, f"a figure spec needs a 'kind', one of {', '.join(KINDS)}")
    try:
        draw(spec, args.out)
    except (KeyError, TypeError) as exc:
        raise InputError(where, f"the {spec['kind']} spec lacks or misstates {exc}") from None


if __name__ == "__main__":
    main()
