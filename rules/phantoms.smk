# Phantoms: the 3-D foam volumes (xdesign), the corpus's phantom families (simulate/families.py), the same families
# as wide as a user's scan (simulate/scanmatch.py), and the shale raw scans (TomoBank, or the labelled stand-in).


rule foam_phantom:
    output:
        P.phantom(),
    log:
        P.log("foam_phantom"),
    benchmark:
        P.benchmark("foam_phantom")
    wildcard_constraints:
        dataset=_alternatives(PLAN.foam),
    priority: priority_of_dataset
    conda:
        "../environment.yml"
    threads: job_threads("simulate")
    resources:
        **job_resources("simulate"),
    params:
        args=lambda w: PLAN.foam_args(w.dataset),
    shell:
        "python -m simulate.phantoms {output} {params.args} --threads {threads} > {log} 2>&1"


rule family_phantom:
    output:
        P.phantom(),
    log:
        P.log("family_phantom"),
    benchmark:
        P.benchmark("family_phantom")
    wildcard_constraints:
        dataset=_alternatives(PLAN.family),
    priority: priority_of_dataset
    conda:
        "../environment.yml"
    threads: job_threads("simulate")
    resources:
        **job_resources("simulate"),
    params:
        args=lambda w: PLAN.family_args(w.dataset),
    shell:
        "python -m simulate.families {output} {params.args} > {log} 2>&1"


rule matched_phantom:
    # a corpus family's phantom as wide as a scan's detector (config scan_matched; simulate/scanmatch.py)
    input:
        lambda w: PLAN.matched_scan(w.dataset),
    output:
        P.phantom(),
    log:
        P.log("matched_phantom"),
    benchmark:
        P.benchmark("matched_phantom")
    wildcard_constraints:
        dataset=_alternatives(PLAN.matched),
    priority: priority_of_dataset
    conda:
        "../environment.yml"
    params:
        args=lambda w: PLAN.matched_args(w.dataset),
    shell:
        "python -m simulate.scanmatch phantom {input} {output} {params.args} > {log} 2>&1"


rule shale_raw:
    output:
        P.raw(),
    log:
        P.log("shale_raw"),
    benchmark:
        P.benchmark("shale_raw")
    wildcard_constraints:
        dataset=_alternatives(PLAN.shale),
    priority: priority_of_dataset
    conda:
        "../environment.yml"
    threads: job_threads("simulate")
    resources:
        **job_resources("simulate"),
    params:
        args=lambda w: PLAN.shale_download_args(w.dataset),
    shell:
        "python -m simulate.download {output} {params.args} --threads {threads} > {log} 2>&1"
