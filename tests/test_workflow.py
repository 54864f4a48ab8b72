"""The Snakemake DAG: the default config plans, and the smoke config runs end to end."""

import os
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from simulate.acquire import read_projections

ROOT = Path(__file__).resolve().parents[1]


def _snakemake(*args, cwd):
    # the rules' shell steps call `python`: make it this interpreter, whatever PATH the tests got
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    return subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
                           "--directory", str(cwd), *args], capture_output=True, text=True, cwd=ROOT, env=env)


def test_default_config_plans_every_stage(tmp_path):
    proc = _snakemake("-n", "-p", "all", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    cfg = yaml.safe_load((ROOT / "config" / "default.yaml").read_text())
    # the workflow profile (greedy scheduler) is read, and the config's inference batch reaches every inference job
    assert "profiles/default" in proc.stdout + proc.stderr
    infer_cmds = [line for line in proc.stdout.splitlines() if "tomogan_core.infer " in line]
    assert infer_cmds and all(f"--batch {cfg['inference']['batch']} " in line for line in infer_cmds)
    n_data, n_doses = len(cfg["datasets"]), len(cfg["doses"])
    n_scans, n_scan_doses = len(cfg["scans"]), sum(len(scan["doses"]) for scan in cfg["scans"].values())
    # the corpus: a training, validation and test volume per family at its doses; per scan, a training and a
    # validation volume per scan_matched family at the scan's doses
    n_corpus, corpus_doses = 3 * len(cfg["corpus"]["families"]), len(cfg["corpus"]["doses"])
    n_matched = 2 * len(cfg["scan_matched"]["families"])
    n_foam = sum(1 for d in cfg["datasets"].values() if d["kind"] == "foam")
    for rule, count in [("foam_phantom", n_foam), ("shale_raw", 4), ("prepare_shale", 4), ("prepare_scan", n_scans),
                        ("family_phantom", n_corpus), ("matched_phantom", n_matched * n_scans),
                        ("project_matched", n_matched * n_scans),
                        ("low_dose", n_data * (n_doses - 1) + n_scan_doses + n_corpus * corpus_doses
                         + n_matched * n_scan_doses),
                        ("fbp", n_data * n_doses + n_scan_doses + n_scans + n_corpus * (1 + corpus_doses)
                         + n_matched * (n_scan_doses + n_scans))]:
        assert any(line.split() == [rule, str(count)] for line in proc.stdout.splitlines()), (rule, proc.stdout[-3000:])


def _jobs(dry_run_stdout):
    """The jobs of a dry run: rule, inputs, outputs and priority of each."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", dry_run_stdout):
        head = re.match(r"(?:local)?rule (\w+):", block)
        if not head:
            continue
        fields = dict(re.findall(r"^    (\w+): (.*)$", block, re.M))
        jobs.append({"rule": head.group(1), "input": [p for p in fields.get("input", "").split(", ") if p],
                     "output": [p for p in fields.get("output", "").split(", ") if p],
                     "priority": int(fields.get("priority", 0))})
    return jobs


def test_every_job_a_training_waits_for_has_its_priority(tmp_path):
    """The critical path first: Snakemake's schedulers rank ready jobs by priority before anything else (the
    greedy one's reward is the tuple (priority, temp bytes, input bytes)), so a training's whole upstream chain
    (phantom -> projections -> low dose -> FBP) must carry the training's priority; otherwise the trainings
    queue behind the classical tuning, and the run's length depends on tie-breaking."""
    proc = _snakemake("-n", "all", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    jobs = _jobs(proc.stdout)
    producer = {out: job for job in jobs for out in job["output"]}
    trains = [j for j in jobs if j["rule"] == "train"]
    assert trains and all(j["priority"] > 0 for j in trains)
    top = trains[0]["priority"]
    upstream, todo = set(), [p for j in trains for p in j["input"]]
    while todo:
        job = producer.get(todo.pop())
        if job is not None and id(job) not in upstream:
            upstream.add(id(job))
            todo += job["input"]
            assert job["priority"] == top, (job["rule"], job["output"], job["priority"])
    assert {j["rule"] for j in jobs if id(j) in upstream} >= {"foam_phantom", "project_foam", "low_dose", "fbp"}
    # and the short jobs that no training waits for are not promoted with them
    tuning = [j for j in jobs if j["rule"].startswith("tune_")]
    assert tuning and all(j["priority"] < top for j in tuning)


@pytest.mark.slow
def test_smoke_workflow_runs_and_labels_its_data(tmp_path):
    proc = _snakemake("--cores", "2", "all", "--configfile", str(ROOT / "config" / "smoke.yaml"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the critical path first: the last training starts before the last classical tuning job does
    started = re.findall(r"^(?:local)?rule (\w+):", proc.stderr, re.M)
    last = {rule: i for i, rule in enumerate(started)}
    assert last["train"] < max(i for rule, i in last.items() if rule.startswith("tune_")), started
    cfg = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    results = tmp_path / "results"
    for dataset, spec in cfg["datasets"].items():
        for dose in cfg["doses"]:
            with h5py.File(results / dataset / "recon" / dose / "fbp.h5") as f:
                rec = f["/recon"][()]
                assert rec.shape[0] == f["/slices"].shape[0] and np.isfinite(rec).all()
                assert f.attrs["dose"] == dose and f.attrs["method"] == "fbp" and f.attrs["backend"]
                expected = "synthetic-shale" if spec["kind"] == "shale" else "simulated (xdesign)"
                assert f.attrs["source"] == expected
        # every rule leaves a log and a benchmark, beside results/
    assert list((tmp_path / "logs").rglob("*.log")) and list((tmp_path / "benchmarks").rglob("*.tsv"))
    assert not (results / "logs").exists() and not (results / "benchmarks").exists()
    # what the disk check estimates for this plan is what the run wrote, within a factor of 2
    from study.disk import estimate

    estimated = sum(r["bytes"] for r in estimate(ROOT / "config" / "smoke.yaml").values())
    written = sum(f.stat().st_size for f in results.rglob("*") if f.is_file())
    assert written / 2 <= estimated <= 2 * written, (estimated, written)
    table = pd.read_csv(results / "metrics" / "conventional.csv")
    low = [d for d, v in cfg["doses"].items() if v["mode"] != "full"]
    own = ["as-acquired"] if any(s.get("acquired") for s in cfg["scans"].values()) else []  # matched volumes'
    assert set(table["dose"]) == set(low + own)
    assert np.isfinite(table[["ssim_mean", "psnr_mean"]]).all().all()
    assert set(table.loc[table["dataset"].str.startswith("shale"), "source"]) == {"synthetic-shale"}
    # every evaluated (test volume, dose) has every tuned classical method, with the chosen value beside it, and
    # both metric regions; Noise2Inverse (a training per volume) only the first test volume of each split
    first, *others = cfg["tomogan"]["splits"]["foam"]["test"]
    evaluated = {(first, d) for d in cfg["tomogan"]["main"][0]["doses"]}
    evaluated |= {(ds, "photons-1e3") for ds in ("shale-aps-n1", "shale-sls-n1")}
    evaluated |= {(name, dose) for name, scan in cfg["scans"].items() for dose in scan["doses"]}
    no_n2i = {(ds, d) for ds in others for d in cfg["tomogan"]["main"][0]["doses"]}
    assert no_n2i
    methods = set(cfg["classical"]["methods"]) | {"n2i"}
    for ds, dose in evaluated | no_n2i:
        here = table[(table["dataset"] == ds) & (table["dose"] == dose)]
        found = set(here["method"])
        assert methods - ({"n2i"} if (ds, dose) in no_n2i else set()) <= found, (ds, dose, found)
        assert (ds, dose) not in no_n2i or "n2i" not in found, (ds, dose, found)
        tuned = here[here["method"].isin(cfg["classical"]["methods"])]
        assert tuned["tuning"].str.contains("=").all()
    evaluated |= no_n2i
    assert not table.loc[~table.set_index(["dataset", "dose"]).index.isin(list(evaluated)), "method"].isin(
        methods).any()
    assert np.isfinite(table[["ssim_object_mean", "psnr_object_mean"]]).all().all()
    for path in (results / "tuning").rglob("*.json"):
        import json

        tuning = json.loads(path.read_text())
        assert tuning["value"] in tuning["grid"]
        assert not any(t in str(v) for t in [first, *others] for v in tuning.values())  # never tuned on a test volume
    # within one dataset, fewer photons never score a better PSNR
    fbp = table[(table["method"] == "fbp") & (table["dose_mode"] == "photons")]
    for _, grp in fbp.groupby("dataset"):
        grp = grp.sort_values("dose_level")
        assert grp["psnr_mean"].is_monotonic_increasing
    # the user's scan: its centre found automatically near the truth (tests/data/make_scan_demo.py), its
    # synthetic origin carried into every row, every method and the TomoGAN models applied to it
    with h5py.File(results / "demo-scan" / "proj" / "full.h5") as f:
        assert f.attrs["center_method"].startswith("auto") and abs(f.attrs["center"] - 67.3) < 0.5
    assert set(table.loc[table["dataset"] == "demo-scan", "source"]) == {"synthetic-demo-scan"}
    # the scan as acquired (acquired: true): every candidate ranked, the generalist and the model fine-tuned on
    # simulation at the scan's own acquisition among them, and the chosen route's volume of every row
    acquired = results / "demo-scan" / "acquired"
    ranking = pd.read_csv(acquired / "ranking.csv")
    assert {"fbp", "tomogan:generalist", "tomogan:matched"} <= set(ranking["method"])
    assert ranking["chosen"].sum() == 1
    with h5py.File(results / "matched-demo-scan-fibres-train" / "proj" / "as-acquired.h5") as f, \
            h5py.File(results / "demo-scan" / "proj" / "full.h5") as scan:
        assert f["/exchange/data"].shape[0] == scan["/exchange/data"].shape[0]  # every view the scan has
        assert f.attrs["noise_incident"] > 0  # and its photon noise
    assert np.isfinite(ranking["score"]).all()
    with h5py.File(acquired / "volume.h5") as f, h5py.File(acquired / "projections.h5") as p:
        assert f["/recon"].shape[0] == p["/exchange/data"].shape[1] and np.isfinite(f["/recon"][()]).all()
        assert f.attrs["method"] == ranking.loc[ranking["chosen"], "method"].iloc[0]
    assert "synthetic-demo-scan" in (acquired / "summary.html").read_text()
    # TomoGAN: every planned run was trained, applied to its test volumes, and scored beside FBP
    from study import Plan, load_config

    runs = Plan.from_config(load_config(ROOT / "config" / "smoke.yaml")).runs
    for run in runs.values():
        assert (results / "models" / run.name / "model.pt").exists()
        assert (results / "models" / run.name / "log.csv").read_text().count("\n") > 1
    scored = pd.read_csv(results / "metrics" / "tomogan.csv")
    tg = scored[scored["method"] == "tomogan"]
    assert set(tg["model"]) == {name for name, run in runs.items() if run.applied_to}  # (as-acquired: ranked only)
    assert np.isfinite(tg[["ssim_mean", "psnr_mean"]]).all().all()
    # the stand-in VGG weights are named wherever they fed a number
    assert set(tg.loc[tg["model"].isin([r.name for r in runs.values() if r.loss_set == "all"]), "vgg_weights"]) == {
        "random-init"}
    assert {"fbp", "tomogan", "tomogan-release"} <= set(scored["method"])
    release = scored[scored["method"] == "tomogan-release"]
    assert np.isfinite(release[["ssim_mean", "psnr_mean"]]).all().all()
    # every planned (test volume, dose) has FBP, each model tested there, and the released weights
    for run in runs.values():
        for ds in run.test:
            here = scored[(scored["dataset"] == ds) & (scored["dose"] == run.dose)]
            assert {"fbp", "tomogan-release"} <= set(here["method"]) and run.name in set(here["model"]), (ds, run.name)
    for ext in ("md", "tex"):
        assert (results / "metrics" / f"tomogan.{ext}").read_text().count("tomogan") >= len(runs)
    # every figure exists as a valid PNG (and a PDF), and the timing table is complete
    import matplotlib.image as mpimg

    names = ["fig_overview", "fig_depth", "fig_loss_terms", "fig_sparse_views", "fig_exposure",
             "fig_feature_values", "fig_timing", "fig_cross_facility", "fig_training_curves", "fig_claims",
             "fig_learning_curve"]
    for name in names:
        png = results / "figures" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert mpimg.imread(png).shape[0] > 100 and (results / "figures" / f"{name}.pdf").stat().st_size > 0
    timing = pd.read_csv(results / "timing" / "timing.csv")
    assert len(timing) == 9 and np.isfinite(timing[["ms_per_slice", "ssim", "psnr", "ssim_object"]]).all().all()
    assert {"FBP+BM3D, tuned", "FBP+TV, tuned", "Noise2Inverse"} <= set(timing["method"])
    # every claim has a verdict (or says it is not run by this config), the smoke caveat, and the config hash
    claims = pd.read_csv(results / "claims" / "claims.csv")
    ids = {c["id"] for c in load_config(ROOT / "config" / "smoke.yaml")["claims"]["list"]}
    assert set(claims["claim"]) == ids | {"control-null", "control-positive"}
    assert list(claims["claim"].drop_duplicates()[:2]) == ["control-null", "control-positive"]  # controls first
    assert claims["verdict"].isin(["supported", "contradicted", "equivalent", "inconclusive", "not run",
                                   "not measured", "at ceiling", "not tested at this budget"]).all()
    judged = claims[~claims["verdict"].isin(["not run", "not measured"])]
    assert set(judged["metric"]) >= {"ssim_truth", "ssim", "ssim_object", "psnr", "speedup"}
    assert (judged["lo"] <= judged["effect"]).all() and (judged["effect"] <= judged["hi"]).all()
    assert (judged.loc[(judged["metric"] != "speedup") & (judged["role"] == "claim"), ["n_seeds_a"]] == 2).all().all()
    # the ablation's 2-step fine-tune cannot show a settled ranking: its claims are not tested at this budget
    depth = claims[claims["claim"] == "depth-3-best"]
    assert (depth.loc[depth["metric_role"] == "primary", "verdict"] == "not tested at this budget").all()
    assert depth["verdict"].isin(["not tested at this budget", "not measured"]).all()
    for extra in ("correlation", "coverage"):
        assert len(pd.read_csv(results / "claims" / f"claims_{extra}.csv"))
    # the positive control: every seed's output blurred and scored; the foam's metrics also against its phantom
    control = pd.read_csv(results / "metrics" / "foam3" / "control-sparse-8.csv")
    assert set(control["method"]) == {"tomogan-degraded"} and control["model"].nunique() == 2
    foam = pd.read_csv(results / "metrics" / "foam3" / "tomogan.csv")
    assert np.isfinite(foam["ssim_truth"]).all() and (foam["ssim_truth"] < 1).all()
    # the shale stand-in too, against the sample it was measured from; the cross-facility claim is decided by it
    shale = pd.read_csv(results / "metrics" / "shale-aps-n1" / "conventional.csv")
    assert np.isfinite(shale["ssim_truth"]).all() and (shale["ssim_truth"] < 1).all()
    cross = claims[(claims["claim"] == "cross-facility") & (claims["metric_role"] == "primary")]
    assert len(cross) and (cross["metric"] == "ssim_truth").all()
    assert claims["config_hash"].nunique() == 1
    assert "mean nothing" in (results / "claims" / "claims.md").read_text()
    # the corpus: a leave-one-family-out row per family and corpus dose, every route scored; the generalist
    # ranked on the demo scan
    lofo = pd.read_csv(results / "generalist" / "lofo.csv")
    corpus = load_config(ROOT / "config" / "smoke.yaml")["corpus"]
    assert len(lofo) == len(corpus["families"]) * len(corpus["doses"])
    assert np.isfinite(lofo[["fbp", "foam only", "generalist", "unseen", "unseen_vs_foam"]]).all().all()
    ranked = pd.read_csv(results / "demo-scan" / "crossval" / f"{corpus['doses'][0]}.csv")
    assert any(m.startswith("tomogan:generalist-") for m in ranked["method"])
    # every scan dose: the scan-matched model and Noise2Inverse fine-tuned from it, ranked beside N2I from scratch;
    # the matched volumes carry the scan's views, detector and centre; the model records what trained it
    smoke = load_config(ROOT / "config" / "smoke.yaml")
    scan_proj = read_projections(results / "demo-scan" / "proj" / "full.h5")
    for dose in smoke["scans"]["demo-scan"]["doses"]:
        methods = set(pd.read_csv(results / "demo-scan" / "crossval" / f"{dose}.csv")["method"])
        assert {f"tomogan:matched-demo-scan-{dose}-d3-all", "n2i", "n2i:matched"} <= methods
        sim = read_projections(results / "matched-demo-scan-fibres-train" / "proj" / f"{dose}.h5")
        low = read_projections(results / "demo-scan" / "proj" / f"{dose}.h5")
        assert sim[0].shape[0] == low[0].shape[0] and sim[0].shape[2] == low[0].shape[2]
        assert sim[2]["center"] == scan_proj[2]["center"] and sim[2]["noise"] == "poisson"
        provenance = torch.load(results / "models" / f"matched-demo-scan-{dose}-d3-all" / "model.pt",
                                weights_only=False)["provenance"]
        assert provenance["init"].endswith("model.pt") and "generalist" in provenance["init"]
        assert set(provenance["training_data"]["summary"]["families"]) == set(smoke["scan_matched"]["families"])
    main_md = (results / "tables" / "main.md").read_text()
    assert "inside the object" in main_md and "FBP+BM3D" in main_md and "Noise2Inverse" in main_md
    assert (timing["ms_per_slice"] > 0).all() and set(timing["device"]) <= {"cpu", "cpu+cpu", "cuda", "cpu+cuda"}
    # the self-contained report builds, with a caption for every figure
    proc = _snakemake("--configfile", str(ROOT / "config" / "smoke.yaml"), "--report", "report.html", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    html = (tmp_path / "report.html").read_text()
    for name in names:
        first_words = (ROOT / "report" / f"{name}.rst").read_text().split(".")[0][:30]
        assert first_words in html, name
