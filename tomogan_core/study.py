"""The study's TomoGAN runs, planned from the config's ``tomogan`` section (used by ``rules/common.smk``).

A *run* is one trained model: a split (which volumes train, validate and test it), a dose condition,
a depth d and a set of loss terms. Its name says all four, e.g. ``foam-sparse-8-d3-all``, so that
the main results and the ablations share a model wherever they ask for the same one.

- ``main``: one run per (split, dose) listed, at the configured depth with every loss term.
- ``ablation``: on one (split, dose), the depths at all loss terms, and the loss sets at the
  configured depth.
- ``cross_facility``: for each (train split, test split) pair and dose, the train split's main run is
  also applied to the test split's test volumes.

Only the config decides what runs; this module only names and lists.

Examples
--------
>>> cfg = {"train": {"depth": 3}, "splits": {"foam": {"train": ["foam1"], "val": ["foam2"], "test": ["foam3"]}},
...        "main": [{"split": "foam", "doses": ["sparse-8"]}],
...        "ablation": {"split": "foam", "dose": "sparse-8", "depths": [1, 3], "loss_sets": ["mse", "all"]}}
>>> sorted(plan_runs(cfg))
['foam-sparse-8-d1-all', 'foam-sparse-8-d3-all', 'foam-sparse-8-d3-mse']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List

__all__ = ["LOSS_SETS", "RELEASE", "Run", "plan_runs", "check_runs", "enhanced_targets", "release_targets"]

# Which loss terms each named set keeps; a dropped term's weight is set to 0.
LOSS_SETS = {
    "mse": ("mse",),
    "mse-adv": ("mse", "adv"),
    "mse-vgg": ("mse", "vgg"),
    "all": ("mse", "adv", "vgg"),
}
_WEIGHT = {"mse": "lambda_mse", "adv": "lambda_adv", "vgg": "lambda_vgg"}
RELEASE = "release"  # the authors' trained generator (TomoGAN.h5), applied as it is


@dataclass
class Run:
    """One model of the study: what trains it and where it is applied."""

    name: str
    split: str
    dose: str
    depth: int
    loss_set: str
    train: List[str]
    val: List[str]  # empty: hold out the last slices of the first training volume
    test: List[str]  # its split's test volumes
    settings: Dict[str, object] = field(default_factory=dict)  # TrainConfig fields for this run
    cross_test: List[str] = field(default_factory=list)  # other facilities' test volumes it is also applied to

    @property
    def applied_to(self) -> List[str]:
        """Every volume the model is applied to: its test volumes, then the cross-facility ones."""
        return self.test + self.cross_test


def _run(cfg: dict, split: str, dose: str, depth: int, loss_set: str) -> Run:
    if split not in cfg["splits"]:
        raise ValueError(f"config 'tomogan': split '{split}' is not in tomogan.splits")
    if loss_set not in LOSS_SETS:
        raise ValueError(f"config 'tomogan': loss set '{loss_set}' is not one of {sorted(LOSS_SETS)}")
    settings = dict(cfg.get("train", {}))
    settings["depth"] = depth
    for term, weight in _WEIGHT.items():
        if term not in LOSS_SETS[loss_set]:
            settings[weight] = 0.0
    settings["seed"] = int(settings.get("seed", 0))
    sp = cfg["splits"][split]
    return Run(name=f"{split}-{dose}-d{depth}-{loss_set}", split=split, dose=dose, depth=depth, loss_set=loss_set,
               train=list(sp["train"]), val=list(sp.get("val", [])), test=list(sp["test"]), settings=settings)


def settings_flags(settings: dict) -> List[str]:
    """TrainConfig settings as the training commands' flags, e.g. ``{"max_iter": 250}`` -> ``["--max-iter", "250"]``.

    >>> settings_flags({"max_iter": 250, "lr_g": 0.0003})
    ['--lr-g', '0.0003', '--max-iter', '250']
    """
    return [a for k, v in sorted(settings.items()) for a in (f"--{k.replace('_', '-')}", str(v))]


def plan_runs(cfg: dict) -> Dict[str, Run]:
    """Every run the ``tomogan`` config section asks for, by name (sorted)."""
    runs: Dict[str, Run] = {}
    depth = int(cfg.get("train", {}).get("depth", 3))

    def add(run: Run) -> Run:
        return runs.setdefault(run.name, run)

    for entry in cfg.get("main", []):
        for dose in entry["doses"]:
            add(_run(cfg, entry["split"], dose, depth, "all"))
    ab = cfg.get("ablation")
    if ab:
        for d in ab.get("depths", []):
            add(_run(cfg, ab["split"], ab["dose"], int(d), "all"))
        for loss_set in ab.get("loss_sets", []):
            add(_run(cfg, ab["split"], ab["dose"], depth, loss_set))
    cross = cfg.get("cross_facility")
    if cross:
        for src, dst in cross["pairs"]:
            for dose in cross["doses"]:
                run = add(_run(cfg, src, dose, depth, "all"))
                for dataset in cfg["splits"][dst]["test"]:
                    if dataset not in run.applied_to:
                        run.cross_test.append(dataset)
    return dict(sorted(runs.items()))


def enhanced_targets(runs: Dict[str, Run]) -> List[str]:
    """Paths of every enhanced volume: ``results/<dataset>/enhanced/<dose>/<run>.h5``."""
    return [f"results/{ds}/enhanced/{run.dose}/{run.name}.h5" for run in runs.values() for ds in run.applied_to]


def release_targets(runs: Dict[str, Run]) -> List[str]:
    """The authors' released generator applied to every (test volume, dose) that a trained run is tested on."""
    pairs = sorted({(ds, run.dose) for run in runs.values() for ds in run.applied_to})
    return [f"results/{ds}/enhanced/{dose}/{RELEASE}.h5" for ds, dose in pairs]


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
