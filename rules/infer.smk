# TomoGAN inference: each run's model applied to the FBP of its test volumes at its dose.


rule infer:
    input:
        model=rules.train.output.model,
        ld=lambda w: recon_path(w.dataset, w.dose, "fbp"),
    output:
        "results/{dataset}/enhanced/{dose}/{run}.h5",
    log:
        "results/logs/infer/{dataset}/{dose}/{run}.log",
    benchmark:
        "results/benchmarks/infer/{dataset}/{dose}/{run}.tsv"
    threads: config["threads"]
    shell:
        "python -m tomogan_core.infer -ld {input.ld} -model {input.model} -o {output} --method tomogan "
        "--run {wildcards.run} --threads {threads} --quiet > {log} 2>&1"
