"""Benchmark of the simulation stage: slices per second for phantom generation, FBP and SIRT.

Not a test: it measures and writes what it measured to a CSV (default
``results/bench/simulate.csv``), one row per (stage, size, threads), with the
machine and software versions. Run it with::

    python bench/bench_simulate.py --sizes 128 256 --threads 1 2 --out results/bench/simulate.csv

Each figure is the median over ``--repeats`` runs after one warm-up run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path

import numpy as np

from simulate.acquire import project_phantom
from simulate.io import cpu_name, software_versions
from simulate.phantoms import FoamSpec, foam_volume, foam_slice, place_pores, pore_sections
from simulate.reconstruct import reconstruct, resolve_backend


def _median_time(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def run(sizes, threads_list, n_slices, sirt_iter, repeats, angles_per_pixel):
    backend = resolve_backend("auto")
    rows = []
    for size in sizes:
        spec = FoamSpec(size=size, slices=n_slices, seed=1)
        pores = place_pores(spec)
        sections = [pore_sections(pores, k + 0.5) for k in range(n_slices)]
        t = _median_time(lambda: [foam_slice(spec, s) for s in sections], repeats)
        rows.append(dict(stage="phantom (xdesign discrete_phantom)", size=size, n_angles=0, threads=1,
                         slices=n_slices, seconds=t))
        volume, _ = foam_volume(spec)
        n_angles = int(round(angles_per_pixel * size))
        data, theta, _ = project_phantom(volume, n_angles, backend=backend)
        for threads in threads_list:
            t = _median_time(lambda: reconstruct(data, theta, "fbp", backend=backend, threads=threads), repeats)
            rows.append(dict(stage="fbp", size=size, n_angles=n_angles, threads=threads, slices=n_slices, seconds=t))
            t = _median_time(lambda: reconstruct(data, theta, "sirt", n_iter=sirt_iter, backend=backend,
                                                 threads=threads), max(1, repeats // 2))
            rows.append(dict(stage=f"sirt ({sirt_iter} iterations)", size=size, n_angles=n_angles, threads=threads,
                             slices=n_slices, seconds=t))
    for row in rows:
        row["slices_per_s"] = row["slices"] / row["seconds"]
        row["ms_per_slice"] = 1000 * row["seconds"] / row["slices"]
        row["backend"] = backend
        row["cpu"] = cpu_name()
        row["cores"] = os.cpu_count()
        row["versions"] = json.dumps(software_versions(), sort_keys=True)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--slices", type=int, default=4)
    p.add_argument("--sirt-iter", type=int, default=20)
    p.add_argument("--angles-per-pixel", type=float, default=360 / 256, help="default: 360 angles at 256 px")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="results/bench/simulate.csv")
    args = p.parse_args(argv)
    rows = run(args.sizes, args.threads, args.slices, args.sirt_iter, args.repeats, args.angles_per_pixel)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    for r in rows:
        print(f"{r['stage']:<36} {r['size']:>5} px {r['n_angles']:>5} angles {r['threads']} thr "
              f"{r['slices_per_s']:8.2f} slices/s ({r['ms_per_slice']:.0f} ms/slice)")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
