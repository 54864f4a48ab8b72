"""The paper-scale cost estimate, computed from the DAG and the config; what a finished run cost, per rule; what
tomogan-scan costs, per step."""

import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from estimate_cost import estimate, render, step_flops  # noqa: E402


def test_step_flops_follow_the_loss_terms_and_the_crop():
    base = {"depth": 3, "patch": 32, "batch": 2, "itd": 1, "lambda_adv": 1.0, "lambda_vgg": 1.0, "vgg_layer": 4}
    full = step_flops(base)
    assert step_flops(dict(base, lambda_adv=0.0)) < full and step_flops(dict(base, lambda_vgg=0.0)) < full
    assert step_flops(dict(base, patch=64)) == pytest.approx(4 * full, rel=0.02)  # convolutions scale with pixels


@pytest.mark.slow
def test_estimate_counts_the_dag_and_scales_with_training_steps(tmp_path):
    cfg = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(cfg))
    table = estimate(path).set_index("kind")
    assert table.loc["total", "jobs"] == table.drop("total")["jobs"].sum()
    assert table.loc["train", "jobs"] > 0 and table.loc["train", "gpu_hours_estimated"] > 0
    assert table.loc["simulate", "disk_gb"] > 0 and table.loc["reconstruct", "disk_gb"] > 0
    cfg["tomogan"]["train"]["max_iter"] *= 2
    cfg["noise2inverse"]["train"]["max_iter"] *= 2
    cfg["scan_matched"]["train"]["max_iter"] *= 2  # the scan-matched fine-tunes take their own steps
    path.write_text(yaml.safe_dump(cfg))
    doubled = estimate(path).set_index("kind")
    assert doubled.loc["train", "gpu_hours_estimated"] == pytest.approx(2 * table.loc["train", "gpu_hours_estimated"])
    assert doubled.loc["train", "jobs"] == table.loc["train", "jobs"]
    assert "| train" in render(doubled.reset_index())
    # the CPU column: the training FLOPs (those the GPU column converts) at the measured rate, plus the CPU budgets
    from estimate_cost import PAPER_MS_PER_1024, slice_flops

    from study import Plan, load_config

    bench = tmp_path / "tomogan.csv"
    pd.DataFrame([{"task": "train step", "variant": "mse+adv+vgg (vgg_grad)", "size": 32, "depth": 3, "batch": 2,
                   "device_name": "test CPU", "threads": 2, "seconds": 0.5}]).to_csv(bench, index=False)
    train = estimate(path, bench_csv=bench).set_index("kind").loc["train"]
    flops = train["gpu_hours_estimated"] * 3600 * slice_flops(3, 1024) / (PAPER_MS_PER_1024 / 1000)
    rate = step_flops({"depth": 3, "patch": 32, "batch": 2, "vgg_weights": "random-init"}) / 0.5
    budget_s = sum(float(r.settings.get("cpu_budget_s") or 0) for r in Plan.from_config(load_config(path)).runs.values())
    assert train["hours_on_2_cpu_cores"] == pytest.approx((flops / rate + budget_s / 2) / 3600, rel=1e-6)


def _benchmark(path, s, cpu, rss, end):
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
                    f"{s}\t0:00:00\t{rss}\t0\t0\t0\t0\t0\t0\t{cpu}\n")
    os.utime(path, (end, end))


def test_run_cost_sums_each_rules_jobs_and_measures_the_span(tmp_path, capsys):
    from run_cost import main

    bench = tmp_path / "benchmarks"  # beside results/, where the workflow writes them
    _benchmark(bench / "train" / "a.tsv", 120.0, 100.0, 900.0, 1000.0)   # ran 880..1000
    _benchmark(bench / "train" / "b.tsv", 60.0, 54.0, 800.0, 1100.0)     # ran 1040..1100
    _benchmark(bench / "fbp" / "foam3" / "full.tsv", 6.0, 3.0, 150.0, 890.0)
    _benchmark(bench / "claims.tsv", 30.0, 12.0, 100.0, 1180.0)          # a job name without a folder
    main(["--results", str(tmp_path / "results"), "--cores", "2"])
    table = pd.read_csv(tmp_path / "results" / "bench" / "run_cost.csv").set_index("rule")
    assert list(table.index) == ["train", "claims", "fbp", "all jobs"]  # dearest CPU first, the sum last
    assert table.loc["train", "jobs"] == 2 and table.loc["train", "cpu_min"] == pytest.approx(154 / 60)
    assert table.loc["train", "max_rss_mib"] == 900 and table.loc["all jobs", "jobs"] == 4
    assert table.loc["all jobs", "wall_min"] == pytest.approx(216 / 60)
    assert table["cpu_share"].iloc[:-1].sum() == pytest.approx(1.0)
    md = (tmp_path / "results" / "bench" / "run_cost.md").read_text()
    assert "**5.0 min**" in md  # 880 (the first start) to 1180 (the last end)


def test_run_cost_refuses_a_folder_without_benchmarks_and_a_foreign_table(tmp_path, capsys):
    from run_cost import main

    results = tmp_path / "results"
    with pytest.raises(SystemExit) as exc:
        main(["--results", str(results)])
    assert exc.value.code != 0 and "no benchmark files" in capsys.readouterr().err
    bad = tmp_path / "benchmarks" / "x.tsv"
    bad.parent.mkdir(parents=True)
    bad.write_text("a\tb\n1\t2\n")
    with pytest.raises(SystemExit):
        main(["--results", str(results)])
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {bad}: not a Snakemake benchmark file") and "\n" not in err
    assert not (results / "bench").exists()


def test_scan_cost_times_every_step_of_tomogan_scan_on_a_simulated_scan(tmp_path):
    from scan_cost import main

    out = tmp_path / "cost.csv"
    main(["--rows", "1", "--detector", "48", "--views", "24", "--out", str(out), "--workdir", str(tmp_path / "w")])
    table = pd.read_csv(out)
    steps = list(table["step"])
    assert steps[0].startswith("read, check") and any(s.startswith("rank ") for s in steps)
    assert any(s.startswith("reconstruct 1 rows") for s in steps) and steps[-1].startswith("end to end")
    ranked = table["step"].str.startswith("(ranking) ")  # each candidate's share of the rank step
    steps = table[~ranked]
    assert (table["seconds"] > 0).all() and steps["seconds"].iloc[-1] >= steps["seconds"].iloc[:-1].sum() * 0.9
    rank = steps.loc[steps["step"].str.startswith("rank "), "seconds"].iloc[0]
    assert ranked.sum() >= 2 and table.loc[ranked, "seconds"].sum() <= rank * 1.001
    assert table["cpu"].nunique() == 1 and "Wall seconds" in out.with_suffix(".md").read_text()
