"""The study's TomoGAN runs: names, shared models, loss sets, cross-facility test volumes, config checks."""

import numpy as np
import pytest
import yaml
from pathlib import Path

from tomogan_core.data import Normalization
from tomogan_core.study import check_runs, enhanced_targets, plan_runs, release_targets
from tomogan_core.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def _cfg(name="default.yaml"):
    return yaml.safe_load((ROOT / "config" / name).read_text())


def test_default_plan_shares_the_main_model_with_the_ablations():
    cfg = _cfg()
    runs = plan_runs(cfg["tomogan"])
    ab = cfg["tomogan"]["ablation"]
    depths = {r.depth for r in runs.values() if r.dose == ab["dose"] and r.loss_set == "all" and r.split == ab["split"]}
    assert depths == set(ab["depths"])
    main = f"{ab['split']}-{ab['dose']}-d3-all"
    assert main in runs and sum(r.name == main for r in runs.values()) == 1
    # a dropped loss term has weight 0, a kept one keeps the config's weight
    mse = runs[f"{ab['split']}-{ab['dose']}-d3-mse"].settings
    assert mse["lambda_adv"] == 0 and mse["lambda_vgg"] == 0 and mse["lambda_mse"] == cfg["tomogan"]["train"]["lambda_mse"]
    adv = runs[f"{ab['split']}-{ab['dose']}-d3-mse-adv"].settings
    assert adv["lambda_adv"] == cfg["tomogan"]["train"]["lambda_adv"] and adv["lambda_vgg"] == 0
    # every run's settings make a valid TrainConfig
    for run in runs.values():
        TrainConfig(**run.settings)


def test_cross_facility_models_are_tested_on_both_facilities():
    cfg = _cfg()
    runs = plan_runs(cfg["tomogan"])
    sp = cfg["tomogan"]["splits"]
    for src, dst in cfg["tomogan"]["cross_facility"]["pairs"]:
        for dose in cfg["tomogan"]["cross_facility"]["doses"]:
            run = runs[f"{src}-{dose}-d3-all"]
            assert set(sp[src]["test"]) == set(run.test) and set(sp[dst]["test"]) == set(run.cross_test)
            assert not set(run.train) & set(run.test)  # never tested on what it trained on
    paths = enhanced_targets(runs)
    assert len(paths) == len(set(paths)) == sum(len(r.applied_to) for r in runs.values())


def test_config_errors_name_the_culprit():
    full = _cfg()
    check_runs(plan_runs(full["tomogan"]), list(full["datasets"]), list(full["doses"]))  # the shipped one is fine
    cfg = full["tomogan"]
    cfg["splits"]["foam"]["test"] = ["foam9"]
    with pytest.raises(ValueError, match="foam9"):
        check_runs(plan_runs(cfg), list(full["datasets"]), list(full["doses"]))
    cfg["splits"]["foam"]["test"] = ["foam3"]
    cfg["main"][0]["doses"].append("photons-7")
    with pytest.raises(ValueError, match="photons-7"):
        check_runs(plan_runs(cfg), list(full["datasets"]), list(full["doses"]))
    cfg = _cfg()["tomogan"]
    cfg["main"][0]["split"] = "nowhere"
    with pytest.raises(ValueError, match="nowhere"):
        plan_runs(cfg)


def test_grey255_maps_the_robust_range_to_0_255():
    v = np.random.default_rng(0).uniform(2.0, 4.0, size=(4, 50, 50))
    n = Normalization.fit([v], "grey255")
    z = n.to_net(v)
    assert np.percentile(z, 0.5) == pytest.approx(0, abs=1e-3) and np.percentile(z, 99.5) == pytest.approx(255, abs=1e-2)
    np.testing.assert_allclose(n.from_net(z), v, rtol=1e-5)
    zs = Normalization.fit([v], "zscore").to_net(v)
    assert abs(zs.mean()) < 1e-4 and zs.std() == pytest.approx(1, rel=1e-4)
    with pytest.raises(ValueError, match="normalisation"):
        Normalization.fit([v], "minmax")


def test_the_released_model_is_applied_wherever_a_trained_one_is_tested():
    runs = plan_runs(_cfg()["tomogan"])
    tested = {(ds, r.dose) for r in runs.values() for ds in r.applied_to}
    paths = release_targets(runs)
    assert len(paths) == len(tested)
    assert all(f"results/{ds}/enhanced/{dose}/release.h5" in paths for ds, dose in tested)
