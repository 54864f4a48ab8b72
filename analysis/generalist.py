"""Leave one family out: does a denoiser trained on other objects carry to an object it never saw?

For each phantom family of the corpus, the model trained on every *other* family (``lofo-<family>``, "unseen") is
set beside the foam-only model (``foam only``), the generalist that saw every family (``generalist``) and FBP on
that family's test volume, by SSIM and PSNR averaged over training seeds and slices; ``unseen - foam only`` and
``unseen - generalist`` get paired hierarchical bootstrap intervals over seeds, then slices
(:func:`analysis.verdicts.bootstrap_difference`). What each route is: docs/methods.md, "A generalist denoiser: a
corpus of phantom families".

Command (rule ``generalist_table``)::

    python -m analysis.generalist OUT.csv METRICS.csv [METRICS.csv ...] --spec JSON

``METRICS.csv``: per-slice metric files (:mod:`analysis.metrics`: ``results/metrics/<dataset>/{tomogan,
conventional}.csv``). ``--spec``: JSON (or ``@FILE``) from :meth:`study.Plan.lofo_spec`::

    {"families": {"<family>": {"dataset": "corpus-<family>-test",
                               "routes": {"<dose>": {"foam only": [run, ...], "generalist": [...], "unseen": [...]}},
                               "projections": {"<dose>": "results/corpus-<family>-test/proj/<dose>.h5"}}},
     "doses": [...], "bootstrap": {"n": 2000, "seed": 0}, "config_hash": "..."}

Writes OUT.csv, one row per (family, dose) -- ``n_slices``, the test volume's acquisition where ``projections``
names it (``photons``: the photons per pixel its low-dose views carry, ``noise_incident`` or a short exposure's
``incident``, empty if noise-free; ``max_line_integral``), ``fbp``, each route's mean SSIM (``<route>``) and PSNR
(``<route>_psnr``), ``unseen_vs_foam`` and ``unseen_vs_generalist`` with ``_lo``/``_hi`` (SSIM), the same with
``_psnr`` (dB) -- and a Markdown twin (suffix ``.md``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import pandas as pd

from analysis.claims import read_metrics, side_matrix
from analysis.verdicts import bootstrap_difference
from simulate.plumbing import InputError, cli, json_argument, write_csv, write_text

__all__ = ["ROUTES", "acquisition", "lofo_table", "render", "main"]

logger = logging.getLogger(__name__)

#: the models set side by side on each held-out family, in the table's order
ROUTES = ("foam only", "generalist", "unseen")
COMPARISONS = {"unseen_vs_foam": ("unseen", "foam only"), "unseen_vs_generalist": ("unseen", "generalist")}


def _side(rows: List[dict]) -> dict:
    return {"rows": rows}


def acquisition(path) -> Dict[str, float]:
    """A low-dose projection file's ``photons`` (``noise_incident``, else ``incident``; NaN if noise-free) and
    ``max_line_integral`` (NaN if not recorded); ``{}`` without a path."""
    if not path:
        return {}
    from simulate.io import read_attrs

    attrs = read_attrs(path)
    photons = attrs.get("noise_incident", attrs.get("incident"))
    return {"photons": float(photons) if photons is not None else float("nan"),
            "max_line_integral": float(attrs.get("max_line_integral", float("nan")))}


def lofo_table(metrics: pd.DataFrame, spec: dict, *, rng: np.random.Generator) -> pd.DataFrame:
    """The leave-one-family-out table from per-slice metrics (see the module docstring).

    Raises
    ------
    ValueError
        A family, dose or run of the spec without per-slice rows.
    """
    boot_n = int(spec.get("bootstrap", {}).get("n", 2000))
    out = []
    for family, entry in spec["families"].items():
        ds = entry["dataset"]
        for dose in spec["doses"]:
            sides = {"fbp": _side([{"dataset": ds, "dose": dose, "method": "fbp"}])}
            for route in ROUTES:
                runs = entry["routes"].get(dose, {}).get(route) or []
                if runs:
                    sides[route] = _side([{"dataset": ds, "dose": dose, "method": "tomogan", "model": r} for r in runs])
            ssim = {name: side_matrix(metrics, side, "ssim") for name, side in sides.items()}
            slices = sorted(set.intersection(*(set(s) for _, s in ssim.values())))
            row = {"family": family, "dataset": ds, "dose": dose, "n_slices": len(slices),
                   **acquisition(entry.get("projections", {}).get(dose))}
            mats, psnr = {}, {}
            for name, side in sides.items():
                mats[name] = side_matrix(metrics, side, "ssim", slices)[0]
                psnr[name] = side_matrix(metrics, side, "psnr", slices)[0]
                row[name] = float(np.nanmean(mats[name]))
                row[f"{name}_psnr"] = float(np.nanmean(psnr[name]))
                row[f"{name}_seeds"] = mats[name].shape[0]
            for suffix, m in (("", mats), ("_psnr", psnr)):
                for col, (a, b) in COMPARISONS.items():
                    if a in m and b in m:
                        d = bootstrap_difference(m[a], m[b], n_boot=boot_n, rng=rng)
                        row.update({col + suffix: d.effect, f"{col}{suffix}_lo": d.lo, f"{col}{suffix}_hi": d.hi})
            out.append(row)
    return pd.DataFrame(out)


def _interval(row, col, fmt="{:+.3f}") -> str:
    if col not in row or pd.isna(row[col]):
        return ""
    lo, hi = row[col + "_lo"], row[col + "_hi"]
    return f"{fmt.format(row[col])} [{fmt.format(lo)}, {fmt.format(hi)}]"


def _number(row, col, fmt) -> str:
    return fmt.format(row[col]) if col in row and pd.notna(row[col]) else "–"


def render(table: pd.DataFrame, *, config_hash: str = "", level: float = 0.95) -> str:
    """The table as Markdown: SSIM per route, then the two differences with their intervals; then the same by PSNR."""
    lines = ["# Leave one family out", "",
             "SSIM against the normal-dose reference on each family's test volume (mean over training seeds and "
             "evaluated slices): FBP, the model trained on foam alone, the generalist that saw every family, and the "
             f"model that never saw this one (unseen). Differences with {level:.0%} paired bootstrap intervals over "
             "seeds, then slices" + (f"; config hash `{config_hash}`." if config_hash else ".") +
             " Photons: per detector pixel, in the test volume's low-dose views (– noise-free); max ∫μ: its largest "
             "line integral. Each row is at its own volume's noise and attenuation: compare routes within a row.", "",
             "| family | dose | photons | max ∫μ | slices | FBP | foam only | generalist | unseen | "
             "unseen − foam only | unseen − generalist |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for _, r in table.iterrows():
        cells = [r["family"], r["dose"], _number(r, "photons", "{:.0f}"), _number(r, "max_line_integral", "{:.2f}"),
                 str(int(r["n_slices"])), f"{r['fbp']:.3f}"]
        cells += [f"{r[k]:.3f}" if k in r and pd.notna(r[k]) else "" for k in ROUTES]
        cells += [_interval(r, "unseen_vs_foam"), _interval(r, "unseen_vs_generalist")]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "The same routes by PSNR (dB), with the same intervals: where the two metrics disagree on a row, "
                  "neither decides it alone.", "",
              "| family | dose | FBP | foam only | generalist | unseen | unseen − foam only | unseen − generalist |",
              "|---|---|---:|---:|---:|---:|---|---|"]
    for _, r in table.iterrows():
        cells = [r["family"], r["dose"], _number(r, "fbp_psnr", "{:.2f}")]
        cells += [_number(r, f"{k}_psnr", "{:.2f}") for k in ROUTES]
        cells += [_interval(r, "unseen_vs_foam_psnr", "{:+.2f}"), _interval(r, "unseen_vs_generalist_psnr", "{:+.2f}")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@cli
def main(argv: Sequence[str] = None):
    """``python -m analysis.generalist OUT.csv METRICS.csv ... --spec JSON`` (see the module docstring)."""
    p = argparse.ArgumentParser(prog="python -m analysis.generalist",
                                description="Leave-one-family-out table: the model that never saw a phantom family, "
                                            "beside the foam-only model and the generalist, on that family's test "
                                            "volume.")
    p.add_argument("out", help="CSV to write (a .md twin beside it)")
    p.add_argument("metrics", nargs="+", help="per-slice metric files (analysis.metrics)")
    p.add_argument("--spec", required=True, help="JSON or @FILE: families, their test volume and runs per route")
    args = p.parse_args(argv)
    spec, where = json_argument(args.spec, flag="--spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("families"), dict) or not spec.get("doses"):
        raise InputError(where, "expected an object with 'families' and 'doses'")
    metrics = read_metrics(args.metrics)
    boot = spec.get("bootstrap", {})
    try:
        table = lofo_table(metrics, spec, rng=np.random.default_rng(int(boot.get("seed", 0))))
    except ValueError as exc:
        raise InputError(args.metrics[0], str(exc)) from None
    out = Path(args.out)
    write_csv(table, out)
    write_text(out.with_suffix(".md"), render(table, config_hash=spec.get("config_hash", "")))
    logger.info("%d rows -> %s (+ .md)", len(table), out)


if __name__ == "__main__":
    main()
