# The methods TomoGAN is compared with, on every evaluated (test volume, dose) -- PLAN.evaluated:
#  - classical ones (analysis/classical.py: SIRT, SIRT+TV, FBP+TV, FBP+BM3D), each parameter chosen on the
#    validation slices of the split that tests the volume (analysis/tuning.py), then applied unchanged to its
#    test slices;
#  - Noise2Inverse, self-supervised, trained on the evaluated volume's own low-dose projections.


rule tune_sirt:
    # SIRT's iteration count; its chosen iterate of the validation slices is kept for SIRT+TV's tuning
    input:
        unpack(lambda w: PLAN.tune_inputs(w.split, w.dose, "sirt")),
    output:
        tuning=P.tuning(method="sirt"),
        best=P.tuned_val(method="sirt"),
    log:
        P.log("tune_sirt"),
    benchmark:
        P.benchmark("tune_sirt")
    conda:
        "../environment.yml"
    threads: job_threads("reconstruct")
    resources:
        **job_resources("reconstruct"),
    params:
        args=lambda w: PLAN.tune_args(w.split, w.dose, "sirt"),
        backend=config["backend"],
    shell:
        "python -m analysis.tuning tune sirt {output.tuning} --val-input {input.val} --val-reference {input.ref} "
        "{params.args} --save-best {output.best} --backend {params.backend} --threads {threads} > {log} 2>&1"


rule tune_classical:
    input:
        unpack(lambda w: PLAN.tune_inputs(w.split, w.dose, w.method)),
    output:
        P.tuning(),
    log:
        P.log("tune_classical"),
    benchmark:
        P.benchmark("tune_classical")
    wildcard_constraints:
        method=_alternatives([m for m in PLAN.classical if m != "sirt"]),
    conda:
        "../environment.yml"
    threads: job_threads("reconstruct")
    resources:
        **job_resources("reconstruct"),
    params:
        args=lambda w: PLAN.tune_args(w.split, w.dose, w.method),
        start=lambda w, input: (
            f"--sirt-tuning {input.sirt} --sirt-base {input.sirt_base}" if "sirt" in input.keys() else ""
        ),
        backend=config["backend"],
    shell:
        "python -m analysis.tuning tune {wildcards.method} {output} --val-input {input.val} "
        "--val-reference {input.ref} {params.args} {params.start} --backend {params.backend} "
        "--threads {threads} > {log} 2>&1"


rule apply_classical:
    input:
        unpack(lambda w: PLAN.apply_inputs(w.dataset, w.dose, w.method)),
    output:
        P.recon(),
    log:
        P.log("apply_classical"),
    benchmark:
        P.benchmark("apply_classical")
    conda:
        "../environment.yml"
    threads: job_threads("reconstruct")
    resources:
        **job_resources("reconstruct"),
    params:
        slices=config["metrics"]["slices"],
        backend=config["backend"],
    shell:
        "python -m analysis.tuning apply {wildcards.method} {input.tuning} {input.data} {output} "
        "--slices {params.slices} --backend {params.backend} --threads {threads} > {log} 2>&1"


rule n2i_split:
    input:
        P.projections(),
    output:
        P.n2i_subsets(),
    log:
        P.log("n2i_split"),
    benchmark:
        P.benchmark("n2i_split")
    conda:
        "../environment.yml"
    threads: job_threads("reconstruct")
    resources:
        **job_resources("reconstruct"),
    params:
        k=config["noise2inverse"]["k"] if PLAN.n2i else None,
        backend=config["backend"],
    shell:
        "python -m tomogan_core.noise2inverse split {input} {output} --k {params.k} --backend {params.backend} "
        "--threads {threads} > {log} 2>&1"


rule n2i_train:
    input:
        rules.n2i_split.output,
    output:
        P.n2i_model(),
    log:
        P.log("n2i_train"),
    benchmark:
        P.benchmark("n2i_train")
    priority: PRIORITY_N2I  # after the trainings, before the short jobs
    conda:
        "../environment.yml"
    threads: job_threads("train")
    resources:
        **job_resources("train"),
    params:
        settings=PLAN.n2i_args(),
        out=lambda w, output: os.path.dirname(output[0]),
    shell:
        "python -m tomogan_core.noise2inverse train {input} -o {params.out} {params.settings} "
        "--threads {threads} > {log} 2>&1"


rule n2i_infer:
    input:
        subsets=rules.n2i_split.output,
        model=rules.n2i_train.output,
    output:
        P.recon(method="n2i"),
    log:
        P.log("n2i_infer"),
    benchmark:
        P.benchmark("n2i_infer")
    conda:
        "../environment.yml"
    threads: job_threads("infer")
    resources:
        **job_resources("infer"),
    params:
        slices=config["metrics"]["slices"],
    shell:
        "python -m tomogan_core.noise2inverse infer {input.subsets} {input.model} {output} "
        "--run n2i-{wildcards.dataset}-{wildcards.dose} --slices {params.slices} --threads {threads} > {log} 2>&1"
