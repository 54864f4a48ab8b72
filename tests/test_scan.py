"""tomogan-scan on the demo scan as acquired: the ranking, the volume of every row, a forced method, angles in
radians, a model's route, and one-line refusals of bad scans."""

import json
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from analysis import scan as sc
from simulate.io import write_arrays

DEMO = Path(__file__).parent / "data" / "scan_demo.h5"
TRUE_AXIS = 67.3  # tests/data/make_scan_demo.py
FAST = ["--methods", "fbp", "sirt", "--k", "3", "--rank-rows", "2", "--quiet"]  # SIRT: all counts in one run
FBP = ["--methods", "fbp", "--k", "3", "--rank-rows", "2", "--quiet"]


def _raw(path, *, theta=None, views=slice(None), data=None):
    """A copy of the demo scan, with its angles replaced or its views thinned."""
    with h5py.File(DEMO) as f:
        arrays = {name: f[name][()] for name in ("/exchange/data", "/exchange/data_white", "/exchange/data_dark",
                                                 "/exchange/theta")}
        attrs = dict(f.attrs)
    arrays["/exchange/data"] = arrays["/exchange/data"][views] if data is None else data
    arrays["/exchange/theta"] = arrays["/exchange/theta"][views] if theta is None else theta
    write_arrays(path, arrays, attrs)
    return path


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """An untrained depth-3 generator saved as model.pt: a model's route, at the cost of a few milliseconds."""
    from tomogan_core.noise2inverse import train_n2i
    from tomogan_core.train import TrainConfig

    subsets = np.random.default_rng(5).normal(1.0, 0.3, size=(4, 4, 32, 32)).astype(np.float32)
    return train_n2i(subsets, tmp_path_factory.mktemp("model") / "tiny", TrainConfig(
        depth=3, patch=32, batch=2, max_iter=0, val_every=1, ckpt_every=1, val_slices=1, seed=5), progress=False)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("scan") / "out"
    sc.main([str(DEMO), "-o", str(out), *FAST])
    return out


def test_the_demo_scan_is_ranked_and_every_row_reconstructed(demo_run):
    table = pd.read_csv(demo_run / "ranking.csv")
    assert {"method", "label", "parameter", "value", "score", "score_se", "rank", "chosen"} <= set(table.columns)
    assert list(table["rank"]) == list(range(1, len(table) + 1)) and table["score"].is_monotonic_increasing
    assert set(table["method"]) == {"fbp", "sirt"} and table["chosen"].sum() == 1
    assert (table["score_se"] > 0).all()
    with h5py.File(demo_run / "volume.h5") as f, h5py.File(DEMO) as raw:
        assert f["/recon"].shape[0] == raw["/exchange/data"].shape[1]  # every detector row of the scan
        assert np.isfinite(f["/recon"][()]).all() and f.attrs["method"] == table.iloc[0]["method"]
        assert f.attrs["source"] == "synthetic-demo-scan" and not f.attrs["forced"]
    html = (demo_run / "summary.html").read_text()
    assert "Use " in html and "rotation axis" in html and "photons per pixel" in html and "summary.png" in html
    assert (demo_run / "summary.png").stat().st_size > 1000


def test_the_axis_is_found_and_checked_a_second_way(demo_run):
    from simulate.acquire import read_projections

    data, theta, attrs = read_projections(demo_run / "projections.h5")
    assert abs(attrs["center"] - TRUE_AXIS) < 0.5
    assert abs(sc.mass_center(data, theta) - TRUE_AXIS) < 1.0
    assert sc.check_center(data, theta, attrs["center"])["center_agree"] is True
    assert sc.check_center(data, theta, attrs["center"] + 3)["center_agree"] is False  # a wrong axis is flagged


def test_a_forced_method_writes_that_methods_volume(tmp_path, tiny_model):
    args = [str(DEMO), *FBP, "--model", f"tiny={tiny_model}"]
    sc.main([args[0], "-o", str(tmp_path / "ranked"), *args[1:]])
    table = pd.read_csv(tmp_path / "ranked" / "ranking.csv")
    loser = table.iloc[-1]["method"]
    sc.main([args[0], "-o", str(tmp_path / "forced"), *args[1:], "--method", loser])
    with h5py.File(tmp_path / "forced" / "volume.h5") as f:
        assert f.attrs["method"] == loser and bool(f.attrs["forced"])
        forced = f["/recon"][()]
    with h5py.File(tmp_path / "ranked" / "volume.h5") as f:
        assert f.attrs["method"] == table.iloc[0]["method"] != loser
        assert not np.allclose(forced, f["/recon"][()])  # not the chosen route's volume


def test_angles_in_radians_give_the_same_volume(tmp_path, demo_run):
    with h5py.File(DEMO) as f:
        theta = f["/exchange/theta"][()]
    raw = _raw(tmp_path / "radians.h5", theta=np.radians(theta))
    sc.main([str(raw), "-o", str(tmp_path / "rad"), *FBP])
    sc.main([str(DEMO), "-o", str(tmp_path / "deg"), *FBP])
    with h5py.File(tmp_path / "rad" / "volume.h5") as a, h5py.File(tmp_path / "deg" / "volume.h5") as b:
        np.testing.assert_allclose(a["/recon"][()], b["/recon"][()], atol=1e-5)
    with h5py.File(tmp_path / "rad" / "projections.h5") as f:
        assert f.attrs["theta_units_raw"] == "radians (converted)"


def test_a_sparse_scan_as_acquired_and_a_models_route(tmp_path, tiny_model):
    """Every 4th view, as a sparse acquisition would store it; a model given is ranked and, forced, writes the
    volume of every row (FBP, then the model with its neighbours)."""
    raw = _raw(tmp_path / "sparse.h5", views=slice(None, None, 4))
    sc.main([str(raw), "-o", str(tmp_path / "out"), *FBP, "--model", f"tiny={tiny_model}", "--method",
             "tomogan:tiny"])
    table = pd.read_csv(tmp_path / "out" / "ranking.csv")
    assert "tomogan:tiny" in set(table["method"])
    with h5py.File(tmp_path / "out" / "volume.h5") as f, h5py.File(tmp_path / "out" / "projections.h5") as p:
        assert f["/recon"].shape[0] == p["/exchange/data"].shape[1] and f.attrs["method"] == "tomogan:tiny"
        assert p.attrs["views_kept"] == 45
    assert not (tmp_path / "out" / "volume_fbp.h5").exists()  # the model route's FBP is not left behind


def test_a_models_view_consistent_route_corrects_it_and_writes_every_row(tmp_path, tiny_model):
    """An untrained model's image is far from what the views say: SIRT from it (then TV, both tuned on held-out
    views) predicts the left-out views better than the model alone; forced, it writes the volume of every row
    and leaves no intermediate file behind."""
    raw = _raw(tmp_path / "sparse.h5", views=slice(None, None, 4))
    sc.main([str(raw), "-o", str(tmp_path / "out"), *FBP, "--model", f"tiny={tiny_model}", "--method",
             "tomogan:tiny+sirt"])
    table = pd.read_csv(tmp_path / "out" / "ranking.csv").set_index("method")
    assert table.loc["tomogan:tiny+sirt", "score"] < table.loc["tomogan:tiny", "score"]
    assert table.loc["tomogan:tiny+sirt", "label"].startswith("TomoGAN tiny, then SIRT")
    assert table.loc["tomogan:tiny+sirt", "parameter"] == "n_iter, tv_weight"
    with h5py.File(tmp_path / "out" / "volume.h5") as f, h5py.File(tmp_path / "out" / "projections.h5") as p:
        assert f["/recon"].shape[0] == p["/exchange/data"].shape[1] and f.attrs["method"] == "tomogan:tiny+sirt"
        assert np.isfinite(f["/recon"][()]).all()
    assert sorted(x.name for x in (tmp_path / "out").glob("volume*")) == ["volume.h5"]
    sc.main([str(raw), "-o", str(tmp_path / "alone"), *FBP, "--model", f"tiny={tiny_model}", "--no-consistent"])
    assert "tomogan:tiny+sirt" not in set(pd.read_csv(tmp_path / "alone" / "ranking.csv")["method"])


def test_the_grids_given_are_the_ones_searched(tmp_path, tiny_model, capsys):
    """--grids replaces the registry's grids (the config's classical.grids in the workflow), the view-consistent
    route's included; a grid naming an unknown method is refused before anything is written."""
    grids = '{"sirt": [3, 7], "consistent": {"n_iter": [2], "tv_weight": [0]}}'
    sc.main([str(DEMO), "-o", str(tmp_path / "o"), *FAST, "--model", f"tiny={tiny_model}", "--grids", grids])
    table = pd.read_csv(tmp_path / "o" / "ranking.csv", dtype={"value": str}).set_index("method")
    assert table.loc["sirt", "value"] in {"3", "7"} and table.loc["tomogan:tiny+sirt", "value"] == "2, 0"
    with pytest.raises(SystemExit):
        sc.main([str(DEMO), "-o", str(tmp_path / "bad"), *FAST, "--grids", '{"art": [1]}'])
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: --grids: unknown method 'art'"), err
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("change, needle", [
    ("wrong-length", "angles"),
    ("nan", "NaN"),
    ("partial-turn", "spans"),
])
def test_a_bad_scan_is_refused_in_one_line(tmp_path, capsys, change, needle):
    with h5py.File(DEMO) as f:
        theta, data = f["/exchange/theta"][()], f["/exchange/data"][()].astype(np.float32)
    if change == "wrong-length":
        raw = _raw(tmp_path / "bad.h5", theta=theta[:-3])
    elif change == "nan":
        data[3, 0, 5] = np.nan
        raw = _raw(tmp_path / "bad.h5", data=data)
    else:
        raw = _raw(tmp_path / "bad.h5", theta=theta * 0.6)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        sc.main([str(raw), "-o", str(out), *FBP])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and needle in err, err
    assert not (out / "volume.h5").exists() and not (out / "projections.h5").exists()


def test_counts_given_as_line_integrals_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        sc.main([str(DEMO), "-o", str(tmp_path / "o"), *FBP, "--line-integrals"])
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "line integrals" in err and "counts" in err, err


@pytest.mark.slow
def test_the_truth_check_acquires_the_demo_sparse_and_short_and_scores_every_candidate(tmp_path):
    """bench/scan_truth.py: the as-acquired files hold what a sparse or a short acquisition would (every 4th view;
    about a tenth of the photons in views and flats), and each candidate's volume is scored against the full scan's
    FBP, with the chosen route's loss against the best one."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("scan_truth", Path(__file__).parents[1] / "bench" / "scan_truth.py")
    truth = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(truth)
    files = truth.as_acquired(DEMO, tmp_path)
    with h5py.File(DEMO) as full, h5py.File(files["sparse-4"]) as sparse, h5py.File(files["short-10"]) as short:
        assert np.array_equal(sparse["/exchange/theta"][()], full["/exchange/theta"][::4])
        assert np.array_equal(sparse["/exchange/data"][()], full["/exchange/data"][::4])
        dark = full["/exchange/data_dark"][()].mean()
        ratio = (short["/exchange/data_white"][()].mean() - dark) / (full["/exchange/data_white"][()].mean() - dark)
        assert abs(ratio - 0.1) < 0.01 and short["/exchange/data"].shape == full["/exchange/data"].shape
    out = tmp_path / "truth.csv"
    truth.main(["--methods", "fbp", "sirt", "--out", str(out), "--workdir", str(tmp_path / "work")])
    table = pd.read_csv(out)
    assert set(table["scan"]) == {"sparse-4", "short-10"} and table.groupby("scan")["chosen"].sum().eq(1).all()
    assert table["ssim"].between(0, 1).all() and table.groupby("scan")["best_by_ssim"].any().all()
    assert "loss" in out.with_suffix(".md").read_text()


def test_noise2inverse_is_ranked_on_the_scan_and_a_forced_n2i_writes_every_row(tmp_path):
    """--n2i adds Noise2Inverse, trained on the scan's own views (per fold for the ranking), as a candidate; forced,
    it writes its volume of every row."""
    n2i = json.dumps({"k": 2, "train": {"depth": 3, "patch": 32, "batch": 2, "max_iter": 2, "val_every": 2,
                                        "ckpt_every": 2, "val_slices": 1, "seed": 0}})
    sc.main([str(DEMO), "-o", str(tmp_path / "o"), *FBP, "--n2i", n2i, "--method", "n2i"])
    table = pd.read_csv(tmp_path / "o" / "ranking.csv").set_index("method")
    assert set(table.index) == {"fbp", "n2i"} and table.loc["n2i", "label"] == "Noise2Inverse"
    assert np.isfinite(table.loc["n2i", "score"]) and table.loc["n2i", "score_se"] > 0
    with h5py.File(tmp_path / "o" / "volume.h5") as f, h5py.File(DEMO) as raw:
        assert f.attrs["method"] == "n2i" and f["/recon"].shape[0] == raw["/exchange/data"].shape[1]
        assert np.isfinite(f["/recon"][()]).all()
