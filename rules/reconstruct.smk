# Conventional reconstruction: FBP of every slice of every projection file.
# (SIRT, SIRT+TV and the FBP denoisers are tuned on validation slices: rules/methods.smk.)


rule fbp:
    input:
        P.projections(),
    output:
        P.recon(method="fbp"),
    log:
        P.log("fbp"),
    benchmark:
        P.benchmark("fbp")
    priority: priority_of_pair
    conda:
        "../environment.yml"
    threads: job_threads("reconstruct")
    resources:
        **job_resources("reconstruct"),
    params:
        filter=config["reconstruct"]["fbp"]["filter"],
        backend=config["backend"],
        slab_mb=SLAB_MB,
    shell:
        "python -m simulate.reconstruct recon {input} {output} --method fbp --filter {params.filter} "
        "--slab-mb {params.slab_mb} --backend {params.backend} --threads {threads} > {log} 2>&1"
