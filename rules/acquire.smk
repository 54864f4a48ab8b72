# Acquisition: full-dose projections (foam: simulated; shale and user scans: flat/dark-normalised
# measurement), then one low-dose variant per dose label (sparse views or Poisson short exposure).


rule project_foam:
    # a foam's or a corpus volume's phantom (rules foam_phantom, family_phantom)
    input:
        P.phantom(),
    output:
        P.projections(dose=PLAN.full),
    log:
        P.log("project_foam"),
    benchmark:
        P.benchmark("project_foam")
    wildcard_constraints:
        dataset=_alternatives(PLAN.foam + PLAN.family),
    priority: priority_of_dataset
    conda:
        "../environment.yml"
    threads: job_threads("simulate")
    resources:
        **job_resources("simulate"),
    params:
        args=lambda w: PLAN.projection_args(w.dataset),
        backend=config["backend"],
    shell:
        "python -m simulate.acquire project {input} {output} {params.args} --backend {params.backend} "
        "--threads {threads} > {log} 2>&1"


rule project_matched:
    # a matched volume at its scan's angles, detector, rotation centre and line integrals; its low-dose variants
    # then carry Poisson noise at the photons per pixel estimated from the scan's flats (simulate/scanmatch.py)
    input:
        phantom=P.phantom(),
        scan=lambda w: PLAN.matched_scan(w.dataset),
    output:
        P.projections(dose=PLAN.full),
    log:
        P.log("project_matched"),
    benchmark:
        P.benchmark("project_matched")
    wildcard_constraints:
        dataset=_alternatives(PLAN.matched),
    priority: priority_of_dataset
    conda:
        "../environment.yml"
    threads: job_threads("simulate")
    resources:
        **job_resources("simulate"),
    params:
        backend=config["backend"],
    shell:
        "python -m simulate.scanmatch project {input.phantom} {input.scan} {output} --backend {params.backend} "
        "--threads {threads} > {log} 2>&1"


rule prepare_shale:
    input:
        rules.shale_raw.output,
    output:
        P.projections(dose=PLAN.full),
    log:
        P.log("prepare_shale"),
    benchmark:
        P.benchmark("prepare_shale")
    wildcard_constraints:
        dataset=_alternatives(PLAN.shale),
    priority: priority_of_dataset
    conda:
        "../environment.yml"
    params:
        args=lambda w: PLAN.shale_prepare_args(w.dataset),
    shell:
        "python -m simulate.dxchange {input} {output} {params.args} > {log} 2>&1"


rule low_dose:
    input:
        P.projections(dose=PLAN.full),
    output:
        P.projections(),
    log:
        P.log("low_dose"),
    benchmark:
        P.benchmark("low_dose")
    wildcard_constraints:
        dose=_alternatives(PLAN.low_doses),
    priority: priority_of_pair
    conda:
        "../environment.yml"
    params:
        args=lambda w: PLAN.dose_args(w.dataset, w.dose),
    shell:
        "python -m simulate.acquire lowdose {input} {output} {params.args} > {log} 2>&1"


rule prepare_scan:
    # a user's own raw DXchange scan (config `scans`): flat/dark normalisation, -log, rotation centre
    input:
        scan_raw,
    output:
        P.projections(dose=PLAN.full),
    log:
        P.log("prepare_scan"),
    benchmark:
        P.benchmark("prepare_scan")
    wildcard_constraints:
        dataset=_alternatives(PLAN.scans),
    priority: priority_of_dataset
    conda:
        "../environment.yml"
    params:
        args=lambda w: PLAN.scan_prepare_args(w.dataset),
    shell:
        "python -m simulate.dxchange {input} {output} --scan {params.args} > {log} 2>&1"
