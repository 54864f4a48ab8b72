"""Trained models on demand, outside the workflow: ``tomogan-model`` prints the path of a model's ``model.pt``,
training it first when the cache lacks it.

* ``generalist``: the config's generalist, trained on every phantom family of its corpus;
* ``matched SCAN.h5``: that generalist fine-tuned on the families simulated at the scan's own acquisition -- its
  views, detector, rotation axis, line integrals and photons per pixel, with Poisson noise at that level
  (:mod:`simulate.scanmatch`; dose :data:`study.runs.AS_ACQUIRED`) -- the model ``tomogan-scan`` should rank on
  that scan.

Each is made by the workflow's own target -- the same Snakefile, rules and config as ``make all``; for a scan, the
config with the scan added to ``scans:`` as acquired, named by a digest of the file -- run in a cache folder, one
subfolder per config hash, so every scan on the same machine reuses the generalist, and a changed config or scan
trains its own. A killed training resumes where it stopped (Snakemake's ``--rerun-incomplete``)::

    tomogan-model generalist [--configfile config/default.yaml] [--cache DIR] [--cores N] [--dry-run]
    tomogan-model matched SCAN.h5 [--center auto|C] [--rows START STOP] [--bin B] [...the same options]
    tomogan-scan SCAN.h5 -o OUT --model generalist=PATH matched=PATH2      # the paths it printed

The cache is ``--cache``, else ``$TOMOGAN_CACHE``, else ``~/.cache/tomogan-study``; the workflow's log goes to
``<cache>/<config hash>/<label>[-<scan>].log``.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

from simulate.plumbing import InputError, cli, usable_cores

__all__ = ["DEFAULT_CONFIG", "SCAN_PREFIX", "scan_name", "cache_root", "model_target", "scan_config", "snakemake_command", "model",
           "main"]

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "config" / "default.yaml"
SCAN_PREFIX = "scan-"  # a scan's name in the config made for it: this and a digest of the file


def cache_root(cache=None) -> Path:
    """``cache``, else ``$TOMOGAN_CACHE``, else ``~/.cache/tomogan-study``."""
    return Path(cache or os.environ.get("TOMOGAN_CACHE") or Path.home() / ".cache" / "tomogan-study").expanduser()


def scan_name(scan, *, center="auto", rows=None, bin_factor: int = 1) -> str:
    """The scan's name in the workflow: :data:`SCAN_PREFIX` and a digest of its path, size, modification time and
    how it is read, so that each scan (or a changed one) has outputs of its own in the shared cache folder."""
    stat = Path(scan).stat()
    key = f"{Path(scan).resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{center}:{rows}:{bin_factor}"
    return SCAN_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:10]


def scan_config(configfile, scan, *, center="auto", rows=None, bin_factor: int = 1) -> dict:
    """The config of ``configfile`` with its ``scans:`` replaced by ``scan`` alone (named by :func:`scan_name`),
    run as acquired (with the split and doses of the config's first scan, which only the study's low-dose copies
    use).

    Raises
    ------
    InputError
        Naming the scan when it is not a file, or the config when it has no ``scan_matched`` section.
    """
    import yaml

    scan = Path(scan)
    if not scan.is_file():
        raise InputError(str(scan), "no such file")
    try:
        config = yaml.safe_load(Path(configfile).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(str(configfile), f"not a readable YAML config: {str(exc).splitlines()[0]}") from None
    if not config.get("scan_matched"):
        raise InputError(str(configfile), "simulates nothing matched to a scan (it has no scan_matched: section)")
    if not config.get("scans"):
        raise InputError(str(configfile), "has no scans: entry to take a split and doses from")
    first = next(iter(config["scans"].values()))  # its split and doses: the study planned around a scan
    entry = {"path": str(scan.resolve()), "center": center, "bin": int(bin_factor), "acquired": True,
             "split": first["split"], "doses": list(first["doses"])}
    if rows:
        entry["rows"] = [int(rows[0]), int(rows[1])]
    config["scans"] = {scan_name(scan, center=center, rows=rows, bin_factor=bin_factor): entry}
    return config


def model_target(config, scan: Optional[str] = None) -> tuple:
    """``(config hash, {label: model path relative to a workflow folder})`` of the models ``tomogan-scan`` ranks
    on scan ``scan`` of the config (the generalist alone without one; :meth:`study.plan.Plan.acquired_models`).
    ``config``: a dict or a file.

    Raises
    ------
    InputError
        Naming the config: unreadable or not valid.
    """
    from study.config import load_config
    from study.plan import Plan

    where = "config" if isinstance(config, dict) else str(config)
    try:
        plan = Plan.from_config(load_config(config if isinstance(config, dict) else str(config)))
    except ValueError as exc:
        raise InputError(where, str(exc)) from None
    return plan.config_hash, plan.acquired_models(scan)


def snakemake_command(configfile, workdir, target: str, cores: int, dry_run: bool = False) -> List[str]:
    """The Snakemake call that makes ``target`` in ``workdir`` with the project's Snakefile and ``configfile``."""
    return [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
            "--cores", str(int(cores)), "--rerun-incomplete", *(["--dry-run"] if dry_run else []), target,
            "--configfile", str(Path(configfile).resolve())]


def model(label: str, configfile=DEFAULT_CONFIG, cache=None, *, scan=None, center="auto", rows=None,
          bin_factor: int = 1, cores: Optional[int] = None, dry_run: bool = False) -> Path:
    """The path of model ``label`` (``generalist``, or ``matched`` with ``scan``) in the cache, trained there first
    if missing (with ``dry_run``, only planned: the path is returned whether or not it exists).

    Raises
    ------
    InputError
        A bad config or scan (naming it), a config that trains no such model, or a workflow that failed (naming
        its log).
    """
    import yaml

    folder, models = model_target(configfile)  # one folder per config: every scan's run shares its generalist
    if scan is not None:
        config = scan_config(configfile, scan, center=center, rows=rows, bin_factor=bin_factor)
        name = next(iter(config["scans"]))
        _, models = model_target(copy.deepcopy(config), name)  # (the plan fills in and expands what it gets)
    if label not in models:
        raise InputError(str(configfile), f"trains no {label} model (generalist: a corpus: section; matched: "
                                          "corpus: and scan_matched:, and a scan)")
    workdir = cache_root(cache) / folder
    target = models[label]
    path = workdir / target
    if path.is_file() and not dry_run:
        logger.info("the %s model is cached: %s", label, path)
        return path
    workdir.mkdir(parents=True, exist_ok=True)
    if scan is not None:
        configfile = workdir / f"config-{name}.yaml"
        configfile.write_text(yaml.safe_dump(config, sort_keys=False))
    log = workdir / (f"{label}-{name}.log" if scan is not None else f"{label}.log")
    cmd = snakemake_command(configfile, workdir, target, cores or usable_cores(), dry_run)
    logger.info("%s the %s model in %s (log: %s)", "planning" if dry_run else "training", label, workdir, log)
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    with open(log, "w") as out:  # the rules call `python -m ...`: this interpreter's first on the PATH
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=workdir, env=env)
    if proc.returncode != 0:
        raise InputError(str(log), f"the workflow failed making {target} (exit {proc.returncode}); see this log")
    if not dry_run and not path.is_file():
        raise InputError(str(log), f"the workflow finished without writing {target}")
    return path


@cli
def main(argv=None):
    from simulate.dxchange import center_argument

    p = argparse.ArgumentParser(prog="tomogan-model", description=__doc__.splitlines()[0].strip("`"))
    sub = p.add_subparsers(dest="label", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--configfile", default=str(DEFAULT_CONFIG), help="the study's config (default: the default)")
    common.add_argument("--cache", help="cache folder (default: $TOMOGAN_CACHE, else ~/.cache/tomogan-study)")
    common.add_argument("--cores", type=int, help="cores for the workflow (default: every core this process may use)")
    common.add_argument("--dry-run", action="store_true", help="plan the training only; print where the model goes")
    sub.add_parser("generalist", parents=[common], help="the config's generalist")
    m = sub.add_parser("matched", parents=[common],
                       help="the generalist fine-tuned on simulation at a scan's own acquisition")
    m.add_argument("scan", help="raw DXchange scan, as tomogan-scan reads it")
    m.add_argument("--center", type=center_argument, default="auto", help="rotation axis, raw pixels, or auto")
    m.add_argument("--rows", type=int, nargs=2, metavar=("START", "STOP"), help="detector rows to keep")
    m.add_argument("--bin", type=int, default=1, dest="bin_factor", help="average BIN x BIN pixels")
    args = p.parse_args(argv)
    if args.cores is not None and args.cores < 1:
        p.error(f"--cores must be >= 1, got {args.cores}")
    scan = dict(scan=args.scan, center=args.center, rows=args.rows, bin_factor=args.bin_factor) \
        if args.label == "matched" else {}
    print(model(args.label, args.configfile, args.cache, cores=args.cores, dry_run=args.dry_run, **scan))


if __name__ == "__main__":
    main()
