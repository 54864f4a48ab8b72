"""What each figure of the study shows, planned from the config (used by ``rules/report.smk``).

Each function returns a :class:`FigureSpec`: the files the figure reads (the rule's inputs) and the
arguments of ``python -m analysis.figures`` that lay them out. The choices live in the config's
``figures`` section and in the TomoGAN runs (:mod:`tomogan_core.study`); nothing here computes a number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List

from tomogan_core.study import RELEASE, Run

__all__ = ["FigureSpec", "plan_figures"]


@dataclass
class FigureSpec:
    kind: str  # the analysis.figures sub-command
    inputs: List[str] = field(default_factory=list)
    args: List[str] = field(default_factory=list)

    def add(self, flag: str, value: str, *paths: str) -> None:
        """One ``flag 'value'`` pair; ``paths`` are the files it names (the rule's inputs)."""
        if "'" in value:
            raise ValueError(f"figure argument {value!r} must not hold a single quote")
        self.args += [flag, f"'{value}'"]
        self.inputs += [p for p in paths if p not in self.inputs]

    def add_files(self, flag: str, paths) -> None:
        """A flag followed by several files, all of them inputs."""
        paths = list(paths)
        self.args += [flag, *paths]
        self.inputs += [p for p in paths if p not in self.inputs]

    @property
    def command(self) -> str:
        return " ".join(self.args)


def _recon(ds, dose, method):
    return f"results/{ds}/recon/{dose}/{method}.h5"


def _enh(ds, dose, run):
    return f"results/{ds}/enhanced/{dose}/{run}.h5"


def _metrics(datasets):
    """Per-slice metric CSVs of the conventional methods and of TomoGAN on these datasets."""
    return [f"results/metrics/{ds}/{kind}.csv" for ds in sorted(set(datasets)) for kind in ("conventional", "tomogan")]


def _dose_label(dose_cfg: dict) -> str:
    if dose_cfg["mode"] == "sparse":
        return f"1/{dose_cfg['factor']} views"
    return f"{dose_cfg['incident']:g} photons"


def plan_figures(config: dict, runs: Dict[str, Run], reference) -> Dict[str, FigureSpec]:
    """Every figure's spec, by name. ``reference(dataset)`` gives the normal-dose reconstruction's path."""
    figs: Dict[str, FigureSpec] = {}
    tg = config["tomogan"]
    fcfg = config.get("figures", {})
    depth = int(tg.get("train", {}).get("depth", 3))
    doses = config["doses"]

    def main_run(split, dose):
        name = f"{split}-{dose}-d{depth}-all"
        if name not in runs:
            raise ValueError(f"config 'figures': no trained run {name} (add it to tomogan.main)")
        return runs[name]

    # 1. overview: reference, FBP, TomoGAN, the authors' weights, for each (split, dose) listed
    spec = FigureSpec("grid")
    for item in fcfg.get("overview", []):
        run = main_run(item["split"], item["dose"])
        ds, dose = run.test[0], run.dose
        panels = [("reference", reference(ds)), ("FBP", _recon(ds, dose, "fbp")),
                  ("TomoGAN", _enh(ds, dose, run.name)), ("released weights", _enh(ds, dose, RELEASE))]
        spec.add("--row", f"{ds} {_dose_label(doses[dose])}=" + ";".join(f"{t}:{p}" for t, p in panels),
                 *[p for _, p in panels])
    spec.add_files("--metrics", _metrics(r.test[0] for r in runs.values()))
    figs["fig_overview"] = spec

    # 2-3. ablations on one (split, dose): depth d, loss sets
    ab = tg.get("ablation")
    if ab:
        base = main_run(ab["split"], ab["dose"])
        ds, dose = base.test[0], base.dose
        for name, members, bar_title in (
                ("fig_depth", [(f"d = {d}", f"{ab['split']}-{dose}-d{d}-all") for d in ab.get("depths", [])],
                 "SSIM against depth d"),
                ("fig_loss_terms", [(ls, f"{ab['split']}-{dose}-d{depth}-{ls}") for ls in ab.get("loss_sets", [])],
                 "SSIM per loss set")):
            panels = [("reference", reference(ds)), ("FBP", _recon(ds, dose, "fbp"))]
            panels += [(label, _enh(ds, dose, run)) for label, run in members]
            spec = FigureSpec("grid")
            spec.add("--row", f"{ds} {_dose_label(doses[dose])}=" + ";".join(f"{t}:{p}" for t, p in panels),
                     *[p for _, p in panels])
            spec.add("--bars-title", bar_title)
            spec.add_files("--metrics", _metrics([ds]))
            figs[name] = spec

    # 4-5. dose series on one split: sparse views, then exposure
    series = fcfg.get("series_split")
    if series:
        for name, mode in (("fig_sparse_views", "sparse"), ("fig_exposure", "photons")):
            spec = FigureSpec("doses")
            levels = [r for r in runs.values() if r.split == series and r.loss_set == "all" and r.depth == depth
                      and doses[r.dose]["mode"] == mode]
            key = (lambda r: doses[r.dose]["factor"]) if mode == "sparse" else (lambda r: -doses[r.dose]["incident"])
            for run in sorted(levels, key=key):
                ds = run.test[0]
                spec.add("--level", f"{_dose_label(doses[run.dose])}={_recon(ds, run.dose, 'fbp')},"
                                    f"{_enh(ds, run.dose, run.name)}",
                         _recon(ds, run.dose, "fbp"), _enh(ds, run.dose, run.name))
            if levels:
                ds = levels[0].test[0]
                spec.add("--reference", reference(ds), reference(ds))
                spec.add_files("--metrics", _metrics([ds]))
                figs[name] = spec

    # 6. feature values: each shale dataset, enhanced by a model of the same facility that never saw it
    feat = fcfg.get("features")
    if feat:
        spec = FigureSpec("features")
        facility = {n: d.get("facility") for n, d in config["datasets"].items()}
        for ds in sorted(n for n, d in config["datasets"].items() if d["kind"] == "shale"):
            own = [r for r in runs.values() if r.dose == feat["dose"] and ds in r.applied_to and r.loss_set == "all"
                   and facility.get(r.train[0]) == facility[ds]]
            if own:
                run = own[0]
                paths = (_recon(ds, run.dose, "fbp"), _enh(ds, run.dose, run.name), reference(ds))
                spec.add("--panel", f"{ds} (model {run.split})=" + ",".join(paths), *paths)
        if spec.inputs:
            figs["fig_feature_values"] = spec

    # 8. cross-facility: each test volume scored by the model of its own facility and by the other's
    cross = tg.get("cross_facility")
    if cross:
        spec = FigureSpec("bars")
        datasets = set()
        for src, dst in cross["pairs"]:
            for dose in cross["doses"]:
                for ds in tg["splits"][dst]["test"]:
                    datasets.add(ds)
                    spec.add("--group", f"{ds}: FBP=dataset:{ds};dose:{dose};method:fbp")
                    for split in (dst, src):
                        run = main_run(split, dose)
                        where = "same facility" if split == dst else "other facility"
                        spec.add("--group", f"{ds}: {split} ({where})=dataset:{ds};dose:{dose};model:{run.name}")
        spec.add_files("--metrics", _metrics(datasets))
        figs["fig_cross_facility"] = spec

    # 9. training curves of every model
    spec = FigureSpec("curves")
    for run in runs.values():
        spec.add("--log", f"{run.name}=results/models/{run.name}/log.csv", f"results/models/{run.name}/log.csv")
    figs["fig_training_curves"] = spec

    # 7. timing (the CSVs come from rules timing and inference_speed)
    spec = FigureSpec("timing")
    spec.add_files("--timing", ["results/timing/timing.csv"])
    spec.add_files("--speed", ["results/bench/inference_speed.csv"])
    figs["fig_timing"] = spec
    return figs
