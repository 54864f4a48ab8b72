# TomoGAN study suite -- the workflow. This file only wires things up: config, includes, targets.
# Run the default study:   snakemake --cores 2 all
# Another config:          snakemake --cores 2 all --configfile config/smoke.yaml
# (each config file is complete; the default is loaded only when none is given)
# What is made, from what and where: the study plan, PLAN (study/plan.py), built in rules/common.smk.

import os

from snakemake.utils import min_version

min_version("8.0")


report: "report/workflow.rst"


if not config:

    configfile: os.path.join(workflow.basedir, "config", "default.yaml")


include: "rules/common.smk"
include: "rules/phantoms.smk"
include: "rules/acquire.smk"
include: "rules/reconstruct.smk"
include: "rules/methods.smk"
include: "rules/train.smk"
include: "rules/infer.smk"
include: "rules/metrics.smk"
include: "rules/claims.smk"
include: "rules/crossval.smk"
include: "rules/generalist.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        PLAN.simulated_data(),
        PLAN.reconstructions(),
        P.summary("conventional"),
        PLAN.enhanced(),
        [P.summary("tomogan"), P.table("main.md")] if PLAN.runs else [],
        [P.claims()] if PLAN.claim_comparisons() else [],
        [P.crossval_check()] if PLAN.crossval_pairs() else [],
        PLAN.crossval_figures(),
        PLAN.acquired_targets(),
        [P.lofo()] if PLAN.lofo_spec() else [],
        PLAN.figure_targets(),
