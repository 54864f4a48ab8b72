"""A scan saved as TIFF files reads as the same raw scan (simulate/tiffscan.py)."""

from pathlib import Path

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "tests" / "data" / "scan_demo.h5"


@pytest.fixture
def tiffs(tmp_path):
    """The demo scan written the way a beamline often does: one TIFF per frame, angles in a text file."""
    import tifffile

    with h5py.File(DEMO, "r") as f:
        raw = {k: f["/exchange"][k][()] for k in ("data", "data_white", "data_dark", "theta")}
    for name, frames in (("proj", raw["data"]), ("flat", raw["data_white"]), ("dark", raw["data_dark"])):
        for i, frame in enumerate(frames):
            tifffile.imwrite(tmp_path / f"{name}_{i}.tif", frame.astype(np.uint16))  # proj_2 before proj_10
    (tmp_path / "angles.txt").write_text("# degrees\n" + "\n".join(f"{t:.6f}" for t in raw["theta"]))
    return tmp_path, raw


def _convert(folder, out, angles="angles.txt", units=None):
    from simulate.tiffscan import main

    return main([str(out), "--projections", str(folder / "proj_*.tif"), "--flats", str(folder / "flat_*.tif"),
                 "--darks", str(folder / "dark_*.tif"), "--angles", str(folder / angles)]
                + (["--angle-units", units] if units else []))


def test_tiffs_and_angles_become_the_same_raw_scan(tiffs, tmp_path):
    from simulate.dxchange import read_raw

    folder, raw = tiffs
    out = tmp_path / "scan.h5"
    _convert(folder, out)
    a, b = read_raw(out), read_raw(DEMO)
    for x, y in zip(a[:4], b[:4]):  # data, flats, darks, theta: the same arrays, frames in acquisition order
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-3)


def test_angles_in_radians_give_the_same_scan(tiffs, tmp_path):
    from simulate.dxchange import read_raw

    folder, raw = tiffs
    (folder / "radians.txt").write_text(" ".join(repr(float(t)) for t in np.radians(raw["theta"])))
    _convert(folder, tmp_path / "rad.h5", angles="radians.txt", units="radians")
    _convert(folder, tmp_path / "deg.h5")
    np.testing.assert_allclose(read_raw(tmp_path / "rad.h5")[3], read_raw(tmp_path / "deg.h5")[3], atol=1e-9)


@pytest.mark.parametrize("problem", ["angles", "pattern", "shape"])
def test_bad_tiff_scans_get_one_line_and_no_file(problem, tiffs, tmp_path, capsys):
    import tifffile

    folder, raw = tiffs
    angles = "angles.txt"
    if problem == "angles":
        (folder / "short.txt").write_text(" ".join(str(t) for t in raw["theta"][:-1]))
        angles = "short.txt"
    elif problem == "pattern":
        for f in folder.glob("dark_*.tif"):
            f.unlink()
    else:
        tifffile.imwrite(folder / "flat_0.tif", np.ones((3, 5), np.uint16))
    out = tmp_path / "bad.h5"
    with pytest.raises(SystemExit) as exc:
        _convert(folder, out, angles=angles)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    expect = {"angles": f"error: {folder / 'short.txt'}: 179 angles for 180 projections",
              "pattern": f"error: {folder / 'dark_*.tif'}: no file matches this pattern",
              "shape": f"error: {folder / 'flat_1.tif'}: frames of "}[problem]
    assert len(err) == 1 and err[0].startswith(expect), err
    assert not out.exists()
