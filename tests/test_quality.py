"""Quality measures beyond SSIM/PSNR, each on a case whose answer is known.

Noise texture: white noise has a flat spectrum at the white-noise mean frequency, blur lowers it, detrending
removes offsets and ramps. Resolution: a Gaussian blur of sigma widens an edge by 2.563 sigma (10-90 %), the
FRC of an image with itself is 1 and noise lowers its cutoff. Pores: a perfect image finds every pore and
invents none; filling one pore or adding one blob changes the counts by exactly one.
"""


import numpy as np
import pytest
from scipy import ndimage

from analysis.quality import (COLUMNS, SMALL_PORE_RADIUS, detect_pores, detect_reference_pores,
                              detection_rate_by_radius, edge_width, frc, frc_cutoff, mean_frequency,
                              noise_power_spectrum, nps_frequency_ratio, pore_size_distribution, pore_threshold,
                              porosity, quality_context, render_circles, segment_pores, slice_quality,
                              uniform_region, white_mean_frequency)
from simulate.plumbing import circular_mask

Z = 1.2815516  # standard normal 90 % quantile: a Gaussian edge rises 10 -> 90 % over 2 Z sigma = 2.563 sigma


def _disc_image(n, radius, *, inside=1.0, outside=0.0):
    rr, cc = np.mgrid[:n, :n] - (n - 1) / 2
    return np.where(np.hypot(rr, cc) < radius, inside, outside)


# Pores of the test phantom: x (rows), y (cols), r in pixels from the centre; radii span the small bound.
PORES = np.array([[-24.0, -24, 8], [-24, 6, 6], [-24, 28, 3], [4, -30, 2.5], [4, 0, 7], [4, 28, 1.8],
                  [30, -12, 5], [30, 14, 3.5]])


def _foam(n=96, cylinder=44.0):
    """A matrix disc of value 1 with the pores of ``PORES`` rendered at 0; and its pore search region."""
    img = _disc_image(n, cylinder)
    img[render_circles((n, n), PORES) > 0] = 0.0
    region = _disc_image(n, cylinder - 2) > 0
    return img, region


# ----------------------------------------------------------------------------- noise power spectrum

def test_white_noise_has_a_flat_spectrum_at_the_white_mean_frequency(rng):
    sigma = 3.0
    noise = rng.normal(0.0, sigma, (256, 256))
    s = noise_power_spectrum(noise, np.ones(noise.shape, bool), roi=16, detrend="mean")
    # the expected NPS of white noise is sigma^2 at every frequency (pixel size 1); removing the mean only
    # touches the DC ring, which is not reported
    assert s.n_rois == 31 * 31
    np.testing.assert_allclose(s.nps, sigma ** 2, rtol=0.08)
    assert s.variance == pytest.approx(sigma ** 2 * 255 / 256, rel=0.03)
    assert mean_frequency(s.freqs, s.nps) == pytest.approx(white_mean_frequency(16), rel=0.02)
    assert white_mean_frequency(16) == pytest.approx(np.mean(np.arange(1, 9) / 16))
    # a plane fit takes 3 of 256 degrees of freedom, mostly from the lowest ring; the rest stays flat
    p = noise_power_spectrum(noise, np.ones(noise.shape, bool), roi=16, detrend="plane")
    np.testing.assert_allclose(p.nps[1:], sigma ** 2, rtol=0.08)
    assert mean_frequency(p.freqs, p.nps) == pytest.approx(white_mean_frequency(16), rel=0.03)


def test_blurred_noise_has_a_lower_mean_frequency(rng):
    noise = rng.normal(size=(256, 256))
    region = np.ones(noise.shape, bool)
    freq = [mean_frequency(*noise_power_spectrum(ndimage.gaussian_filter(noise, s), region)[:2]) if s else
            mean_frequency(*noise_power_spectrum(noise, region)[:2]) for s in (0, 0.7, 1.5)]
    assert freq[0] > freq[1] + 0.05 > freq[2] + 0.1
    assert nps_frequency_ratio(ndimage.gaussian_filter(noise, 1.0), noise, region) < 0.7
    assert nps_frequency_ratio(noise, noise, region) == pytest.approx(1.0)


def test_detrending_removes_an_offset_and_a_ramp(rng):
    noise = rng.normal(size=(128, 128))
    region = np.ones(noise.shape, bool)
    base = noise_power_spectrum(noise, region, detrend="mean")
    shifted = noise_power_spectrum(noise + 100.0, region, detrend="mean")
    np.testing.assert_allclose(shifted.nps, base.nps, rtol=1e-6)
    assert shifted.mean == pytest.approx(base.mean + 100.0)
    ramp = 0.3 * np.mgrid[:128, :128][0]
    flat = noise_power_spectrum(noise, region, detrend="plane")
    np.testing.assert_allclose(noise_power_spectrum(noise + ramp, region, detrend="plane").nps, flat.nps,
                               rtol=1e-6)
    assert noise_power_spectrum(noise + ramp, region, detrend="mean").nps[0] > 10 * base.nps[0]
    with pytest.raises(ValueError, match="detrend"):
        noise_power_spectrum(noise, region, detrend="quadratic")


def test_rois_stay_inside_the_region_and_none_fitting_gives_nan(rng):
    noise = rng.normal(size=(64, 64))
    img = noise.copy()
    img[20:44, 20:44] += 50.0                      # a bright square that is not in the region
    region = np.ones(img.shape, bool)
    region[18:46, 18:46] = False
    inside = noise_power_spectrum(img, region, roi=8)
    assert inside.n_rois > 0
    assert inside.variance == pytest.approx(1.0, rel=0.2)   # the square never entered an ROI
    thin = np.zeros(img.shape, bool)
    thin[:, 30:40] = True                          # 10 pixels wide: no 16-pixel ROI fits
    none = noise_power_spectrum(img, thin, roi=16)
    assert none.n_rois == 0 and np.isnan(none.nps).all() and np.isnan(none.variance)
    assert np.isnan(mean_frequency(none.freqs, none.nps))


def test_uniform_region_keeps_the_matrix_away_from_pores_and_dense_grains():
    img, region = _foam()
    img[60:63, 60:63] = 4.0                        # a dense grain in the matrix
    uniform = uniform_region(img, np.ones(img.shape, bool), mask=region, erode=3)
    rr, cc = np.mgrid[:96, :96] - 47.5
    dist_to_pore = np.min([np.hypot(rr - x, cc - y) - r for x, y, r in PORES], axis=0)
    assert uniform.any()
    assert not uniform[dist_to_pore < 2.5].any()   # 3 pixels from every pore pixel (pixel centres: 2.5 from the edge)
    assert not uniform[59:64, 59:64].any()         # nor near the grain
    assert not uniform[~region].any()


# ----------------------------------------------------------------------------- edges

def test_blur_widens_the_edge_as_a_gaussian_predicts():
    sharp = _disc_image(128, 40.0)
    circle = [[0.0, 0.0, 40.0]]
    w0 = edge_width(sharp, circle, half_width=14).width
    assert 0.5 < w0 < 1.2                           # a pixel-sampled step: about 0.8 pixel
    widths = {}
    for sigma in (1.0, 2.0, 3.0):
        e = edge_width(ndimage.gaussian_filter(sharp, sigma), circle, half_width=14)
        assert e.n_edges == 1
        widths[sigma] = e.width
        # the blur adds 2.563 sigma, in quadrature with the sampling's own width
        assert e.width == pytest.approx(np.hypot(2 * Z * sigma, w0), rel=0.05), (sigma, e.width)
    assert w0 < widths[1.0] < widths[2.0] < widths[3.0]


def test_edge_width_ignores_polarity_and_skips_small_or_crowded_or_outside_circles():
    pore = _disc_image(96, 10.0, inside=0.0, outside=1.0)   # a dark pore in a bright matrix
    blurred = ndimage.gaussian_filter(pore, 1.5)
    a = edge_width(blurred, [[0.0, 0.0, 10.0]])
    b = edge_width(1.0 - blurred, [[0.0, 0.0, 10.0]])
    assert a.width == pytest.approx(b.width) and a.width == pytest.approx(2 * Z * 1.5, rel=0.1)
    assert a.offsets[0] == -6.0 and a.offsets[-1] == 6.0
    # too small: not profiled
    assert edge_width(blurred, [[0.0, 0.0, 10.0], [30.0, 30.0, 3.0]]).n_edges == 1
    # a neighbour 2 pixels away on one side: its side of the circle is dropped, the rest still counts
    crowded = edge_width(blurred, [[0.0, 0.0, 10.0], [0.0, 16.0, 4.0]])
    assert crowded.n_edges == 1 and crowded.width == pytest.approx(a.width, rel=0.05)
    # outside the mask: nothing left
    mask = np.zeros(pore.shape, bool)
    none = edge_width(blurred, [[0.0, 0.0, 10.0]], mask=mask)
    assert none.n_edges == 0 and np.isnan(none.width) and np.isnan(none.esf).all()


# ----------------------------------------------------------------------------- Fourier ring correlation

def test_frc_of_an_image_with_itself_is_one_and_noise_lowers_the_cutoff(rng):
    img, _ = _foam(128, 60.0)
    img = ndimage.gaussian_filter(img, 1.0)
    fov = circular_mask(img.shape, margin=2)
    f, c = frc(img, img, fov=fov)
    np.testing.assert_allclose(c, 1.0)
    assert frc_cutoff(f, c) == 0.5
    cut = [frc_cutoff(*frc(img + rng.normal(0, s, img.shape), img, fov=fov)) for s in (0.05, 0.2, 0.5)]
    assert 0.5 >= cut[0] > cut[1] > cut[2] > 0, cut
    assert frc_cutoff(*frc(ndimage.gaussian_filter(img, 2.0), img, fov=fov)) < 0.5


def test_frc_does_not_see_the_corners_outside_the_field_of_view(rng):
    img, _ = _foam(128, 60.0)
    fov = circular_mask(img.shape, margin=2)
    garbage = np.where(fov, img, rng.normal(0, 5.0, img.shape))   # what astra leaves in the corners
    assert frc_cutoff(*frc(garbage, img, fov=fov)) == 0.5
    assert frc_cutoff(*frc(garbage, img)) < 0.5


def test_frc_cutoff_interpolates_and_saturates():
    f = np.array([0.1, 0.2, 0.3, 0.4])
    assert frc_cutoff(f, [0.9, 0.7, 0.3, 0.1]) == pytest.approx(0.25)
    assert frc_cutoff(f, [0.9, 0.7, 0.3, 0.1], threshold=1 / 7) == pytest.approx(0.3 + 0.1 * (0.3 - 1 / 7) / 0.2)
    assert frc_cutoff(f, [0.9, 0.9, 0.9, 0.9]) == 0.4
    assert frc_cutoff(f, [0.2, 0.9, 0.9, 0.9]) == 0.1


# ----------------------------------------------------------------------------- pores

def test_perfect_image_finds_every_pore_and_invents_none():
    img, region = _foam()
    seg = segment_pores(img, region)
    d = detect_pores(seg, PORES, mask=region)
    assert len(d.radius) == len(PORES) and d.detected.all() and d.false_pores == 0
    truth = render_circles(img.shape, PORES) > 0
    assert porosity(seg, region) == pytest.approx(truth[region].sum() / region.sum())
    # the radius distribution: equivalent radii of the digital discs, close to the true radii
    np.testing.assert_allclose(pore_size_distribution(seg), np.sort(PORES[:, 2])[::-1], atol=0.35)


def test_filling_a_pore_lowers_the_detection_rate_by_one_pore():
    img, region = _foam()
    labels = render_circles(img.shape, PORES)
    filled = img.copy()
    filled[labels == 3] = 1.0                      # the pore of radius 3 is gone
    d = detect_pores(segment_pores(filled, region), PORES, mask=region)
    assert d.detected.mean() == pytest.approx(1 - 1 / len(PORES))
    assert d.detected.tolist() == [True, True, False] + [True] * 5
    bins, rate, count = detection_rate_by_radius(d.radius, d.detected, bins=[0, SMALL_PORE_RADIUS, np.inf])
    small = PORES[:, 2] < SMALL_PORE_RADIUS
    assert count.tolist() == [small.sum(), (~small).sum()]
    assert rate.tolist() == [1 - 1 / small.sum(), 1.0]


def test_a_spurious_dark_blob_is_one_false_pore():
    img, region = _foam()
    blob = img.copy()
    blob[60:63, 70:73] = 0.0                       # 9 dark pixels in the matrix, far from every pore
    d = detect_pores(segment_pores(blob, region), PORES, mask=region)
    assert d.detected.all() and d.false_pores == 1
    speck = img.copy()
    speck[60, 70] = speck[62, 72] = 0.0            # two isolated pixels: below the smallest pore kept
    assert detect_pores(segment_pores(speck, region), PORES, mask=region).false_pores == 0


def test_a_fragment_of_a_pore_is_not_a_false_pore_and_a_merged_blob_still_finds_both():
    img, region = _foam()
    pores = np.array([[0.0, -6, 4], [0.0, 6, 4]])
    seg = np.zeros(img.shape, bool)
    seg[render_circles(img.shape, pores) == 1] = True
    seg[46:50, 52:54] = True                       # a part of the second pore that misses its centre
    d = detect_pores(seg, pores)
    assert d.detected.tolist() == [True, False] and d.false_pores == 0
    merged = ndimage.binary_dilation(render_circles(img.shape, pores) > 0, iterations=3)
    assert detect_pores(merged, pores).detected.all()


def test_half_median_rule_ignores_dense_grains_where_otsu_does_not(rng):
    img, region = _foam()
    img = img + rng.normal(0, 0.05, img.shape)     # a matrix with some texture, as the shale's
    img[render_circles(img.shape, [[-5.0, 30, 2.5], [20, -30, 2.5], [-10, 14, 2]]) > 0] = 6.0   # dense grains
    assert pore_threshold(img, region) == pytest.approx(0.5, abs=0.01)
    seg = segment_pores(img, region)
    d = detect_pores(seg, PORES, mask=region)
    assert d.detected.all() and d.false_pores == 0
    assert porosity(seg, region) == pytest.approx(0.117, abs=0.005)     # 648 pore pixels of 5544
    # Otsu separates the grains (1 % of the pixels, 6x the matrix) from everything else: its threshold lies
    # inside the matrix and half of the matrix becomes "pore"
    assert pore_threshold(img, region, rule="otsu") > 0.9
    assert porosity(segment_pores(img, region, rule="otsu"), region) > 0.3
    with pytest.raises(ValueError, match="rule"):
        pore_threshold(img, region, rule="mean")


def test_porosity_of_a_known_image():
    seg = np.zeros((40, 40), bool)
    seg[:10, :10] = True
    mask = np.ones((40, 40), bool)
    assert porosity(seg, mask) == 100 / 1600
    mask[20:] = False
    assert porosity(seg, mask) == 100 / 800
    assert np.isnan(porosity(seg, np.zeros_like(mask)))


def test_reference_pores_stand_in_for_a_phantom():
    img, region = _foam()
    ref_seg = segment_pores(img, region)
    d = detect_reference_pores(ref_seg, ref_seg)
    assert d.detected.all() and d.false_pores == 0 and len(d.radius) == len(PORES)
    less = ref_seg & (render_circles(img.shape, PORES) != 5)
    assert detect_reference_pores(less, ref_seg).detected.sum() == len(PORES) - 1


# ----------------------------------------------------------------------------- one slice, every column

def test_slice_quality_has_fixed_columns_and_perfect_scores_for_the_reference():
    img, region = _foam(128, 60.0)
    ref = ndimage.gaussian_filter(img, 0.7)
    fov = circular_mask(ref.shape, margin=2)
    for circles in (None, PORES):
        q = slice_quality(ref, ref, fov, circles=circles, object_mask=region)
        assert tuple(q) == COLUMNS and all(isinstance(v, float) for v in q.values())
        assert q["frc_cutoff"] == 0.5 and q["porosity_error"] == 0 and q["false_pores"] == 0
        assert q["pore_detection"] == 1 and q["pore_detection_small"] == 1
    assert q["edge_width"] == q["edge_width_ref"] and q["n_edges"] == 3   # the radii >= 6: 8, 6 and 7
    q = slice_quality(ref, ref, fov, object_mask=region)
    assert np.isnan(q["edge_width"]) and q["n_edges"] == 0
    assert q["n_pores"] == len(PORES)


def test_slice_quality_sees_noise_and_blur(rng):
    img, region = _foam(128, 60.0)
    ref = ndimage.gaussian_filter(img, 0.7) + rng.normal(0, 0.02, img.shape)   # a little noise to compare with
    fov = circular_mask(ref.shape, margin=2)
    ctx = quality_context(ref, fov, circles=PORES, object_mask=region)
    assert ctx.ref_nps.n_rois > 0
    noisy = slice_quality(ref + rng.normal(0, 0.2, ref.shape), None, None, context=ctx)
    blurred = slice_quality(ndimage.gaussian_filter(ref, 2.0), None, None, context=ctx)
    assert noisy["noise_power_ratio"] > 50 and noisy["noise_rel"] == pytest.approx(0.2, rel=0.25)
    assert noisy["frc_cutoff"] < 0.4
    assert noisy["nps_freq_ratio"] == pytest.approx(1.0, abs=0.1)              # white noise on white noise
    assert blurred["nps_freq_ratio"] < 0.6 and blurred["noise_power_ratio"] < 0.2
    assert blurred["edge_width"] > noisy["edge_width_ref"] + 3
    assert blurred["pore_detection_small"] < 1


def test_phantom_pores_land_on_the_reconstructed_pores(small_foam, small_sino):
    # the geometry convention end to end: /pores x along rows, y along columns, from the centre
    # ((n - 1) / 2), slice k at z = k + 0.5 -- on an FBP of the projected foam, not on a rendering
    from simulate.phantoms import place_pores, pore_sections
    from simulate.reconstruct import reconstruct

    spec, _ = small_foam
    data, theta, _ = small_sino
    rec = reconstruct(data, theta, "fbp")
    pores = place_pores(spec)
    fov = circular_mask(rec.shape, margin=2)
    for k in (2, 3):
        circles = pore_sections(pores, k + 0.5)
        q = slice_quality(rec[k], rec[k], fov, circles=circles)
        assert q["pore_detection"] > 0.9 and q["false_pores"] <= 1, q
        assert abs(q["porosity_error"]) < 0.02
        swapped = slice_quality(rec[k], rec[k], fov, circles=circles[:, [1, 0, 2]])   # x and y exchanged
        assert swapped["pore_detection"] < 0.6


def test_a_context_scores_many_images_as_scoring_each_alone_does(rng):
    """The reference is measured once (quality_context) and every image of the slice reuses it: the columns are
    those of scoring each image on its own. (Its speed is measured by the workflow's benchmark files, not here.)"""
    n = 256
    rr, cc = np.mgrid[:n, :n] - (n - 1) / 2
    circles = np.column_stack([rng.uniform(-90, 90, (150, 2)), rng.uniform(2, 12, 150)])
    circles = circles[np.hypot(circles[:, 0], circles[:, 1]) + circles[:, 2] < 110]
    img = (np.hypot(rr, cc) < 115).astype(float)
    img[render_circles((n, n), circles) > 0] = 0
    ref = ndimage.gaussian_filter(img, 0.8)
    fov = circular_mask(img.shape, margin=2)
    ctx = quality_context(ref, fov, circles=circles)
    for _ in range(2):
        noisy = ref + rng.normal(0, 0.1, ref.shape)
        shared = slice_quality(noisy, None, None, context=ctx)
        alone = slice_quality(noisy, ref, fov, circles=circles)
        assert shared.keys() == alone.keys()
        np.testing.assert_array_equal(np.array(list(shared.values())), np.array(list(alone.values())))