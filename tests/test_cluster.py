"""The paper-scale study plans on a Slurm cluster (a dry run: no cluster needed)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from study import Plan, load_config, release_targets

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("snakemake_executor_plugin_slurm")


def test_paper_config_plans_on_slurm_with_gpus_for_training(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "all", "--profile", str(ROOT / "profiles" / "slurm"),
                           "--configfile", str(ROOT / "config" / "paper.yaml"), "--snakefile", str(ROOT / "Snakefile"),
                           "--cores", "64",  # a dry run caps threads at the local cores; a cluster node has these
                           "--directory", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^([a-z_]+)\s+(\d+)$", out, re.M)}
    cfg = load_config(ROOT / "config" / "paper.yaml")
    runs = Plan.from_config(cfg).runs
    n_data, n_doses = len(cfg["datasets"]), len(cfg["doses"])
    assert counts["train"] == len(runs)
    assert counts["infer"] == sum(len(r.applied_to) for r in runs.values())
    assert counts["infer_release"] == len(release_targets(runs))
    assert counts["fbp"] == n_data * n_doses and counts["low_dose"] == n_data * (n_doses - 1)
    # every training job asks for what the config's resources say, GPU included
    res = cfg["resources"]["train"]
    blocks = [b for b in out.split("\n\n") if re.search(r"^(local)?rule train:", b, re.M)]
    assert len(blocks) == len(runs)
    for block in blocks:
        assert f"gpu={res['gpu']}" in block and f"mem_mb={res['mem_mb']}" in block and f"runtime={res['runtime']}" in block
        assert f"--threads {res['cpus']} " in block
