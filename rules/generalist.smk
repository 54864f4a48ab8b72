# The generalist corpus (simulate/families.py, config `corpus`): leave one family out of training, test on it,
# beside the foam-only model and the generalist that saw every family (analysis/generalist.py).


rule generalist_table:
    input:
        metrics=PLAN.lofo_inputs(),
        projections=PLAN.lofo_projections(),  # each test volume's noise and attenuation, listed beside its row
    output:
        csv=report(P.lofo(), caption="../report/lofo.rst", category="Generalist"),
        md=P.lofo().replace(".csv", ".md"),
    log:
        P.log("generalist_table"),
    benchmark:
        P.benchmark("generalist_table")
    conda:
        "../environment.yml"
    params:
        spec=json.dumps(PLAN.lofo_spec()),
    shell:
        "python -m analysis.generalist {output.csv} {input.metrics} --spec {params.spec:q} > {log} 2>&1"
