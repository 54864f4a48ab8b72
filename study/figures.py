"""What each figure of the study shows, planned from the study plan (:class:`study.Plan`).

Each figure is a :class:`FigureSpec`: the drawing function of :mod:`analysis.figures` (``kind``), its
arguments as JSON-able data (``spec``), and the files it reads (``inputs``, the rule's inputs). The
workflow passes ``spec`` to ``python -m analysis.figures OUT.png --spec JSON``. The choices live in the
config's ``figures`` section and in the plan's runs; nothing here computes a number, and every path comes
from :class:`study.Paths`.

To find where a figure's numbers come from: its function here names the files; its drawing function in
:mod:`analysis.figures` says what it reads from them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Dict, Iterable, List

from study.paths import Paths
from study.runs import RELEASE

__all__ = ["FigureSpec", "plan_figures"]


@dataclass
class FigureSpec:
    """One figure: ``kind`` (an :mod:`analysis.figures` drawing function), its JSON arguments and input files."""

    kind: str
    spec: dict = field(default_factory=dict)
    inputs: List[str] = field(default_factory=list)

    def uses(self, *paths: str) -> None:
        """Record files the figure reads (the rule's inputs), each once."""
        self.inputs += [p for p in paths if p not in self.inputs]

    @property
    def json(self) -> str:
        """The argument of ``--spec``: ``{"kind": ..., **spec}``."""
        return json.dumps({"kind": self.kind, **self.spec}, sort_keys=True)


def _metrics(datasets: Iterable[str]) -> List[str]:
    """Per-slice metric CSVs of the conventional methods and of TomoGAN on these datasets."""
    return [Paths.metrics(ds, kind) for ds in sorted(set(datasets)) for kind in ("conventional", "tomogan")]


def _grid(rows, metrics, **extra) -> FigureSpec:
    """An image grid: ``rows`` are ``(label, [(title, path), ...])``, the first panel of each the reference."""
    spec = FigureSpec("grid", {"rows": [{"label": label, "panels": [{"title": t, "path": p} for t, p in panels]}
                                        for label, panels in rows], "metrics": metrics, **extra})
    spec.uses(*[p for _, panels in rows for _, p in panels], *metrics)
    return spec


def plan_figures(plan) -> Dict[str, FigureSpec]:
    """Every figure's spec, by name, for a :class:`study.Plan` with runs: one function per kind of figure."""
    figs: Dict[str, FigureSpec] = {}
    for part in (_overview, _ablation, _dose_series, _features, _cross_facility, _curves, _claims_and_timing):
        figs.update(part(plan))
    return figs


def _first(plan, base) -> str:
    """The first seed's run of a base: the one whose images a figure shows."""
    return plan.bases[base][0].name


def _overview(plan) -> Dict[str, FigureSpec]:
    """1. reference, FBP, TomoGAN, the authors' weights, for each (split, dose) listed."""
    rows = []
    for item in plan.config.get("figures", {}).get("overview", []):
        run = plan.main_run(item["split"], item["dose"], where="figures")
        ds, dose = run.test[0], run.dose
        rows.append((f"{ds} {plan.dose_label(dose)}",
                     [("reference", plan.reference(ds)), ("FBP", Paths.recon(ds, dose, "fbp")),
                      ("TomoGAN", Paths.enhanced(ds, dose, run.name)),
                      ("released weights", Paths.enhanced(ds, dose, RELEASE))]))
    return {"fig_overview": _grid(rows, _metrics(r.test[0] for r in plan.runs.values() if r.test))}


def _ablation(plan) -> Dict[str, FigureSpec]:
    """2-3. the ablations on one (split, dose): depth d, loss sets."""
    ab = plan.config["tomogan"].get("ablation")
    if not ab:
        return {}
    base = plan.main_run(ab["split"], ab["dose"], where="tomogan.ablation")
    ds, dose = base.test[0], base.dose
    figs = {}
    for name, members, bar_title in (
            ("fig_depth", [(f"d = {d}", plan.ablation_base(depth=d)) for d in ab.get("depths", [])],
             "mean SSIM against depth d"),
            ("fig_loss_terms", [(ls, plan.ablation_base(loss_set=ls)) for ls in ab.get("loss_sets", [])],
             "mean SSIM per loss set")):
        panels = [("reference", plan.reference(ds)), ("FBP", Paths.recon(ds, dose, "fbp"))]
        panels += [(label, Paths.enhanced(ds, dose, _first(plan, b))) for label, b in members]
        # the images are the first seed's; the bars average every seed, whiskers the range over seeds
        seeds = {label: [Paths.enhanced(ds, dose, run.name) for run in plan.bases[b]] for label, b in members}
        figs[name] = _grid([(f"{ds} {plan.dose_label(dose)}", panels)], _metrics([ds]), bars=bar_title, seeds=seeds)
        figs[name].uses(*[p for paths in seeds.values() for p in paths])
    return figs


def _dose_series(plan) -> Dict[str, FigureSpec]:
    """4-5. the dose series on one split: sparse views, then exposure."""
    series, doses = plan.config.get("figures", {}).get("series_split"), plan.config["doses"]
    figs = {}
    if not series:
        return figs
    for name, mode in (("fig_sparse_views", "sparse"), ("fig_exposure", "photons")):
        levels = [r for r in plan.runs.values()
                  if r.split == series and plan.is_main(r) and doses[r.dose]["mode"] == mode]
        if not levels:
            continue
        key = (lambda r: doses[r.dose]["factor"]) if mode == "sparse" else (lambda r: -doses[r.dose]["incident"])
        ds = levels[0].test[0]
        spec = FigureSpec("doses", {"levels": [], "reference": plan.reference(ds), "metrics": _metrics([ds])})
        for run in sorted(levels, key=key):
            lds = run.test[0]
            level = {"label": plan.dose_label(run.dose), "conventional": Paths.recon(lds, run.dose, "fbp"),
                     "tomogan": Paths.enhanced(lds, run.dose, run.name)}
            spec.spec["levels"].append(level)
            spec.uses(level["conventional"], level["tomogan"])
        spec.uses(spec.spec["reference"], *spec.spec["metrics"])
        figs[name] = spec
    return figs


def _features(plan) -> Dict[str, FigureSpec]:
    """6. feature values: each shale dataset, enhanced by a model of the same facility that never saw it."""
    feat = plan.config.get("figures", {}).get("features")
    if not feat:
        return {}
    spec = FigureSpec("features", {"panels": []})
    facility = {n: d.get("facility") for n, d in plan.config["datasets"].items()}
    for ds in plan.shale:
        own = [r for r in plan.runs.values() if r.dose == feat["dose"] and ds in r.applied_to
               and r.loss_set == "all" and facility.get(r.train[0]) == facility[ds]]
        if own:
            run = own[0]
            panel = {"label": f"{ds} (model {run.split})", "conventional": Paths.recon(ds, run.dose, "fbp"),
                     "tomogan": Paths.enhanced(ds, run.dose, run.name), "reference": plan.reference(ds)}
            spec.spec["panels"].append(panel)
            spec.uses(panel["conventional"], panel["tomogan"], panel["reference"])
    return {"fig_feature_values": spec} if spec.inputs else {}


def _cross_facility(plan) -> Dict[str, FigureSpec]:
    """8. cross-facility: each test volume scored by the model of its own facility and by the other's."""
    tg = plan.config["tomogan"]
    cross = tg.get("cross_facility")
    if not cross:
        return {}
    groups, datasets = [], set()
    for src, dst in cross["pairs"]:
        for dose in cross["doses"]:
            for ds in tg["splits"][dst]["test"]:
                datasets.add(ds)
                groups.append({"label": f"{ds}: FBP", "where": {"dataset": ds, "dose": dose, "method": "fbp"}})
                for split in (dst, src):
                    run = plan.main_run(split, dose, where="tomogan.cross_facility")
                    facility = "same facility" if split == dst else "other facility"
                    groups.append({"label": f"{ds}: {split} ({facility})",
                                   "where": {"dataset": ds, "dose": dose, "model": run.name}})
    spec = FigureSpec("bars", {"groups": groups, "metrics": _metrics(datasets)})
    spec.uses(*spec.spec["metrics"])
    return {"fig_cross_facility": spec}


def _curves(plan) -> Dict[str, FigureSpec]:
    """9. training curves of every model (one line per run base, the band spanning its seeds); 9b. the learning
    curves of the ablation's groups (loss sets, depths): were they trained long enough to tell?"""
    spec = FigureSpec("curves", {"logs": [{"label": base, "paths": [Paths.train_log(r.name) for r in seeds]}
                                          for base, seeds in plan.bases.items()]})
    spec.uses(*[path for log in spec.spec["logs"] for path in log["paths"]])
    figs = {"fig_training_curves": spec}
    groups = plan.learning_curve_groups()
    if groups:
        bases, budget = {}, False
        for runs_ in groups.values():
            for r in runs_:
                logs = bases.setdefault(r.base, [])  # a run in both groups (d3, all terms) is drawn once
                if Paths.train_log(r.name) not in logs:
                    logs.append(Paths.train_log(r.name))
                budget = budget or bool(r.settings.get("cpu_budget_s"))
        axis = "CPU-seconds (compute-matched)" if budget else "steps"
        spec = FigureSpec("curves", {"logs": [{"label": b, "paths": p} for b, p in bases.items()],
                                     "title": f"Ablation: validation against training {axis} (band: seeds)"})
        spec.uses(*[p for paths in bases.values() for p in paths])
        figs["fig_learning_curve"] = spec
    return figs


def _claims_and_timing(plan) -> Dict[str, FigureSpec]:
    """10. the claims (each comparison's effect with its interval, coloured by verdict); 7. timing (the CSVs of
    rules timing and inference_speed)."""
    figs = {}
    if plan.claim_comparisons():
        spec = FigureSpec("claims", {"claims": Paths.claims(), "caveat": plan.config["claims"].get("caveat", "")})
        spec.uses(Paths.claims())
        figs["fig_claims"] = spec
    spec = FigureSpec("timing", {"timing": Paths.timing(), "speed": Paths.speed()})
    spec.uses(Paths.timing(), Paths.speed())
    figs["fig_timing"] = spec
    return figs
