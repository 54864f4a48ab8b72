"""The synthetic shale stand-in: reproducible, facility-specific, labelled, and reconstructable."""

import h5py
import numpy as np
import pytest

from simulate import dxchange, shale
from simulate.acquire import read_projections
from simulate.io import read_array, read_attrs
from simulate.plumbing import circular_mask
from simulate.reconstruct import reconstruct

# tiny scans: 48 x 48 x 8 sample, 60 angles; a facility differs in angles and detector width
TINY = ["--size", "48", "--slices", "8"]
APS = ["--facility", "aps", "--n-angles", "60", "--detector", "48", "--incident", "2e4", "--blur", "0.6",
       "--center-offset", "1.5"]
SLS = ["--facility", "sls", "--n-angles", "56", "--detector", "54", "--rows", "8", "--incident", "8e3",
       "--blur", "1.0", "--center-offset", "-1.5"]
RAW = ("/exchange/data", "/exchange/data_white", "/exchange/data_dark", "/exchange/theta", "/truth/volume")


def _make(path, *extra):
    shale.main([str(path), "--dataset", "tomo_00001", *TINY, *extra])
    return path


def _arrays(path):
    with h5py.File(path, "r") as f:
        return {name: f[name][()] for name in RAW}


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    d = tmp_path_factory.mktemp("shale")
    return {
        "aps": _make(d / "aps.h5", *APS),
        "aps_again": _make(d / "aps_again.h5", *APS),
        "aps_sample2": _make(d / "aps_sample2.h5", *APS, "--sample-seed", "7"),
        "aps_noise2": _make(d / "aps_noise2.h5", *APS, "--seed", "7"),
        "sls": _make(d / "sls.h5", *SLS, "--preset", "blakely"),
        "dir": d,
    }


def _pearson(a, b, mask):
    return float(np.corrcoef(a[:, mask].ravel(), b[:, mask].ravel())[0, 1])


def test_volume_has_the_features():
    s = shale.ShaleSample(size=64, slices=6)
    v = shale.shale_volume(s)
    assert v.shape == (6, 64, 64) and v.dtype == np.float32
    y, x = np.mgrid[:64, :64] - 31.5
    rho = np.hypot(y, x)
    inside = v[:, rho < 0.45 * 64 - 2]
    assert np.all(v[:, rho > 0.45 * 64 + 1] == 0)                 # air outside the cylinder
    assert 0.8 < np.median(inside) < 1.2                          # matrix ~1
    assert inside.max() > 2.5                                     # dense inclusions (3-5x matrix)
    assert (inside < 0.5).mean() > 0.005                          # pores and cracks
    bands = inside.std() / inside.mean()
    assert bands > 0.05                                           # layered, not uniform


def test_same_seed_is_bit_identical(scans):
    a, b = _arrays(scans["aps"]), _arrays(scans["aps_again"])
    for name in RAW:
        assert a[name].dtype == b[name].dtype
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    v = shale.shale_volume(shale.ShaleSample(size=48, slices=8))
    np.testing.assert_array_equal(v, shale.shale_volume(shale.ShaleSample(size=48, slices=8)))


def test_other_seeds_differ(scans):
    base = _arrays(scans["aps"])
    sample2 = _arrays(scans["aps_sample2"])
    noise2 = _arrays(scans["aps_noise2"])
    assert not np.array_equal(base["/truth/volume"], sample2["/truth/volume"])  # sample seed -> sample
    np.testing.assert_array_equal(base["/truth/volume"], noise2["/truth/volume"])  # noise seed -> noise only
    assert not np.array_equal(base["/exchange/data"], noise2["/exchange/data"])
    assert read_attrs(scans["aps_noise2"])["seed"] == 7
    assert read_attrs(scans["aps_sample2"])["sample_seed"] == 7


def test_facilities_differ_as_configured(scans):
    aps, sls = _arrays(scans["aps"]), _arrays(scans["sls"])
    assert aps["/exchange/data"].shape == (60, 8, 48)
    assert sls["/exchange/data"].shape == (56, 8, 54)
    assert aps["/exchange/data_white"].shape == (10, 8, 48)
    assert sls["/exchange/data_dark"].shape == (10, 8, 54)
    assert aps["/exchange/theta"].shape == (60,) and sls["/exchange/theta"].shape == (56,)
    np.testing.assert_allclose(sls["/exchange/theta"][[0, -1]], [0.0, 180.0 * 55 / 56])  # degrees, [0, 180)
    assert aps["/truth/volume"].shape == (8, 48, 48) and sls["/truth/volume"].shape == (8, 54, 54)
    assert aps["/exchange/data"].dtype == np.uint16
    # APS-like flux is higher: flats near I0 + dark in the beam centre
    assert 1.9e4 < np.median(aps["/exchange/data_white"][:, 3:5, 20:28]) < 2.1e4
    assert 7.5e3 < np.median(sls["/exchange/data_white"][:, 3:5, 23:31]) < 8.5e3
    a, s = read_attrs(scans["aps"]), read_attrs(scans["sls"])
    assert (a["facility"], s["facility"]) == ("aps", "sls")
    assert (a["sample"], s["sample"]) == ("hornby", "blakely")
    assert a["center"] == pytest.approx(24 + 1.5) and s["center"] == pytest.approx(27 - 1.5)
    assert s["facility_blur"] == 1.0 and s["n_angles"] == 56 and s["detector"] == 54


def test_source_is_synthetic_in_raw_and_prepared(scans):
    out = scans["dir"] / "proj_source.h5"
    assert read_attrs(scans["aps"])["source"] == "synthetic-shale"
    dxchange.prepare(scans["aps"], out)
    attrs = read_attrs(out)
    assert attrs["source"] == "synthetic-shale"
    assert attrs["dataset"] == "tomo_00001" and attrs["facility"] == "aps" and attrs["sample"] == "hornby"
    assert (attrs["dose"], attrs["dose_mode"], attrs["dose_level"], attrs["noise"]) == ("full", "full", 1, "measured")


def test_fbp_of_the_stand_in_matches_the_truth_and_needs_the_right_centre(scans):
    out = scans["dir"] / "proj_fbp.h5"
    dxchange.prepare(scans["aps"], out)
    data, theta, attrs = read_projections(out)
    assert attrs["center"] == pytest.approx(25.5)
    truth = read_array(scans["aps"], "/truth/volume")
    mask = circular_mask(truth.shape, margin=1)
    right = _pearson(reconstruct(data, theta, "fbp", center=attrs["center"]), truth, mask)
    wrong = _pearson(reconstruct(data, theta, "fbp", center=attrs["center"] + 4), truth, mask)
    # Thresholds from measurements at this size (48 px, 8 slices, 60 angles, I0 2e4, blur 0.6)
    # over sample/noise seeds 0..9: right centre r = 0.864-0.879, +1 px 0.65-0.70,
    # +4 px 0.11-0.21 (at 256 px, 376 angles: 0.977, 0.942 and 0.718).
    assert right > 0.8
    assert wrong < 0.5
    assert right - wrong > 0.3
    # the default centre (detector / 2) is wrong for this scan, and the file's centre is right
    centred = _pearson(reconstruct(data, theta, "fbp"), truth, mask)
    assert right > centred + 0.05


def test_fbp_values_are_attenuation_per_pixel(scans):
    """The truth volume is in the same units as the reconstruction (line integrals per pixel)."""
    out = scans["dir"] / "proj_units.h5"
    dxchange.prepare(scans["aps"], out)
    data, theta, attrs = read_projections(out)
    truth = read_array(scans["aps"], "/truth/volume")
    rec = reconstruct(data, theta, "fbp", center=attrs["center"])
    mask = circular_mask(truth.shape, margin=4)
    assert np.median(rec[:, mask]) == pytest.approx(np.median(truth[:, mask]), rel=0.1)
    assert data.max() == pytest.approx(2.0, abs=0.4)                  # max_line_integral, plus noise


def test_the_stand_in_is_scored_against_its_truth(scans, tmp_path, capsys):
    """The metrics read the stand-in's truth from its raw file (--truth RAW): the truth itself scores perfectly, the
    full-dose FBP (its noise and blur) does not; a measured scan has no truth (NaN); a binned reference is refused."""
    import pandas as pd

    from analysis.metrics import main
    from simulate.io import write_arrays
    from simulate.reconstruct import recon_attrs

    proj = tmp_path / "proj.h5"
    dxchange.prepare(scans["aps"], proj)
    data, theta, attrs = read_projections(proj)
    truth = read_array(scans["aps"], "/truth/volume")
    rows = np.arange(truth.shape[0], dtype=np.int32)

    def volume(name, vol, **extra):
        write_arrays(tmp_path / f"{name}.h5", {"/recon": vol.astype(np.float32), "/slices": rows},
                     recon_attrs(attrs, method=name, **extra))
        return str(tmp_path / f"{name}.h5")

    ref = volume("fbp", reconstruct(data, theta, "fbp", center=attrs["center"]))
    perfect = volume("perfect", truth)
    out = tmp_path / "m.csv"
    main([str(out), "--reference", ref, "--slices", "4", "--fov-margin", "4", "--truth", str(scans["aps"]),
          perfect, ref])
    t = pd.read_csv(out).set_index("method")
    assert np.allclose(t.loc["perfect", "ssim_truth"], 1.0, atol=1e-6)
    assert (t.loc["fbp", "ssim_truth"] < 0.95).all() and np.allclose(t.loc["fbp", "ssim"], 1.0)
    # a measured scan (no /truth/volume, not labelled synthetic): no truth, NaN columns
    measured = tmp_path / "measured.h5"
    arrays = _arrays(scans["aps"])
    del arrays["/truth/volume"]
    write_arrays(measured, arrays, {"source": "tomobank:tomo_00001"})
    main([str(out), "--reference", ref, "--slices", "2", "--truth", str(measured), perfect])
    assert pd.read_csv(out)["ssim_truth"].isna().all()
    # the truth is on the raw grid: a binned reference cannot be scored against it
    binned = volume("binned", truth, bin_factor=2)
    bad = tmp_path / "bad.csv"
    with pytest.raises(SystemExit) as exc:
        main([str(bad), "--reference", binned, "--slices", "2", "--truth", str(scans["aps"]), perfect])
    assert exc.value.code == 2 and not bad.exists()
    assert "binned 2x" in capsys.readouterr().err


def test_measure_noise_free_limit():
    """Without blur and with huge flux, normalised counts are the exact projections of the truth."""
    from simulate.acquire import angles
    from simulate.reconstruct import project

    vol = shale.shale_volume(shale.ShaleSample(size=32, slices=2))
    fac = shale.FacilitySpec(n_angles=12, detector=32, incident=6e4, blur=0.0, dark_noise=0.0,
                             n_flat=20, n_dark=2, flat_falloff=0.2)
    raw = shale.measure(vol, fac, rng=np.random.default_rng(0))
    p = dxchange.normalize(raw["data"], raw["white"], raw["dark"])
    expected = project(raw["truth"], angles(12), n_det=32)
    assert expected.max() == pytest.approx(2.0, rel=1e-5)
    # Poisson noise at >= 6e4 * e^-2 * 0.8 = 6.5e3 counts: sd of p <= 0.013; the flat noise is 20x smaller
    np.testing.assert_allclose(p, expected, atol=0.06)
    assert np.abs(p - expected).mean() < 0.01
    assert raw["center"] == 16.0


def test_normalize_matches_the_analytic_value():
    dark = np.stack([np.full((2, 3), 90.0), np.full((2, 3), 110.0)])          # mean 100
    white = np.stack([np.full((2, 3), 10100.0), np.full((2, 3), 9900.0)])     # mean 10000
    transmission = np.array([[1.0, 0.5, 0.1], [0.01, np.exp(-2.0), 0.25]])
    data = (100.0 + 9900.0 * transmission)[None].repeat(4, axis=0)
    p = dxchange.normalize(data, white, dark)
    assert p.dtype == np.float32 and p.shape == (4, 2, 3)
    np.testing.assert_allclose(p, np.broadcast_to(-np.log(transmission), p.shape), rtol=1e-5, atol=1e-6)
    # below the dark level: clamped to one count, finite
    starved = dxchange.normalize(np.full((1, 2, 3), 50.0), white, dark)
    np.testing.assert_allclose(starved, np.log(9900.0), rtol=1e-6)


def test_bad_specs_are_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match="cylinder_radius"):
        shale.ShaleSample(cylinder_radius=0.7)
    with pytest.raises(ValueError, match="uint16"):
        shale.FacilitySpec(incident=7e4)
    with pytest.raises(SystemExit) as exc:
        shale.main([str(tmp_path / "x.h5"), "--dataset", "x", *TINY, "--rows", "50"])
    assert exc.value.code == 2
    assert "rows" in capsys.readouterr().err
    assert not (tmp_path / "x.h5").exists()
