# TomoGAN inference: each run's model applied to the FBP of the volumes it is applied to, at its dose;
# and the authors' released generator, applied as it is wherever a trained model is. Like the classical methods,
# only the evaluated central slices (metrics.slices) are enhanced, their neighbours read as the d-slice context.


rule infer:
    input:
        model=rules.train.output.model,
        ld=P.recon(method="fbp"),
    output:
        P.enhanced(),
    log:
        P.log("infer"),
    benchmark:
        P.benchmark("infer")
    conda:
        "../environment.yml"
    threads: job_threads("infer")
    resources:
        **job_resources("infer"),
    params:
        slices=config["metrics"]["slices"],
        slab_mb=SLAB_MB,
        batch=INFER_BATCH,
    shell:
        "python -m tomogan_core.infer -ld {input.ld} -model {input.model} -o {output} --method tomogan "
        "--run {wildcards.run} --slices {params.slices} --repeat-edges --slab-mb {params.slab_mb} --batch {params.batch} --threads {threads} --quiet > {log} 2>&1"


rule import_release:
    # the authors' trained generator (Keras HDF5, d = 1) in the served TorchScript format
    input:
        os.path.join(workflow.basedir, P.released_weights()),
    output:
        P.release_model(),
    log:
        P.log("import_release"),
    benchmark:
        P.benchmark("import_release")
    conda:
        "../environment.yml"
    shell:
        "python -m tomogan_core.keras_import {input} {output} > {log} 2>&1"


rule infer_release:
    # applied as released: the input's own grey-level range mapped to the 0..255 scale it was trained on
    input:
        model=rules.import_release.output,
        ld=P.recon(method="fbp"),
    output:
        P.enhanced(run=RELEASE),
    log:
        P.log("infer_release"),
    benchmark:
        P.benchmark("infer_release")
    conda:
        "../environment.yml"
    threads: job_threads("infer")
    resources:
        **job_resources("infer"),
    params:
        run=RELEASE,
        slices=config["metrics"]["slices"],
        slab_mb=SLAB_MB,
        batch=INFER_BATCH,
    shell:
        "python -m tomogan_core.infer -ld {input.ld} -model {input.model} -o {output} --method tomogan-release "
        "--run {params.run} --slices {params.slices} --grey255-from-input --repeat-edges --slab-mb {params.slab_mb} --batch {params.batch} --threads {threads} --quiet "
        "> {log} 2>&1"
