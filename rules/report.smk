# Figures, the timing table and the report. Each figure is one target:
#   snakemake --cores 2 results/figures/fig_depth.png
# builds that figure and only what it needs. Captions: report/<figure>.rst.


rule timing:
    input:
        unpack(timing_inputs),
    output:
        report("results/timing/timing.csv", caption="../report/timing.rst", category="Tables"),
    params:
        t=config.get("timing", {}),
        extra=lambda w, input: " ".join((["--tuning " + " ".join(input.tuning)] if input.tuning else [])
                                        + ([f"--n2i-model {input.n2i}"] if "n2i" in input.keys() else [])),
        backend=config["backend"],
    log:
        "results/logs/timing.log",
    benchmark:
        "results/benchmarks/timing.tsv"
    threads: config.get("timing", {}).get("threads", job_threads("infer"))
    resources:
        **job_resources("infer"),
    shell:
        "python -m analysis.timing {output} --proj {input.proj} --reference {input.reference} "
        "--model {input.model} --slices {params.t[slices]} --repeats {params.t[repeats]} "
        "--sirt-iter {params.t[sirt_iter]} {params.extra} "
        "--backend {params.backend} --threads {threads} > {log} 2>&1"


rule inference_speed:
    input:
        unpack(speed_inputs),
    output:
        report("results/bench/inference_speed.csv", caption="../report/inference_speed.rst", category="Tables"),
    params:
        args=speed_args,
    log:
        "results/logs/inference_speed.log",
    benchmark:
        "results/benchmarks/inference_speed.tsv"
    threads: config.get("timing", {}).get("threads", job_threads("infer"))
    resources:
        **job_resources("infer"),
    shell:
        "python -m analysis.inference_speed {output} --model {input.model} --val-input {input.val} "
        "--val-reference {input.ref} {params.args} --threads {threads} > {log} 2>&1"


rule figure:
    input:
        lambda w: FIGURES[w.figure].inputs,
    output:
        png=report("results/figures/{figure}.png", caption="../report/figure.rst", category="Figures",
                   labels=lambda w: {"figure": w.figure}),
        pdf="results/figures/{figure}.pdf",
    params:
        kind=lambda w: FIGURES[w.figure].kind,
        args=lambda w: FIGURES[w.figure].command,
        caption=lambda w: figure_caption(w.figure),
    log:
        "results/logs/figure/{figure}.log",
    benchmark:
        "results/benchmarks/figure/{figure}.tsv"
    shell:
        "python -m analysis.figures {params.kind} {output.png} {params.args} > {log} 2>&1"
