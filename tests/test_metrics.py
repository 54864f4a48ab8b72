"""Metrics: the object mask keeps the sample and drops the empty background, and the two regions differ."""

import numpy as np
import pytest
from scipy import ndimage

from simulate.scores import compare_volumes, masked_ssim, object_mask, object_threshold, reference_range
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


# ----------------------------------------------------------------------------- the command, with quality columns

# the per-slice columns the command wrote before analysis.quality existed: names, order and values stay
OLD_COLUMNS = ["dataset", "source", "dose", "dose_mode", "dose_level", "method", "model", "vgg_weights", "tuning",
               "backend", "seed", "versions", "slice", "ssim", "psnr", "ssim_object", "psnr_object",
               "object_fraction", "data_range", "file"]

# spheres x, y, z, r (pixels; x along rows, y along columns from the centre, z from the bottom of slice 0)
SPHERES = np.array([[-20.0, -18, 2.0, 9], [-18, 14, 2.5, 8], [14, -20, 1.5, 8], [16, 16, 2.0, 7.5],
                    [0, 0, 2.0, 3.0], [2, -32, 2.0, 3.0], [-34, 0, 2.0, 2.5], [30, 0, 2.0, 3.5]])


def _write_volume(path, volume, **attrs):
    from simulate.io import write_arrays

    write_arrays(path, {"/recon": volume.astype(np.float32), "/slices": np.arange(len(volume), dtype=np.int32)},
                 {"dataset": "tiny", "source": "test", "dose": "x", **attrs})
    return path


def _tiny_study(tmp_path, n=96, slices=4, seed=0):
    """A rendered foam phantom with a few pores, its reference, a blurred and a noisy reconstruction."""
    from analysis.quality import render_circles
    from simulate.io import write_arrays
    from simulate.phantoms import pore_sections

    rr, cc = np.mgrid[:n, :n] - (n - 1) / 2
    cylinder = np.hypot(rr, cc) < 0.45 * n
    phantom = np.stack([np.where(render_circles((n, n), pore_sections(SPHERES, k + 0.5)) > 0, 0.0, 1.0) * cylinder
                        for k in range(slices)]).astype(np.float32)
    write_arrays(tmp_path / "phantom.h5", {"/phantom": phantom, "/pores": SPHERES})
    ref = ndimage.gaussian_filter(0.01 * phantom, (0, 0.6, 0.6))
    rng = np.random.default_rng(seed)
    paths = {"reference": _write_volume(tmp_path / "ref.h5", ref, method="fbp"),
             "copy": _write_volume(tmp_path / "copy.h5", ref, method="copy"),
             "blurred": _write_volume(tmp_path / "blur.h5", ndimage.gaussian_filter(ref, (0, 2, 2)), method="blur"),
             "noisy": _write_volume(tmp_path / "noisy.h5", ref + rng.normal(0, 0.002, ref.shape), method="noisy")}
    return phantom, ref, paths


def _run(tmp_path, paths, *extra):
    import pandas as pd

    from analysis.metrics import main

    out = tmp_path / f"out{len(list(tmp_path.glob('out*.csv')))}.csv"
    main([str(out), "--reference", str(paths["reference"]), "--slices", "2", *extra,
          str(paths["copy"]), str(paths["blurred"]), str(paths["noisy"])])
    return pd.read_csv(out)


def test_metrics_command_adds_quality_columns_and_keeps_the_old_ones(tmp_path):
    from analysis.metrics import TRUTH_METRICS
    from analysis.quality import COLUMNS, white_mean_frequency

    _, ref, paths = _tiny_study(tmp_path)
    truth = [f"{m}_truth" for m in TRUTH_METRICS]
    table = _run(tmp_path, paths, "--phantom", str(tmp_path / "phantom.h5"))
    assert list(table.columns) == OLD_COLUMNS + list(COLUMNS) + truth
    assert table["slice"].tolist() == [1, 2] * 3 and table[truth].isna().all().all()  # no --truth: NaN
    # the old columns: the same values as before, and the same as without --phantom
    plain = _run(tmp_path, paths)
    assert list(plain.columns) == OLD_COLUMNS + list(COLUMNS) + truth
    assert table[OLD_COLUMNS].equals(plain[OLD_COLUMNS])
    for method, path in (("copy", "copy"), ("blur", "blurred")):
        from simulate.io import read_array

        rows = compare_volumes(read_array(paths[path], "/recon")[1:3], ref[1:3].astype(np.float32))
        got = table[table["method"] == method]
        assert got["ssim"].tolist() == [r["ssim"] for r in rows]
        assert got["psnr_object"].tolist() == [r["psnr_object"] for r in rows]

    by = table.groupby("method").mean(numeric_only=True)
    # the reference itself: perfect on every pore measure
    assert (by.loc["copy", ["pore_detection", "pore_detection_small"]] == 1).all()
    assert by.loc["copy", "false_pores"] == 0 and by.loc["copy", "porosity_error"] == pytest.approx(0, abs=0.003)
    assert by.loc["copy", "frc_cutoff"] == 0.5 and by.loc["copy", "edge_width"] == by.loc["copy", "edge_width_ref"]
    assert (table["n_edges"] >= 3).all() and (table["nps_rois"] > 0).all()
    # blur widens the edges (sigma 2 adds about 2.56 x 2 pixels) and loses small pores
    assert by.loc["blur", "edge_width"] > by.loc["copy", "edge_width"] + 3
    assert by.loc["blur", "pore_detection_small"] < 1
    # noise lowers the FRC cutoff and raises the noise
    assert by.loc["noisy", "frc_cutoff"] < 0.45
    assert by.loc["noisy", "noise_rel"] == pytest.approx(0.2, rel=0.2)   # noise 0.002 on a matrix of 0.01
    assert by.loc["noisy", "nps_mean_freq"] == pytest.approx(white_mean_frequency(), rel=0.1)
    # without a phantom: no edge widths, pores judged against the reference's segmentation
    assert plain["edge_width"].isna().all() and (plain["n_edges"] == 0).all()
    assert (plain.loc[plain["method"] == "copy", "pore_detection"] == 1).all()


def _expect_input_error(capsys, argv, out, *needles):
    from analysis.metrics import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    for needle in needles:
        assert needle in err, (needle, err)
    assert not out.exists() and not list(out.parent.glob(f".{out.stem}.*")), "output or temporary file left"


def test_metrics_command_rejects_a_phantom_without_pores(tmp_path, capsys):
    from simulate.io import write_arrays

    phantom, _, paths = _tiny_study(tmp_path)
    bad = tmp_path / "nopores.h5"
    write_arrays(bad, {"/phantom": phantom})
    out = tmp_path / "out.csv"
    _expect_input_error(capsys, [str(out), "--reference", str(paths["reference"]), "--phantom", str(bad),
                                 str(paths["copy"])], out, "nopores.h5", "missing dataset '/pores'")


def test_metrics_command_rejects_a_phantom_of_another_size_or_height(tmp_path, capsys):
    from simulate.io import write_arrays

    phantom, _, paths = _tiny_study(tmp_path)
    out = tmp_path / "out.csv"
    small = tmp_path / "small.h5"
    write_arrays(small, {"/phantom": phantom[:, :64, :64], "/pores": SPHERES})
    _expect_input_error(capsys, [str(out), "--reference", str(paths["reference"]), "--phantom", str(small),
                                 str(paths["copy"])], out, "small.h5", "(64, 64)", "(96, 96)")
    short = tmp_path / "short.h5"
    write_arrays(short, {"/phantom": phantom[:2], "/pores": SPHERES})
    _expect_input_error(capsys, [str(out), "--reference", str(paths["reference"]), "--phantom", str(short),
                                 "--slices", "0", str(paths["copy"])], out, "short.h5", "lacks evaluated slices [2, 3]")
    flat = tmp_path / "flat.h5"
    write_arrays(flat, {"/phantom": phantom, "/pores": SPHERES[:, :3]})
    _expect_input_error(capsys, [str(out), "--reference", str(paths["reference"]), "--phantom", str(flat),
                                 str(paths["copy"])], out, "flat.h5", "expected (n, 4)")


def test_a_truth_referenced_metric_of_a_perfect_image_is_perfect(tmp_path):
    import pandas as pd

    from analysis.metrics import main

    phantom, ref, paths = _tiny_study(tmp_path)
    scale = 0.01  # the reference's attenuation per unit of phantom
    paths["reference"] = _write_volume(tmp_path / "ref_scaled.h5", ref, method="fbp", attenuation_scale=scale)
    perfect = _write_volume(tmp_path / "perfect.h5", phantom * scale, method="perfect")
    out = tmp_path / "truth.csv"
    main([str(out), "--reference", str(paths["reference"]), "--slices", "2", "--truth", str(tmp_path / "phantom.h5"),
          str(perfect), str(paths["reference"]), str(paths["blurred"])])
    t = pd.read_csv(out).set_index("method")
    # (stored in float32, as every volume is: equal to the truth to its precision)
    assert np.allclose(t.loc["perfect", "ssim_truth"], 1.0, atol=1e-6) and (t.loc["perfect", "psnr_truth"] > 100).all()
    # the full-dose reference is not the truth: blurred, it scores below a perfect image against it
    assert (t.loc["fbp", "ssim_truth"] < 0.99).all() and np.allclose(t.loc["fbp", "ssim"], 1.0)
    assert (t.loc["blur", "ssim_truth"].to_numpy() < t.loc["fbp", "ssim_truth"].to_numpy()).all()
    unscaled = _write_volume(tmp_path / "ref_plain.h5", ref, method="fbp")  # no attenuation_scale: refused
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path / "x.csv"), "--reference", str(unscaled), "--truth", str(tmp_path / "phantom.h5"),
              str(perfect)])
    assert exc.value.code == 2 and not (tmp_path / "x.csv").exists()
