"""Training: determinism, resume, depths, that it learns, the release layout, and the served model."""

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import tomogan_core
from simulate.io import write_arrays
from simulate.plumbing import InputError
from tomogan_core.data import VolumePair, read_pair, split_held_out
from tomogan_core.export import export_trained
from tomogan_core.infer import load_any
from tomogan_core.modelfile import LoadedModel, denoise, load_model, load_served
from tomogan_core.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]

# A tiny, fast setting: MSE + WGAN-GP + a random-init VGG at an early layer (the full loss, cheaply).
TINY = TrainConfig(depth=3, patch=16, batch=2, max_iter=6, lambda_adv=0.01, lambda_mse=1.0, lambda_vgg=0.1,
                   vgg_weights="random-init", vgg_layer=4, log_every=1, val_every=2, ckpt_every=2,
                   val_slices=2, seed=7, lr_g=1e-3, lr_d=1e-3)


def _volume(seed, slices=10, size=32):
    """Discs that drift slowly along the slice axis (adjacent slices alike), and a noisy copy."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    clean = np.zeros((slices, size, size), np.float32)
    for _ in range(6):
        cy, cx, r, v = rng.uniform(6, size - 6), rng.uniform(6, size - 6), rng.uniform(2, 6), rng.uniform(0.5, 1)
        for s in range(slices):
            clean[s] += v * (((yy - cy - 0.2 * s) ** 2 + (xx - cx) ** 2) < r ** 2)
    noisy = clean + rng.normal(0, 0.3, clean.shape).astype(np.float32)
    return VolumePair(noisy, clean, name=f"synthetic-{seed}")


def _files(tmp_path, seed, **kw):
    pair = _volume(seed, **kw)
    ld, nd = tmp_path / f"ld{seed}.h5", tmp_path / f"nd{seed}.h5"
    write_arrays(ld, {"/recon": pair.low, "/slices": np.arange(pair.n_slices)}, {"dataset": f"s{seed}"})
    write_arrays(nd, {"/recon": pair.normal, "/slices": np.arange(pair.n_slices)}, {"dataset": f"s{seed}"})
    return ld, nd


def denoise_volume(generator, volume, norm):
    """A generator being trained, applied as validation applies it."""
    return denoise(volume, LoadedModel.from_generator(generator, norm), repeat_edges=True)


def _weights(path):
    generator, _, _ = load_model(path)
    return {k: v.clone() for k, v in generator.state_dict().items()}


def test_same_seed_gives_same_losses_and_weights(tmp_path):
    a = train(TINY, [_volume(1)], [_volume(2)], tmp_path / "a", progress=False)
    b = train(TINY, [_volume(1)], [_volume(2)], tmp_path / "b", progress=False)
    la, lb = (pd.read_csv(p.parent / "log.csv").drop(columns=["elapsed_s", "cpu_s"]) for p in (a, b))
    assert len(la) and la.equals(lb)  # every column but the times
    wa, wb = _weights(a), _weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    # and another seed trains differently
    c = train(replace(TINY, seed=8), [_volume(1)], [_volume(2)], tmp_path / "c", progress=False)
    assert not all(torch.equal(wa[k], v) for k, v in _weights(c).items())


def test_killed_run_resumes_to_the_same_weights(tmp_path):
    full = train(TINY, [_volume(1)], [_volume(2)], tmp_path / "full", progress=False)
    stopped = train(TINY, [_volume(1)], [_volume(2)], tmp_path / "cut", progress=False, stop_after=2)
    assert stopped.name == "checkpoint.pt" and not (tmp_path / "cut" / "model.pt").exists()
    resumed = train(TINY, [_volume(1)], [_volume(2)], tmp_path / "cut", progress=False)
    # a finished run asked again (as Snakemake does after deleting its outputs) writes them again
    (tmp_path / "cut" / "log.csv").unlink()
    (tmp_path / "cut" / "model.pt").unlink()
    train(TINY, [_volume(1)], [_volume(2)], tmp_path / "cut", progress=False)
    assert (tmp_path / "cut" / "log.csv").exists()
    wf, wr = _weights(full), _weights(resumed)
    assert all(torch.equal(wf[k], wr[k]) for k in wf)
    assert (tmp_path / "full" / "log.csv").read_text().count("\n") == (tmp_path / "cut" / "log.csv").read_text().count("\n")
    # the critic and the optimisers resumed too: the final checkpoints agree
    cf = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=False)
    cr = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=False)
    assert all(torch.equal(cf["critic"][k], cr["critic"][k]) for k in cf["critic"])


def test_checkpoint_from_another_depth_is_refused(tmp_path):
    train(TINY, [_volume(1)], [_volume(2)], tmp_path / "run", progress=False, stop_after=2)
    with pytest.raises(InputError, match="depth"):
        train(replace(TINY, depth=5), [_volume(1)], [_volume(2)], tmp_path / "run", progress=False)


@pytest.mark.parametrize("depth", [1, 3, 5, 7])
def test_every_published_depth_trains_and_infers(tmp_path, depth):
    cfg = replace(TINY, depth=depth, max_iter=1, lambda_vgg=0.0, val_every=1, ckpt_every=1)
    model = train(cfg, [_volume(1)], [_volume(2)], tmp_path, progress=False)
    generator, norm, info = load_model(model, depth=depth)
    assert generator.cfg.in_slices == depth and info["steps_trained"] == 1
    out = tomogan_core.denoise(_volume(3).low[:, :30, :27], model)  # any slice size
    assert out.shape == (10, 30, 27) and np.isfinite(out).all()


def test_training_learns_to_denoise(tmp_path):
    """A short MSE run must beat its own noisy input on volumes it never saw (a test that can fail)."""
    cfg = replace(TINY, max_iter=150, lambda_adv=0.0, lambda_vgg=0.0, batch=4, patch=24, val_every=50,
                  ckpt_every=150, log_every=50)
    model = train(cfg, [_volume(1), _volume(4)], [_volume(2)], tmp_path, progress=False)
    generator, norm, _ = load_model(model)
    test = _volume(3)
    before = np.mean((test.low - test.normal) ** 2)
    after = np.mean((denoise_volume(generator, test.low, norm) - test.normal) ** 2)
    assert after < 0.5 * before, (before, after)


def test_validation_slices_are_held_out_with_a_gap():
    pair = VolumePair(np.arange(20)[:, None, None] * np.ones((20, 2, 2), np.float32),
                      np.zeros((20, 2, 2), np.float32), "v")
    tr, val = split_held_out(pair, fraction=0.25, depth=3)
    assert tr.low[:, 0, 0].max() + 3 < val.low[:, 0, 0].min()
    assert val.n_slices == 5 and tr.n_slices == 12


def test_served_model_agrees_with_eager_and_denoise(tmp_path):
    model = train(replace(TINY, max_iter=2), [_volume(1)], [_volume(2)], tmp_path / "run", progress=False)
    export_trained(model, tmp_path / "served.pt")
    generator, norm, _ = load_model(model)
    vol = _volume(5).low
    eager = denoise_volume(generator, vol, norm)
    plain = torch.jit.load(str(tmp_path / "served.pt"))  # no tomogan_core needed to call it
    x = torch.from_numpy(np.stack([vol[[max(i - 1, 0), i, min(i + 1, 9)]] for i in range(10)]))
    with torch.no_grad():
        jit = plain(x)[:, 0].numpy()
    served = tomogan_core.denoise(vol, tmp_path / "served.pt")
    np.testing.assert_allclose(jit, eager, atol=1e-5)
    np.testing.assert_allclose(served, eager, atol=1e-5)
    _, card = load_served(tmp_path / "served.pt")
    assert card["in_slices"] == 3 and card["vgg_weights"] == "random-init"
    assert card["input_scale"]["scale"] == pytest.approx(norm.scale) and "ssim" in card["validation"]
    assert load_any(tmp_path / "served.pt").depth == 3


def _cli(module, *args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True, cwd=cwd)


@pytest.mark.slow
def test_release_commands_train_and_infer_from_the_repository_root(tmp_path):
    ld, nd = _files(tmp_path, 1)
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "train.py", "-ld", ld, "-nd", nd, "-o", out, "-depth", "3", "-psz", "16",
                           "-mbsz", "2", "-maxiter", "2", "-lperc", "0", "-ladv", "0.01", "--val-every", "1",
                           "--quiet"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (out / "model.pt").exists() and (out / "log.csv").exists()
    ld3, _ = _files(tmp_path, 3)
    proc = subprocess.run([sys.executable, "infer.py", "-ld", ld3, "-model", out / "model.pt", "-o",
                           tmp_path / "dn.h5", "--quiet"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "slices/s" in proc.stdout
    import h5py
    with h5py.File(tmp_path / "dn.h5") as f:
        assert f["recon"].shape == (10, 32, 32) and f.attrs["method"] == "tomogan" and f.attrs["depth"] == 3


def test_release_single_file_layout(tmp_path):
    a, b = _volume(1), _volume(2)
    dsfn = tmp_path / "dataset.h5"
    write_arrays(dsfn, {"train_ns": a.low, "train_gt": a.normal, "test_ns": b.low, "test_gt": b.normal})
    from tomogan_core.train import main as train_main
    from tomogan_core.infer import main as infer_main

    assert train_main(["-dsfn", str(dsfn), "-o", str(tmp_path / "run"), "-psz", "16", "-mbsz", "2",
                       "-maxiter", "1", "-lperc", "0", "--val-every", "1", "--quiet"]) == 0
    assert infer_main(["-ld", str(dsfn), "-model", str(tmp_path / "run" / "model.pt"), "-o",
                       str(tmp_path / "dn.h5"), "--quiet"]) == 0
    import h5py
    with h5py.File(tmp_path / "dn.h5") as f:
        assert set(f) == {"ns", "gt", "dn"} and f["dn"].shape == b.low.shape


def _corpus_files(tmp_path):
    """Two training pairs of different families, seeds, views and doses, and a validation pair with no attributes."""
    paths = {}
    for name, seed, family, views, dose in (("a", 11, "fibres", 90, "low"), ("b", 12, "layers", 180, "full")):
        pair = _volume(seed)
        attrs = {"dataset": f"{family}-{seed}", "source": "simulated", "family": family, "dose": dose,
                 "dose_mode": "photons", "dose_level": 0.1, "seed": seed, "n_angles": views, "center": 16.0,
                 "max_line_integral": 2.5, "noise_incident": 1000.0, "matched_to": "foam"}
        for kind, vol in (("ld", pair.low), ("nd", pair.normal)):
            paths[kind + name] = tmp_path / f"{kind}_{name}.h5"
            write_arrays(paths[kind + name], {"/recon": vol, "/slices": np.arange(pair.n_slices)}, attrs)
    val = _volume(13)
    for kind, vol in (("vld", val.low), ("vnd", val.normal)):
        paths[kind] = tmp_path / f"{kind}.h5"
        write_arrays(paths[kind], {"/recon": vol})
    return paths


def test_describe_training_data_lists_families_doses_geometry_and_seeds(tmp_path):
    from tomogan_core.train import describe_training_data

    p = _corpus_files(tmp_path)
    corpus = describe_training_data([p["lda"], p["ldb"]], [p["vld"]])
    assert corpus["summary"] == {"families": ["fibres", "layers"], "doses": ["full", "low"],
                                 "geometry": ["90 views x 32 px", "180 views x 32 px"], "seeds": [11, 12],
                                 "n_volumes": {"train": 2, "val": 1}}
    first, _, val = corpus["volumes"]
    assert first["role"] == "train" and first["family"] == "fibres" and first["detector"] == 32
    assert first["max_line_integral"] == 2.5 and first["noise_incident"] == 1000.0 and first["matched_to"] == "foam"
    assert val == {"role": "val", "file": str(p["vld"]), "detector": 32}  # no attributes: what is there


def test_describe_training_data_falls_back_to_dataset_names_and_survives_missing_files(tmp_path):
    from tomogan_core.train import describe_training_data

    foam = tmp_path / "foam.h5"
    write_arrays(foam, {"/recon": np.zeros((4, 8, 8), np.float32)},
                 {"dataset": "foam", "source": "simulated (xdesign)", "seed": 3, "dose": "low"})
    corpus = describe_training_data([foam, tmp_path / "gone.h5"])
    assert corpus["summary"]["families"] == ["foam"] and corpus["summary"]["geometry"] == []
    assert corpus["volumes"][1] == {"role": "train", "file": str(tmp_path / "gone.h5")}


def test_cli_model_and_served_card_record_the_training_corpus(tmp_path):
    from tomogan_core.train import main

    p = _corpus_files(tmp_path)
    out = tmp_path / "run"
    assert main([str(a) for a in ("-ld", p["lda"], p["ldb"], "-nd", p["nda"], p["ndb"], "-vld", p["vld"], "-vnd",
                                  p["vnd"], "-o", out, "-psz", "16", "-mbsz", "2", "-maxiter", "1", "-lperc", "0",
                                  "--val-every", "1", "--quiet")]) == 0
    _, _, info = load_model(out / "model.pt")
    corpus = info["provenance"]["training_data"]
    assert info["provenance"]["files"]["ld"] == [str(p["lda"]), str(p["ldb"])]
    assert corpus["summary"]["families"] == ["fibres", "layers"] and corpus["summary"]["seeds"] == [11, 12]
    assert [v["role"] for v in corpus["volumes"]] == ["train", "train", "val"]
    export_trained(out / "model.pt", tmp_path / "served.pt")
    _, card = load_served(tmp_path / "served.pt")
    assert card["training_corpus"] == corpus["summary"]
    assert card["provenance"]["training_data"] == corpus


# --------------------------------------------------------------------------- bad input


def _expect(capsys, main, argv, needle, absent):
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and needle in err, err
    assert not Path(absent).exists()


def test_train_bad_input(tmp_path, capsys):
    from tomogan_core.train import main

    ld, nd = _files(tmp_path, 1)
    out = tmp_path / "run"
    common = ["-o", out, "-psz", "16", "-mbsz", "2", "-maxiter", "1", "--quiet"]
    _expect(capsys, main, ["-ld", tmp_path / "nope.h5", "-nd", nd, *common], "nope.h5: file not found", out)
    short = tmp_path / "short.h5"
    write_arrays(short, {"/recon": np.zeros((10, 32, 30), np.float32)})
    _expect(capsys, main, ["-ld", short, "-nd", nd, *common], "differs from the normal-dose", out)
    few_l, few_n = tmp_path / "fl.h5", tmp_path / "fn.h5"
    write_arrays(few_l, {"/recon": np.ones((2, 32, 32), np.float32)})
    write_arrays(few_n, {"/recon": np.ones((2, 32, 32), np.float32)})
    _expect(capsys, main, ["-ld", few_l, "-nd", few_n, *common], "fewer than the depth", out)
    nan = tmp_path / "nan.h5"
    vol = _volume(1).low.copy()
    vol[2, 3, 4] = np.nan
    write_arrays(nan, {"/recon": vol})
    _expect(capsys, main, ["-ld", nan, "-nd", nd, *common], "NaN", out)
    other = tmp_path / "other.h5"
    write_arrays(other, {"/a": np.zeros((3, 4), np.float32)})
    _expect(capsys, main, ["-ld", other, "-nd", nd, *common], "no 3-D dataset", out)
    _expect(capsys, main, ["-ld", ld, "-nd", nd, "--ld-key", "/missing", *common], "missing dataset '/missing'", out)
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(ld.read_bytes()[:1000])
    _expect(capsys, main, ["-ld", corrupt, "-nd", nd, *common], "corrupt.h5", out)
    with pytest.raises(SystemExit) as exc:
        main(["-ld", str(ld), "-nd", str(nd), "-depth", "4", *map(str, common)])
    assert exc.value.code == 2
    assert "odd" in capsys.readouterr().err


def test_infer_bad_input(tmp_path, capsys):
    from tomogan_core.infer import main

    model = train(replace(TINY, max_iter=1, lambda_vgg=0.0), [_volume(1)], [_volume(2)], tmp_path / "run",
                  progress=False)
    ld, _ = _files(tmp_path, 3)
    out = tmp_path / "dn.h5"
    _expect(capsys, main, ["-ld", tmp_path / "nope.h5", "-model", model, "-o", out], "file not found", out)
    _expect(capsys, main, ["-ld", ld, "-model", tmp_path / "none.pt", "-o", out], "model file not found", out)
    _expect(capsys, main, ["-ld", ld, "-model", model, "-o", out, "-depth", "5"], "depth d = 3, not 5", out)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    _expect(capsys, main, ["-ld", ld, "-model", junk, "-o", out], "junk.pt", out)
    two = tmp_path / "two.h5"
    write_arrays(two, {"/recon": np.ones((2, 32, 32), np.float32)})
    _expect(capsys, main, ["-ld", two, "-model", model, "-o", out], "fewer than the model's depth", out)
    assert main(["-ld", str(two), "-model", str(model), "-o", str(out), "--repeat-edges", "--quiet"]) == 0
    import h5py
    with h5py.File(out) as f:
        assert bool(f.attrs["edge_slices_repeated"])


def test_read_pair_matches_slices_by_index(tmp_path):
    full = tmp_path / "full.h5"
    part = tmp_path / "part.h5"
    vol = np.arange(8)[:, None, None] * np.ones((8, 4, 4), np.float32)
    write_arrays(full, {"/recon": vol, "/slices": np.arange(8)})
    write_arrays(part, {"/recon": vol[3:6], "/slices": np.arange(3, 6)})
    pair = read_pair(part, full, depth=3)
    np.testing.assert_array_equal(pair.normal[:, 0, 0], [3, 4, 5])


def test_validation_indices_are_the_slices_training_validates_on():
    # the classical methods are tuned on exactly these slices: they must match train.validate's choice
    from simulate.reconstruct import central_slices
    from tomogan_core.data import split_held_out, validation_indices

    n, depth = 48, 3
    vol = np.arange(n, dtype=np.float32)[:, None, None] * np.ones((1, 8, 8), np.float32)
    _, held = split_held_out(VolumePair(vol, vol, "v"), fraction=0.15, depth=depth)
    chosen = held.low[central_slices(held.n_slices, 4), 0, 0].astype(int).tolist()
    assert validation_indices(n, val_slices=4, depth=depth, held_out_fraction=0.15).tolist() == chosen
    assert validation_indices(n, val_slices=4, depth=depth).tolist() == central_slices(n, 4).tolist()


def test_bf16_training_learns_too_and_refuses_to_resume_as_fp32(tmp_path):
    """Mixed precision (bfloat16 autocast) with every loss term: it learns, and a checkpoint records it."""
    cfg = replace(TINY, max_iter=150, batch=4, patch=24, val_every=50, ckpt_every=150, log_every=50,
                  precision="bf16")
    model = train(cfg, [_volume(1), _volume(4)], [_volume(2)], tmp_path, progress=False)
    generator, norm, info = load_model(model)
    assert info["config"]["precision"] == "bf16"
    test = _volume(3)
    before = np.mean((test.low - test.normal) ** 2)
    after = np.mean((denoise_volume(generator, test.low, norm) - test.normal) ** 2)
    assert after < 0.5 * before, (before, after)
    with pytest.raises(InputError, match="precision"):
        train(replace(cfg, precision="fp32"), [_volume(1)], [_volume(2)], tmp_path, progress=False)
    with pytest.raises(ValueError, match="precision"):
        replace(cfg, precision="fp16")


@pytest.mark.parametrize("metric, best_step", [("psnr", 3), ("ssim", 2)])
def test_saved_generator_is_the_best_validated_step_by_the_chosen_metric(tmp_path, monkeypatch, metric, best_step):
    import tomogan_core.train.loop as tr  # where train() looks validate up

    scores = iter([(0.1, 10.0), (0.5, 5.0), (0.3, 20.0), (float("nan"), float("nan"))])  # (SSIM, PSNR) per validation

    def scripted(*args, **kwargs):
        ssim, psnr = next(scores)
        return {"val_ssim": ssim, "val_psnr": psnr}

    monkeypatch.setattr(tr, "validate", scripted)
    cfg = replace(TINY, max_iter=4, val_every=1, lambda_vgg=0.0, select=metric)
    saved = torch.load(train(cfg, [_volume(1)], [_volume(2)], tmp_path, progress=False), weights_only=False)
    assert saved["step"] == best_step  # a NaN score (step 4) never wins
    with pytest.raises(ValueError, match="select"):
        replace(TINY, select="mse")


def test_a_warm_start_trains_mse_alone_first_and_saves_a_full_loss_step(tmp_path):
    """mse_warmup: the first steps have no adversarial or perceptual term and no critic update; the saved
    generator is one of the steps after them, and a killed warm-started run resumes to the same weights."""
    cfg = replace(TINY, mse_warmup=3, max_iter=6, val_every=1)
    pairs, val = [_volume(1)], [_volume(2)]
    model = train(cfg, pairs, val, tmp_path / "warm", progress=False)
    log = pd.read_csv(tmp_path / "warm" / "log.csv").set_index("step")
    assert (log.loc[1:3, ["adv", "perceptual"]].fillna(0) == 0).all().all() and log.loc[1:3, "loss_d"].isna().all()
    assert (log.loc[4:6, "adv"] != 0).all() and log.loc[4:6, "loss_d"].notna().all()
    assert torch.load(model, weights_only=False)["step"] > 3
    with pytest.raises(ValueError, match="mse_warmup"):
        replace(TINY, mse_warmup=-1)
    # killed after the warm start and resumed: the same weights as the uninterrupted run
    train(cfg, pairs, val, tmp_path / "killed", progress=False, stop_after=4)
    resumed = train(cfg, pairs, val, tmp_path / "killed", progress=False)
    a, b = _weights(model), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_runs_of_one_seed_share_their_warm_start_whatever_their_loss_terms(tmp_path):
    """The ablation's loss sets differ by the fine-tune alone: with one seed, the MSE-only warm-start steps give the
    same generator whether the run goes on with MSE alone or with every term (docs/methods.md)."""
    pairs, val = [_volume(1)], [_volume(2)]
    weights = {}
    for name, cfg in (("mse", replace(TINY, lambda_adv=0.0, lambda_vgg=0.0)), ("all", TINY)):
        cfg = replace(cfg, mse_warmup=3, max_iter=6, ckpt_every=3, val_every=3, seed=5)
        ckpt = train(cfg, pairs, val, tmp_path / name, progress=False, stop_after=3)  # the warm start's end
        weights[name] = torch.load(ckpt, weights_only=False)["generator"]
    assert all(torch.equal(weights["mse"][k], weights["all"][k]) for k in weights["mse"])
    # and the seed matters: another seed's warm start differs
    other = train(replace(TINY, mse_warmup=3, max_iter=6, ckpt_every=3, val_every=3, seed=6), pairs, val,
                  tmp_path / "other", progress=False, stop_after=3)
    assert not all(torch.equal(weights["all"][k], v) for k, v in torch.load(other, weights_only=False)["generator"].items())


def test_a_cpu_budget_stops_on_cpu_time_and_validates_at_its_marks(tmp_path):
    """cpu_budget_s (the compute-matched ablation): training stops once its steps have used the budget, not at
    max_iter; it validates at each 1/val_points of the budget; the log and the model record the CPU-seconds; a
    cheaper loss gets more steps from the same budget."""
    pairs, val = [_volume(1)], [_volume(2)]
    steps = {}
    for name, cfg in (("all", TINY), ("mse", replace(TINY, lambda_adv=0.0, lambda_vgg=0.0))):
        cfg = replace(cfg, cpu_budget_s=1.5, val_points=4, max_iter=100000, ckpt_every=1000, log_every=1000)
        model = torch.load(train(cfg, pairs, val, tmp_path / name, progress=False), weights_only=False)
        log = pd.read_csv(tmp_path / name / "log.csv")
        assert 1.5 <= model["cpu_s"] < 1.5 + log["cpu_s"].diff().max() + 1.0
        assert model["steps_trained"] < 100000
        marks = log.dropna(subset=["val_ssim"])["budget_mark"].tolist()
        assert marks == sorted(marks) and marks[-1] == pytest.approx(1.5) and 2 <= len(marks) <= 4
        steps[name] = model["steps_trained"]
    assert steps["mse"] > steps["all"]
    with pytest.raises(ValueError, match="cpu_budget_s"):
        replace(TINY, cpu_budget_s=-1.0)


def test_without_a_budget_max_iter_rules_and_no_marks_are_written(tmp_path):
    train(replace(TINY, max_iter=4), [_volume(1)], [_volume(2)], tmp_path / "run", progress=False)
    log = pd.read_csv(tmp_path / "run" / "log.csv")
    assert log["step"].max() == 4 and log["budget_mark"].isna().all() and log["cpu_s"].is_monotonic_increasing


# --------------------------------------------------------------------------- init: fine-tuning from a model


@pytest.fixture(scope="module")
def init_models(tmp_path_factory):
    """A tiny trained model (d = 3) to start from, with its checkpoint and its served export."""
    folder = tmp_path_factory.mktemp("init")
    cfg = replace(TINY, max_iter=2, lambda_vgg=0.0, val_every=1, ckpt_every=1, seed=11)
    model = train(cfg, [_volume(1)], [_volume(2)], folder / "generalist", progress=False,
                  provenance={"run": "generalist", "corpus": ["foam", "shale"]})
    export_trained(model, folder / "served.pt")
    return {"model": model, "checkpoint": folder / "generalist" / "checkpoint.pt", "served": folder / "served.pt"}


def _state(module):
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("kind", ["model", "checkpoint", "served"])
def test_init_starts_from_exactly_the_init_models_generator(init_models, kind):
    from tomogan_core.distributed import Context
    from tomogan_core.train import build

    want = _weights(init_models["model"])  # the checkpoint's best generator is the model's, the served copy too
    cfg = replace(TINY, lambda_vgg=0.0, init=str(init_models[kind]))
    run = build(cfg, [_volume(1)], Context(), torch.device("cpu"))
    got = _state(run.generator)
    assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)
    assert run.init["init"] == str(init_models[kind]) and run.init["init_model"]["kind"] in (
        "model.pt", "checkpoint.pt", "served")
    # without init the seed's random generator; and a resumed run (fresh=False) does not read the init file
    plain = _state(build(replace(cfg, init=""), [_volume(1)], Context(), torch.device("cpu")).generator)
    assert not all(torch.equal(plain[k], want[k]) for k in want)
    resumed = build(replace(cfg, init=str(init_models[kind]) + ".gone"), [_volume(1)], Context(),
                    torch.device("cpu"), fresh=False)
    assert all(torch.equal(v, plain[k]) for k, v in _state(resumed.generator).items()) and resumed.init == {}


def test_a_run_with_init_and_no_steps_saves_the_init_weights_and_records_where_it_started(init_models, tmp_path):
    cfg = replace(TINY, max_iter=0, lambda_vgg=0.0, init=str(init_models["model"]))
    model = train(cfg, [_volume(3)], [_volume(4)], tmp_path / "ft", progress=False, provenance={"run": "user-scan"})
    want, got = _weights(init_models["model"]), _weights(model)
    assert all(torch.equal(got[k], want[k]) for k in want)
    prov = torch.load(model, weights_only=False)["provenance"]
    assert prov["run"] == "user-scan" and prov["init"] == str(init_models["model"])
    assert prov["init_provenance"] == {"run": "generalist", "corpus": ["foam", "shale"]}
    assert prov["init_model"]["kind"] == "model.pt" and prov["init_model"]["train_data"] == ["synthetic-1"]
    # the served card says it was fine-tuned from the generalist, and what that was
    export_trained(model, tmp_path / "ft.pt")
    _, card = load_served(tmp_path / "ft.pt")
    assert card["provenance"]["init"] == str(init_models["model"])
    assert card["provenance"]["init_provenance"]["run"] == "generalist"
    # a run without init records none
    plain = train(replace(cfg, init=""), [_volume(3)], [_volume(4)], tmp_path / "plain", progress=False)
    assert "init" not in torch.load(plain, weights_only=False)["provenance"]


def test_a_fine_tune_trains_on_from_the_init_and_resumes_without_it(init_models, tmp_path):
    """Killed and resumed: the same weights as uninterrupted, the init's provenance kept from the checkpoint
    (the init file is not read again), and a checkpoint of another init refused."""
    import shutil

    init = tmp_path / "init.pt"
    shutil.copy(init_models["model"], init)
    cfg = replace(TINY, max_iter=4, lambda_vgg=0.0, init=str(init))
    full = train(cfg, [_volume(3)], [_volume(4)], tmp_path / "full", progress=False)
    train(cfg, [_volume(3)], [_volume(4)], tmp_path / "cut", progress=False, stop_after=2)
    with pytest.raises(InputError, match="init"):
        train(replace(cfg, init=str(init_models["served"])), [_volume(3)], [_volume(4)], tmp_path / "cut",
              progress=False)
    with pytest.raises(InputError, match="init"):
        train(replace(cfg, init=""), [_volume(3)], [_volume(4)], tmp_path / "cut", progress=False)
    init.unlink()
    resumed = train(cfg, [_volume(3)], [_volume(4)], tmp_path / "cut", progress=False)
    a, b = _weights(full), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.load(resumed, weights_only=False)["provenance"]["init_provenance"]["run"] == "generalist"
    # fine-tuning moved the weights away from the init
    assert not all(torch.equal(a[k], v) for k, v in _weights(init_models["model"]).items())


def test_init_bad_input_is_one_error_line(init_models, tmp_path, capsys):
    from tomogan_core.train import build_parser, main

    assert "--init" in build_parser().format_help()
    ld, nd = _files(tmp_path, 1)
    vld, vnd = _files(tmp_path, 2)
    out = tmp_path / "run"
    common = ["-ld", ld, "-nd", nd, "-vld", vld, "-vnd", vnd, "-o", out, "-psz", "16", "-mbsz", "2", "-maxiter",
              "1", "-lperc", "0", "--quiet"]
    _expect(capsys, main, [*common, "-depth", "5", "--init", init_models["model"]],
            "init generator takes d = 3 slices, this run has depth 5", out)
    _expect(capsys, main, [*common, "--upsample", "nearest", "--init", init_models["served"]], "upsamples", out)
    _expect(capsys, main, [*common, "--init", tmp_path / "none.pt"], "none.pt: model file not found", out)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    _expect(capsys, main, [*common, "--init", junk], "junk.pt: not a readable PyTorch file", out)
    tensor = tmp_path / "tensor.pt"
    torch.save({"format": "tomogan-model/1", "generator": {}}, tensor)
    _expect(capsys, main, [*common, "--init", tensor], "tensor.pt: holds no generator", out)
    # and it works from the command line
    assert main([str(a) for a in [*common, "--init", init_models["checkpoint"]]]) == 0
    prov = torch.load(out / "model.pt", weights_only=False)["provenance"]
    assert prov["init"] == str(init_models["checkpoint"]) and prov["init_model"]["kind"] == "checkpoint.pt"


def test_noise2inverse_fine_tunes_from_an_init(init_models, tmp_path):
    from tomogan_core import noise2inverse as n2i

    assert "--init" in n2i.build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    rng = np.random.default_rng(0)
    clean = _volume(5).normal
    subsets = np.stack([clean + rng.normal(0, 0.3, clean.shape).astype(np.float32) for _ in range(2)])
    path = tmp_path / "subsets.h5"
    write_arrays(path, {"/subsets": subsets, "/slices": np.arange(clean.shape[0], dtype=np.int32)}, {"k": 2})
    out = tmp_path / "n2i"
    assert n2i.main(["train", str(path), "-o", str(out), "--init", str(init_models["model"]), "--max-iter", "0",
                     "--patch", "16", "--batch", "2", "--val-slices", "2", "--quiet"]) == 0
    want, got = _weights(init_models["model"]), _weights(out / "model.pt")
    assert all(torch.equal(got[k], want[k]) for k in want)
    prov = torch.load(out / "model.pt", weights_only=False)["provenance"]
    assert prov["mode"] == "noise2inverse" and prov["init"] == str(init_models["model"])
    assert prov["init_provenance"]["run"] == "generalist"


# --------------------------------------------------------------------------- normalisation "input"


def _scaled(pair, a, b):
    return VolumePair(pair.low * np.float32(a) + np.float32(b), pair.normal * np.float32(a) + np.float32(b),
                      pair.name)


def test_input_normalization_maps_each_pair_by_its_own_low_dose_volume():
    from tomogan_core.data import Normalization, input_stats
    from tomogan_core.distributed import Context
    from tomogan_core.train import build

    pairs = [_volume(1), _scaled(_volume(4), 300.0, -20.0)]  # two pairs in very different units
    run = build(replace(TINY, lambda_vgg=0.0, normalization="input"), pairs, Context(), torch.device("cpu"))
    assert (run.norm.kind, run.norm.offset, run.norm.scale) == ("input", 0.0, 1.0)
    for pair, net in zip(pairs, run.sampler.pairs):
        m, s = input_stats(pair.low)
        assert abs(net.low.mean()) < 1e-4 and net.low.std() == pytest.approx(1.0, abs=1e-4)
        np.testing.assert_allclose(net.normal, (pair.normal - m) / s, atol=1e-4)
    # the VGG window: the targets' 0.5..99.5 percentiles in their own pairs' network units
    targets = np.concatenate([n.normal.ravel() for n in run.sampler.pairs])
    assert (run.norm.vgg_lo, run.norm.vgg_hi) == pytest.approx(tuple(np.percentile(targets, [0.5, 99.5])), abs=1e-4)
    # training data in other units give the same network units and window
    again = build(replace(TINY, lambda_vgg=0.0, normalization="input"), [_scaled(p, 7.0, 3.0) for p in pairs],
                  Context(), torch.device("cpu"))
    for x, y in zip(run.sampler.pairs, again.sampler.pairs):
        np.testing.assert_allclose(x.low, y.low, atol=1e-4)
        np.testing.assert_allclose(x.normal, y.normal, atol=1e-4)
    assert again.norm.vgg_lo == pytest.approx(run.norm.vgg_lo, abs=1e-4)
    # zscore and grey255 are one map for every pair, as before
    z = build(replace(TINY, lambda_vgg=0.0, normalization="zscore"), pairs, Context(), torch.device("cpu"))
    fitted = Normalization.fit([p.normal for p in pairs], "zscore")
    assert z.norm == fitted and np.array_equal(z.sampler.pairs[1].low, fitted.to_net(pairs[1].low))
    # a constant low-dose volume has no scale: refused naming the pair
    flat = VolumePair(np.ones((10, 32, 32), np.float32), _volume(1).normal, "flat.h5")
    with pytest.raises(InputError, match="flat.h5: input volume is constant"):
        build(replace(TINY, normalization="input"), [flat], Context(), torch.device("cpu"))


@pytest.fixture(scope="module")
def models_by_norm(tmp_path_factory):
    """The same tiny training with normalisation "input" and with "zscore"."""
    folder = tmp_path_factory.mktemp("norms")
    cfg = replace(TINY, max_iter=3, lambda_vgg=0.1, val_every=1, ckpt_every=3, batch=4, patch=24)
    return {kind: train(replace(cfg, normalization=kind), [_volume(1), _volume(4)], [_volume(2)], folder / kind,
                        progress=False) for kind in ("input", "zscore")}


def _equivariance_error(model, x, a, b, **kw):
    """max |denoise(a x + b) - (a denoise(x) + b)|, relative to a * std(x)."""
    y = tomogan_core.denoise(x, model, **kw)
    ya = tomogan_core.denoise(x * np.float32(a) + np.float32(b), model, **kw)
    return float(np.abs(ya - (a * y.astype(np.float64) + b)).max() / (a * x.std()))


@pytest.mark.parametrize("a, b", [(250.0, -40.0), (0.01, 3.0), (1.0, 1000.0)])
def test_input_normalization_denoises_data_in_any_units(models_by_norm, a, b):
    """denoise(a x + b) == a denoise(x) + b for a model normalised per input; not for a zscore one."""
    x = _volume(3).low
    assert _equivariance_error(models_by_norm["input"], x, a, b) < 1e-3
    assert _equivariance_error(models_by_norm["zscore"], x, a, b) > 1e-2


def test_input_normalization_model_file_card_and_served_model(models_by_norm, tmp_path):
    from tomogan_core.modelfile import load_any as load

    path = models_by_norm["input"]
    generator, norm, info = load_model(path)
    assert norm.kind == "input" and (norm.offset, norm.scale) == (0.0, 1.0)
    assert info["config"]["normalization"] == "input"
    assert load(path).per_input and not load(models_by_norm["zscore"]).per_input
    export_trained(path, tmp_path / "served.pt")
    _, card = load_served(tmp_path / "served.pt")
    scale = card["input_scale"]
    assert scale["per_input"] == {"offset": "mean", "scale": "std",
                                  "over": "the whole low-dose input volume (all its slices)"}
    assert (scale["offset"], scale["scale"]) == (0.0, 1.0) and "mean and std" in scale["note"]
    assert card["normalization"]["kind"] == "input"
    served = load(tmp_path / "served.pt")
    assert served.per_input
    x = _volume(3).low * np.float32(40.0) + np.float32(7.0)
    np.testing.assert_allclose(tomogan_core.denoise(x, served), tomogan_core.denoise(x, path), rtol=0,
                               atol=1e-5 * np.abs(x).max())
    assert _equivariance_error(served, _volume(3).low, 80.0, -5.0) < 1e-3
    # zscore's card is as before
    export_trained(models_by_norm["zscore"], tmp_path / "z.pt")
    assert "per_input" not in load_served(tmp_path / "z.pt")[1]["input_scale"]


def test_input_normalization_infer_command_maps_the_whole_volume(models_by_norm, tmp_path, capsys):
    """tomogan-infer, whole or in slabs, enhancing every slice or a few: one map, the whole volume's."""
    import h5py

    from tomogan_core.infer import main as infer_main

    model = models_by_norm["input"]
    vol = _volume(3).low * (1.0 + 0.3 * np.arange(10, dtype=np.float32))[:, None, None]  # slabs differ in scale
    src = tmp_path / "in.h5"
    write_arrays(src, {"/recon": vol, "/slices": np.arange(10)}, {"dataset": "scan"})
    whole = tomogan_core.denoise(vol, model)
    for name, extra in (("all", []), ("slabs", ["--slab-mb", "0.004"]), ("four", ["--slices", "4"]),
                        ("four-slabs", ["--slices", "4", "--slab-mb", "0.004"])):
        out = tmp_path / f"{name}.h5"
        assert infer_main(["-ld", str(src), "-model", str(model), "-o", str(out), "--quiet", *extra]) == 0
        with h5py.File(out) as f:
            idx = f["/slices"][()]
            np.testing.assert_allclose(f["/recon"][()], whole[idx], rtol=0, atol=1e-5 * np.abs(whole).max())
            assert "normalization 'input'" in f.attrs["input_mapping"] and f.attrs["model_normalization"] == "input"
            if "slabs" in name:
                assert f.attrs["slab_slices"] < 10
    with pytest.raises(SystemExit):
        infer_main(["-ld", str(src), "-model", str(model), "-o", str(tmp_path / "g.h5"), "--grey255-from-input"])
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "normalization 'input'" in err
