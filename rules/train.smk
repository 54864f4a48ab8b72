# TomoGAN training: one model per run (tomogan_core/study.py names them from the config's tomogan section).
# A killed job resumes from results/models/<run>/checkpoint.pt, which Snakemake does not delete.


rule train:
    input:
        unpack(train_inputs),
    output:
        model="results/models/{run}/model.pt",
        log_csv="results/models/{run}/log.csv",
    params:
        args=train_args,
        out=lambda w: f"results/models/{w.run}",
    log:
        "results/logs/train/{run}.log",
    benchmark:
        "results/benchmarks/train/{run}.tsv"
    threads: job_threads("train")
    resources:
        **job_resources("train"),
    # the longest jobs start first, so that the many short ones fill the gaps and the end of the run
    priority: 10
    shell:
        "python -m tomogan_core.train -ld {input.ld} -nd {input.nd} {params.args} -o {params.out} "
        "-expName {wildcards.run} --threads {threads} > {log} 2>&1"
