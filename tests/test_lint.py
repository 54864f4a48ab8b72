"""The workflow as the Snakemake community checks it: `snakemake --lint` clean on every config, rules formatted by snakefmt."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p.name for p in (ROOT / "config").glob("*.yaml") if p.name != "config.schema.yaml")


@pytest.mark.parametrize("name", CONFIGS)
def test_snakemake_lint_is_clean(tmp_path, name):
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--lint", "--snakefile", str(ROOT / "Snakefile"),
                           "--configfile", str(ROOT / "config" / name), "--directory", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Lints for" not in out, out[-3000:]


def test_rules_are_formatted_by_snakefmt():
    pytest.importorskip("snakefmt")
    proc = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "Snakefile", "rules"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
