# Every method ranked and tuned on a scan without a reference (analysis/crossval/): held-out views, Poisson-
# weighted residual. On the study's simulated data the same choices are checked against the reference.


rule crossval:
    input:
        unpack(lambda w: PLAN.crossval_inputs(w.dataset, w.dose)),
    output:
        csv=P.crossval(),
        images=P.crossval_images(),
    log:
        P.log("crossval"),
    benchmark:
        P.benchmark("crossval")
    conda:
        "../environment.yml"
    threads: job_threads("reconstruct")
    resources:
        **job_resources("reconstruct"),
    params:
        methods=["fbp", *PLAN.classical],
        grids=lambda w: json.dumps(config["classical"].get("grids", {})),
        k=config.get("crossval", {}).get("k"),
        slices=config.get("crossval", {}).get("slices"),
        backend=config["backend"],
        # every seed's model by run name (tomogan:<run>); the release on its 0..255 grey levels (tomogan:release)
        models=lambda w: [f"{run}={path}" for run, path in PLAN.crossval_models(w.dataset, w.dose).items()],
        release=RELEASE,
        n2i=lambda w: PLAN.crossval_n2i(w.dataset, w.dose),  # --n2i JSON: Noise2Inverse trained per fold, or ""
    shell:
        "python -m analysis.crossval {output.csv} {input.proj} --method {params.methods} --grids {params.grids:q} "
        "--model {params.models} --grey255-model {params.release}={input.release} --reference {input.reference} "
        "{params.n2i} --k {params.k} --slices {params.slices} --images {output.images} --backend {params.backend} "
        "--threads {threads} > {log} 2>&1"


# each method's image at its held-out choice, ranked best first, beside the reference (the central row scored)
rule crossval_figure:
    input:
        P.crossval_images(),
    output:
        png=report(
            P.crossval_figure(),
            caption="../report/crossval_figure.rst",
            category="Your scan",
            labels=lambda w: {"scan": w.dataset, "dose": w.dose},
        ),
        pdf=P.crossval_figure().replace(".png", ".pdf"),
    log:
        P.log("crossval_figure"),
    benchmark:
        P.benchmark("crossval_figure")
    conda:
        "../environment.yml"
    shell:
        "python -m analysis.crossval figure {input} {output.png} > {log} 2>&1"


rule crossval_check:
    input:
        [P.crossval(ds, dose) for ds, dose in PLAN.crossval_pairs()],
    output:
        csv=report(P.crossval_check(), caption="../report/crossval.rst", category="Your scan"),
        md=P.crossval_check().replace(".csv", ".md"),
    log:
        P.log("crossval_check"),
    benchmark:
        P.benchmark("crossval_check")
    conda:
        "../environment.yml"
    params:
        # every route on the user's scans, ranked, and what the scan's own routes cost (this run's benchmarks)
        scans=PLAN.check_args(),
    shell:
        "python -m analysis.crossval check {output.csv} {input} {params.scans} > {log} 2>&1"


# a scan of `scans:` with `acquired: true`, as it was measured: tomogan-scan ranks every method on its own views
# (the generalist among them where the config trains one) and writes the chosen route's volume (analysis/scan.py)
rule scan_acquired:
    input:
        raw=scan_raw,
        models=lambda w: list(PLAN.acquired_models(w.dataset).values()),
    output:
        [P.acquired(name=name) for name in SCAN_OUTPUTS if name != "ranking.csv"],
        ranking=report(
            P.acquired(name="ranking.csv"),
            caption="../report/scan_acquired.rst",
            category="Your scan",
            labels=lambda w: {"scan": w.dataset, "as": "acquired"},
        ),
    log:
        P.log("scan_acquired"),
    benchmark:
        P.benchmark("scan_acquired")
    conda:
        "../environment.yml"
    threads: job_threads("reconstruct")
    resources:
        **job_resources("reconstruct"),
    params:
        out=lambda w: os.path.dirname(P.acquired(w.dataset, "ranking.csv")),
        args=lambda w: PLAN.acquired_args(w.dataset),
        backend=config["backend"],
    shell:
        "python -m analysis.scan {input.raw} -o {params.out} {params.args} --backend {params.backend} "
        "--threads {threads} --quiet > {log} 2>&1"
