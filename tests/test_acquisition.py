"""The acquisition of a raw scan, checked (simulate.acquisition): angle units, span, order, flats and darks."""

import logging
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_dxchange import N_ANG, N_DET, N_ROWS, _raw

from simulate import dxchange
from simulate.acquire import angles, read_projections
from simulate.acquisition import check_frames, check_theta
from simulate.plumbing import InputError

DEMO = Path(__file__).parent / "data" / "scan_demo.h5"
DEG = np.linspace(0, 180, N_ANG, endpoint=False)


def _views(n, seed=3):
    """``n`` projections, each different, so that a wrong order or a wrong cut shows."""
    return np.random.default_rng(seed).integers(1000, 5000, (n, N_ROWS, N_DET)).astype(np.uint16)


# ----------------------------------------------------------------------------- check_theta, the rules

@pytest.mark.parametrize("n", [2, 3, 7, 56, 60, 180, 1501])
def test_half_turn_in_degrees_is_kept_as_stored(n):
    """What simulate.shale and the demo scan write (acquire.angles, in degrees): unchanged."""
    stored = np.degrees(angles(n))
    theta, info = check_theta(stored, path="s.h5")
    np.testing.assert_array_equal(theta, stored)
    np.testing.assert_array_equal(info["views"], np.arange(n))
    assert (info["theta_units"], info["theta_span"], info["theta_order"]) == ("degrees", 180, "as stored")
    assert info["views_kept"] == info["views_total"] == n


@pytest.mark.parametrize("n", [2, 6, 180])
def test_radians_are_converted(n):
    theta, info = check_theta(angles(n), path="s.h5")
    np.testing.assert_allclose(theta, np.linspace(0, 180, n, endpoint=False), atol=1e-12)
    assert info["theta_units"] == "radians (converted)" and info["theta_span"] == 180


def test_span_rule_boundaries():
    step = 180 / 12
    check_theta(np.arange(12) * step, path="s.h5")                       # [0, 180): one step short
    check_theta(np.linspace(0, 180, 13), path="s.h5")                    # [0, 180]
    check_theta(np.linspace(-90, 90, 12, endpoint=False), path="s.h5")   # any start
    with pytest.raises(InputError, match=r"theta spans 157\.5°"):          # 1.5 steps short
        check_theta(np.arange(11) * step * 1.05, path="s.h5")
    with pytest.raises(InputError, match=r"theta spans 270\.0°: a parallel-beam scan needs 180° \(or 360°\)"):
        check_theta(np.linspace(0, 270, 19), path="s.h5")
    with pytest.raises(InputError, match=r"theta spans 1\.0°: a parallel"):  # tiny degree scan: read as degrees
        check_theta(np.linspace(0, 1, 6), path="s.h5")
    with pytest.raises(InputError, match=r"spans 286\.5° \(values 0 to 5 read as radians\)"):
        check_theta(np.linspace(0, 5, 6), path="s.h5")  # 0..5°: refused whichever the units


def test_full_turn_keeps_the_first_half_turn():
    for stored in (np.linspace(0, 360, 24, endpoint=False), np.linspace(0, 360, 25),
                   np.linspace(0, 2 * np.pi, 24, endpoint=False), np.linspace(10, 370, 24, endpoint=False)):
        theta, info = check_theta(stored, path="s.h5")
        np.testing.assert_allclose(theta, np.linspace(0, 180, 12, endpoint=False) + (10 if stored[0] == 10 else 0))
        np.testing.assert_array_equal(info["views"], np.arange(12))
        assert info["theta_span"] == 360 and info["views_kept"] == 12 and info["views_total"] == stored.size


@pytest.mark.parametrize("stored, words", [
    ([0.0], "1 angle(s) in '/exchange/theta': a scan needs at least 2 views"),
    ([0.0, np.nan, 120.0], "dataset '/exchange/theta' holds 1 NaN/Inf values"),
    ([0.0, 60.0, 60.0, 120.0, 150.0], "1 repeated angle(s) in '/exchange/theta' (first 60°)"),
    (np.linspace(0, 90, 6), "theta spans 90.0°: a parallel-beam scan needs 180° (or 360°)"),
])
def test_theta_refused(stored, words):
    with pytest.raises(InputError) as exc:
        check_theta(np.asarray(stored), path="s.h5")
    assert str(exc.value).startswith(f"s.h5: {words}"), str(exc.value)


def test_flats_mostly_below_darks_warn(caplog):
    white = np.full((2, 4, 10), 1000.0)
    white[:, 0, :5] = 50.0  # 5 of 40 pixels with the flat below the dark
    with caplog.at_level(logging.WARNING, logger="simulate.acquisition"):
        below = check_frames((3, 4, 10), white, np.full((1, 4, 10), 100.0), np.zeros(3), path="s.h5")
    assert below == pytest.approx(5 / 40) and "12.5% of pixels" in caplog.text


# ----------------------------------------------------------------------------- through read_raw and prepare

def test_radian_scan_reads_as_the_degree_scan(tmp_path):
    deg = _raw(tmp_path / "deg.h5", theta=DEG)
    rad = _raw(tmp_path / "rad.h5", theta=np.radians(DEG))
    a, b = dxchange.read_raw(deg), dxchange.read_raw(rad)
    for x, y in zip(a[:3], b[:3]):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a[3], DEG)
    np.testing.assert_allclose(b[3], DEG, rtol=0, atol=1e-12)
    attrs_a = dxchange.prepare(deg, tmp_path / "pa.h5", center=4.0)
    attrs_b = dxchange.prepare(rad, tmp_path / "pb.h5", center=4.0)
    (pa, ta, wa), (pb, tb, wb) = read_projections(tmp_path / "pa.h5"), read_projections(tmp_path / "pb.h5")
    np.testing.assert_array_equal(pa, pb)
    np.testing.assert_allclose(np.degrees(tb), DEG, atol=1e-12)
    assert wa["theta_units"] == wb["theta_units"] == "degrees"  # the projection file's own units
    assert (wa["theta_units_raw"], wb["theta_units_raw"]) == ("degrees", "radians (converted)")
    assert attrs_b["theta_units_raw"] == "radians (converted)" and wb["theta_span"] == 180


@pytest.mark.parametrize("radians", [False, True])
def test_full_turn_scan_keeps_the_first_180(tmp_path, radians):
    data = _views(2 * N_ANG)
    stored = np.linspace(0, 360, 2 * N_ANG, endpoint=False)
    raw = _raw(tmp_path / "raw.h5", data=data, theta=np.radians(stored) if radians else stored)
    got, _, _, theta, _ = dxchange.read_raw(raw)
    np.testing.assert_array_equal(got, data[:N_ANG])
    np.testing.assert_allclose(theta, DEG, atol=1e-12)
    dxchange.main([str(raw), str(tmp_path / "proj.h5"), "--center", "4"])
    proj, th, attrs = read_projections(tmp_path / "proj.h5")
    assert proj.shape[0] == N_ANG and attrs["n_angles"] == N_ANG
    assert (attrs["theta_span"], attrs["views_kept"], attrs["views_total"]) == (360, N_ANG, 2 * N_ANG)
    np.testing.assert_allclose(proj, -np.log((data[:N_ANG] - 100.0) / 10000.0), rtol=1e-5)


@pytest.mark.parametrize("perm", ["reversed", "interlaced"])
def test_unsorted_angles_are_sorted_with_their_projections(tmp_path, perm):
    data = _views(N_ANG)
    order = np.arange(N_ANG)[::-1] if perm == "reversed" else np.r_[0:N_ANG:2, 1:N_ANG:2]
    ref = dxchange.read_raw(_raw(tmp_path / "sorted.h5", data=data))
    got = dxchange.read_raw(_raw(tmp_path / "shuffled.h5", data=data[order], theta=DEG[order]))
    np.testing.assert_array_equal(got[0], ref[0])
    np.testing.assert_array_equal(got[3], DEG)
    attrs = dxchange.prepare(tmp_path / "shuffled.h5", tmp_path / "proj.h5", center=4.0)
    assert attrs["theta_order"] == "sorted" and attrs["views_kept"] == N_ANG


def _flats(low, high):
    white = np.full((3, N_ROWS, N_DET), high, np.uint16)
    white[:, :, : N_DET // 2] = low
    return white


def _nan(shape, value):
    arr = np.full(shape, value, np.float32)
    arr[0, 1, 2] = np.nan
    return arr


# case -> (make the raw file, the problem as printed after "error: <file>: ")
CLI_BAD = {
    "theta_90": (lambda p: _raw(p, theta=np.linspace(0, 90, N_ANG)),
                 "theta spans 90.0°: a parallel-beam scan needs 180° (or 360°)"),
    "theta_270": (lambda p: _raw(p, theta=np.linspace(0, 270, N_ANG)), "theta spans 270.0°: a parallel-beam"),
    "theta_length": (lambda p: _raw(p, theta=np.linspace(0, 180, N_ANG + 1, endpoint=False)),
                     f"{N_ANG + 1} angles in '/exchange/theta' for {N_ANG} projections"),
    "theta_repeated": (lambda p: _raw(p, theta=np.r_[DEG[:-1], DEG[2]]), "1 repeated angle(s) in '/exchange/theta'"),
    "theta_nan": (lambda p: _raw(p, theta=np.r_[DEG[:-1], np.nan]), "dataset '/exchange/theta' holds 1 NaN/Inf"),
    "one_view": (lambda p: _raw(p, data=_views(1), theta=np.zeros(1)),
                 "1 angle(s) in '/exchange/theta': a scan needs at least 2 views"),
    "flats_below_darks": (lambda p: _raw(p, white=_flats(50, 120)),
                          "flat fields not above the dark fields on average (mean flat 85, mean dark 100 counts; "
                          "the flat is not above the dark in 50.0% of pixels; "
                          "'/exchange/data_white' and '/exchange/data_dark' swapped?)"),
    "flats_swapped": (lambda p: _raw(p, white=np.full((3, N_ROWS, N_DET), 100, np.uint16),
                                     dark=np.full((2, N_ROWS, N_DET), 10100, np.uint16)),
                      "no detector pixel has flat-field signal above the dark level (mean flat 100, mean dark 10100"),
    "nan_data": (lambda p: _raw(p, data=_nan((N_ANG, N_ROWS, N_DET), 3000.0)),
                 "dataset '/exchange/data' holds 1 NaN/Inf values"),
    "nan_flats": (lambda p: _raw(p, white=_nan((3, N_ROWS, N_DET), 10100.0)),
                  "dataset '/exchange/data_white' holds 1 NaN/Inf values"),
    "missing_white": (lambda p: _raw(p, drop=("/exchange/data_white",)), "missing dataset '/exchange/data_white'"),
}


@pytest.mark.parametrize("case", sorted(CLI_BAD))
def test_cli_one_line_exit_2_no_output(tmp_path, capsys, case):
    make, words = CLI_BAD[case]
    raw = make(tmp_path / "raw.h5")
    out = tmp_path / "out" / "proj.h5"
    with pytest.raises(SystemExit) as exc:
        dxchange.main([str(raw), str(out), "--center", "4"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {raw}: {words}"), err
    assert not out.exists() and not list(tmp_path.glob("out/*"))


def test_cli_as_a_module_refuses_a_quarter_turn(tmp_path):
    raw = _raw(tmp_path / "raw.h5", theta=np.linspace(0, 90, N_ANG))
    out = tmp_path / "proj.h5"
    run = subprocess.run([sys.executable, "-m", "simulate.dxchange", str(raw), str(out), "--center", "4"],
                         capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1] == (f"error: {raw}: theta spans 90.0°: a parallel-beam scan "
                                                   "needs 180° (or 360°)")
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["raw.h5"]


# ----------------------------------------------------------------------------- the demo scan, as before

def test_demo_scan_reads_as_stored(tmp_path):
    with h5py.File(DEMO, "r") as f:
        data, white, dark, theta = (f[f"/exchange/{k}"][()] for k in ("data", "data_white", "data_dark", "theta"))
    assert data.shape == (180, 2, 128) and theta.shape == (180,)
    got = dxchange.read_raw(DEMO)
    for x, y in zip(got[:4], (data, white, dark, theta)):
        np.testing.assert_array_equal(x, y)
    assert got[4]["source"] == "synthetic-demo-scan"
    attrs = dxchange.prepare(DEMO, tmp_path / "proj.h5", center=67.3)
    proj, th, written = read_projections(tmp_path / "proj.h5")
    np.testing.assert_array_equal(proj, dxchange.normalize(data, white, dark))
    np.testing.assert_array_equal(th, np.radians(theta))
    assert {k: written[k] for k in ("theta_units", "theta_units_raw", "theta_span", "theta_order", "views_kept",
                                    "views_total")} == {"theta_units": "degrees", "theta_units_raw": "degrees",
                                                        "theta_span": 180, "theta_order": "as stored",
                                                        "views_kept": 180, "views_total": 180}
    assert attrs["center"] == 67.3 and written["n_angles"] == 180
