"""Held-out view residual (analysis.crossval): calibrated to the noise, blind to the left-out views, in one geometry.

The scan is a 48 x 48 x 2 phantom of discs drawn here (a body disc with pores and inclusions), projected at
72 angles with the astra CPU backend, scaled to a largest line integral of 2, with Poisson noise from a
seeded generator. The numbers in the comments were measured on it.
"""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from analysis import crossval as cv
from analysis.crossval.core import REFERENCE_COLUMNS
from analysis.classical import METHODS, Method, each_value
from simulate.acquire import write_projections
from analysis.metrics import read_slices
from simulate.io import write_arrays
from simulate.plumbing import InputError, circular_mask
from simulate.noise import short_exposure
from simulate.reconstruct import fbp, project, reconstruct_file, sirt, tv_denoise

N, SLICES, ANGLES = 48, 2, 72


def _discs(n, slices, seed=0):
    """Body disc (radius 0.42 n, attenuation 1) with six pores or inclusions per slice."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:n, :n] - (n - 1) / 2
    vol = np.zeros((slices, n, n), np.float32)
    for s in range(slices):
        img = ((x ** 2 + y ** 2) <= (0.42 * n) ** 2).astype(np.float32)
        for _ in range(6):
            cx, cy = rng.uniform(-0.22 * n, 0.22 * n, 2)
            r = rng.uniform(0.04 * n, 0.12 * n)
            img[(x - cx) ** 2 + (y - cy) ** 2 <= r * r] = rng.choice([0.3, 2.0])
        vol[s] = img
    return vol


@pytest.fixture(scope="module")
def scan():
    """(image, theta, noiseless projections): the image's own projections, largest line integral 2."""
    vol = _discs(N, SLICES)
    theta = np.linspace(0, np.pi, ANGLES, endpoint=False)
    clean = project(vol, theta, backend="astra")
    scale = 2.0 / float(clean.max())
    return vol * scale, theta, clean * scale


def _noisy(clean, i0, seed):
    # seeded: the measured numbers in the comments depend on it
    return short_exposure(clean, i0, rng=np.random.default_rng(seed))


def _fixed(image):
    """A 'method' that returns ``image`` whatever it is given (the truth, a blurred or streaky image)."""
    def rec(data, theta, center, size, *, backend="auto", threads=1):
        return image
    return rec


# ----------------------------------------------------------------------------- folds

@pytest.mark.parametrize("n, k", [(72, 4), (10, 4), (9, 3), (17, 5)])
def test_folds_partition_the_views_interleaved(n, k):
    fs = cv.folds(n, k)
    assert len(fs) == k
    for j, f in enumerate(fs):
        assert f[0] == j and np.all(np.diff(f) == k)  # every k-th view from j, sorted
    joined = np.concatenate(fs)
    assert len(joined) == n and np.array_equal(np.sort(joined), np.arange(n))


def test_folds_refuse_too_few_views_or_folds():
    with pytest.raises(ValueError, match="too few"):
        cv.folds(7, 4)
    with pytest.raises(ValueError, match="k >= 2"):
        cv.folds(10, 1)


# ----------------------------------------------------------------------------- calibration

def test_true_image_scores_the_noise_level(scan):
    vol, theta, clean = scan
    i0 = 1000.0
    noisy = _noisy(clean, i0, 1)
    weighted = cv.holdout_residual(noisy, theta, _fixed(vol), incident=i0, residual="plain", backend="astra")
    # measured 0.998 (folds 0.989-1.007) over 6624 rays
    assert weighted.weighted and weighted.k == 4 and len(weighted.fold_scores) == 4
    assert weighted.residual == "plain" and 0.9 < weighted.score < 1.1, weighted
    # filtered by sqrt(|f|), whitened noise keeps its level: still about 1 (measured 1.006); auto is that
    ramp = cv.holdout_residual(noisy, theta, _fixed(vol), incident=i0, backend="astra")
    assert ramp.residual == "ramp" and 0.9 < ramp.score < 1.1, ramp
    plain = cv.holdout_residual(noisy, theta, _fixed(vol), backend="astra")
    rays = cv.fov_rays(N, N / 2, N)
    expected = float(np.mean(np.exp(clean[:, :, rays]) / i0))  # var(p) = exp(p) / I0, mean over scored rays
    # measured 0.00280 against 0.00277
    assert not plain.weighted
    assert plain.score == pytest.approx(expected, rel=0.1), (plain.score, expected)


def test_weights_per_detector_pixel(scan):
    """I0 that varies across the detector (a beam profile) is still calibrated."""
    vol, theta, clean = scan
    i0 = np.linspace(300.0, 3000.0, N)
    rng = np.random.default_rng(2)
    noisy = (-np.log(np.maximum(rng.poisson(i0 * np.exp(-clean)), 1) / i0)).astype(np.float32)
    for residual in ("plain", "ramp"):
        res = cv.holdout_residual(noisy, theta, _fixed(vol), incident=i0, residual=residual, backend="astra")
        assert 0.9 < res.score < 1.1, res  # measured 1.03 (plain)
        # a single I0 of the mean would misweight: the score drifts from 1
        wrong = cv.holdout_residual(noisy, theta, _fixed(vol), incident=3000.0, residual=residual, backend="astra")
        assert wrong.score > 1.5 * res.score  # measured 2.59 (plain)


@pytest.mark.parametrize("residual", ["plain", "ramp"])
def test_blurred_and_streaky_images_score_worse(scan, residual):
    vol, theta, clean = scan
    i0 = 1000.0
    noisy = _noisy(clean, i0, 1)
    opts = dict(incident=i0, residual=residual, backend="astra")
    true = cv.holdout_residual(noisy, theta, _fixed(vol), **opts).score
    blurred = ndimage.gaussian_filter(vol, (0, 1.0, 1.0))
    streaky = fbp(clean[::9], theta[::9], backend="astra")  # noiseless FBP from 8 views
    blur = cv.holdout_residual(noisy, theta, _fixed(blurred), **opts).score
    streak = cv.holdout_residual(noisy, theta, _fixed(streaky), **opts).score
    # measured: true 1.00, blurred 1.62, streaky 3.14 (plain); 1.01, 1.58, 3.17 (ramp)
    assert blur > true + 0.3, (true, blur)
    assert streak > true + 1.0, (true, streak)


def test_ramp_residual_weighs_image_frequencies_as_the_image_does(scan):
    """Two errors of equal energy in the image, one smooth and one white: the plain residual charges the smooth one
    far more (the projection integrates the white one away, the Fourier slice theorem's 1/|f|); filtered by
    sqrt(|f|), the two cost about the same."""
    vol, theta, clean = scan
    rng = np.random.default_rng(0)
    disc = circular_mask((N, N))
    errors = {"white": rng.standard_normal(vol.shape) * disc,
              "smooth": ndimage.gaussian_filter(rng.standard_normal(vol.shape), (0, 4, 4)) * disc}
    ratio = {}
    for residual in ("plain", "ramp"):
        cost = {}
        for name, e in errors.items():
            e = 0.05 * e / np.sqrt(np.mean(e[:, disc] ** 2))
            cost[name] = cv.holdout_residual(clean, theta, _fixed((vol + e).astype(np.float32)), residual=residual,
                                             backend="astra").score
        ratio[residual] = cost["smooth"] / cost["white"]
    # measured: plain 13.4, ramp 1.9 (the linear projector still damps the finest detail a little)
    assert ratio["plain"] > 5 and 0.5 < ratio["ramp"] < 3, ratio


# ----------------------------------------------------------------------------- the left-out views are never seen

def test_reconstruction_never_sees_the_left_out_views(scan):
    _, theta, clean = scan
    data = _noisy(clean, 1000.0, 3)
    calls = []

    def recording(d, t, center, size, *, backend="auto", threads=1):
        calls.append((d, t.copy(), center, size))
        return fbp(d, t, center=center, size=size, backend=backend)

    cv.holdout_residual(data, theta, recording, k=4, backend="astra")
    assert len(calls) == 4
    for fold, (d, t, center, size) in zip(cv.folds(ANGLES, 4), calls):
        kept = np.setdiff1d(np.arange(ANGLES), fold)
        assert not np.isin(t, theta[fold]).any()          # no left-out angle
        assert np.array_equal(t, theta[kept])              # exactly the others, in order
        assert np.array_equal(d, data[kept])               # and their projections
        assert not np.shares_memory(d, data)               # a copy: the full scan is out of reach
        assert (center, size) == (N / 2, N)


# ----------------------------------------------------------------------------- one geometry

def _off_centre_scan(vol, theta, shift):
    """Projections of ``vol`` on a 48-pixel detector whose axis is at 24 + shift (shift >= 0).

    Made without any shifting: project on a wider detector (axis at its middle) and crop its right end.
    """
    wide = project(vol, theta, n_det=N + int(round(2 * shift)), backend="astra")
    return wide[:, :, :N], N / 2 + shift


@pytest.mark.parametrize("shift, tol", [(3.0, 1e-10), (2.5, 2e-3)])
def test_own_image_forward_projects_to_its_off_centre_projections(scan, shift, tol):
    _, theta, _ = scan
    small = _discs(40, SLICES, seed=1) * 0.05  # a 40-pixel grid on a 48-pixel detector: size != detector
    data, center = _off_centre_scan(small, theta, shift)
    res = cv.holdout_residual(data, theta, _fixed(small), center=center, size=40, backend="astra")
    rays = cv.fov_rays(N, center, 40)
    power = float(np.mean(data[:, :, rays] ** 2))
    # relative residual measured: 4e-14 at 3 px, 5e-4 at 2.5 px (linear interpolation); wrong centre 0.1, 0.08
    assert res.score / power < tol, (res.score, power)
    wrong = cv.holdout_residual(data, theta, _fixed(small), center=N / 2, size=40, backend="astra")
    assert wrong.score / power > 0.02  # the shift matters, in this direction


def test_fbp_of_an_off_centre_scan_predicts_the_left_out_views(scan):
    """fbp's centring and the forward projection's un-centring are inverse: FBP agrees with its own data."""
    _, theta, _ = scan
    small = _discs(40, SLICES, seed=1) * 0.05
    data, center = _off_centre_scan(small, theta, 2.5)
    rays = cv.fov_rays(N, center, 40)
    power = float(np.mean(data[:, :, rays] ** 2))
    right = cv.holdout_residual(data, theta, cv.fbp_reconstructor(), center=center, size=40, backend="astra")
    wrong = cv.holdout_residual(data, theta, cv.fbp_reconstructor(), center=center + 2, size=40,
                                backend="astra")
    # measured: 0.11 % of the power with the right centre, 0.68 % with the axis 2 px off
    assert right.score / power < 0.005
    assert wrong.score > 3 * right.score


# ----------------------------------------------------------------------------- tuning and ranking

WIDE_TV_GRID = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0]


def test_tv_weight_chosen_by_holdout_is_moderate_at_low_dose(scan):
    vol, theta, clean = scan
    i0 = 200.0
    noisy = _noisy(clean, i0, 4)
    result = cv.tune_by_holdout(noisy, theta, "fbp-tv", WIDE_TV_GRID, incident=i0, residual="plain", backend="astra")
    # measured scores: 1.25 1.24 1.23 1.21 1.32 2.05 6.83 -> 0.03; plain FBP 1.25
    assert result.parameter == "weight" and set(result.scores) == set(WIDE_TV_GRID)
    assert result.chosen not in (WIDE_TV_GRID[0], WIDE_TV_GRID[-1]), result.chosen
    scores = {w: r.score for w, r in result.scores.items()}
    assert scores[result.chosen] == min(scores.values())
    none = cv.holdout_residual(noisy, theta, cv.fbp_reconstructor(), incident=i0, residual="plain",
                               backend="astra").score
    assert scores[result.chosen] < none - 0.02, (scores, none)  # smoothing beats none
    assert scores[result.chosen] < scores[WIDE_TV_GRID[0]]
    # and against the truth (full-view FBP+TV), the chosen weight is within one grid step of the best
    # (measured: image MSE is smallest at 0.1, one step more smoothing than the holdout's 0.03)
    full = fbp(noisy, theta, backend="astra")
    disc = circular_mask((N, N))
    mse = {w: float(np.mean((tv_denoise(full, weight=w) - vol)[:, disc] ** 2)) for w in WIDE_TV_GRID}
    best = min(mse, key=mse.get)
    assert abs(WIDE_TV_GRID.index(result.chosen) - WIDE_TV_GRID.index(best)) <= 1, (result.chosen, mse)
    # the ramp residual charges the noise the lighter weight leaves as the image does: the image-MSE-best weight's
    # excess over the minimum shrinks (measured: plain 0.107 at 0.1 against 1.210 at 0.03, ramp 0.002 against 1.175)
    ramp = cv.tune_by_holdout(noisy, theta, "fbp-tv", WIDE_TV_GRID, incident=i0, backend="astra")
    assert ramp.scores[best].residual == "ramp"
    excess = {name: (r.scores[best].score - r.scores[r.chosen].score) / r.scores[r.chosen].score
              for name, r in (("plain", result), ("ramp", ramp))}
    assert excess["ramp"] < excess["plain"] / 4, excess


def test_a_descent_scores_fewer_values_and_stops_at_the_grids_minimum(scan):
    """tomogan-scan's search: on the unimodal TV curve of the low-dose scan (measured above) it chooses the value
    the whole grid chooses, with the very same scores, at fewer runs; SIRT, whose run continues only as far as the
    descent asks, chooses the grid's count without running to its end; an unknown search is refused."""
    _, theta, clean = scan
    noisy = _noisy(clean, 200.0, 4)
    opts = dict(incident=200.0, residual="plain", backend="astra")
    grid = cv.tune_by_holdout(noisy, theta, "fbp-tv", WIDE_TV_GRID, **opts)
    descent = cv.tune_by_holdout(noisy, theta, "fbp-tv", WIDE_TV_GRID, search="descent", **opts)
    assert descent.chosen == grid.chosen
    assert set(descent.scores) < set(grid.scores) and len(descent.scores) <= 4  # middle, its neighbours, one more
    assert all(descent.scores[v] == grid.scores[v] for v in descent.scores)
    counts = [2, 5, 10, 20, 50, 100, 200, 400, 800]
    sirt_grid = cv.tune_by_holdout(noisy, theta, "sirt", counts, slices=1, **opts)
    sirt_descent = cv.tune_by_holdout(noisy, theta, "sirt", counts, search="descent", slices=1, **opts)
    assert sirt_descent.chosen == sirt_grid.chosen < 200, sirt_grid.chosen
    assert max(sirt_descent.scores) < counts[-1]  # the run stopped one count past the minimum
    assert all(sirt_descent.scores[n].score == pytest.approx(sirt_grid.scores[n].score, rel=1e-6)
               for n in sirt_descent.scores)
    with pytest.raises(ValueError, match="search must be one of grid, descent"):
        cv.tune_by_holdout(noisy, theta, "fbp-tv", WIDE_TV_GRID, search="golden", **opts)


def test_bm3d_searched_with_its_fast_profile_then_scored_with_its_own(scan, monkeypatch):
    """tomogan-scan's BM3D (proxy=True): the grid is searched with the low-complexity profile, which chooses the
    value the normal profile chooses on this scan; the chosen value alone is then made with the normal profile, and
    its score is the method's own held-out score (to the float rounding of bm3d's threads)."""
    from simulate import reconstruct as rc

    _, theta, clean = scan
    noisy = _noisy(clean, 200.0, 4)
    opts = dict(incident=200.0, residual="plain", backend="astra", slices=2)
    grid = [0.05, 0.1, 0.2, 0.4, 0.8]
    full = cv.tune_by_holdout(noisy, theta, "fbp-bm3d", grid, **opts)
    profiles = []
    real = rc.bm3d_denoise

    def counted(volume, **kw):
        profiles.append(kw.get("profile", "np"))
        return real(volume, **kw)
    monkeypatch.setattr(rc, "bm3d_denoise", counted)
    fast = cv.tune_by_holdout(noisy, theta, "fbp-bm3d", grid, proxy=True, **opts)
    assert fast.by_proxy and not full.by_proxy
    assert fast.chosen == full.chosen, (fast.scores, full.scores)
    assert profiles.count("np") == 4 and profiles.count("lc") == 4 * len(grid)  # the chosen value once per fold
    assert fast.scores[fast.chosen].score == pytest.approx(full.scores[full.chosen].score, rel=1e-6)  # bm3d's
    others = [v for v in grid if v != fast.chosen]
    assert all(fast.scores[v].score != pytest.approx(full.scores[v].score, rel=1e-6) for v in others)


def test_tv_searched_with_fewer_iterations_chooses_as_the_full_tv(scan):
    """tomogan-scan's TV methods (proxy=True) rank the weights with TV_PROXY_ITER Chambolle iterations: on this scan
    they choose what the full TV chooses, whose score the chosen weight then carries. Fails if the stand-in's
    iterates order the weights otherwise, or if the chosen weight keeps the stand-in's score."""
    _, theta, clean = scan
    noisy = _noisy(clean, 200.0, 4)
    opts = dict(incident=200.0, residual="plain", backend="astra", slices=2)
    full = cv.tune_by_holdout(noisy, theta, "fbp-tv", WIDE_TV_GRID, **opts)
    fast = cv.tune_by_holdout(noisy, theta, "fbp-tv", WIDE_TV_GRID, proxy=True, **opts)
    assert fast.by_proxy and fast.chosen == full.chosen not in (WIDE_TV_GRID[0], WIDE_TV_GRID[-1])
    assert fast.scores[fast.chosen].score == pytest.approx(full.scores[full.chosen].score, rel=1e-9)
    heavy = [v for v in WIDE_TV_GRID if v >= 0.1]  # where 200 iterations are still far from converged
    assert any(fast.scores[v].score != pytest.approx(full.scores[v].score, rel=1e-9) for v in heavy)


def test_a_descent_stops_at_a_local_minimum_and_visits_each_point_once():
    calls = []
    curve = [1.0, 3.0, 2.0, 2.5, 0.5]  # the global minimum at the end, a local one in the middle

    def score(index):
        calls.append(index)
        return curve[index[0]]
    seen = cv.grid_descent((5,), score)
    assert min(seen, key=seen.get) == (2,) and len(calls) == len(set(calls)) == 3
    plane = cv.grid_descent((4, 5), lambda i: abs(i[0] - 3) + abs(i[1] - 4))  # a corner, from the middle
    assert min(plane, key=plane.get) == (3, 4) and len(plane) < 20


def test_tuning_scores_equal_the_reconstructor_scores(scan):
    """The fast path (one FBP per fold for the whole grid) scores as the registry reconstructor does."""
    _, theta, clean = scan
    noisy = _noisy(clean, 500.0, 5)
    tuned = cv.tune_by_holdout(noisy, theta, "fbp-tv", [0.05], incident=500.0, slices=1, backend="astra")
    direct = cv.holdout_residual(noisy, theta, cv.fbp_tv_reconstructor(0.05), incident=500.0, slices=1,
                                 backend="astra")
    assert tuned.scores[0.05] == direct


def test_classical_reconstructor_starts_from_the_needed_method(scan):
    _, theta, clean = scan
    d, t = clean[::2], theta[::2]
    rec = cv.classical_reconstructor("sirt-tv", 0.05, needs={"sirt": 5})
    expected = tv_denoise(sirt(d, t, n_iter=5, backend="astra"), weight=0.05, n_iter=1000)
    np.testing.assert_allclose(rec(d, t, N / 2, N, backend="astra"), expected, atol=1e-6)
    same = cv.classical_reconstructor("sirt-tv", 0.05, needs={"sirt_n_iter": 5})  # tuning key also works
    np.testing.assert_allclose(same(d, t, N / 2, N, backend="astra"), expected, atol=1e-6)
    with pytest.raises(ValueError, match="starts from sirt"):
        cv.classical_reconstructor("sirt-tv", 0.05)
    with pytest.raises(ValueError, match="unknown method"):
        cv.classical_reconstructor("art", 1)


def test_a_needed_start_is_taken_from_the_cache_not_run_again(scan, monkeypatch):
    """SIRT+TV tuned after SIRT with one StartCache: no SIRT is run for it, and the scores are those without."""
    import simulate.reconstruct as rc

    _, theta, clean = scan
    noisy = _noisy(clean, 500.0, 6)
    opts = dict(incident=500.0, slices=1, backend="astra")
    runs = []
    real = rc.sirt
    monkeypatch.setattr(rc, "sirt", lambda *a, **kw: runs.append("sirt") or real(*a, **kw))

    class CountedRun(rc.SirtRun):
        def __init__(self, *a, **kw):
            runs.append("SirtRun")
            super().__init__(*a, **kw)
    monkeypatch.setattr(rc, "SirtRun", CountedRun)
    plain = cv.tune_by_holdout(noisy, theta, "sirt-tv", [0.02, 0.1], needs={"sirt": 10}, **opts)
    assert runs.count("sirt") == 4  # one SIRT per fold without a cache

    cache, runs[:] = cv.StartCache(), []
    cv.tune_by_holdout(noisy, theta, "sirt", [5, 10], cache=cache, **opts)
    assert runs == ["SirtRun"] * 4
    cached = cv.tune_by_holdout(noisy, theta, "sirt-tv", [0.02, 0.1], needs={"sirt": 10}, cache=cache, **opts)
    assert runs == ["SirtRun"] * 4 and cache.hits == 4
    assert cached.scores == plain.scores  # iterates and a fresh run of that count are the same image
    # from all the views too; another count or other views are not hits
    list(cv.all_view_candidates(noisy, theta, "sirt", [10], slices=1, backend="astra", cache=cache))
    list(cv.all_view_candidates(noisy, theta, "sirt-tv", [0.1], slices=1, needs={"sirt": 10}, backend="astra",
                                cache=cache))
    assert cache.hits == 5 and runs.count("sirt") == 0
    cv.tune_by_holdout(noisy, theta, "sirt-tv", [0.1], needs={"sirt": 5}, k=3, cache=cache, **opts)
    assert runs.count("sirt") == 3 and cache.hits == 5


def test_a_new_registry_entry_needs_no_code_here(scan, monkeypatch):
    vol, theta, clean = scan
    noisy = _noisy(clean, 200.0, 6)

    def gauss(x, value, *, backend="auto", threads=1):
        return ndimage.gaussian_filter(x, (0, value, value))
    monkeypatch.setitem(METHODS, "fbp-gauss", Method("fbp-gauss", "FBP+G", "sigma", "s", (0.5, 1.0), "fbp",
                                                     candidates=each_value(gauss), apply=gauss))
    result = cv.tune_by_holdout(noisy, theta, "fbp-gauss", [0.1, 0.6, 4.0], incident=200.0, backend="astra")
    # measured 1.19, 1.15, 2.9: a 0.1 px blur keeps the noise, a 4 px blur wipes out the discs
    assert result.chosen == 0.6
    direct = cv.holdout_residual(noisy, theta, cv.classical_reconstructor("fbp-gauss", 0.6), incident=200.0,
                                 backend="astra")
    assert direct.score == result.scores[0.6].score


def test_rank_methods_orders_by_score(scan):
    vol, theta, clean = scan
    noisy = _noisy(clean, 1000.0, 7)
    table = cv.rank_methods({"streaky": _fixed(fbp(clean[::9], theta[::9], backend="astra")),
                             "truth": _fixed(vol), "fbp": cv.fbp_reconstructor()},
                            noisy, theta, incident=1000.0, backend="astra")
    assert list(table["method"]) == ["truth", "fbp", "streaky"]
    assert list(table["rank"]) == [1, 2, 3]
    assert {"fold_1", "fold_4", "weighted"} <= set(table.columns) and table["weighted"].all()


def test_a_denoiser_model_on_the_fbp(scan):
    """The model path: an identity 'model' of depth 3 on a 2-slice stack (edges repeated) is the FBP."""
    torch = pytest.importorskip("torch")
    from tomogan_core.modelfile import LoadedModel

    _, theta, clean = scan
    noisy = _noisy(clean, 1000.0, 8)
    identity = LoadedModel(lambda x: x[:, 1:2], 3, {}, torch.device("cpu"))
    with_model = cv.holdout_residual(noisy, theta, cv.model_reconstructor(identity), incident=1000.0,
                                     backend="astra")
    plain = cv.holdout_residual(noisy, theta, cv.fbp_reconstructor(), incident=1000.0, backend="astra")
    assert with_model.score == pytest.approx(plain.score, rel=1e-6)


def test_a_grey255_model_sees_the_fbp_on_0_255_and_answers_in_its_units(scan):
    """--grey255-model: the FBP's own 0.5..99.5 percentile range is mapped to 0..255 before the model and back after
    (as tomogan-infer --grey255-from-input); a model that squares its input shows whether the mapping was applied."""
    torch = pytest.importorskip("torch")
    from tomogan_core.modelfile import LoadedModel

    _, theta, clean = scan
    noisy = _noisy(clean, 1000.0, 8)
    seen = []

    def square(x):  # g -> g^2 / 255: maps 0..255 onto itself, but not equivariant to the input's scale
        seen.append(x[:, 1].cpu().numpy())
        return x[:, 1:2] ** 2 / 255

    model = LoadedModel(square, 3, {}, torch.device("cpu"))
    base = fbp(noisy, theta, center=N / 2, size=N, backend="astra")
    lo, hi = np.percentile(base, [0.5, 99.5])
    step = (hi - lo) / 255
    grey = cv.model_reconstructor(model, grey255=True)(noisy, theta, N / 2, N, backend="astra")
    assert np.percentile(np.concatenate(seen), [0.5, 99.5]) == pytest.approx([0, 255], abs=1e-2)
    g = (base - lo) / step
    np.testing.assert_allclose(grey, g ** 2 / 255 * step + lo, rtol=1e-4, atol=1e-4 * (hi - lo))
    plain = cv.model_reconstructor(model)(noisy, theta, N / 2, N, backend="astra")  # data units straight in
    np.testing.assert_allclose(plain, base ** 2 / 255, rtol=1e-4, atol=1e-6)
    assert np.abs(grey - plain).max() > 0.1 * (hi - lo)


# ----------------------------------------------------------------------------- the command

def _write_scan(path, data, theta, **attrs):
    write_projections(path, data, theta, {"dataset": "discs", "center": data.shape[-1] / 2, **attrs})
    return path


def test_command_writes_scores(scan, tmp_path):
    _, theta, clean = scan
    proj = _write_scan(tmp_path / "photons.h5", _noisy(clean, 200.0, 9), theta, dose="photons-200",
                       dose_mode="photons", dose_level=200.0)
    out = tmp_path / "scores.csv"
    cv.main([str(out), str(proj), "--method", "fbp", "fbp-tv", "--grid", "0.003", "0.03", "0.3",
             "--slices", "1", "--backend", "astra"])
    rows = list(csv.DictReader(out.open()))
    assert [r["method"] for r in rows] == ["fbp", "fbp-tv", "fbp-tv", "fbp-tv"]
    assert all((r["dataset"], r["dose"]) == ("discs", "photons-200") for r in rows)  # from the file's attributes
    assert not {"ssim", "chosen_by_reference"} & set(rows[0])  # no reference, no reference columns
    assert {"score", "fold_1", "fold_2", "fold_3", "fold_4", "chosen", "weighted", "value"} <= set(rows[0])
    assert all(r["weighted"] == "True" for r in rows)  # auto: the file is a photons dose
    tv = rows[1:]
    chosen = [r for r in tv if r["chosen"] == "True"]
    assert len(chosen) == 1 and float(chosen[0]["score"]) == min(float(r["score"]) for r in tv)
    for r in rows:
        folds = [float(r[f"fold_{j}"]) for j in range(1, 5)]
        assert float(r["score"]) == pytest.approx(np.mean(folds))


def test_command_scores_plainly_without_a_photons_dose(scan, tmp_path):
    _, theta, clean = scan
    proj = _write_scan(tmp_path / "sparse.h5", clean[::2], theta[::2], dose_mode="sparse", dose_level=2)
    out = tmp_path / "scores.csv"
    cv.main([str(out), str(proj), "--method", "fbp", "--slices", "1", "--backend", "astra"])
    (row,) = list(csv.DictReader(out.open()))
    assert row["weighted"] == "False" and float(row["score"]) < 0.01


def _expect_error(capsys, argv, out, *needles):
    with pytest.raises(SystemExit) as exc:
        cv.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    for needle in needles:
        assert needle in err, (needle, err)
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.stem}.*")), "temporary file left behind"


def test_command_refuses_a_bad_file(scan, tmp_path, capsys):
    _, theta, clean = scan
    out = tmp_path / "scores.csv"
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not an HDF5 file at all")
    _expect_error(capsys, [str(out), str(bad), "--method", "fbp"], out, "bad.h5", "not a readable HDF5")
    few = _write_scan(tmp_path / "few.h5", clean[:6], theta[:6])
    _expect_error(capsys, [str(out), str(few), "--method", "fbp"], out, "few.h5", "too few for 4 folds")
    no_level = _write_scan(tmp_path / "nolevel.h5", clean, theta, dose_mode="photons", dose_level="high")
    _expect_error(capsys, [str(out), str(no_level), "--method", "fbp"], out, "nolevel.h5", "dose_level")


def test_command_chains_a_method_to_the_choice_it_starts_from(scan, tmp_path, capsys):
    _, theta, clean = scan
    proj = _write_scan(tmp_path / "photons.h5", _noisy(clean, 500.0, 10), theta, dose_mode="photons",
                       dose_level=500.0)
    out = tmp_path / "scores.csv"
    cv.main([str(out), str(proj), "--method", "sirt-tv", "sirt", "--slices", "1", "--backend", "astra"])
    rows = list(csv.DictReader(out.open()))
    sirt_rows = [r for r in rows if r["method"] == "sirt"]
    assert [int(r["value"]) for r in sirt_rows] == list(METHODS["sirt"].grid)
    assert sum(r["chosen"] == "True" for r in sirt_rows) == 1
    assert len([r for r in rows if r["method"] == "sirt-tv"]) == len(METHODS["sirt-tv"].grid)
    # without sirt's choice, sirt-tv is refused before anything is read
    with pytest.raises(SystemExit) as exc:
        cv.main([str(tmp_path / "x.csv"), str(proj), "--method", "sirt-tv"])
    assert exc.value.code == 2 and "--needs sirt=VALUE" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


N2I_TINY = {"k": 4, "train": {"depth": 3, "patch": 32, "batch": 2, "max_iter": 3, "val_every": 3, "ckpt_every": 3,
                               "val_slices": 1, "seed": 0}}


def test_noise2inverse_trains_per_fold_on_the_kept_views_only(scan, tmp_path, monkeypatch):
    """Each fold's Noise2Inverse splits, trains on and denoises the kept views alone; the command ranks it."""
    import tomogan_core.noise2inverse as n2i

    _, theta, clean = scan
    data = _noisy(clean, 1000.0, 11)
    seen = []
    real = n2i.subset_reconstructions
    monkeypatch.setattr(n2i, "subset_reconstructions",
                        lambda d, t, **kw: seen.append(t.copy()) or real(d, t, **kw))
    rec = cv.n2i_reconstructor(N2I_TINY["train"], k=N2I_TINY["k"])
    res = cv.holdout_residual(data, theta, rec, k=4, incident=1000.0, slices=1, backend="astra")
    assert len(seen) == 4 and np.isfinite(res.score) and res.score > 0
    for fold, t in zip(cv.folds(ANGLES, 4), seen):
        assert np.array_equal(t, theta[np.setdiff1d(np.arange(ANGLES), fold)])
    with pytest.raises(ValueError, match="patch"):
        cv.n2i_reconstructor({**N2I_TINY["train"], "patch": 64})(data, theta, N / 2, N)

    proj = _write_scan(tmp_path / "photons.h5", data, theta, dose_mode="photons", dose_level=1000.0)
    out = tmp_path / "scores.csv"
    seen.clear()
    cv.main([str(out), str(proj), "--method", "fbp", "--n2i", json.dumps(N2I_TINY), "--slices", "1",
             "--backend", "astra", "--images", str(tmp_path / "images.h5")])
    rows = {r["method"]: r for r in csv.DictReader(out.open())}
    assert set(rows) == {"fbp", "n2i"} and rows["n2i"]["chosen"] == "True" and rows["n2i"]["value"] == ""
    assert len(seen) == 5  # four folds, then once from all the views for its image
    assert "Noise2Inverse" in list(cv.read_images(tmp_path / "images.h5").label)


@pytest.mark.parametrize("spec, needle", [
    ("[4]", "JSON object"), ('{"k": 4, "train": {"patch": 0}}', "settings"),
    ('{"k": 4, "train": {"no_such": 1}}', "settings"), ("[]", "empty list"),
    ('[{"k": 4}, {"k": 2, "label": "n2i"}]', "label 'n2i' is given twice"),
    ('[{"label": "n2i:a"}, {"label": "n2i:b"}, {"label": "n2i:a"}]', "label 'n2i:a' is given twice"),
    ('{"label": "generalist"}', "expected 'n2i' or 'n2i:NAME'"), ('{"label": "n2i:bad name"}', "letters, digits"),
    ('[{"k": 4}, {"label": "n2i:x", "train": {"init": 3}}]', "bad Noise2Inverse settings of n2i:x")])
def test_command_refuses_bad_noise2inverse_settings(scan, tmp_path, capsys, spec, needle):
    _, theta, clean = scan
    proj = _write_scan(tmp_path / "p.h5", clean, theta)
    _expect_error(capsys, [str(tmp_path / "o.csv"), str(proj), "--n2i", spec], tmp_path / "o.csv", "--n2i", needle)


@pytest.fixture(scope="module")
def n2i_init(tmp_path_factory):
    """A tiny model.pt to fine-tune from: Noise2Inverse's settings of N2I_TINY, seed 5, not trained (step 0)."""
    from tomogan_core.noise2inverse import train_n2i
    from tomogan_core.train import TrainConfig

    subsets = np.random.default_rng(5).normal(1.0, 0.3, size=(4, 4, 32, 32)).astype(np.float32)
    cfg = TrainConfig(**{**N2I_TINY["train"], "max_iter": 0, "seed": 5})
    return train_n2i(subsets, tmp_path_factory.mktemp("init") / "generalist", cfg, progress=False)


def _n2i_list(init):
    return json.dumps([N2I_TINY, {"label": "n2i:generalist", "k": N2I_TINY["k"],
                                  "train": {**N2I_TINY["train"], "init": str(init)}}])


def test_n2i_json_list_gives_a_candidate_per_object(n2i_init):
    candidates = cv.n2i_candidates(_n2i_list(n2i_init))
    assert [method for method, _ in candidates] == ["n2i", "n2i:generalist"]
    assert all(callable(rec) for _, rec in candidates)
    assert [m for m, _ in cv.n2i_candidates(json.dumps(N2I_TINY))] == ["n2i"]  # one object, as before
    assert cv.candidate_label("n2i:generalist") == "N2I from generalist"
    assert cv.candidate_label("n2i") == "Noise2Inverse"


def test_command_ranks_n2i_fine_tuned_beside_n2i_from_scratch(scan, full_dose, n2i_init, tmp_path, monkeypatch):
    """Each --n2i object is a candidate of its own, named by its label: n2i from scratch, n2i:generalist from
    the init model (every training of it starts there and says so); check and the images take both."""
    import tomogan_core.noise2inverse as n2i

    _, theta, clean = scan
    _, ref = full_dose
    started = []  # per training: its label's init, and the init its model records
    real = n2i.train_n2i

    def recording(subsets, out_dir, cfg, **kw):
        path = real(subsets, out_dir, cfg, **kw)
        started.append((cfg.init, n2i.model_provenance(path).get("init", "")))
        return path

    monkeypatch.setattr(n2i, "train_n2i", recording)
    proj = _write_scan(tmp_path / "low.h5", _noisy(clean, 1000.0, 11), theta, dose="photons-1000",
                       dose_mode="photons", dose_level=1000.0)
    out, images = tmp_path / "n2i.csv", tmp_path / "n2i.h5"
    cv.main([str(out), str(proj), "--method", "fbp", "--n2i", _n2i_list(n2i_init), "--slices", "1",
             "--backend", "astra", "--reference", str(ref), "--images", str(images)])
    assert started == [("", "")] * 5 + [(str(n2i_init), str(n2i_init))] * 5  # K folds and all views, each
    rows = _rows(out)
    assert rows["method"].tolist() == ["fbp", "n2i", "n2i:generalist"]
    tuned = rows.set_index("method").loc[["n2i", "n2i:generalist"]]
    assert tuned["parameter"].isna().all() and tuned["value"].isna().all() and tuned["chosen"].all()
    assert tuned.loc["n2i", "score"] != tuned.loc["n2i:generalist", "score"]  # another start, another image
    result = cv.check([out])
    assert result.methods["method"].tolist() == ["fbp", "n2i", "n2i:generalist"]
    assert result.scans["n_methods"].tolist() == [3] and "| n2i:generalist " in cv.check_markdown(result)
    ranked = cv.read_images(images)
    assert ranked.method == ["fbp", "n2i", "n2i:generalist"]
    assert ranked.label == ["FBP", "Noise2Inverse", "N2I from generalist"]


def test_command_refuses_a_missing_init_before_any_work(n2i_init, tmp_path, capsys, monkeypatch):
    import tomogan_core.noise2inverse as n2i

    monkeypatch.setattr(n2i, "train_n2i", lambda *a, **kw: pytest.fail("trained"))
    missing = tmp_path / "gone" / "model.pt"
    out = tmp_path / "o.csv"
    # the projection file is missing too: the init file is checked first, with the options
    _expect_error(capsys, [str(out), str(tmp_path / "absent.h5"), "--n2i", _n2i_list(missing)], out,
                  f"error: {missing}: model file not found")
    shallow = tmp_path / "shallow.json"  # an init of another depth, in a spec file: named by the init file
    shallow.write_text(json.dumps({"label": "n2i:generalist", "k": 4, "train": {**N2I_TINY["train"], "depth": 1,
                                                                               "init": str(n2i_init)}}))
    _expect_error(capsys, [str(out), str(tmp_path / "absent.h5"), "--n2i", f"@{shallow}"], out,
                  f"error: {n2i_init}: init generator takes d = 3 slices, this run has depth 1")


def test_model_entries_take_a_label_or_the_run_folders_name():
    entries = cv.model_entries(["a=x/model.pt", "results/models/foam-sparse-8-d3-all-s0/model.pt",
                                "runs/foam/checkpoint.pt", "served/foam-v2.pt", "x=runs/lr=0.1/model.pt"],
                               ["results/models/release/served.pt"])
    assert [(e.method, e.path, e.grey255) for e in entries] == [
        ("tomogan:a", "x/model.pt", False),
        ("tomogan:foam-sparse-8-d3-all-s0", "results/models/foam-sparse-8-d3-all-s0/model.pt", False),
        ("tomogan:foam", "runs/foam/checkpoint.pt", False),
        ("tomogan:foam-v2", "served/foam-v2.pt", False),  # not in a run folder: its stem
        ("tomogan:x", "runs/lr=0.1/model.pt", False),  # the first '=' ends the label
        ("tomogan:release", "results/models/release/served.pt", True)]
    assert cv.model_entries([], []) == []


@pytest.mark.parametrize("argv, needles", [
    (["--model", "=m.pt"], ["--model: '=m.pt'", "LABEL=PATH"]),
    (["--model", "a="], ["--model: 'a='", "no path"]),
    (["--model", "runs/lr=0.1/model.pt"], ["--model", "needs a label"]),
    (["--model", "bad label=m.pt"], ["--model", "letters, digits"]),
    (["--model", "a/s0/model.pt", "s0=b.pt"], ["--model: 's0=b.pt'", "label 's0' is given twice"]),
    (["--model", "release=a.pt", "--grey255-model", "results/models/release/served.pt"],
     ["--grey255-model", "label 'release' is given twice"]),
    (["--model", "missing/model.pt"], ["missing/model.pt", "model file not found"]),
])
def test_command_refuses_a_bad_model_entry(scan, tmp_path, capsys, argv, needles):
    _, theta, clean = scan
    proj = _write_scan(tmp_path / "sparse.h5", clean[::2], theta[::2], dose_mode="sparse", dose_level=2)
    out = tmp_path / "scores.csv"
    _expect_error(capsys, [str(out), str(proj), "--method", "fbp", *argv], out, *needles)


def test_command_names_each_model_and_check_takes_them(scan, full_dose, tmp_path, monkeypatch):
    """Each model is a method of its own, tomogan:<label>, without a parameter; check compares them like any
    method. (Identity 'models' here: each scores as the FBP does.)"""
    torch = pytest.importorskip("torch")
    from tomogan_core import modelfile

    loaded = []

    def fake_load_any(path, **kwargs):
        loaded.append(str(path))
        return modelfile.LoadedModel(lambda x: x[:, 1:2], 3, {}, torch.device("cpu"))

    monkeypatch.setattr(modelfile, "load_any", fake_load_any)
    _, theta, clean = scan
    _, ref = full_dose
    proj = _write_scan(tmp_path / "low.h5", _noisy(clean, 1000.0, 11), theta, dose="photons-1000",
                       dose_mode="photons", dose_level=1000.0)
    out = tmp_path / "models.csv"
    seeds = [f"results/models/foam-photons-1e3-d3-all-s{s}/model.pt" for s in (1, 2)]
    cv.main([str(out), str(proj), "--method", "fbp", "--model", f"first={seeds[0]}", seeds[1],
             "--grey255-model", "results/models/release/served.pt", "--slices", "1", "--backend", "astra",
             "--reference", str(ref)])
    assert loaded == [*seeds, "results/models/release/served.pt"]
    rows = _rows(out)
    assert rows["method"].tolist() == ["fbp", "tomogan:first", "tomogan:foam-photons-1e3-d3-all-s2",
                                       "tomogan:release"]
    models = rows[rows.method.str.startswith("tomogan:")]
    assert models["parameter"].isna().all() and models["value"].isna().all()
    assert models["chosen"].all() and models["chosen_by_reference"].all()
    fbp_row = rows.iloc[0]
    for _, row in models.iterrows():  # an identity model is the FBP, with or without the grey-level mapping
        assert row["score"] == pytest.approx(fbp_row["score"], rel=1e-5)
        assert row["ssim"] == pytest.approx(fbp_row["ssim"], abs=1e-5)
    result = cv.check([out])
    m = result.methods.set_index("method")
    assert list(m.index) == rows["method"].tolist()
    assert m.loc["tomogan:release", ["parameter", "holdout_value", "reference_value", "agree", "ssim_lost"]
                 ].tolist() == ["", "", "", True, 0.0]
    assert result.scans["n_methods"].tolist() == [4]
    assert "| tomogan:release " in cv.check_markdown(result)


def test_command_applies_the_release_on_its_grey_levels(scan, tmp_path):
    """The authors' release (d = 1, trained on 0..255 grey levels) ranked as tomogan:release: with the mapping it
    predicts the left-out views; fed line integrals as they are, it does not."""
    from tomogan_core.export import export_served
    from tomogan_core.keras_import import load_keras_generator, released_weights_path
    from tomogan_core.modelfile import load_any

    release = tmp_path / "models" / "release" / "served.pt"
    export_served(load_keras_generator(released_weights_path()), release,
                  {"input_scale": {"kind": "affine", "offset": 0.0, "scale": 1.0}, "source": "test"})
    _, theta, clean = scan
    proj = _write_scan(tmp_path / "low.h5", _noisy(clean, 1000.0, 8), theta, dose_mode="photons", dose_level=1000.0)
    out = tmp_path / "release.csv"
    cv.main([str(out), str(proj), "--model", f"raw={release}", "--grey255-model", str(release), "--slices", "1",
             "--backend", "astra"])
    rows = _rows(out).set_index("method")
    assert rows.index.tolist() == ["tomogan:raw", "tomogan:release"]
    data = _noisy(clean, 1000.0, 8)
    expected = cv.holdout_residual(data, theta, cv.model_reconstructor(load_any(release), grey255=True),
                                   incident=1000.0, slices=1, backend="astra")
    assert rows.loc["tomogan:release", "score"] == pytest.approx(expected.score, rel=1e-5)
    # measured 18 with the mapping, 1.3e7 without
    assert rows.loc["tomogan:raw", "score"] > 1000 * rows.loc["tomogan:release", "score"]


# ----------------------------------------------------------------------------- against a reference

TV_GRID = ["0.003", "0.03", "0.3"]


@pytest.fixture(scope="module")
def full_dose(scan, tmp_path_factory):
    """(noiseless projection file, its FBP reconstruction of every row as the normal-dose reference)."""
    _, theta, clean = scan
    folder = tmp_path_factory.mktemp("full")
    proj = _write_scan(folder / "full.h5", clean, theta, dose="full", dose_mode="full", dose_level=1)
    ref = folder / "ref.h5"
    reconstruct_file(proj, ref, "fbp", backend="astra")
    return proj, ref


def _rows(path):
    return pd.read_csv(path, dtype={"value": str, "dose": str}, keep_default_na=False, na_values=[""])


def test_noiseless_reference_picks_the_least_smoothing_and_the_holdout_agrees(scan, full_dose, tmp_path):
    _, theta, clean = scan
    proj, ref = full_dose
    out = tmp_path / "full.csv"
    cv.main([str(out), str(proj), "--method", "fbp", "fbp-tv", "--grid", *TV_GRID, "--slices", "1",
             "--backend", "astra", "--reference", str(ref)])
    rows = _rows(out)
    assert {"dataset", "dose", "ssim", "psnr", "ssim_object", "psnr_object", "chosen",
            "chosen_by_reference"} <= set(rows.columns)  # both regions
    assert set(rows["dataset"]) == {"discs"} and set(rows["dose"]) == {"full"}
    # the FBP of all the views of the reference's own projections, on the same detector row, is the reference
    (plain,) = rows[rows.method == "fbp"].itertuples()
    assert plain.ssim == 1.0 and plain.psnr == math.inf and plain.chosen and plain.chosen_by_reference
    tv = rows[rows.method == "fbp-tv"].reset_index(drop=True)
    assert list(tv["value"]) == TV_GRID
    # measured ssim 0.995, 0.970, 0.835: every step of smoothing moves away from the noiseless reference
    assert np.all(np.diff(tv["ssim"]) < 0) and np.all(np.diff(tv["psnr"]) < 0), tv
    assert tv["chosen_by_reference"].tolist() == [True, False, False]
    # measured scores 2.1e-4, 3.0e-4, 5.3e-3: the holdout picks the same weight (one grid step would be allowed)
    assert tv["chosen"].tolist() == tv["chosen_by_reference"].tolist(), tv
    # each candidate was made from all the views of row 0 (the central one of two) and scored on its slice
    expected = cv.against_reference(METHODS["fbp-tv"].apply(fbp(clean[:, :1], theta, backend="astra"), 0.03),
                                     _ref_slices(ref)[:1])
    assert tv.loc[1, list(REFERENCE_COLUMNS)].tolist() == pytest.approx(
        [expected[c] for c in REFERENCE_COLUMNS], rel=1e-6)
    assert np.isfinite(tv["psnr_object"]).all()
    # and the check of that table: the holdout agrees, nothing lost
    result = cv.check([out])
    assert result.methods.set_index("method").loc["fbp-tv", ["agree", "grid_steps", "ssim_lost"]].tolist() == \
        [True, 0, 0.0]


def _ref_slices(ref):
    return read_slices(ref, [0, 1])


def test_at_low_dose_the_reference_smooths_one_step_more(scan, full_dose, tmp_path):
    """I0 = 200 against the normal-dose FBP: as with the image MSE above, the truth wants one step more smoothing."""
    _, theta, clean = scan
    _, ref = full_dose
    proj = _write_scan(tmp_path / "low.h5", _noisy(clean, 200.0, 9), theta, dose="photons-200", dose_mode="photons",
                       dose_level=200.0)
    out = tmp_path / "low.csv"
    cv.main([str(out), str(proj), "--method", "fbp", "fbp-tv", "--grid", *TV_GRID, "--slices", "1",
             "--backend", "astra", "--reference", str(ref)])
    (tv,) = cv.check([out]).methods.query("method == 'fbp-tv'").itertuples()
    # measured: holdout 0.03 (ssim 0.692), reference 0.3 (ssim 0.775); plain FBP 0.573
    assert tv.grid_steps == 1 and float(tv.reference_value) > float(tv.holdout_value), tv
    # what the holdout's weight loses (0.082) is less than what it gains over no smoothing (0.119)
    assert 0 < tv.ssim_lost < tv.ssim_holdout - float(_rows(out).query("method == 'fbp'")["ssim"].iloc[0])


def test_reference_slices_are_matched_by_detector_row(full_dose, tmp_path):
    """The reference's slices are found through its /slices, whatever their order, for the rows --slices picks."""
    proj, ref = full_dose
    both = _ref_slices(ref)
    assert cv.against_reference(both[1:], both[:1])["ssim"] < 0.99  # a row mix-up would show
    swapped = tmp_path / "swapped.h5"
    write_arrays(swapped, {"/recon": both[::-1].copy(), "/slices": np.array([1, 0], np.int32)})
    for slices, n in (("1", 1), ("0", 2)):  # the central row (row 0 of 2), then both
        out = tmp_path / f"fbp-{slices}.csv"
        cv.main([str(out), str(proj), "--method", "fbp", "--slices", slices, "--backend", "astra",
                 "--reference", str(swapped)])
        (row,) = _rows(out).itertuples()
        assert row.ssim == 1.0 and row.n_rays == n * ANGLES * int(cv.fov_rays(N, N / 2, N).sum())


def test_command_refuses_a_bad_reference(full_dose, tmp_path, capsys):
    """Another detector's slice size or rows, rows missing, or nothing to compare with: one line, exit 2, no CSV."""
    proj, ref = full_dose
    out = tmp_path / "scores.csv"
    argv = [str(out), str(proj), "--method", "fbp", "fbp-tv", "--grid", "0.03", "--slices", "1"]
    small = tmp_path / "small.h5"
    write_arrays(small, {"/recon": np.ones((2, 40, 40), np.float32), "/slices": np.array([0, 1], np.int32)})
    _expect_error(capsys, argv + ["--reference", str(small)], out, "small.h5", "slice shape (40, 40)", "(48, 48)")
    other = tmp_path / "other.h5"
    write_arrays(other, {"/recon": _ref_slices(ref), "/slices": np.array([0, 5], np.int32)})
    _expect_error(capsys, argv + ["--reference", str(other)], out, "other.h5", "[5]", "2-row detector")
    row_one = tmp_path / "row1.h5"
    write_arrays(row_one, {"/recon": _ref_slices(ref)[1:], "/slices": np.array([1], np.int32)})
    _expect_error(capsys, argv + ["--reference", str(row_one)], out, "row1.h5", "lacks scored slices [0]")
    flat = tmp_path / "flat.h5"
    write_arrays(flat, {"/recon": np.ones((2, N, N), np.float32), "/slices": np.array([0, 1], np.int32)})
    _expect_error(capsys, argv + ["--reference", str(flat)], out, "flat.h5", "constant")


# ----------------------------------------------------------------------------- the images

IMAGE_GRIDS = '{"fbp-tv": [0.003, 0.3], "sirt": [5, 20]}'


@pytest.fixture(scope="module")
def ranked(scan, full_dose, tmp_path_factory):
    """(table, images file, the scan's projections) of fbp, fbp-tv and sirt at I0 = 200, against the reference."""
    _, theta, clean = scan
    _, ref = full_dose
    folder = tmp_path_factory.mktemp("ranked")
    data = _noisy(clean, 200.0, 12)
    proj = _write_scan(folder / "low.h5", data, theta, dose="photons-200", dose_mode="photons", dose_level=200.0)
    out, images = folder / "low.csv", folder / "low-images.h5"
    cv.main([str(out), str(proj), "--method", "fbp", "fbp-tv", "sirt", "--grids", IMAGE_GRIDS, "--slices", "1",
             "--backend", "astra", "--reference", str(ref), "--images", str(images)])
    return _rows(out), images, data


def _h5(path):
    import h5py

    with h5py.File(path, "r") as f:
        arrays = {name: f[name][()] for name in f}
        return arrays, dict(f.attrs)


def test_images_hold_each_methods_chosen_slice_ranked_by_score(scan, full_dose, ranked, tmp_path):
    _, theta, _ = scan
    _, ref = full_dose
    table, images, data = ranked
    chosen = table[table["chosen"]].reset_index(drop=True)
    arrays, attrs = _h5(images)
    methods = [m.decode() for m in arrays["method"]]
    assert methods == ["fbp", "fbp-tv", "sirt"] == chosen["method"].tolist()
    values = dict(zip(chosen["method"], chosen["value"]))
    assert [t.decode() for t in arrays["label"]] == ["FBP", f"FBP+TV (weight {values['fbp-tv']})",
                                                     f"SIRT (n_iter {values['sirt']})"]
    assert arrays["recon"].shape == (3, N, N) and arrays["recon"].dtype == np.float32  # one slice per method
    np.testing.assert_allclose(arrays["score"], chosen["score"], rtol=1e-12)
    np.testing.assert_allclose(arrays["ssim"], chosen["ssim"], rtol=1e-12)
    # rank 1 is the smallest score, and the ranks follow the scores
    rank = arrays["rank"]
    assert sorted(rank.tolist()) == [1, 2, 3] and rank[np.argmin(arrays["score"])] == 1
    assert [methods[i] for i in np.argsort(rank)] == chosen.sort_values("score")["method"].tolist()
    # the central row scored (row 0 of 2 with --slices 1), made from all the views at the holdout's choice
    assert attrs["row"] == 0 and attrs["dataset"] == "discs" and attrs["dose"] == "photons-200"
    assert attrs["reference"] == str(ref)
    base = fbp(data[:, :1], theta, backend="astra")
    np.testing.assert_allclose(arrays["recon"][0], base[0], atol=1e-6)
    tv = METHODS["fbp-tv"].apply(base, float(values["fbp-tv"]))
    np.testing.assert_allclose(arrays["recon"][1], tv[0], atol=1e-6)
    scale = float(np.abs(base).max())  # SIRT's iterates of one run (5, then 20) against a run of its own
    np.testing.assert_allclose(arrays["recon"][2], sirt(data[:, :1], theta, n_iter=int(values["sirt"]),
                                                         backend="astra")[0], atol=1e-4 * scale)
    np.testing.assert_array_equal(arrays["reference"], _ref_slices(ref)[0])
    # the SSIM beside each image is that image's against that reference row
    assert cv.against_reference(arrays["recon"][1:2], arrays["reference"][None])["ssim"] == pytest.approx(
        arrays["ssim"][1], rel=1e-6)
    # without a reference: the same images and ranks, no SSIM, no reference
    out, plain = tmp_path / "plain.csv", tmp_path / "plain.h5"
    proj = _write_scan(tmp_path / "low.h5", data, theta, dose="photons-200", dose_mode="photons", dose_level=200.0)
    cv.main([str(out), str(proj), "--method", "fbp", "fbp-tv", "sirt", "--grids", IMAGE_GRIDS, "--slices", "1",
             "--backend", "astra", "--images", str(plain)])
    alone, alone_attrs = _h5(plain)
    assert "ssim" not in alone and "reference" not in alone and alone_attrs["reference"] == "none"
    np.testing.assert_allclose(alone["recon"], arrays["recon"], atol=1e-4 * scale)
    np.testing.assert_array_equal(alone["rank"], rank)


def test_figure_draws_the_images_ranked_best_first(ranked, tmp_path, monkeypatch):
    import matplotlib.image as mpimg

    from analysis import figures

    _, images, _ = ranked
    out = tmp_path / "figs" / "crossval.png"
    cv.main(["figure", str(images), str(out)])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert mpimg.imread(out).shape[0] > 100 and out.with_suffix(".pdf").stat().st_size > 0
    # the panels: best first, each with its rank, label, score and SSIM; the reference last; one grey scale
    drawn = []
    monkeypatch.setattr(figures, "save_figure", lambda fig, path: drawn.append(fig))
    cv.images_figure(images, tmp_path / "unused.png")
    axes = [ax for ax in drawn[0].axes if ax.images]
    titles = [ax.get_title() for ax in axes]
    arrays, _ = _h5(images)
    order = np.argsort(arrays["rank"])
    assert len(titles) == 4 and titles[-1].startswith("reference")
    for n, (title, i) in enumerate(zip(titles, order), start=1):
        assert title.startswith(f"{n}. {arrays['label'][i].decode()}\n"), title
        assert f"score {arrays['score'][i]:.4g}" in title and f"SSIM {arrays['ssim'][i]:.3f}" in title
    lo, hi = np.percentile(arrays["reference"], [0.5, 99.5])
    for ax in axes:
        assert ax.images[0].get_clim() == pytest.approx((lo, hi))


def test_figure_refuses_a_bad_images_file(ranked, tmp_path, capsys):
    _, images, _ = ranked
    out = tmp_path / "fig.png"
    _expect_error(capsys, ["figure", str(tmp_path / "missing.h5"), str(out)], out, "missing.h5", "file not found")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not an HDF5 file at all")
    _expect_error(capsys, ["figure", str(junk), str(out)], out, "junk.h5", "not a readable HDF5")
    arrays, attrs = _h5(images)
    no_recon = tmp_path / "norecon.h5"
    write_arrays(no_recon, {k: v for k, v in arrays.items() if k != "recon"}, attrs)
    _expect_error(capsys, ["figure", str(no_recon), str(out)], out, "norecon.h5", "missing dataset '/recon'")
    short = tmp_path / "short.h5"
    write_arrays(short, {**arrays, "score": arrays["score"][:2]}, attrs)
    _expect_error(capsys, ["figure", str(short), str(out)], out, "short.h5", "3 images", "2 score")
    ranks = tmp_path / "ranks.h5"
    write_arrays(ranks, {**arrays, "rank": np.array([1, 1, 2], np.int32)}, attrs)
    _expect_error(capsys, ["figure", str(ranks), str(out)], out, "ranks.h5", "/rank")
    assert not out.with_suffix(".pdf").exists()


# ----------------------------------------------------------------------------- checking the choices

def _table(dataset, dose, methods):
    """A crossval table by hand: ``methods`` maps name -> [(value, score, ssim), ...]; the choices are marked
    as the command marks them (smallest score, highest ssim)."""
    rows = []
    for name, cands in methods.items():
        best_score = min(c[1] for c in cands)
        best_ssim = max(c[2] for c in cands)
        for value, score, ssim in cands:
            rows.append({"dataset": dataset, "dose": dose, "method": name, "parameter": "p" if value != "" else "",
                         "value": value, "score": score, "chosen": score == best_score, "ssim": ssim,
                         "psnr": 20.0, "ssim_object": ssim, "chosen_by_reference": ssim == best_ssim})
    return pd.DataFrame(rows)


# Scan "a": the holdout ranks the methods (at its values) m1 < m2 < m3 by score, the reference ranks them
# (at its values) m1 > m2 > m3 by SSIM: the same order. Scan "b": the reverse. Scan "c": two methods.
# SSIMs are binary fractions, so differences are exact.
A = {"m1": [(0.1, 1.3, 0.5), (0.2, 1.1, 0.75), (0.4, 1.2, 0.875)],   # holdout 0.2, reference 0.4: 1 step, 0.125 lost
     "m2": [("", 1.2, 0.625)],                                      # no parameter: agrees
     "m3": [(10, 1.5, 0.25), (20, 1.4, 0.5), (50, 1.45, 0.375), (100, 1.6, 0.125)]}  # both 20
B = {"m1": [(0.1, 1.0, 0.25), (0.2, 1.1, 0.125), (0.4, 1.3, 0.0625)],  # both 0.1
     "m2": [("", 1.2, 0.5)],
     "m3": [(10, 1.4, 0.5), (20, 1.3, 0.625), (50, 1.5, 0.75), (100, 1.6, 0.5)]}  # holdout 20, reference 50
C = {"m1": [(0.1, 1.0, 0.5), (0.2, 1.1, 0.75)], "m2": [("", 0.9, 0.25)]}


def test_check_computes_agreement_loss_and_rank_correlation():
    tables = [_table("a", "x", A), _table("b", "x", {k: B[k] for k in ("m1", "m2")}),
              _table("b", "x", {"m3": B["m3"]}), _table("c", "y", C)]  # scan b split over two tables
    result = cv.check(tables)
    m = result.methods.set_index(["dataset", "method"])
    assert list(result.methods["method"]) == ["m1", "m2", "m3"] * 2 + ["m1", "m2"]
    expect = {("a", "m1"): ("0.2", "0.4", False, 1, 0.75, 0.875, 0.125),
              ("a", "m2"): ("", "", True, 0, 0.625, 0.625, 0.0),
              ("a", "m3"): ("20", "20", True, 0, 0.5, 0.5, 0.0),
              ("b", "m1"): ("0.1", "0.1", True, 0, 0.25, 0.25, 0.0),
              ("b", "m3"): ("20", "50", False, 1, 0.625, 0.75, 0.125),
              ("c", "m1"): ("0.1", "0.2", False, 1, 0.5, 0.75, 0.25)}
    cols = ["holdout_value", "reference_value", "agree", "grid_steps", "ssim_holdout", "ssim_reference", "ssim_lost"]
    for key, want in expect.items():
        assert m.loc[key, cols].tolist() == list(want), key
    assert result.methods["descent_agrees"].all()
    assert (result.methods["ssim_lost"] >= 0).all()
    s = result.scans.set_index("dataset")
    # a: holdout scores at its values m1 1.1, m2 1.2, m3 1.4; reference SSIMs m1 .875, m2 .625, m3 .5 -> same order
    assert s.loc["a", "spearman"] == pytest.approx(1.0, abs=1e-12)
    # b: holdout m1 1.0, m2 1.2, m3 1.3; reference m1 .25, m2 .5, m3 .75 -> reversed
    assert s.loc["b", "spearman"] == pytest.approx(-1.0, abs=1e-12)
    assert math.isnan(s.loc["c", "spearman"]) and s.loc["c", "n_methods"] == 2
    assert s.loc["a", ["top_holdout", "top_reference", "top_agrees", "ssim_auto", "ssim_best", "auto_ssim_lost"]
                 ].tolist() == ["m1", "m1", True, 0.75, 0.875, 0.125]
    assert s.loc["b", ["top_holdout", "top_reference", "top_agrees", "ssim_auto", "ssim_best", "auto_ssim_lost"]
                 ].tolist() == ["m1", "m3", False, 0.25, 0.75, 0.5]
    # c: m2 (no parameter) has the best score; the best SSIM is m1 at 0.2
    assert s.loc["c", ["top_holdout", "top_reference", "ssim_auto", "ssim_best", "auto_ssim_lost"]].tolist() == \
        ["m2", "m1", 0.25, 0.75, 0.5]


def test_check_says_what_each_residual_would_have_chosen():
    """Scan "a" (photon-limited, ranked by the ramp residual) and "b" (unweighted, by the plain one): for each
    kind, the choices its own score column makes, against the reference's."""
    a = _table("a", "x", A).assign(weighted=True, residual="ramp")
    b = _table("b", "x", B).assign(weighted=False, residual="plain")
    for t in (a, b):
        t["score_" + t["residual"].iloc[0]] = t["score"]
    # the other kind: in "a" it would pick m1 0.1 (reference 0.4) and m3 10 (reference 20), and rank m3 first;
    # in "b" m1 0.4 (reference 0.1) and m3 50 (= reference)
    a["score_plain"] = [1.0, 1.2, 1.3, 1.4, 1.45, 1.5, 1.6, 1.7]
    b["score_ramp"] = [1.4, 1.3, 1.2, 1.5, 1.6, 1.5, 1.35, 1.7]
    r = cv.check([a, b]).residuals.set_index(["residual", "data"])
    cols = ["in_use", "n_scans", "n_tuned", "agree", "within_one_step", "ssim_lost_mean", "ssim_lost_max",
            "auto_ssim_lost_mean"]
    # ramp on "a": m1 0.2 (0.125 lost), m3 20 (agrees); its top is m1 at 0.2: 0.875 - 0.75
    assert r.loc[("ramp", "photon-limited"), cols].tolist() == [1, 1, 2, 1, 2, 0.0625, 0.125, 0.125]
    # plain on "a": m1 0.1 (2 steps, 0.375 lost), m3 10 (1 step, 0.25 lost); its top m1 at 0.1: 0.875 - 0.5
    assert r.loc[("plain", "photon-limited"), cols].tolist() == [0, 1, 2, 0, 1, 0.3125, 0.375, 0.375]
    # plain on "b" (the one in use): m1 0.1 agrees, m3 20 (0.125 lost); top m1 at 0.1: 0.75 - 0.25
    assert r.loc[("plain", "unweighted"), cols].tolist() == [1, 1, 2, 1, 2, 0.0625, 0.125, 0.5]
    # ramp on "b": m1 0.4 (2 steps, 0.1875 lost), m3 50 agrees; top m1 at 0.4 (1.2 < m3's 1.35): 0.75 - 0.0625
    assert r.loc[("ramp", "unweighted"), cols].tolist() == [0, 1, 2, 1, 1, 0.09375, 0.1875, 0.6875]
    markdown = cv.check_markdown(cv.check([a, b]))
    assert "## Which residual" in markdown
    # tables without the kinds' columns: no comparison, and none in the Markdown
    bare = cv.check([_table("a", "x", A)])
    assert bare.residuals.empty and "Which residual" not in cv.check_markdown(bare)


def test_check_command_writes_the_table_and_its_markdown_twin(tmp_path, capsys):
    paths = []
    for name, methods in (("a", A), ("b", B)):
        paths.append(tmp_path / f"{name}.csv")
        _table(name, "photons-1e3", methods).to_csv(paths[-1], index=False)
    out = tmp_path / "check" / "check.csv"
    cv.main(["check", str(out), *map(str, paths)])
    written = _rows(out)
    expected = cv.check(paths)
    assert len(written) == 6 and list(written.columns[:3]) == ["dataset", "dose", "method"]
    assert set(written["dose"]) == {"photons-1e3"}  # a dose label stays a label
    assert written["ssim_lost"].tolist() == expected.methods["ssim_lost"].tolist() == [0.125, 0, 0, 0, 0, 0.125]
    assert written.groupby("dataset")["spearman"].first().tolist() == pytest.approx([1.0, -1.0])
    md = out.with_suffix(".md").read_text()
    assert "## Per method" in md and "## Per scan" in md and "| m3 " in md
    assert "for 2 of 4 tuned methods" in md  # a.m1, b.m3 disagree; a.m3, b.m1 agree

    # a table made without --reference, and one whose reference choice is not its best SSIM: refused
    plain = tmp_path / "plain.csv"
    _table("a", "x", A).drop(columns=["ssim", "chosen_by_reference"]).to_csv(plain, index=False)
    bad_out = tmp_path / "bad.csv"
    _expect_check_error(capsys, ["check", str(bad_out), str(plain)], bad_out, "plain.csv", "ssim")
    wrong = _table("a", "x", A)
    wrong["chosen_by_reference"] = wrong["chosen"]
    wrong.to_csv(tmp_path / "wrong.csv", index=False)
    _expect_check_error(capsys, ["check", str(bad_out), str(tmp_path / "wrong.csv")], bad_out, "wrong.csv",
                        "m1", "not its highest ssim")
    _expect_check_error(capsys, ["check", str(bad_out), str(paths[0]), str(paths[0])], bad_out, "a.csv",
                        "appears twice")


def _expect_check_error(capsys, argv, out, *needles):
    _expect_error(capsys, argv, out, *needles)
    assert not out.with_suffix(".md").exists()


# ----------------------------------------------------------------------------- every route on a scan

# Scan "s" at dose "x": FBP+TV's choice is 0.2 (score 1.1); ranked by score the release (1.0), FBP+TV 0.2, FBP,
# Noise2Inverse; by SSIM FBP (.875), FBP+TV 0.2 (.75), Noise2Inverse (.625), the release (.25). At dose "y": N2I
# from matched (0.3), then SIRT at 50 (0.4); by SSIM the other way round. Scan "t" is not asked for.
S_X = {"fbp-tv": [(0.05, 1.2, 0.5), (0.2, 1.1, 0.75)], "fbp": [("", 1.3, 0.875)],
       "tomogan:release": [("", 1.0, 0.25)], "n2i": [("", 2.0, 0.625)]}
S_Y = {"sirt": [(10, 0.5, 0.5), (50, 0.4, 0.25)], "n2i:matched": [("", 0.3, 0.375)]}
T_X = {"fbp": [("", 0.9, 0.5)]}


def _route_tables(tmp_path, *, reference_y=True):
    """Two crossval CSVs: scans "s" (dose "x") and "t" in one, "s" at dose "y" (without the reference's columns
    unless ``reference_y``) in the other."""
    x = tmp_path / "x.csv"
    pd.concat([_table("s", "x", S_X), _table("t", "x", T_X)]).to_csv(x, index=False)
    y = tmp_path / "y.csv"
    table = _table("s", "y", S_Y)
    if not reference_y:
        table = table.drop(columns=["ssim", "psnr", "ssim_object", "chosen_by_reference"])
    table.to_csv(y, index=False)
    return [x, y]


def test_routes_table_ranks_every_candidate_at_its_choice(tmp_path):
    routes = cv.routes_table(_route_tables(tmp_path, reference_y=False), ["s"])
    assert list(routes.columns) == ["dataset", "dose", "rank", "route", "method", "score", "ssim", "ssim_object",
                                    "psnr", "psnr_object", "ref_rank"]
    assert set(routes["dataset"]) == {"s"}  # scan "t" was not asked for
    x = routes[routes["dose"] == "x"]
    assert x["route"].tolist() == ["TomoGAN release", "FBP+TV (weight 0.2)", "FBP", "Noise2Inverse"]
    assert x["rank"].tolist() == [1, 2, 3, 4] and x["score"].tolist() == [1.0, 1.1, 1.3, 2.0]
    assert x["ref_rank"].tolist() == [4, 2, 1, 3] and x["ssim"].tolist() == [0.25, 0.75, 0.875, 0.625]
    assert x["psnr"].tolist() == [20.0] * 4 and x["psnr_object"].isna().all()  # _table writes no psnr_object
    # dose "y" was scored without a reference: ranked all the same, no reference rank
    y = routes[routes["dose"] == "y"]
    assert y["route"].tolist() == ["N2I from matched", "SIRT (n_iter 50)"] and y["rank"].tolist() == [1, 2]
    assert y[["ssim", "psnr", "ref_rank"]].isna().all().all()
    assert list(routes["dose"]) == ["x"] * 4 + ["y"] * 2

    # with the reference at "y" too: the reference ranks SIRT (0.25) below N2I from matched (0.375)
    routes = cv.routes_table(_route_tables(tmp_path), ["s", "t"])
    assert routes.query("dose == 'y'")["ref_rank"].tolist() == [1, 2]
    assert routes.query("dataset == 't'")[["rank", "route", "ref_rank"]].values.tolist() == [[1, "FBP", 1.0]]
    # a tuned method must mark its choice once, at its smallest score
    bad = _table("s", "x", S_X)
    bad.loc[bad["method"] == "fbp-tv", "chosen"] = False
    with pytest.raises(InputError, match="fbp-tv has 0 rows marked chosen"):
        cv.routes_table([bad], ["s"])


def _bench_tree(root, seconds):
    """Snakemake benchmark files under ``root``: ``{relative path: wall seconds}``, in Snakemake's layout."""
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    for rel, s in seconds.items():
        f = root / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(header + f"{s}\t0:00:{int(s):02d}\t379.68\t1382.82\t249.56\t309.03\t0.16\t0.01\t51.57\t14.55\n")


def _smoke_plan():
    from study import Plan, load_config

    return Plan.from_config(load_config(Path(__file__).resolve().parents[1] / "config" / "smoke.yaml"))


def _bench_at(root, paths_seconds):
    """Benchmark files at the workflow's own paths (``benchmarks/...``), written under ``root``."""
    from study import BENCHMARKS

    _bench_tree(root, {str(Path(p).relative_to(BENCHMARKS)): s for p, s in paths_seconds.items()})


def test_routes_cost_is_the_sum_of_the_jobs_the_plan_names(tmp_path):
    from study import Paths

    plan = _smoke_plan()
    scan = "demo-scan"
    volumes = [ds for ds in plan.matched if plan.config["datasets"][ds]["scan"] == scan]
    matched = {r.dose: r.name for r in plan.runs.values() if r.split == f"matched-{scan}"}
    general = [r.name for r in plan.runs.values() if r.split == "generalist"]
    # the scan's doses, and its own acquisition's model for tomogan-scan (acquired: true): a cost of the scan too
    assert len(volumes) >= 2 and set(matched) == {"sparse-8", "photons-1e3", "as-acquired"} and general
    B = Paths.benchmark
    _bench_at(tmp_path, {
        # the simulation at the scan's acquisition: 1 + 2 + 0.5 + 0.25, where the rules write their benchmarks
        B("matched_phantom", dataset=volumes[0]): 1.0,
        B("project_matched", dataset=volumes[0]): 2.0,
        B("low_dose", dataset=volumes[0], dose="sparse-8"): 0.5,
        B("fbp", dataset=volumes[1], dose="full"): 0.25,
        # not simulation: the matched model on the scan, the study's metrics of the simulated volumes
        B("infer", dataset=scan, dose="sparse-8", run=matched["sparse-8"]): 100.0,
        B("conventional_metrics", dataset=volumes[0]): 100.0,
        # trainings: matched per dose, the generalist, the study's not counted
        B("train", run=matched["sparse-8"]): 10.0,
        B("train", run=matched["photons-1e3"]): 20.0,
        B("train", run=matched["as-acquired"]): 5.0,
        B("train", run=general[0]): 30.0,
        B("train", run=next(r for r in plan.runs if r.startswith("foam-"))): 1000.0,
        # the held-out rankings per dose, and the ranking's figure (not counted)
        B("crossval", dataset=scan, dose="sparse-8"): 40.0,
        B("crossval", dataset=scan, dose="photons-1e3"): 50.0,
        B("crossval_figure", dataset=scan, dose="sparse-8"): 1000.0,
    })
    costs = cv.route_costs(tmp_path, plan.route_cost_spec())
    ranking = cv.COST_KINDS["ranking"]
    gen_dose = plan.runs[general[0]].dose
    assert costs.values.tolist() == [
        [scan, "simulation at the scan's acquisition (all doses)", "", 3.75],
        [scan, "scan-matched training", "as-acquired", 5.0],
        [scan, "scan-matched training", "photons-1e3", 20.0],
        [scan, "scan-matched training", "sparse-8", 10.0],
        [scan, "generalist training (shared by every scan)", gen_dose, 30.0],
        [scan, ranking, "photons-1e3", 50.0],
        [scan, ranking, "sparse-8", 40.0]]
    empty = cv.route_costs(tmp_path / "none", plan.route_cost_spec())
    assert empty.empty and list(empty.columns) == ["dataset", "what", "dose", "seconds"]
    # a file that is no benchmark, and rows that are no cost rows: one error each, naming them
    (tmp_path / "crossval" / scan / "sparse-8.tsv").write_text("x\ty\n1\t2\n")
    with pytest.raises(InputError, match="sparse-8.tsv"):
        cv.route_costs(tmp_path, plan.route_cost_spec())
    with pytest.raises(InputError, match="unknown kind 'nope'"):
        cv.route_costs(tmp_path, [{"dataset": scan, "kind": "nope", "dose": "", "benchmarks": []}])
    with pytest.raises(InputError, match="needs dataset, kind, dose and benchmarks"):
        cv.route_costs(tmp_path, [{"dataset": scan}])


def test_check_command_with_scans_writes_every_routes_rank_and_cost(tmp_path, capsys):
    tables = _route_tables(tmp_path)
    bench = tmp_path / "benchmarks"
    _bench_tree(bench, {"train/matched-s-x-d3-all.tsv": 12.34, "crossval/s/x.tsv": 56.78,
                        "crossval/t/x.tsv": 1000.0})
    spec = [{"dataset": "s", "kind": "matched", "dose": "x", "benchmarks": ["train/matched-s-x-*.tsv"]},
            {"dataset": "s", "kind": "ranking", "dose": "x", "benchmarks": ["crossval/s/x.tsv"]}]
    costs = ["--benchmarks", str(bench), "--costs", json.dumps(spec)]
    out = tmp_path / "check" / "check.csv"
    cv.main(["check", str(out), *map(str, tables), "--scans", "s", *costs])
    routes = _rows(out.parent / "routes.csv")
    assert routes["route"].tolist() == ["TomoGAN release", "FBP+TV (weight 0.2)", "FBP", "Noise2Inverse",
                                        "N2I from matched", "SIRT (n_iter 50)"]
    assert routes["ref_rank"].tolist() == [4, 2, 1, 3, 1, 2]
    md = out.with_suffix(".md").read_text()
    assert "## Per scan" in md and md.index("## Per scan") < md.index("## Every route on your scans")
    section = md[md.index("## Every route on your scans"):]
    assert "held-out" in section and "normal-dose reference" in section
    assert "| s         | x      | 2      | FBP+TV (weight 0.2) | fbp-tv" in section
    assert "| 1.1     | 0.7500 | 0.7500        | 20.00  | n/a           | 2          |" in section
    assert "### What the scan's own routes cost" in section and "one-core jobs of this run" in section
    assert "| 12.3 " in section and "| 56.8 " in section and "1000.0" not in section

    # without --scans: the check alone, as before
    plain = tmp_path / "plain" / "check.csv"
    cv.main(["check", str(plain), *map(str, tables)])
    assert "Every route" not in plain.with_suffix(".md").read_text()
    assert not (plain.parent / "routes.csv").exists()

    # a scan the tables do not hold, and --benchmarks without --scans: one line each, nothing written
    bad = tmp_path / "bad" / "check.csv"
    _expect_check_error(capsys, ["check", str(bad), *map(str, tables), "--scans", "s", "nope"], bad,
                        "error: --scans: ", "nope")
    assert not (bad.parent / "routes.csv").exists()
    _expect_check_error(capsys, ["check", str(bad), *map(str, tables), *costs], bad, "error: --costs: ", "--scans")
    _expect_check_error(capsys, ["check", str(bad), *map(str, tables), "--scans", "s", *costs[:2]], bad,
                        "error: --costs: ", "needs --benchmarks too")
    _expect_check_error(capsys, ["check", str(bad), *map(str, tables), "--scans", "s", *costs[:3], "{}"], bad,
                        "error: --costs: ", "not a JSON list")
