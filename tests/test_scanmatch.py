"""Simulation matched to a scan (simulate/scanmatch.py): the scan's views, detector, centre, line integrals and
photon level, each checked against the scan it copies."""

from pathlib import Path

import numpy as np
import pytest

from simulate import dxchange, scanmatch
from simulate.acquire import low_dose, read_projections
from simulate.families import make
from simulate.plumbing import InputError

SCAN = Path(__file__).resolve().parent / "data" / "scan_demo.h5"


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    out = tmp_path_factory.mktemp("scan") / "full.h5"
    dxchange.prepare(SCAN, out, center="auto", dataset="demo")
    return out


@pytest.mark.parametrize("gain,photons", [(1.0, 500.0), (3.0, 2000.0), (0.25, 8000.0)])
def test_photons_per_pixel_come_back_from_flats_whatever_the_gain(gain, photons):
    rng = np.random.default_rng(1)
    dark = 100.0 + rng.normal(0.0, 2.0, (8, 4, 128))
    white = gain * rng.poisson(photons, (12, 4, 128)) + 100.0 + rng.normal(0.0, 2.0, (12, 4, 128))
    est = scanmatch.estimate_incident(white, dark)
    assert est["gain_estimate"] == pytest.approx(gain, rel=0.1)
    assert est["incident_estimate"] == pytest.approx(photons, rel=0.1)
    one = scanmatch.estimate_incident(white[:1], dark)  # one flat: no variance, counts taken as photons
    assert one["gain_estimate"] == 1.0 and "one flat frame" in one["incident_method"]


def test_prepared_scan_records_its_photon_level(scan):
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_scan_demo", SCAN.with_name("make_scan_demo.py"))
    maker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(maker)
    _, _, attrs = read_projections(scan)
    # the photons the demo was measured with (its blur smooths the flats a little)
    assert attrs["incident_estimate"] == pytest.approx(maker.INCIDENT, rel=0.1)


def test_matched_volume_has_the_scans_views_detector_centre_and_line_integrals(scan):
    geom = scanmatch.scan_geometry(scan)
    data, theta, attrs = read_projections(scan)
    assert (geom.n_angles, geom.detector, geom.center) == (data.shape[0], data.shape[-1], attrs["center"])
    phantom = make("fibres", size=geom.detector, slices=8, seed=3)
    sim, sim_theta, _ = scanmatch.project_matched(phantom, geom)
    assert sim.shape == (data.shape[0], 8, data.shape[-1])
    np.testing.assert_allclose(sim_theta, theta)
    assert sim.max() == pytest.approx(geom.max_line_integral, rel=1e-5)
    # the rotation axis is where the scan's is: each view's centre of mass is axis + a cos(theta) + b sin(theta)
    pix = np.arange(geom.detector) + 0.5
    com = (sim[:, 1] * pix).sum(axis=1) / sim[:, 1].sum(axis=1)
    fit = np.linalg.lstsq(np.stack([np.ones_like(theta), np.cos(theta), np.sin(theta)], 1), com, rcond=None)[0]
    assert fit[0] == pytest.approx(geom.center, abs=0.1)
    assert abs(fit[0] - geom.detector / 2) > 1.0  # and the demo's axis is off centre: the test can fail
    # a phantom of another width is refused
    with pytest.raises(ValueError, match="detector"):
        scanmatch.project_matched(phantom[:, :-2, :-2], geom)


def test_sparse_views_of_a_matched_volume_are_as_noisy_as_the_scans(scan):
    geom = scanmatch.scan_geometry(scan)
    flat = np.full((geom.n_angles, 2, geom.detector), 1.0, np.float32)
    rng = np.random.default_rng(0)
    noisy, th = low_dose(flat, geom.theta, mode="sparse", factor=4, rng=rng, noise_incident=geom.incident)
    assert noisy.shape[0] == len(th) == -(-geom.n_angles // 4)
    # -log of Poisson counts at I0 exp(-1): variance about e / I0
    assert noisy.var() == pytest.approx(np.e / geom.incident, rel=0.15)
    clean, _ = low_dose(flat, geom.theta, mode="sparse", factor=4)
    assert clean.var() == 0.0


def test_a_simulated_file_is_refused_as_a_scan(tmp_path):
    from simulate.acquire import write_projections

    path = tmp_path / "sim.h5"
    write_projections(path, np.ones((8, 2, 16), np.float32), np.linspace(0, np.pi, 8, endpoint=False), {})
    with pytest.raises(InputError, match="incident_estimate"):
        scanmatch.scan_geometry(path)


def test_a_recorded_instrument_noise_reaches_the_sparse_views_of_a_simulated_volume(tmp_path):
    """``simulate.acquire project --noise-incident`` (the corpus's drawn photon level) is recorded, and ``lowdose``
    then gives the kept views Poisson noise at that level; without it they stay noise-free."""
    from simulate import acquire
    from simulate.io import read_attrs, write_arrays

    phantom = tmp_path / "p.h5"
    write_arrays(phantom, {"/phantom": make("layers", size=32, slices=8, seed=1)}, {"dataset": "p"})
    for noise in (None, 2000.0):
        full, low = tmp_path / f"full-{noise}.h5", tmp_path / f"low-{noise}.h5"
        acquire.main(["project", str(phantom), str(full), "--n-angles", "40"]
                     + ([] if noise is None else ["--noise-incident", str(noise)]))
        acquire.main(["lowdose", str(full), str(low), "--label", "sparse-4", "--mode", "sparse", "--factor", "4"])
        clean, _, _ = read_projections(full)
        views, _, attrs = read_projections(low)
        if noise is None:
            np.testing.assert_array_equal(views, clean[::4])
            assert attrs["noise"] == "none" and "noise_incident" not in read_attrs(full)
        else:
            assert attrs["noise"] == "poisson" and attrs["noise_incident"] == noise
            resid = views - clean[::4]
            assert resid.std() == pytest.approx(np.sqrt(np.mean(np.exp(clean[::4]) / noise)), rel=0.2)
