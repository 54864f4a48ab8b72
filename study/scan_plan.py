"""The scans' part of the plan: which volumes the held-out-view ranking checks, with which models, what a scan's
own routes cost, and the leave-one-family-out table of the generalist.

:class:`ScanPlanning` is a part of :class:`study.plan.Plan` (its methods read the plan's runs and evaluated volumes).
"""

from __future__ import annotations

import json
import shlex
from typing import Dict, List, Optional, Tuple

from study.paths import BENCHMARKS, SIMULATION_JOBS, Paths, benchmark_glob
from study.runs import AS_ACQUIRED, GENERALIST, corpus_dataset, lofo_families, lofo_split, matched_split

__all__ = ["ScanPlanning"]


class ScanPlanning:
    """The scans' methods of :class:`study.plan.Plan`."""

    def crossval_pairs(self) -> List[Tuple[str, str]]:
        """(volume, dose) pairs ranked by held-out projections: every scan at its doses, and the config's
        ``crossval.datasets`` (``all``: every simulated volume the study evaluates; ``first``: each split's first test
        volume) at the doses they are evaluated
        at (``crossval.doses``: only those)."""
        if "crossval" not in self.config:
            return []
        cv = self.config["crossval"]
        names, doses = cv.get("datasets", []), cv.get("doses")

        def checked(ds, dose):
            named = names == "all" or (names == "first" and self.first_test_volume(ds, dose)) or ds in names
            return named and (doses is None or dose in doses)
        return sorted((ds, dose) for ds, dose in self.evaluated if ds in self.scans or checked(ds, dose))

    def crossval_models(self, dataset: str, dose: str) -> Dict[str, str]:
        """The trained models ranked on a scan, by label (run name): every seed's model of the evaluated run's base,
        then the corpus's and the scan-matched models applied to it at that dose (on a scan: the generalist, and the
        model fine-tuned on simulation at the scan's acquisition)."""
        runs = self.seeds_of(self.evaluated[(dataset, dose)])
        runs += [r for r in self.runs.values()
                 if r.group in ("corpus", "matched") and r.dose == dose and dataset in r.applied_to]
        return {run.name: Paths.model(run.name) for run in runs}

    def acquired_scans(self) -> List[str]:
        """The scans of ``scans:`` that ask to be run as acquired (``acquired: true``; rule ``scan_acquired``)."""
        return [name for name, scan in self.scans.items() if scan.get("acquired")]

    def acquired_targets(self) -> List[str]:
        """Every file ``tomogan-scan`` writes for each scan run as acquired (:data:`analysis.scan.OUTPUTS`)."""
        from analysis.scan import OUTPUTS

        return [Paths.acquired(scan, name) for scan in self.acquired_scans() for name in OUTPUTS]

    def acquired_models(self, dataset: Optional[str] = None) -> Dict[str, str]:
        """The trained models ``tomogan-scan`` ranks on a scan as acquired, by label: the generalist (at the corpus's
        first dose) where the config trains one, and, for scan ``dataset``, its model fine-tuned on simulation at
        its own acquisition (``matched``: its matched run at :data:`~study.runs.AS_ACQUIRED`) where the config
        has ``scan_matched``. The scan's other matched models are left out: they are made for its low-dose copies,
        not for the scan as it was measured."""
        doses = (self.config.get("corpus") or {}).get("doses") or []
        runs = [r for r in self.runs.values() if r.split == GENERALIST and r.dose == (doses or [None])[0]]
        models = {"generalist": Paths.model(runs[0].name)} if runs else {}
        own = [r for r in self.runs.values() if dataset is not None and r.split == matched_split(dataset)
               and r.dose == AS_ACQUIRED]
        return dict(models, **({"matched": Paths.model(own[0].name)} if own else {}))

    def acquired_args(self, dataset: str) -> str:
        """Options of ``tomogan-scan`` for a scan of ``scans:``: its centre, rows and binning, the config's
        ``classical.grids`` and the models."""
        models = " ".join(f"{label}={path}" for label, path in self.acquired_models(dataset).items())
        grids = shlex.quote(json.dumps(self.config["classical"].get("grids", {})))
        return self.scan_read_args(dataset) + f" --grids {grids}" + (f" --model {models}" if models else "")

    def lofo_spec(self) -> dict:
        """What ``python -m analysis.generalist`` needs: per corpus family, its test volume and, per corpus dose, the
        runs of each route (foam only: the baseline split's main runs; generalist; unseen: the family's LOFO runs),
        every seed; ``{}`` without a corpus or LOFO."""
        corpus = self.config.get("corpus")
        if not corpus or not lofo_families(corpus):
            return {}
        families = {}
        for family in corpus["families"]:
            routes = {}
            for dose in corpus["doses"]:
                routes[dose] = {
                    "foam only": [r.name for r in self.main_runs(corpus["baseline_split"], dose)],
                    "generalist": [r.name for r in self.runs.values() if r.split == GENERALIST and r.dose == dose],
                    "unseen": [r.name for r in self.runs.values() if r.split == lofo_split(family) and r.dose == dose]}
            test = corpus_dataset(family, "test")
            families[family] = {"dataset": test, "routes": routes,
                                "projections": {dose: Paths.projections(test, dose) for dose in corpus["doses"]}}
        return {"families": families, "doses": list(corpus["doses"]), "config_hash": self.config_hash,
                "bootstrap": {"n": int(self.config["claims"]["bootstrap"]["n"]), "seed": int(self.config["seed"])}}

    def lofo_inputs(self) -> List[str]:
        """The per-slice metric files the LOFO table reads: each corpus test volume's TomoGAN and conventional ones."""
        spec = self.lofo_spec()
        return [Paths.metrics(f["dataset"], kind) for f in spec.get("families", {}).values()
                for kind in ("tomogan", "conventional")]

    def lofo_projections(self) -> List[str]:
        """The low-dose projection files whose noise and attenuation the LOFO table lists, one per test volume and
        corpus dose."""
        return [p for f in self.lofo_spec().get("families", {}).values() for p in f["projections"].values()]

    def crossval_n2i(self, dataset: str, dose: str) -> str:
        """The ``--n2i`` option of ``analysis.crossval`` for a volume at a dose (Noise2Inverse trained per fold, with
        the config's ``noise2inverse`` settings), or "" where it is not ranked: ``crossval.noise2inverse`` is
        ``scans`` (the default: only the scans of ``scans:``), ``all`` or ``none``; nor without Noise2Inverse in
        the study. On a scan, ``noise2inverse.fine_tune_from`` adds Noise2Inverse started from that model
        (:meth:`n2i_start`), labelled ``n2i:<from>``."""
        where = self.config.get("crossval", {}).get("noise2inverse", "scans")
        if not self.n2i or where == "none" or (where == "scans" and dataset not in self.scans):
            return ""
        n2i = self.config["noise2inverse"]
        specs = [{"label": "n2i", "k": n2i["k"], "train": n2i.get("train", {})}]
        start = self._n2i_start_run(dataset, dose)
        if start:  # in the units its start model was trained in: a fine-tune keeps the weights' normalization
            specs.append({"label": f"n2i:{n2i['fine_tune_from']}", "k": n2i["k"],
                          "train": {**n2i.get("train", {}), "init": Paths.model(start.name),
                                    **{k: start.settings[k] for k in ("normalization",) if k in start.settings}}})
        return "--n2i " + shlex.quote(json.dumps(specs, sort_keys=True))

    def n2i_start(self, dataset: str, dose: str) -> str:
        """The model a scan's fine-tuned Noise2Inverse starts from (``noise2inverse.fine_tune_from``), or "": the
        generalist at that dose (else at the corpus's first dose), or the scan's matched model at that dose."""
        run = self._n2i_start_run(dataset, dose)
        return Paths.model(run.name) if run else ""

    def _n2i_start_run(self, dataset: str, dose: str):
        """The run of :meth:`n2i_start`, or None."""
        start = self.config.get("noise2inverse", {}).get("fine_tune_from", "none")
        if start == "none" or dataset not in self.scans:
            return None
        if start == "matched":
            runs = [r for r in self.runs.values() if r.split == matched_split(dataset) and r.dose == dose]
        else:
            corpus = self.config.get("corpus") or {}
            at = dose if dose in corpus.get("doses", []) else (corpus.get("doses") or [None])[0]
            runs = [r for r in self.runs.values() if r.split == GENERALIST and r.dose == at]
        if not runs:
            raise ValueError(f"config 'noise2inverse.fine_tune_from': no {start} model for {dataset} at {dose} "
                             f"(add the {'scan_matched' if start == 'matched' else 'corpus'} section)")
        return runs[0]

    def route_cost_spec(self) -> List[dict]:
        """What ``analysis.crossval check --costs`` sums for each scan of ``scans:`` (its ``route_costs``): rows
        ``{dataset, kind, dose, benchmarks}``, each with glob patterns of benchmark files relative to the benchmarks
        folder (:func:`benchmark_glob`). Kinds, per scan: ``simulation`` (every job of :data:`SIMULATION_JOBS` on
        its matched volumes, all doses), ``matched`` (its matched trainings, per dose), ``generalist`` (the
        generalist's trainings, per dose, shared by every scan) and ``ranking`` (its held-out ranking, per dose)."""
        rows = []

        def trainings(scan, kind, split):
            for dose in sorted({r.dose for r in self.runs.values() if r.split == split}):
                rows.append({"dataset": scan, "kind": kind, "dose": dose,
                             "benchmarks": [benchmark_glob("train", run=r.name) for r in self.runs.values()
                                            if r.split == split and r.dose == dose]})
        for scan in self.scans:
            volumes = [ds for ds in self.matched if self.config["datasets"][ds]["scan"] == scan]
            rows.append({"dataset": scan, "kind": "simulation", "dose": "",
                         "benchmarks": [benchmark_glob(job, dataset=ds) for ds in volumes for job in SIMULATION_JOBS]})
            trainings(scan, "matched", matched_split(scan))
            trainings(scan, "generalist", GENERALIST)
            rows += [{"dataset": scan, "kind": "ranking", "dose": dose,
                      "benchmarks": [benchmark_glob("crossval", dataset=scan, dose=dose)]}
                     for ds, dose in self.crossval_pairs() if ds == scan]
        return rows

    def check_args(self) -> str:
        """The options of ``analysis.crossval check`` that list every route on the scans of ``scans:`` and what
        they cost (this run's benchmarks, :meth:`route_cost_spec`), or "" without scans."""
        if not self.scans:
            return ""
        return (f"--scans {' '.join(map(shlex.quote, self.scans))} --benchmarks {BENCHMARKS} "
                f"--costs {shlex.quote(json.dumps(self.route_cost_spec()))}")

    def crossval_figures(self) -> List[str]:
        """The ranked images of every :meth:`crossval_pairs` entry (rule ``crossval_figure``), for ``all``."""
        return [Paths.crossval_figure(ds, dose) for ds, dose in self.crossval_pairs()]

    def crossval_inputs(self, dataset: str, dose: str) -> Dict[str, object]:
        """The projections ranked, the normal-dose reference, and the models ranked with the rest: ``model``, every
        seed's (:meth:`crossval_models`), ``release``, the authors' released generator, and ``n2i_start``, the model
        a fine-tuned Noise2Inverse starts from (if any)."""
        start = self.n2i_start(dataset, dose) if self.crossval_n2i(dataset, dose) else ""
        return {"proj": Paths.projections(dataset, dose), "reference": self.reference(dataset),
                "model": list(self.crossval_models(dataset, dose).values()), "release": Paths.release_model(),
                "n2i_start": [start] if start else []}

