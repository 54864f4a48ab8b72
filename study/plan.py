"""The plan of the study: what is made, from what, and where it lives -- built once from the config.

:class:`Plan` is the one place that knows the study's shape. ``rules/common.smk`` builds it with
``Plan.from_config(config)`` and asks it for every path, flag and input; the figures (:mod:`study.figures`), the
benchmarks and the tests use the same object, so that a dataset, a run name or a path pattern is written once.

What the plan owns:

- the datasets (foam, shale, the user's ``scans``), the dose labels and the full-dose label;
- the TomoGAN *runs* (:mod:`study.runs`): one trained model each, with its seed and settings, the volumes that
  train, validate and test it, and the other volumes it is applied to (cross-facility test volumes, the scans);
- the *evaluated* (volume, dose) pairs: each test volume at its dose with its own main run; every method
  is scored there;
- the inputs and command-line flags of every rule, with the paths of :class:`study.paths.Paths`;
- the claims' comparisons and controls (:class:`study.claims_plan.ClaimsPlanning`) and the scans' held-out-view
  ranking and route costs (:class:`study.scan_plan.ScanPlanning`), two parts of the class kept in files of their
  own.

Config defaults live in ``config/config.schema.yaml`` and are filled in by :func:`study.config.load_config`
(Snakemake's ``validate``), so the plan reads ``config[...]`` and never repeats a default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from study.claims_plan import ClaimsPlanning
from study.config import config_hash
from study.paths import Paths
from study.runs import (ABLATION_TAG, AS_ACQUIRED, GENERALIST, MAIN_LOSS_SET, PRIORITY_TRAIN, Run, check_runs,
                        corpus_dataset, corpus_runs, enhanced_targets, expand_corpus, expand_scan_matched,
                        matched_runs, plan_runs, release_targets, run_name, settings_flags)
from study.scan_plan import ScanPlanning

__all__ = ["Plan"]


def _none(value):
    return "none" if value is None else value


@dataclass
class Plan(ClaimsPlanning, ScanPlanning):
    """The study, resolved from a validated config (see :func:`load_config`): build it with :meth:`from_config`."""

    config: dict
    datasets: List[str]  # the study's datasets, then the user's scans
    foam: List[str]
    shale: List[str]
    scans: Dict[str, dict]
    family: List[str]  # the corpus volumes (kind family)
    matched: List[str]  # volumes simulated at a scan's acquisition (kind matched)
    doses: List[str]
    full: str  # the full-dose label
    classical: List[str]  # tuned classical methods (analysis/classical.py)
    n2i: bool  # Noise2Inverse configured (on which evaluated pairs: n2i_on)
    runs: Dict[str, Run]
    evaluated: Dict[Tuple[str, str], Run]  # (volume, dose) -> its own main run: the main table's rows
    config_hash: str
    paths = Paths

    # -------------------------------------------------------------- construction
    @classmethod
    def from_config(cls, config: dict) -> "Plan":
        """Plan the study from a config that :func:`load_config` (or the workflow's ``validate``) has filled in.

        Raises ValueError naming the config key of the first inconsistency.
        """
        scans = dict(config.get("scans") or {})
        hash_ = config_hash(config)  # of the config as written: the expansions below only follow from it
        expand_corpus(config)
        expand_scan_matched(config)
        for name in scans:
            if name in config["datasets"]:
                raise ValueError(f"config 'scans.{name}': the name is already a dataset")
        kinds = {name: ds["kind"] for name, ds in config["datasets"].items()}
        doses = list(config["doses"])
        full = [d for d, v in config["doses"].items() if v["mode"] == "full"]
        if len(full) != 1:
            raise ValueError(f"config 'doses': exactly one dose must have mode 'full', found {full or 'none'}")
        full = full[0]
        shale = [d for d, k in kinds.items() if k == "shale"]
        for name in shale:
            ds = config["datasets"][name]
            for key, table in (("sample", "samples"), ("facility", "facilities"), ("tomobank", "tomobank")):
                if ds.get(key) not in config["shale"][table]:
                    raise ValueError(f"config 'datasets.{name}.{key}': '{ds.get(key)}' is not a key of 'shale.{table}'")
        if config["reference"]["dose"] not in config["doses"]:
            raise ValueError(f"config 'reference.dose': '{config['reference']['dose']}' is not a dose label")
        from analysis.classical import METHODS

        classical = list(config["classical"]["methods"])
        for method in classical:
            for need in METHODS[method].needs:
                if need not in classical:
                    raise ValueError(f"config 'classical.methods': {method} starts from the tuned {need}, "
                                     f"so it needs {need} too")
        for name, scan in scans.items():
            for dose in scan["doses"]:
                if dose not in config["doses"] or dose == full:
                    raise ValueError(f"config 'scans.{name}.doses': '{dose}' is not a low-dose label")
        datasets = list(config["datasets"]) + list(scans)

        runs = plan_runs(config["tomogan"]) if "tomogan" in config else {}
        corpus = corpus_runs(config)
        for where, extra in (("corpus", corpus), ("scan_matched", matched_runs(config, corpus))):
            for name, run in extra.items():
                if name in runs:
                    raise ValueError(f"config '{where}': run {name} is also one of tomogan's")
                runs[name] = run
        runs = dict(sorted(runs.items()))
        check_runs(runs, datasets, doses)
        plan = cls(config=config, datasets=datasets, foam=[d for d, k in kinds.items() if k == "foam"], shale=shale,
                   scans=scans, family=[d for d, k in kinds.items() if k == "family"],
                   matched=[d for d, k in kinds.items() if k == "matched"], doses=doses, full=full,
                   classical=classical, n2i="noise2inverse" in config, runs=runs, evaluated={},
                   config_hash=hash_)
        # a scan gets its split's main run at each of its doses, applied as it is (like a cross-facility test)
        for name, scan in scans.items():
            for dose in scan["doses"]:
                for run in plan.main_runs(scan["split"], dose, where=f"scans.{name}"):
                    run.cross_test.append(name)
        plan._cross_test_corpus()
        for name, scan in scans.items():  # a fine-tuned Noise2Inverse needs its starting model planned
            for dose in scan["doses"]:
                plan.n2i_start(name, dose)
        # The classical methods are tuned on the evaluated pair's run's validation slices (the same for every
        # seed: the first seed's run stands for them); Noise2Inverse trains on the evaluated volume itself.
        plan.evaluated = {(ds, run.dose): run for run in runs.values() if plan.is_main(run)
                          and run is plan.seeds_of(run)[0]
                          for ds in run.test + [c for c in run.cross_test if c in scans]}
        return plan

    # -------------------------------------------------------------- datasets and doses
    @property
    def depth(self) -> int:
        """The main runs' depth d."""
        return int(self.config["tomogan"]["train"]["depth"])

    @property
    def low_doses(self) -> List[str]:
        return [d for d in self.doses if d != self.full]

    @property
    def splits(self) -> List[str]:
        return list(self.config.get("tomogan", {}).get("splits", {}))

    def doses_of(self, dataset: str) -> List[str]:
        """Dose labels made for a dataset: every dose, or for a scan (or a corpus volume) its full dose and its
        listed ones (the corpus's doses; a matched volume's scan's, and :data:`~study.runs.AS_ACQUIRED` when that
        scan is run as acquired)."""
        if dataset in self.scans:
            return [self.full] + list(self.scans[dataset]["doses"])
        if dataset in self.family:
            return [self.full] + list(self.config["corpus"]["doses"])
        if dataset in self.matched:
            scan = self.config["datasets"][dataset]["scan"]
            return self.doses_of(scan) + ([AS_ACQUIRED] if self.scans[scan].get("acquired") else [])
        return [d for d in self.doses if d != AS_ACQUIRED]

    def dose_label(self, dose: str) -> str:
        """A dose for people: ``1/8 views``, ``1000 photons``."""
        if dose == AS_ACQUIRED:
            return "as acquired"
        d = self.config["doses"][dose]
        return f"1/{d['factor']} views" if d["mode"] == "sparse" else f"{d['incident']:g} photons"

    def reference(self, dataset: str) -> str:
        """The normal-dose reference reconstruction of a dataset."""
        ref = self.config["reference"]
        return Paths.recon(dataset, ref["dose"], ref["method"])

    # -------------------------------------------------------------- runs
    @property
    def bases(self) -> Dict[str, List[Run]]:
        """Runs by base name (the run without its seed), each list in seed order."""
        out: Dict[str, List[Run]] = {}
        for run in self.runs.values():
            out.setdefault(run.base, []).append(run)
        return {base: sorted(runs, key=lambda r: r.seed) for base, runs in out.items()}

    def seeds_of(self, run: Run) -> List[Run]:
        """Every seed's run of a run's base, in seed order."""
        return self.bases[run.base]

    def main_runs(self, split: str, dose: str, *, where: str = "tomogan.main") -> List[Run]:
        """The main runs of a split at a dose (depth d of the config, every loss term), one per training seed."""
        base = run_name(split, dose, self.depth, MAIN_LOSS_SET)
        if base not in self.bases:
            raise ValueError(f"config '{where}': split '{split}' has no main run at dose '{dose}' "
                             f"(no trained run {base}; add it to tomogan.main)")
        return self.bases[base]

    def main_run(self, split: str, dose: str, *, where: str = "tomogan.main") -> Run:
        """The first seed's main run of a split at a dose: the one figures show."""
        return self.main_runs(split, dose, where=where)[0]

    def ablation_base(self, depth: Optional[int] = None, loss_set: str = MAIN_LOSS_SET) -> str:
        """The base name of the ablation's run at a depth (default: the config's) and loss set."""
        ab = self.config["tomogan"]["ablation"]
        return run_name(ab["split"], ab["dose"], self.depth if depth is None else int(depth), loss_set,
                        tag=ABLATION_TAG if ab.get("train") else "")

    def is_main(self, run: Run) -> bool:
        return run.group == "study" and run.depth == self.depth and run.loss_set == MAIN_LOSS_SET

    def _cross_test_corpus(self) -> None:
        """The foam model beside the corpus's: at each corpus dose, the main runs (every seed) of
        ``corpus.baseline_split`` (trained on foam alone) are also applied to the corpus's test volumes, the LOFO
        table's comparison; the generalist is also applied to every scan at the doses they share (a route ranked on
        the scan)."""
        corpus = self.config.get("corpus")
        if not corpus:
            return
        tests = [corpus_dataset(f, "test") for f in corpus["families"]]
        for dose in corpus["doses"]:
            for run in self.main_runs(corpus["baseline_split"], dose, where="corpus.doses"):
                run.cross_test += [t for t in tests if t not in run.applied_to]
            for run in (r for r in self.runs.values() if r.split == GENERALIST and r.dose == dose):
                run.cross_test += [name for name, scan in self.scans.items() if dose in scan["doses"]]

    def tuning_run(self, split: str, dose: str) -> Run:
        """The evaluated run whose validation slices tune the classical methods of a split at a dose."""
        return next(r for r in self.evaluated.values() if r.split == split and r.dose == dose)

    def main_models(self) -> List[Tuple[str, str]]:
        """``(volume, run name)`` of each evaluated pair's own models (every seed), for the main table."""
        return [(ds, r.name) for (ds, _), run in sorted(self.evaluated.items()) for r in self.seeds_of(run)]

    def run_table(self) -> List[dict]:
        """One row per run: name, base, split, dose, depth, loss set and seed (tables and claims join on it)."""
        return [{"run": r.name, "base": r.base, "split": r.split, "dose": r.dose, "depth": r.depth,
                 "loss_set": r.loss_set, "seed": r.seed, "mse_warmup": int(r.settings.get("mse_warmup", 0)),
                 "cpu_budget_s": float(r.settings.get("cpu_budget_s", 0.0))}
                for r in self.runs.values()]

    @property
    def timing_run(self) -> Run:
        t = self.config["timing"]
        return self.main_run(t["split"], t["dose"], where="timing")

    # -------------------------------------------------------------- targets
    def simulated_data(self) -> List[str]:
        return [Paths.projections(d, dose) for d in self.datasets for dose in self.doses_of(d)]

    def reconstructions(self) -> List[str]:
        """Every reconstruction TomoGAN is compared with: FBP of everything, and on each evaluated pair the tuned
        classical methods and Noise2Inverse."""
        out = [Paths.recon(d, dose, "fbp") for d in self.datasets for dose in self.doses_of(d)]
        out += [Paths.recon(d, dose, m) for d, dose in self.evaluated
                for m in self.classical + (["n2i"] if self.n2i_on(d, dose) else [])]
        return sorted(set(out + [self.reference(d) for d in self.datasets]))

    def first_test_volume(self, dataset: str, dose: str) -> bool:
        """Whether an evaluated volume is the first test volume of its split (a scan always is)."""
        return dataset in self.scans or self.evaluated[(dataset, dose)].test[0] == dataset

    def n2i_on(self, dataset: str, dose: str) -> bool:
        """Whether Noise2Inverse is trained on an evaluated (volume, dose): ``noise2inverse.volumes`` ``all``, else
        only each split's first test volume and every scan (a training per volume and dose: the dearest method)."""
        if not self.n2i:
            return False
        return self.config["noise2inverse"].get("volumes", "first") == "all" or self.first_test_volume(dataset, dose)

    def enhanced(self) -> List[str]:
        """Every TomoGAN-enhanced volume: the runs' and the authors' released model's."""
        return enhanced_targets(self.runs) + release_targets(self.runs)

    def tomogan_datasets(self) -> List[str]:
        """Datasets that some TomoGAN run is applied to."""
        return sorted({ds for run in self.runs.values() for ds in run.applied_to})

    def conventional_inputs(self, dataset: str) -> List[str]:
        """A dataset's reconstructions scored against its reference (the reference itself left out)."""
        ref = self.reference(dataset)
        return [p for p in self.reconstructions() if p.startswith(f"results/{dataset}/") and p != ref]

    def phantom_of(self, dataset: str) -> List[str]:
        """A dataset's phantom, whose known pores the metrics measure against: a foam's, none otherwise."""
        return [Paths.phantom(dataset)] if dataset in self.foam else []

    def has_truth(self, dataset: str) -> bool:
        """Whether a volume's truth is known when the workflow is planned: a foam's or a corpus volume's phantom, and
        the shale stand-in's (``shale.source: synthetic``, or ``auto`` with no TomoBank URL to try); not a real
        scan's, a user's or a scan-matched volume's (its scoring against the truth is left out)."""
        if dataset in self.foam or dataset in self.family:
            return True
        if dataset in self.shale:
            source = self.config["shale"]["source"]
            return source == "synthetic" or (source == "auto" and not self._shale(dataset)[4]["url"])
        return False

    def truth_of(self, dataset: str) -> List[str]:
        """The file holding a volume's truth, which its metrics also score against (:meth:`has_truth`): a phantom
        on the reconstruction grid, or the shale stand-in's raw file (its ``/truth/volume``)."""
        if not self.has_truth(dataset):
            return []
        return [Paths.raw(dataset) if dataset in self.shale else Paths.phantom(dataset)]

    def tomogan_inputs(self, dataset: str) -> List[str]:
        """A dataset's enhanced volumes, for its TomoGAN metrics."""
        return [p for p in self.enhanced() if p.startswith(f"results/{dataset}/")]

    @property
    def figures(self):
        """Every figure's spec, by name (:func:`study.figures.plan_figures`)."""
        from study.figures import plan_figures

        if "_figures" not in self.__dict__:
            self.__dict__["_figures"] = plan_figures(self) if self.runs else {}
        return self.__dict__["_figures"]

    def figure_targets(self) -> List[str]:
        return [Paths.figure(name) for name in self.figures]

    # -------------------------------------------------------------- which jobs feed a training
    def feeds_training(self, dataset: str, dose: Optional[str] = None) -> bool:
        """Whether a dataset (at a dose, or at any) is an input of some training: its chain gets training's
        scheduling priority."""
        ref = self.config["reference"]["dose"]
        pairs = {(ds, d) for run in self.runs.values() for ds in run.train + run.val for d in (run.dose, ref)}
        # a scan's prepared projections set the acquisition of the matched volumes simulated from it
        pairs |= {(self.config["datasets"][ds]["scan"], self.full) for ds, _ in pairs if ds in self.matched}
        return any(ds == dataset and (dose is None or d == dose) for ds, d in pairs)

    def priority(self, dataset: str, dose: Optional[str] = None) -> int:
        return PRIORITY_TRAIN if self.feeds_training(dataset, dose) else 0

    # -------------------------------------------------------------- inputs of the rules
    def train_inputs(self, run_name_: str) -> Dict[str, List[str]]:
        """Low-dose FBPs and their normal-dose references: the run's training and validation volumes; ``init``, the
        model it is fine-tuned from (if any)."""
        run = self.runs[run_name_]
        inputs = {"ld": [Paths.recon(d, run.dose, "fbp") for d in run.train],
                  "nd": [self.reference(d) for d in run.train],
                  "vld": [Paths.recon(d, run.dose, "fbp") for d in run.val],
                  "vnd": [self.reference(d) for d in run.val]}
        if run.settings.get("init"):  # fine-tuned from another run's model
            inputs["init"] = [run.settings["init"]]
        return inputs

    def tune_inputs(self, split: str, dose: str, method: str) -> Dict[str, str]:
        """Validation data of a split at a dose for one method: the validation volume's low-dose FBP or
        projections (the registry's ``input`` kind) and its reference; SIRT+TV also reads SIRT's tuning."""
        from analysis.classical import METHODS

        volume = self.tuning_run(split, dose).validation_volume
        kind = METHODS[method].input
        inputs = {"val": Paths.recon(volume, dose, "fbp") if kind == "fbp" else Paths.projections(volume, dose),
                  "ref": self.reference(volume)}
        for need in METHODS[method].needs:
            inputs[need] = Paths.tuning(split, dose, need)
            inputs[f"{need}_base"] = Paths.tuned_val(split, dose, need)
        return inputs

    def apply_inputs(self, dataset: str, dose: str, method: str) -> Dict[str, str]:
        """A tuned method's test input (the registry's ``input`` kind) and its tuning file."""
        from analysis.classical import METHODS

        run = self.evaluated[(dataset, dose)]
        kind = METHODS[method].input
        data = {"projections": Paths.projections(dataset, dose), "fbp": Paths.recon(dataset, dose, "fbp")}.get(
            kind, Paths.recon(dataset, dose, kind))
        return {"data": data, "tuning": Paths.tuning(run.split, run.dose, method)}

    def timing_inputs(self) -> Dict[str, object]:
        run = self.timing_run
        ds = run.test[0]
        inputs = {"proj": Paths.projections(ds, run.dose), "reference": self.reference(ds), "model": Paths.model(run.name),
                  "tuning": [Paths.tuning(run.split, run.dose, m) for m in self.classical]}
        if self.n2i:
            inputs["n2i"] = Paths.n2i_model(ds, run.dose)
        return inputs

    def speed_inputs(self) -> Dict[str, str]:
        """The timed run's model and its validation data (low-dose FBP, reference)."""
        run = self.timing_run
        volume = run.validation_volume
        return {"model": Paths.model(run.name), "val": Paths.recon(volume, run.dose, "fbp"),
                "ref": self.reference(volume)}

    # -------------------------------------------------------------- command-line flags of the rules
    def _seed(self, dataset: str) -> int:
        ds = self.scans.get(dataset) or self.config["datasets"][dataset]
        return self.config["seed"] + ds.get("seed", 0)

    def family_args(self, dataset: str) -> str:
        """Flags of ``python -m simulate.families`` for a corpus volume."""
        c, ds = self.config["corpus"], self.config["datasets"][dataset]
        return (f"--family {ds['family']} --size {c['size']} --slices {c['slices']} --seed {self._seed(dataset)} "
                f"--dataset {dataset}")

    def projection_args(self, dataset: str) -> str:
        """Flags of ``python -m simulate.acquire project`` for a simulated volume: a foam's (the foam section), or a
        corpus volume's (its angles, its largest line integral drawn from ``corpus.max_line_integral`` with its
        seed, so that the corpus spans attenuations, and with ``corpus.noise_incident`` its instrument's photons per
        pixel, drawn log-uniformly, so that it spans noise levels too)."""
        if dataset in self.family:
            c = self.config["corpus"]
            rng = np.random.default_rng([self._seed(dataset), 7])
            lo, hi = c["max_line_integral"]
            args = f"--n-angles {c['n_angles']} --max-line-integral {float(rng.uniform(lo, hi)):.6g}"
            if c.get("noise_incident"):  # drawn after the line integral, so that one does not move
                lo, hi = np.log(c["noise_incident"])
                args += f" --noise-incident {float(np.exp(rng.uniform(lo, hi))):.6g}"
            return args
        f = self.config["foam"]
        return f"--n-angles {f['n_angles']} --max-line-integral {f['max_line_integral']}"

    def matched_args(self, dataset: str) -> str:
        """Flags of ``python -m simulate.scanmatch phantom`` for a volume simulated at a scan's acquisition."""
        ds = self.config["datasets"][dataset]
        return (f"--family {ds['family']} --slices {self.config['scan_matched']['slices']} "
                f"--seed {self._seed(dataset)} --dataset {dataset}")

    def matched_scan(self, dataset: str) -> str:
        """The scan's full-dose projections that a matched volume copies the acquisition of."""
        return Paths.projections(self.config["datasets"][dataset]["scan"], self.full)

    def foam_args(self, dataset: str) -> str:
        f = self.config["foam"]
        return (f"--dataset {dataset} --seed {self._seed(dataset)} "
                f"--size {f['size']} --slices {f['slices']} --cylinder-radius {f['cylinder_radius']} "
                f"--pore-radius-min {f['pore_radius'][0]} --pore-radius-max {f['pore_radius'][1]} "
                f"--porosity {f['porosity']} --gap {f['gap']} --supersample {f['supersample']}")

    def dose_args(self, dataset: str, dose: str) -> str:
        d = self.config["doses"][dose]
        level = f"--factor {d['factor']}" if d["mode"] == "sparse" else f"--incident {d['incident']}"
        return f"--label {dose} --mode {d['mode']} {level} --seed {self._seed(dataset)}"

    def _shale(self, dataset: str):
        ds = self.config["datasets"][dataset]
        sh = self.config["shale"]
        return ds, sh, sh["samples"][ds["sample"]], sh["facilities"][ds["facility"]], sh["tomobank"][ds["tomobank"]]

    def shale_download_args(self, dataset: str) -> str:
        """Flags of ``simulate.download``: the real file's URL and checksum, the mode, then the stand-in's flags."""
        ds, sh, sample, fac, tb = self._shale(dataset)
        # The stand-in's rotation axis sits where the real scan's does, scaled to the stand-in's detector.
        offset = (tb["center"] - tb["width"] / 2) * fac["detector"] / tb["width"]
        standin = (f"--preset {sample['name']} --sample {ds['sample']} "
                   f"--sample-seed {self.config['seed'] + sample['seed']} --size {sample['size']} "
                   f"--slices {sh['slices']} --facility {ds['facility']} --n-angles {fac['n_angles']} "
                   f"--detector {fac['detector']} --rows {sh['slices']} --incident {fac['incident']} "
                   f"--blur {fac['blur']} --dark {fac['dark']} "
                   f"--max-line-integral {fac['max_line_integral']} --center-offset {offset:.4f} "
                   f"--seed {self._seed(dataset)} --backend {self.config['backend']}")
        return (f"--name {ds['tomobank']} --url {_none(tb['url'])} --sha256 {_none(tb['sha256'])} "
                f"--size {_none(tb['size'])} --mode {sh['source']} -- {standin}")

    def shale_prepare_args(self, dataset: str) -> str:
        """Flags of ``simulate.dxchange``; the --real-* ones apply only when the raw file is the real scan."""
        ds, sh, sample, fac, tb = self._shale(dataset)
        return (f"--dataset {dataset} --facility {ds['facility']} --sample {ds['sample']} "
                f"--real-center {tb['center']} --real-bin {tb['bin']} --real-slices {sh['slices']}")

    def scan_read_args(self, dataset: str) -> str:
        """How a user's scan is read, as flags shared by ``simulate.dxchange`` and ``tomogan-scan``: centre (or
        auto), binning and rows."""
        scan = self.scans[dataset]
        rows = f" --rows {scan['rows'][0]} {scan['rows'][1]}" if scan.get("rows") else ""
        return f"--center {scan['center']} --bin {scan['bin']}{rows}"

    def scan_prepare_args(self, dataset: str) -> str:
        """Flags of ``simulate.dxchange`` for a user's scan: its name, then how it is read."""
        return f"--dataset {dataset} {self.scan_read_args(dataset)}"

    def train_args(self, run_name_: str, vld: List[str], vnd: List[str]) -> str:
        """Flags of ``tomogan_core.train``: validation volumes (if any) and the run's settings."""
        run = self.runs[run_name_]
        flags = [f"-vld {' '.join(vld)} -vnd {' '.join(vnd)}"] if run.val else []
        return " ".join(flags + settings_flags(run.settings))

    def tune_args(self, split: str, dose: str, method: str) -> str:
        run = self.tuning_run(split, dose)
        train = self.config["tomogan"]["train"]
        flags = f"--val-slices {train['val_slices']} --depth {run.depth}"
        if not run.val:
            flags += f" --held-out-fraction {train['val_fraction']}"
        cl = self.config["classical"]
        grid = cl.get("grids", {}).get(method)
        if grid:
            flags += " --grid " + " ".join(str(v) for v in grid)
        if cl.get("patience"):
            flags += f" --patience {int(cl['patience'])}"
        return flags + f" --criterion {cl['criterion']}"

    def n2i_args(self) -> str:
        """Flags of ``tomogan_core.noise2inverse train`` from the config's noise2inverse.train."""
        return " ".join(settings_flags(self.config["noise2inverse"].get("train", {}))) if self.n2i else ""

    def speed_args(self) -> str:
        run = self.timing_run
        sp = self.config["timing"]["speed"]
        train = self.config["tomogan"]["train"]
        flags = (f"--size {sp['size']} --depth {run.depth} --batch {' '.join(map(str, sp['batch']))} "
                 f"--repeats {sp['repeats']} --val-slices {train['val_slices']}")
        if not run.val:
            flags += f" --held-out-fraction {train['val_fraction']}"
        return flags + ("" if sp["compile"] else " --no-compile")

