"""Reading raw DXchange scans: checks, row selection, binning, and the command line's failures."""

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from simulate import dxchange
from simulate.acquire import read_projections
from simulate.plumbing import InputError

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


# --------------------------------------------------------------------------- automatic centre, more bad input

def _disc_scan(path, *, center_offset, n_det=128, rows=4, n_angles=120, incident=2e4, attrs=None):
    """A raw scan of off-centre discs whose rotation axis lies at ``n_det / 2 + center_offset``."""
    from scipy import ndimage

    from simulate.acquire import angles
    from simulate.reconstruct import project

    y, x = (np.mgrid[:n_det, :n_det] - (n_det - 1) / 2) / n_det
    img = ((x / 0.4) ** 2 + (y / 0.33) ** 2 <= 1).astype(np.float32)
    for cx, cy, r, v in ((0.15, -0.1, 0.07, 0.8), (-0.2, 0.1, 0.06, -0.6), (0.05, 0.2, 0.03, 1.5)):
        img += v * ((x - cx) ** 2 + (y - cy) ** 2 <= r ** 2)
    theta = angles(n_angles)
    p = project(np.repeat(img[None], rows, axis=0), theta)
    p = ndimage.shift(p * (2.0 / p.max()), (0, 0, center_offset), order=3, mode="constant")
    rng = np.random.default_rng(7)
    data = rng.poisson(incident * np.exp(-np.maximum(p, 0))) + 100
    white = rng.poisson(incident, (3, rows, n_det)) + 100
    with h5py.File(path, "w") as f:
        f["/exchange/data"] = data.astype(np.uint16)
        f["/exchange/data_white"] = white.astype(np.uint16)
        f["/exchange/data_dark"] = np.full((2, rows, n_det), 100, np.uint16)
        f["/exchange/theta"] = np.degrees(theta)
        for k, v in (attrs or {}).items():
            f.attrs[k] = v
    return Path(path)


@pytest.mark.parametrize("bin_factor", [1, 2])
def test_prepare_finds_the_centre(tmp_path, bin_factor):
    raw = _disc_scan(tmp_path / "scan.h5", center_offset=6.6)
    attrs = dxchange.prepare(raw, tmp_path / "proj.h5", center="auto", bin_factor=bin_factor)
    assert abs(attrs["center_raw"] - (64 + 6.6)) < 0.5 * bin_factor, attrs["center_raw"]
    assert attrs["center"] == pytest.approx(attrs["center_raw"] / bin_factor)
    assert attrs["center_method"].startswith("auto (") and "entropy" in attrs["center_method"]
    assert read_projections(tmp_path / "proj.h5")[2]["center_method"] == attrs["center_method"]


def test_cli_center_auto_and_the_recorded_method(tmp_path):
    raw = _disc_scan(tmp_path / "scan.h5", center_offset=-5.2)
    dxchange.main([str(raw), str(tmp_path / "auto.h5"), "--center", "auto"])
    written = read_projections(tmp_path / "auto.h5")[2]
    assert abs(written["center_raw"] - (64 - 5.2)) < 0.5 and written["center_method"].startswith("auto (")
    dxchange.main([str(raw), str(tmp_path / "given.h5"), "--center", "58.8"])
    assert read_projections(tmp_path / "given.h5")[2]["center_method"] == "given"
    attrs = dxchange.prepare(_raw(tmp_path / "stand_in.h5", attrs={"center": 4.5, "source": "synthetic-shale"}),
                             tmp_path / "file.h5")
    assert attrs["center_method"] == "file attribute" and attrs["center_raw"] == 4.5
    with pytest.raises(SystemExit) as exc:
        dxchange.main([str(raw), str(tmp_path / "x.h5"), "--center", "middle"])
    assert exc.value.code == 2 and not (tmp_path / "x.h5").exists()


def _found_outside(monkeypatch):
    monkeypatch.setattr(dxchange, "find_center", lambda proj, theta, **kw: -3.0)


# case -> (make the raw file, centre for prepare and the CLI, words of the message, patch)
PREPARE_BAD = {
    "missing_white": (lambda p: _raw(p, drop=("/exchange/data_white",)), "4",
                      "missing dataset '/exchange/data_white'", None),
    "empty_white": (lambda p: _raw(p, white=np.zeros((0, N_ROWS, N_DET), np.uint16)), "4",
                    "'/exchange/data_white' is empty, shape (0, 6, 8): no flat field", None),
    "zero_flats": (lambda p: _raw(p, white=np.zeros((3, N_ROWS, N_DET), np.uint16)), "4",
                   "3 of 3 flat fields in '/exchange/data_white' are all zero", None),
    "one_zero_flat": (lambda p: _raw(p, white=np.concatenate([np.full((2, N_ROWS, N_DET), 10100, np.uint16),
                                                              np.zeros((1, N_ROWS, N_DET), np.uint16)])), "auto",
                      "1 of 3 flat fields in '/exchange/data_white' are all zero (index 2)", None),
    "flats_at_dark": (lambda p: _raw(p, white=np.full((3, N_ROWS, N_DET), 100, np.uint16)), "4",
                      "no detector pixel has flat-field signal above the dark level", None),
    "theta_too_short": (lambda p: _raw(p, theta=np.arange(N_ANG - 1.0)), "4",
                        f"{N_ANG - 1} angles in '/exchange/theta' for {N_ANG} projections", None),
    "theta_too_long": (lambda p: _raw(p, theta=np.arange(N_ANG + 2.0)), "auto",
                       f"{N_ANG + 2} angles in '/exchange/theta' for {N_ANG} projections", None),
    "all_zero": (lambda p: _raw(p, data=np.zeros((N_ANG, N_ROWS, N_DET), np.uint16)), "auto",
                 f"{N_ANG} of {N_ANG} projections are all zero", None),
    "centre_given_outside": (lambda p: _raw(p), str(N_DET + 3.0),
                             f"rotation centre {N_DET + 3.0} outside the detector of {N_DET} pixels", None),
    "centre_given_negative": (lambda p: _raw(p), "-2.0", f"rotation centre -2.0 outside the detector of {N_DET} pixels",
                              None),
    "centre_found_outside": (lambda p: _raw(p), "auto",
                             f"found rotation centre -3.00 outside the detector of {N_DET} pixels", _found_outside),
    "centre_not_found": (lambda p: _raw(p, data=np.full((N_ANG, N_ROWS, N_DET), 10100, np.uint16)), "auto",
                         "automatic rotation-centre search failed: projections are constant", None),
}


@pytest.mark.parametrize("case", sorted(PREPARE_BAD))
def test_prepare_bad_input_names_file_and_problem_and_cli_exits_2(tmp_path, capsys, monkeypatch, case):
    make, center, words, patch = PREPARE_BAD[case]
    if patch:
        patch(monkeypatch)
    path = make(tmp_path / "raw.h5")
    out = tmp_path / "out" / "proj.h5"
    with pytest.raises(InputError) as exc:
        dxchange.prepare(path, out, center=center if center == "auto" else float(center))
    message = str(exc.value)
    assert message.startswith(f"{path}: ") and words in message and "\n" not in message, message
    assert not out.exists() and not list(tmp_path.glob("out/*"))
    with pytest.raises(SystemExit) as exc:
        dxchange.main([str(path), str(out), f"--center={center}"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {path}: ") and words in err, err
    assert not out.exists() and not list(tmp_path.glob("out/*"))
