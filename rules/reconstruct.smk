# Conventional reconstruction: FBP of every slice of every projection file.
# (SIRT, SIRT+TV and the FBP denoisers are tuned on validation slices: rules/methods.smk.)


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
        "--slab-mb {SLAB_MB} --backend {params.backend} --threads {threads} > {log} 2>&1"
