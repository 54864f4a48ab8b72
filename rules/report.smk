# Figures, the timing table and the report. Each figure is one target:
#   snakemake --cores 2 results/figures/fig_depth.png
# builds that figure and only what it needs. What a figure shows: study/figures.py; captions: report/<figure>.rst.


rule timing:
    input:
        unpack(lambda w: PLAN.timing_inputs()),
    output:
        report(P.timing(), caption="../report/timing.rst", category="Tables"),
    log:
        P.log("timing"),
    benchmark:
        P.benchmark("timing")
    conda:
        "../environment.yml"
    threads: config.get("timing", {}).get("threads", job_threads("infer"))
    resources:
        **job_resources("infer"),
    params:
        t=config.get("timing"),
        extra=lambda w, input: " ".join(
            (["--tuning " + " ".join(input.tuning)] if input.tuning else [])
            + ([f"--n2i-model {input.n2i}"] if "n2i" in input.keys() else [])
        ),
        backend=config["backend"],
    shell:
        "python -m analysis.timing {output} --proj {input.proj} --reference {input.reference} "
        "--model {input.model} --slices {params.t[slices]} --repeats {params.t[repeats]} "
        "--sirt-iter {params.t[sirt_iter]} {params.extra} "
        "--backend {params.backend} --threads {threads} > {log} 2>&1"


rule inference_speed:
    input:
        unpack(lambda w: PLAN.speed_inputs()),
    output:
        report(P.speed(), caption="../report/inference_speed.rst", category="Tables"),
    log:
        P.log("inference_speed"),
    benchmark:
        P.benchmark("inference_speed")
    conda:
        "../environment.yml"
    threads: config.get("timing", {}).get("threads", job_threads("infer"))
    resources:
        **job_resources("infer"),
    params:
        args=lambda w: PLAN.speed_args(),
    shell:
        "python -m analysis.inference_speed {output} --model {input.model} --val-input {input.val} "
        "--val-reference {input.ref} {params.args} --threads {threads} > {log} 2>&1"


rule figure:
    input:
        lambda w: PLAN.figures[w.figure].inputs,
    output:
        png=report(
            P.figure(), caption="../report/figure.rst", category="Figures", labels=lambda w: {"figure": w.figure}
        ),
        pdf=P.figure().replace(".png", ".pdf"),
    log:
        P.log("figure"),
    benchmark:
        P.benchmark("figure")
    conda:
        "../environment.yml"
    params:
        kind=lambda w: PLAN.figures[w.figure].kind,
        spec=lambda w: PLAN.figures[w.figure].json,
        caption=lambda w: figure_caption(w.figure),
    shell:
        "python -m analysis.figures {output.png} --spec {params.spec:q} > {log} 2>&1"
