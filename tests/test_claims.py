"""The claims, judged: the plan's comparisons against per-slice metrics, the speed claim, the tables and errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.claims import judge_comparisons, judge_speed, render, side_matrix, summarise_claims
from tomogan_core.study import Plan, load_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smoke_plan():
    return Plan.from_config(load_config(ROOT / "config" / "smoke.yaml"))


def _per_slice(plan, shift):
    """Per-slice metrics for every row a comparison selects: model/method scores = base + shift(row) + slice effect."""
    rng = np.random.default_rng(0)
    slice_effect = rng.normal(0, 0.02, 6)
    rows, seen = [], set()
    for comp in plan.claim_comparisons():
        for side in ("a", "b"):
            for sel in comp.get(side, {}).get("rows", []):
                key = (sel["dataset"], sel["dose"], sel["method"], sel["model"] or "")
                if key in seen:
                    continue
                seen.add(key)
                for j in range(6):
                    v = 0.6 + shift(sel) + slice_effect[j] + rng.normal(0, 0.002)
                    rows.append({"dataset": key[0], "dose": key[1], "method": key[2], "model": key[3], "slice": j,
                                 "ssim": v, "ssim_object": v, "psnr": 20 + 10 * v})
    return pd.DataFrame(rows)


def test_every_default_claim_expands_into_comparisons_of_the_plan():
    plan = Plan.from_config(load_config(ROOT / "config" / "default.yaml"))
    comps = plan.claim_comparisons()
    assert {c["claim"] for c in comps} == {c["id"] for c in plan.config["claims"]["list"]}
    depth = [c for c in comps if c["claim"] == "depth-3-best"]
    assert len(depth) == 3 and all(c["a"]["label"].endswith("d3-all") for c in depth)
    fbp = [c for c in comps if c["claim"] == "tomogan-beats-fbp"]
    low = [d for d, v in plan.config["doses"].items() if v["mode"] != "full"]
    assert sorted(c["a"]["rows"][0]["dose"] for c in fbp) == sorted(low)  # every low dose of the foam split
    assert all(r["method"] == "fbp" and r["model"] is None for c in fbp for r in c["b"]["rows"])


def test_a_claim_whose_models_are_not_trained_says_so(smoke_plan):
    comps = {c["claim"]: c for c in smoke_plan.claim_comparisons()}
    assert comps["adversarial-helps"]["part"].startswith("not run") and "a" not in comps["adversarial-helps"]


def test_sides_have_one_row_per_seed_and_verdicts_follow_the_data(smoke_plan):
    # d = 3 far better than d = 1; every loss set alike; TomoGAN far below FBP
    def shift(sel):
        model = sel["model"] or ""
        if "-d1-" in model:
            return -0.2
        return -0.3 if sel["method"] == "tomogan" and "sparse-8-d3" not in model and "d1" not in model else 0.0

    table = _per_slice(smoke_plan, shift)
    comps = [dict(c, metrics=["ssim", "ssim_object", "psnr"]) for c in smoke_plan.claim_comparisons() if "a" in c]
    rows = pd.DataFrame(judge_comparisons(comps, table, margins={"ssim": 0.01, "ssim_object": 0.01, "psnr": 0.3},
                                          n_boot=300, level=0.95, seed=1))
    depth = rows[(rows["claim"] == "depth-3-best") & (rows["metric"] == "ssim")].iloc[0]
    assert depth["verdict"] == "supported" and depth["n_seeds_a"] == depth["n_seeds_b"] == 2
    assert depth["effect"] == pytest.approx(0.2, abs=0.01) and depth["lo"] <= depth["effect"] <= depth["hi"]
    mse = rows[(rows["claim"] == "mse-alone-worst") & (rows["metric"] == "ssim")].iloc[0]
    assert mse["verdict"] == "equivalent" and mse["holds"] == "no"
    summary = summarise_claims(rows)
    assert set(summary.loc[summary["claim"] == "depth-3-best", "holds"]) == {"yes"}


def test_side_matrix_orders_slices_and_refuses_a_missing_selection():
    table = pd.DataFrame({"dataset": "x", "dose": "d", "method": "fbp", "model": "", "slice": [5, 3, 4],
                          "ssim": [0.5, 0.3, 0.4]})
    m, slices = side_matrix(table, {"rows": [{"dataset": "x", "dose": "d", "method": "fbp", "model": None}]}, "ssim")
    assert slices == [3, 4, 5] and np.allclose(m, [[0.3, 0.4, 0.5]])
    with pytest.raises(ValueError, match="no per-slice rows"):
        side_matrix(table, {"rows": [{"dataset": "y", "dose": "d", "method": "fbp", "model": None}]}, "ssim")
    with pytest.raises(ValueError, match="no column"):
        side_matrix(table, {"rows": [{"dataset": "x", "dose": "d", "method": "fbp", "model": None}]}, "edge")


def test_the_speed_claim_reads_the_range_of_the_repeats():
    timing = pd.DataFrame({"method": ["FBP+TomoGAN", "SIRT (400 it.)"], "ms_per_slice": [10.0, 80.0],
                           "ms_per_slice_min": [9.0, 70.0], "ms_per_slice_max": [12.0, 90.0], "slices": [2, 2]})
    comp = {"claim": "s", "text": "t", "kind": "better", "part": "p", "factor": 3.0, "sirt_iter": 400}
    row = judge_speed(comp, timing)
    assert row["effect"] == pytest.approx(8.0) and row["lo"] == pytest.approx(70 / 12) and row["verdict"] == "supported"
    assert judge_speed(dict(comp, factor=7.0), timing)["verdict"] == "inconclusive"
    assert judge_speed(dict(comp, factor=20.0), timing)["verdict"] == "contradicted"


def test_the_command_writes_csv_md_and_summary_and_refuses_a_bad_spec(tmp_path, smoke_plan):
    table = _per_slice(smoke_plan, lambda sel: 0.0)
    metrics = tmp_path / "m.csv"
    table.to_csv(metrics, index=False)
    spec = smoke_plan.claims_spec()
    spec["comparisons"] = [dict(c, metrics=["ssim", "psnr"]) for c in spec["comparisons"] if "factor" not in c]
    spec["bootstrap"]["n"] = 200
    out = tmp_path / "claims" / "claims.csv"
    cmd = [sys.executable, "-m", "analysis.claims", str(out), "--spec", json.dumps(spec), "--metrics", str(metrics)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    md = out.with_suffix(".md").read_text()
    assert spec["caveat"] in md and spec["config_hash"] in md
    assert (tmp_path / "claims" / "claims_summary.csv").exists()
    bad = tmp_path / "bad" / "claims.csv"
    proc = subprocess.run(cmd[:3] + [str(bad), "--spec", "{}", "--metrics", str(metrics)], capture_output=True,
                          text=True, cwd=ROOT)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("error: --spec: lacks")
    assert not bad.exists()


def test_render_states_the_rule_and_each_claims_answer():
    rows = pd.DataFrame([{"claim": "c", "text": "claim text", "kind": "better", "part": "a vs b", "metric": "ssim",
                          "effect": 0.05, "lo": 0.02, "hi": 0.08, "margin": 0.01, "verdict": "supported",
                          "holds": "yes", "n_seeds_a": 3, "n_seeds_b": 1, "n_slices": 8}])
    md = render(rows, config_hash="abc", caveat="")
    assert "*supported* if the whole interval lies above the margin" in md and "ssim: **yes**" in md
    assert "0.05 [0.02, 0.08]" in md and "3, 1" in md


def test_a_metric_that_does_not_apply_is_not_measured_not_an_error(smoke_plan):
    table = _per_slice(smoke_plan, lambda sel: 0.0).assign(edge_width=np.nan)
    comps = [dict(c, metrics=["ssim", "edge_width"]) for c in smoke_plan.claim_comparisons() if "a" in c][:1]
    rows = pd.DataFrame(judge_comparisons(comps, table, margins={"ssim": 0.01, "edge_width": 0.25}, n_boot=200,
                                          level=0.95, seed=0))
    assert list(rows["verdict"])[1] == "not measured" and list(summarise_claims(rows)["holds"])[1] == "n/a"


def test_learning_curve_groups_and_their_ranking_settle(tmp_path):
    plan = Plan.from_config(load_config(ROOT / "config" / "default.yaml"))
    groups = plan.learning_curve_groups()
    ab = plan.config["tomogan"]["ablation"]
    assert {r.loss_set for r in groups["loss-sets"]} == set(ab["loss_sets"])
    assert {r.depth for r in groups["depths"]} == set(ab["depths"])
    # two runs, two seeds each: "b" leads early, "a" overtakes at step 30 and keeps the lead
    runs, logs = [], []
    for base, curve in (("a", [0.5, 0.6, 0.8, 0.85]), ("b", [0.6, 0.7, 0.7, 0.72])):
        for seed in (0, 1):
            name = f"{base}-s{seed}"
            runs.append({"run": name, "base": base})
            path = tmp_path / name / "log.csv"
            path.parent.mkdir()
            pd.DataFrame({"step": [10, 20, 30, 40], "val_ssim": np.add(curve, 0.01 * seed)}).to_csv(path, index=False)
            logs.append(str(path))
    out = tmp_path / "lc.csv"
    cmd = [sys.executable, "-m", "analysis.learning_curve", str(out), "--runs", json.dumps(runs), "--logs", *logs]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-1500:]
    summary = pd.read_csv(tmp_path / "lc_summary.csv").iloc[0]
    assert summary["final_ranking"] == "a > b" and summary["stable_since"] == 30 and bool(summary["stable"])
    assert not bool(summary["settled"]) and summary["pairs"].startswith("a ? b")  # smoothed, the lead is too recent
    table = pd.read_csv(out)
    assert table.loc[(table["step"] == 10) & (table["base"] == "a"), "n_seeds"].item() == 2
    # the ranking settled at step 30 of 40: it does not cover the last 60 % of training
    proc = subprocess.run(cmd[:3] + [str(tmp_path / "short.csv"), "--runs", json.dumps(runs), "--fraction", "0.6",
                                      "--logs", *logs], capture_output=True, text=True, cwd=ROOT)
    assert not bool(pd.read_csv(tmp_path / "short_summary.csv").iloc[0]["stable"])


def test_learning_curve_judges_the_steps_after_a_warm_start():
    from analysis.learning_curve import pairs_settled, ranking_stability

    # "a" trails during the warm start (steps <= 40) and leads by 0.05 at every validation after it
    steps = [10, 20, 30, 40, 50, 60, 70, 80]
    table = pd.DataFrame({"step": steps * 2, "base": ["a"] * 8 + ["b"] * 8,
                          "mean": [.5, .55, .6, .62, .75, .78, .8, .81] + [.6, .65, .7, .72, .7, .73, .75, .76]})
    table["rank"] = table.groupby("step")["mean"].rank(ascending=False, method="min").astype(int)
    # judged over the last half of all 80 steps, smoothing reaches back into the warm start: not settled
    assert pairs_settled(table, fraction=0.5, window=4)[0]["state"] == "unsettled"
    # judged over the last half of the 40 steps after the warm start, smoothed from there: a stays ahead
    assert pairs_settled(table, fraction=0.5, window=4, start=40)[0]["state"] == "ordered"
    assert ranking_stability(table, fraction=0.5, start=40)["stable"]
    assert not ranking_stability(table, fraction=0.95, start=40)["stable"]  # the lead begins at step 50
