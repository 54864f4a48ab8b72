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
    threads: config["threads"]
    shell:
        "python -m simulate.phantoms {output} {params.args} --threads {threads} > {log} 2>&1"
