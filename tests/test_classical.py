"""The registry of classical methods: its entries, their functions on tiny inputs, and timing through it."""

import dataclasses
import types

import numpy as np
import pytest

from analysis import classical
from analysis.classical import INPUTS, METHODS, TV_ITER, TV_RECON_TOL, Method, Projections, each_value, format_value
from simulate.acquire import angles
from simulate.reconstruct import fbp, project, sirt, tv_denoise
from simulate.scores import compare_volumes

# The study's default grids and the table cells' symbols, as they were before the registry: changing one
# changes every result, so it is a decision, not a refactoring.
EXPECTED = {
    "sirt": ("SIRT", "n_iter", "n", (10, 20, 50, 100, 200, 300, 400, 600, 800), "projections", ()),
    "sirt-tv": ("SIRT+TV", "weight", "w", (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0), "sirt", ("sirt",)),
    "fbp-tv": ("FBP+TV", "weight", "w", (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0), "fbp", ()),
    "fbp-bm3d": ("FBP+BM3D", "sigma", "σ", (0.025, 0.05, 0.1, 0.2, 0.4, 0.8), "fbp", ()),
    "tv-recon": ("TV-PDHG", "weight", "λ", (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0), "projections", ()),
    "fbp-bm3d-psd": ("FBP+BM3D (ramp)", "sigma", "σ", (0.025, 0.05, 0.1, 0.2, 0.4, 0.8), "fbp", ()),
}


def _disc(n=32, slices=3):
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
    vol = np.zeros((slices, n, n), np.float32)
    vol[:, yy ** 2 + xx ** 2 < (0.35 * n) ** 2] = 0.02
    vol[:, (yy - 3) ** 2 + (xx + 2) ** 2 < 16] = 0.05
    return vol


@pytest.fixture(scope="module")
def tiny():
    """Each input kind for a 32 x 32 disc: noisy projections, and a noisy reconstruction for the others."""
    theta = angles(48)
    sino = project(_disc(), theta)
    sino = sino + np.random.default_rng(0).normal(0, 0.05 * sino.std(), sino.shape).astype(np.float32)
    rec = fbp(sino, theta)
    return {"projections": Projections(sino, theta, 16.0), "fbp": rec, "sirt": rec}


def _total_variation(vol):
    return float(np.abs(np.diff(vol, axis=-1)).sum() + np.abs(np.diff(vol, axis=-2)).sum())


def test_the_registry_holds_the_six_methods_in_table_order():
    assert list(METHODS) == ["sirt", "sirt-tv", "fbp-tv", "fbp-bm3d", "tv-recon", "fbp-bm3d-psd"]
    for name, (label, parameter, symbol, grid, kind, needs) in EXPECTED.items():
        m = METHODS[name]
        assert (m.name, m.label, m.parameter, m.symbol, m.grid, m.input, m.needs) == \
            (name, label, parameter, symbol, grid, kind, needs)
        assert m.input in INPUTS and all(need in METHODS for need in m.needs)
    assert METHODS["sirt"].value_type is int and METHODS["fbp-tv"].value_type is float
    assert METHODS["sirt"].tuning_key == "sirt_n_iter"
    assert TV_ITER == 1000


def test_the_schema_offers_every_registered_method_and_defaults_to_the_default_ones():
    """A method registered here but missing from the schema's list would be left out of every table unnoticed."""
    import yaml

    from analysis.classical import DEFAULT_METHODS
    from study.config import SCHEMA

    methods = yaml.safe_load(SCHEMA.read_text())["properties"]["classical"]["properties"]["methods"]
    assert methods["items"]["enum"] == list(METHODS) and methods["default"] == DEFAULT_METHODS
    assert set(DEFAULT_METHODS) < set(METHODS) and "tv-recon" not in DEFAULT_METHODS


def test_tables_take_the_classical_columns_from_the_registry(monkeypatch):
    import importlib

    import analysis.tables as tables

    assert list(tables.COLUMNS)[:7] == ["fbp", "sirt", "sirt-tv", "fbp-tv", "fbp-bm3d", "tv-recon", "fbp-bm3d-psd"]
    assert [tables.COLUMNS[n] for n in METHODS] == ["SIRT", "SIRT+TV", "FBP+TV", "FBP+BM3D", "TV-PDHG",
                                                   "FBP+BM3D (ramp)"]
    assert list(tables.COLUMNS)[7:] == ["n2i", "tomogan", "tomogan-release"]
    # a relabelled entry is what the table shows (reload: COLUMNS is built at import)
    monkeypatch.setitem(METHODS, "fbp-tv", dataclasses.replace(METHODS["fbp-tv"], label="FBP+TV (Chambolle)"))
    try:
        assert importlib.reload(tables).COLUMNS["fbp-tv"] == "FBP+TV (Chambolle)"
    finally:
        monkeypatch.undo()
        importlib.reload(tables)
    assert tables.COLUMNS["fbp-tv"] == "FBP+TV"


def test_an_unknown_name_raises_value_error_listing_the_allowed_ones():
    with pytest.raises(ValueError, match="unknown method 'art'; choose one of sirt, sirt-tv, fbp-tv, fbp-bm3d, "
                                         "tv-recon, fbp-bm3d-psd$"):
        METHODS["art"]
    assert "art" not in METHODS and METHODS.get("art") is None


def test_an_entry_is_checked_when_made():
    fn = METHODS["fbp-tv"].apply
    with pytest.raises(ValueError, match="input 'sinogram'"):
        Method("x", "X", "w", "w", (1.0,), "sinogram", each_value(fn), fn)
    with pytest.raises(ValueError, match="needs sirt"):
        Method("x", "X", "w", "w", (1.0,), "sirt", each_value(fn), fn)
    with pytest.raises(ValueError, match="empty grid"):
        Method("x", "X", "w", "w", (), "fbp", each_value(fn), fn)
    with pytest.raises(AttributeError):  # frozen
        METHODS["sirt"].grid = (1,)


@pytest.mark.parametrize("name", list(METHODS))
def test_apply_works_on_a_tiny_input_and_candidates_agree_with_it(name, tiny):
    m = METHODS[name]
    x = tiny[m.input]
    value = m.grid[len(m.grid) // 2]
    out = m.apply(x, value)
    assert out.shape == (3, 32, 32) and out.dtype == np.float32 and np.isfinite(out).all()
    if m.input != "projections":  # a denoiser smooths its input
        assert _total_variation(out) < 0.9 * _total_variation(x)
    grid = [m.value_type(v) for v in m.grid[:2]]
    cands = list(m.candidates(x, grid))
    assert [v for v, _ in cands] == grid
    for v, vol in cands:  # BM3D's own thread pool leaves float32 round-off between calls
        if name == "tv-recon":  # a weight after one that stopped starts warm: apply's image to the stop's accuracy
            cold = m.apply(x, v)  # (tests/test_baselines.py: 20 tolerances, relative L2)
            assert np.linalg.norm(vol - cold) <= 20 * TV_RECON_TOL * np.linalg.norm(cold)
            continue
        np.testing.assert_allclose(vol, m.apply(x, v), rtol=1e-4, atol=1e-7)


def test_the_functions_are_the_study_numerics(tiny):
    p, rec = tiny["projections"], tiny["fbp"]
    np.testing.assert_array_equal(METHODS["sirt"].apply(p, 7), sirt(p.data, p.theta, n_iter=7, center=p.center))
    np.testing.assert_array_equal(METHODS["fbp-tv"].apply(rec, 0.1), tv_denoise(rec, weight=0.1, n_iter=TV_ITER))
    np.testing.assert_array_equal(METHODS["sirt-tv"].apply(rec, 0.1), METHODS["fbp-tv"].apply(rec, 0.1))


def test_format_value():
    assert [format_value(v) for v in (50, np.int64(7), 0.05, 1.0, 0.2)] == ["50", "7", "0.05", "1", "0.2"]


def test_time_methods_runs_the_registered_methods(tiny, monkeypatch):
    torch = pytest.importorskip("torch")
    import tomogan_core.infer

    from analysis.timing import time_methods

    monkeypatch.setattr(tomogan_core.infer, "denoise", lambda vol, model, indices, repeat_edges: vol[indices])
    calls = []

    def scale(x, value, *, backend="auto", threads=1):
        calls.append(value)
        return x * value
    monkeypatch.setitem(METHODS, "fbp-scale", Method("fbp-scale", "FBP×k", "scale", "k", (1.0, 2.0), "fbp",
                                                     each_value(scale), scale))
    p = tiny["projections"]
    reference = _disc()[1:2]
    model = types.SimpleNamespace(device=torch.device("cpu"))
    tuned = {"sirt": {"value": 5, "parameter": "n_iter"}, "sirt-tv": {"value": 0.2, "parameter": "weight"},
             "fbp-tv": {"value": 0.1, "parameter": "weight"}, "fbp-bm3d": {"value": 0.05, "parameter": "sigma"},
             "fbp-scale": {"value": 2.0, "parameter": "scale"}}
    kw = dict(center=p.center, sirt_iter=5, repeats=1, backend="auto", threads=1, margin=1)
    rows = time_methods(p.data, p.theta, reference, model, tuned=tuned, **kw)
    assert [(r["method"], r["setting"]) for r in rows] == [
        ("FBP", ""), ("TomoGAN", ""), ("FBP+TomoGAN", ""), ("SIRT (5 it.)", "paper's iteration count"),
        ("SIRT (5 it., tuned)", "n_iter=5"), ("SIRT (5 it.)+TV, tuned", "weight=0.2"),
        ("FBP+TV, tuned", "weight=0.1"), ("FBP+BM3D, tuned", "sigma=0.05"), ("FBP×k, tuned", "scale=2")]
    by = {r["method"]: r for r in rows}
    assert calls == [2.0, 2.0]  # warm-up and one timed run, at the tuned value
    # the classical rows are their methods on the inner slice: SIRT at the tuned count is the paper's row here
    assert by["SIRT (5 it., tuned)"]["ssim"] == by["SIRT (5 it.)"]["ssim"]
    inner_fbp = fbp(p.data, p.theta, center=p.center)[1:2]
    expect = compare_volumes(tv_denoise(inner_fbp, weight=0.1, n_iter=TV_ITER), reference)[0]["ssim"]
    assert by["FBP+TV, tuned"]["ssim"] == pytest.approx(expect, abs=1e-12)
    expect = compare_volumes(tv_denoise(sirt(p.data[:, 1:2], p.theta, n_iter=5, center=p.center), weight=0.2,
                                        n_iter=TV_ITER), reference)[0]["ssim"]
    assert by["SIRT (5 it.)+TV, tuned"]["ssim"] == pytest.approx(expect, abs=1e-12)
    # the time of a method's input is part of its own: the FBP for FBP+*, the tuned SIRT for SIRT+TV
    assert by["FBP+TV, tuned"]["seconds"] > by["FBP"]["seconds"]
    assert by["SIRT (5 it.)+TV, tuned"]["seconds"] > by["SIRT (5 it., tuned)"]["seconds"]
    # SIRT+TV starts from the tuned SIRT: without sirt's tuning it is not timed
    rows = time_methods(p.data, p.theta, reference, model, tuned={"sirt-tv": tuned["sirt-tv"]}, **kw)
    assert [r["method"] for r in rows][4:] == []


def test_the_module_is_documented():
    assert set(classical.__all__) <= set(dir(classical))
    assert classical.__doc__ and ">>>" in classical.__doc__
    assert classical.logger.name == "analysis.classical"
