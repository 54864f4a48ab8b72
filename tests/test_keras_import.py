"""Tests of tomogan_core.keras_import and the served format against Keras' own outputs.

The reference vectors (tomogan_core/weights/tomogan-keras-vector-*.npz) were computed by Keras
(tensorflow-cpu 2.15.1) from the authors' TomoGAN.h5: ``a`` as the file loads (nearest-neighbour
upsampling), ``a-bilinear`` with the upsampling layers switched to bilinear. Values are 0..255 grey levels.
"""

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from tomogan_core.modelfile import load_served
from tomogan_core.keras_import import (
    RELEASED_WEIGHTS_SHA256,
    _sha256,
    load_keras_generator,
    main,
    read_keras_generator,
    released_weights_path,
)

WEIGHTS = released_weights_path()
VECTORS = WEIGHTS.parent
ATOL = 2e-3  # float32 PyTorch vs Keras on the 0..255 scale; a float64 re-implementation matched to 3.1e-4


def _vector(name):
    data = np.load(VECTORS / f"tomogan-keras-vector-{name}.npz")
    return torch.from_numpy(data["input_nchw"]), torch.from_numpy(data["output_nchw"])


def _max_diff(model, name):
    x, expected = _vector(name)
    with torch.inference_mode():
        return (model(x) - expected).abs().max().item()


@pytest.fixture(scope="module")
def nearest_model():
    return load_keras_generator(WEIGHTS)


def test_shipped_file_is_the_release():
    assert _sha256(WEIGHTS) == RELEASED_WEIGHTS_SHA256
    assert (WEIGHTS.parent / "TomoGAN.h5.LICENSE").read_text().lstrip().startswith("Apache License")


def test_reads_release_layout():
    keras = read_keras_generator(WEIGHTS)
    assert keras["interpolation"] == "nearest"  # the saved config names no interpolation
    assert keras["in_slices"] == 1
    assert [name for name, _, _ in keras["convs"]] == ["conv2d"] + [f"conv2d_{i}" for i in range(1, 16)]


def test_imported_model_matches_keras_nearest(nearest_model):
    assert nearest_model.cfg.upsample == "nearest"
    assert nearest_model.get_num_params() == 694_897
    assert _max_diff(nearest_model, "a") < ATOL


def test_imported_model_matches_keras_bilinear():
    model = load_keras_generator(WEIGHTS, upsample="bilinear")
    assert _max_diff(model, "a-bilinear") < ATOL


def test_upsampling_mode_matters_at_this_tolerance(nearest_model):
    # the vectors differ by far more than ATOL, so each comparison above pins the mode
    assert _max_diff(nearest_model, "a-bilinear") > 100 * ATOL


def test_swapped_concatenation_order_fails_the_comparison(nearest_model):
    # cat([up, skip]) with the same weights == cat([skip, up]) with the input-channel halves swapped
    import copy

    swapped = copy.deepcopy(nearest_model)
    with torch.no_grad():
        w = swapped.dec3.conv1.weight  # (64, 128 skip + 128 up, 3, 3)
        w.copy_(torch.cat([w[:, 128:], w[:, :128]], dim=1))
    assert _max_diff(swapped, "a") > 100 * ATOL


def test_upsample_none_takes_the_file_setting():
    assert load_keras_generator(WEIGHTS, upsample=None).cfg.upsample == "nearest"


def test_cli_writes_served_model_that_reproduces_keras(tmp_path):
    out = tmp_path / "OUT.pt"
    assert main([str(WEIGHTS), str(out)]) == 0
    assert out.is_file() and (tmp_path / "OUT.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["OUT.json", "OUT.pt"]  # no temp files left

    card = json.loads((tmp_path / "OUT.json").read_text())
    assert card["format_version"] == 1
    assert card["in_slices"] == 1 and card["upsample"] == "nearest"
    assert card["input_scale"] == {"kind": "affine", "offset": 0.0, "scale": 1.0, "note": "raw 0..255 grey levels"}
    assert card["source"] == f"keras-import: TomoGAN.h5 sha256={RELEASED_WEIGHTS_SHA256}"
    assert card["torch_version"] == torch.__version__ and card["created"]

    x, expected = _vector("a")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.* warns it is deprecated (torch 2.13)
        scripted = torch.jit.load(str(out))
    with torch.inference_mode():
        assert (scripted(x) - expected).abs().max().item() < ATOL
        # any size: padding happens inside the scripted forward
        assert scripted(x[..., :37, :50]).shape == (1, 1, 37, 50)

    module, loaded_card = load_served(out)
    assert loaded_card == card
    with torch.inference_mode():
        assert (module(x) - expected).abs().max().item() < ATOL


def test_cli_bilinear(tmp_path):
    out = tmp_path / "bil.pt"
    assert main([str(WEIGHTS), str(out), "--upsample", "bilinear"]) == 0
    module, card = load_served(out)
    assert card["upsample"] == "bilinear" and card["keras_file_upsample"] == "nearest"
    x, expected = _vector("a-bilinear")
    with torch.inference_mode():
        assert (module(x) - expected).abs().max().item() < ATOL


def _truncated(tmp_path):
    path = tmp_path / "truncated.h5"
    path.write_bytes(WEIGHTS.read_bytes()[:1000])
    return path


def _text_file(tmp_path):
    path = tmp_path / "notes.h5"
    path.write_text("this is not an HDF5 file\n")
    return path


@pytest.mark.parametrize(
    ("make_input", "reason"),
    [
        (lambda tmp: tmp / "missing.h5", "no such file"),
        (_truncated, "corrupt or truncated"),
        (_text_file, "not an HDF5 file"),
    ],
    ids=["missing", "truncated", "text"],
)
def test_cli_errors_one_line_exit_2_no_output(tmp_path, capfd, make_input, reason):
    bad = make_input(tmp_path)
    out = tmp_path / "out" / "OUT.pt"
    with pytest.raises(SystemExit) as exc:
        main([str(bad), str(out)])
    assert exc.value.code == 2
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert str(bad) in err and reason in err
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_module_entry_point_exit_code(tmp_path):
    bad = _text_file(tmp_path)
    out = tmp_path / "OUT.pt"
    repo_root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-m", "tomogan_core.keras_import", str(bad), str(out)],
        capture_output=True, text=True, cwd=repo_root, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {bad}: not an HDF5 file"
    assert not out.exists()


def _edited_copy(tmp_path, edit):
    path = tmp_path / "edited.h5"
    shutil.copy(WEIGHTS, path)
    with h5py.File(path, "r+") as fh:
        edit(fh["model_weights"])
    return path


def test_missing_weight_is_named(tmp_path):
    path = _edited_copy(tmp_path, lambda w: w["conv2d_3/conv2d_3"].__delitem__("kernel:0"))
    with pytest.raises(ValueError, match=r"edited\.h5: missing weight model_weights/conv2d_3/conv2d_3/kernel:0"):
        load_keras_generator(path)


def test_shape_mismatch_is_named(tmp_path):
    def edit(weights):
        group = weights["conv2d_9/conv2d_9"]
        del group["bias:0"]
        group["bias:0"] = np.zeros(63, np.float32)

    path = _edited_copy(tmp_path, edit)
    with pytest.raises(ValueError, match=r"edited\.h5: shape mismatch for conv2d_9"):
        load_keras_generator(path)


def test_bad_upsample_argument():
    with pytest.raises(ValueError, match="upsample must be one of"):
        load_keras_generator(WEIGHTS, upsample="transpose")


def test_release_model_applied_to_other_units_through_the_input_grey_range(tmp_path):
    """--grey255-from-input: same output as mapping the data to 0..255 by hand and back."""
    from tomogan_core.infer import grey255_from_input, load_any

    served = tmp_path / "release.pt"
    assert main([str(released_weights_path()), str(served)]) == 0
    rng = np.random.default_rng(0)
    vol = (0.01 * rng.random((3, 32, 32))).astype(np.float32)  # attenuation-like units
    model = load_any(served, device="cpu")
    wrapped, mapping = grey255_from_input(model, vol)
    lo, hi = np.percentile(vol, [0.5, 99.5])
    step = (hi - lo) / 255
    by_hand = model((vol[None, :1] - lo) / step) * step + lo
    np.testing.assert_allclose(wrapped(vol[None, :1]), by_hand, rtol=1e-4, atol=1e-7)
    assert "0..255" in mapping["input_mapping"]
