"""Bad input: one line naming the file and the problem, exit status 2, no output left behind."""

import subprocess
import sys

import h5py
import numpy as np
import pytest

from analysis import metrics
from simulate import acquire, reconstruct
from simulate.io import write_arrays


def _phantom(path, volume=None, **attrs):
    vol = np.zeros((2, 16, 16), np.float32) if volume is None else volume
    if volume is None:
        vol[:, 4:12, 4:12] = 1
    write_arrays(path, {"/phantom": vol}, attrs)
    return path


def _projections(path, n_angles=20, n_theta=None, data=None):
    theta = np.linspace(0, np.pi, n_theta or n_angles, endpoint=False)
    data = np.ones((n_angles, 2, 16), np.float32) if data is None else data
    write_arrays(path, {"/exchange/data": data, "/exchange/theta": np.degrees(theta)}, {"dose": "full"})
    return path


def _truncated(src, dst):
    raw = src.read_bytes()
    dst.write_bytes(raw[: len(raw) // 2])
    return dst


def _expect_error(capsys, main, argv, out, *needles):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ")
    for needle in needles:
        assert needle in err, (needle, err)
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}.*")), "temporary file left behind"


def test_missing_file(tmp_path, capsys):
    out = tmp_path / "out.h5"
    _expect_error(capsys, acquire.main, ["project", str(tmp_path / "nope.h5"), str(out), "--n-angles", "10"],
                  out, "nope.h5", "file not found")


def test_truncated_hdf5(tmp_path, capsys):
    bad = _truncated(_phantom(tmp_path / "p.h5"), tmp_path / "cut.h5")
    out = tmp_path / "out.h5"
    _expect_error(capsys, acquire.main, ["project", str(bad), str(out), "--n-angles", "10"], out, "cut.h5",
                  "truncated or corrupt")


def test_not_hdf5_at_all(tmp_path, capsys):
    bad = tmp_path / "notes.h5"
    bad.write_text("this is not HDF5\n")
    out = tmp_path / "out.h5"
    _expect_error(capsys, reconstruct.main, ["recon", str(bad), str(out), "--method", "fbp"], out, "notes.h5")


def test_missing_dataset(tmp_path, capsys):
    src = tmp_path / "p.h5"
    write_arrays(src, {"/something_else": np.zeros((2, 8, 8), np.float32)})
    out = tmp_path / "out.h5"
    _expect_error(capsys, acquire.main, ["project", str(src), str(out), "--n-angles", "10"], out,
                  "p.h5", "missing dataset '/phantom'")


def test_nan_in_projections(tmp_path, capsys):
    data = np.ones((20, 2, 16), np.float32)
    data[3, 1, 5] = np.nan
    src = _projections(tmp_path / "proj.h5", data=data)
    out = tmp_path / "out.h5"
    _expect_error(capsys, reconstruct.main, ["recon", str(src), str(out), "--method", "fbp"], out,
                  "proj.h5", "NaN/Inf")


def test_inf_in_phantom(tmp_path, capsys):
    vol = np.zeros((2, 16, 16), np.float32)
    vol[0, 0, 0] = np.inf
    src = _phantom(tmp_path / "p.h5", volume=vol)
    out = tmp_path / "out.h5"
    _expect_error(capsys, acquire.main, ["project", str(src), str(out), "--n-angles", "10"], out, "NaN/Inf")


def test_wrong_dtype(tmp_path, capsys):
    src = tmp_path / "p.h5"
    with h5py.File(src, "w") as f:
        f["/phantom"] = np.array([[["a"] * 4] * 4] * 2, dtype="S1")
    out = tmp_path / "out.h5"
    _expect_error(capsys, acquire.main, ["project", str(src), str(out), "--n-angles", "10"], out,
                  "p.h5", "dtype")


def test_angles_do_not_match_projections(tmp_path, capsys):
    src = _projections(tmp_path / "proj.h5", n_angles=20, n_theta=19)
    out = tmp_path / "out.h5"
    _expect_error(capsys, acquire.main, ["lowdose", str(src), str(out), "--label", "sparse-2", "--mode", "sparse",
                                         "--factor", "2"], out, "proj.h5", "19 angles")


def test_sparse_factor_too_large_for_the_file(tmp_path, capsys):
    src = _projections(tmp_path / "proj.h5", n_angles=20)
    out = tmp_path / "out.h5"
    _expect_error(capsys, acquire.main, ["lowdose", str(src), str(out), "--label", "sparse-16", "--mode", "sparse",
                                         "--factor", "16"], out, "proj.h5", "fewer than 2")


def test_non_square_phantom(tmp_path, capsys):
    src = _phantom(tmp_path / "p.h5", volume=np.ones((2, 16, 12), np.float32))
    out = tmp_path / "out.h5"
    _expect_error(capsys, acquire.main, ["project", str(src), str(out), "--n-angles", "10"], out, "square")


def test_metrics_shape_mismatch(tmp_path, capsys):
    ref = tmp_path / "ref.h5"
    rec = tmp_path / "rec.h5"
    write_arrays(ref, {"/recon": np.ones((4, 16, 16), np.float32), "/slices": np.arange(4)})
    write_arrays(rec, {"/recon": np.ones((4, 12, 12), np.float32), "/slices": np.arange(4)})
    out = tmp_path / "m.csv"
    _expect_error(capsys, metrics.main, [str(out), "--reference", str(ref), str(rec)], out, "rec.h5",
                  "slice shape")


def test_error_exit_status_from_a_real_process(tmp_path):
    bad = _truncated(_projections(tmp_path / "proj.h5"), tmp_path / "cut.h5")
    out = tmp_path / "rec.h5"
    proc = subprocess.run([sys.executable, "-m", "simulate.reconstruct", "recon", str(bad), str(out),
                           "--method", "fbp"], capture_output=True, text=True)
    assert proc.returncode == 2
    last = [line for line in proc.stderr.splitlines() if line.strip()][-1]
    assert last.startswith("error: ") and "cut.h5" in last
    assert not out.exists()


def test_failed_write_leaves_no_partial_file(tmp_path):
    out = tmp_path / "out.h5"
    with pytest.raises(TypeError):
        write_arrays(out, {"/ok": np.zeros(3), "/bad": object()})
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_scan_matched_simulation_refuses_a_file_that_is_not_a_scan(tmp_path, capsys):
    """simulate.scanmatch reads the scan's photon level and width: a simulated file has no photon estimate, and a
    phantom of another width than the scan's detector is refused, each in one line, nothing written."""
    from simulate import scanmatch

    sim = _projections(tmp_path / "sim.h5")  # no incident_estimate: not a prepared scan
    out = tmp_path / "out.h5"
    _expect_error(capsys, scanmatch.main, ["project", str(_phantom(tmp_path / "p.h5")), str(sim), str(out)], out,
                  "sim.h5", "incident_estimate")
    scan = tmp_path / "scan.h5"
    write_arrays(scan, {"/exchange/data": np.ones((20, 2, 24), np.float32),
                        "/exchange/theta": np.linspace(0, 180, 20, endpoint=False)}, {"incident_estimate": 1000.0})
    _expect_error(capsys, scanmatch.main, ["project", str(tmp_path / "p.h5"), str(scan), str(out)], out, "p.h5",
                  "do not match the scan's detector of 24 pixels")
    _expect_error(capsys, scanmatch.main, ["phantom", str(tmp_path / "nope.h5"), str(out), "--family", "fibres",
                                           "--slices", "8", "--seed", "1"], out, "nope.h5")
