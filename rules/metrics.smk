# Metrics against the normal-dose reference: per dataset (conventional methods; TomoGAN models), then the
# summaries and the main table.


rule conventional_metrics:
    input:
        reference=lambda w: PLAN.reference(w.dataset),
        recons=lambda w: PLAN.conventional_inputs(w.dataset),
        phantom=lambda w: PLAN.phantom_of(w.dataset),
        truth=lambda w: PLAN.truth_of(w.dataset),
    output:
        P.metrics(kind="conventional"),
    log:
        P.log("conventional_metrics"),
    benchmark:
        P.benchmark("conventional_metrics")
    conda:
        "../environment.yml"
    params:
        slices=config["metrics"]["slices"],
        margin=config["metrics"]["fov_margin"],
        phantom=lambda w, input: f"--phantom {input.phantom}" if input.phantom else "",
        truth=lambda w, input: f"--truth {input.truth}" if input.truth else "",
    shell:
        "python -m analysis.metrics {output} --reference {input.reference} --slices {params.slices} "
        "--fov-margin {params.margin} {params.phantom} {params.truth} {input.recons} > {log} 2>&1"


rule conventional_summary:
    input:
        [P.metrics(ds, "conventional") for ds in PLAN.datasets],
    output:
        P.summary("conventional"),
    log:
        P.log("conventional_summary"),
    benchmark:
        P.benchmark("conventional_summary")
    conda:
        "../environment.yml"
    params:
        config_hash=PLAN.config_hash,
    shell:
        "python -m analysis.summary {output} {input} --config-hash {params.config_hash} > {log} 2>&1"


rule tomogan_metrics:
    input:
        reference=lambda w: PLAN.reference(w.dataset),
        enhanced=lambda w: PLAN.tomogan_inputs(w.dataset),
        phantom=lambda w: PLAN.phantom_of(w.dataset),
        truth=lambda w: PLAN.truth_of(w.dataset),
    output:
        P.metrics(kind="tomogan"),
    log:
        P.log("tomogan_metrics"),
    benchmark:
        P.benchmark("tomogan_metrics")
    conda:
        "../environment.yml"
    params:
        slices=config["metrics"]["slices"],
        margin=config["metrics"]["fov_margin"],
        phantom=lambda w, input: f"--phantom {input.phantom}" if input.phantom else "",
        truth=lambda w, input: f"--truth {input.truth}" if input.truth else "",
    shell:
        "python -m analysis.metrics {output} --reference {input.reference} --slices {params.slices} "
        "--fov-margin {params.margin} {params.phantom} {params.truth} {input.enhanced} > {log} 2>&1"


rule tomogan_summary:
    # TomoGAN beside the conventional methods, on the volumes the models were applied to
    input:
        conventional=[P.metrics(ds, "conventional") for ds in PLAN.tomogan_datasets()],
        tomogan=[P.metrics(ds, "tomogan") for ds in PLAN.tomogan_datasets()],
    output:
        report(P.summary("tomogan"), caption="../report/tomogan_table.rst", category="Tables"),
    log:
        P.log("tomogan_summary"),
    benchmark:
        P.benchmark("tomogan_summary")
    conda:
        "../environment.yml"
    params:
        config_hash=PLAN.config_hash,
    shell:
        "python -m analysis.summary {output} {input.conventional} {input.tomogan} "
        "--config-hash {params.config_hash} > {log} 2>&1"


rule main_table:
    input:
        rules.tomogan_summary.output,
    output:
        md=report(P.table("main.md"), caption="../report/main_table.rst", category="Tables"),
        csv=P.table("main.csv"),
        object_csv=P.table("main_object.csv"),
    log:
        P.log("main_table"),
    benchmark:
        P.benchmark("main_table")
    conda:
        "../environment.yml"
    params:
        main=" ".join(f"{ds}={run}" for ds, run in PLAN.main_models()),
        runs=json.dumps(PLAN.run_table()),
    shell:
        "python -m analysis.tables {input} {output.md} --main {params.main} --runs {params.runs:q} > {log} 2>&1"
