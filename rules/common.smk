# Validate the config (the schema fills in every default), build the study plan, constrain the wildcards.
# Everything the rules ask -- paths, flags, inputs, priorities -- comes from the plan
# (study/), which has unit tests of its own; the functions here only pass wildcards on.
import json
import os
import re

from snakemake.utils import validate

from analysis.scan import OUTPUTS as SCAN_OUTPUTS
from study import PRIORITY_N2I, PRIORITY_TRAIN, RELEASE, Paths, Plan

validate(config, schema="../config/config.schema.yaml")

PLAN = Plan.from_config(config)
P = Paths
SLAB_MB = config["memory"]["slab_mb"]  # FBP and inference stream slabs of this size
INFER_BATCH = config["inference"]["batch"]  # slices per forward pass of tomogan-infer


def _alternatives(names):
    return "|".join(re.escape(n) for n in names) if names else "(?!)"


wildcard_constraints:
    dataset=_alternatives(PLAN.datasets),
    dose=_alternatives(PLAN.doses),
    run=_alternatives(PLAN.runs),
    method=_alternatives(PLAN.classical),
    split=_alternatives(PLAN.splits),
    figure=_alternatives(PLAN.figures),


# ---------------------------------------------------------------- cluster resources per kind of job
def job_threads(kind):
    """Threads of a kind of job (simulate, reconstruct, train, infer): config resources, else `threads`."""
    return config.get("resources", {}).get(kind, {}).get("cpus", config["threads"])


def job_resources(kind):
    """Memory (MB), runtime (minutes) and GPUs of a kind of job, for a cluster executor (config `resources`)."""
    return {k: v for k, v in config.get("resources", {}).get(kind, {}).items() if k != "cpus"}


# ---------------------------------------------------------------- what the plan says, per job
def scan_raw(wildcards):
    """A scan's raw file: the path as given if it exists from the working directory, else from the repository."""
    path = PLAN.scans[wildcards.dataset]["path"]
    return path if os.path.isabs(path) or os.path.exists(path) else os.path.join(workflow.basedir, path)


def priority_of_dataset(wildcards):
    return PLAN.priority(wildcards.dataset)


def priority_of_pair(wildcards):
    return PLAN.priority(wildcards.dataset, wildcards.dose)


def figure_caption(name):
    """The figure's caption text, from report/<name>.rst (shown by the report's figure.rst template)."""
    return open(os.path.join(workflow.basedir, "report", f"{name}.rst")).read()
