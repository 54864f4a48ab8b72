# Phantoms: the 3-D foam volumes (xdesign).


rule foam_phantom:
    output:
        "results/{dataset}/phantom.h5",
    wildcard_constraints:
        dataset=_alternatives(FOAM),
    params:
        args=foam_args,
    log:
        "results/logs/foam_phantom/{dataset}.log",
    benchmark:
        "results/benchmarks/foam_phantom/{dataset}.tsv"
    threads: job_threads("simulate")
    resources:
        **job_resources("simulate"),
    shell:
        "python -m simulate.phantoms {output} {params.args} --threads {threads} > {log} 2>&1"


rule shale_raw:
    output:
        "results/{dataset}/raw.h5",
    wildcard_constraints:
        dataset=_alternatives(SHALE),
    params:
        args=shale_download_args,
    log:
        "results/logs/shale_raw/{dataset}.log",
    benchmark:
        "results/benchmarks/shale_raw/{dataset}.tsv"
    threads: job_threads("simulate")
    resources:
        **job_resources("simulate"),
    shell:
        "python -m simulate.download {output} {params.args} --threads {threads} > {log} 2>&1"
