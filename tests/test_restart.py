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
        "free = iter([1 << 30])  # room when checked beforehand, none once the write failed\n"
        "shutil.disk_usage = lambda _: shutil._ntuple_diskusage(1 << 30, 1 << 30, next(free, 0))\n"
        "import h5py\n"
        "real = h5py.File.create_dataset\n"
        "def full(self, *a, **k): raise OSError('Can\\'t write data (file write failed)')\n"
        "h5py.Group.create_dataset = full\n"
        "from simulate.phantoms import main\n"
        f"main([{str(tmp_path / 'ph.h5')!r}, '--size', '32', '--slices', '2', '--seed', '1'])\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr[-1500:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {tmp_path / 'ph.h5'}: no space left on device (0 bytes free")
    assert "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- free space checked before a large write

MiB = 1 << 20


def _free(monkeypatch, free):
    """Make every free-space query (``shutil.disk_usage``, as plumbing calls it) report ``free`` bytes."""
    import shutil

    from simulate import plumbing

    calls = []

    def disk_usage(path):
        calls.append(Path(path))
        return shutil._ntuple_diskusage(1 << 40, (1 << 40) - free, free)

    monkeypatch.setattr(plumbing.shutil, "disk_usage", disk_usage)
    return calls


def test_the_estimate_counts_every_tensor_and_array_once():
    import numpy as np
    import torch

    from simulate.plumbing import nbytes_of

    shared = torch.zeros(7, dtype=torch.float32)  # 28 B, however often it or a view of it appears
    obj = {"a": torch.zeros(10, 3), "b": [torch.zeros(5, dtype=torch.float64), (torch.zeros(2, dtype=torch.int16),)],
           "arr": np.zeros(4, np.uint8), "steps": 3, "name": "x" * 1000, "s1": shared, "s2": shared,
           "head": shared[:3], "tail": shared[2:], "net": torch.nn.Linear(3, 2)}
    assert nbytes_of(obj) == 120 + 40 + 4 + 4 + 28 + (6 + 2) * 4
    assert nbytes_of({"w": 1}) == nbytes_of(None) == 0
    cyclic = [torch.zeros(4, dtype=torch.uint8)]
    cyclic.append(cyclic)
    assert nbytes_of(cyclic) == 4


def test_a_checkpoint_too_large_for_the_disk_is_refused_before_any_file_is_made(tmp_path, monkeypatch, capsys):
    import torch

    from simulate import plumbing

    checkpoint = {"generator": {"w": torch.zeros(MiB, dtype=torch.float32)}, "step": 10}  # 4 MiB
    out = tmp_path / "run" / "checkpoint.pt"  # its folder does not exist yet: the check must not make it
    calls = _free(monkeypatch, 2 * MiB)
    with pytest.raises(plumbing.OutputError) as err:
        plumbing.save_torch(checkpoint, out)
    assert str(err.value) == f"{out}: no space left on device (needs ~4.0 MiB, 2.0 MiB free on {tmp_path})"
    assert calls == [tmp_path] and list(tmp_path.iterdir()) == []  # neither target, temporary nor folder

    @plumbing.cli
    def main(argv=None):
        plumbing.save_torch(checkpoint, out)

    with pytest.raises(SystemExit) as exit_:
        main([])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {out}: no space left on device "
                                                            f"(needs ~4.0 MiB, 2.0 MiB free on {tmp_path})"]
    # the headroom on top of the estimate: one byte short is refused, exactly enough is written
    _free(monkeypatch, 4 * MiB + plumbing.HEADROOM - 1)
    with pytest.raises(plumbing.OutputError, match="no space left on device"):
        plumbing.save_torch(checkpoint, out)
    assert list(tmp_path.iterdir()) == []
    _free(monkeypatch, 4 * MiB + plumbing.HEADROOM)
    plumbing.save_torch(checkpoint, out)
    assert torch.equal(torch.load(out)["generator"]["w"], checkpoint["generator"]["w"])
    assert [q.name for q in out.parent.iterdir()] == ["checkpoint.pt"]


def test_a_volume_too_large_for_the_disk_is_refused_before_any_file_is_made(tmp_path, monkeypatch):
    import numpy as np

    from simulate.io import read_array, write_arrays
    from simulate.plumbing import OutputError, atomic_h5

    volume = np.ones((3, 512, 512), np.float32)  # 3 MiB
    slices = np.arange(3)  # 24 B
    out = tmp_path / "recon.h5"
    _free(monkeypatch, 3 * MiB)
    with pytest.raises(OutputError) as err:
        write_arrays(out, {"/recon": volume, "/slices": slices}, {"method": "fbp"})
    assert str(err.value) == f"{out}: no space left on device (needs ~3.0 MiB, 3.0 MiB free on {tmp_path})"
    with pytest.raises(OutputError, match=f"{out.name}: no space left on device \\(needs ~3.0 MiB"):
        with atomic_h5(out, nbytes=volume.nbytes):
            raise AssertionError("the file must not be opened")
    assert list(tmp_path.iterdir()) == []
    # compressed, the size is not known beforehand: no check (the disk here has room)
    write_arrays(out, {"/recon": volume}, compression="gzip")
    assert read_array(out, "/recon").shape == volume.shape
    out.unlink()
    _free(monkeypatch, 5 * MiB)
    write_arrays(out, {"/recon": volume, "/slices": slices})
    assert np.array_equal(read_array(out, "/recon"), volume)
    assert [q.name for q in tmp_path.iterdir()] == ["recon.h5"]
