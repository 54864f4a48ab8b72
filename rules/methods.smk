# The methods TomoGAN is compared with, on every evaluated (test volume, dose) -- see EVALUATED in common.smk:
#  - classical ones (SIRT, SIRT+TV, FBP+TV, FBP+BM3D), each parameter chosen on the validation slices of
#    the split that tests the volume (analysis/tuning.py), then applied unchanged to its test slices;
#  - Noise2Inverse, self-supervised, trained on the evaluated volume's own low-dose projections.


rule tune_sirt:
    # SIRT's iteration count; its chosen iterate of the validation slices is kept for SIRT+TV's tuning
    input:
        unpack(tune_inputs),
    output:
        tuning="results/tuning/{split}/{dose}/sirt.json",
        best="results/tuning/{split}/{dose}/sirt-val.h5",
    params:
        args=tune_args,
        backend=config["backend"],
    log:
        "results/logs/tune_classical/{split}/{dose}/sirt.log",
    benchmark:
        "results/benchmarks/tune_classical/{split}/{dose}/sirt.tsv"
    threads: job_threads("reconstruct")
    resources:
        **job_resources("reconstruct"),
    shell:
        "python -m analysis.tuning tune sirt {output.tuning} --val-input {input.val} --val-reference {input.ref} "
        "{params.args} --save-best {output.best} --backend {params.backend} --threads {threads} > {log} 2>&1"


rule tune_classical:
    input:
        unpack(tune_inputs),
    output:
        "results/tuning/{split}/{dose}/{method}.json",
    wildcard_constraints:
        method="fbp-tv|fbp-bm3d|sirt-tv",
    params:
        args=tune_args,
        sirt=lambda w, input: f"--sirt-tuning {input.sirt} --sirt-base {input.sirt_base}" if w.method == "sirt-tv" else "",
        backend=config["backend"],
    log:
        "results/logs/tune_classical/{split}/{dose}/{method}.log",
    benchmark:
        "results/benchmarks/tune_classical/{split}/{dose}/{method}.tsv"
    threads: job_threads("reconstruct")
    resources:
        **job_resources("reconstruct"),
    shell:
        "python -m analysis.tuning tune {wildcards.method} {output} --val-input {input.val} "
        "--val-reference {input.ref} {params.args} {params.sirt} --backend {params.backend} "
        "--threads {threads} > {log} 2>&1"


rule apply_classical:
    input:
        unpack(apply_inputs),
    output:
        "results/{dataset}/recon/{dose}/{method}.h5",
    params:
        slices=config.get("metrics", {}).get("slices", 8),
        backend=config["backend"],
    log:
        "results/logs/apply_classical/{dataset}/{dose}/{method}.log",
    benchmark:
        "results/benchmarks/apply_classical/{dataset}/{dose}/{method}.tsv"
    threads: job_threads("reconstruct")
    resources:
        **job_resources("reconstruct"),
    shell:
        "python -m analysis.tuning apply {wildcards.method} {input.tuning} {input.data} {output} "
        "--slices {params.slices} --backend {params.backend} --threads {threads} > {log} 2>&1"


rule n2i_split:
    input:
        "results/{dataset}/proj/{dose}.h5",
    output:
        "results/{dataset}/n2i/{dose}/subsets.h5",
    params:
        k=config.get("noise2inverse", {}).get("k", 4),
        backend=config["backend"],
    log:
        "results/logs/n2i_split/{dataset}/{dose}.log",
    benchmark:
        "results/benchmarks/n2i_split/{dataset}/{dose}.tsv"
    threads: job_threads("reconstruct")
    resources:
        **job_resources("reconstruct"),
    shell:
        "python -m tomogan_core.noise2inverse split {input} {output} --k {params.k} --backend {params.backend} "
        "--threads {threads} > {log} 2>&1"


rule n2i_train:
    input:
        rules.n2i_split.output,
    output:
        "results/models/n2i/{dataset}-{dose}/model.pt",
    params:
        settings=n2i_settings() if N2I else "",
    log:
        "results/logs/n2i_train/{dataset}-{dose}.log",
    benchmark:
        "results/benchmarks/n2i_train/{dataset}-{dose}.tsv"
    threads: job_threads("train")
    resources:
        **job_resources("train"),
    priority: 5  # after TomoGAN's trainings, before the short jobs (see rules/train.smk)
    shell:
        "python -m tomogan_core.noise2inverse train {input} -o $(dirname {output}) {params.settings} "
        "--threads {threads} > {log} 2>&1"


rule n2i_infer:
    input:
        subsets=rules.n2i_split.output,
        model=rules.n2i_train.output,
    output:
        "results/{dataset}/recon/{dose}/n2i.h5",
    params:
        slices=config.get("metrics", {}).get("slices", 8),
    log:
        "results/logs/n2i_infer/{dataset}/{dose}.log",
    benchmark:
        "results/benchmarks/n2i_infer/{dataset}/{dose}.tsv"
    threads: job_threads("infer")
    resources:
        **job_resources("infer"),
    shell:
        "python -m tomogan_core.noise2inverse infer {input.subsets} {input.model} {output} "
        "--run n2i-{wildcards.dataset}-{wildcards.dose} --slices {params.slices} --threads {threads} > {log} 2>&1"
