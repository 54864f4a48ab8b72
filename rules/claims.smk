# The paper's claims, judged (analysis/claims.py): every comparison the plan derives from the config's claims
# section, on the per-slice metrics of the test slices, with a bootstrap interval over seeds and slices.


rule claims:
    input:
        metrics=lambda w: [p for p in PLAN.claim_inputs() if p.endswith(".csv") and p != P.timing()],
        timing=lambda w: [p for p in PLAN.claim_inputs() if p == P.timing()],
    output:
        csv=report(P.claims(), caption="../report/claims.rst", category="Claims"),
        md=P.claims().replace(".csv", ".md"),
        summary=P.claims().replace(".csv", "_summary.csv"),
    log:
        "results/logs/claims.log",
    benchmark:
        "results/benchmarks/claims.tsv"
    conda:
        "../environment.yml"
    params:
        spec=lambda w: json.dumps(PLAN.claims_spec()),
        timing=lambda w, input: f"--timing {input.timing}" if input.timing else "",
    shell:
        "python -m analysis.claims {output.csv} --spec {params.spec:q} --metrics {input.metrics} {params.timing} "
        "> {log} 2>&1"
