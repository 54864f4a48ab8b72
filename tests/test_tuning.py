"""Honest tuning: grid search on validation slices only, SIRT's iterates, and the tune/apply commands.

``tune`` and ``apply`` dispatch through the registry :data:`analysis.classical.METHODS`: the tests at the
end register methods of their own there and tune and apply them with this module as it stands.
"""

import dataclasses
import json

import h5py
import numpy as np
import pytest

from analysis.classical import METHODS, Method, each_value
from simulate.scores import compare_volumes
from analysis.tuning import grid_search, main, tune, tuning_label
from simulate.acquire import angles, write_projections
from simulate.io import read_attrs, write_arrays
from simulate.plumbing import InputError
from simulate.noise import short_exposure
from simulate.reconstruct import project, reconstruct, sirt, sirt_iterates, tv_denoise

N, SLICES, VAL = 64, 10, [4, 5]


def _discs(n=N, slices=SLICES, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
    vol = np.zeros((slices, n, n), np.float32)
    for z in range(slices):
        vol[z][yy ** 2 + xx ** 2 < (0.4 * n) ** 2] = 0.02
        for _ in range(4):
            cy, cx = rng.uniform(-0.2 * n, 0.2 * n, 2)
            vol[z][(yy - cy) ** 2 + (xx - cx) ** 2 < rng.uniform(2, 6) ** 2] = 0.04
    return vol


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    """Projection files (clean and noisy), their FBPs and the reference, for a tiny disc volume."""
    d = tmp_path_factory.mktemp("scan")
    theta = angles(96)
    clean = project(_discs(), theta)
    noisy = short_exposure(clean, 300, rng=np.random.default_rng(1))
    attrs = {"dataset": "discs", "source": "simulated", "center": N / 2}
    files = {}
    for name, data in (("full", clean), ("low", noisy)):
        write_projections(d / f"{name}_proj.h5", data, theta, dict(attrs, dose=name))
        rec = reconstruct(data, theta, "fbp")
        write_arrays(d / f"{name}_fbp.h5", {"/recon": rec, "/slices": np.arange(SLICES, dtype=np.int32)},
                     dict(attrs, dose=name, method="fbp"))
        files[name] = (d / f"{name}_proj.h5", d / f"{name}_fbp.h5")
    return d, files


def test_sirt_iterates_equal_separate_runs():
    theta = angles(48)
    sino = project(_discs(32, 2), theta)
    its = sirt_iterates(sino, theta, [5, 2, 12])
    assert sorted(its) == [2, 5, 12]
    for n, rec in its.items():
        np.testing.assert_allclose(rec, sirt(sino, theta, n_iter=n), rtol=1e-5, atol=1e-7)


def test_grid_search_picks_the_best_and_reports_every_value():
    ref = _discs(32, 2)
    noise = np.random.default_rng(0).normal(0, 0.01, ref.shape).astype(np.float32)
    # candidate v = reference + v * noise: the smallest v must win on every criterion
    best, scores = grid_search(((v, ref + v * noise) for v in (0.5, 0.1, 1.0)), ref, criterion="psnr")
    assert best == 0.1 and [s["value"] for s in scores] == [0.5, 0.1, 1.0]
    assert scores[1]["psnr"] > scores[0]["psnr"] > scores[2]["psnr"]
    with pytest.raises(ValueError, match="criterion"):
        grid_search([(1, ref)], ref, criterion="mse")


def test_patience_stops_past_the_optimum_and_chooses_what_the_whole_grid_chooses(scan, monkeypatch):
    # SIRT on noisy views: its validation score peaks, then falls as the iterations fit the noise. With patience 2
    # the run must stop two counts past the peak (fails if the whole grid is still made, or if stopping changes the
    # choice), and the largest count made must be below the grid's largest.
    _, files = scan
    grid = [2, 5, 10, 20, 50, 100, 200, 400, 800, 1600]
    whole = tune("sirt", files["low"][0], files["full"][1], VAL, grid=grid)
    advanced = []
    real = METHODS["sirt"].candidates

    def counting(x, g, **kw):
        for v, volume in real(x, g, **kw):
            advanced.append(v)
            yield v, volume
    monkeypatch.setitem(METHODS, "sirt", dataclasses.replace(METHODS["sirt"], candidates=counting))
    early = tune("sirt", files["low"][0], files["full"][1], VAL, grid=grid, patience=2)
    assert early["value"] == whole["value"] and not early["at_edge"]
    position = grid.index(whole["value"])
    assert position + 2 < len(grid) - 1, "the test needs an optimum well inside the grid"
    assert advanced == grid[:position + 3] and len(early["scores"]) == position + 3
    assert early["patience"] == 2 and whole["patience"] is None


def test_tv_tuned_on_validation_beats_fbp_and_chooses_inside_the_grid(scan):
    _, files = scan
    result = tune("fbp-tv", files["low"][1], files["full"][1], VAL, grid=[0.001, 0.02, 0.05, 0.1, 0.3, 2.0])
    assert not result["at_edge"] and result["value"] in (0.02, 0.05, 0.1, 0.3)
    scores = {s["value"]: s["ssim"] for s in result["scores"]}
    assert scores[result["value"]] == max(scores.values())
    assert result["val_index"] == VAL and "fbp-tv" in result["method"]
    assert tuning_label("fbp-tv", result) == f"w={result['value']:g}"
    assert tuning_label("fbp-tv", dict(result, value=2.0, at_edge=True)) == "w=2†"


def test_tuning_reads_only_the_validation_slices(scan, tmp_path):
    # Every slice but the validation ones is NaN: tuning must still work (it never reads them) ...
    d, files = scan
    with h5py.File(files["low"][1]) as f:
        rec, idx = f["/recon"][()], f["/slices"][()]
    poisoned = rec.copy()
    poisoned[[i for i in range(SLICES) if i not in VAL]] = np.nan
    write_arrays(tmp_path / "poisoned.h5", {"/recon": poisoned, "/slices": idx}, read_attrs(files["low"][1]))
    result = tune("fbp-tv", tmp_path / "poisoned.h5", files["full"][1], VAL, grid=[0.02, 0.1])
    assert np.isfinite([s["ssim"] for s in result["scores"]]).all()
    # ... and reading a poisoned slice is caught, so the check above can fail.
    with pytest.raises(InputError, match="NaN"):
        tune("fbp-tv", tmp_path / "poisoned.h5", files["full"][1], [3, 4], grid=[0.02])


def test_sirt_projections_read_only_the_validation_rows(scan, tmp_path):
    d, files = scan
    with h5py.File(files["low"][0]) as f:
        data, theta = f["/exchange/data"][()], f["/exchange/theta"][()]
    data[:, [0, 1, 9], :] = np.nan
    write_arrays(tmp_path / "p.h5", {"/exchange/data": data, "/exchange/theta": theta},
                 read_attrs(files["low"][0]))
    result = tune("sirt", tmp_path / "p.h5", files["full"][1], VAL, grid=[5, 20, 80])
    assert result["value"] in (5, 20, 80) and isinstance(result["value"], int)


def test_sirt_tv_from_the_kept_sirt_iterate_equals_recomputing_it(scan, tmp_path):
    d, files = scan
    low_proj, _ = files["low"]
    ref = files["full"][1]
    common = ["--val-reference", str(ref), "--val-index", *map(str, VAL)]
    main(["tune", "sirt", str(tmp_path / "sirt.json"), "--val-input", str(low_proj), "--grid", "5", "20", "60",
          "--save-best", str(tmp_path / "sirt-val.h5"), *common])
    with h5py.File(tmp_path / "sirt-val.h5") as f:
        kept, rows = f["/recon"][()], f["/slices"][()].tolist()
    assert rows == VAL and kept.shape == (len(VAL), N, N)
    # the same choice and scores whether SIRT+TV recomputes SIRT at the chosen count or starts from the kept one
    tv = ["--grid", "0.02", "0.2", "--sirt-tuning", str(tmp_path / "sirt.json"), *common]
    main(["tune", "sirt-tv", str(tmp_path / "a.json"), "--val-input", str(low_proj), *tv])
    main(["tune", "sirt-tv", str(tmp_path / "b.json"), "--val-input", str(low_proj), "--sirt-base",
          str(tmp_path / "sirt-val.h5"), *tv])
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in "ab")
    assert a["value"] == b["value"]
    for sa, sb in zip(a["scores"], b["scores"]):
        assert sa["ssim"] == pytest.approx(sb["ssim"], abs=1e-5)
    # a start of other slices is refused, naming the file
    write_arrays(tmp_path / "bad.h5", {"recon": kept, "slices": np.arange(len(VAL))})
    with pytest.raises(SystemExit):
        main(["tune", "sirt-tv", str(tmp_path / "c.json"), "--val-input", str(low_proj), "--sirt-base",
              str(tmp_path / "bad.h5"), *tv])
    assert not (tmp_path / "c.json").exists()


def test_cli_tune_then_apply_every_method(scan, tmp_path):
    d, files = scan
    low_proj, low_fbp = files["low"]
    ref = files["full"][1]
    common = ["--val-reference", str(ref), "--val-index", *map(str, VAL)]
    main(["tune", "sirt", str(tmp_path / "sirt.json"), "--val-input", str(low_proj), "--grid", "5", "20", "60",
          *common])
    main(["tune", "sirt-tv", str(tmp_path / "sirt-tv.json"), "--val-input", str(low_proj), "--grid", "0.02", "0.2",
          "--sirt-tuning", str(tmp_path / "sirt.json"), *common])
    main(["tune", "fbp-tv", str(tmp_path / "fbp-tv.json"), "--val-input", str(low_fbp), "--grid", "0.02", "0.2",
          *common])
    main(["tune", "fbp-bm3d", str(tmp_path / "fbp-bm3d.json"), "--val-input", str(low_fbp), "--grid", "0.05",
          "0.2", *common])
    main(["apply", "sirt", str(tmp_path / "sirt.json"), str(low_proj), str(tmp_path / "sirt.h5"), "--slices", "4"])
    main(["apply", "sirt-tv", str(tmp_path / "sirt-tv.json"), str(tmp_path / "sirt.h5"), str(tmp_path / "stv.h5")])
    for m in ("fbp-tv", "fbp-bm3d"):
        main(["apply", m, str(tmp_path / f"{m}.json"), str(low_fbp), str(tmp_path / f"{m}.h5"), "--slices", "4"])
    with h5py.File(ref) as f:
        reference = f["/recon"][3:7]
    with h5py.File(low_fbp) as f:
        fbp_psnr = np.mean([r["psnr"] for r in compare_volumes(f["/recon"][3:7], reference)])
    for m, path in (("sirt", "sirt.h5"), ("sirt-tv", "stv.h5"), ("fbp-tv", "fbp-tv.h5"), ("fbp-bm3d", "fbp-bm3d.h5")):
        attrs = read_attrs(tmp_path / path)
        tuning = json.loads((tmp_path / f"{m}.json").read_text())
        assert attrs["method"] == m and attrs["tuned_value"] == tuning["value"] and attrs["tuning"]
        with h5py.File(tmp_path / path) as f:
            assert f["/slices"][()].tolist() == [3, 4, 5, 6]
            psnr = np.mean([r["psnr"] for r in compare_volumes(f["/recon"][()], reference)])
        assert psnr > fbp_psnr, m  # each tuned method improves on the noisy FBP
    # the table cells and the files' attributes: SIRT+TV shows the SIRT count it starts from
    sirt_n = json.loads((tmp_path / "sirt.json").read_text())["value"]
    stv = json.loads((tmp_path / "sirt-tv.json").read_text())
    assert stv["sirt_n_iter"] == sirt_n and isinstance(sirt_n, int)
    attrs = read_attrs(tmp_path / "stv.h5")
    assert attrs["tuning"] == f"n={sirt_n}, w={stv['value']:g}" + ("†" if stv["at_edge"] else "")
    assert attrs["tuned_parameter"] == "weight" and attrs["tuning_grid"] == "0.02 0.2"
    # SIRT+TV is TV of the tuned SIRT test slices, with TV_ITER iterations
    with h5py.File(tmp_path / "sirt.h5") as f, h5py.File(tmp_path / "stv.h5") as g:
        np.testing.assert_array_equal(g["/recon"][()], tv_denoise(f["/recon"][()], weight=stv["value"], n_iter=1000))


def test_cli_errors_name_the_file(scan, tmp_path, capsys):
    d, files = scan
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SystemExit) as exc:
        main(["apply", "fbp-tv", str(bad), str(files["low"][1]), str(tmp_path / "out.h5")])
    assert exc.value.code == 2 and str(bad) in capsys.readouterr().err
    assert not (tmp_path / "out.h5").exists()
    with pytest.raises(SystemExit):
        main(["tune", "fbp-tv", str(tmp_path / "t.json"), "--val-input", str(files["low"][1]), "--val-reference",
              str(files["full"][1]), "--val-index", "99"])
    assert "lacks validation slices [99]" in capsys.readouterr().err
    assert not (tmp_path / "t.json").exists()


def test_apply_to_a_reconstruction_without_slice_indices_names_the_file(scan, tmp_path, capsys):
    rec = tmp_path / "sirt.h5"
    write_arrays(rec, {"/recon": np.ones((2, 16, 16), np.float32)})
    tuning = tmp_path / "sirt-tv.json"
    tuning.write_text(json.dumps({"method": "sirt-tv", "parameter": "weight", "value": 0.1, "grid": [0.1],
                                  "criterion": "ssim", "sirt_n_iter": 5, "val_input": "v.h5", "val_index": [4]}))
    out = tmp_path / "tv.h5"
    with pytest.raises(SystemExit) as exc:
        main(["apply", "sirt-tv", str(tuning), str(rec), str(out)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "sirt.h5" in err and "'/slices'" in err
    assert not out.exists()


# ----------------------------------------------------------------------------- dispatch through the registry

def _scale(x, value, *, backend="auto", threads=1):
    """A toy method: the input times ``value``."""
    return np.asarray(x, np.float32) * np.float32(value)


@pytest.fixture
def toy(monkeypatch):
    """Register two toy methods, one on the FBP, one on the tuned SIRT (as sirt-tv), recording their calls."""
    calls = []

    def candidates(x, grid, *, backend="auto", threads=1):
        calls.append(("candidates", list(grid)))
        return each_value(_scale)(x, grid, backend=backend, threads=threads)

    def apply(x, value, *, backend="auto", threads=1):
        calls.append(("apply", value))
        return _scale(x, value)

    monkeypatch.setitem(METHODS, "fbp-scale", Method("fbp-scale", "FBP×k", "scale", "k", (0.25, 1.0, 4.0), "fbp",
                                                     candidates, apply))
    monkeypatch.setitem(METHODS, "sirt-scale", Method("sirt-scale", "SIRT×k", "scale", "k", (0.25, 1.0, 4.0),
                                                      "sirt", candidates, apply, needs=("sirt",)))
    return calls


def test_a_method_registered_elsewhere_is_tuned_and_applied(scan, tmp_path, toy):
    _, files = scan
    low_fbp, ref = files["low"][1], files["full"][1]
    main(["tune", "fbp-scale", str(tmp_path / "t.json"), "--val-input", str(low_fbp), "--val-reference", str(ref),
          "--val-index", *map(str, VAL), "--criterion", "psnr"])
    result = json.loads((tmp_path / "t.json").read_text())
    assert toy == [("candidates", [0.25, 1.0, 4.0])]  # the default grid is the entry's
    assert (result["method"], result["parameter"], result["value"], result["at_edge"]) == ("fbp-scale", "scale", 1.0,
                                                                                           False)
    assert [s["value"] for s in result["scores"]] == [0.25, 1.0, 4.0]
    assert tuning_label("fbp-scale", result) == "k=1"
    main(["apply", "fbp-scale", str(tmp_path / "t.json"), str(low_fbp), str(tmp_path / "out.h5"), "--slices", "4"])
    assert toy[-1] == ("apply", 1.0)
    attrs = read_attrs(tmp_path / "out.h5")
    assert (attrs["method"], attrs["tuning"], attrs["tuned_parameter"], attrs["tuning_grid"]) == \
        ("fbp-scale", "k=1", "scale", "0.25 1 4")
    with h5py.File(tmp_path / "out.h5") as f, h5py.File(low_fbp) as g:
        np.testing.assert_array_equal(f["/recon"][()], g["/recon"][3:7])
        assert f["/slices"][()].tolist() == [3, 4, 5, 6]


def test_a_registered_method_that_starts_from_sirt_gets_its_count(scan, tmp_path, toy):
    _, files = scan
    low_proj, ref = files["low"][0], files["full"][1]
    sirt_t = tune("sirt", low_proj, ref, VAL, grid=[5, 20])
    with pytest.raises(ValueError, match="sirt-scale needs the tuning result of sirt"):
        tune("sirt-scale", low_proj, ref, VAL)
    assert toy == []
    result = tune("sirt-scale", low_proj, ref, VAL, grid=[4.0, 1.0], sirt_tuning=sirt_t, criterion="psnr")
    assert toy == [("candidates", [1.0, 4.0])] and result["value"] == 1.0
    assert result["sirt_n_iter"] == sirt_t["value"]
    assert tuning_label("sirt-scale", dict(result, at_edge=True)) == f"n={sirt_t['value']}, k=1†"
    # its start is SIRT at sirt's count on the validation rows, as recomputed here
    keep = {}
    tune("sirt-scale", low_proj, ref, VAL, grid=[1.0], sirt_tuning=sirt_t, keep=keep)
    with h5py.File(low_proj) as f:
        data, theta = f["/exchange/data"][:, VAL, :], np.radians(f["/exchange/theta"][()])
    np.testing.assert_allclose(keep["best"], sirt(data, theta, n_iter=sirt_t["value"], center=N / 2, size=N),
                               rtol=1e-6, atol=1e-9)


def test_an_unregistered_method_is_refused(scan, tmp_path, capsys):
    _, files = scan
    with pytest.raises(ValueError, match="unknown method 'fbp-scale'; choose one of sirt, sirt-tv"):
        tune("fbp-scale", files["low"][1], files["full"][1], VAL)
    with pytest.raises(SystemExit):
        main(["apply", "fbp-scale", str(tmp_path / "t.json"), str(files["low"][1]), str(tmp_path / "o.h5")])
    assert "invalid choice: 'fbp-scale'" in capsys.readouterr().err
