"""The paper-scale cost estimate: computed from the DAG and the config, so it follows them."""

import sys
from pathlib import Path

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
