# Conventional reconstructions: FBP of every slice; SIRT and SIRT+TV of the evaluated slices.


rule fbp:
    input:
        "results/{dataset}/proj/{dose}.h5",
    output:
        "results/{dataset}/recon/{dose}/fbp.h5",
    params:
        filter=config["reconstruct"]["fbp"].get("filter", "ram-lak"),
        backend=config["backend"],
    log:
        "results/logs/fbp/{dataset}/{dose}.log",
    benchmark:
        "results/benchmarks/fbp/{dataset}/{dose}.tsv"
    threads: job_threads("reconstruct")
    resources:
        **job_resources("reconstruct"),
    shell:
        "python -m simulate.reconstruct recon {input} {output} --method fbp --filter {params.filter} "
        "--backend {params.backend} --threads {threads} > {log} 2>&1"


rule sirt:
    input:
        "results/{dataset}/proj/{dose}.h5",
    output:
        "results/{dataset}/recon/{dose}/sirt.h5",
    params:
        n_iter=config["reconstruct"]["sirt"]["n_iter"],
        slices=config["reconstruct"]["sirt"].get("slices", 8),
        backend=config["backend"],
    log:
        "results/logs/sirt/{dataset}/{dose}.log",
    benchmark:
        "results/benchmarks/sirt/{dataset}/{dose}.tsv"
    threads: job_threads("reconstruct")
    resources:
        **job_resources("reconstruct"),
    shell:
        "python -m simulate.reconstruct recon {input} {output} --method sirt --n-iter {params.n_iter} "
        "--slices {params.slices} --backend {params.backend} --threads {threads} > {log} 2>&1"


rule sirt_tv:
    input:
        rules.sirt.output,
    output:
        "results/{dataset}/recon/{dose}/sirt-tv.h5",
    params:
        weight=config["reconstruct"]["sirt_tv"]["weight"],
        n_iter=config["reconstruct"]["sirt_tv"].get("n_iter", 1000),
    log:
        "results/logs/sirt_tv/{dataset}/{dose}.log",
    benchmark:
        "results/benchmarks/sirt_tv/{dataset}/{dose}.tsv"
    threads: job_threads("reconstruct")
    resources:
        **job_resources("reconstruct"),
    shell:
        "python -m simulate.reconstruct tv {input} {output} --weight {params.weight} "
        "--n-iter {params.n_iter} --threads {threads} > {log} 2>&1"
