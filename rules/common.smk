# Validate the config, then derive the names, wildcard constraints and input functions every rule uses.
import json
import os
import re

from snakemake.utils import validate


validate(config, schema="../config/config.schema.yaml")

SCANS = config.get("scans") or {}
for _name in SCANS:
    if _name in config["datasets"]:
        raise ValueError(f"config 'scans.{_name}': the name is already a dataset")
DATASETS = list(config["datasets"]) + list(SCANS)
FOAM = [d for d, v in config["datasets"].items() if v["kind"] == "foam"]
SHALE = [d for d, v in config["datasets"].items() if v["kind"] == "shale"]
DOSES = list(config["doses"])
FULL = [d for d, v in config["doses"].items() if v["mode"] == "full"]
LOW_DOSES = [d for d in DOSES if d not in FULL]
if len(FULL) != 1:
    raise ValueError(f"config 'doses': exactly one dose must have mode 'full', found {FULL or 'none'}")
FULL = FULL[0]
for _name in SHALE:
    _ds = config["datasets"][_name]
    for _key, _table in (("sample", "samples"), ("facility", "facilities"), ("tomobank", "tomobank")):
        if _ds.get(_key) not in config["shale"][_table]:
            raise ValueError(f"config 'datasets.{_name}.{_key}': '{_ds.get(_key)}' is not a key of 'shale.{_table}'")
_ref = config["reference"]
if _ref.get("dose", FULL) not in config["doses"]:
    raise ValueError(f"config 'reference.dose': '{_ref['dose']}' is not a dose label")
# defaults from the schema, which validate() fills in
SLAB_MB = config["memory"]["slab_mb"]  # FBP and inference stream slabs of this size
INFER_BATCH = config["inference"]["batch"]  # slices per forward pass of tomogan-infer
CLASSICAL = config.get("classical", {}).get("methods", ["sirt", "sirt-tv", "fbp-tv", "fbp-bm3d"])
if "sirt-tv" in CLASSICAL and "sirt" not in CLASSICAL:
    raise ValueError("config 'classical.methods': sirt-tv denoises the tuned SIRT, so it needs sirt too")
N2I = "noise2inverse" in config
for _name, _scan in SCANS.items():
    for _dose in _scan["doses"]:
        if _dose not in config["doses"] or _dose == FULL:
            raise ValueError(f"config 'scans.{_name}.doses': '{_dose}' is not a low-dose label")


def doses_of(dataset):
    """Dose labels made for a dataset: every dose, or for a scan its full dose and its listed ones."""
    return [FULL] + list(SCANS[dataset]["doses"]) if dataset in SCANS else DOSES


def scan_raw(wildcards):
    """A scan's raw file: the path as given if it exists from the working directory, else from the repository."""
    path = SCANS[wildcards.dataset]["path"]
    return path if os.path.isabs(path) or os.path.exists(path) else os.path.join(workflow.basedir, path)


def scan_prepare_args(wildcards):
    """Flags of `simulate.dxchange` for a user's scan: name, centre (or auto), rows and binning."""
    scan = SCANS[wildcards.dataset]
    rows = f" --rows {scan['rows'][0]} {scan['rows'][1]}" if scan.get("rows") else ""
    return f"--dataset {wildcards.dataset} --center {scan.get('center', 'auto')} --bin {scan.get('bin', 1)}{rows}"


# A short hash of the resolved config: every table row records which config made it.
CONFIG_HASH = __import__("hashlib").sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]


def _alternatives(names):
    return "|".join(re.escape(n) for n in names) if names else "(?!)"


wildcard_constraints:
    dataset=_alternatives(DATASETS),
    dose=_alternatives(DOSES),


# ---------------------------------------------------------------- cluster resources per kind of job
def job_threads(kind):
    """Threads of a kind of job (simulate, reconstruct, train, infer): config resources, else `threads`."""
    return config.get("resources", {}).get(kind, {}).get("cpus", config["threads"])


def job_resources(kind):
    """Memory (MB), runtime (minutes) and GPUs of a kind of job, for a cluster executor (config `resources`)."""
    res = dict(config.get("resources", {}).get(kind, {}))
    res.pop("cpus", None)
    return res


# ---------------------------------------------------------------- paths
def recon_path(dataset, dose, method):
    return f"results/{dataset}/recon/{dose}/{method}.h5"


def reference_path(dataset):
    return recon_path(dataset, config["reference"].get("dose", FULL), config["reference"].get("method", "fbp"))


def simulated_data():
    return [f"results/{d}/proj/{dose}.h5" for d in DATASETS for dose in doses_of(d)]


def reconstructions():
    """Every reconstruction the study compares TomoGAN with: FBP of everything, and on each evaluated
    (test volume, dose) the tuned classical methods and Noise2Inverse."""
    out = [recon_path(d, dose, "fbp") for d in DATASETS for dose in doses_of(d)]
    out += [recon_path(d, dose, m) for d, dose in EVALUATED for m in CLASSICAL + (["n2i"] if N2I else [])]
    return sorted(set(out + [reference_path(d) for d in DATASETS]))


# ---------------------------------------------------------------- parameters as command-line flags
def foam_args(wildcards):
    f = config["foam"]
    ds = config["datasets"][wildcards.dataset]
    return (f"--dataset {wildcards.dataset} --seed {config['seed'] + ds.get('seed', 0)} "
            f"--size {f['size']} --slices {f['slices']} --cylinder-radius {f['cylinder_radius']} "
            f"--pore-radius-min {f['pore_radius'][0]} --pore-radius-max {f['pore_radius'][1]} "
            f"--porosity {f['porosity']} --gap {f['gap']} --supersample {f['supersample']}")


def dose_args(wildcards):
    d = config["doses"][wildcards.dose]
    ds = SCANS.get(wildcards.dataset) or config["datasets"][wildcards.dataset]
    level = f"--factor {d['factor']}" if d["mode"] == "sparse" else f"--incident {d['incident']}"
    return f"--label {wildcards.dose} --mode {d['mode']} {level} --seed {config['seed'] + ds.get('seed', 0)}"


def _shale(wildcards):
    ds = config["datasets"][wildcards.dataset]
    sh = config["shale"]
    return ds, sh, sh["samples"][ds["sample"]], sh["facilities"][ds["facility"]], sh["tomobank"][ds["tomobank"]]


def _none(value):
    return "none" if value is None else value


def shale_download_args(wildcards):
    """Flags of `simulate.download`: the real file's URL and checksum, the mode, then the stand-in's flags."""
    ds, sh, sample, fac, tb = _shale(wildcards)
    # The stand-in's rotation axis sits where the real scan's does, scaled to the stand-in's detector.
    offset = (tb["center"] - tb["width"] / 2) * fac["detector"] / tb["width"]
    standin = (f"--preset {sample.get('name', 'hornby')} --sample {ds['sample']} "
               f"--sample-seed {config['seed'] + sample['seed']} --size {sample.get('size', 256)} "
               f"--slices {sh.get('slices', 48)} --facility {ds['facility']} --n-angles {fac['n_angles']} "
               f"--detector {fac['detector']} --rows {sh.get('slices', 48)} --incident {fac['incident']} "
               f"--blur {fac.get('blur', 0.0)} --dark {fac.get('dark', 100.0)} "
               f"--max-line-integral {fac.get('max_line_integral', 2.0)} --center-offset {offset:.4f} "
               f"--seed {config['seed'] + ds.get('seed', 0)} --backend {config['backend']}")
    return (f"--name {ds['tomobank']} --url {_none(tb['url'])} --sha256 {_none(tb['sha256'])} "
            f"--size {_none(tb.get('size'))} --mode {sh['source']} -- {standin}")


def shale_prepare_args(wildcards):
    """Flags of `simulate.dxchange`; the --real-* ones apply only when the raw file is the real scan."""
    ds, sh, sample, fac, tb = _shale(wildcards)
    return (f"--dataset {wildcards.dataset} --facility {ds['facility']} --sample {ds['sample']} "
            f"--real-center {tb['center']} --real-bin {tb.get('bin', 8)} --real-slices {sh.get('slices', 48)}")


# ---------------------------------------------------------------- TomoGAN runs (tomogan_core/study.py)
from tomogan_core.study import RELEASE, check_runs, enhanced_targets, plan_runs, release_targets, settings_flags

RUNS = plan_runs(config.get("tomogan", {})) if "tomogan" in config else {}
check_runs(RUNS, DATASETS, DOSES)
# a scan gets its split's main run at each of its doses, applied as it is (like a cross-facility test)
_DEPTH = config.get("tomogan", {}).get("train", {}).get("depth", 3)
for _name, _scan in SCANS.items():
    for _dose in _scan["doses"]:
        _run = RUNS.get(f"{_scan['split']}-{_dose}-d{_DEPTH}-all")
        if _run is None:
            raise ValueError(f"config 'scans.{_name}': split '{_scan['split']}' has no main run at dose '{_dose}' "
                             "(add it to tomogan.main)")
        _run.cross_test.append(_name)


wildcard_constraints:
    run=_alternatives(RUNS),


def enhanced():
    """Every TomoGAN-enhanced volume of the study: the runs' and the authors' released model's."""
    return enhanced_targets(RUNS) + release_targets(RUNS)


def train_inputs(wildcards):
    """Low-dose FBPs and their normal-dose references: the run's training and validation volumes."""
    run = RUNS[wildcards.run]
    return {"ld": [recon_path(d, run.dose, "fbp") for d in run.train],
            "nd": [reference_path(d) for d in run.train],
            "vld": [recon_path(d, run.dose, "fbp") for d in run.val],
            "vnd": [reference_path(d) for d in run.val]}


def train_args(wildcards, input):
    """Flags of `tomogan_core.train`: validation volumes (if any) and the run's settings."""
    run = RUNS[wildcards.run]
    flags = [f"-vld {' '.join(input.vld)} -vnd {' '.join(input.vnd)}"] if run.val else []
    flags += settings_flags(run.settings)
    return " ".join(flags)


# ---------------------------------------------------------------- every method on the evaluated volumes
DEPTH = config.get("tomogan", {}).get("train", {}).get("depth", 3)
# (test volume, dose) -> its own main run (split's, depth DEPTH, every loss term): the main table's rows.
# The classical methods are tuned on that run's validation slices and Noise2Inverse trains on the volume.
EVALUATED = {(ds, run.dose): run for run in RUNS.values() if run.depth == DEPTH and run.loss_set == "all"
             for ds in run.test + [c for c in run.cross_test if c in SCANS]}


wildcard_constraints:
    method=_alternatives(CLASSICAL),
    split=_alternatives(config.get("tomogan", {}).get("splits", {})),


def _tuning_run(split, dose):
    return next(r for r in EVALUATED.values() if r.split == split and r.dose == dose)


def tuning_path(split, dose, method):
    return f"results/tuning/{split}/{dose}/{method}.json"


def tune_inputs(wildcards):
    """Validation data of a split at a dose: the validation volume's (or the training volume's, whose
    held-out end training validates on) low-dose FBP or projections and its reference."""
    run = _tuning_run(wildcards.split, wildcards.dose)
    method = getattr(wildcards, "method", "sirt")  # rule tune_sirt has no method wildcard
    volume = (run.val or run.train)[0]
    inputs = {"val": recon_path(volume, run.dose, "fbp") if method.startswith("fbp")
              else f"results/{volume}/proj/{run.dose}.h5", "ref": reference_path(volume)}
    if method == "sirt-tv":
        inputs["sirt"] = tuning_path(wildcards.split, wildcards.dose, "sirt")
        inputs["sirt_base"] = f"results/tuning/{wildcards.split}/{wildcards.dose}/sirt-val.h5"
    return inputs


def tune_args(wildcards):
    run = _tuning_run(wildcards.split, wildcards.dose)
    train = config["tomogan"]["train"]
    flags = f"--val-slices {train.get('val_slices', 8)} --depth {run.depth}"
    if not run.val:
        flags += f" --held-out-fraction {train.get('val_fraction', 0.15)}"
    cl = config.get("classical", {})
    grid = cl.get("grids", {}).get(getattr(wildcards, "method", "sirt"))
    if grid:
        flags += " --grid " + " ".join(str(v) for v in grid)
    return flags + f" --criterion {cl.get('criterion', 'ssim')}"


def apply_inputs(wildcards):
    """A tuned method's test input and its tuning file."""
    run = EVALUATED[(wildcards.dataset, wildcards.dose)]
    data = {"sirt": f"results/{wildcards.dataset}/proj/{wildcards.dose}.h5",
            "sirt-tv": recon_path(wildcards.dataset, wildcards.dose, "sirt")}.get(
        wildcards.method, recon_path(wildcards.dataset, wildcards.dose, "fbp"))
    return {"data": data, "tuning": tuning_path(run.split, run.dose, wildcards.method)}


def n2i_settings():
    """Flags of `tomogan_core.noise2inverse train` from the config's noise2inverse.train."""
    return " ".join(settings_flags(config["noise2inverse"].get("train", {})))


def tomogan_metric_inputs(wildcards):
    """The enhanced volumes of one dataset, for its TomoGAN metrics."""
    return [p for p in enhanced() if p.startswith(f"results/{wildcards.dataset}/")]


def tomogan_datasets():
    """Datasets that some TomoGAN run is tested on."""
    return sorted({ds for run in RUNS.values() for ds in run.applied_to})


# ---------------------------------------------------------------- figures and timing (analysis/panels.py)
from analysis.panels import plan_figures

FIGURES = plan_figures(config, RUNS, reference_path) if RUNS else {}


wildcard_constraints:
    figure=_alternatives(FIGURES),


def figures():
    return [f"results/figures/{name}.png" for name in FIGURES]


def figure_caption(name):
    """The figure's caption text, from report/<name>.rst (shown by the report's figure.rst template)."""
    return open(os.path.join(workflow.basedir, "report", f"{name}.rst")).read()


def main_models():
    """`dataset=run` of each test volume's own model (depth from config, every loss term), for the main table."""
    return " ".join(f"{ds}={run.name}" for (ds, _), run in sorted(EVALUATED.items()))


def _timing_run():
    t = config["timing"]
    return RUNS[f"{t['split']}-{t['dose']}-d{config['tomogan']['train'].get('depth', 3)}-all"]


def timing_inputs(wildcards):
    run = _timing_run()
    ds = run.test[0]
    inputs = {"proj": f"results/{ds}/proj/{run.dose}.h5", "reference": reference_path(ds),
              "model": f"results/models/{run.name}/model.pt",
              "tuning": [tuning_path(run.split, run.dose, m) for m in CLASSICAL]}
    if N2I:
        inputs["n2i"] = f"results/models/n2i/{ds}-{run.dose}/model.pt"
    return inputs


def speed_inputs(wildcards):
    """The timed run's model and its validation data (low-dose FBP, reference), for the SSIM change of
    each inference variant (analysis/inference_speed.py)."""
    run = _timing_run()
    volume = (run.val or run.train)[0]
    return {"model": f"results/models/{run.name}/model.pt", "val": recon_path(volume, run.dose, "fbp"),
            "ref": reference_path(volume)}


def speed_args(wildcards):
    run = _timing_run()
    sp = config["timing"].get("speed", {})
    train = config["tomogan"]["train"]
    flags = (f"--size {sp.get('size', 512)} --depth {run.depth} --batch {' '.join(map(str, sp.get('batch', [1, 4])))} "
             f"--repeats {sp.get('repeats', 5)} --val-slices {train.get('val_slices', 8)}")
    if not run.val:
        flags += f" --held-out-fraction {train.get('val_fraction', 0.15)}"
    return flags + ("" if sp.get("compile", True) else " --no-compile")
