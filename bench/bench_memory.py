"""Peak memory (RSS) of FBP, TomoGAN inference and metrics against volume size, streaming in slabs.

Not a test: it makes foam-like volumes of growing numbers of slices, runs each command in its own process
(``python -m simulate.reconstruct recon --slab-mb``, ``python -m tomogan_core.infer --slab-mb``,
``python -m analysis.metrics``) and records the child's peak resident set size, so that it shows whether
memory stays flat as the volume grows. Writes ``results/bench/memory.csv``::

    python bench/bench_memory.py [--slices 32 128 512] [--size 256] [--slab-mb 64]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _peak_child_mb(cmd) -> tuple[float, float]:
    """Run ``python -m <cmd>`` in a fresh process; return (its peak RSS in MiB, seconds).

    A small intermediate Python process runs the command and reports ``RUSAGE_CHILDREN``'s maximum
    resident set size, which then covers that one command only.
    """
    probe = ("import resource, subprocess, sys; rc = subprocess.run([sys.executable, '-m', *sys.argv[1:]]).returncode; "
             "print('PEAK_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc)")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, OMP_NUM_THREADS="2"))
    seconds = time.perf_counter() - t0
    kb, rc = proc.stdout.rsplit("PEAK_KB", 1)[1].split()[:2]
    if int(rc) != 0:
        raise SystemExit(f"error: {' '.join(cmd)} failed: {proc.stderr[-500:]}")
    return int(kb) / 1024, seconds


def main(argv=None):
    from simulate.acquire import angles, write_projections
    from simulate.reconstruct import project

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--slices", type=int, nargs="+", default=[32, 128, 512])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--angles", type=int, default=180)
    p.add_argument("--slab-mb", type=float, default=64)
    p.add_argument("--out", default="results/bench/memory.csv")
    args = p.parse_args(argv)
    model = ROOT / "tomogan_core" / "weights" / "TomoGAN.h5"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        served = tmp / "release.pt"
        subprocess.run([sys.executable, "-m", "tomogan_core.keras_import", str(model), str(served)], check=True,
                       cwd=ROOT, capture_output=True)
        n, theta = args.size, angles(args.angles)
        yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
        disc = ((yy ** 2 + xx ** 2) < (0.4 * n) ** 2).astype(np.float32) / n
        one = project(disc[None], theta)  # (angles, 1, n): every slice the same disc
        for slices in args.slices:
            proj, rec, ref = tmp / f"p{slices}.h5", tmp / f"r{slices}.h5", tmp / f"e{slices}.h5"
            write_projections(proj, np.repeat(one, slices, axis=1), theta, {"center": n / 2})
            gb = slices * n * n * 4 / 2 ** 30
            for task, cmd in (
                    ("fbp", ["simulate.reconstruct", "recon", str(proj), str(rec), "--method", "fbp",
                             "--slab-mb", str(args.slab_mb), "--threads", "2"]),
                    ("inference", ["tomogan_core.infer", "-ld", str(rec), "-model", str(served), "-o", str(ref),
                                   "--grey255-from-input", "--slab-mb", str(args.slab_mb), "--quiet",
                                   "--threads", "2"]),
                    ("metrics", ["analysis.metrics", str(tmp / "m.csv"), "--reference", str(rec),
                                 "--slices", "8", str(ref)])):
                mb, seconds = _peak_child_mb(cmd)
                rows.append({"task": task, "slices": slices, "size": n, "volume_gib": gb, "slab_mb": args.slab_mb,
                             "peak_rss_mb": mb, "seconds": seconds})
                print(f"{task:10s} {slices:5d} slices ({gb:.2f} GiB): peak RSS {mb:.0f} MiB, {seconds:.1f} s",
                      flush=True)
            for f in (proj, rec, ref):
                f.unlink()
    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(out, index=False)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
