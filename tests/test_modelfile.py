"""tomogan_core.modelfile: trained and served files through one loader, depth checks, provenance, and the
one denoise loop that validation, tomogan-infer and Noise2Inverse share."""

import ast
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from simulate.io import write_arrays
from simulate.plumbing import InputError
from tomogan_core import modelfile as mf
from tomogan_core.export import export_trained

from test_train import TINY, _volume

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "tomogan_core"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny trained model.pt (d = 3), its checkpoint and its served export."""
    folder = tmp_path_factory.mktemp("modelfile")
    cfg = replace(TINY, max_iter=2, lambda_vgg=0.0, val_every=1, ckpt_every=1)
    model = folder / "run" / "model.pt"
    from tomogan_core.train import train

    train(cfg, [_volume(1)], [_volume(2)], folder / "run", provenance={"note": "modelfile test"}, progress=False)
    export_trained(model, folder / "served.pt")
    return {"model": model, "checkpoint": folder / "run" / "checkpoint.pt", "served": folder / "served.pt"}


def test_trained_and_served_files_load_through_one_function(trained):
    vol = _volume(5).low
    out = {}
    for name, kind in (("model", "trained"), ("checkpoint", "trained"), ("served", "served")):
        assert mf.model_kind(trained[name]) == kind
        model = mf.load_any(trained[name], device="cpu")
        assert isinstance(model, mf.LoadedModel) and model.depth == 3 and model.info["kind"] == kind
        out[name] = mf.denoise(vol, model)
    np.testing.assert_allclose(out["served"], out["model"], atol=1e-5)
    # the same provenance, read from the trained file or from the served card
    assert mf.model_provenance(trained["model"]) == mf.model_provenance(trained["served"]) == {"note": "modelfile test"}
    assert mf.model_provenance(trained["checkpoint"]) == {}
    assert "training_corpus" not in mf.load_served(trained["served"])[1]  # trained with no files recorded
    attrs = mf.flat_attrs(mf.load_any(trained["model"], device="cpu").info)
    assert attrs["model_kind"] == "trained" and np.isfinite(attrs["model_val_psnr"])


@pytest.mark.parametrize("name", ["model", "checkpoint", "served"])
def test_a_model_of_another_depth_is_refused_naming_the_file(trained, name):
    with pytest.raises(InputError) as err:
        mf.load_any(trained[name], depth=5, device="cpu")
    assert err.value.path == str(trained[name]) and str(err.value).startswith(f"{trained[name]}: ")
    assert "3" in err.value.problem and "5" in err.value.problem
    assert mf.load_any(trained[name], depth=3, device="cpu").depth == 3


def test_files_that_are_no_model_are_refused_naming_the_file(trained, tmp_path):
    with pytest.raises(InputError, match="none.pt: model file not found"):
        mf.load_any(tmp_path / "none.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(InputError, match="junk.pt: not a readable PyTorch file"):
        mf.load_any(junk)
    with pytest.raises(InputError, match="model.pt: not a TomoGAN training checkpoint"):
        mf.read_checkpoint(trained["model"])
    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(InputError, match="tensor.pt: not a TomoGAN model.pt"):
        mf.load_model(tensor)


def test_model_file_keeps_its_format_and_keys(trained):
    state = torch.load(trained["model"], weights_only=False)
    assert state["format"] == mf.MODEL_FORMAT == "tomogan-model/1"
    assert list(state) == ["format", "generator_config", "generator", "normalization", "config", "step", "val_ssim",
                           "val_psnr", "steps_trained", "cpu_s", "vgg_weights", "device", "versions", "train_data",
                           "val_data", "provenance"]
    ckpt = torch.load(trained["checkpoint"], weights_only=False)
    assert ckpt["format"] == mf.CHECKPOINT_FORMAT == "tomogan-checkpoint/1"
    assert list(ckpt) == ["format", "step", "config", "generator", "critic", "opt_g", "opt_d", "rng_numpy",
                          "rng_torch", "history", "best", "normalization", "cpu_s"]


def test_validation_during_training_and_tomogan_infer_give_the_same_output(tmp_path):
    """The metrics training records for its saved generator are those of tomogan-infer's output.

    d = 5 on a 6-slice validation volume, every slice scored: four of the six need repeated edge
    slices, so a second loop that fed neighbours, normalised or batched differently would show.
    """
    from simulate.scores import compare_volumes
    from tomogan_core.infer import main as infer_main
    from tomogan_core.train import train, validate

    val = _volume(2, slices=6)
    cfg = replace(TINY, depth=5, max_iter=2, lambda_vgg=0.0, val_every=1, ckpt_every=2, val_slices=6)
    model = train(cfg, [_volume(1, slices=12)], [val], tmp_path / "run", progress=False)
    saved = torch.load(model, weights_only=False)

    low = tmp_path / "val-low.h5"
    write_arrays(low, {"/recon": val.low, "/slices": np.arange(6)}, {"dataset": "val"})
    assert infer_main(["-ld", str(low), "-model", str(model), "-o", str(tmp_path / "dn.h5"), "--quiet"]) == 0
    with h5py.File(tmp_path / "dn.h5") as f:
        enhanced = f["/recon"][()]
        assert f.attrs["model_val_psnr"] == saved["val_psnr"]
    rows = compare_volumes(enhanced, val.normal)
    assert np.mean([r["psnr"] for r in rows]) == pytest.approx(saved["val_psnr"], abs=1e-4)
    assert np.mean([r["ssim"] for r in rows]) == pytest.approx(saved["val_ssim"], abs=1e-5)

    # and slice by slice: the generator being trained, as validation applies it, against the file
    generator, norm, _ = mf.load_model(model)
    in_training = mf.denoise(val.low, mf.LoadedModel.from_generator(generator, norm), repeat_edges=True)
    np.testing.assert_allclose(in_training, enhanced, rtol=0, atol=1e-5 * np.abs(enhanced).max())
    metrics = validate(generator, [val], norm, n_slices=6, device=torch.device("cpu"))
    assert metrics == {"val_ssim": saved["val_ssim"], "val_psnr": saved["val_psnr"]}


class _Fake(mf.LoadedModel):
    """d = 3, output = the squared centre slice (not linear: averaging before or after it differs)."""

    def __init__(self):
        super().__init__(lambda x: x[:, 1:2] ** 2, 3, {}, torch.device("cpu"))


def test_n2i_input_is_the_mean_of_the_other_subsets_and_outputs_are_averaged():
    rng = np.random.default_rng(0)
    subsets = rng.normal(size=(4, 5, 6, 6)).astype(np.float32)
    out = mf.denoise(subsets, _Fake(), n2i=True, indices=[0, 4, 2], batch=2)
    others = [(subsets.sum(axis=0) - subsets[j]) / 3 for j in range(4)]
    expected = np.mean([o ** 2 for o in others], axis=0)[[0, 4, 2]]
    np.testing.assert_allclose(out, expected, rtol=1e-5)
    # the neighbours: with the centre slice replaced by its neighbours' mean, slice 0 repeats itself
    fake = mf.LoadedModel(lambda x: ((x[:, 0:1] + x[:, 2:3]) / 2) ** 2, 3, {}, torch.device("cpu"))
    got = mf.denoise(subsets, fake, n2i=True)
    by_slice = np.mean([(((o[[0, 0, 1, 2, 3]] + o[[1, 2, 3, 4, 4]]) / 2) ** 2) for o in others], axis=0)
    np.testing.assert_allclose(got, by_slice, rtol=1e-5)
    with pytest.raises(ValueError, match="k >= 2"):
        mf.denoise(subsets[:1], _Fake(), n2i=True)
    with pytest.raises(ValueError, match="slices, rows, cols"):
        mf.denoise(subsets, _Fake())


def test_denoise_repeats_edges_only_when_asked():
    vol = (np.arange(2, dtype=np.float32) ** 2)[:, None, None] * np.ones((1, 4, 4), np.float32)
    with pytest.raises(ValueError, match="fewer than the model's depth"):
        mf.denoise(vol, _Fake())
    mean3 = mf.LoadedModel(lambda x: x.mean(dim=1, keepdim=True), 3, {}, torch.device("cpu"))
    np.testing.assert_allclose(mf.denoise(vol, mean3, repeat_edges=True)[:, 0, 0], [1 / 3, 2 / 3])
    with pytest.raises(ValueError, match="precision"):
        mf.LoadedModel(lambda x: x, 1, {}, torch.device("cpu"), precision="fp16")


def _imports(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            yield node.module or "", node.level, [a.name for a in node.names]


def test_no_module_imports_a_private_name_of_another_in_this_package():
    for path in CORE.glob("*.py"):
        for module, level, names in _imports(path):
            if level:  # from .x import ...
                private = [n for n in names if n.startswith("_")]
                assert not private, f"{path.name} imports {private} from .{module}"


def test_inference_does_not_import_training():
    for name in ("infer.py", "modelfile.py", "export.py"):
        assert not any(m.endswith("train") for m, _, _ in _imports(CORE / name)), name
    proc = subprocess.run([sys.executable, "-c", "import sys, tomogan_core.infer, tomogan_core.export; "
                           "print(sorted(m for m in sys.modules if m.startswith('tomogan_core')))"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "tomogan_core.train" not in proc.stdout and "tomogan_core.modelfile" in proc.stdout


# --------------------------------------------------------------------------- normalisation "input", read_generator


def _squares(per_input):
    """d = 3, output = the squared centre slice: not equivariant unless normalised per input."""
    return mf.LoadedModel(lambda x: x[:, 1:2] ** 2, 3, {}, torch.device("cpu"), per_input=per_input)


def test_a_per_input_model_maps_each_volume_by_its_own_mean_and_std():
    from tomogan_core.data import input_stats

    rng = np.random.default_rng(1)
    vol = rng.normal(5.0, 2.0, size=(6, 8, 8)).astype(np.float32)
    m, s = input_stats(vol)
    assert (m, s) == pytest.approx((vol.astype(np.float64).mean(), vol.astype(np.float64).std()), rel=1e-12)
    got = mf.denoise(vol, _squares(True), indices=[4, 1])  # the map is the whole volume's, whatever slices
    np.testing.assert_allclose(got, (((vol - m) / s) ** 2 * s + m)[[4, 1]], rtol=1e-5)
    a, b = 123.0, -9.5
    np.testing.assert_allclose(mf.denoise(vol * a + b, _squares(True)), a * mf.denoise(vol, _squares(True)) + b,
                               rtol=1e-4, atol=1e-4 * a)
    assert not np.allclose(mf.denoise(vol * a + b, _squares(False)), a * mf.denoise(vol, _squares(False)) + b,
                           rtol=1e-2)
    bound = _squares(True).for_input(m, s)
    assert not bound.per_input and bound.info["input_map"] == {"offset": m, "scale": s}
    np.testing.assert_allclose(mf.denoise(vol, bound), mf.denoise(vol, _squares(True)), rtol=0, atol=0)
    with pytest.raises(ValueError, match="constant"):
        mf.denoise(np.ones((3, 4, 4), np.float32), _squares(True))
    with pytest.raises(ValueError, match="fixed map"):
        _squares(False).for_input(0.0, 1.0)


def test_n2i_with_a_per_input_model_maps_each_pass_by_its_own_input():
    """Pass j's input (the mean of the other k - 1) by its own mean and std, as training pair j was mapped."""
    rng = np.random.default_rng(2)
    subsets = rng.normal(3.0, 1.0, size=(3, 5, 6, 6)).astype(np.float32)
    others = [((subsets.sum(axis=0, dtype=np.float64) - subsets[j]) / 2).astype(np.float32) for j in range(3)]
    want = []
    for o in others:
        m, s = o.astype(np.float64).mean(), o.astype(np.float64).std()
        want.append(((o - m) / s) ** 2 * s + m)
    got = mf.denoise(subsets, _squares(True), n2i=True)
    np.testing.assert_allclose(got, np.mean(want, axis=0), rtol=1e-5)
    a, b = 0.02, 40.0
    np.testing.assert_allclose(mf.denoise(subsets * a + b, _squares(True), n2i=True), a * got + b, rtol=1e-5,
                               atol=1e-4 * a)


def test_read_generator_reads_every_kind_and_refuses_what_holds_none(trained, tmp_path):
    cfg, weights, summary = mf.read_generator(trained["model"])
    assert cfg == {"in_slices": 3, "upsample": "bilinear"} and summary["kind"] == "model.pt"
    assert summary["provenance"] == {"note": "modelfile test"} and summary["normalization"] == "grey255"
    for name, kind in (("checkpoint", "checkpoint.pt"), ("served", "served")):
        c, w, s = mf.read_generator(trained[name])
        assert c == cfg and s["kind"] == kind and set(w) == set(weights)
        assert all(torch.equal(w[k], weights[k]) for k in weights)
    assert mf.read_generator(trained["served"])[2]["provenance"] == {"note": "modelfile test"}
    with pytest.raises(InputError, match="none.pt: model file not found"):
        mf.read_generator(tmp_path / "none.pt")
    cut = tmp_path / "cut.pt"
    state = torch.load(trained["model"], weights_only=False)
    state["generator"] = {k: v for i, (k, v) in enumerate(state["generator"].items()) if i}  # a weight missing
    torch.save(state, cut)
    with pytest.raises(InputError, match="cut.pt: holds no usable generator"):
        mf.read_generator(cut)
    ckpt = torch.load(trained["checkpoint"], weights_only=False)
    ckpt["best"]["generator"] = None
    torch.save(ckpt, tmp_path / "early.pt")
    with pytest.raises(InputError, match="no validated generator"):
        mf.read_generator(tmp_path / "early.pt")
