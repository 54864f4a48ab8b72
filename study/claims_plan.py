"""The claims' part of the plan: each claim of the config as comparisons of per-slice metric rows, the controls
that open every claims table, and the learning-curve groups that say whether the ablation trained long enough.

:class:`ClaimsPlanning` is a part of :class:`study.plan.Plan` (its methods read the plan's runs and evaluated
volumes); :mod:`analysis.claims` judges what :meth:`ClaimsPlanning.claims_spec` hands it.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from study.paths import Paths
from study.runs import CONTROL_METHOD, MAIN_LOSS_SET, Run, training_seeds

__all__ = ["ClaimsPlanning", "BEST_CLASSICAL"]

#: The name a methods claim gives the best tuned classical method at each condition: its side lists the config's
#: classical methods and their tuning files, and :func:`analysis.claims.resolve_comparator` picks one by validation.
BEST_CLASSICAL = "best-classical"


class ClaimsPlanning:
    """The claims' methods of :class:`study.plan.Plan`."""

    def _side(self, label: str, datasets, dose: str, *, method: str, runs: Optional[List[Run]] = None) -> dict:
        """One side of a comparison: what the per-slice metric rows of each of its seeds are selected by, on one
        test volume (a name) or several (a list: the claims resample them)."""
        datasets = datasets if isinstance(datasets, str) else (datasets[0] if len(datasets) == 1 else list(datasets))
        if runs:
            rows = [{"dataset": datasets, "dose": dose, "method": method, "model": r.name, "seed": r.seed} for r in runs]
        else:  # a method trained on nothing of ours: any model name (Noise2Inverse's names its volume)
            rows = [{"dataset": datasets, "dose": dose, "method": method, "model": None}]
        return {"label": label, "rows": rows}

    def _best_classical_side(self, datasets: List[str], dose: str) -> dict:
        """The side of :data:`BEST_CLASSICAL`: its rows select no method yet; ``choose`` lists the config's classical
        methods and, per test volume, each one's tuning file (the one it was applied with), from which the claims
        pick the method with the best validation score."""
        side = self._side(BEST_CLASSICAL, datasets, dose, method=None)
        side["choose"] = {"methods": list(self.classical),
                          "tuning": {ds: {m: self.apply_inputs(ds, dose, m)["tuning"] for m in self.classical}
                                     for ds in datasets}}
        return side

    def _method_side(self, name: str, datasets: List[str], dose: str) -> dict:
        if name == BEST_CLASSICAL:
            return self._best_classical_side(datasets, dose)
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
                            if b in self.classical + ["fbp", "tomogan", "release"] + (["n2i"] if self.n2i else []) + (
                                    [BEST_CLASSICAL] if self.classical else []):
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

    def control_args(self, dataset: str) -> str:
        """Options of ``analysis.controls`` for a volume: the SSIM to lose, twice the margin of the SSIM the claims
        are decided by, calibrated against that metric's reference -- the volume's truth (``--truth``) where the
        primary metric is a ``*_truth`` one and the volume has a truth, else the normal-dose reference."""
        cl = self.config["claims"]
        primary = cl.get("primary", "ssim")
        truth = self.truth_of(dataset) if primary.endswith("_truth") else []
        metric = "ssim_truth" if truth else "ssim"
        return f"--target-drop {2 * cl['margins'][metric]:g}" + (f" --truth {truth[0]}" if truth else "")

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

    def claim_tuning(self, comparisons: Optional[List[dict]] = None) -> List[str]:
        """The tuning files the claims choose a comparator by (a side of :data:`BEST_CLASSICAL`)."""
        comparisons = self.claim_comparisons() if comparisons is None else comparisons
        return sorted({path for c in comparisons for side in ("a", "b") if "choose" in c.get(side, {})
                       for files in c[side]["choose"]["tuning"].values() for path in files.values()})

    def claim_inputs(self) -> List[str]:
        """The per-slice metric files, the tuning files a comparator is chosen by (and the timing table) the claims
        read."""
        comparisons = self.claim_comparisons()
        def names(row):
            return [row["dataset"]] if isinstance(row["dataset"], str) else row["dataset"]

        datasets = sorted({ds for c in comparisons for side in ("a", "b") if side in c
                           for row in c[side]["rows"] for ds in names(row)})
        files = [Paths.metrics(ds, kind) for ds in datasets for kind in ("conventional", "tomogan")]
        files += [Paths.learning_curve(group).replace(".csv", "_summary.csv") for group in self.learning_curve_groups()]
        files += [Paths.metrics(ds, f"control-{r['dose']}") for c in comparisons if c.get("control") == "positive"
                  for r in c["b"]["rows"][:1] for ds in names(r)]
        files += self.claim_tuning(comparisons)
        return files + ([Paths.timing()] if any("factor" in c for c in comparisons) else [])
