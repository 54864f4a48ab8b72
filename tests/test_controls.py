"""The positive control: a blur calibrated to cost a known SSIM, scored by the metrics command like any method."""

import json

import numpy as np
import pandas as pd
import pytest

from analysis.controls import calibrate_blur, degrade, main
from simulate.scores import compare_volumes
from simulate.io import read_array, read_attrs, write_arrays

TARGET = 0.02
RTOL = 0.02
# pores x, y (pixels from the centre) and radius; slice k shifts them by k % 5 pixels along x
PORES = [(-18, -16, 8), (-16, 14, 6), (14, -18, 7), (16, 16, 5), (0, 0, 3), (2, -30, 2.5), (-30, 2, 2), (28, 4, 3)]


def _phantom(n=96, slices=4):
    """A piecewise-constant sample: a disc of 0.01 (attenuation per pixel) with round pores of 0.002, in an empty
    field (a data range other than 1, so that a score with another range differs)."""
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
    vol = []
    for k in range(slices):
        img = np.where(np.hypot(yy, xx) < 0.42 * n, 0.01, 0.0)
        for x, y, r in PORES:
            img[np.hypot(yy - y, xx - x - k % 5) < r] = 0.002
        vol.append(img)
    return np.stack(vol).astype(np.float32)


def _noisy(ref, seed, sigma=0.03):  # sigma relative to the disc
    return (ref + np.random.default_rng(seed).normal(0, 0.01 * sigma, ref.shape)).astype(np.float32)


def _fov_ssim(images, reference, margin=2.0):
    return float(np.mean([r["ssim"] for r in compare_volumes(images, reference, fov_margin=margin)]))


@pytest.mark.parametrize("noise", [0.005, 0.03])  # 0.03: a little blur first raises the SSIM (drop < 0 at first)
def test_calibrated_blur_costs_the_target_ssim_as_the_metrics_score_it(noise):
    ref = _phantom()
    images = _noisy(ref, 0, noise)
    sigma = calibrate_blur(images, ref, 2.0, TARGET, rtol=RTOL)
    assert 0.1 < sigma < 4
    drop = _fov_ssim(images, ref) - _fov_ssim(degrade(images, sigma), ref)
    assert drop == pytest.approx(TARGET, abs=RTOL * TARGET)
    # a different margin is a different score, and a different sigma
    assert calibrate_blur(images, ref, 10.0, TARGET, rtol=RTOL) != sigma
    assert calibrate_blur(images, ref, 2.0, TARGET, rtol=RTOL) == sigma  # deterministic


def test_zero_target_is_no_blur_and_unreachable_or_negative_targets_raise():
    ref = _phantom()
    images = _noisy(ref, 1)
    assert calibrate_blur(images, ref, 2.0, 0.0) == 0.0
    assert np.array_equal(degrade(images, 0.0), images)
    stack = np.stack([images[0], np.zeros_like(images[0])])
    assert not degrade(stack, 2.0)[1].any()  # per slice: nothing leaks from one slice into the next
    with pytest.raises(ValueError, match="sigma 0.3 px lowers the mean SSIM by only"):
        calibrate_blur(images, ref, 2.0, TARGET, max_sigma=0.3)
    with pytest.raises(ValueError, match="less than the target 0.9"):
        calibrate_blur(images, ref, 2.0, 0.9)
    with pytest.raises(ValueError, match=">= 0"):
        calibrate_blur(images, ref, 2.0, -0.01)


def _study(tmp_path, n=96):
    """A reference of 10 slices (detector rows 100..109) and two seeds' enhanced volumes of its central 6."""
    ref = _phantom(n, slices=10)
    idx = np.arange(100, 110)
    write_arrays(tmp_path / "ref.h5", {"/recon": ref, "/slices": idx.astype(np.int32)},
                 {"dataset": "tiny", "dose": "sparse-8", "method": "fbp"})
    paths = []
    for seed in (0, 1):
        path = tmp_path / "enhanced" / f"tiny-sparse-8-d3-all-s{seed}.h5"
        write_arrays(path, {"/recon": _noisy(ref[2:8], seed), "/slices": idx[2:8]},
                     {"dataset": "tiny", "dose": "sparse-8", "method": "tomogan", "run": path.stem, "seed": seed})
        paths.append(path)
    return tmp_path / "ref.h5", paths


def _metrics(tmp_path, ref, paths, name):
    from analysis.metrics import main as metrics_main

    out = tmp_path / name
    metrics_main([str(out), "--reference", str(ref), "--slices", "4", "--fov-margin", "2", *map(str, paths)])
    return pd.read_csv(out)


def test_command_writes_degraded_copies_the_metrics_score_at_the_same_slices(tmp_path):
    ref, paths = _study(tmp_path)
    out_dir = tmp_path / "control"
    assert main([str(out_dir), "--reference", str(ref), "--slices", "4", "--fov-margin", "2",
                 "--target-drop", str(TARGET), *map(str, paths)]) == 0
    copies = sorted(out_dir.glob("*.h5"))
    assert [c.name for c in copies] == [p.name for p in paths]
    assert read_array(copies[0], "/slices", dtype=None).tolist() == [103, 104, 105, 106]
    control = json.loads((out_dir / "control.json").read_text())
    attrs = read_attrs(copies[1])
    assert attrs["method"] == "tomogan-degraded" and attrs["control"] == "positive"
    assert attrs["seed"] == 1 and attrs["dataset"] == "tiny" and attrs["run"] == paths[1].stem
    cals = control["calibrations"]
    assert [c["run"] for c in cals] == [p.stem for p in paths] and attrs["calibrated_on"] == paths[1].stem
    assert attrs["blur_sigma"] == cals[1]["sigma"] > 0 and attrs["target_drop"] == TARGET

    before, after = _metrics(tmp_path, ref, paths, "before.csv"), _metrics(tmp_path, ref, copies, "after.csv")
    assert after["slice"].tolist() == before["slice"].tolist() == [103, 104, 105, 106] * 2
    assert set(after["method"]) == {"tomogan-degraded"} and set(after["seed"]) == {0, 1}
    drops = before.groupby("seed")["ssim"].mean() - after.groupby("seed")["ssim"].mean()
    for seed in (0, 1):  # each seed's copy on target, and scored as the command said
        assert drops[seed] == pytest.approx(TARGET, abs=RTOL * TARGET)
        assert drops[seed] == pytest.approx(cals[seed]["achieved_drop"], abs=1e-9)


def test_each_output_gets_its_own_blur_so_a_noisier_seed_loses_the_target_too(tmp_path):
    """A little blur denoises: one sigma for all, calibrated on a clean output, would cost a noisy one less (or
    gain it SSIM). Each output's own sigma costs each the target."""
    ref, paths = _study(tmp_path)
    noisy = tmp_path / "enhanced" / "tiny-sparse-8-d3-all-s2.h5"
    ref_images = read_array(ref, "/recon")
    write_arrays(noisy, {"/recon": _noisy(ref_images[2:8], 2, sigma=0.3), "/slices": np.arange(102, 108)},
                 {"dataset": "tiny", "dose": "sparse-8", "method": "tomogan", "run": noisy.stem, "seed": 2})
    out_dir = tmp_path / "control"
    assert main([str(out_dir), "--reference", str(ref), "--slices", "4", "--fov-margin", "2",
                 "--target-drop", str(TARGET), str(paths[0]), str(noisy)]) == 0
    cals = json.loads((out_dir / "control.json").read_text())["calibrations"]
    assert cals[1]["sigma"] > 1.2 * cals[0]["sigma"]  # the noisier output needs more blur to lose as much
    shared = _fov_ssim(read_array(noisy, "/recon")[1:5], ref_images[3:7]) - \
        _fov_ssim(degrade(read_array(noisy, "/recon")[1:5], cals[0]["sigma"]), ref_images[3:7])
    assert shared < TARGET / 2  # the first output's blur would have cost it far less than the target
    own = _fov_ssim(read_array(noisy, "/recon")[1:5], ref_images[3:7]) - \
        _fov_ssim(read_array(out_dir / noisy.name, "/recon"), ref_images[3:7])
    assert own == pytest.approx(TARGET, abs=RTOL * TARGET)


def test_against_the_truth_the_blur_costs_the_target_there_not_against_the_reference(tmp_path):
    """The claims are decided against the phantom's truth: calibrated with --truth, the copies lose the target SSIM
    against the truth; calibrated against a blurred reference (an FBP's), they lose another amount there."""
    from scipy import ndimage

    n, idx = 96, np.arange(100, 110)
    truth = np.zeros((110, n, n), np.float32)
    truth[100:110] = _phantom(n, slices=10) / 0.01                   # unit attenuation, as a phantom file holds it
    write_arrays(tmp_path / "phantom.h5", {"/phantom": truth})
    ref = ndimage.gaussian_filter(truth[100:110] * 0.01, (0, 1.5, 1.5)).astype(np.float32)  # the FBP's own blur
    write_arrays(tmp_path / "ref.h5", {"/recon": ref, "/slices": idx.astype(np.int32)},
                 {"dataset": "tiny", "dose": "sparse-8", "method": "fbp", "attenuation_scale": 0.01})
    path = tmp_path / "enhanced" / "tiny-sparse-8-d3-all-s0.h5"
    write_arrays(path, {"/recon": _noisy(truth[102:108] * 0.01, 0), "/slices": idx[2:8]},
                 {"dataset": "tiny", "dose": "sparse-8", "method": "tomogan", "run": path.stem, "seed": 0})
    wanted = truth[103:107] * 0.01
    drops = {}
    for name, extra in (("truth", ["--truth", str(tmp_path / "phantom.h5")]), ("reference", [])):
        out_dir = tmp_path / name
        assert main([str(out_dir), "--reference", str(tmp_path / "ref.h5"), "--slices", "4", "--fov-margin", "2",
                     "--target-drop", str(TARGET), *extra, str(path)]) == 0
        assert json.loads((out_dir / "control.json").read_text())["calibrated_against"] == name
        before = read_array(path, "/recon")[1:5]
        after = read_array(out_dir / path.name, "/recon")
        drops[name] = _fov_ssim(before, wanted) - _fov_ssim(after, wanted)
    assert drops["truth"] == pytest.approx(TARGET, abs=RTOL * TARGET)
    assert abs(drops["reference"] - TARGET) > 5 * RTOL * TARGET, drops


def _expect_error(capsys, argv, out_dir, *needles):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    for needle in needles:
        assert needle in err, (needle, err)
    assert not out_dir.exists() or not list(out_dir.iterdir()), "output or temporary file left"


def test_bad_input_is_one_line_and_leaves_no_output(tmp_path, capsys):
    ref, paths = _study(tmp_path)
    out_dir = tmp_path / "control"
    common = [str(out_dir), "--reference", str(ref), "--slices", "4"]
    _expect_error(capsys, common + [str(paths[0]), str(tmp_path / "gone.h5")], out_dir, "gone.h5", "file not found")
    small = tmp_path / "small.h5"
    write_arrays(small, {"/recon": _phantom(64, slices=10), "/slices": np.arange(100, 110)})
    _expect_error(capsys, [str(out_dir), "--reference", str(small), "--slices", "4", *map(str, paths)], out_dir,
                  paths[0].name, "slice shape (96, 96) differs from the reference's (64, 64)")
    _expect_error(capsys, common + ["--target-drop", "0.9", *map(str, paths)], out_dir, paths[0].name,
                  "less than the target 0.9")
    _expect_error(capsys, common + [str(paths[0]), str(paths[0])], out_dir, "would overwrite another copy")
    _expect_error(capsys, [str(paths[0].parent), *common[1:], str(paths[0])], tmp_path / "none",
                  "would overwrite the input")


def test_a_failed_write_takes_back_the_copies_already_written(tmp_path, capsys, monkeypatch):
    import analysis.controls
    from simulate.plumbing import OutputError

    def full(path, obj):
        raise OutputError(path, "no space left on device")

    ref, paths = _study(tmp_path)
    monkeypatch.setattr(analysis.controls, "write_json", full)
    out_dir = tmp_path / "control"
    _expect_error(capsys, [str(out_dir), "--reference", str(ref), "--slices", "4", *map(str, paths)], out_dir,
                  "control.json: no space left on device")
