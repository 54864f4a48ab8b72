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
    threads: job_threads("infer")
    resources:
        **job_resources("infer"),
    shell:
        "python -m tomogan_core.infer -ld {input.ld} -model {input.model} -o {output} --method tomogan "
        "--run {wildcards.run} --repeat-edges --slab-mb {SLAB_MB} --batch {INFER_BATCH} --threads {threads} --quiet > {log} 2>&1"


rule import_release:
    # the authors' trained generator (Keras HDF5, d = 1) in the served TorchScript format
    input:
        os.path.join(workflow.basedir, "tomogan_core", "weights", "TomoGAN.h5"),
    output:
        "results/models/release/served.pt",
    log:
        "results/logs/import_release.log",
    benchmark:
        "results/benchmarks/import_release.tsv"
    shell:
        "python -m tomogan_core.keras_import {input} {output} > {log} 2>&1"


rule infer_release:
    # applied as released: the input's own grey-level range mapped to the 0..255 scale it was trained on
    input:
        model=rules.import_release.output,
        ld=lambda w: recon_path(w.dataset, w.dose, "fbp"),
    output:
        f"results/{{dataset}}/enhanced/{{dose}}/{RELEASE}.h5",
    log:
        "results/logs/infer_release/{dataset}/{dose}.log",
    benchmark:
        "results/benchmarks/infer_release/{dataset}/{dose}.tsv"
    threads: job_threads("infer")
    resources:
        **job_resources("infer"),
    shell:
        "python -m tomogan_core.infer -ld {input.ld} -model {input.model} -o {output} --method tomogan-release "
        "--run {RELEASE} --grey255-from-input --repeat-edges --slab-mb {SLAB_MB} --batch {INFER_BATCH} --threads {threads} --quiet "
        "> {log} 2>&1"
