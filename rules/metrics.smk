# Metrics of the conventional reconstructions against the normal-dose reference.


rule conventional_metrics:
    input:
        reference=lambda w: reference_path(w.dataset),
        recons=lambda w: [p for p in reconstructions()
                          if p.startswith(f"results/{w.dataset}/") and p != reference_path(w.dataset)],
    output:
        "results/metrics/{dataset}/conventional.csv",
    params:
        slices=config.get("metrics", {}).get("slices", 8),
        margin=config.get("metrics", {}).get("fov_margin", 2),
    log:
        "results/logs/conventional_metrics/{dataset}.log",
    benchmark:
        "results/benchmarks/conventional_metrics/{dataset}.tsv"
    shell:
        "python -m analysis.metrics {output} --reference {input.reference} --slices {params.slices} "
        "--fov-margin {params.margin} {input.recons} > {log} 2>&1"


rule conventional_summary:
    input:
        expand("results/metrics/{dataset}/conventional.csv", dataset=DATASETS),
    output:
        "results/metrics/conventional.csv",
    log:
        "results/logs/conventional_summary.log",
    benchmark:
        "results/benchmarks/conventional_summary.tsv"
    params:
        config_hash=CONFIG_HASH,
    shell:
        "python -m analysis.summary {output} {input} --config-hash {params.config_hash} > {log} 2>&1"
