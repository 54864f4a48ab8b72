"""Short exposure follows the Poisson model; sparse views keep exactly every k-th angle."""

import numpy as np
import pytest

from simulate.noise import counts_to_line_integrals, poisson_counts, short_exposure, subsample_views


@pytest.mark.parametrize("incident", [1e4, 1e3, 100])
def test_counts_mean_and_variance_follow_poisson(incident, rng):
    p = np.full((200, 10, 100), 0.7, np.float32)          # 200k draws of one line integral
    counts = poisson_counts(p, incident, rng=rng)
    expected = incident * np.exp(-0.7)
    # Poisson: mean == variance == I0 exp(-p); relative standard error of the variance ~ sqrt(2/n) = 0.3 %.
    assert counts.mean() == pytest.approx(expected, rel=0.01)
    assert counts.var() == pytest.approx(expected, rel=0.03)


def test_line_integral_variance_scales_as_inverse_dose(rng):
    p = np.full((200, 10, 100), 1.0, np.float32)
    variances = {}
    for incident in (1e4, 1e3):
        est = short_exposure(p, incident, rng=rng)
        variances[incident] = est.var()
        # delta method: Var[-log(N / I0)] ~= 1 / (I0 exp(-p)) when counts are large
        assert variances[incident] == pytest.approx(1 / (incident * np.exp(-1.0)), rel=0.05)
        assert est.mean() == pytest.approx(1.0, abs=0.01)
    assert variances[1e3] / variances[1e4] == pytest.approx(10, rel=0.08)


def test_zero_counts_are_clamped_to_one_photon():
    out = counts_to_line_integrals(np.array([0.0, 1.0, 100.0]), 100.0)
    assert out[0] == out[1] == pytest.approx(np.log(100.0))
    assert out[2] == pytest.approx(0.0)


def test_same_seed_same_draw_other_seed_other_draw():
    p = np.full((4, 3, 5), 0.5, np.float32)
    a = poisson_counts(p, 1e3, rng=np.random.default_rng(1))
    b = poisson_counts(p, 1e3, rng=np.random.default_rng(1))
    c = poisson_counts(p, 1e3, rng=np.random.default_rng(2))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_poisson_rejects_bad_dose_and_nan(rng):
    with pytest.raises(ValueError, match="incident_photons"):
        poisson_counts(np.zeros((1, 1, 1)), 0, rng=rng)
    with pytest.raises(ValueError, match="NaN"):
        poisson_counts(np.full((1, 1, 1), np.nan), 10, rng=rng)


@pytest.mark.parametrize("factor", [1, 2, 4, 8, 16])
def test_sparse_views_keep_exactly_every_kth_angle(factor):
    theta = np.linspace(0, np.pi, 64, endpoint=False)
    data = np.arange(64 * 2 * 3, dtype=np.float32).reshape(64, 2, 3)
    sub, sub_theta = subsample_views(data, theta, factor)
    assert sub.shape[0] == 64 // factor
    assert np.array_equal(sub_theta, theta[np.arange(0, 64, factor)])
    assert np.array_equal(sub, data[np.arange(0, 64, factor)])


def test_sparse_views_reject_bad_factor():
    with pytest.raises(ValueError, match=">= 1"):
        subsample_views(np.zeros((8, 1, 1)), np.zeros(8), 0)
    with pytest.raises(ValueError, match="fewer than 2"):
        subsample_views(np.zeros((8, 1, 1)), np.zeros(8), 8)
    with pytest.raises(ValueError, match="angles for"):
        subsample_views(np.zeros((8, 1, 1)), np.zeros(7), 2)
