"""Metrics: the object mask keeps the sample and drops the empty background, and the two regions differ."""

import numpy as np
import pytest

from analysis.metrics import compare_volumes, masked_ssim, object_mask, object_threshold, reference_range
from simulate.plumbing import circular_mask


def _disc_phantom(n=96, radius=24, pore=6):
    """A disc of attenuation 1 with a round empty pore inside, centred in an n x n field."""
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
    img = (yy ** 2 + xx ** 2 < radius ** 2).astype(float)
    img[(yy - 8) ** 2 + xx ** 2 < pore ** 2] = 0.0
    return img, yy, xx


def test_object_mask_excludes_the_background_of_a_disc():
    ref, yy, xx = _disc_phantom()
    fov = circular_mask(ref.shape, margin=2)
    mask = object_mask(ref, fov)
    r = np.hypot(yy, xx)
    assert mask[r < 23].all()                      # the disc, its pore included (holes are filled)
    assert mask[(yy - 8) ** 2 + xx ** 2 < 36].all()
    assert not mask[(r > 24 + 3 + 2) & fov].any()  # background beyond the disc and the 3-pixel dilation
    assert mask[(r > 24) & (r < 26)].mean() > 0.9  # the rim is counted
    assert not mask[~fov].any()


def test_object_mask_of_an_empty_slice_raises():
    fov = circular_mask((32, 32))
    with pytest.raises(ValueError, match="no object"):
        object_mask(np.zeros((32, 32)), fov, threshold=0.5)


def test_flattening_the_background_raises_fov_ssim_but_not_object_ssim():
    ref, _, _ = _disc_phantom()
    rng = np.random.default_rng(0)
    noisy = ref + rng.normal(0, 0.3, ref.shape)
    fov = circular_mask(ref.shape, margin=2)
    obj = object_mask(ref, fov)
    flattened = np.where(obj, noisy, ref)          # a "method" that only cleans the empty background
    dr = reference_range(ref, fov)
    gain_fov = masked_ssim(flattened, ref, fov, data_range=dr) - masked_ssim(noisy, ref, fov, data_range=dr)
    gain_obj = masked_ssim(flattened, ref, obj, data_range=dr) - masked_ssim(noisy, ref, obj, data_range=dr)
    assert gain_fov > 0.1
    assert abs(gain_obj) < 0.03


def test_compare_volumes_reports_both_regions_with_one_threshold_per_volume():
    ref, _, _ = _disc_phantom()
    vol_ref = np.stack([ref, 0.8 * ref, np.zeros_like(ref)])   # the last slice has no sample
    vol = vol_ref + np.random.default_rng(1).normal(0, 0.05, vol_ref.shape)
    rows = compare_volumes(vol, vol_ref)
    assert [r["slice"] for r in rows] == [0, 1, 2]
    fov = circular_mask(ref.shape, margin=2)
    assert object_threshold(vol_ref, fov) == pytest.approx(0.5, abs=0.01)  # half the volume's 99th percentile
    # one threshold for the volume: the dimmer copy of the same sample keeps a slightly smaller region
    # (a per-slice threshold would give both the same)
    assert rows[0]["object_fraction"] > rows[1]["object_fraction"] > 0.8 * rows[0]["object_fraction"]
    assert 0.2 < rows[0]["object_fraction"] < 0.6
    assert np.isnan(rows[2]["ssim_object"]) and rows[2]["object_fraction"] == 0.0
    assert all(np.isfinite(r["ssim"]) and np.isfinite(r["psnr"]) for r in rows)
