"""The baselines a referee accepts: TV-regularised reconstruction (corrct's PDHG on our projector matrix), SIRT run
to convergence, and BM3D told the FBP noise's ramp spectrum. Each test says in a comment what would make it fail."""

import numpy as np
import pytest
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from analysis import classical
from analysis.classical import METHODS, TV_RECON_ITER, TV_RECON_TOL, Projections
from simulate import reconstruct
from simulate.acquire import angles
from simulate.reconstruct import bm3d_denoise, fbp, fbp_noise_psd, project, sirt, tv_denoise

tvrecon = pytest.importorskip("simulate.tvrecon")  # needs corrct
from simulate.tvrecon import STOP_WINDOW, StackProjector, TVProblem, misfit, tv_reconstruct  # noqa: E402


def _blocks(n=128, slices=1):
    """A piecewise-constant phantom: a disc holding a rectangle, two discs and a bar, attenuation ~0.01 per pixel."""
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
    img = np.zeros((n, n), np.float32)
    img[yy ** 2 + xx ** 2 < (0.42 * n) ** 2] = 0.010
    img[(abs(yy + 0.12 * n) < 0.12 * n) & (abs(xx - 0.05 * n) < 0.2 * n)] = 0.020
    img[(yy - 0.2 * n) ** 2 + (xx + 0.18 * n) ** 2 < (0.09 * n) ** 2] = 0.0
    img[(yy - 0.18 * n) ** 2 + (xx - 0.2 * n) ** 2 < (0.06 * n) ** 2] = 0.030
    img[(abs(yy - 0.02 * n) < 0.025 * n) & (abs(xx + 0.22 * n) < 0.1 * n)] = 0.025
    return np.repeat(img[None], slices, axis=0)


def _ssim(image, reference):
    rng = float(reference.max() - reference.min())
    return float(np.mean([structural_similarity(a, b, data_range=rng) for a, b in zip(image, reference)]))


def _psnr(image, reference):
    return peak_signal_noise_ratio(reference, image, data_range=float(reference.max() - reference.min()))


@pytest.fixture(scope="module")
def blocks():
    vol = _blocks()
    theta = angles(180)
    return vol, project(vol, theta), theta


# ----------------------------------------------------------------------------- TV-regularised reconstruction

def test_tv_reconstruction_beats_fbp_tv_at_an_eighth_of_the_views(blocks):
    # Fails if TV acts as a post-filter (TV after a reconstruction cannot undo sparse-view streaks) or if the
    # reconstruction's projector differs from the data's: the best of each on a small grid, noise-free data.
    vol, sino, theta = blocks
    sparse, th = sino[::8], theta[::8]  # 23 views
    f = fbp(sparse, th)
    fbp_tv = max(_ssim(tv_denoise(f, weight=w), vol) for w in (0.02, 0.05, 0.1, 0.2, 0.5))
    tv = max(_ssim(tv_reconstruct(sparse, th, weight=w, n_iter=400), vol) for w in (0.003, 0.01, 0.03))
    assert tv > fbp_tv + 0.1, (tv, fbp_tv)


def test_the_data_misfit_falls_with_iterations(blocks):
    # Fails if the back-projection is not the projection's transpose, or PDHG's steps are wrong: the data term
    # would not keep falling, from the zero start's to a small fraction of it.
    vol, sino, theta = blocks
    sparse, th = sino[::4], theta[::4]
    values = [misfit(np.zeros_like(vol), sparse, th)]
    values += [misfit(tv_reconstruct(sparse, th, weight=0.003, n_iter=n, tol=None), sparse, th) for n in (10, 40, 160)]
    assert all(a > b for a, b in zip(values, values[1:])), values
    assert values[-1] < 0.01 * values[0], values


def test_the_geometry_is_that_of_our_sirt_and_fbp_with_the_axis_off_centre(blocks):
    # Fails on a half-pixel or sign error in the rotation axis or the grid: the data are acquired about an axis
    # 3.5 pixels right of the detector's middle, and near-unregularised TV reconstruction must lie where SIRT's,
    # FBP's and the phantom's images lie (sub-pixel registration: a centre half a pixel off moves it by a third of a
    # pixel) and agree with SIRT's in value.
    from skimage.registration import phase_cross_correlation

    vol, sino, theta = blocks
    centre = sino.shape[-1] / 2 + 3.5
    off = ndimage.shift(sino, (0, 0, 3.5), order=1, mode="nearest")
    tv = tv_reconstruct(off, theta, weight=1e-5, n_iter=400, center=centre, tol=None)[0]
    other = sirt(off, theta, n_iter=400, center=centre)[0]
    for image in (other, fbp(off, theta, center=centre)[0], vol[0]):
        shift = phase_cross_correlation(image, tv, upsample_factor=50)[0]
        assert np.abs(shift).max() < 0.1, shift
    assert np.abs(tv - other).mean() < 0.05 * np.abs(other).mean()
    assert _ssim(tv[None], vol) > 0.9


def test_converged_sirt_reaches_fbp_quality_at_full_views(blocks):
    # Fails if SIRT stopped early were the study's only iterative comparator by accident: run to 600 iterations
    # at full views, SIRT matches or beats FBP in SSIM and PSNR against the phantom.
    vol, sino, theta = blocks
    s, f = sirt(sino, theta, n_iter=600), fbp(sino, theta)
    assert _ssim(s, vol) >= _ssim(f, vol) - 0.01
    assert _psnr(s, vol) >= _psnr(f, vol) - 0.5


def test_the_weight_is_relative_to_the_datas_scale(blocks):
    # Fails if the weight is not scale-free: projections ten times larger must give a volume ten times larger.
    _, sino, theta = blocks
    sparse, th = sino[::6, :, :], theta[::6]
    a = tv_reconstruct(sparse, th, weight=0.03, n_iter=60, tol=None)
    b = tv_reconstruct(10 * sparse, th, weight=0.03, n_iter=60, tol=None)
    np.testing.assert_allclose(b, 10 * a, rtol=1e-3, atol=1e-3 * float(np.abs(10 * a).max()))


def test_a_warm_start_continues_from_the_previous_solution(blocks):
    # Fails if x0 is ignored or taken in the wrong unit: starting from the converged image of a nearby weight,
    # 20 iterations land nearer the converged image at the new weight than 20 from zero.
    _, sino, theta = blocks
    sparse, th = sino[::6], theta[::6]
    start = tv_reconstruct(sparse, th, weight=0.01, n_iter=300, tol=None)
    target = tv_reconstruct(sparse, th, weight=0.02, n_iter=300, tol=None)
    warm = tv_reconstruct(sparse, th, weight=0.02, n_iter=20, x0=start, tol=None)
    cold = tv_reconstruct(sparse, th, weight=0.02, n_iter=20, tol=None)
    assert np.abs(warm - target).mean() < 0.3 * np.abs(cold - target).mean()


def test_our_pdhg_loop_is_corrcts(blocks):
    # Fails if TVProblem's loop (ours, for the stop and the warm start) parts from corrct.solvers.PDHG's iteration:
    # at a fixed count, from zero and from x0, it must give corrct's image to float rounding.
    from corrct import data_terms, regularizers, solvers

    _, sino, theta = blocks
    sparse, th, weight = sino[::6], theta[::6], 0.01
    problem = TVProblem(sparse, th)
    x0 = tv_reconstruct(sparse, th, weight=0.003, n_iter=30, tol=None)
    for start in (None, x0):
        ours = problem.solve(weight, n_iter=80, tol=None, x0=start)
        gain = problem.projector.gain
        reg = regularizers.Regularizer_TV2D(weight * th.size * gain, pad_mode="constant",
                                            norm=data_terms.DataFidelity_l21())
        solver = solvers.PDHG(verbose=False, leave_progress=False, regularizer=reg,
                              data_term=data_terms.DataFidelity_l2())
        v, _ = solver(problem.projector, problem.data, iterations=80, precondition=True,
                      x0=None if start is None else start / np.float32(problem.scale * gain))
        theirs = np.asarray(v, np.float32) * np.float32(gain * problem.scale)
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5 * float(np.abs(theirs).max()))


def test_a_run_continued_warm_at_the_same_weight_is_one_run(blocks):
    # Fails if a warm start drops PDHG's dual variables (or its extrapolated iterate): restarted from the primal
    # iterate alone, 60 + 60 iterations are not 120 (PDHG's duals carry the data residual and the TV subgradient).
    _, sino, theta = blocks
    sparse, th = sino[::6], theta[::6]
    problem = TVProblem(sparse, th)
    whole = problem.solve(0.01, n_iter=120, tol=None)
    problem.solve(0.01, n_iter=60, tol=None)
    continued = problem.solve(0.01, n_iter=60, tol=None, warm=True)
    np.testing.assert_allclose(continued, whole, rtol=1e-4, atol=1e-5 * float(np.abs(whole).max()))
    restarted = problem.solve(0.01, n_iter=60, tol=None, x0=problem.solve(0.01, n_iter=60, tol=None))
    assert np.abs(restarted - whole).max() > 100 * np.abs(continued - whole).max()


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _noisy(blocks, incident=1e3):
    from simulate.noise import short_exposure

    _, sino, theta = blocks
    return short_exposure(sino, incident, rng=np.random.default_rng(0)), theta


# The stop's accuracy, the criterion tv-recon's tolerance was chosen by (analysis.classical.TV_RECON_TOL): a stopped
# image lies within 20 times the tolerance (relative L2) of a long run's image, or no farther than the cap's image.
ACCURACY = 20 * TV_RECON_TOL


@pytest.mark.parametrize("case, weight", [("sparse", 0.01), ("sparse", 0.1), ("noisy", 0.1)])
def test_the_stop_lands_as_near_the_minimiser_as_the_cap_or_within_its_accuracy(blocks, case, weight):
    # Fails if the stop ends too early (its tolerance too loose, or the change measured over too few iterations):
    # on 23 noise-free views and on 180 views at 1000 photons, the stopped image must lie no farther from a run 2.5
    # times the cap than the cap's image (TV_RECON_ITER) does, or than ACCURACY; and it must stop before the cap (else
    # it is the cap's image and nothing is tested).
    sino, theta = (blocks[1][::8], blocks[2][::8]) if case == "sparse" else _noisy(blocks)
    problem = TVProblem(sino, theta)
    seen = {}
    long = problem.solve(weight, n_iter=5 * TV_RECON_ITER // 2, tol=None,
                         monitor=lambda k, change, x: seen.setdefault(k, x.copy()))
    stopped = problem.solve(weight, n_iter=TV_RECON_ITER, tol=TV_RECON_TOL)
    assert problem.converged and problem.iterations < TV_RECON_ITER
    np.testing.assert_array_equal(stopped, seen[problem.iterations])  # the stop is a check of the same run
    cap = seen[TV_RECON_ITER]
    assert _rel(stopped, long) <= max(_rel(cap, long), ACCURACY), (problem.iterations, _rel(stopped, long),
                                                                    _rel(cap, long))


def test_the_stop_saves_iterations_where_the_data_settle_early(blocks):
    # Fails if the stop never fires (a tolerance too tight, or a change measured wrongly, e.g. against the start),
    # so that every weight costs the cap: on 180 views at 1000 photons a medium weight settles in at most half of
    # TV_RECON_ITER (counted), and the image is the capped run's to within the stop's accuracy (test above).
    sino, theta = _noisy(blocks)
    problem = TVProblem(sino, theta)
    stopped = problem.solve(0.1, n_iter=TV_RECON_ITER, tol=TV_RECON_TOL)
    assert problem.converged and problem.iterations <= TV_RECON_ITER // 2, problem.iterations
    assert problem.iterations % STOP_WINDOW == 0
    cap = problem.solve(0.1, n_iter=TV_RECON_ITER, tol=None)
    assert problem.iterations == TV_RECON_ITER and not problem.converged
    assert _rel(stopped, cap) < ACCURACY


def test_warm_started_candidates_are_the_cold_applies(blocks, monkeypatch):
    # Fails if the registry's candidates (a weight started from the previous weight's iterates where that run
    # stopped) land elsewhere than apply (each weight from zero) by more than the stop's accuracy -- tuning would
    # score other images than apply makes (a dual carried in the wrong unit would throw PDHG back, and at the cap the
    # warm run would end elsewhere) -- or if no weight is started warm (then nothing is tested).
    sino, theta = _noisy(blocks)
    p = Projections(sino, theta, sino.shape[-1] / 2, None)
    runs = []
    solve = TVProblem.solve

    def counted(self, *args, **kwargs):
        out = solve(self, *args, **kwargs)
        runs.append((self.iterations, bool(kwargs.get("warm"))))
        return out

    monkeypatch.setattr(TVProblem, "solve", counted)
    grid = (0.01, 0.03, 0.1, 0.3)
    warm = dict(METHODS["tv-recon"].candidates(p, grid))
    warm_runs, runs[:] = list(runs), []
    for w in grid:
        cold = METHODS["tv-recon"].apply(p, w)
        assert _rel(warm[w], cold) < ACCURACY, (w, _rel(warm[w], cold))
    assert any(was_warm for _, was_warm in warm_runs), warm_runs


def test_poisson_weights_enter_the_data_term_and_only_their_shape_counts(blocks):
    # Fails if `incident` is ignored (no change from least squares) or sets the weight's scale (I0 ten times
    # larger would then change the image): the weights are divided by their mean.
    _, sino, theta = blocks
    sparse, th = 4 * sino[::6], theta[::6]  # thick: exp(-p) varies over the rays
    plain = tv_reconstruct(sparse, th, weight=0.03, n_iter=60, tol=None)
    w1 = tv_reconstruct(sparse, th, weight=0.03, n_iter=60, incident=1e3, tol=None)
    w10 = tv_reconstruct(sparse, th, weight=0.03, n_iter=60, incident=1e4, tol=None)
    assert np.abs(w1 - plain).max() > 1e-3 * np.abs(plain).max()
    np.testing.assert_allclose(w10, w1, rtol=1e-3, atol=1e-4 * float(np.abs(w1).max()))
    assert misfit(w1, sparse, th, incident=1e3) != misfit(w1, sparse, th)


def test_the_projector_runs_a_stack_as_one_product_and_its_transpose_is_its_adjoint():
    # Fails if the stack is projected slice by slice (one product per slice) or if the back-projection is not the
    # projection's adjoint over the stack (a transpose or a reshape wrong).
    from simulate.sirt_matrix import _PROJECTOR_ROWS

    theta = angles(20)
    n, slices = 24, 3
    proj = StackProjector(_PROJECTOR_ROWS.matrix(theta, n, n), slices, theta.size, n, n)
    calls = []
    product = proj._product
    proj._product = lambda m, c: calls.append(c.shape) or product(m, c)
    rng = np.random.default_rng(0)
    x = rng.random((slices, n, n), dtype=np.float32)
    y = rng.random((theta.size, slices, n), dtype=np.float32)
    ax, aty = proj(x), proj.T(y)
    assert calls == [(n * n, slices), (theta.size * n, slices)]
    assert ax.shape == (theta.size, slices, n) and aty.shape == (slices, n, n)
    assert np.vdot(ax, y) == pytest.approx(np.vdot(x, aty), rel=1e-5)
    np.testing.assert_allclose(ax, project(x, theta), rtol=1e-4, atol=1e-5)  # astra's own projection


def test_corrct_gradient_padding():
    # The TV term pads with zeros because its divergence is then the gradient's adjoint. corrct 3.0's default edge
    # padding is not (the second assertion); if it starts failing, corrct has fixed that and its default would do.
    from corrct import operators

    rng = np.random.default_rng(0)
    x, q = rng.standard_normal((1, 9, 9)), rng.standard_normal((2, 1, 9, 9))
    zero = operators.TransformGradient(x.shape, axes=(-2, -1), pad_mode="constant")
    assert np.vdot(zero(x), q) == pytest.approx(np.vdot(x, zero.T(q)))
    edge = operators.TransformGradient(x.shape, axes=(-2, -1), pad_mode="edge")
    assert np.vdot(edge(x), q) != pytest.approx(np.vdot(x, edge.T(q)))


@pytest.mark.parametrize("kwargs, message", [
    (dict(weight=-0.1), "TV weight must be a finite number >= 0, got -0.1"),
    (dict(weight=float("nan")), "TV weight must be a finite number >= 0"),
    (dict(weight="strong"), "TV weight must be a number >= 0, got 'strong'"),
    (dict(weight=0.1, n_iter=0), "n_iter must be an integer >= 1"),
    (dict(weight=0.1, incident=0.0), "incident .* must be finite and > 0"),
    (dict(weight=0.1, x0=np.zeros((1, 8, 8))), r"x0 has shape \(1, 8, 8\), expected \(1, 16, 16\)"),
    (dict(weight=0.1, center=40.0), "rotation centre 40.0 lies outside the detector of 16 pixels"),
])
def test_bad_input_is_a_clear_value_error(kwargs, message):
    # Fails if a bad argument runs on (a negative weight rewards variation) or fails deep inside corrct.
    theta = angles(10)
    sino = np.ones((10, 1, 16), np.float32)
    with pytest.raises(ValueError, match=message):
        tv_reconstruct(sino, theta, **kwargs)


def test_angles_that_do_not_match_the_projections_are_a_value_error():
    # Fails if a wrong angle list is silently truncated or broadcast.
    sino = np.ones((10, 1, 16), np.float32)
    with pytest.raises(ValueError, match="need one angle per projection: 9 angles for 10 projections"):
        tv_reconstruct(sino, angles(10)[:9], weight=0.1)


def test_a_matrix_that_does_not_fit_is_a_value_error(monkeypatch):
    # Fails if tv_reconstruct falls back to corrct's own projector, which without CUDA is scikit-image's radon,
    # another geometry: it must refuse instead.
    monkeypatch.setattr(tvrecon, "matrix_fits", lambda *a: False)
    with pytest.raises(ValueError, match="does not fit simulate.sirt_matrix.MATRIX_MAX_GIB"):
        tv_reconstruct(np.ones((10, 1, 16), np.float32), angles(10), weight=0.1)


# ----------------------------------------------------------------------------- BM3D told the noise's spectrum

def test_fbp_noise_psd_is_a_ramp_normalised_to_unit_variance():
    # Fails if the spectrum were flat or falling (white or smoothed noise), or normalised otherwise than bm3d's
    # convention for unit variance (mean rows * cols).
    shape = (64, 48)
    psd = fbp_noise_psd(shape, model="ramp")
    assert psd.shape == shape and (psd >= 0).all()
    assert psd.mean() == pytest.approx(64 * 48) and psd.sum() == pytest.approx((64 * 48) ** 2)
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(64), np.fft.fftfreq(48), indexing="ij"))
    low, high = psd[(f > 0) & (f < 0.15)].mean(), psd[(f > 0.35) & (f <= 0.5)].mean()
    assert high > 3 * low
    assert psd[f > 0.5].sum() == 0 and psd[0, 0] == 0
    for name in ("shepp-logan", "cosine", "hamming", "hann"):  # a window takes power from the high frequencies
        other = fbp_noise_psd(shape, name, model="ramp")
        assert other.mean() == pytest.approx(64 * 48)
        assert other[(f > 0.35) & (f <= 0.5)].mean() < high


def test_fbp_noise_psd_follows_the_measured_noise_of_astras_fbp():
    # Fails if astra's FBP of white projection noise is not ramp-coloured as the model says: its power rises with
    # frequency, as the model's, up to where astra's interpolation flattens it (the model leaves that out), and the
    # outer part of the Nyquist disc carries over 1.5 times the power per frequency of its inner part (white: 1).
    from scipy.stats import spearmanr

    n = 64
    noise = np.random.default_rng(0).standard_normal((90, 16, n)).astype(np.float32)
    rec = fbp(noise, angles(90), backend="astra")
    measured = (np.abs(np.fft.fft2(rec)) ** 2).mean(axis=0)
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(n), np.fft.fftfreq(n), indexing="ij"))
    ring = np.digitize(f, np.linspace(0.02, 0.3, 8))
    meas = [measured[ring == k].mean() for k in range(1, 8)]
    model = [fbp_noise_psd((n, n), model="ramp")[ring == k].mean() for k in range(1, 8)]
    assert spearmanr(meas, model)[0] > 0.95
    assert measured[(f >= 0.3) & (f <= 0.5)].mean() > 1.5 * measured[f < 0.15].mean()


def test_the_measured_spectrum_is_astras_fbp_noise_seeded_and_normalised():
    # Fails if the default model were not a measurement of astra's FBP (it would miss the power astra's
    # interpolation puts past the Nyquist disc, which the ramp model has none of), if it changed from call to call
    # (unseeded: BM3D's result would too), or were normalised otherwise than the ramp model.
    shape = (48, 40)
    measured, again = fbp_noise_psd(shape), fbp_noise_psd(shape)
    np.testing.assert_array_equal(measured, again)
    assert measured.mean() == pytest.approx(48 * 40)
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(48), np.fft.fftfreq(40), indexing="ij"))
    assert measured[f > 0.55].mean() > 0.05 * measured.mean()
    assert fbp_noise_psd(shape, model="ramp")[f > 0.55].sum() == 0
    assert measured[(f > 0.3) & (f < 0.45)].mean() > 2 * measured[(f > 0) & (f < 0.1)].mean()  # white: 1
    with pytest.raises(ValueError, match="noise spectrum model"):
        fbp_noise_psd(shape, model="white")


def test_bm3d_is_given_a_coloured_spectrum_for_ramp_noise_and_a_scalar_for_white(monkeypatch):
    # Fails if the ramp variant passes BM3D a scalar (white noise again) or a spectrum of another level than
    # sigma's, or if the white variant changed.
    import bm3d

    seen = []
    monkeypatch.setattr(bm3d, "bm3d", lambda z, sigma_psd, profile="np": seen.append(sigma_psd) or z)
    vol = np.random.default_rng(0).random((2, 32, 40)).astype(np.float32)
    METHODS["fbp-bm3d"].apply(vol, 0.1)
    assert len(seen) == 2 and all(isinstance(s, float) and s == 0.1 for s in seen)
    seen.clear()
    METHODS["fbp-bm3d-psd"].apply(vol, 0.1)
    assert len(seen) == 2
    for s in seen:
        assert isinstance(s, np.ndarray) and s.shape == (32, 40) and s.std() > 0.2 * s.mean()  # white: 0
        np.testing.assert_allclose(s, 0.1 ** 2 * fbp_noise_psd((32, 40)))
        assert s.mean() == pytest.approx(0.1 ** 2 * 32 * 40)


def test_bm3d_runs_on_a_coloured_spectrum(monkeypatch):
    # Fails if the bm3d package cannot take a 2-D spectrum here (bm4d 4.2.5 calls numpy.trapz, gone in numpy 2.4)
    # or if the coloured variant does not denoise.
    rng = np.random.default_rng(1)
    clean = np.zeros((1, 64, 64), np.float32)
    clean[:, 16:48, 20:44] = 1.0
    noisy = clean + 0.1 * rng.standard_normal(clean.shape).astype(np.float32)
    out = bm3d_denoise(noisy, sigma=0.1, psd=fbp_noise_psd((64, 64)))
    assert out.shape == noisy.shape and np.isfinite(out).all()
    assert np.abs(out - clean).mean() < np.abs(noisy - clean).mean()
    assert not hasattr(np, "trapz") or np.trapz is not None  # numpy itself is left as it was
    with pytest.raises(ValueError, match=r"noise PSD has shape \(32, 32\), a slice \(64, 64\)"):
        bm3d_denoise(noisy, sigma=0.1, psd=fbp_noise_psd((32, 32)))


# ----------------------------------------------------------------------------- the registry entries

def test_the_registry_entries_of_the_new_baselines():
    # Fails if an entry's table label, parameter, input or grid changed, or the iteration count of tv-recon and
    # its function's default part ways.
    tv, ramp, white = METHODS["tv-recon"], METHODS["fbp-bm3d-psd"], METHODS["fbp-bm3d"]
    assert (tv.label, tv.parameter, tv.symbol, tv.input, tv.per_value) == \
        ("TV-PDHG", "weight", "λ", "projections", True)
    assert tv.grid[0] < 0.001 and tv.grid[-1] >= 1.0 and list(tv.grid) == sorted(tv.grid)
    assert (ramp.label, ramp.parameter, ramp.symbol, ramp.input, ramp.grid) == \
        ("FBP+BM3D (ramp)", "sigma", "σ", "fbp", white.grid)
    assert ramp.proxy is not None
    assert TV_RECON_ITER == tvrecon.DEFAULT_ITER and TV_RECON_TOL == tvrecon.DEFAULT_TOL
    assert tv.timing_name.format(label=tv.label, value="0.01") == "TV-PDHG, tuned"


def test_tv_recon_entry_is_tv_reconstruct_to_the_stop_under_the_cap(monkeypatch):
    # Fails if the registry's function dropped the centre, the grid size, the iteration cap or the stop.
    seen = {}
    monkeypatch.setattr(tvrecon, "tv_reconstruct", lambda *a, **k: seen.update(k) or np.zeros((1, 20, 20)))
    p = Projections(np.zeros((12, 1, 24), np.float32), angles(12), 12.5, 20)
    METHODS["tv-recon"].apply(p, 0.03, threads=2)
    assert seen == dict(weight=0.03, n_iter=TV_RECON_ITER, tol=TV_RECON_TOL, center=12.5, size=20, threads=2)
    assert classical.TV_RECON_ITER == TV_RECON_ITER and reconstruct.FILTERS[0] == "ram-lak"
