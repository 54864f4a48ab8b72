# Validate the config, then derive the names, wildcard constraints and input functions every rule uses.
import json
import os
import re

from snakemake.utils import validate


validate(config, schema="../config/config.schema.yaml")

DATASETS = list(config["datasets"])
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
SIRT_DATASETS = (DATASETS if config["reconstruct"]["sirt"].get("datasets", "all") == "all"
                 else config["reconstruct"]["sirt"]["datasets"])
for _name in SIRT_DATASETS:
    if _name not in DATASETS:
        raise ValueError(f"config 'reconstruct.sirt.datasets': '{_name}' is not a dataset")
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
    return [f"results/{d}/proj/{dose}.h5" for d in DATASETS for dose in DOSES]


def reconstructions():
    """Every conventional reconstruction the study compares against."""
    out = [recon_path(d, dose, "fbp") for d in DATASETS for dose in DOSES]
    out += [recon_path(d, dose, m) for d in SIRT_DATASETS for dose in LOW_DOSES for m in ("sirt", "sirt-tv")]
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
    ds = config["datasets"][wildcards.dataset]
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
from tomogan_core.study import RELEASE, check_runs, enhanced_targets, plan_runs, release_targets

RUNS = plan_runs(config.get("tomogan", {})) if "tomogan" in config else {}
check_runs(RUNS, DATASETS, DOSES)


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
    flags += [f"--{k.replace('_', '-')} {v}" for k, v in sorted(run.settings.items())]
    return " ".join(flags)


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
    depth = config["tomogan"]["train"].get("depth", 3)
    return " ".join(f"{ds}={run.name}" for run in RUNS.values() if run.depth == depth and run.loss_set == "all"
                    for ds in run.test)


def timing_inputs(wildcards):
    t = config["timing"]
    run = RUNS[f"{t['split']}-{t['dose']}-d{config['tomogan']['train'].get('depth', 3)}-all"]
    ds = run.test[0]
    return {"proj": f"results/{ds}/proj/{run.dose}.h5", "reference": reference_path(ds),
            "model": f"results/models/{run.name}/model.pt"}
