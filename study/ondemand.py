"""The config's generalist on demand, outside the workflow: ``tomogan-generalist`` prints the path of its
``model.pt``, training it first when the cache lacks it.

The model is made by the workflow's own target -- the same Snakefile, rules and config as ``make all`` -- run in a
cache folder, one subfolder per config hash: a second scan on the same machine reuses the model, and a changed
config trains its own. A killed training resumes where it stopped (Snakemake's ``--rerun-incomplete``). Use it
with ``tomogan-scan``::

    tomogan-generalist [--configfile config/default.yaml] [--cache DIR] [--cores N] [--dry-run]
    tomogan-scan SCAN.h5 -o OUT --model generalist=PATH      # PATH: what tomogan-generalist printed

The cache is ``--cache``, else ``$TOMOGAN_CACHE``, else ``~/.cache/tomogan-study``. The workflow's log goes to
``<cache>/<config hash>/generalist.log``.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

from simulate.plumbing import InputError, cli, usable_cores

__all__ = ["DEFAULT_CONFIG", "cache_root", "generalist_target", "snakemake_command", "generalist", "main"]

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "config" / "default.yaml"


def cache_root(cache=None) -> Path:
    """``cache``, else ``$TOMOGAN_CACHE``, else ``~/.cache/tomogan-study``."""
    return Path(cache or os.environ.get("TOMOGAN_CACHE") or Path.home() / ".cache" / "tomogan-study").expanduser()


def generalist_target(configfile) -> tuple:
    """``(config hash, model path relative to a workflow folder)`` of the config's generalist (the one
    ``tomogan-scan`` ranks in the workflow, :meth:`study.plan.Plan.acquired_models`).

    Raises
    ------
    InputError
        Naming the config: unreadable, not valid, or training no generalist (no ``corpus:``).
    """
    from study.config import load_config
    from study.plan import Plan

    plan = Plan.from_config(load_config(str(configfile)))
    models = plan.acquired_models()
    if "generalist" not in models:
        raise InputError(str(configfile), "trains no generalist (it has no corpus: section)")
    return plan.config_hash, models["generalist"]


def snakemake_command(configfile, workdir, target: str, cores: int, dry_run: bool = False) -> List[str]:
    """The Snakemake call that makes ``target`` in ``workdir`` with the project's Snakefile and ``configfile``."""
    return [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
            "--cores", str(int(cores)), "--rerun-incomplete", *(["--dry-run"] if dry_run else []), target,
            "--configfile", str(Path(configfile).resolve())]


def generalist(configfile=DEFAULT_CONFIG, cache=None, *, cores: Optional[int] = None, dry_run: bool = False) -> Path:
    """The path of the config's generalist in the cache, trained there first if missing (with ``dry_run``, only
    planned: the path is returned whether or not it exists).

    Raises
    ------
    InputError
        A bad config (naming it), or a workflow that failed (naming its log).
    """
    config_hash, target = generalist_target(configfile)
    workdir = cache_root(cache) / config_hash
    model = workdir / target
    if model.is_file() and not dry_run:
        logger.info("the generalist of %s is cached: %s", configfile, model)
        return model
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "generalist.log"
    cmd = snakemake_command(configfile, workdir, target, cores or usable_cores(), dry_run)
    logger.info("%s the generalist of %s in %s (log: %s)", "planning" if dry_run else "training", configfile,
                workdir, log)
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    with open(log, "w") as out:  # the rules call `python -m ...`: this interpreter's first on the PATH
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=workdir, env=env)
    if proc.returncode != 0:
        raise InputError(str(log), f"the workflow failed making {target} (exit {proc.returncode}); see this log")
    if not dry_run and not model.is_file():
        raise InputError(str(log), f"the workflow finished without writing {target}")
    return model


@cli
def main(argv=None):
    p = argparse.ArgumentParser(prog="tomogan-generalist", description=__doc__.splitlines()[0].strip("`"))
    p.add_argument("--configfile", default=str(DEFAULT_CONFIG), help="the study's config (default: the default's)")
    p.add_argument("--cache", help="cache folder (default: $TOMOGAN_CACHE, else ~/.cache/tomogan-study)")
    p.add_argument("--cores", type=int, help="cores for the workflow (default: every core this process may use)")
    p.add_argument("--dry-run", action="store_true", help="plan the training only; print where the model goes")
    args = p.parse_args(argv)
    if args.cores is not None and args.cores < 1:
        p.error(f"--cores must be >= 1, got {args.cores}")
    print(generalist(args.configfile, args.cache, cores=args.cores, dry_run=args.dry_run))


if __name__ == "__main__":
    main()
