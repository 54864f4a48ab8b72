"""Noise2Inverse on TomoGAN's generator: angle subsets, X:1 pairs, that it denoises, the CLI, bad input."""

import csv
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from analysis import metrics
from simulate.scores import compare_volumes
from simulate.acquire import write_projections
from simulate.io import write_arrays
from simulate.plumbing import InputError
from simulate.noise import short_exposure
from simulate.reconstruct import fbp, project
from tomogan_core import noise2inverse as n2i
from tomogan_core.modelfile import load_model
from tomogan_core.noise2inverse import denoise_n2i, n2i_pairs, split_views, subset_reconstructions, train_n2i
from tomogan_core.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
K = 4
INCIDENT = 150  # photons per detector pixel: a strongly noisy scan
# short but real: MSE only is forced by train_n2i whatever the weights here say
CFG = TrainConfig(depth=3, patch=32, batch=4, max_iter=150, lr_g=1e-3, normalization="zscore", seed=0,
                  log_every=50, val_every=50, ckpt_every=150, val_slices=2)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _discs(slices=14, size=64, seed=3):
    """A cylinder of discs of other attenuation that drift slowly along the slice axis."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    vol = np.zeros((slices, size, size), np.float32)
    vol += 0.3 * ((yy ** 2 + xx ** 2) < (0.4 * size) ** 2)
    for _ in range(10):
        cy, cx = rng.uniform(-0.25 * size, 0.25 * size, 2)
        r, v = rng.uniform(2, 7), rng.uniform(-0.25, 0.5)
        for s in range(slices):
            vol[s] += v * (((yy - cy - 0.3 * s) ** 2 + (xx - cx) ** 2) < r ** 2)
    return np.clip(vol, 0, None)


@pytest.fixture(scope="module")
def scan():
    """Noise-free and noisy projections (256 angles), the clean full-view FBP, the noisy one, the subsets."""
    theta = np.linspace(0, np.pi, 256, endpoint=False)
    clean_proj = project(_discs(), theta)
    clean_proj *= 2.0 / clean_proj.max()  # thickest path: 13.5 % transmission
    noisy_proj = short_exposure(clean_proj, INCIDENT, rng=np.random.default_rng(11))
    return {"theta": theta, "clean_proj": clean_proj, "noisy_proj": noisy_proj,
            "reference": fbp(clean_proj, theta), "noisy_fbp": fbp(noisy_proj, theta),
            "subsets": subset_reconstructions(noisy_proj, theta, k=K)}


def _psnr(volume, reference, key="psnr"):
    return float(np.mean([r.get(key, np.nan) for r in compare_volumes(volume, reference)]))


# --------------------------------------------------------------------------- the pieces


def test_split_views_interleaves_and_covers_every_angle():
    views = split_views(10, 4)
    assert [v.tolist() for v in views] == [[0, 4, 8], [1, 5, 9], [2, 6], [3, 7]]
    assert sorted(np.concatenate(views).tolist()) == list(range(10))
    assert [v.tolist() for v in split_views(4, 2)] == [[0, 2], [1, 3]]


@pytest.mark.parametrize("n_angles, k, needle", [(10, 1, "k >= 2"), (10, 0, "k >= 2"), (7, 4, "too few"),
                                                 (3, 2, "too few")])
def test_split_views_refuses(n_angles, k, needle):
    with pytest.raises(ValueError, match=needle):
        split_views(n_angles, k)


def test_subsets_are_independent_views_that_average_to_the_full_fbp(scan):
    subsets = scan["subsets"]
    assert subsets.shape == (K,) + scan["noisy_fbp"].shape and subsets.dtype == np.float32
    np.testing.assert_allclose(subsets.mean(axis=0), scan["noisy_fbp"], atol=1e-6)
    # each subset j is the FBP of angles j, j+K, ...: noisier than the full view, noise uncorrelated across subsets
    noise = subsets - scan["reference"]
    assert np.var(noise[0]) > 2.5 * np.var(scan["noisy_fbp"] - scan["reference"])
    assert abs(np.corrcoef(noise[0].ravel(), noise[1].ravel())[0, 1]) < 0.1


def test_pairs_are_x_to_1():
    subsets = np.random.default_rng(0).normal(size=(3, 4, 5, 5)).astype(np.float32)
    pairs = n2i_pairs(subsets)
    assert len(pairs) == 3
    for j, pair in enumerate(pairs):
        others = [i for i in range(3) if i != j]
        np.testing.assert_allclose(pair.low, subsets[others].mean(axis=0), atol=1e-6)
        np.testing.assert_array_equal(pair.normal, subsets[j])
    with pytest.raises(ValueError, match="k >= 2"):
        n2i_pairs(subsets[:1])
    with pytest.raises(ValueError, match="k, slices, rows, cols"):
        n2i_pairs(subsets[0])


# --------------------------------------------------------------------------- it denoises


def test_n2i_beats_the_noisy_full_view_fbp(scan, tmp_path):
    """Trained only on the noisy scan itself, N2I must score above the noisy FBP against the clean FBP."""
    t0 = time.perf_counter()
    model = train_n2i(scan["subsets"], tmp_path / "run", replace(CFG, lambda_adv=20.0, lambda_vgg=2.0),
                      name="scan", progress=False)
    seconds = time.perf_counter() - t0
    denoised = denoise_n2i(scan["subsets"], model)
    before, after = _psnr(scan["noisy_fbp"], scan["reference"]), _psnr(denoised, scan["reference"])
    print(f"\nN2I test scan: PSNR noisy FBP {before:.2f} dB, N2I {after:.2f} dB (object region: "
          f"{_psnr(scan['noisy_fbp'], scan['reference'], 'psnr_object'):.2f} -> "
          f"{_psnr(denoised, scan['reference'], 'psnr_object'):.2f} dB); {CFG.max_iter} steps in {seconds:.1f} s")
    assert denoised.shape == scan["noisy_fbp"].shape and denoised.dtype == np.float32
    assert after > before + 2.0, (before, after)

    _, _, info = load_model(model)
    assert info["provenance"]["mode"] == "noise2inverse" and info["provenance"]["k"] == K
    assert info["config"]["lambda_adv"] == 0 and info["config"]["lambda_vgg"] == 0
    assert info["vgg_weights"].startswith("none") and np.isfinite(info["val_psnr"])
    assert len(info["train_data"]) == K and len(info["val_data"]) == K  # validation: held-out slices of all K pairs
    # MSE only: no critic is built (none in the checkpoint), no critic loss in the log
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert ckpt["critic"] is None and ckpt["opt_d"] is None
    assert all(row["loss_d"] == "" and row["adv"] == "" for row in
               csv.DictReader(open(tmp_path / "run" / "log.csv")))


def test_denoise_n2i_refuses_a_model_of_another_k_or_kind(scan, tmp_path):
    small = scan["subsets"][:, :5, :32, :32]
    model = train_n2i(small, tmp_path / "n2i", replace(CFG, max_iter=1, val_every=1, ckpt_every=1),
                      val_subsets=small, progress=False)
    with pytest.raises(InputError, match="k = 4 subsets, the data have k = 3"):
        denoise_n2i(small[:3], model)
    plain = train(replace(CFG, max_iter=1, val_every=1, ckpt_every=1, lambda_vgg=0.0, lambda_adv=0.0),
                  n2i_pairs(small), n2i_pairs(small), tmp_path / "tomogan", progress=False)
    with pytest.raises(InputError, match="not a Noise2Inverse model"):
        denoise_n2i(small, plain)
    out = denoise_n2i(small[:, :2], model)  # fewer slices than d = 3: edges repeated
    assert out.shape == (2, 32, 32) and np.isfinite(out).all()


def test_a_killed_n2i_run_resumes_to_the_same_weights(scan, tmp_path):
    small = scan["subsets"][:, :, :32, :32]
    cfg = replace(CFG, max_iter=4, batch=2, val_every=2, ckpt_every=2, log_every=1)
    full = train_n2i(small, tmp_path / "full", cfg, progress=False)
    cut = train_n2i(small, tmp_path / "cut", cfg, progress=False, stop_after=2)
    assert cut.name == "checkpoint.pt" and not (tmp_path / "cut" / "model.pt").exists()
    resumed = train_n2i(small, tmp_path / "cut", cfg, progress=False)
    (a, _, _), (b, _, _) = load_model(full), load_model(resumed)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


def test_a_checkpoint_that_kept_an_unused_critic_still_resumes(scan, tmp_path):
    # checkpoints written before Noise2Inverse stopped building a critic hold its untouched weights and
    # optimiser: resuming one ignores them and ends with the same weights as an uninterrupted run
    from tomogan_core.model import Discriminator, DiscriminatorConfig

    small = scan["subsets"][:, :, :32, :32]
    cfg = replace(CFG, max_iter=4, batch=2, val_every=2, ckpt_every=2, log_every=1)
    full = train_n2i(small, tmp_path / "full", cfg, progress=False)
    cut = train_n2i(small, tmp_path / "cut", cfg, progress=False, stop_after=2)
    state = torch.load(cut, weights_only=False)
    critic = Discriminator(DiscriminatorConfig(patch_size=cfg.patch))
    state.update(critic=critic.state_dict(), opt_d=torch.optim.Adam(critic.parameters()).state_dict())
    torch.save(state, cut)
    resumed = train_n2i(small, tmp_path / "cut", cfg, progress=False)
    (a, _, _), (b, _, _) = load_model(full), load_model(resumed)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=False)["critic"] is None


# --------------------------------------------------------------------------- command line


def _projections(path, data, theta, **attrs):
    write_projections(path, data, theta, {"dataset": "discs", "source": "simulated", "dose": f"photons-{INCIDENT}",
                                          "center": data.shape[-1] / 2, "seed": 11, **attrs})
    return path


def test_cli_round_trip_reads_back_with_metrics(scan, tmp_path):
    proj = _projections(tmp_path / "proj.h5", scan["noisy_proj"], scan["theta"])
    subsets, run, out = tmp_path / "subsets.h5", tmp_path / "run", tmp_path / "n2i.h5"
    assert n2i.main(["split", str(proj), str(subsets), "--k", "4", "--slices", "10", "--threads", "1"]) == 0
    with h5py.File(subsets) as f:
        assert f["subsets"].shape == (4, 10, 64, 64) and f["subsets"].dtype == np.float32
        assert f["slices"].dtype == np.int32 and f["slices"][()].tolist() == list(range(2, 12))
        assert f.attrs["k"] == 4 and f.attrs["method"] == "n2i-subsets" and f.attrs["dataset"] == "discs"
        assert f.attrs["center"] == 32 and f.attrs["dose"] == f"photons-{INCIDENT}"
        np.testing.assert_allclose(f["subsets"][0], scan["subsets"][0, 2:12], atol=1e-6)
    assert n2i.main(["train", str(subsets), "-o", str(run), "--max-iter", "4", "--patch", "32", "--batch", "2",
                     "--depth", "3", "--lr-g", "1e-3", "--seed", "1", "--val-every", "2", "--ckpt-every", "2",
                     "--val-slices", "2", "--threads", "1", "--quiet"]) == 0
    assert (run / "model.pt").exists()
    assert n2i.main(["infer", str(subsets), str(run / "model.pt"), str(out), "--threads", "1", "--quiet"]) == 0
    with h5py.File(out) as f:
        assert f["recon"].shape == (10, 64, 64) and f["recon"].dtype == np.float32
        assert f["slices"].dtype == np.int32 and f["slices"][()].tolist() == list(range(2, 12))
        assert f.attrs["method"] == "n2i" and f.attrs["k"] == 4 and f.attrs["run"] == "run"
        assert f.attrs["model"] == str(run / "model.pt") and f.attrs["input_method"] == "n2i-subsets"
        assert f.attrs["dataset"] == "discs" and not f.attrs["edge_slices_repeated"] and "edge_slices" not in f.attrs
        assert "versions" in f.attrs

    reference = tmp_path / "reference.h5"
    write_arrays(reference, {"/recon": scan["reference"], "/slices": np.arange(14, dtype=np.int32)},
                 {"dataset": "discs", "method": "fbp"})
    table = tmp_path / "metrics.csv"
    metrics.main([str(table), "--reference", str(reference), "--slices", "6", str(out)])
    rows = list(csv.DictReader(open(table)))
    assert len(rows) == 6 and {r["method"] for r in rows} == {"n2i"} and {r["model"] for r in rows} == {"run"}
    assert all(np.isfinite(float(r["psnr"])) for r in rows)

    # fewer slices than the model's depth: edges repeated, and said so
    two = tmp_path / "two.h5"
    write_arrays(two, {"/subsets": scan["subsets"][:, 5:7], "/slices": np.array([5, 6], np.int32)}, {"k": 4})
    assert n2i.main(["infer", str(two), str(run / "model.pt"), str(tmp_path / "two-n2i.h5"), "--quiet"]) == 0
    with h5py.File(tmp_path / "two-n2i.h5") as f:
        assert f["recon"].shape == (2, 64, 64) and f.attrs["edge_slices_repeated"]
        assert "depth d = 3" in f.attrs["edge_slices"]


# --------------------------------------------------------------------------- bad input


def _expect(capsys, argv, needle, absent):
    with pytest.raises(SystemExit) as exc:
        n2i.main([str(a) for a in argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and needle in err, err
    assert not Path(absent).exists()
    assert not list(Path(absent).parent.glob(f".{Path(absent).name}.*")), "temporary file left behind"


def test_split_bad_input(scan, tmp_path, capsys):
    out = tmp_path / "subsets.h5"
    _expect(capsys, ["split", tmp_path / "nope.h5", out], "nope.h5: file not found", out)
    few = _projections(tmp_path / "few.h5", scan["noisy_proj"][:7, :2], scan["theta"][:7])
    _expect(capsys, ["split", few, out, "--k", "4"], "few.h5: 7 angles are too few for k = 4", out)
    _expect(capsys, ["split", few, out, "--k", "1"], "few.h5: Noise2Inverse needs k >= 2", out)
    bad = scan["noisy_proj"][:, :2].copy()
    bad[3, 1, 5] = np.nan
    nan = _projections(tmp_path / "nan.h5", bad, scan["theta"])
    _expect(capsys, ["split", nan, out], "nan.h5: dataset '/exchange/data' holds 1 NaN/Inf", out)


def _subsets_file(path, subsets, **attrs):
    slices = np.arange(subsets.shape[1] if subsets.ndim == 4 else 1, dtype=np.int32)
    write_arrays(path, {"/subsets": subsets, "/slices": slices}, attrs)
    return path


def test_train_and_infer_bad_input(scan, tmp_path, capsys):
    small = scan["subsets"][:, :5, :32, :32]
    run = tmp_path / "run"
    flags = ["-o", run, "--max-iter", "1", "--patch", "32", "--batch", "2", "--val-every", "1", "--quiet"]
    recon = tmp_path / "recon.h5"
    write_arrays(recon, {"/recon": small[0], "/slices": np.arange(5, dtype=np.int32)})
    _expect(capsys, ["train", recon, *flags], "recon.h5: missing dataset '/subsets'", run)
    flat = _subsets_file(tmp_path / "flat.h5", small[0])
    _expect(capsys, ["train", flat, *flags], "flat.h5: dataset '/subsets' has shape (5, 32, 32), expected 4", run)
    bad = small.copy()
    bad[1, 2, 3, 4] = np.nan
    _expect(capsys, ["train", _subsets_file(tmp_path / "nan.h5", bad), *flags], "nan.h5: dataset '/subsets' holds 1 NaN", run)
    _expect(capsys, ["train", _subsets_file(tmp_path / "k.h5", small, k=3), *flags],
            "k.h5: attribute k = 3 but '/subsets' holds 4", run)
    _expect(capsys, ["train", _subsets_file(tmp_path / "one.h5", small[:1]), *flags], "one.h5: '/subsets' holds 1", run)
    _expect(capsys, ["train", _subsets_file(tmp_path / "ok.h5", small, k=4), "-o", run, "--patch", "64", "--quiet"],
            "ok.h5: slices of (32, 32) are smaller than the patch size 64", run)

    good = _subsets_file(tmp_path / "good.h5", small, k=4)
    model = train_n2i(small, tmp_path / "n2i", replace(CFG, max_iter=1, val_every=1, ckpt_every=1),
                      val_subsets=small, progress=False)
    out = tmp_path / "out.h5"
    _expect(capsys, ["infer", good, tmp_path / "none.pt", out], "none.pt: model file not found", out)
    _expect(capsys, ["infer", _subsets_file(tmp_path / "three.h5", small[:3], k=3), model, out],
            "model.pt: model was trained on k = 4 subsets, the data have k = 3", out)
    _expect(capsys, ["infer", recon, model, out], "recon.h5: missing dataset '/subsets'", out)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    _expect(capsys, ["infer", good, junk, out], "junk.pt", out)
    assert n2i.main(["infer", str(good), str(model), str(out), "--quiet"]) == 0 and out.exists()


def test_error_exit_status_from_a_real_process(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tomogan_core.noise2inverse", "train", str(tmp_path / "nope.h5"),
                           "-o", str(tmp_path / "run")], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == f"error: {tmp_path / 'nope.h5'}: file not found"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("rows", [1, 2])
def test_a_scan_of_one_or_two_rows_trains_and_says_how(scan, tmp_path, rows):
    # fewer rows than d = 3 and too few to hold any out: edges repeated, validation on the training
    # slices -- both written into the model's provenance
    small = scan["subsets"][:, 6:6 + rows, :32, :32]
    path = train_n2i(small, tmp_path / "n2i", replace(CFG, max_iter=2, val_every=1, ckpt_every=2),
                     progress=False)
    prov = n2i.model_provenance(path)
    assert "edge slices repeated" in prov["edge_slices"] and "too few to hold any out" in prov["validation_slices"]
    assert denoise_n2i(small, path).shape == (rows, 32, 32)


# --------------------------------------------------------------------------- a fine-tune (init)


@pytest.fixture(scope="module")
def init_model(tmp_path_factory):
    """(tiny subsets, a plain TomoGAN model.pt of depth 3 trained one step on them with seed 5)."""
    subsets = np.random.default_rng(4).normal(1.0, 0.3, size=(K, 6, 32, 32)).astype(np.float32)
    path = train(replace(CFG, max_iter=1, batch=2, val_every=1, ckpt_every=1, val_slices=1, seed=5, lambda_adv=0.0,
                         lambda_vgg=0.0, lambda_mse=1.0, itd=0),
                 n2i_pairs(subsets), n2i_pairs(subsets), tmp_path_factory.mktemp("init") / "generalist",
                 provenance={"dataset": "generalist"}, progress=False)
    return subsets, path


def _weights(path):
    return load_model(path)[0].state_dict()


def test_n2i_with_init_starts_from_that_generator_and_records_it(init_model, tmp_path):
    subsets, init = init_model
    cfg = replace(CFG, max_iter=0, batch=2, val_slices=1)  # max_iter 0: model.pt holds the step-0 generator
    tuned = train_n2i(subsets, tmp_path / "tuned", replace(cfg, init=str(init)), progress=False)
    scratch = train_n2i(subsets, tmp_path / "scratch", cfg, progress=False)
    start, own, random = _weights(init), _weights(tuned), _weights(scratch)
    assert all(torch.equal(v, own[k]) for k, v in start.items())
    assert not all(torch.equal(v, random[k]) for k, v in start.items())  # so the check above can fail
    prov = n2i.model_provenance(tuned)
    assert prov["mode"] == "noise2inverse" and prov["k"] == K
    assert prov["init"] == str(init) and prov["init_provenance"]["dataset"] == "generalist"
    assert prov["init_model"]["kind"] == "model.pt"
    assert "init" not in n2i.model_provenance(scratch)
    # a few steps on: the fine-tune's first validation is not scratch's
    steps = replace(CFG, max_iter=2, batch=2, val_every=2, ckpt_every=2, val_slices=1)
    tuned = train_n2i(subsets, tmp_path / "tuned-2", replace(steps, init=str(init)), progress=False)
    scratch = train_n2i(subsets, tmp_path / "scratch-2", steps, progress=False)
    val = [next(r for r in csv.DictReader(open(p.parent / "log.csv")) if r["val_psnr"])["val_psnr"]
           for p in (tuned, scratch)]
    assert val[0] != val[1] and n2i.model_provenance(tuned)["init"] == str(init)


def test_cli_train_takes_init(init_model, tmp_path, capsys):
    subsets, init = init_model
    path = _subsets_file(tmp_path / "subsets.h5", subsets, k=K)
    run = tmp_path / "run"
    flags = ["--max-iter", "0", "--patch", "32", "--batch", "2", "--val-slices", "1", "--threads", "1", "--quiet"]
    assert n2i.main(["train", str(path), "-o", str(run), "--init", str(init), *flags]) == 0
    assert n2i.model_provenance(run / "model.pt")["init"] == str(init)
    start, own = _weights(init), _weights(run / "model.pt")
    assert all(torch.equal(v, own[k]) for k, v in start.items())
    other = tmp_path / "other"
    _expect(capsys, ["train", path, "-o", other, "--init", tmp_path / "none.pt", *flags],
            "none.pt: model file not found", other)
    _expect(capsys, ["train", path, "-o", other, "--init", init, "--depth", "1", *flags],
            "init generator takes d = 3 slices, this run has depth 1", other)
