"""The study plan, without Snakemake: runs, evaluated pairs, paths, inputs, priorities, figure specs, config checks."""

import copy
import dataclasses
import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import yaml

from tomogan_core.data import Normalization
from study import (ABLATION_TAG, JOBS, SCHEMA, Paths, Plan, benchmark_fields, benchmark_glob, check_runs,
                                enhanced_targets, job_name, load_config, plan_runs, release_targets, run_name)
from tomogan_core.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def _cfg(name="default.yaml"):
    return load_config(ROOT / "config" / name)


@pytest.fixture(scope="module")
def default_plan():
    return Plan.from_config(_cfg())


@pytest.fixture(scope="module")
def smoke_plan():
    return Plan.from_config(_cfg("smoke.yaml"))


# ----------------------------------------------------------------------------- defaults in one place

def test_train_config_defaults_are_the_schema_defaults():
    """TrainConfig (what `tomogan-train` uses alone) and the schema (what the workflow fills in) must agree."""
    schema = yaml.safe_load(SCHEMA.read_text())["properties"]["tomogan"]["properties"]["train"]["properties"]
    fields = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    assert set(fields) == set(schema), set(fields) ^ set(schema)
    differ = {k: (fields[k], schema[k].get("default")) for k in fields if fields[k] != schema[k].get("default")}
    assert not differ, differ


def test_command_line_flags_of_a_training_setting_default_to_it(capsys):
    """A command that takes a training setting (validation slices) defaults to TrainConfig's, so the schema's."""
    from analysis import inference_speed
    from tomogan_core.train import TrainConfig, build_parser

    train = build_parser().parse_args(["-ld", "x"])
    assert all(getattr(train, f) == getattr(TrainConfig, f) for f in ("val_slices", "val_every", "max_iter"))
    with pytest.raises(SystemExit):
        inference_speed.main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert f"as training scores them (default {TrainConfig.val_slices})" in help_text


def test_a_config_leaving_sections_out_gets_the_schema_defaults():
    cfg = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    for key in ("metrics", "classical", "memory", "inference"):
        cfg.pop(key, None)
    load_config(cfg)
    schema = yaml.safe_load(SCHEMA.read_text())["properties"]
    assert cfg["metrics"]["slices"] == schema["metrics"]["properties"]["slices"]["default"] != 0
    assert cfg["classical"]["methods"] == ["sirt", "sirt-tv", "fbp-tv", "fbp-bm3d"]
    plan = Plan.from_config(cfg)
    assert plan.classical == cfg["classical"]["methods"]


# ----------------------------------------------------------------------------- runs

def test_the_default_ablation_trains_runs_of_its_own_compute_matched_from_scratch(default_plan):
    """tomogan.ablation.train gives the ablation settings of its own (a CPU budget, no warm start): its runs are
    named apart from the main run's, carry those settings, and its claims say they answer a compute-matched
    question; the main run keeps its warm start."""
    cfg = default_plan.config
    runs = default_plan.runs
    ab = cfg["tomogan"]["ablation"]
    depths = {r.depth for r in runs.values() if r.group == ABLATION_TAG and r.loss_set == "all"}
    assert depths == set(ab["depths"])
    main = default_plan.main_run(ab["split"], ab["dose"])
    assert main.base == run_name(ab["split"], ab["dose"], cfg["tomogan"]["train"]["depth"], "all")
    assert main.settings["mse_warmup"] == cfg["tomogan"]["train"]["mse_warmup"] > 0
    assert default_plan.ablation_base() != main.base and default_plan.ablation_base().endswith("-" + ABLATION_TAG)
    by_base = {r.base: r for r in runs.values()}  # one seed's run of each base
    # a dropped loss term has weight 0, a kept one keeps the config's weight; each trains from scratch on the budget
    mse = by_base[default_plan.ablation_base(loss_set="mse")].settings
    assert mse["lambda_adv"] == 0 and mse["lambda_vgg"] == 0 and mse["lambda_mse"] == cfg["tomogan"]["train"]["lambda_mse"]
    adv = by_base[default_plan.ablation_base(loss_set="mse-adv")].settings
    assert adv["lambda_adv"] == cfg["tomogan"]["train"]["lambda_adv"] and adv["lambda_vgg"] == 0
    budgets = {r.settings["cpu_budget_s"] for r in runs.values() if r.group == ABLATION_TAG}
    assert budgets == {ab["train"]["cpu_budget_s"]} and budgets != {0}
    assert {r.settings["mse_warmup"] for r in runs.values() if r.group == ABLATION_TAG} == {0}
    assert default_plan.ablation_question().startswith("compute-matched")
    groups = default_plan.learning_curve_groups()
    assert all(r.group == ABLATION_TAG for g in groups.values() for r in g)
    for run in runs.values():  # every run's settings make a valid TrainConfig
        TrainConfig(**run.settings)


def test_without_settings_of_its_own_the_ablation_shares_the_main_model():
    """config/paper.yaml: the paper's step-matched ablation reuses the main run where it asks for the same model."""
    plan = Plan.from_config(load_config(ROOT / "config" / "paper.yaml"))
    ab = plan.config["tomogan"]["ablation"]
    assert not ab.get("train")
    assert plan.ablation_base() == plan.main_run(ab["split"], ab["dose"]).base
    assert plan.ablation_question().startswith("step-matched")
    assert not any(r.group == ABLATION_TAG for r in plan.runs.values())


def test_cross_facility_models_are_tested_on_both_facilities(default_plan):
    cfg = default_plan.config
    sp = cfg["tomogan"]["splits"]
    for src, dst in cfg["tomogan"]["cross_facility"]["pairs"]:
        for dose in cfg["tomogan"]["cross_facility"]["doses"]:
            run = default_plan.main_run(src, dose)
            assert set(sp[src]["test"]) == set(run.test) and set(sp[dst]["test"]) == set(run.cross_test)
            assert not set(run.train) & set(run.test)  # never tested on what it trained on
    paths = enhanced_targets(default_plan.runs)
    assert len(paths) == len(set(paths)) == sum(len(r.applied_to) for r in default_plan.runs.values())


def test_the_shale_stand_in_is_scored_against_its_truth_and_a_real_scan_against_its_reference(default_plan):
    """The stand-in's truth is its raw file; the cross-facility claim is decided by ssim_truth on it. With real
    TomoBank files asked for (shale.source: download) no truth is known: the same claim is decided by ssim."""
    shale = default_plan.shale[0]
    assert default_plan.truth_of(shale) == [Paths.raw(shale)]
    assert default_plan.truth_of("foam3") == [Paths.phantom("foam3")]

    def cross(plan):
        return [c for c in plan.claim_comparisons() if c["claim"] == "cross-facility"]

    assert cross(default_plan) and all(c["primary"] == "ssim_truth" for c in cross(default_plan))
    cfg = copy.deepcopy(default_plan.config)
    cfg["shale"]["source"] = "download"
    real = Plan.from_config(cfg)
    assert real.truth_of(shale) == [] and real.truth_of("foam3") == [Paths.phantom("foam3")]
    assert cross(real) and all(c["primary"] == "ssim" and not any(m.endswith("_truth") for m in c["metrics"])
                               for c in cross(real))
    # the foam claims keep their truth
    assert all(c["primary"] == "ssim_truth" for c in real.claim_comparisons() if c["claim"] == "tomogan-beats-fbp")


def test_a_scan_is_evaluated_with_its_splits_main_run_at_each_of_its_doses(smoke_plan):
    for name, scan in smoke_plan.scans.items():
        for dose in scan["doses"]:
            run = smoke_plan.evaluated[(name, dose)]
            assert run is smoke_plan.main_run(scan["split"], dose) and name in run.cross_test
    # every evaluated pair is a test volume or a scan, never a training or validation volume
    for (ds, dose), run in smoke_plan.evaluated.items():
        assert ds not in run.train + run.val and run.dose == dose and smoke_plan.is_main(run)


def test_the_released_model_is_applied_wherever_a_trained_one_is(default_plan):
    runs = default_plan.runs
    tested = {(ds, r.dose) for r in runs.values() for ds in r.applied_to}
    paths = release_targets(runs)
    assert len(paths) == len(tested)
    assert all(Paths.enhanced(ds, dose, "release") in paths for ds, dose in tested)


# ----------------------------------------------------------------------------- paths and inputs

def test_paths_fill_what_they_are_given_and_leave_wildcards():
    assert Paths.recon("foam3", "sparse-8", "fbp") == "results/foam3/recon/sparse-8/fbp.h5"
    assert Paths.recon(method="fbp") == "results/{dataset}/recon/{dose}/fbp.h5"
    assert Paths.enhanced(run="release") == "results/{dataset}/enhanced/{dose}/release.h5"
    # every pattern has one function, and every function's pattern is in the table
    for key in Paths.PATTERNS:
        assert callable(getattr(Paths, key)), key


def test_inputs_follow_the_method_registry(smoke_plan):
    run = smoke_plan.main_run("foam", "sparse-8")
    val = run.validation_volume
    assert smoke_plan.tune_inputs("foam", "sparse-8", "fbp-tv")["val"] == Paths.recon(val, "sparse-8", "fbp")
    assert smoke_plan.tune_inputs("foam", "sparse-8", "sirt")["val"] == Paths.projections(val, "sparse-8")
    tv = smoke_plan.tune_inputs("foam", "sparse-8", "sirt-tv")
    assert tv["sirt"] == Paths.tuning("foam", "sparse-8", "sirt") and tv["sirt_base"].endswith("sirt-val.h5")
    test = run.test[0]
    assert smoke_plan.apply_inputs(test, "sparse-8", "sirt-tv")["data"] == Paths.recon(test, "sparse-8", "sirt")
    assert smoke_plan.apply_inputs(test, "sparse-8", "sirt")["data"] == Paths.projections(test, "sparse-8")
    # tuning never reads a test volume
    for split, dose in {(r.split, r.dose) for r in smoke_plan.evaluated.values()}:
        for method in smoke_plan.classical:
            for path in smoke_plan.tune_inputs(split, dose, method).values():
                assert not any(f"results/{t}/" in path for t in smoke_plan.tuning_run(split, dose).test)


@pytest.mark.parametrize("config", ["smoke.yaml", "paper.yaml", "default.yaml"])
def test_crossval_ranks_every_seeds_model_and_the_release(config):
    plan = Plan.from_config(_cfg(config))
    seeds = plan.config["tomogan"].get("seeds") or [None]
    pairs = plan.crossval_pairs()
    assert pairs
    for ds, dose in pairs:
        run = plan.evaluated[(ds, dose)]
        models = plan.crossval_models(ds, dose)
        # labelled by run name, one per training seed, each seed's own model file; then the corpus's and the
        # scan-matched models applied there (the generalist and the scan's own matched model, on a scan)
        own = list(models)[:len(seeds)]
        assert own == [r.name for r in plan.seeds_of(run)]
        assert all(plan.runs[name].group in ("corpus", "matched") and ds in plan.runs[name].applied_to
                   for name in list(models)[len(seeds):])
        assert list(models.values()) == [Paths.model(name) for name in models]
        if len(seeds) > 1:
            assert own == [f"{run.base}-s{seed}" for seed in sorted(seeds)]
        inputs = plan.crossval_inputs(ds, dose)
        assert inputs["model"] == list(models.values())
        assert inputs["release"] == Paths.release_model()  # what rule import_release writes
        assert inputs["proj"] == Paths.projections(ds, dose) and inputs["reference"] == plan.reference(ds)
        # the ranked images beside the table, and their figure among the targets of `all`
        assert Paths.crossval_images(ds, dose) == Paths.crossval(ds, dose).replace(".csv", ".h5")
    figures = plan.crossval_figures()
    assert figures == [f"results/figures/crossval_{ds}_{dose}.png" for ds, dose in pairs]
    assert not set(figures) & set(plan.figure_targets())  # none is a figure of rule `figure`


def test_crossval_checks_all_or_the_listed_volumes_and_doses():
    cfg = _cfg("default.yaml")
    cfg["crossval"]["datasets"] = "first"
    plan = Plan.from_config(cfg)
    doses = set(cfg["crossval"]["doses"])
    first = {(ds, dose) for ds, dose in plan.evaluated if plan.first_test_volume(ds, dose) and dose in doses}
    assert set(plan.crossval_pairs()) == first and first < set(plan.evaluated) and ("foam4", "sparse-4") not in first
    cfg["crossval"]["datasets"] = "all"
    del cfg["crossval"]["doses"]
    assert set(Plan.from_config(cfg).crossval_pairs()) == set(plan.evaluated)
    cfg["crossval"] = {"k": 4, "slices": 2, "datasets": ["foam3"], "doses": ["sparse-4"]}
    assert Plan.from_config(cfg).crossval_pairs() == sorted(
        [(ds, dose) for ds, dose in plan.evaluated if ds in plan.scans] + [("foam3", "sparse-4")])
    cfg["crossval"]["datasets"] = []
    assert {ds for ds, _ in Plan.from_config(cfg).crossval_pairs()} == set(plan.scans)


def test_crossval_ranks_noise2inverse_with_the_studys_settings_where_asked():
    import shlex

    cfg = _cfg("default.yaml")
    cfg["noise2inverse"]["fine_tune_from"] = "none"
    plan = Plan.from_config(cfg)
    scan, simulated = "demo-scan", "foam3"
    dose = plan.scans[scan]["doses"][0]
    assert scan in plan.scans and cfg["crossval"].get("noise2inverse", "scans") == "scans"
    flag, spec = shlex.split(plan.crossval_n2i(scan, dose))
    assert flag == "--n2i" and json.loads(spec) == [{"label": "n2i", "k": cfg["noise2inverse"]["k"],
                                                     "train": cfg["noise2inverse"]["train"]}]
    assert plan.crossval_n2i(simulated, dose) == ""  # the default ranks it on the user's scans only
    cfg["crossval"]["noise2inverse"] = "all"
    assert Plan.from_config(cfg).crossval_n2i(simulated, dose) == plan.crossval_n2i(scan, dose)
    cfg["crossval"]["noise2inverse"] = "none"
    assert Plan.from_config(cfg).crossval_n2i(scan, dose) == ""
    cfg["crossval"]["noise2inverse"] = "all"
    del cfg["noise2inverse"]
    assert Plan.from_config(cfg).crossval_n2i(scan, dose) == ""


@pytest.mark.parametrize("start", ["generalist", "matched"])
def test_fine_tuned_noise2inverse_starts_from_the_chosen_model_and_waits_for_it(start):
    import shlex

    cfg = _cfg("smoke.yaml")
    cfg["noise2inverse"]["fine_tune_from"] = start
    plan = Plan.from_config(cfg)
    scan = next(iter(plan.scans))
    for dose in plan.scans[scan]["doses"]:
        specs = json.loads(shlex.split(plan.crossval_n2i(scan, dose))[1])
        assert [s["label"] for s in specs] == ["n2i", f"n2i:{start}"]
        init = specs[1]["train"]["init"]
        run = next(r for r in plan.runs.values() if Paths.model(r.name) == init)
        assert run.split == ("generalist" if start == "generalist" else f"matched-{scan}")
        assert run.dose == dose or (start == "generalist" and dose not in cfg["corpus"]["doses"])
        assert plan.crossval_inputs(scan, dose)["n2i_start"] == [init]  # the ranking waits for that model
        assert not specs[0]["train"].get("init")  # the scratch one stays from scratch
        # the fine-tune works in the units its start model's weights were trained in, whatever n2i's own are
        assert specs[1]["train"]["normalization"] == run.settings["normalization"]
        assert specs[0]["train"].get("normalization") == cfg["noise2inverse"]["train"].get("normalization")
    del cfg["scan_matched"]
    if start == "matched":  # refused when the config is read, not when the rule asks
        with pytest.raises(ValueError, match="fine_tune_from"):
            Plan.from_config(copy.deepcopy(cfg))


def test_scan_matched_volumes_and_runs_follow_the_scan(smoke_plan):
    """Each scan gets volumes of every scan_matched family (train and val) at its own doses, and one run per scan
    dose that trains on them, is applied to the scan and is ranked on it, fine-tuned from the generalist."""
    cfg = smoke_plan.config
    sm = cfg["scan_matched"]
    for scan, spec in smoke_plan.scans.items():
        mine = [d for d in smoke_plan.matched if cfg["datasets"][d]["scan"] == scan]
        assert len(mine) == 2 * len(sm["families"])
        assert {cfg["datasets"][d]["family"] for d in mine} == set(sm["families"])
        own = ["as-acquired"] if spec.get("acquired") else []  # the scan's own acquisition, for tomogan-scan
        assert all(smoke_plan.doses_of(d) == smoke_plan.doses_of(scan) + own for d in mine)
        runs = [r for r in smoke_plan.runs.values() if r.group == "matched" and r.test == [scan]]
        assert sorted(r.dose for r in runs) == sorted(spec["doses"])
        for run in runs:
            assert set(run.train + run.val) == set(mine) and not smoke_plan.is_main(run)
            assert run.settings["max_iter"] == sm["train"]["max_iter"]
            assert run.settings["normalization"] == cfg["corpus"]["train"]["normalization"]
            start = run.settings["init"]
            assert smoke_plan.train_inputs(run.name)["init"] == [start]
            gen = next(r for r in smoke_plan.runs.values() if Paths.model(r.name) == start)
            assert gen.split == "generalist"
            assert gen.dose == (run.dose if run.dose in cfg["corpus"]["doses"] else cfg["corpus"]["doses"][0])
            assert run.name in smoke_plan.crossval_models(scan, run.dose)
            assert Paths.enhanced(scan, run.dose, run.name) in smoke_plan.enhanced()
        # the phantom and projection rules read the scan's own prepared projections
        assert {smoke_plan.matched_scan(d) for d in mine} == {Paths.projections(scan, smoke_plan.full)}


def test_a_scan_asked_for_as_acquired_is_run_through_tomogan_scan_with_the_generalist(smoke_plan):
    """Only a scan with ``acquired: true`` gets the tomogan-scan target, each file the command writes, and its
    options carry the scan's centre and the generalist at the corpus's first dose; without a corpus, no model."""
    from analysis.scan import OUTPUTS

    cfg = smoke_plan.config
    asked = [name for name, spec in cfg["scans"].items() if spec.get("acquired")]
    assert asked and smoke_plan.acquired_scans() == asked
    assert smoke_plan.acquired_targets() == [Paths.acquired(s, name) for s in asked for name in OUTPUTS]
    gen = next(r for r in smoke_plan.runs.values() if r.split == "generalist" and r.dose == cfg["corpus"]["doses"][0])
    own = next(r for r in smoke_plan.runs.values() if r.split == f"matched-{asked[0]}" and r.dose == "as-acquired")
    assert smoke_plan.acquired_models(asked[0]) == {"generalist": Paths.model(gen.name),
                                                    "matched": Paths.model(own.name)}
    assert own.test == [] and own.settings["init"] == Paths.model(gen.name)  # trained for tomogan-scan only
    assert smoke_plan.doses_of(own.train[0])[-1] == "as-acquired" and "as-acquired" not in smoke_plan.doses_of("foam1")
    args = smoke_plan.acquired_args(asked[0])
    assert f"--center {cfg['scans'][asked[0]]['center']}" in args and f"generalist={Paths.model(gen.name)}" in args
    words = shlex.split(args)
    # the config's grids, not the registry's
    assert json.loads(words[words.index("--grids") + 1]) == cfg["classical"]["grids"]
    other = copy.deepcopy(_cfg("smoke.yaml"))
    for spec in other["scans"].values():
        spec["acquired"] = False
    assert Plan.from_config(other).acquired_targets() == []
    other = _cfg("smoke.yaml")
    for key in ("corpus", "scan_matched"):
        del other[key]
    other["noise2inverse"]["fine_tune_from"] = "none"
    bare = Plan.from_config(other)
    assert bare.acquired_models(asked[0]) == {} and "--model" not in bare.acquired_args(asked[0])


def test_the_positive_control_is_calibrated_against_the_reference_its_claims_are_decided_on():
    cfg = _cfg("smoke.yaml")
    plan = Plan.from_config(copy.deepcopy(cfg))
    ds = plan.test_volumes(*plan.control_place())[0]
    margins = cfg["claims"]["margins"]
    assert cfg["claims"]["primary"] == "ssim_truth"
    assert plan.control_args(ds) == f"--target-drop {2 * margins['ssim_truth']:g} --truth {Paths.phantom(ds)}"
    cfg["claims"]["primary"] = "ssim"
    assert Plan.from_config(cfg).control_args(ds) == f"--target-drop {2 * margins['ssim']:g}"


def test_scan_matched_needs_a_generalist_to_fine_tune_and_expands_once():
    from study import expand_scan_matched

    cfg = _cfg("smoke.yaml")
    before = Plan.from_config(copy.deepcopy(cfg))
    again = copy.deepcopy(before.config)
    expand_scan_matched(again)
    assert again == before.config  # running the expansion again changes nothing
    scratch = copy.deepcopy(cfg)
    scratch["scan_matched"]["init"] = "none"
    assert all(not r.settings.get("init") for r in Plan.from_config(scratch).runs.values() if r.group == "matched")
    del cfg["corpus"]
    cfg["noise2inverse"]["fine_tune_from"] = "none"
    with pytest.raises(ValueError, match="scan_matched.init"):
        Plan.from_config(cfg)


def test_targets_cover_every_dataset_and_dose(smoke_plan):
    data = smoke_plan.simulated_data()
    assert len(data) == sum(len(smoke_plan.doses_of(d)) for d in smoke_plan.datasets)
    recons = smoke_plan.reconstructions()
    for (ds, dose) in smoke_plan.evaluated:
        for method in smoke_plan.classical + ["fbp"]:
            assert Paths.recon(ds, dose, method) in recons
        # Noise2Inverse (a training per volume and dose) on each split's first test volume only, by default
        assert (Paths.recon(ds, dose, "n2i") in recons) == smoke_plan.first_test_volume(ds, dose)
    assert any(not smoke_plan.first_test_volume(ds, dose) for ds, dose in smoke_plan.evaluated)
    assert all(smoke_plan.reference(d) in recons for d in smoke_plan.datasets)


def test_the_chain_that_feeds_training_gets_trainings_priority(smoke_plan):
    run = smoke_plan.main_run("foam", "sparse-8")
    assert smoke_plan.priority(run.train[0], "sparse-8") == smoke_plan.priority(run.train[0], smoke_plan.full) > 0
    assert smoke_plan.priority(run.test[0], "sparse-8") == 0  # a test volume feeds no training
    assert smoke_plan.priority(run.test[0]) == 0


# ----------------------------------------------------------------------------- figures

def test_figure_specs_are_json_and_name_their_inputs(smoke_plan):
    figs = smoke_plan.figures
    assert {"fig_overview", "fig_depth", "fig_loss_terms", "fig_training_curves", "fig_timing"} <= set(figs)
    for name, spec in figs.items():
        data = json.loads(spec.json)
        assert data["kind"] == spec.kind
        # every path the spec names is an input of the figure's rule
        text = json.dumps(data)
        for path in spec.inputs:
            assert path in text, (name, path)
        assert all(p.startswith("results/") for p in spec.inputs)
    # the ablation figures show seed 0's images, and their bars average every seed of each member
    seeds = json.loads(figs["fig_depth"].json)["seeds"]
    n_seeds = len(smoke_plan.config["tomogan"]["seeds"])
    assert seeds and all(len(set(paths)) == n_seeds for paths in seeds.values())
    # a path with ':' or ';' survives (the old LABEL=TITLE:PATH;... strings broke on them)
    cfg = copy.deepcopy(smoke_plan.config)
    cfg["datasets"]["foam:3;x"] = cfg["datasets"].pop("foam3")
    for split in cfg["tomogan"]["splits"].values():
        split["test"] = ["foam:3;x" if d == "foam3" else d for d in split["test"]]
    spec = Plan.from_config(cfg).figures["fig_overview"]
    assert any("foam:3;x" in p["path"] for row in json.loads(spec.json)["rows"] for p in row["panels"])


# ----------------------------------------------------------------------------- config errors

def test_config_errors_name_the_culprit():
    full = _cfg()
    check_runs(plan_runs(full["tomogan"]), list(full["datasets"]), list(full["doses"]))  # the shipped one is fine
    cfg = copy.deepcopy(full)
    cfg["tomogan"]["splits"]["foam"]["test"] = ["foam9"]
    with pytest.raises(ValueError, match="foam9"):
        Plan.from_config(cfg)
    cfg = copy.deepcopy(full)
    cfg["tomogan"]["main"][0]["doses"].append("photons-7")
    with pytest.raises(ValueError, match="photons-7"):
        Plan.from_config(cfg)
    cfg = copy.deepcopy(full)
    cfg["tomogan"]["main"][0]["split"] = "nowhere"
    with pytest.raises(ValueError, match="nowhere"):
        Plan.from_config(cfg)
    cfg = copy.deepcopy(full)
    cfg["timing"]["dose"] = "sparse-3"
    with pytest.raises(ValueError, match="timing"):
        Plan.from_config(cfg).timing_run
    cfg = copy.deepcopy(full)
    cfg["doses"]["other"] = {"mode": "full"}
    with pytest.raises(ValueError, match="exactly one dose"):
        Plan.from_config(cfg)


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


# ----------------------------------------------------------------------------- the generalist corpus

def _corpus_cfg(**corpus):
    cfg = _cfg("smoke.yaml")
    cfg["corpus"].update(corpus)
    return load_config(cfg)


def test_corpus_volumes_splits_and_runs():
    from study import GENERALIST, corpus_dataset, lofo_split

    cfg = _corpus_cfg()
    plan = Plan.from_config(cfg)
    families = cfg["corpus"]["families"]
    dose = cfg["corpus"]["doses"][0]
    assert len(families) == 5
    # one volume per family and role, each with its own seed, made only at the full dose and the corpus's doses
    names = [corpus_dataset(f, r) for f in families for r in ("train", "val", "test")]
    assert sorted(plan.family) == sorted(names)
    assert len({cfg["datasets"][n]["seed"] for n in names}) == len(names)
    assert all(plan.doses_of(n) == [plan.full, dose] for n in names)
    # the generalist sees every family; a LOFO model never sees its family, and is tested on it alone
    splits = cfg["tomogan"]["splits"]
    assert splits[GENERALIST]["train"] == [corpus_dataset(f, "train") for f in families]
    for f in families:
        sp = splits[lofo_split(f)]
        assert not any(f"-{f}-" in ds for ds in sp["train"] + sp["val"]) and sp["test"] == [corpus_dataset(f, "test")]
    corpus = [r for r in plan.runs.values() if r.group == "corpus"]
    assert {r.split for r in corpus} == {GENERALIST, *(lofo_split(f) for f in families)}
    assert all(r.settings["normalization"] == "input" for r in corpus)  # corpus.train's default
    assert not any(plan.is_main(r) for r in corpus) and not any(r in plan.evaluated.values() for r in corpus)
    # the foam-only model is applied to every corpus test volume; the generalist to the demo scan, and ranked there
    for run in plan.main_runs("foam", dose):
        assert {corpus_dataset(f, "test") for f in families} <= set(run.applied_to)
    generalist = [r for r in corpus if r.split == GENERALIST]
    assert all("demo-scan" in r.applied_to for r in generalist)
    assert {r.name for r in generalist} <= set(plan.crossval_models("demo-scan", dose))
    # planning twice (the workflow and a test on one dict) changes nothing
    assert Plan.from_config(cfg).runs.keys() == plan.runs.keys()


def test_corpus_projection_draws_each_volumes_attenuation_from_its_seed():
    plan = Plan.from_config(_corpus_cfg(max_line_integral=[1.0, 3.0]))
    drawn = {ds: float(plan.projection_args(ds).split("--max-line-integral ")[1]) for ds in plan.family}
    assert all(1.0 <= v <= 3.0 for v in drawn.values()) and len(set(drawn.values())) == len(drawn)
    assert drawn == {ds: float(Plan.from_config(_corpus_cfg(max_line_integral=[1.0, 3.0])).projection_args(ds)
                                .split("--max-line-integral ")[1]) for ds in plan.family}
    assert "--family" in plan.family_args(plan.family[0]) and plan.projection_args("foam1").endswith("2.0")


def test_corpus_noise_level_is_drawn_per_volume_without_moving_its_attenuation():
    def flag(args, name):
        return float(args.split(f"--{name} ")[1].split()[0]) if f"--{name} " in args else None

    plain = Plan.from_config(_corpus_cfg())
    noisy = Plan.from_config(_corpus_cfg(noise_incident=[1000.0, 100000.0]))
    levels = {ds: flag(noisy.projection_args(ds), "noise-incident") for ds in noisy.family}
    assert all(1000.0 <= v <= 100000.0 for v in levels.values()) and len(set(levels.values())) == len(levels)
    assert all(flag(plain.projection_args(ds), "noise-incident") is None for ds in plain.family)
    assert all(flag(noisy.projection_args(ds), "max-line-integral") == flag(plain.projection_args(ds),
                                                                           "max-line-integral")
               for ds in plain.family)
    assert plain.config_hash == Plan.from_config(_cfg("smoke.yaml")).config_hash  # no default: old hashes hold


def test_lofo_spec_names_each_route_per_dose():
    cfg = _corpus_cfg()
    plan = Plan.from_config(cfg)
    spec = plan.lofo_spec()
    dose = cfg["corpus"]["doses"][0]
    for family, entry in spec["families"].items():
        routes = entry["routes"][dose]
        assert routes["foam only"] == [r.name for r in plan.main_runs("foam", dose)]
        assert all(plan.runs[r].split == f"lofo-{family}" for r in routes["unseen"]) and routes["unseen"]
        assert all(plan.runs[r].split == "generalist" for r in routes["generalist"]) and routes["generalist"]
    assert set(plan.lofo_inputs()) == {Paths.metrics(e["dataset"], k) for e in spec["families"].values()
                                       for k in ("tomogan", "conventional")}
    assert Plan.from_config(_corpus_cfg(lofo=False)).lofo_spec() == {}
    bad = _cfg("smoke.yaml")
    bad["datasets"]["corpus-foam-test"] = {"kind": "foam", "seed": 9}
    with pytest.raises(ValueError, match="corpus"):
        Plan.from_config(load_config(bad))


# ---------------------------------------------------------------- jobs' logs and benchmarks

def test_every_rule_takes_its_log_and_benchmark_from_the_jobs_table():
    import re

    rules = {}
    for smk in sorted((ROOT / "rules").glob("*.smk")):
        text = smk.read_text()
        assert "results/logs" not in text and "results/benchmarks" not in text, smk.name
        for m in re.finditer(r"^(?:local)?rule (\w+):\n(.*?)(?=^\S|\Z)", text, flags=re.M | re.S):
            rules[m.group(1)] = m.group(2)
    assert set(JOBS) == set(rules) - {"all"}
    for rule, body in rules.items():
        if rule != "all":
            assert f'P.log("{rule}")' in body and f'P.benchmark("{rule}")' in body, rule


def test_job_paths_globs_and_fields_agree():
    assert Paths.log("low_dose") == "logs/low_dose/{dataset}/{dose}.log"  # beside results/: readable when it is full
    assert Paths.benchmark("train", run="r") == "benchmarks/train/r.tsv"
    assert Paths.benchmark("claims") == "benchmarks/claims.tsv"
    assert benchmark_glob("infer", dataset="a[1]") == "infer/a[[]1]/*/*.tsv"  # a given field is matched as it is
    for rule, fields in [("apply_classical", {"dataset": "foam3", "dose": "sparse-4", "method": "fbp-tv"}),
                         ("n2i_train", {"dataset": "foam3", "dose": "photons-1e3"}), ("claims", {})]:
        assert benchmark_fields(rule, job_name(rule, **fields) + ".tsv") == fields
    assert benchmark_fields("crossval", "fbp/a/b.tsv") is None
    with pytest.raises(KeyError, match="JOBS"):
        Paths.log("nope")
    with pytest.raises(TypeError, match="no field"):
        Paths.benchmark("train", dataset="x")


def test_route_cost_spec_names_each_scans_own_jobs(smoke_plan):
    spec = smoke_plan.route_cost_spec()
    assert {row["dataset"] for row in spec} == set(smoke_plan.scans)
    sim = next(row for row in spec if row["kind"] == "simulation")
    volumes = [ds for ds in smoke_plan.matched if smoke_plan.config["datasets"][ds]["scan"] == sim["dataset"]]
    assert sim["benchmarks"] and all(any(f"/{ds}" in g for ds in volumes) for g in sim["benchmarks"])
    assert [(r["kind"], r["dose"]) for r in spec if r["kind"] == "ranking"] == [
        ("ranking", dose) for ds, dose in smoke_plan.crossval_pairs() if ds == sim["dataset"]]
    trained = [g for r in spec if r["kind"] in ("matched", "generalist") for g in r["benchmarks"]]
    assert trained and all(g[len("train/"):-len(".tsv")] in smoke_plan.runs for g in trained)
    args = shlex.split(smoke_plan.check_args())
    assert args[:2] == ["--scans", *smoke_plan.scans] and json.loads(args[args.index("--costs") + 1]) == spec


def test_leave_one_family_out_for_the_listed_families_only():
    """``corpus.lofo`` as a list trains one unseen model per listed family; the table keeps every family's row,
    the others without an unseen route; a family not in the corpus is refused."""
    cfg = _cfg("smoke.yaml")
    families = cfg["corpus"].get("families") or ["foam", "ellipses", "polygons", "fibres", "layers", "shale"]
    cfg["corpus"]["families"] = families
    cfg["corpus"]["lofo"] = [families[-1]]
    plan = Plan.from_config(copy.deepcopy(cfg))
    assert sorted({r.split for r in plan.runs.values() if r.split.startswith("lofo-")}) == [f"lofo-{families[-1]}"]
    spec = plan.lofo_spec()["families"]
    assert list(spec) == families
    unseen = {f: [r for routes in e["routes"].values() for r in routes["unseen"]] for f, e in spec.items()}
    assert unseen[families[-1]] and not any(unseen[f] for f in families[:-1])
    cfg["corpus"]["lofo"] = ["no-such-family"]
    with pytest.raises(ValueError, match="corpus.lofo"):
        Plan.from_config(cfg)
