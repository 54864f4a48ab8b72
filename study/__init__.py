"""The study as a workflow: its plan, paths, runs and config (``rules/`` asks them for every job), the figure specs,
and the pages built from a finished run.

Modules, bottom up: :mod:`study.paths` (where everything lives), :mod:`study.config` (the checked config),
:mod:`study.runs` (the trained models), :mod:`study.plan` (:class:`Plan`, with its claims' and scans' parts in
:mod:`study.claims_plan` and :mod:`study.scan_plan`), :mod:`study.figures` (what each figure shows) and
:mod:`study.pages` (the generated blocks of the README and docs). It imports :mod:`simulate`,
:mod:`tomogan_core` and :mod:`analysis`; none of them imports it.
"""

from study.config import SCHEMA, config_hash, load_config
from study.paths import (BENCHMARKS, JOBS, LOGS, SIMULATION_JOBS, Paths, benchmark_fields, benchmark_glob,
                         job_fields, job_name)
from study.plan import Plan
from study.runs import (ABLATION_TAG, CONTROL_METHOD, GENERALIST, LOSS_SETS, MAIN_LOSS_SET, PRIORITY_N2I,
                        PRIORITY_TRAIN, RELEASE, Run, check_runs, corpus_dataset, corpus_runs, enhanced_targets,
                        expand_corpus, expand_scan_matched, lofo_split, matched_dataset, matched_runs, matched_split,
                        plan_runs, release_targets, run_name, settings_flags, training_seeds)

__all__ = ["SCHEMA", "config_hash", "load_config", "BENCHMARKS", "JOBS", "LOGS", "SIMULATION_JOBS", "Paths",
           "benchmark_fields", "benchmark_glob", "job_fields", "job_name", "Plan", "ABLATION_TAG", "CONTROL_METHOD",
           "GENERALIST", "LOSS_SETS", "MAIN_LOSS_SET", "PRIORITY_N2I", "PRIORITY_TRAIN", "RELEASE", "Run",
           "check_runs", "corpus_dataset", "corpus_runs", "enhanced_targets", "expand_corpus", "expand_scan_matched",
           "lofo_split", "matched_dataset", "matched_runs", "matched_split", "plan_runs", "release_targets",
           "run_name", "settings_flags", "training_seeds"]
