"""Does ``tomogan-scan`` choose well where the answer is known? The demo scan, acquired sparse and short.

``tomogan-scan`` ranks methods by how well they predict views they never saw, because a user's scan has no
reference. Here one exists: the demo scan (``tests/data/scan_demo.h5``: 180 views over 180°, about 5000 photons
per pixel in its flats) is made into two scans **as they would have been acquired**, and each is run through the
command as a user would run it:

* ``sparse-4``: only every 4th view is in the file (45 views);
* ``short-10``: every count of the views and flats thinned binomially to 1/10, as a tenth of the exposure would
  have measured (darks unchanged): about 500 photons per pixel.

The reference is the FBP of the full demo scan (every view, every photon), on the rotation axis ``tomogan-scan``
found on it. Every candidate's volume is written (``--all-methods``) and scored against it (SSIM in the field of
view and inside the object, :func:`simulate.scores.compare_volumes`). One row per scan and candidate: its held-out
score ± standard error and rank, its SSIM, and whether it was chosen; the summary row per scan gives the chosen
route's SSIM and its loss against the best candidate by SSIM. Writes ``results/bench/scan_truth.csv`` and a
Markdown twin beside it, with the wall time of each step of each run::

    python bench/scan_truth.py [--model [LABEL=]MODEL.pt ...] [--generalist [CONFIG] [--matched]] [--n2i]
        [--methods fbp sirt ...] [--out results/bench/scan_truth.csv] [--workdir DIR] [--cache DIR] [--seed 0]

``--model`` ranks trained models too (each alone and made consistent with the views), e.g. the study's
generalist, ``results/models/generalist-sparse-4-d3-all/model.pt``. ``--generalist`` gets that one as a user
does (``tomogan-model generalist``, from ``--cache``), and ``--matched`` each as-acquired file's own model
(``tomogan-model matched``: the generalist fine-tuned on simulation at that file's acquisition). ``--n2i`` ranks
Noise2Inverse trained on each scan with the default config's ``noise2inverse`` settings, from scratch (``n2i``) and
fine-tuned from each model given or made (``n2i:LABEL``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulate.io import cpu_name, read_array, read_attrs, write_arrays  # noqa: E402
from simulate.plumbing import cli, write_csv, write_text  # noqa: E402

DEMO = ROOT / "tests" / "data" / "scan_demo.h5"
RAW = ("/exchange/data", "/exchange/data_white", "/exchange/data_dark", "/exchange/theta")
SPARSE = 4      # every SPARSE-th view kept
EXPOSURE = 0.1  # fraction of the counts kept


def as_acquired(demo, out_dir, *, seed: int = 0) -> dict:
    """The two as-acquired versions of ``demo``, written to ``out_dir``: ``{name: path}``."""
    arrays = {name: read_array(demo, name, dtype=None) for name in RAW}
    attrs = read_attrs(demo)
    out = {}
    sparse = dict(arrays, **{"/exchange/data": arrays["/exchange/data"][::SPARSE],
                             "/exchange/theta": arrays["/exchange/theta"][::SPARSE]})
    out[f"sparse-{SPARSE}"] = Path(out_dir) / f"sparse-{SPARSE}.h5"
    write_arrays(out[f"sparse-{SPARSE}"], sparse, dict(attrs, note=f"every {SPARSE}th view of {Path(demo).name}"))
    rng = np.random.default_rng(seed)
    dark = float(np.mean(arrays["/exchange/data_dark"]))

    def thin(counts):
        signal = np.clip(np.rint(counts.astype(np.float64) - dark), 0, None).astype(np.int64)
        return (rng.binomial(signal, EXPOSURE) + np.rint(dark)).astype(np.uint16)
    short = dict(arrays, **{"/exchange/data": thin(arrays["/exchange/data"]),
                            "/exchange/data_white": thin(arrays["/exchange/data_white"])})
    name = f"short-{round(1 / EXPOSURE)}"
    out[name] = Path(out_dir) / f"{name}.h5"
    write_arrays(out[name], short, dict(attrs, note=f"{Path(demo).name} with its counts thinned to {EXPOSURE:g}"))
    return out


def reference(demo, work) -> tuple:
    """The full demo scan's FBP (every row) and the axis found on it."""
    from analysis.scan import scan

    result = scan(demo, Path(work) / "full", methods=["fbp"], k=2, rank_rows=1, method="fbp", progress=False)
    ref = read_array(result["volumes"][0], "/recon", ndim=3)
    return ref, float(read_attrs(result["volumes"][0])["center"])


def n2i_specs(models) -> str:
    """``--n2i`` of tomogan-scan: the default config's Noise2Inverse from scratch, and from each model."""
    from study.config import load_config

    section = load_config(str(ROOT / "config" / "default.yaml"))["noise2inverse"]
    base = {"k": section["k"], "train": dict(section["train"])}
    return json.dumps([base] + [{"label": f"n2i:{e.label}", "k": base["k"],
                                 "train": dict(base["train"], init=str(e.path))} for e in models])


def score_run(name, raw, ref, work, models, methods, n2i=False) -> pd.DataFrame:
    """``tomogan-scan --all-methods`` on ``raw``; every candidate's volume against ``ref``."""
    from simulate.scores import compare_volumes
    from analysis.scan import scan

    from analysis.crossval import n2i_candidates

    extras = n2i_candidates(n2i_specs(models)) if n2i else ()
    result = scan(raw, Path(work) / name, methods=methods, models=models, extras=extras, all_methods=True,
                  progress=False)
    table = result["table"]
    rows = []
    for r, path in zip(table.itertuples(), result["volumes"]):
        vol = read_array(path, "/recon", ndim=3)
        m = compare_volumes(vol, ref)
        rows.append({"scan": name, "rank": int(r.rank), "candidate": r.label, "score": float(r.score),
                     "score_se": float(r.score_se), "chosen": bool(r.chosen),
                     "ssim": float(np.mean([x["ssim"] for x in m])),
                     "ssim_object": float(np.nanmean([x["ssim_object"] for x in m]))})
    out = pd.DataFrame(rows)
    out["best_by_ssim"] = out["ssim"] == out["ssim"].max()
    out.attrs["costs"] = result["costs"]
    out.attrs["center"] = result["center"]
    return out


def render(table: pd.DataFrame, costs: dict, *, cpu: str) -> str:
    lines = [f"CPU: {cpu}. The reference is the FBP of the full demo scan; SSIM in the field of view and inside "
             "the object. Held-out score: lower is better (± its fold-to-fold standard error).", ""]
    for name, g in table.groupby("scan", sort=False):
        chosen, best = g[g["chosen"]].iloc[0], g.loc[g["ssim"].idxmax()]
        lines += [f"**{name}**: chosen {chosen['candidate']} (SSIM {chosen['ssim']:.3f}); best by SSIM "
                  f"{best['candidate']} ({best['ssim']:.3f}); loss {best['ssim'] - chosen['ssim']:.3f}.", ""]
        shown = g[["rank", "candidate", "score", "score_se", "ssim", "ssim_object", "chosen"]].copy()
        lines += [shown.to_markdown(index=False, floatfmt=".4g"), ""]
        lines += ["| step | seconds |", "|---|---:|"] + [f"| {k} | {v:.1f} |" for k, v in costs[name].items()] + [""]
    return "\n".join(lines)


@cli
def main(argv=None):
    from analysis.classical import METHODS
    from analysis.crossval import model_entries

    p = argparse.ArgumentParser(description="tomogan-scan on the demo scan acquired sparse and short, against the "
                                            "full scan's FBP.")
    p.add_argument("--model", nargs="+", default=[], metavar="[LABEL=]MODEL.pt", help="trained models to rank too")
    p.add_argument("--methods", nargs="+", default=["fbp", *METHODS], choices=["fbp", *METHODS],
                   help="classical candidates (default: all, as tomogan-scan)")
    p.add_argument("--generalist", metavar="CONFIG", nargs="?", const=str(ROOT / "config" / "default.yaml"),
                   help="also rank the config's generalist (default config: the default), from tomogan-model")
    p.add_argument("--matched", action="store_true",
                   help="with --generalist, also rank each file's own matched model (tomogan-model matched)")
    p.add_argument("--cache", help="tomogan-model's cache (default: its own)")
    p.add_argument("--n2i", action="store_true",
                   help="also rank Noise2Inverse trained on each scan, from scratch and from each --model")
    p.add_argument("--out", default="results/bench/scan_truth.csv", help="CSV to write (.md beside it)")
    p.add_argument("--workdir", help="where the scans and volumes go (default: a temporary folder)")
    p.add_argument("--seed", type=int, default=0, help="seed of the exposure's thinning")
    args = p.parse_args(argv)
    if args.matched and not args.generalist:
        p.error("--matched needs --generalist")
    specs = list(args.model)
    if args.generalist:
        from study.ondemand import model

        specs.append(f"generalist={model('generalist', args.generalist, args.cache)}")
    with tempfile.TemporaryDirectory(prefix="scan-truth-") as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        ref, _ = reference(DEMO, work)
        tables, costs = [], {}
        for name, raw in as_acquired(DEMO, work, seed=args.seed).items():
            t0, own = time.perf_counter(), []
            if args.matched:
                own = [f"matched={model('matched', args.generalist, args.cache, scan=raw)}"]
            made = time.perf_counter() - t0
            t = score_run(name, raw, ref, work, model_entries([*specs, *own]), args.methods, args.n2i)
            tables.append(t)
            costs[name] = ({"the scan's own matched model (tomogan-model matched: simulation and fine-tune)": made}
                           if own else {})
            costs[name].update(t.attrs["costs"])
    table = pd.concat(tables, ignore_index=True)
    table["cpu"] = cpu_name()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(table, out)
    text = render(table, costs, cpu=cpu_name())
    write_text(out.with_suffix(".md"), text)
    print(text)


if __name__ == "__main__":
    main()
