# The paper's claims, judged (analysis/claims.py): every comparison the plan derives from the config's claims
# section, on the per-slice metrics of the test slices, with a bootstrap interval over seeds and slices.


rule learning_curve:
    # the ablation's validation curves over its seeds, and whether their ranking settled before training ended
    input:
        lambda w: [P.train_log(r.name) for r in PLAN.learning_curve_groups()[w.group]],
    output:
        csv=P.learning_curve(),
        summary=P.learning_curve().replace(".csv", "_summary.csv"),
    log:
        P.log("learning_curve"),
    benchmark:
        P.benchmark("learning_curve")
    wildcard_constraints:
        group="loss-sets|depths",
    conda:
        "../environment.yml"
    params:
        runs=lambda w: json.dumps(
            [r for r in PLAN.run_table() if r["run"] in {x.name for x in PLAN.learning_curve_groups()[w.group]}]
        ),
    shell:
        "python -m analysis.learning_curve {output.csv} --runs {params.runs:q} --logs {input} > {log} 2>&1"


rule positive_control:
    # the controls' main run, every seed, blurred to lose twice the SSIM margin (each seed's sigma calibrated on its
    # own output, against the truth where the claims are decided on it)
    input:
        reference=lambda w: PLAN.reference(w.dataset),
        truth=lambda w: PLAN.truth_of(w.dataset),
        enhanced=lambda w: [P.enhanced(w.dataset, w.dose, r.name) for r in PLAN.main_runs(*PLAN.control_place())],
    output:
        directory(P.control()),
    log:
        P.log("positive_control"),
    benchmark:
        P.benchmark("positive_control")
    conda:
        "../environment.yml"
    params:
        slices=config["metrics"]["slices"],
        margin=config["metrics"]["fov_margin"],
        args=lambda w: PLAN.control_args(w.dataset),
    shell:
        "python -m analysis.controls {output} --reference {input.reference} --slices {params.slices} "
        "--fov-margin {params.margin} {params.args} {input.enhanced} > {log} 2>&1"


rule control_metrics:
    # the blurred outputs scored like every other volume
    input:
        reference=lambda w: PLAN.reference(w.dataset),
        control=P.control(),
        phantom=lambda w: PLAN.phantom_of(w.dataset),
        truth=lambda w: PLAN.truth_of(w.dataset),
    output:
        P.metrics(kind="control-{dose}"),
    log:
        P.log("control_metrics"),
    benchmark:
        P.benchmark("control_metrics")
    conda:
        "../environment.yml"
    params:
        slices=config["metrics"]["slices"],
        margin=config["metrics"]["fov_margin"],
        phantom=lambda w, input: f"--phantom {input.phantom}" if input.phantom else "",
        truth=lambda w, input: f"--truth {input.truth}" if input.truth else "",
    shell:
        "python -m analysis.metrics {output} --reference {input.reference} --slices {params.slices} "
        "--fov-margin {params.margin} {params.phantom} {params.truth} {input.control}/*.h5 > {log} 2>&1"


rule claims:
    input:
        metrics=lambda w: [p for p in PLAN.claim_inputs() if p.startswith("results/metrics/")],
        timing=lambda w: [p for p in PLAN.claim_inputs() if p == P.timing()],
        learning=lambda w: [p for p in PLAN.claim_inputs() if "learning_curve" in p],
        # the tuning files a comparator is chosen by (best-classical): read through the spec, so not on the command
        tuning=lambda w: PLAN.claim_tuning(),
    output:
        csv=report(P.claims(), caption="../report/claims.rst", category="Claims"),
        md=P.claims().replace(".csv", ".md"),
        summary=P.claims().replace(".csv", "_summary.csv"),
        correlation=P.claims().replace(".csv", "_correlation.csv"),
        coverage=P.claims().replace(".csv", "_coverage.csv"),
    log:
        P.log("claims"),
    benchmark:
        P.benchmark("claims")
    conda:
        "../environment.yml"
    params:
        spec=lambda w: json.dumps(PLAN.claims_spec()),
        timing=lambda w, input: f"--timing {input.timing}" if input.timing else "",
        learning=lambda w, input: f"--learning {input.learning}" if input.learning else "",
    shell:
        "python -m analysis.claims {output.csv} --spec {params.spec:q} --metrics {input.metrics} {params.timing} "
        "{params.learning} "
        "> {log} 2>&1"
