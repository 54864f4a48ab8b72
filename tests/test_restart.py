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


# ----------------------------------------------------------------------------- a full disk


def test_a_full_disk_is_one_line_naming_the_file_and_leaves_nothing(tmp_path, monkeypatch):
    import errno
    import shutil

    from simulate import plumbing

    out = tmp_path / "model.pt"

    def torch_on_a_full_disk(obj, path):  # torch.save's own words for ENOSPC
        Path(path).write_bytes(b"half")
        raise RuntimeError("basic_ios::clear: iostream error")

    import torch

    monkeypatch.setattr(torch, "save", torch_on_a_full_disk)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10 << 20, 10 << 20, 4096))
    with pytest.raises(plumbing.OutputError, match=r"model.pt: no space left on device \(4096 bytes free"):
        plumbing.save_torch({"w": 1}, out)
    assert list(tmp_path.iterdir()) == []  # neither the target nor a temporary file
    # ENOSPC itself, whatever the free space says
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10 << 30, 0, 5 << 30))

    def hdf5_full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(plumbing.OutputError, match="no space left on device"):
        with plumbing.atomic_path(tmp_path / "v.h5") as tmp:
            hdf5_full()
    # a library's other failure, with room on the disk, stays itself
    with pytest.raises(RuntimeError, match="iostream"):
        plumbing.save_torch({"w": 1}, out)
    assert list(tmp_path.iterdir()) == []


def test_a_command_on_a_full_disk_exits_with_one_error_line(tmp_path):
    """The whole path through a command: its writer fails for lack of room, the user reads one line."""
    script = (
        "import shutil, sys; import numpy as np\n"
        "import simulate.plumbing as p\n"
        "shutil.disk_usage = lambda _: shutil._ntuple_diskusage(1 << 30, 1 << 30, 0)\n"
        "import h5py\n"
        "real = h5py.File.create_dataset\n"
        "def full(self, *a, **k): raise OSError('Can\\'t write data (file write failed)')\n"
        "h5py.Group.create_dataset = full\n"
        "from simulate.phantoms import main\n"
        f"main([{str(tmp_path / 'ph.h5')!r}, '--size', '32', '--slices', '2', '--seed', '1'])\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr[-1500:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {tmp_path / 'ph.h5'}: no space left on device") and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []
