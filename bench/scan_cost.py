"""What ``tomogan-scan`` costs on a scan of a beamline's width: each step's wall time, end to end.

A raw scan is simulated as a user would bring it (:func:`simulate.shale.measure`: the shale stand-in on a detector
of ``--detector`` pixels, ``--views`` projections over 180°, Poisson counts with flats and darks, the axis off
centre), for each row count of ``--rows``, and ``tomogan-scan`` runs on it with its defaults: every classical
method tuned by the held-out score, each ``--model`` alone and made consistent with the views, the chosen route
written for every row. The simulation is not counted. Writes ``results/bench/scan_cost.csv`` (one row per case and
step, seconds) and a Markdown twin beside it, with the CPU::

    python bench/scan_cost.py [--rows 2 100] [--detector 640] [--views 180] [--model [LABEL=]MODEL.pt ...]
        [--generalist [CONFIG] [--matched]] [--threads N] [--search descent|grid] [--out results/bench/scan_cost.csv]
        [--workdir DIR]

Issue 26 asks 2 rows x 640 pixels x 180 views within 10 minutes on 2 cores, learned routes included, and 100 rows
within 60 minutes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulate.io import cpu_name, write_arrays  # noqa: E402
from simulate.plumbing import cli, usable_cores, write_csv, write_text  # noqa: E402


def simulated_scan(path, *, rows: int, detector: int, views: int, seed: int = 0) -> Path:
    """A raw DXchange scan of the shale stand-in, ``rows`` x ``detector`` pixels, ``views`` projections."""
    from simulate.shale import FacilitySpec, ShaleSample, measure, shale_volume

    sample = ShaleSample(name="cost", size=detector, slices=rows + 2, seed=seed)
    facility = FacilitySpec(name="cost-beamline", n_angles=views, detector=detector, rows=rows, incident=5000,
                            blur=0.7, center_offset=2.3)
    raw = measure(shale_volume(sample), facility, rng=np.random.default_rng(seed), backend="astra")
    write_arrays(path, {"/exchange/data": raw["data"], "/exchange/data_white": raw["white"],
                        "/exchange/data_dark": raw["dark"], "/exchange/theta": raw["theta"]},
                 {"source": "synthetic-cost-scan", "sample": "cost", "facility": "cost-beamline"})
    return Path(path)


@cli
def main(argv=None):
    from analysis.crossval import SEARCHES, model_entries
    from analysis.scan import scan

    p = argparse.ArgumentParser(description="tomogan-scan's cost per step on simulated scans of a beamline's width.")
    p.add_argument("--rows", type=int, nargs="+", default=[2], help="detector rows of each case")
    p.add_argument("--detector", type=int, default=640)
    p.add_argument("--views", type=int, default=180)
    p.add_argument("--model", nargs="+", default=[], metavar="[LABEL=]MODEL.pt", help="trained models to rank too")
    p.add_argument("--generalist", metavar="CONFIG", nargs="?", const=str(ROOT / "config" / "default.yaml"),
                   help="also rank the config's generalist (default config: the default), made as a user gets it "
                        "(tomogan-model generalist) in a fresh cache under the work folder: its training is a row")
    p.add_argument("--matched", action="store_true",
                   help="with --generalist, also rank each scan's own matched model (tomogan-model matched): its "
                        "simulation and fine-tune are a row of each case")
    p.add_argument("--threads", type=int, default=usable_cores(), help="default: every core this process may use")
    p.add_argument("--search", choices=SEARCHES, default="descent", help="how tomogan-scan searches each grid")
    p.add_argument("--out", default="results/bench/scan_cost.csv", help="CSV to write (.md beside it)")
    p.add_argument("--workdir", help="where the scans and volumes go (default: a temporary folder)")
    args = p.parse_args(argv)
    if min(args.rows) < 1 or args.detector < 32 or args.views < 8:
        p.error("need --rows >= 1, --detector >= 32 and --views >= 8")
    rows = []
    with tempfile.TemporaryDirectory(prefix="scan-cost-") as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        specs = list(args.model)
        if args.generalist:
            from study.ondemand import model

            t0 = time.perf_counter()
            specs.append(f"generalist={model('generalist', args.generalist, work / 'cache', cores=args.threads)}")
            rows.append({"case": "once per machine and config", "seconds": time.perf_counter() - t0,
                         "step": "the generalist, trained on demand (tomogan-model generalist, corpus simulation "
                                 "included; reused by every later scan)"})
        for n in args.rows:
            case = f"{n} rows x {args.detector} px, {args.views} views"
            raw = simulated_scan(work / f"scan_{n}.h5", rows=n, detector=args.detector, views=args.views)
            models, own_seconds = model_entries(specs), 0.0
            if args.generalist and args.matched:
                t0 = time.perf_counter()
                own = model("matched", args.generalist, work / "cache", scan=raw, cores=args.threads)
                own_seconds = time.perf_counter() - t0
                rows.append({"case": case, "seconds": own_seconds,
                             "step": "the scan's own matched model (tomogan-model matched: simulation at its "
                                     "acquisition and fine-tune)"})
                models = model_entries([*specs, f"matched={own}"])
            t0 = time.perf_counter()
            result = scan(raw, work / f"out_{n}", models=models, threads=args.threads, search=args.search,
                          progress=False)
            total = time.perf_counter() - t0
            rows += [{"case": case, "step": step, "seconds": s} for step, s in result["costs"].items()]
            ranked = result["table"]
            rows += [{"case": case, "step": f"(ranking) {r.label}", "seconds": r.seconds}  # in the rank step
                     for r in ranked.sort_values("seconds", ascending=False).itertuples()]
            rows.append({"case": case, "step": f"end to end (chose {result['recommendation']['best']})",
                         "seconds": total})
            if own_seconds:
                rows.append({"case": case, "step": "end to end, the scan's own matched model included",
                             "seconds": total + own_seconds})
    table = pd.DataFrame(rows)
    table["models"] = " ".join(e.label for e in models) or "none"
    table["threads"] = args.threads
    table["search"] = args.search
    table["cpu"] = cpu_name()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(table, out)
    text = (f"CPU: {cpu_name()}, {args.threads} thread(s), {args.search} search; models ranked: "
            f"{table['models'].iloc[0]}. Wall seconds of each step of `tomogan-scan`; the scan's simulation is not "
            "counted.\n\n"
            + table[["case", "step", "seconds"]].to_markdown(index=False, floatfmt=".1f") + "\n")
    write_text(out.with_suffix(".md"), text)
    print(text)


if __name__ == "__main__":
    main()
