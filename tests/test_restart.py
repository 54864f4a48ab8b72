"""Restarting after a crash is one command: a killed Snakemake's lock is removed, a running one's is not."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from simulate.plumbing import InputError, clear_stale_lock, running_snakemake

ROOT = Path(__file__).resolve().parents[1]


def _lock(folder):
    locks = folder / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.input.lock").write_text("results/x.h5\n")
    return locks


def test_a_killed_runs_lock_is_removed(tmp_path):
    locks = _lock(tmp_path)
    assert clear_stale_lock(tmp_path) and not list(locks.glob("*.lock"))
    assert not clear_stale_lock(tmp_path)  # nothing left to do


@pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="needs /proc")
def test_a_running_snakemakes_lock_is_kept_and_named_in_one_line(tmp_path):
    locks = _lock(tmp_path)
    # a process in that folder whose command line names snakemake stands for a live run
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "snakemake"], cwd=tmp_path)
    try:
        for _ in range(50):
            if running_snakemake(tmp_path):
                break
            time.sleep(0.1)
        assert running_snakemake(tmp_path) == [proc.pid]
        with pytest.raises(InputError, match=f"still running in this folder \\(pid {proc.pid}\\)"):
            clear_stale_lock(tmp_path)
        assert list(locks.glob("*.lock"))
        cmd = subprocess.run([sys.executable, "-m", "simulate.plumbing", "clear-stale-lock", str(tmp_path)],
                             capture_output=True, text=True, cwd=ROOT)
        assert cmd.returncode == 2 and cmd.stderr.strip().splitlines()[-1].startswith(f"error: {locks}: ")
    finally:
        proc.kill()
        proc.wait()
    assert clear_stale_lock(tmp_path)  # once it is gone, the lock is stale
