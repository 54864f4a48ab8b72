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


rule tomogan_metrics:
    input:
        reference=lambda w: reference_path(w.dataset),
        enhanced=tomogan_metric_inputs,
    output:
        "results/metrics/{dataset}/tomogan.csv",
    params:
        slices=config.get("metrics", {}).get("slices", 8),
        margin=config.get("metrics", {}).get("fov_margin", 2),
    log:
        "results/logs/tomogan_metrics/{dataset}.log",
    benchmark:
        "results/benchmarks/tomogan_metrics/{dataset}.tsv"
    shell:
        "python -m analysis.metrics {output} --reference {input.reference} --slices {params.slices} "
        "--fov-margin {params.margin} {input.enhanced} > {log} 2>&1"


rule tomogan_summary:
    # TomoGAN beside the conventional methods, on the volumes the models were tested on
    input:
        conventional=lambda w: expand("results/metrics/{dataset}/conventional.csv", dataset=tomogan_datasets()),
        tomogan=lambda w: expand("results/metrics/{dataset}/tomogan.csv", dataset=tomogan_datasets()),
    output:
        report("results/metrics/tomogan.csv", caption="../report/tomogan_table.rst", category="Tables"),
    log:
        "results/logs/tomogan_summary.log",
    benchmark:
        "results/benchmarks/tomogan_summary.tsv"
    params:
        config_hash=CONFIG_HASH,
    shell:
        "python -m analysis.summary {output} {input.conventional} {input.tomogan} "
        "--config-hash {params.config_hash} > {log} 2>&1"


rule main_table:
    input:
        rules.tomogan_summary.output,
    output:
        report("results/tables/main.md", caption="../report/main_table.rst", category="Tables"),
        "results/tables/main.csv",
        "results/tables/main_object.csv",
    params:
        main=main_models(),
    log:
        "results/logs/main_table.log",
    benchmark:
        "results/benchmarks/main_table.tsv"
    shell:
        "python -m analysis.tables {input} {output[0]} --main {params.main} > {log} 2>&1"
