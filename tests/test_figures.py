"""Figures drawn from their JSON specs (study/figures.py plans them; analysis/figures.py draws them)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis.figures import draw
from simulate.io import write_arrays

ROOT = Path(__file__).resolve().parents[1]


def _volume(path, value, dose, method, run=""):
    rng = np.random.default_rng(0)
    vol = (value + 0.1 * rng.standard_normal((3, 32, 32))).astype(np.float32)
    write_arrays(path, {"/recon": vol, "/slices": np.arange(3, dtype=np.int32)},
                 {"dataset": "d: a;b", "dose": dose, "method": method, **({"run": run} if run else {})})
    return str(path)


def test_a_grid_spec_draws_and_survives_colons_and_semicolons_in_paths(tmp_path):
    odd = tmp_path / "a:b;c"
    odd.mkdir()
    ref = _volume(odd / "ref.h5", 1.0, "full", "fbp")
    low = _volume(odd / "low.h5", 1.2, "sparse-8", "fbp")
    spec = {"kind": "grid", "rows": [{"label": "row", "panels": [{"title": "reference", "path": ref},
                                                                   {"title": "FBP", "path": low}]}]}
    out = tmp_path / "fig.png"
    draw(spec, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.with_suffix(".pdf").stat().st_size > 0


@pytest.mark.parametrize("spec, needle", [
    ("{not json", "not JSON"),
    (json.dumps({"kind": "pie"}), "needs a 'kind'"),
    (json.dumps({"kind": "grid"}), "grid spec lacks"),
])
def test_a_bad_spec_is_one_error_line_and_writes_nothing(tmp_path, spec, needle):
    out = tmp_path / "fig.png"
    proc = subprocess.run([sys.executable, "-m", "analysis.figures", str(out), "--spec", spec],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error: --spec: ") and needle in lines[-1] and not any("Traceback" in l for l in lines)
    assert not out.exists()


def test_a_missing_input_names_the_file(tmp_path):
    out = tmp_path / "fig.png"
    spec = json.dumps({"kind": "curves", "logs": [{"label": "m", "paths": [str(tmp_path / "nowhere.csv")]}]})
    proc = subprocess.run([sys.executable, "-m", "analysis.figures", str(out), "--spec", spec],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "nowhere.csv" in proc.stderr.strip().splitlines()[-1]
    assert not out.exists()


def test_training_curves_show_the_spread_between_seeds(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd
    from matplotlib import pyplot as plt

    logs = []
    for seed, shift in enumerate((0.0, 0.1)):
        path = tmp_path / f"s{seed}.csv"
        pd.DataFrame({"step": [1, 2, 3], "mse": [1.0, 0.5, 0.25], "val_ssim": [0.5 + shift, 0.6 + shift, 0.7 + shift]}
                     ).to_csv(path, index=False)
        logs.append(str(path))
    calls = []
    real = plt.Axes.fill_between
    plt.Axes.fill_between = lambda self, x, lo, hi, **kw: calls.append((list(lo), list(hi))) or real(self, x, lo, hi, **kw)
    try:
        draw({"kind": "curves", "logs": [{"label": "run", "paths": logs}]}, tmp_path / "curves.png")
    finally:
        plt.Axes.fill_between = real
    # one band per panel; the validation band spans the two seeds
    assert len(calls) == 2 and np.allclose(calls[1], [[0.5, 0.6, 0.7], [0.6, 0.7, 0.8]])



def test_an_ablation_grid_bars_average_every_seed_with_the_range(tmp_path, monkeypatch):
    import pandas as pd

    import analysis.figures as figures

    ref = _volume(tmp_path / "ref.h5", 1.0, "full", "fbp")
    seeds = [_volume(tmp_path / f"s{i}.h5", 1.1, "sparse-8", "tomogan", run=f"m-s{i}") for i in range(3)]
    pd.DataFrame({"dataset": "d: a;b", "dose": "sparse-8", "method": "tomogan", "slice": 0, "ssim_object": 0.5,
                  "model": [f"m-s{i}" for i in range(3)], "ssim": [0.6, 0.7, 0.9]}).to_csv(tmp_path / "m.csv")
    drawn, spread = [], figures.seed_spread
    monkeypatch.setattr(figures, "seed_spread", lambda v: drawn.append([round(x, 6) for x in v]) or spread(v))
    draw({"kind": "grid", "rows": [{"label": "r", "panels": [{"title": "reference", "path": ref},
                                                           {"title": "d = 3", "path": seeds[0]}]}],
          "metrics": [str(tmp_path / "m.csv")], "bars": "mean SSIM", "seeds": {"d = 3": seeds}}, tmp_path / "f.png")
    assert [0.6, 0.7, 0.9] in drawn  # every seed's score, not seed 0's alone
    assert spread([0.6, 0.7, 0.9]) == pytest.approx((0.7333333, 0.1333333, 0.1666667))
    assert spread([0.5, float("nan")]) == (0.5, 0.0, 0.0)
