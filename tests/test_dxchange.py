"""Reading raw DXchange scans: checks, row selection, binning, and the command line's failures."""

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from simulate import dxchange
from simulate.acquire import read_projections
from simulate.io import InputError

N_ANG, N_ROWS, N_DET = 6, 6, 8


def _raw(path, *, data=None, white=None, dark=None, theta=None, drop=(), attrs=None, pad_bytes=0):
    """Write a small raw DXchange file; each part can be replaced or dropped."""
    rng = np.random.default_rng(0)
    parts = {
        "/exchange/data": rng.integers(1000, 5000, (N_ANG, N_ROWS, N_DET)).astype(np.uint16) if data is None else data,
        "/exchange/data_white": np.full((3, N_ROWS, N_DET), 10100, np.uint16) if white is None else white,
        "/exchange/data_dark": np.full((2, N_ROWS, N_DET), 100, np.uint16) if dark is None else dark,
        "/exchange/theta": np.linspace(0, 180, N_ANG, endpoint=False) if theta is None else theta,
    }
    with h5py.File(path, "w") as f:
        for name, arr in parts.items():
            if name not in drop:
                f.create_dataset(name, data=arr)
        if pad_bytes:  # bulk, so that a truncated copy loses data, not only the superblock
            f.create_dataset("/pad", data=np.arange(pad_bytes // 8, dtype=np.float64))
        for k, v in (attrs or {}).items():
            f.attrs[k] = v
    return Path(path)


def _truncated(tmp_path):
    good = _raw(tmp_path / "good.h5", pad_bytes=64_000)
    blob = good.read_bytes()
    bad = tmp_path / "truncated.h5"
    bad.write_bytes(blob[: len(blob) // 2])
    return bad


def _nan_data():
    d = np.full((N_ANG, N_ROWS, N_DET), 3000.0, np.float32)
    d[2, 1, 3] = np.nan
    return d


BAD = {
    "missing_white": (lambda p: _raw(p, drop=("/exchange/data_white",)), "data_white"),
    "missing_theta": (lambda p: _raw(p, drop=("/exchange/theta",)), "theta"),
    "theta_length": (lambda p: _raw(p, theta=np.arange(N_ANG - 1.0)), "angles"),
    "all_zero": (lambda p: _raw(p, data=np.zeros((N_ANG, N_ROWS, N_DET), np.uint16)), "all zero"),
    "one_zero_frame": (lambda p: _raw(p, data=np.concatenate([np.full((N_ANG - 1, N_ROWS, N_DET), 9, np.uint16),
                                                              np.zeros((1, N_ROWS, N_DET), np.uint16)])),
                       "index 5"),
    "nan": (lambda p: _raw(p, data=_nan_data()), "NaN"),
    "white_shape": (lambda p: _raw(p, white=np.full((3, N_ROWS, N_DET - 1), 10100, np.uint16)), "data_white"),
    "dark_shape": (lambda p: _raw(p, dark=np.full((2, N_ROWS + 1, N_DET), 100, np.uint16)), "data_dark"),
    "truncated": (lambda p: _truncated(p.parent), "truncated"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_raises_input_error(tmp_path, case):
    make, words = BAD[case]
    path = make(tmp_path / "raw.h5")
    with pytest.raises(InputError, match=words) as exc:
        dxchange.read_raw(path)
    assert str(path) in str(exc.value)


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_cli_exits_2_with_one_line(tmp_path, capsys, case):
    make, words = BAD[case]
    path = make(tmp_path / "raw.h5")
    out = tmp_path / "out" / "proj.h5"
    with pytest.raises(SystemExit) as exc:
        dxchange.main([str(path), str(out), "--center", "4"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and str(path) in err
    assert not out.exists()
    assert not list(tmp_path.glob("out/*"))  # no partial or temporary file


def test_cli_as_a_module(tmp_path):
    """``python -m simulate.dxchange``: a good file works, a missing one fails with status 2."""
    raw = _raw(tmp_path / "raw.h5")
    out = tmp_path / "proj.h5"
    ok = subprocess.run([sys.executable, "-m", "simulate.dxchange", str(raw), str(out), "--center", "4",
                         "--dataset", "tomo_00001"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    data, theta, attrs = read_projections(out)
    assert data.shape == (N_ANG, N_ROWS, N_DET)
    assert attrs["source"] == "tomobank:tomo_00001"   # no source attribute in the raw file: a real download
    bad = subprocess.run([sys.executable, "-m", "simulate.dxchange", str(tmp_path / "nope.h5"),
                          str(tmp_path / "p2.h5"), "--center", "4"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].startswith("error: ") and "nope.h5" in bad.stderr
    assert not (tmp_path / "p2.h5").exists()


def test_rows_selection_reads_only_those_rows(tmp_path):
    data = np.random.default_rng(1).uniform(1000, 5000, (N_ANG, N_ROWS, N_DET)).astype(np.float32)
    data[:, 0] = np.nan      # rows outside the selection are never read: their NaN goes unnoticed
    data[:, 4:] = np.nan
    path = _raw(tmp_path / "raw.h5", data=data, white=np.arange(3 * N_ROWS * N_DET, dtype=np.float32)
                .reshape(3, N_ROWS, N_DET) + 20000)
    got, white, dark, theta, _ = dxchange.read_raw(path, rows=slice(1, 4))
    np.testing.assert_array_equal(got, data[:, 1:4])
    np.testing.assert_array_equal(white, np.arange(3 * N_ROWS * N_DET).reshape(3, N_ROWS, N_DET)[:, 1:4] + 20000)
    assert dark.shape == (2, 3, N_DET) and theta.shape == (N_ANG,)
    got2, *_ = dxchange.read_raw(path, rows=(1, 4))
    np.testing.assert_array_equal(got2, got)
    with pytest.raises(InputError, match="NaN"):
        dxchange.read_raw(path)
    with pytest.raises(InputError, match="outside"):
        dxchange.read_raw(path, rows=slice(2, N_ROWS + 1))


def test_bin_factor_2_halves_rows_and_detector(tmp_path):
    data = np.random.default_rng(2).integers(1000, 5000, (N_ANG, N_ROWS, N_DET)).astype(np.uint16)
    path = _raw(tmp_path / "raw.h5", data=data, attrs={"center": 5.0, "source": "synthetic-shale"})
    got, white, dark, theta, _ = dxchange.read_raw(path, bin_factor=2)
    assert got.shape == (N_ANG, N_ROWS // 2, N_DET // 2)
    assert white.shape == (3, N_ROWS // 2, N_DET // 2) and dark.shape == (2, N_ROWS // 2, N_DET // 2)
    expected = data.astype(np.float64).reshape(N_ANG, N_ROWS // 2, 2, N_DET // 2, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    # an odd number of rows: the leftover row is dropped
    got3, *_ = dxchange.read_raw(path, rows=slice(1, 6), bin_factor=2)
    np.testing.assert_allclose(got3, data[:, 1:5].astype(np.float64)
                               .reshape(N_ANG, 2, 2, N_DET // 2, 2).mean(axis=(2, 4)), rtol=1e-6)
    # prepare: the centre (pixel edges, detector/2 centred) scales by 1/bin
    out = tmp_path / "proj.h5"
    attrs = dxchange.prepare(path, out, bin_factor=2)
    proj, th, written = read_projections(out)
    assert proj.shape == (N_ANG, N_ROWS // 2, N_DET // 2)
    assert written["center"] == pytest.approx(2.5) and written["center_raw"] == pytest.approx(5.0)
    assert written["bin_factor"] == 2 and written["source"] == "synthetic-shale"
    np.testing.assert_allclose(np.degrees(th), theta)
    np.testing.assert_allclose(proj, -np.log((expected - 100.0) / 10000.0), rtol=1e-5)
    assert attrs["center"] == written["center"]


def test_prepare_needs_a_centre_for_real_files(tmp_path):
    path = _raw(tmp_path / "tomo_00002.h5")
    with pytest.raises(InputError, match="center"):
        dxchange.prepare(path, tmp_path / "proj.h5")
    with pytest.raises(InputError, match="outside the detector"):
        dxchange.prepare(path, tmp_path / "proj.h5", center=N_DET + 3)
    attrs = dxchange.prepare(path, tmp_path / "proj.h5", center=4.0, rows=slice(2, 4))
    assert attrs["source"] == "tomobank:tomo_00002" and attrs["dataset"] == "tomo_00002"
    assert (attrs["rows_start"], attrs["rows_stop"]) == (2, 4)
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))
