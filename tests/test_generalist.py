"""The leave-one-family-out table (analysis/generalist.py) on per-slice metrics made by hand."""

import json

import numpy as np
import pandas as pd
import pytest

from analysis import generalist as g

SLICES = list(range(10, 18))


def _metrics(family, dose, sides, seed=0):
    """Per-slice rows: ``sides`` maps (method, model) -> (per-seed mean SSIM, ...); slice noise is shared."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 0.01, len(SLICES))  # a slice harder than another for every method alike
    rows = []
    for (method, model), means in sides.items():
        for mean in means:
            for s, e in zip(SLICES, noise):
                rows.append({"dataset": f"corpus-{family}-test", "dose": dose, "method": method, "model": model,
                             "slice": s, "ssim": mean + e + rng.normal(0, 0.002), "psnr": 20 + 10 * mean})
    return pd.DataFrame(rows)


def _spec(families, dose="sparse-4"):
    return {"families": {f: {"dataset": f"corpus-{f}-test",
                             "routes": {dose: {"foam only": ["foam-a", "foam-b"], "generalist": ["gen"],
                                               "unseen": [f"lofo-{f}"]}}} for f in families},
            "doses": [dose], "bootstrap": {"n": 400, "seed": 1}, "config_hash": "abc"}


def test_table_means_and_intervals():
    table = pd.concat([
        _metrics("fibres", "sparse-4", {("fbp", ""): [0.40], ("tomogan", "foam-a"): [0.55], ("tomogan", "foam-b"): [0.57],
                                         ("tomogan", "gen"): [0.72], ("tomogan", "lofo-fibres"): [0.68]}),
        _metrics("layers", "sparse-4", {("fbp", ""): [0.50], ("tomogan", "foam-a"): [0.66], ("tomogan", "foam-b"): [0.66],
                                         ("tomogan", "gen"): [0.70], ("tomogan", "lofo-layers"): [0.66]}, seed=3)],
        ignore_index=True)
    out = g.lofo_table(table, _spec(["fibres", "layers"]), rng=np.random.default_rng(0)).set_index("family")
    assert out.loc["fibres", "n_slices"] == len(SLICES)
    assert out.loc["fibres", "foam only"] == pytest.approx(0.56, abs=0.01)  # the mean over its two seeds
    assert out.loc["fibres", "unseen"] == pytest.approx(0.68, abs=0.01)
    # fibres: the unseen model beats the foam-only one, clearly; and trails the generalist that saw fibres
    assert out.loc["fibres", "unseen_vs_foam_lo"] > 0.09 and out.loc["fibres", "unseen_vs_generalist_hi"] < 0
    # layers: within noise of the foam-only model -- the interval holds 0
    assert out.loc["layers", "unseen_vs_foam_lo"] < 0 < out.loc["layers", "unseen_vs_foam_hi"]
    text = g.render(out.reset_index(), config_hash="abc")
    assert "| fibres | sparse-4 |" in text and "abc" in text
    assert text.count("\n| ") == 6  # SSIM, then PSNR: each a header and two rows


def test_command_writes_table_and_refuses_a_bad_spec(tmp_path, capsys):
    m = tmp_path / "m.csv"
    _metrics("fibres", "sparse-4", {("fbp", ""): [0.4], ("tomogan", "foam-a"): [0.5], ("tomogan", "foam-b"): [0.5],
                                     ("tomogan", "gen"): [0.6], ("tomogan", "lofo-fibres"): [0.6]}).to_csv(m, index=False)
    out = tmp_path / "lofo.csv"
    g.main([str(out), str(m), "--spec", json.dumps(_spec(["fibres"]))])
    assert len(pd.read_csv(out)) == 1 and "Leave one family out" in out.with_suffix(".md").read_text()
    for spec, needle in ((json.dumps({"doses": []}), "families"),
                         (json.dumps(_spec(["layers"])), "no per-slice rows")):
        bad = tmp_path / "bad.csv"
        with pytest.raises(SystemExit) as exc:
            g.main([str(bad), str(m), "--spec", spec])
        err = capsys.readouterr().err.strip()
        assert exc.value.code != 0 and len(err.splitlines()) == 1 and err.startswith("error: ") and needle in err
        assert not bad.exists()


def test_each_row_lists_its_test_volumes_noise_and_attenuation(tmp_path, capsys):
    from simulate.io import write_arrays

    m = tmp_path / "m.csv"
    sides = {("fbp", ""): [0.4], ("tomogan", "foam-a"): [0.5], ("tomogan", "foam-b"): [0.5],
             ("tomogan", "gen"): [0.6]}
    pd.concat([_metrics(f, "sparse-4", {**sides, ("tomogan", f"lofo-{f}"): [0.6]}) for f in ("fibres", "layers")],
              ignore_index=True).to_csv(m, index=False)
    spec = _spec(["fibres", "layers"])
    noisy, clean = tmp_path / "noisy.h5", tmp_path / "clean.h5"
    write_arrays(noisy, {"data": np.zeros((2, 2, 2), np.float32)}, {"noise_incident": 5618.3, "max_line_integral": 1.28})
    write_arrays(clean, {"data": np.zeros((2, 2, 2), np.float32)}, {"max_line_integral": 2.5})
    spec["families"]["fibres"]["projections"] = {"sparse-4": str(noisy)}
    spec["families"]["layers"]["projections"] = {"sparse-4": str(clean)}
    out = tmp_path / "lofo.csv"
    g.main([str(out), str(m), "--spec", json.dumps(spec)])
    table = pd.read_csv(out).set_index("family")
    assert table.loc["fibres", "photons"] == pytest.approx(5618.3) and np.isnan(table.loc["layers", "photons"])
    assert table.loc["layers", "max_line_integral"] == 2.5
    text = out.with_suffix(".md").read_text()
    assert "| fibres | sparse-4 | 5618 | 1.28 |" in text and "| layers | sparse-4 | – | 2.50 |" in text
    # a projection file that is not there: one line naming it, nothing written
    spec["families"]["layers"]["projections"] = {"sparse-4": str(tmp_path / "gone.h5")}
    bad = tmp_path / "bad.csv"
    with pytest.raises(SystemExit) as exc:
        g.main([str(bad), str(m), "--spec", json.dumps(spec)])
    err = capsys.readouterr().err.strip()
    assert exc.value.code != 0 and len(err.splitlines()) == 1 and "gone.h5" in err and not bad.exists()


def test_psnr_differences_have_intervals_and_a_table_of_their_own():
    m = _metrics("fibres", "sparse-4", {("fbp", ""): [0.40], ("tomogan", "foam-a"): [0.55], ("tomogan", "foam-b"): [0.57],
                                        ("tomogan", "gen"): [0.72], ("tomogan", "lofo-fibres"): [0.68]})
    out = g.lofo_table(m, _spec(["fibres"]), rng=np.random.default_rng(0)).iloc[0]
    # _metrics makes psnr = 20 + 10 x each seed's mean SSIM: unseen - foam only = 10 x (0.68 - 0.56) dB
    assert out["unseen_vs_foam_psnr"] == pytest.approx(1.2)
    assert out["unseen_vs_foam_psnr_lo"] < out["unseen_vs_foam_psnr"] < out["unseen_vs_foam_psnr_hi"]
    assert out["unseen_vs_generalist_psnr_hi"] < 0
    text = g.render(pd.DataFrame([out]))
    psnr = text[text.index("by PSNR"):]
    assert f"| fibres | sparse-4 | {out['fbp_psnr']:.2f} |" in psnr and f"{out['unseen_vs_foam_psnr']:+.2f} [" in psnr
