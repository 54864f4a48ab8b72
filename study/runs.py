"""The TomoGAN runs: one trained model each, named from what it is (:func:`run_name`), planned from the config.

A *run* is one trained model: a split (which whole volumes train, validate and test it), a dose, a depth d and a set
of loss terms, with its seed and settings. The main results and the ablations share a model wherever they ask for
the same one; the corpus (the generalist and leave-one-family-out models) and each scan's matched models are runs
too.

>>> cfg = {"train": {"depth": 3}, "splits": {"foam": {"train": ["foam1"], "val": ["foam2"], "test": ["foam3"]}},
...        "main": [{"split": "foam", "doses": ["sparse-8"]}],
...        "ablation": {"split": "foam", "dose": "sparse-8", "depths": [1, 3], "loss_sets": ["mse", "all"]}}
>>> sorted(plan_runs(cfg))
['foam-sparse-8-d1-all', 'foam-sparse-8-d3-all', 'foam-sparse-8-d3-mse']
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from study.paths import Paths

__all__ = ["ABLATION_TAG", "LOSS_SETS", "MAIN_LOSS_SET", "CONTROL_METHOD", "RELEASE", "PRIORITY_TRAIN",
           "PRIORITY_N2I", "Run", "run_name", "plan_runs", "training_seeds", "settings_flags", "CORPUS_ROLES",
           "GENERALIST", "corpus_dataset", "lofo_split", "lofo_families", "expand_corpus", "corpus_runs", "MATCHED_ROLES",
           "AS_ACQUIRED",
           "matched_dataset", "matched_split", "expand_scan_matched", "matched_runs", "enhanced_targets",
           "release_targets", "check_runs"]

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


def lofo_families(corpus: dict) -> List[str]:
    """The families each left out of one model's training (``corpus.lofo``: true, every family; false, none; or a
    list of them). A family not in ``corpus.families`` is a ValueError."""
    lofo = corpus.get("lofo", True)
    families = list(corpus["families"])
    if isinstance(lofo, bool):
        return families if lofo else []
    unknown = [f for f in lofo if f not in families]
    if unknown:
        raise ValueError(f"config 'corpus.lofo': {', '.join(unknown)} not in corpus.families")
    return [f for f in families if f in lofo]


def expand_corpus(config: dict) -> None:
    """Add the ``corpus`` section's volumes to ``config["datasets"]`` and its splits to ``tomogan.splits``, in place.

    Volumes ``corpus-<family>-<role>`` (kind ``family``; seed ``corpus.seed + 10 * family index + role index``);
    splits ``generalist`` (every family's training, validation and test volume) and, for each of
    :func:`lofo_families`, ``lofo-<family>`` (the others' training and validation volumes; that family's test volume). Running it again
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
    for family in lofo_families(corpus):
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
    splits = [GENERALIST] + [lofo_split(f) for f in lofo_families(corpus)]
    runs = {}
    for split in splits:
        for dose in corpus["doses"]:
            for seed in seeds:
                run = _run(cfg, split, dose, int(cfg["train"]["depth"]), MAIN_LOSS_SET, seed, len(seeds) > 1)
                run.group = "corpus"
                runs[run.name] = run
    return runs


MATCHED_ROLES = ("train", "val")  # one volume of each family per role: matched-<scan>-<family>-<role>
#: the dose of a scan's own acquisition, for the volumes simulated at it: every view the scan has, with Poisson noise
#: at its photons per pixel (a matched volume's low-dose variants carry that noise, simulate.acquire.low_dose)
AS_ACQUIRED = "as-acquired"
AS_ACQUIRED_DOSE = {"mode": "sparse", "factor": 1}


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
    if any(spec.get("acquired") for spec in scans.values()):
        if config["doses"].setdefault(AS_ACQUIRED, dict(AS_ACQUIRED_DOSE)) != AS_ACQUIRED_DOSE:
            raise ValueError(f"config 'doses.{AS_ACQUIRED}': the name is the dose of a scan as acquired; choose "
                             "another")


def matched_runs(config: dict, corpus: Dict[str, Run]) -> Dict[str, Run]:
    """Each scan's matched runs (group ``matched``), one per scan dose: the main loss terms and depth, the settings
    ``tomogan.train`` changed by ``corpus.train`` then ``scan_matched.train``, the corpus's first seed; with
    ``init: generalist``, fine-tuned from the generalist of ``corpus`` (the corpus's runs) at that dose, else at
    the corpus's first dose. A scan run as acquired (``acquired: true``) also gets one at :data:`AS_ACQUIRED`,
    applied to nothing in the study: ``tomogan-scan`` ranks it on the scan as measured. Needs
    :func:`expand_scan_matched` first."""
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
        for dose in list(spec["doses"]) + ([AS_ACQUIRED] if spec.get("acquired") else []):
            run = _run(cfg, matched_split(scan), dose, int(train["depth"]), MAIN_LOSS_SET, seed, False)
            run.group = "matched"
            if dose == AS_ACQUIRED:
                run.test = []  # the scan as measured has no reference to score it against
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


