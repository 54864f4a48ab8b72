"""Fault injection of the workflow itself: killed runs and a full disk, restarted the documented way.

Not a unit test: it runs the smoke workflow several times (about 10 minutes on 2 cores) and writes what it found
to a CSV (default ``results/bench/fault_injection.csv``, a Markdown twin beside it)::

    python bench/fault_injection.py [--kill-after 25 60] [--disk-mb 8] [--out results/bench/fault_injection.csv]

1. **Reference**: one uninterrupted smoke run.
2. **Killed**: for each ``--kill-after`` delay, a run whose whole process group gets SIGKILL after that many
   seconds, then restarted the documented way -- ``python -m simulate.plumbing clear-stale-lock .`` and the same
   Snakemake command with ``--rerun-incomplete`` (what ``make all`` does).
3. **Full disk**: a run with ``results/`` on a tmpfs of ``--disk-mb`` MiB (needs root to mount; skipped with a
   note otherwise); it must fail with an ``error: ... no space left on device`` line, and, after ``results/``
   moves to a roomy disk, finish on restart.

After each restart every metrics and claims table is compared with the reference's (numbers within
``TOLERANCE``, text equal; the speed claim, a timing, is left out), and every HDF5 file and model file under ``results/`` must open: none may be left
half-written. One row per scenario: what was done, whether the restart finished, the largest numeric difference,
the files checked and any unreadable one.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulate.io import cpu_name  # noqa: E402
from simulate.plumbing import write_csv, write_text  # noqa: E402

TOLERANCE = 1e-5  # BM3D's threaded binary differs in the sixth decimal from run to run (docs/data-model.md)
TABLES = ("metrics/conventional.csv", "metrics/tomogan.csv", "tables/main.csv", "claims/claims.csv")


def _snakemake(workdir: Path, *, log) -> subprocess.Popen:
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--cores", "2", "--rerun-incomplete", "all", "--configfile", str(ROOT / "config" / "smoke.yaml")]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env, start_new_session=True)


def restart(workdir: Path, log) -> int:
    """The documented restart: clear a killed run's lock, then the same command (it has --rerun-incomplete)."""
    subprocess.run([sys.executable, "-m", "simulate.plumbing", "clear-stale-lock", str(workdir)], cwd=ROOT,
                   stdout=log, stderr=subprocess.STDOUT)
    return _snakemake(workdir, log=log).wait()


def readable(results: Path):
    """Every HDF5 and model file under ``results``: (number checked, unreadable ones)."""
    import h5py
    import torch

    bad, n = [], 0
    for path in sorted(results.rglob("*.h5")) + sorted(results.rglob("*.pt")):
        n += 1
        try:
            if path.suffix == ".h5":
                with h5py.File(path, "r") as f:
                    f.visit(lambda name: None)
            elif path.name != "served.pt":
                torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # any failure to open is what this check is for
            bad.append(f"{path.relative_to(results)} ({type(exc).__name__})")
    return n, bad


def compare(reference: Path, other: Path) -> float:
    """The largest difference between the two runs' tables (numbers); raises if text or shape differ."""
    worst = 0.0
    for name in TABLES:
        a, b = pd.read_csv(reference / name), pd.read_csv(other / name)
        if "metric" in a:  # the speed claim is a timing: it differs between any two runs
            a, b = a[a["metric"] != "speedup"], b[b["metric"] != "speedup"]
        if list(a.columns) != list(b.columns) or len(a) != len(b):
            raise AssertionError(f"{name}: columns or rows differ")
        for col in a.columns:
            if col in ("file", "versions", "elapsed_s"):
                continue
            x, y = a[col], b[col]
            if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
                d = np.abs(x.to_numpy(float) - y.to_numpy(float))
                same_nan = np.isnan(x.to_numpy(float)) == np.isnan(y.to_numpy(float))
                if not same_nan.all():
                    raise AssertionError(f"{name}:{col}: NaN in one run only")
                worst = max(worst, float(np.nanmax(d)) if np.isfinite(d).any() else 0.0)
                if worst > TOLERANCE:
                    raise AssertionError(f"{name}:{col}: differs by {worst:.3g} (tolerance {TOLERANCE:g})")
            elif not ((x.astype(str) == y.astype(str)) | (x.isna() & y.isna())).all():
                raise AssertionError(f"{name}:{col}: text differs")
    return worst


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kill-after", type=float, nargs="+", default=[25.0, 60.0], help="seconds before SIGKILL")
    p.add_argument("--disk-mb", type=int, default=8, help="size of the small filesystem for results/")
    p.add_argument("--out", default="results/bench/fault_injection.csv")
    args = p.parse_args(argv)
    top = Path(tempfile.mkdtemp(prefix="fault-injection-"))
    rows = []
    with open(top / "log.txt", "w") as log:
        ref = top / "reference"
        t0 = time.perf_counter()
        rc = _snakemake(ref, log=log).wait()
        n, bad = readable(ref / "results")
        rows.append({"scenario": "uninterrupted", "first_rc": rc, "restart_rc": rc,
                     "seconds": round(time.perf_counter() - t0, 1), "max_difference": 0.0, "files_checked": n,
                     "unreadable": "; ".join(bad)})
        if rc != 0:
            raise SystemExit(f"error: {top / 'log.txt'}: the uninterrupted smoke run failed")
        for delay in args.kill_after:
            work = top / f"killed-{delay:g}s"
            t0 = time.perf_counter()
            proc = _snakemake(work, log=log)
            time.sleep(delay)
            os.killpg(proc.pid, signal.SIGKILL)
            first = proc.wait()
            n, bad = readable(work / "results")  # right after the kill: nothing half-written
            rc = restart(work, log)
            diff = compare(ref / "results", work / "results") if rc == 0 else float("nan")
            n2, bad2 = readable(work / "results")
            rows.append({"scenario": f"SIGKILL after {delay:g} s, then restarted", "first_rc": first, "restart_rc": rc,
                         "seconds": round(time.perf_counter() - t0, 1), "max_difference": diff,
                         "files_checked": n + n2, "unreadable": "; ".join(bad + bad2)})
        work = top / "full-disk"
        (work / "results").mkdir(parents=True)
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={args.disk_mb}m", "tmpfs",
                                  str(work / "results")], capture_output=True).returncode == 0
        if not mounted:
            rows.append({"scenario": f"results/ on {args.disk_mb} MiB", "first_rc": "", "restart_rc": "",
                         "unreadable": "skipped: cannot mount a tmpfs here (needs root)"})
        else:
            t0 = time.perf_counter()
            first = _snakemake(work, log=log).wait()
            said = [line for line in (top / "log.txt").read_text().splitlines() if "no space left on device" in line]
            for path in (work / "results").rglob("*.log"):
                said += [line for line in path.read_text(errors="replace").splitlines()
                         if line.startswith("error:") and "no space left" in line]
            n, bad = readable(work / "results")
            keep = top / "full-disk-kept"
            shutil.copytree(work / "results", keep, symlinks=True)
            subprocess.run(["umount", str(work / "results")], check=True)
            shutil.rmtree(work / "results")
            shutil.move(str(keep), str(work / "results"))  # room made: the same folder, on a roomy disk
            rc = restart(work, log)
            diff = compare(ref / "results", work / "results") if rc == 0 else float("nan")
            n2, bad2 = readable(work / "results")
            rows.append({"scenario": f"results/ on {args.disk_mb} MiB, then room made and restarted",
                         "first_rc": first, "restart_rc": rc, "seconds": round(time.perf_counter() - t0, 1),
                         "max_difference": diff, "files_checked": n + n2, "unreadable": "; ".join(bad + bad2),
                         "error_line": said[0][:200] if said else "(none found)"})
    table = pd.DataFrame(rows).assign(cpu=cpu_name())  # the seconds are this machine's
    out = write_csv(table, args.out)
    write_text(out.with_suffix(".md"), table.to_markdown(index=False) + "\n")
    print(table.to_string(index=False))
    print(f"wrote {out} (work folder {top})")


if __name__ == "__main__":
    main()
