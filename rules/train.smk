# TomoGAN training: one model per run (PLAN.runs; study/runs.py names them from the config's tomogan
# section). A killed job resumes from results/models/<run>/checkpoint.pt, which Snakemake does not delete.


rule train:
    input:
        unpack(lambda w: PLAN.train_inputs(w.run)),
    output:
        model=P.model(),
        log_csv=P.train_log(),
    log:
        P.log("train"),
    benchmark:
        P.benchmark("train")
    # the longest chain: its inputs' jobs share this priority (PLAN.priority), so no training queues behind
    # the many short jobs, which then fill the gaps and the end of the run
    priority: PRIORITY_TRAIN
    conda:
        "../environment.yml"
    threads: job_threads("train")
    resources:
        **job_resources("train"),
    params:
        args=lambda w, input: PLAN.train_args(w.run, input.vld, input.vnd),
        out=lambda w: P.model_dir(w.run),
    shell:
        "python -m tomogan_core.train -ld {input.ld} -nd {input.nd} {params.args} -o {params.out} "
        "-expName {wildcards.run} --threads {threads} > {log} 2>&1"
