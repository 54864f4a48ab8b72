"""Inference speed: FLOP counting, the benchmark's rows, the SSIM change of each variant, and bf16 inference."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from analysis.inference_speed import VARIANTS, main, measure, prepare, ssim_changes
from simulate.io import write_arrays
from tomogan_core.infer import denoise, load_any
from tomogan_core.model import Generator, GeneratorConfig, generator_flops
from tomogan_core.train import train

from test_train import TINY, _volume


def _conv_flops(depth, size):
    """2 x multiply-adds of every convolution, from the layers' shapes seen by forward hooks."""
    total = []

    def hook(module, inputs, output):
        k = module.weight.shape
        if isinstance(module, torch.nn.ConvTranspose2d):  # each input pixel scatters a Cout x kh x kw patch
            total.append(2 * inputs[0].shape[-2] * inputs[0].shape[-1] * k[0] * k[1] * k[2] * k[3])
        else:
            total.append(2 * output.shape[-2] * output.shape[-1] * k[0] * k[1] * k[2] * k[3])

    gen = Generator(GeneratorConfig(in_slices=depth))
    for m in gen.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            m.register_forward_hook(hook)
    with torch.no_grad():
        gen(torch.zeros(1, depth, size, size))
    return sum(total)


def test_generator_flops_counts_every_convolution():
    assert generator_flops(3, 32) == _conv_flops(3, 32)
    assert generator_flops(3, 64) == 4 * generator_flops(3, 32)  # linear in pixels
    assert generator_flops(5, 32) > generator_flops(3, 32)  # more input slices, a wider stem


def test_variants_compute_the_same_function():
    torch.manual_seed(0)
    gen = Generator(GeneratorConfig(in_slices=3)).eval()
    x = torch.randn(2, 3, 32, 32)
    ref = prepare(gen, VARIANTS[0])(x)
    for v in VARIANTS:
        if v.compile:
            continue  # needs a C++ toolchain: timed by the benchmark, not required by the tests
        y = prepare(gen, v)(x)
        assert y.dtype == torch.float32 and y.shape == ref.shape
        tol = 5e-2 if v.bf16 else 1e-5
        assert torch.allclose(y, ref, atol=tol * float(ref.abs().max()), rtol=0), v.name
    assert gen.enc1.conv1.weight.is_contiguous()  # prepare() leaves the caller's model in its layout


def test_measure_rows_are_consistent():
    df = measure(size=16, depth=3, batches=[1, 2], variants=VARIANTS[:3], repeats=1, warmup=0)
    assert len(df) == 6 and set(df["variant"]) == {v.name for v in VARIANTS[:3]}
    assert np.isfinite(df["gflops"]).all() and (df["gflops"] > 0).all()
    flops = generator_flops(3, 16)
    np.testing.assert_allclose(df["gflops"], df["batch"] * flops / (df["ms_per_slice"] * df["batch"] / 1000) / 1e9)
    np.testing.assert_allclose(df["fraction_of_fp32_matmul"], df["gflops"] / df["matmul_gflops_fp32"])
    assert (df["device"] == "CPU").all() and df["versions"].str.contains("torch").all()


def _model_and_val(tmp_path):
    model = train(replace(TINY, max_iter=4, lambda_vgg=0.0), [_volume(1)], [_volume(2)], tmp_path / "run",
                  progress=False)
    val = _volume(2)
    ld, nd = tmp_path / "val_ld.h5", tmp_path / "val_nd.h5"
    write_arrays(ld, {"/recon": val.low, "/slices": np.arange(val.n_slices)})
    write_arrays(nd, {"/recon": val.normal, "/slices": np.arange(val.n_slices)})
    return model, ld, nd


def test_ssim_change_is_zero_for_the_reference_variant_and_seen_for_a_lossy_one(tmp_path):
    model, ld, nd = _model_and_val(tmp_path)

    changes = ssim_changes(model, ld, nd, [4, 5], [VARIANTS[0], VARIANTS[2], VARIANTS[4]])
    assert changes["eager fp32"][1] == 0.0
    assert changes["channels_last"][1] < 1e-6
    assert 0 < changes["channels_last + bf16"][1] < 0.05
    assert np.isfinite(changes["eager fp32"][0])


def test_command_writes_the_csv(tmp_path):
    model, ld, nd = _model_and_val(tmp_path)
    out = tmp_path / "speed.csv"
    assert main([str(out), "--size", "16", "--batch", "1", "--repeats", "1", "--warmup", "0", "--no-compile",
                 "--model", str(model), "--val-input", str(ld), "--val-reference", str(nd), "--val-slices", "2",
                 "--threads", "1"]) == 0
    df = pd.read_csv(out)
    assert not df["variant"].str.contains("compile").any()
    assert (df.loc[df["variant"] == "eager fp32", "val_ssim_change"] == 0).all()
    assert df["ssim_ok"].all()


def test_bf16_inference_is_close_and_labelled(tmp_path):
    model, ld, _ = _model_and_val(tmp_path)
    vol = _volume(2).low
    fp32 = load_any(model, device="cpu")
    bf16 = load_any(model, device="cpu", precision="bf16")
    a, b = denoise(vol, fp32), denoise(vol, bf16)
    assert fp32.info["precision"] == "fp32" and bf16.info["precision"] == "bf16"
    assert 0 < np.abs(a - b).max() < 0.05 * np.abs(a).max()
    with pytest.raises(ValueError, match="precision"):
        load_any(model, device="cpu", precision="fp8")


def test_cpu_name_names_the_model_and_its_bf16_units(tmp_path):
    """Benchmark rows name the CPU: its model, and the bf16 units that make bf16 fast or not."""
    from simulate.io import cpu_name

    info = tmp_path / "cpuinfo"
    block = "processor\t: {}\nmodel name\t: Intel(R) Xeon(R) Platinum\nflags\t\t: fpu avx2 avx512f {}\n"
    info.write_text(block.format(0, "amx_bf16 avx512_bf16") + "\n" + block.format(1, ""))
    assert cpu_name(info) == "Intel(R) Xeon(R) Platinum (amx_bf16, avx512_bf16)"
    info.write_text(block.format(0, ""))
    assert cpu_name(info) == "Intel(R) Xeon(R) Platinum"
    assert cpu_name(tmp_path / "missing")  # off Linux: platform's name, never empty
