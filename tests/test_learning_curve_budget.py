"""bench/learning_curve_budget.py on a fake finished learning-curve experiment: 2 loss sets x 2 seeds, logs,
benchmark TSVs and the learning_curve rule's tables (written by ``analysis.learning_curve`` itself)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import learning_curve
from simulate.io import cpu_name

ROOT = Path(__file__).resolve().parents[1]
SPEC = importlib.util.spec_from_file_location("learning_curve_budget", ROOT / "bench" / "learning_curve_budget.py")
budget = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(budget)

PREFIX = "foam-sparse-8-d3-"
STEPS = [25, 50, 75, 100, 125, 150]
CURVE = {"mse": [0.50, 0.60, 0.70, 0.75, 0.78, 0.80], "all": [0.45, 0.55, 0.65, 0.70, 0.73, 0.75]}
SECONDS = {("mse", 0): 10.0, ("mse", 1): 30.0, ("all", 0): 100.0, ("all", 1): 140.0}


def _workdir(folder: Path) -> Path:
    """A finished experiment's folder: results/models/<run>/log.csv, benchmarks, the learning-curve tables."""
    results = folder / "results"
    runs, logs = [], []
    for loss, curve in CURVE.items():
        for seed in (0, 1):
            run = f"{PREFIX}{loss}-s{seed}"
            runs.append({"run": run, "base": PREFIX + loss, "mse_warmup": 0})
            log = results / "models" / run / "log.csv"
            log.parent.mkdir(parents=True)
            # a row every 10 steps, validated every 25 (the others have no val_ssim), as tomogan_core.train writes
            steps = sorted(set(range(10, 151, 10)) | set(STEPS))
            val = dict(zip(STEPS, np.add(curve, 0.02 * seed)))
            pd.DataFrame({"step": steps, "elapsed_s": np.multiply(steps, 0.1), "mse": 0.1,
                          "val_ssim": [val.get(s, np.nan) for s in steps],
                          "val_psnr": [20.0 if s in val else np.nan for s in steps]}).to_csv(log, index=False)
            logs.append(str(log))
            bench = folder / "benchmarks" / "train" / f"{run}.tsv"  # beside results/
            bench.parent.mkdir(parents=True, exist_ok=True)
            bench.write_text(f"s\th:m:s\tmax_rss\n{SECONDS[loss, seed]}\t0:00:10\t100.0\n")
    learning_curve.main([str(results / "claims" / "learning_curve_loss-sets.csv"), "--runs", json.dumps(runs),
                         "--logs", *logs])
    return folder


def test_budget_table_from_a_finished_experiment(tmp_path, capsys):
    work = _workdir(tmp_path / "lc")
    out = tmp_path / "out" / "budget.csv"
    budget.main(["--reuse", f"learning-curve-scratch={work}", "--out", str(out)])
    table = pd.read_csv(out).set_index("loss_set")
    assert list(table.index) == ["mse", "all"]  # the ablation's order, not alphabetical
    assert table.loc["mse", "ssim_150"] == pytest.approx(0.81) and table.loc["all", "ssim_75"] == pytest.approx(0.66)
    assert table.loc["mse", ["ssim_150_lo", "ssim_150_hi"]].tolist() == pytest.approx([0.80, 0.82])
    assert "ssim_25" not in table and "ssim_125" not in table  # every 75th step and the last only
    assert table.loc["mse", "train_s_median"] == 20.0 and table.loc["all", "train_s_median"] == 120.0
    assert (table["runs_timed"] == 2).all() and (table["max_iter"] == 150).all() and (table["seeds"] == "0 1").all()
    # "mse" leads at every step: the summary's reading, with the runs named by their loss sets; but the last quarter of
    # 150 steps validated every 25 holds two validations, too few to call the ranking settled
    assert table.loc["mse", "pairs"] == "mse > all (+0.050)" and not table.loc["mse", "settled"]
    assert table.loc["mse", "state"] == "insufficient" and table.loc["mse", "n_judged"] == 2
    assert table.loc["mse", "stable_since"] == 25 and table.loc["mse", "source"].endswith("learning-curve-scratch.yaml")
    md = out.with_suffix(".md").read_text()
    assert cpu_name() in md.splitlines()[0] and "config/experiments/learning-curve-scratch.yaml" in md.splitlines()[0]
    assert str(work) not in md  # the docs name the experiment file, not a machine's folder
    mse_row = next(line for line in md.splitlines() if line.startswith("| learning-curve-scratch | mse "))
    cells = [c.strip() for c in mse_row.strip("|").split("|")]
    assert cells == ["learning-curve-scratch", "mse", "150", "0", "0 1", "0.710 (0.70–0.72)", "0.810 (0.80–0.82)",
                     "20"]
    assert "- **learning-curve-scratch**: insufficient (2 validations judged); ranking stable since step 25 of 150" in md
    assert md in capsys.readouterr().out


def test_an_older_summary_gets_its_pairwise_reading_recomputed(tmp_path):
    work = _workdir(tmp_path / "lc")
    path = work / "results" / "claims" / "learning_curve_loss-sets_summary.csv"
    new = pd.read_csv(path).iloc[0]
    pd.read_csv(path).drop(columns=["pairs", "settled", "state", "n_judged", "warm_start", "window"]).to_csv(path,
                                                                                                        index=False)
    curves, summary, logs, seconds = budget.read_experiment("learning-curve-scratch", work / "results")
    assert summary["pairs"] == new["pairs"] and summary["state"] == new["state"] and summary["warm_start"] == 0
    assert summary["settled"] == new["settled"] and summary["n_judged"] == new["n_judged"]
    assert summary["note"] == "recomputed from the curves: warm_start, pairs, state"
    assert sorted(seconds.values()) == [10.0, 30.0, 100.0, 140.0] and len(logs) == 4
    # with a warm start its end is shown too, and the pairs are judged after it
    table = budget.budget_table("warm", curves, logs, seconds, dict(summary, warm_start=50))
    assert [c for c in table if c.startswith("ssim_") and c[5:].isdigit()] == ["ssim_50", "ssim_75", "ssim_150"]
    assert table.loc[0, "ssim_50"] == pytest.approx(0.61) and (table["mse_warmup"] == 50).all()


def test_reuse_needs_a_results_folder(tmp_path, capsys):
    with pytest.raises(SystemExit, match="expected NAME=DIR"):
        budget.main(["--reuse", f"learning-curve-scratch={tmp_path}", "--out", str(tmp_path / "x.csv")])
