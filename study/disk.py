"""What a plan writes, told before it is written: the bytes of every output of the workflow's DAG, against the free
space where ``results/`` lives.

The outputs are Snakemake's own list (``--summary``: every file of every job, and whether it is there yet); each is
sized from the config's shapes (float32 volumes, uint16 raw scans, the models' parameter counts; a floor for the
small tables and the figures), so nothing is run. ``make all`` calls ``check`` before Snakemake starts, so that a
plan that cannot fit stops with one line instead of failing halfway through::

    python -m study.disk check --configfile config/default.yaml        # error: results/: this plan writes ...
    python -m study.disk estimate --configfile config/default.yaml     # the bytes per rule

``DISK_CHECK=0 make all`` skips the check. The estimate is what the outputs weigh, not what a job writes on its way
(temporary files, an atomic write's second copy), so the check keeps :data:`MARGIN` of the free space in reserve.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from simulate.plumbing import InputError, cli

__all__ = ["MARGIN", "run_snakemake", "dag_outputs", "shapes", "file_bytes", "estimate", "check", "main"]

ROOT = Path(__file__).resolve().parents[1]
RESULTS = "results"
MARGIN = 0.1  # the share of the free space a plan must leave: what a job writes on its way is not in the estimate
SMALL = 64 << 10  # bytes: a table, a JSON file, a log; HDF5's own overhead on a volume
FIGURE = 2 << 20  # bytes: a figure's PNG with its PDF twin


def run_snakemake(*args, configfile, directory=None) -> str:
    """Snakemake's standard output for ``args`` on the config, run in ``directory`` (default: an empty one, so that
    the whole plan is listed as missing); :class:`InputError` with its last line when it fails."""
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    with tempfile.TemporaryDirectory() as empty:
        workdir = Path(directory).resolve() if directory else Path(empty)
        proc = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
                               "--configfile", str(Path(configfile).resolve()), "--directory", str(workdir),
                               "--nolock", *args], capture_output=True, text=True, cwd=ROOT, env=env)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise InputError(configfile, f"snakemake could not plan it: {last}")
    return proc.stdout


def dag_outputs(configfile, *, directory=None) -> List[Tuple[str, str, bool]]:
    """(output file, rule, present) of every job of the config's DAG, from Snakemake's ``--summary``."""
    out = run_snakemake("--summary", "all", configfile=configfile, directory=directory)
    rows = [line.split("\t") for line in out.splitlines()[1:] if "\t" in line]
    return [(r[0], r[2], r[4] != "missing") for r in rows if len(r) > 4]  # file, date, rule, logs, status


def shapes(cfg: dict) -> Dict[str, tuple]:
    """Per dataset: (slices, detector, reconstruction side, full-dose angles); the corpus's and the scan-matched
    volumes too (``cfg`` as :func:`study.load_config` returns it; expanded in place as planning does)."""
    import h5py

    from study.runs import expand_corpus, expand_scan_matched

    expand_corpus(cfg)
    expand_scan_matched(cfg)
    out = {}
    for name, ds in cfg["datasets"].items():
        if ds["kind"] == "matched":
            continue  # after the scans: a matched volume has its scan's acquisition
        if ds["kind"] == "foam":
            f = cfg["foam"]
            out[name] = (f["slices"], f["size"], f["size"], f["n_angles"])
        elif ds["kind"] == "family":
            c = cfg["corpus"]
            out[name] = (c["slices"], c["size"], c["size"], c["n_angles"])
        else:
            sh = cfg["shale"]
            fac = sh["facilities"][ds["facility"]]
            out[name] = (sh["slices"], fac["detector"], fac["detector"], fac["n_angles"])
    for name, scan in (cfg.get("scans") or {}).items():  # a user's scan: its raw file says
        path = Path(scan["path"]) if Path(scan["path"]).exists() else ROOT / scan["path"]
        with h5py.File(path, "r") as f:
            angles, rows, det = f["/exchange/data"].shape
        b = scan.get("bin", 1)
        if scan.get("rows"):
            rows = scan["rows"][1] - scan["rows"][0]
        out[name] = (rows // b, det // b, det // b, angles)
    for name, ds in cfg["datasets"].items():
        if ds["kind"] == "matched":
            _, det, side, angles = out[ds["scan"]]
            out[name] = (cfg["scan_matched"]["slices"], det, side, angles)
    return out


def _model_bytes(depth: int, with_critic: bool, patch: int) -> Tuple[int, int]:
    """(model.pt, checkpoint.pt) of a run: the generator; the checkpoint holds it twice (current and best) with
    its Adam moments, and the critic with its moments where the loss has an adversarial term."""
    from tomogan_core.model import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig

    g = 4 * sum(p.numel() for p in Generator(GeneratorConfig(in_slices=depth)).parameters())
    d = 4 * sum(p.numel() for p in Discriminator(DiscriminatorConfig(patch_size=patch)).parameters()) if with_critic else 0
    return g, 4 * g + 3 * d


def file_bytes(path: str, rule: str, cfg: dict, shp: dict) -> int:
    """Bytes of one output file of the DAG, from its path, its rule and the config's shapes."""
    if rule == "train":
        if not path.endswith("model.pt"):
            return SMALL
        depth = re.search(r"-d(\d+)-", path)
        model, ckpt = _model_bytes(int(depth.group(1)) if depth else 3, bool(re.search(r"-d\d+-(all|mse-adv)\b", path)),
                                   int(cfg["tomogan"]["train"].get("patch", 256)))
        return model + ckpt
    if rule == "n2i_train":
        model, ckpt = _model_bytes(int(cfg["noise2inverse"]["train"].get("depth", 3)), False, 0)
        return model + ckpt
    if rule in ("figure", "crossval_figure"):
        return FIGURE
    m = re.match(rf"{RESULTS}/([^/]+)/", path)
    if not m or m.group(1) not in shp:
        return SMALL
    slices, det, side, angles = shp[m.group(1)]
    parts = path.split("/")
    dose = parts[-1][:-3] if "/proj/" in path else (parts[3] if len(parts) > 4 else "")
    dcfg = cfg["doses"].get(dose, {"mode": "full"})
    views = angles // dcfg.get("factor", 1) if dcfg["mode"] == "sparse" else angles
    evaluated = min(cfg["metrics"]["slices"] or slices, slices)
    volume, image = slices * side * side * 4, side * side * 4
    size = {"foam_phantom": volume, "family_phantom": volume, "matched_phantom": volume,
            "shale_raw": (angles + 20) * slices * det * 2 + slices * det * det * 4,  # counts, flats, darks; truth
            "project_foam": views * slices * det * 4, "project_matched": views * slices * det * 4,
            "prepare_shale": views * slices * det * 4, "prepare_scan": views * slices * det * 4,
            "low_dose": views * slices * det * 4, "fbp": volume,
            "n2i_split": cfg.get("noise2inverse", {}).get("k", 4) * volume,
            "apply_classical": evaluated * image, "n2i_infer": evaluated * image,
            "infer": evaluated * image, "infer_release": evaluated * image,
            "positive_control": len(cfg["tomogan"]["seeds"]) * evaluated * image,
            "crossval": 12 * cfg.get("crossval", {}).get("slices", 1) * image,
            }.get(rule, 0)
    return int(size) + SMALL


def estimate(configfile, *, directory=None) -> Dict[str, Dict[str, int]]:
    """Per rule: ``files`` and ``bytes`` of its outputs, and ``missing`` (the bytes of those not written yet in
    ``directory``; all of them without one)."""
    from study.config import load_config

    cfg = load_config(configfile)
    shp = shapes(cfg)
    out: Dict[str, Dict[str, int]] = {}
    for path, rule, present in dag_outputs(configfile, directory=directory):
        n = file_bytes(path, rule, cfg, shp)
        row = out.setdefault(rule, {"files": 0, "bytes": 0, "missing": 0})
        row["files"] += 1
        row["bytes"] += n
        row["missing"] += 0 if present else n
    return out


def free_bytes(folder) -> int:
    """Free bytes where ``folder`` is, or would be (its nearest existing parent)."""
    folder = Path(folder).resolve()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def check(configfile, *, directory=".") -> Tuple[int, int]:
    """(bytes the plan still writes, bytes free where ``results/`` lives); :class:`InputError` naming ``results/``
    when the first exceeds :data:`MARGIN`-short of the second."""
    need = sum(r["missing"] for r in estimate(configfile, directory=directory).values())
    results = Path(directory) / RESULTS
    free = free_bytes(results)
    if need > (1.0 - MARGIN) * free:
        raise InputError(f"{RESULTS}/", f"this plan writes about {_gb(need)}, {_gb(free)} free (config: {configfile}; "
                         "DISK_CHECK=0 make all skips this check)")
    return need, free


@cli
def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m study.disk", description=__doc__.split("\n\n")[0])
    p.add_argument("action", choices=["check", "estimate"])
    p.add_argument("--configfile", default="config/default.yaml")
    p.add_argument("--directory", default=".", help="the workflow's working directory (results/ is in it)")
    args = p.parse_args(argv)
    if args.action == "check":
        need, free = check(args.configfile, directory=args.directory)
        print(f"disk: this plan writes about {_gb(need)} under {RESULTS}/, {_gb(free)} free")
        return 0
    table = estimate(args.configfile, directory=args.directory)
    for rule, row in sorted(table.items(), key=lambda kv: -kv[1]["bytes"]):
        print(f"{rule:22s} {row['files']:5d} files  {_gb(row['bytes']):>9s}  ({_gb(row['missing'])} to write)")
    print(f"{'total':22s} {sum(r['files'] for r in table.values()):5d} files  "
          f"{_gb(sum(r['bytes'] for r in table.values())):>9s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
