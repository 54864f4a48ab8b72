# Acquisition: full-dose projections (foam: simulated; shale: flat/dark-normalised measurement),
# then one low-dose variant per dose label (sparse views or Poisson short exposure).


rule project_foam:
    input:
        rules.foam_phantom.output,
    output:
        f"results/{{dataset}}/proj/{FULL}.h5",
    wildcard_constraints:
        dataset=_alternatives(FOAM),
    params:
        n_angles=config["foam"]["n_angles"],
        max_line_integral=config["foam"]["max_line_integral"],
        backend=config["backend"],
    log:
        "results/logs/project_foam/{dataset}.log",
    benchmark:
        "results/benchmarks/project_foam/{dataset}.tsv"
    threads: job_threads("simulate")
    resources:
        **job_resources("simulate"),
    shell:
        "python -m simulate.acquire project {input} {output} --n-angles {params.n_angles} "
        "--max-line-integral {params.max_line_integral} --backend {params.backend} "
        "--threads {threads} > {log} 2>&1"


rule prepare_shale:
    input:
        rules.shale_raw.output,
    output:
        f"results/{{dataset}}/proj/{FULL}.h5",
    wildcard_constraints:
        dataset=_alternatives(SHALE),
    params:
        args=shale_prepare_args,
    log:
        "results/logs/prepare_shale/{dataset}.log",
    benchmark:
        "results/benchmarks/prepare_shale/{dataset}.tsv"
    shell:
        "python -m simulate.dxchange {input} {output} {params.args} > {log} 2>&1"


rule low_dose:
    input:
        f"results/{{dataset}}/proj/{FULL}.h5",
    output:
        "results/{dataset}/proj/{dose}.h5",
    wildcard_constraints:
        dose=_alternatives(LOW_DOSES),
    params:
        args=dose_args,
    log:
        "results/logs/low_dose/{dataset}/{dose}.log",
    benchmark:
        "results/benchmarks/low_dose/{dataset}/{dose}.tsv"
    shell:
        "python -m simulate.acquire lowdose {input} {output} {params.args} > {log} 2>&1"


rule prepare_scan:
    # a user's own raw DXchange scan (config `scans`): flat/dark normalisation, -log, rotation centre
    input:
        scan_raw,
    output:
        f"results/{{dataset}}/proj/{FULL}.h5",
    wildcard_constraints:
        dataset=_alternatives(SCANS),
    params:
        args=scan_prepare_args,
    log:
        "results/logs/prepare_scan/{dataset}.log",
    benchmark:
        "results/benchmarks/prepare_scan/{dataset}.tsv"
    shell:
        "python -m simulate.dxchange {input} {output} --scan {params.args} > {log} 2>&1"
