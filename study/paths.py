"""Where everything lives: the one table of path patterns (:class:`Paths`) and each job's log and benchmark name.

Every artefact's path comes from :attr:`Paths.PATTERNS`, one function per artefact: the rules, the plan, the figures
and the tools ask here, so that a path is written once.

>>> Paths.recon("foam3", "sparse-8", "fbp")
'results/foam3/recon/sparse-8/fbp.h5'
>>> Paths.recon(method="fbp")  # a field left out stays a Snakemake wildcard
'results/{dataset}/recon/{dose}/fbp.h5'
"""

from __future__ import annotations

import string
from typing import Dict, List, Optional

__all__ = ["Paths", "JOBS", "LOGS", "BENCHMARKS", "SIMULATION_JOBS", "job_fields", "job_name", "benchmark_glob",
           "benchmark_fields"]


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
        "acquired": "results/{dataset}/acquired/{name}",
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

#: Each rule's job name, from its wildcards: the job's log is ``logs/<job>.log`` and its benchmark
#: (Snakemake's: wall seconds, memory) ``benchmarks/<job>.tsv``, both beside ``results/`` (the catalog's layout). The rules take both from here
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
    "scan_acquired": "scan_acquired/{dataset}",
    "generalist_table": "generalist_table",
    "figure": "figure/{figure}",
    "timing": "timing",
    "inference_speed": "inference_speed",
}
LOGS = "logs"  # beside results/, not in it: a full results disk leaves every job's error readable
#: The jobs that make a scan's matched volumes (their cost is the "simulation" of ``Plan.route_cost_spec``)
SIMULATION_JOBS = ("matched_phantom", "project_matched", "low_dose", "fbp")
BENCHMARKS = "benchmarks"  # the folder of every job's benchmark (beside results/, as the logs)


def job_fields(rule: str) -> List[str]:
    """The wildcards a rule's job name is made of, in order: ``job_fields("infer")`` -> ``['dataset', 'dose',
    'run']``; an unknown rule is a KeyError naming :data:`JOBS`."""
    if rule not in JOBS:
        raise KeyError(f"no job '{rule}' in study.paths.JOBS; add the rule's job name there")
    return _fields(JOBS[rule])


def job_name(rule: str, **fields) -> str:
    """A rule's job name with the given fields filled, the others left ``{wildcards}``:
    ``job_name("low_dose", dataset="foam3")`` -> ``'low_dose/foam3/{dose}'``."""
    unknown = set(fields) - set(job_fields(rule))
    if unknown:
        raise TypeError(f"job '{rule}' has no field {sorted(unknown)}; its name is {JOBS[rule]}")
    return _fill(JOBS[rule], **fields)


def _log(rule: str, **fields) -> str:
    """A rule's log file, ``logs/<job>.log`` (:data:`JOBS`); fields left out stay wildcards."""
    return f"{LOGS}/{job_name(rule, **fields)}.log"


def _benchmark(rule: str, **fields) -> str:
    """A rule's benchmark file, ``benchmarks/<job>.tsv`` (:data:`JOBS`); fields left out stay wildcards."""
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


