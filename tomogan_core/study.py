"""The plan of the study: what is made, from what, and where it lives -- built once from the config.

:class:`Plan` is the one place that knows the study's shape. ``rules/common.smk`` builds it with
``Plan.from_config(config)`` and asks it for every path, flag and input; the figures
(:mod:`analysis.panels`), the benchmarks and the tests use the same object, so that a dataset, a run name
or a path pattern is written once.

What the plan owns:

- the datasets (foam, shale, the user's ``scans``), the dose labels and the full-dose label;
- the TomoGAN *runs*: one trained model each, named by :func:`run_name` (``{split}-{dose}-d{depth}-{loss_set}``),
  with its seed and settings, the volumes that train, validate and test it, and the other volumes it is
  applied to (cross-facility test volumes, the user's scans);
- the *evaluated* (volume, dose) pairs: each test volume at its dose with its own main run; every method
  is scored there;
- the figure specs (:mod:`analysis.panels` lays them out from the plan);
- :class:`Paths`, the one table of path patterns, one function per artefact.

Config defaults live in ``config/config.schema.yaml`` and are filled in by :func:`load_config` (Snakemake's
``validate``), so the plan reads ``config[...]`` and never repeats a default.

A *run* is one trained model: a split (which whole volumes train, validate and test it), a dose, a depth d
and a set of loss terms. The main results and the ablations share a model wherever they ask for the same
one.

Examples
--------
>>> cfg = {"train": {"depth": 3}, "splits": {"foam": {"train": ["foam1"], "val": ["foam2"], "test": ["foam3"]}},
...        "main": [{"split": "foam", "doses": ["sparse-8"]}],
...        "ablation": {"split": "foam", "dose": "sparse-8", "depths": [1, 3], "loss_sets": ["mse", "all"]}}
>>> sorted(plan_runs(cfg))
['foam-sparse-8-d1-all', 'foam-sparse-8-d3-all', 'foam-sparse-8-d3-mse']
>>> Paths.recon("foam3", "sparse-8", "fbp")
'results/foam3/recon/sparse-8/fbp.h5'
>>> Paths.recon(method="fbp")  # a field left out stays a Snakemake wildcard
'results/{dataset}/recon/{dose}/fbp.h5'
"""

from __future__ import annotations

import hashlib
import json
import shlex
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

__all__ = ["ABLATION_TAG", "LOSS_SETS", "RELEASE", "SCHEMA", "Run", "Paths", "Plan", "load_config", "plan_runs", "run_name",
           "expand_corpus", "expand_scan_matched", "corpus_runs", "matched_runs",
           "settings_flags", "check_runs", "enhanced_targets", "release_targets",
           "JOBS", "job_fields", "job_name", "benchmark_glob", "benchmark_fields"]

SCHEMA = Path(__file__).resolve().parents[1] / "config" / "config.schema.yaml"

# Which loss terms each named set keeps; a dropped term's weight is set to 0.
LOSS_SETS = {
    "mse": ("mse",),
    "mse-adv": ("mse", "adv"),
    "mse-vgg": ("mse", "vgg"),
    "all": ("mse", "adv", "vgg"),
}
_WEIGHT = {"mse": "lambda_mse", "adv": "lambda_adv", "vgg": "lambda_vgg"}
MAIN_LOSS_SET = "all"  # the main results' runs keep every loss term
CONTROL_METHOD = "tomogan-degraded"  # the positive control's method name (analysis/controls.py writes it)
RELEASE = "release"  # the authors' trained generator (TomoGAN.h5), applied as it is

# Scheduling priorities (Snakemake `priority:`): training and every job that feeds one come first, so that the
# longest chain (simulate -> FBP -> train -> infer) is never queued behind the short jobs; Noise2Inverse next.
PRIORITY_TRAIN = 10
PRIORITY_N2I = 5


# ----------------------------------------------------------------------------- paths

class _Wildcards(dict):
    def __missing__(self, key):
        return "{" + key + "}"


def _fill(pattern: str, **fields) -> str:
    return pattern.format_map(_Wildcards({k: v for k, v in fields.items() if v is not None}))


class Paths:
    """Every artefact's path, from one table of patterns (:attr:`PATTERNS`): ``Paths.<artefact>(...)`` each.

    Each function fills the fields it is given, positionally in the pattern's order or by name; a field left
    out stays a ``{wildcard}``, so the same function gives a rule its output pattern and an input function
    its concrete path: ``Paths.recon("foam3", "full", "fbp")``, ``Paths.recon(method="fbp")``.
    """

    PATTERNS = {
        "phantom": "results/{dataset}/phantom.h5",
        "raw": "results/{dataset}/raw.h5",
        "projections": "results/{dataset}/proj/{dose}.h5",
        "recon": "results/{dataset}/recon/{dose}/{method}.h5",
        "enhanced": "results/{dataset}/enhanced/{dose}/{run}.h5",
        "n2i_subsets": "results/{dataset}/n2i/{dose}/subsets.h5",
        "tuning": "results/tuning/{split}/{dose}/{method}.json",
        "tuned_val": "results/tuning/{split}/{dose}/{method}-val.h5",
        "model_dir": "results/models/{run}",
        "model": "results/models/{run}/model.pt",
        "train_log": "results/models/{run}/log.csv",
        "n2i_model": "results/models/n2i/{dataset}-{dose}/model.pt",
        "metrics": "results/metrics/{dataset}/{kind}.csv",
        "summary": "results/metrics/{kind}.csv",
        "table": "results/tables/{name}",
        "figure": "results/figures/{figure}.png",
        "timing": "results/timing/timing.csv",
        "speed": "results/bench/inference_speed.csv",
        "claims": "results/claims/claims.csv",
        "learning_curve": "results/claims/learning_curve_{group}.csv",
        "control": "results/{dataset}/control/{dose}",
        "crossval": "results/{dataset}/crossval/{dose}.csv",
        "crossval_images": "results/{dataset}/crossval/{dose}.h5",
        "crossval_figure": "results/figures/crossval_{dataset}_{dose}.png",
        "crossval_check": "results/crossval/check.csv",
        "lofo": "results/generalist/lofo.csv",
        "released_weights": "tomogan_core/weights/TomoGAN.h5",
        "release_model": "results/models/release/served.pt",
    }


def _fields(pattern: str) -> List[str]:
    """The ``{fields}`` of a pattern, in order."""
    return [name for _, name, _, _ in string.Formatter().parse(pattern) if name]


def _path_function(kind: str, pattern: str):
    """``Paths.<kind>(*fields, **fields)``: the pattern with the given fields filled, in the pattern's order."""
    fields = _fields(pattern)

    def path(*values, **named):
        if len(values) > len(fields):
            raise TypeError(f"Paths.{kind} takes at most {len(fields)} fields ({', '.join(fields)})")
        named.update(zip(fields, values))
        unknown = set(named) - set(fields)
        if unknown:
            raise TypeError(f"Paths.{kind} has no field {sorted(unknown)}; its pattern is {pattern}")
        return _fill(pattern, **named)

    path.__name__ = path.__qualname__ = kind
    path.__doc__ = f"``{pattern}`` (fields {', '.join(fields) or 'none'}); a field left out stays a wildcard."
    return staticmethod(path)


for _kind, _pattern in Paths.PATTERNS.items():
    setattr(Paths, _kind, _path_function(_kind, _pattern))


# ----------------------------------------------------------------------------- jobs' logs and benchmarks

#: Each rule's job name, from its wildcards: the job's log is ``results/logs/<job>.log`` and its benchmark
#: (Snakemake's: wall seconds, memory) ``results/benchmarks/<job>.tsv``. The rules take both from here
#: (``Paths.log(rule)``, ``Paths.benchmark(rule)``), and the cost tables find a job's benchmark by the same name
#: (:func:`benchmark_glob`, :func:`benchmark_fields`).
JOBS = {
    "foam_phantom": "foam_phantom/{dataset}",
    "family_phantom": "family_phantom/{dataset}",
    "matched_phantom": "matched_phantom/{dataset}",
    "shale_raw": "shale_raw/{dataset}",
    "project_foam": "project_foam/{dataset}",
    "project_matched": "project_matched/{dataset}",
    "prepare_shale": "prepare_shale/{dataset}",
    "prepare_scan": "prepare_scan/{dataset}",
    "low_dose": "low_dose/{dataset}/{dose}",
    "fbp": "fbp/{dataset}/{dose}",
    "tune_sirt": "tune_classical/{split}/{dose}/sirt",
    "tune_classical": "tune_classical/{split}/{dose}/{method}",
    "apply_classical": "apply_classical/{dataset}/{dose}/{method}",
    "n2i_split": "n2i_split/{dataset}/{dose}",
    "n2i_train": "n2i_train/{dataset}-{dose}",
    "n2i_infer": "n2i_infer/{dataset}/{dose}",
    "train": "train/{run}",
    "infer": "infer/{dataset}/{dose}/{run}",
    "import_release": "import_release",
    "infer_release": "infer_release/{dataset}/{dose}",
    "conventional_metrics": "conventional_metrics/{dataset}",
    "conventional_summary": "conventional_summary",
    "tomogan_metrics": "tomogan_metrics/{dataset}",
    "tomogan_summary": "tomogan_summary",
    "main_table": "main_table",
    "learning_curve": "learning_curve/{group}",
    "positive_control": "positive_control/{dataset}/{dose}",
    "control_metrics": "control_metrics/{dataset}/{dose}",
    "claims": "claims",
    "crossval": "crossval/{dataset}/{dose}",
    "crossval_figure": "crossval_figure/{dataset}/{dose}",
    "crossval_check": "crossval_check",
    "generalist_table": "generalist_table",
    "figure": "figure/{figure}",
    "timing": "timing",
    "inference_speed": "inference_speed",
}
LOGS = "results/logs"
#: The jobs that make a scan's matched volumes (their cost is the "simulation" of ``Plan.route_cost_spec``)
SIMULATION_JOBS = ("matched_phantom", "project_matched", "low_dose", "fbp")
BENCHMARKS = "results/benchmarks"  # the folder of every job's benchmark


def job_fields(rule: str) -> List[str]:
    """The wildcards a rule's job name is made of, in order: ``job_fields("infer")`` -> ``['dataset', 'dose',
    'run']``; an unknown rule is a KeyError naming :data:`JOBS`."""
    if rule not in JOBS:
        raise KeyError(f"no job '{rule}' in tomogan_core.study.JOBS; add the rule's job name there")
    return _fields(JOBS[rule])


def job_name(rule: str, **fields) -> str:
    """A rule's job name with the given fields filled, the others left ``{wildcards}``:
    ``job_name("low_dose", dataset="foam3")`` -> ``'low_dose/foam3/{dose}'``."""
    unknown = set(fields) - set(job_fields(rule))
    if unknown:
        raise TypeError(f"job '{rule}' has no field {sorted(unknown)}; its name is {JOBS[rule]}")
    return _fill(JOBS[rule], **fields)


def _log(rule: str, **fields) -> str:
    """A rule's log file, ``results/logs/<job>.log`` (:data:`JOBS`); fields left out stay wildcards."""
    return f"{LOGS}/{job_name(rule, **fields)}.log"


def _benchmark(rule: str, **fields) -> str:
    """A rule's benchmark file, ``results/benchmarks/<job>.tsv`` (:data:`JOBS`); fields left out stay wildcards."""
    return f"{BENCHMARKS}/{job_name(rule, **fields)}.tsv"


Paths.log, Paths.benchmark = staticmethod(_log), staticmethod(_benchmark)


def benchmark_glob(rule: str, **fields) -> str:
    """A glob pattern of a rule's benchmark files relative to the benchmarks folder, the fields not given ``*``
    (the given ones glob-escaped): ``benchmark_glob("infer", dataset="foam3")`` -> ``'infer/foam3/*/*.tsv'``."""
    from glob import escape

    given = {k: escape(str(v)) for k, v in fields.items()}
    return job_name(rule, **{f: given.get(f, "*") for f in job_fields(rule)}) + ".tsv"


def benchmark_fields(rule: str, relative: str) -> Optional[Dict[str, str]]:
    """The fields of a rule's benchmark file from its path relative to the benchmarks folder, or None if it is not
    one of that rule's: ``benchmark_fields("n2i_train", "n2i_train/foam3-sparse-4.tsv")`` -> ``{'dataset': 'foam3',
    'dose': 'sparse-4'}`` (a field spans no ``/``; where a name could split two ways, the first field is the
    shortest)."""
    import re

    parts = re.split(r"\{(\w+)\}", JOBS[rule] + ".tsv")
    regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+?)" for i, p in enumerate(parts))
    m = re.fullmatch(regex, str(relative))
    return m.groupdict() if m else None


# ----------------------------------------------------------------------------- runs

def run_name(split: str, dose: str, depth: int, loss_set: str, seed: Optional[int] = None, tag: str = "") -> str:
    """A run's name: ``{split}-{dose}-d{depth}-{loss_set}``, then ``-{tag}`` for runs trained with settings of their
    own (the ablation's, :data:`ABLATION_TAG`), and ``-s{seed}`` when several seeds are trained.

    >>> run_name("foam", "sparse-8", 3, "all"), run_name("foam", "sparse-8", 3, "all", seed=2)
    ('foam-sparse-8-d3-all', 'foam-sparse-8-d3-all-s2')
    >>> run_name("foam", "sparse-8", 3, "mse", seed=0, tag=ABLATION_TAG)
    'foam-sparse-8-d3-mse-ablation-s0'
    """
    return f"{split}-{dose}-d{depth}-{loss_set}" + (f"-{tag}" if tag else "") + ("" if seed is None else f"-s{seed}")


ABLATION_TAG = "ablation"  # names the ablation's runs when tomogan.ablation.train gives them settings of their own


@dataclass
class Run:
    """One model of the study: what trains it and where it is applied.

    Runs that differ only in their training seed share a ``base`` name; a claim compares bases, over their seeds.
    """

    name: str
    base: str  # the name without the seed: run_name(split, dose, depth, loss_set)
    split: str
    dose: str
    depth: int
    loss_set: str
    train: List[str]
    val: List[str]  # empty: hold out the last slices of the first training volume
    test: List[str]  # its split's test volumes
    settings: Dict[str, object] = field(default_factory=dict)  # TrainConfig fields for this run
    cross_test: List[str] = field(default_factory=list)  # other volumes it is also applied to
    group: str = "study"  # "study": tomogan.main/ablation/cross_facility; "ablation": the ablation's runs when they
    # have settings of their own (tomogan.ablation.train); "corpus": the generalist and its LOFO runs

    @property
    def seed(self) -> int:
        return int(self.settings.get("seed", 0))

    @property
    def applied_to(self) -> List[str]:
        """Every volume the model is applied to: its test volumes, then the cross-tested ones."""
        return self.test + self.cross_test

    @property
    def validation_volume(self) -> str:
        """The volume it validates on: the first validation volume, else the first training volume's held-out end."""
        return (self.val or self.train)[0]


def _run(cfg: dict, split: str, dose: str, depth: int, loss_set: str, seed: int, several_seeds: bool,
         overrides: Optional[dict] = None, tag: str = "") -> Run:
    if split not in cfg["splits"]:
        raise ValueError(f"config 'tomogan': split '{split}' is not in tomogan.splits")
    if loss_set not in LOSS_SETS:
        raise ValueError(f"config 'tomogan': loss set '{loss_set}' is not one of {sorted(LOSS_SETS)}")
    settings = dict(cfg.get("train", {}), **(overrides or {}))
    settings["depth"] = depth
    for term, weight in _WEIGHT.items():
        if term not in LOSS_SETS[loss_set]:
            settings[weight] = 0.0
    settings["seed"] = int(seed)
    sp = cfg["splits"][split]
    base = run_name(split, dose, depth, loss_set, tag=tag)
    return Run(name=run_name(split, dose, depth, loss_set, seed if several_seeds else None, tag=tag), base=base,
               split=split, dose=dose, depth=depth, loss_set=loss_set, train=list(sp["train"]),
               val=list(sp.get("val", [])), test=list(sp["test"]), settings=settings,
               group=ABLATION_TAG if tag else "study")


def training_seeds(cfg: dict) -> List[int]:
    """The training seeds of every run: ``tomogan.seeds``, else the one ``tomogan.train.seed``."""
    return [int(s) for s in cfg.get("seeds") or [cfg.get("train", {}).get("seed", 0)]]


def settings_flags(settings: dict) -> List[str]:
    """TrainConfig settings as the training commands' flags, e.g. ``{"max_iter": 250}`` -> ``["--max-iter", "250"]``,
    each value quoted for the shell; an empty string (``init: ""``: not set) gives no flag.

    >>> settings_flags({"max_iter": 250, "lr_g": 0.0003, "init": ""})
    ['--lr-g', '0.0003', '--max-iter', '250']
    >>> settings_flags({"init": "results/models/my run/model.pt"})
    ['--init', "'results/models/my run/model.pt'"]
    """
    return [a for k, v in sorted(settings.items()) if v != ""
            for a in (f"--{k.replace('_', '-')}", shlex.quote(str(v)))]


def plan_runs(cfg: dict) -> Dict[str, Run]:
    """Every run the ``tomogan`` config section asks for, by name (sorted).

    - ``main``: one run per (split, dose) listed, at the configured depth with every loss term;
    - ``ablation``: on one (split, dose), the depths at all loss terms, and the loss sets at the configured depth;
      with settings of their own (``ablation.train``, e.g. a CPU budget and no warm start) they are runs of their
      own, named with :data:`ABLATION_TAG`, else they share the main run's model where they ask for it;
    - ``cross_facility``: for each (train split, test split) pair and dose, the train split's main run is also
      applied to the test split's test volumes.
    """
    runs: Dict[str, Run] = {}
    depth = int(cfg["train"]["depth"])
    seeds = training_seeds(cfg)

    def add(split, dose, d, loss_set, overrides=None, tag="") -> List[Run]:
        """The run at every training seed (one model each); runs asked for twice are planned once."""
        return [runs.setdefault(r.name, r) for r in
                (_run(cfg, split, dose, d, loss_set, seed, len(seeds) > 1, overrides, tag) for seed in seeds)]

    for entry in cfg.get("main", []):
        for dose in entry["doses"]:
            add(entry["split"], dose, depth, MAIN_LOSS_SET)
    ab = cfg.get("ablation")
    if ab:
        own = dict(ab.get("train") or {})
        tag = ABLATION_TAG if own else ""
        for d in ab.get("depths", []):
            add(ab["split"], ab["dose"], int(d), MAIN_LOSS_SET, own, tag)
        for loss_set in ab.get("loss_sets", []):
            add(ab["split"], ab["dose"], depth, loss_set, own, tag)
    cross = cfg.get("cross_facility")
    if cross:
        for src, dst in cross["pairs"]:
            for dose in cross["doses"]:
                for run in add(src, dose, depth, MAIN_LOSS_SET):
                    for dataset in cfg["splits"][dst]["test"]:
                        if dataset not in run.applied_to:
                            run.cross_test.append(dataset)
    return dict(sorted(runs.items()))


CORPUS_ROLES = ("train", "val", "test")  # one volume of each family per role: corpus-<family>-<role>
GENERALIST = "generalist"  # the split of the model trained on every family; lofo-<family> leaves one out


def corpus_dataset(family: str, role: str) -> str:
    """The name of a corpus volume, e.g. ``corpus_dataset("fibres", "test")`` -> ``corpus-fibres-test``."""
    return f"corpus-{family}-{role}"


def lofo_split(family: str) -> str:
    """The split that leaves ``family`` out of training and tests on it: ``lofo-<family>``."""
    return f"lofo-{family}"


def expand_corpus(config: dict) -> None:
    """Add the ``corpus`` section's volumes to ``config["datasets"]`` and its splits to ``tomogan.splits``, in place.

    Volumes ``corpus-<family>-<role>`` (kind ``family``; seed ``corpus.seed + 10 * family index + role index``);
    splits ``generalist`` (every family's training, validation and test volume) and, with ``lofo``,
    ``lofo-<family>`` (the others' training and validation volumes; that family's test volume). Running it again
    changes nothing; a name already taken by another dataset or split is a ValueError.
    """
    corpus = config.get("corpus")
    if not corpus:
        return
    families = list(corpus["families"])
    datasets = config["datasets"]
    for i, family in enumerate(families):
        for j, role in enumerate(CORPUS_ROLES):
            entry = {"kind": "family", "family": family, "seed": int(corpus["seed"]) + 10 * i + j}
            name = corpus_dataset(family, role)
            if datasets.setdefault(name, entry) != entry:
                raise ValueError(f"config 'datasets.{name}': the name is the corpus's; choose another")
    splits = config.setdefault("tomogan", {}).setdefault("splits", {})
    wanted = {GENERALIST: {r: [corpus_dataset(f, r) for f in families] for r in CORPUS_ROLES}}
    if corpus.get("lofo", True):
        for family in families:
            others = [f for f in families if f != family]
            wanted[lofo_split(family)] = {"train": [corpus_dataset(f, "train") for f in others],
                                          "val": [corpus_dataset(f, "val") for f in others],
                                          "test": [corpus_dataset(family, "test")]}
    for name, split in wanted.items():
        if splits.setdefault(name, split) != split:
            raise ValueError(f"config 'tomogan.splits.{name}': the name is the corpus's; choose another")


def corpus_runs(config: dict) -> Dict[str, Run]:
    """The corpus's runs (group ``corpus``): the generalist and each LOFO model at every ``corpus.doses``, at the
    study's depth with every loss term, once per ``corpus.seeds``, with ``tomogan.train`` changed by
    ``corpus.train``. Needs :func:`expand_corpus` first."""
    corpus = config.get("corpus")
    if not corpus:
        return {}
    cfg = dict(config["tomogan"], train={**config["tomogan"].get("train", {}), **corpus.get("train", {})})
    seeds = [int(x) for x in corpus["seeds"]]
    splits = [GENERALIST] + ([lofo_split(f) for f in corpus["families"]] if corpus.get("lofo", True) else [])
    runs = {}
    for split in splits:
        for dose in corpus["doses"]:
            for seed in seeds:
                run = _run(cfg, split, dose, int(cfg["train"]["depth"]), MAIN_LOSS_SET, seed, len(seeds) > 1)
                run.group = "corpus"
                runs[run.name] = run
    return runs


MATCHED_ROLES = ("train", "val")  # one volume of each family per role: matched-<scan>-<family>-<role>


def matched_dataset(scan: str, family: str, role: str) -> str:
    """A volume simulated at a scan's acquisition, e.g. ``matched_dataset("demo-scan", "fibres", "train")`` ->
    ``matched-demo-scan-fibres-train``."""
    return f"matched-{scan}-{family}-{role}"


def matched_split(scan: str) -> str:
    """The split of a scan's matched model: its simulated volumes train and validate it, the scan is its test."""
    return f"matched-{scan}"


def expand_scan_matched(config: dict) -> None:
    """Add the ``scan_matched`` section's volumes (kind ``matched``: one training and one validation volume of each
    of its families per scan, seed ``scan_matched.seed + 10 * family index + role index``) to ``config["datasets"]``
    and each scan's split ``matched-<scan>`` to ``tomogan.splits``, in place; idempotent, as
    :func:`expand_corpus`."""
    sm, scans = config.get("scan_matched"), config.get("scans") or {}
    if not sm or not scans:
        return
    datasets = config["datasets"]
    splits = config.setdefault("tomogan", {}).setdefault("splits", {})
    for scan in scans:
        for i, family in enumerate(sm["families"]):
            for j, role in enumerate(MATCHED_ROLES):
                entry = {"kind": "matched", "scan": scan, "family": family, "seed": int(sm["seed"]) + 10 * i + j}
                name = matched_dataset(scan, family, role)
                if datasets.setdefault(name, entry) != entry:
                    raise ValueError(f"config 'datasets.{name}': the name is the scan-matched simulation's")
        split = {role: [matched_dataset(scan, f, role) for f in sm["families"]] for role in MATCHED_ROLES}
        split["test"] = [scan]
        if splits.setdefault(matched_split(scan), split) != split:
            raise ValueError(f"config 'tomogan.splits.{matched_split(scan)}': the name is the scan-matched "
                             "simulation's; choose another")


def matched_runs(config: dict, corpus: Dict[str, Run]) -> Dict[str, Run]:
    """Each scan's matched runs (group ``matched``), one per scan dose: the main loss terms and depth, the settings
    ``tomogan.train`` changed by ``corpus.train`` then ``scan_matched.train``, the corpus's first seed; with
    ``init: generalist``, fine-tuned from the generalist of ``corpus`` (the corpus's runs) at that dose, else at
    the corpus's first dose. Needs :func:`expand_scan_matched` first."""
    sm, scans = config.get("scan_matched"), config.get("scans") or {}
    if not sm or not scans:
        return {}
    c = config.get("corpus") or {}
    train = {**config["tomogan"].get("train", {}), **c.get("train", {}), **sm.get("train", {})}
    cfg = dict(config["tomogan"], train=train)
    seed = int(c["seeds"][0]) if c else training_seeds(config["tomogan"])[0]
    if sm["init"] == "generalist" and not c:
        raise ValueError("config 'scan_matched.init': 'generalist' fine-tunes the corpus's generalist; add the "
                         "corpus section or set init: none")
    runs = {}
    for scan, spec in scans.items():
        for dose in spec["doses"]:
            run = _run(cfg, matched_split(scan), dose, int(train["depth"]), MAIN_LOSS_SET, seed, False)
            run.group = "matched"
            if sm["init"] == "generalist":
                at = dose if dose in c["doses"] else c["doses"][0]
                start = next(r for r in corpus.values() if r.split == GENERALIST and r.dose == at and r.seed == seed)
                run.settings["init"] = Paths.model(start.name)
            runs[run.name] = run
    return runs


def enhanced_targets(runs: Dict[str, Run]) -> List[str]:
    """Paths of every enhanced volume of the runs (each run on each volume it is applied to)."""
    return [Paths.enhanced(ds, run.dose, run.name) for run in runs.values() for ds in run.applied_to]


def release_targets(runs: Dict[str, Run]) -> List[str]:
    """The authors' released generator applied to every (volume, dose) that a trained run is applied to."""
    pairs = sorted({(ds, run.dose) for run in runs.values() for ds in run.applied_to})
    return [Paths.enhanced(ds, dose, RELEASE) for ds, dose in pairs]


def check_runs(runs: Dict[str, Run], datasets, doses) -> None:
    """Raise ValueError naming the first split volume or dose that the config does not define."""
    if RELEASE in runs:
        raise ValueError(f"config 'tomogan': '{RELEASE}' names the authors' model; choose another split name")
    for run in runs.values():
        for ds in run.train + run.val + run.applied_to:
            if ds not in datasets:
                raise ValueError(f"config 'tomogan.splits.{run.split}': '{ds}' is not a dataset")
        if run.dose not in doses:
            raise ValueError(f"config 'tomogan': dose '{run.dose}' (run {run.name}) is not a dose label")


# ----------------------------------------------------------------------------- config

def load_config(config) -> dict:
    """Validate a config (a dict, or a YAML file's path) against the schema and fill in its defaults.

    The same as the workflow's ``validate(config, schema=...)`` in ``rules/common.smk``; for tests and tools
    that plan without Snakemake. Returns the config (a dict given is filled in place).

    Raises
    ------
    simulate.plumbing.InputError
        A file that is missing, not YAML, or fails the schema (the schema's message, first line).
    """
    import yaml
    from snakemake.utils import validate

    from simulate.plumbing import InputError

    where = "config"
    if not isinstance(config, dict):
        where = config
        try:
            config = yaml.safe_load(Path(config).read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(where, f"not a readable YAML config: {str(exc).splitlines()[0]}") from None
    try:
        validate(config, schema=str(SCHEMA))
    except Exception as exc:  # snakemake's WorkflowError, with the schema's message on a later line
        lines = str(exc).splitlines()
        why = next((line for line in lines if line.startswith("ValidationError")), lines[0])
        raise InputError(where, f"fails config/config.schema.yaml: {why}") from None
    return config


def config_hash(config: dict) -> str:
    """A short hash of the resolved config: every table row records which config made it."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]


# ----------------------------------------------------------------------------- the plan

def _none(value):
    return "none" if value is None else value


@dataclass
class Plan:
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
        listed ones (the corpus's doses; a matched volume's scan's)."""
        if dataset in self.scans:
            return [self.full] + list(self.scans[dataset]["doses"])
        if dataset in self.family:
            return [self.full] + list(self.config["corpus"]["doses"])
        if dataset in self.matched:
            return self.doses_of(self.config["datasets"][dataset]["scan"])
        return self.doses

    def dose_label(self, dose: str) -> str:
        """A dose for people: ``1/8 views``, ``1000 photons``."""
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
        """Every figure's spec, by name (:func:`analysis.panels.plan_figures`)."""
        from analysis.panels import plan_figures

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

    def scan_prepare_args(self, dataset: str) -> str:
        """Flags of ``simulate.dxchange`` for a user's scan: name, centre (or auto), rows and binning."""
        scan = self.scans[dataset]
        rows = f" --rows {scan['rows'][0]} {scan['rows'][1]}" if scan.get("rows") else ""
        return f"--dataset {dataset} --center {scan['center']} --bin {scan['bin']}{rows}"

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

    # -------------------------------------------------------------- claims
    def _side(self, label: str, datasets, dose: str, *, method: str, runs: Optional[List[Run]] = None) -> dict:
        """One side of a comparison: what the per-slice metric rows of each of its seeds are selected by, on one
        test volume (a name) or several (a list: the claims resample them)."""
        datasets = datasets if isinstance(datasets, str) else (datasets[0] if len(datasets) == 1 else list(datasets))
        if runs:
            rows = [{"dataset": datasets, "dose": dose, "method": method, "model": r.name, "seed": r.seed} for r in runs]
        else:  # a method trained on nothing of ours: any model name (Noise2Inverse's names its volume)
            rows = [{"dataset": datasets, "dose": dose, "method": method, "model": None}]
        return {"label": label, "rows": rows}

    def _method_side(self, name: str, datasets: List[str], dose: str) -> dict:
        if name == "tomogan":
            run = self.evaluated[(datasets[0], dose)]
            return self._side(run.base, datasets, dose, method="tomogan", runs=self.seeds_of(run))
        method = {"release": "tomogan-release"}.get(name, name)
        return self._side(name, datasets, dose, method=method)

    def test_volumes(self, split: str, dose: str) -> List[str]:
        """The test volumes of a split that its main run at a dose is evaluated on (the claims pool them)."""
        return sorted(ds for (ds, d), run in self.evaluated.items() if d == dose and run.split == split and ds in run.test)

    def claim_comparisons(self) -> List[dict]:
        """Every claim of ``config['claims']`` as its pairwise comparisons.

        Each comparison is a dict: ``claim``, ``text``, ``kind``, ``metrics``, ``part`` (what it compares, for
        people), and sides ``a`` and ``b``, each ``{"label", "rows"}`` with one row per training seed selecting
        per-slice metric rows by ``dataset``, ``dose``, ``method`` and ``model``. A speed claim has
        ``factor`` instead of sides. Comparisons whose models this config does not train are left out, and a
        claim left with none gets one comparison with ``part`` saying so (its verdict is then "not run").
        """
        if "claims" not in self.config or not self.runs:
            return []
        cl = self.config["claims"]
        out = []
        for claim in cl["list"]:
            primary = claim.get("primary", cl.get("primary", "ssim"))
            metrics = list(claim.get("metrics") or cl["metrics"])
            head = {"claim": claim["id"], "text": claim["text"], "kind": claim.get("kind", "better"),
                    "metrics": ([primary] if primary not in metrics else []) + metrics, "primary": primary}
            parts = []
            if claim["compare"] == "ablation":
                ab = self.config["tomogan"].get("ablation") or {}
                entries = claim["a"] + claim["b"]
                head["group"] = "depths" if any("depth" in e for e in entries) else "loss-sets"
                head["question"] = self.ablation_question()
                if ab:
                    self.main_run(ab["split"], ab["dose"], where="tomogan.ablation")
                    ds = self.test_volumes(ab["split"], ab["dose"])

                    def model(entry):
                        base = self.ablation_base(entry.get("depth"), entry.get("loss_set", MAIN_LOSS_SET))
                        return base, self.bases.get(base)

                    for a in claim["a"]:
                        for b in claim["b"]:
                            (na, ra), (nb, rb) = model(a), model(b)
                            if ra and rb:
                                parts.append(dict(head, part=f"{na} vs {nb} on {', '.join(ds)}",
                                                  a=self._side(na, ds, ab["dose"], method="tomogan", runs=ra),
                                                  b=self._side(nb, ds, ab["dose"], method="tomogan", runs=rb)))
            elif claim["compare"] == "methods":
                split = claim.get("split", "foam")
                for dose in sorted({d for (_, d), run in self.evaluated.items() if run.split == split}):
                    ds = self.test_volumes(split, dose)
                    if not ds:
                        continue
                    for a in claim["a"]:
                        for b in claim["b"]:
                            if b in self.classical + ["fbp", "tomogan", "release"] + (["n2i"] if self.n2i else []):
                                on = [d for d in ds if "n2i" not in (a, b) or self.n2i_on(d, dose)]
                                parts.append(dict(head, part=f"{a} vs {b} on {', '.join(on)} at {dose}",
                                                  a=self._method_side(a, on, dose), b=self._method_side(b, on, dose)))
            elif claim["compare"] == "cross-facility":
                cross = self.config["tomogan"].get("cross_facility") or {}
                for src, dst in cross.get("pairs", []):
                    for dose in cross.get("doses", []):
                        other, own = self.main_runs(src, dose), self.main_runs(dst, dose)
                        for ds in self.config["tomogan"]["splits"][dst]["test"]:
                            parts.append(dict(head, part=f"{src} model vs {dst} model on {ds} at {dose}",
                                              a=self._side(other[0].base, ds, dose, method="tomogan", runs=other),
                                              b=self._side(own[0].base, ds, dose, method="tomogan", runs=own)))
            elif claim["compare"] == "speed" and "timing" in self.config:
                sirt_iter = self.config["timing"]["sirt_iter"]
                parts.append(dict(head, part=f"SIRT ({sirt_iter} it.) time over FBP+TomoGAN's",
                                  factor=claim.get("factor", 1.0), sirt_iter=sirt_iter, metrics=["speedup"]))
            out += [self._without_truth(part) for part in parts] or [
                dict(head, part="not run: this config trains none of the models it compares")]
        return self.control_comparisons() + out if out else out

    def _without_truth(self, part: dict) -> dict:
        """A comparison whose primary is a ``*_truth`` metric, on a volume without a known truth (a real scan:
        :meth:`has_truth`): decided by the same metric against the normal-dose reference, which its ``primary``
        names, and judged on no truth metric (they would be NaN)."""
        primary = part.get("primary", "")
        if not primary.endswith("_truth") or "a" not in part:
            return part
        datasets = {d for side in (part["a"], part["b"]) for row in side["rows"]
                    for d in ([row["dataset"]] if isinstance(row["dataset"], str) else row["dataset"])}
        if all(self.has_truth(d) for d in datasets):
            return part
        plain = primary.removesuffix("_truth")
        return dict(part, primary=plain,
                    metrics=[plain] + [m for m in part["metrics"] if m != plain and not m.endswith("_truth")])

    def ablation_question(self) -> str:
        """Which question the ablation's comparisons answer, from how its runs were trained (``tomogan.train`` with
        ``tomogan.ablation.train`` over it)."""
        train = dict(self.config["tomogan"]["train"], **(self.config["tomogan"].get("ablation") or {}).get("train", {}))
        warm = int(train.get("mse_warmup") or 0)
        start = (f", the first {warm} steps shared (pixel MSE alone, one warm start per seed)" if warm
                 else ", from scratch")
        if float(train.get("cpu_budget_s") or 0) > 0:
            return (f"compute-matched: {float(train['cpu_budget_s']):g} CPU-seconds of training steps each"
                    + start + "; for a fixed CPU budget, which is best?")
        return f"step-matched: {int(train['max_iter'])} steps each" + start

    def control_place(self) -> Optional[Tuple[str, str]]:
        """The (split, dose) whose main run the controls use: ``claims.controls``, else the ablation's."""
        ctl = dict((self.config["tomogan"].get("ablation") or {}), **self.config["claims"].get("controls", {}))
        if "split" not in ctl or "dose" not in ctl or not self.main_runs(ctl["split"], ctl["dose"]):
            return None
        return ctl["split"], ctl["dose"]

    def control_comparisons(self) -> List[dict]:
        """The controls every claims table opens with, on the main run of :meth:`control_place` (its first test
        volume):

        - *null*: two disjoint groups of the run's seeds (the first half against the rest); any verdict but
          supported or contradicted passes;
        - *positive*: the run's output against the same output blurred to lose twice the SSIM margin
          (:mod:`analysis.controls`), seeds paired; it passes if supported.
        """
        place = self.control_place()
        if place is None:
            return []
        split, dose = place
        runs = self.main_runs(split, dose)
        ds = self.test_volumes(split, dose)
        where = ", ".join(ds)
        cl = self.config["claims"]
        head = {"metrics": [cl.get("primary", "ssim")], "primary": cl.get("primary", "ssim"), "control": True}
        out = []
        if len(runs) >= 2:
            half = len(runs) // 2
            out.append(dict(head, claim="control-null", kind="better", control="null",
                            text="null control: two disjoint seed groups of one run must not differ",
                            part=f"seeds {' '.join(str(r.seed) for r in runs[:half])} vs "
                                 f"{' '.join(str(r.seed) for r in runs[half:])} of {runs[0].base} on {where}",
                            a=self._side(runs[0].base, ds, dose, method="tomogan", runs=runs[:half]),
                            b=self._side(runs[0].base, ds, dose, method="tomogan", runs=runs[half:])))
        out.append(dict(head, claim="control-positive", kind="better", control="positive",
                        text="positive control: a model's output beats itself blurred to lose twice the SSIM margin",
                        part=f"{runs[0].base} vs its output blurred, on {where} at {dose}",
                        a=self._side(runs[0].base, ds, dose, method="tomogan", runs=runs),
                        b=self._side(runs[0].base + " blurred", ds, dose, method=CONTROL_METHOD, runs=runs)))
        return out

    def learning_curve_groups(self) -> Dict[str, List[Run]]:
        """The ablation's comparison groups whose validation curves tell whether training was long enough:
        ``loss-sets`` (every loss set at the main depth) and ``depths`` (every depth with all loss terms), each
        every seed's run; a group of fewer than two models is left out."""
        ab = (self.config.get("tomogan") or {}).get("ablation")
        if not ab:
            return {}
        groups = {"loss-sets": [self.ablation_base(loss_set=ls) for ls in ab.get("loss_sets", [])],
                  "depths": [self.ablation_base(depth=d) for d in ab.get("depths", [])]}
        groups = {name: [r for base in bases for r in self.bases.get(base, [])] for name, bases in groups.items()}
        return {name: runs for name, runs in groups.items() if len({r.base for r in runs}) > 1}

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

    def lofo_spec(self) -> dict:
        """What ``python -m analysis.generalist`` needs: per corpus family, its test volume and, per corpus dose, the
        runs of each route (foam only: the baseline split's main runs; generalist; unseen: the family's LOFO runs),
        every seed; ``{}`` without a corpus or LOFO."""
        corpus = self.config.get("corpus")
        if not corpus or not corpus.get("lofo", True):
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
        start = self.n2i_start(dataset, dose)
        if start:
            specs.append({"label": f"n2i:{n2i['fine_tune_from']}", "k": n2i["k"],
                          "train": {**n2i.get("train", {}), "init": start}})
        return "--n2i " + shlex.quote(json.dumps(specs, sort_keys=True))

    def n2i_start(self, dataset: str, dose: str) -> str:
        """The model a scan's fine-tuned Noise2Inverse starts from (``noise2inverse.fine_tune_from``), or "": the
        generalist at that dose (else at the corpus's first dose), or the scan's matched model at that dose."""
        start = self.config.get("noise2inverse", {}).get("fine_tune_from", "none")
        if start == "none" or dataset not in self.scans:
            return ""
        if start == "matched":
            runs = [r for r in self.runs.values() if r.split == matched_split(dataset) and r.dose == dose]
        else:
            corpus = self.config.get("corpus") or {}
            at = dose if dose in corpus.get("doses", []) else (corpus.get("doses") or [None])[0]
            runs = [r for r in self.runs.values() if r.split == GENERALIST and r.dose == at]
        if not runs:
            raise ValueError(f"config 'noise2inverse.fine_tune_from': no {start} model for {dataset} at {dose} "
                             f"(add the {'scan_matched' if start == 'matched' else 'corpus'} section)")
        return Paths.model(runs[0].name)

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

    def claims_spec(self) -> dict:
        """What ``python -m analysis.claims`` needs: the comparisons, margins, bootstrap settings, config hash."""
        cl = self.config["claims"]
        boot = dict(cl["bootstrap"], seed=self.config["seed"] + cl["bootstrap"]["seed"])
        train = self.config["tomogan"]["train"]
        return {"comparisons": self.claim_comparisons(), "margins": cl["margins"], "bootstrap": boot,
                "primary": cl.get("primary", "ssim"), "coverage_sims": int(cl.get("coverage_sims", 400)),
                "config_hash": self.config_hash, "caveat": cl.get("caveat", ""),
                "training": {"max_iter": int(train["max_iter"]), "mse_warmup": int(train.get("mse_warmup", 0)),
                             "seeds": training_seeds(self.config["tomogan"]),
                             **({"ablation": self.ablation_question()}
                                if (self.config["tomogan"].get("ablation") or {}).get("train") else {})}}

    def claim_inputs(self) -> List[str]:
        """The per-slice metric files (and the timing table) the claims read."""
        comparisons = self.claim_comparisons()
        def names(row):
            return [row["dataset"]] if isinstance(row["dataset"], str) else row["dataset"]

        datasets = sorted({ds for c in comparisons for side in ("a", "b") if side in c
                           for row in c[side]["rows"] for ds in names(row)})
        files = [Paths.metrics(ds, kind) for ds in datasets for kind in ("conventional", "tomogan")]
        files += [Paths.learning_curve(group).replace(".csv", "_summary.csv") for group in self.learning_curve_groups()]
        files += [Paths.metrics(ds, f"control-{r['dose']}") for c in comparisons if c.get("control") == "positive"
                  for r in c["b"]["rows"][:1] for ds in names(r)]
        return files + ([Paths.timing()] if any("factor" in c for c in comparisons) else [])
