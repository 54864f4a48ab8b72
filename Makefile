# Two entry points for a fresh machine:
#   make all    -- set up .venv if missing, then run the whole study on config/default.yaml
#   make test   -- set up the same .venv, then run the tests (including the smoke workflow)
# With your own environment: `pip install -e .[test]`, then `snakemake --cores 8 all` and `pytest`.

PYTHON  ?= python3
VENV    ?= .venv
CORES   ?= $(shell nproc 2>/dev/null || echo 2)
CONFIG  ?= config/default.yaml
DISK_CHECK ?= 1   # 0: start without comparing what the plan writes with the free space where results/ lives
# PyTorch from the package index by default (on Linux its wheel brings CUDA's libraries, a few GB). CPU only:
# make TORCH_INDEX=--index-url=https://download.pytorch.org/whl/cpu; a given CUDA: .../whl/cu126
TORCH_SPEC  ?= torch==2.13.0
TORCH_INDEX ?=

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Snakemake's shell steps call `python -m ...`: put the venv first so that they run in it.
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: all slurm test venv dry-run report readme clean-results

# after a crash, `make all` again: a killed run's lock is removed (a running one is reported), incomplete jobs rerun
all: $(STAMP)
	$(BIN)/python -m simulate.plumbing clear-stale-lock .
	$(if $(filter 0,$(DISK_CHECK)),,$(BIN)/python -m study.disk check --configfile $(CONFIG))
	$(BIN)/snakemake --cores $(CORES) --rerun-incomplete all --configfile $(CONFIG)
	$(BIN)/snakemake --report report.html --configfile $(CONFIG)

# the study on a Slurm cluster (profiles/slurm, docs/cluster.md): what the plan writes is printed and checked against
# the free space under results/ before any job is submitted
slurm: $(STAMP)
	$(BIN)/python -m simulate.plumbing clear-stale-lock .
	$(if $(filter 0,$(DISK_CHECK)),,$(BIN)/python -m study.disk check --configfile $(CONFIG))
	$(BIN)/snakemake --profile profiles/slurm all --configfile $(CONFIG)

test: $(STAMP)
	$(BIN)/python -m pytest

report: $(STAMP)
	$(BIN)/snakemake --report report.html --configfile $(CONFIG)

# rebuild docs/results.md: the main, inference-speed and timing tables of a run on $(CONFIG) (made now if
# missing or out of date), pasted between the page's generated-block markers with their config hash; the
# README's findings; docs/performance.md's cost per rule (from the run's benchmark files); docs/methods.md's
# check of tomogan-scan where the answer is known (with the config's generalist, each file's own matched model
# and Noise2Inverse among the candidates; tomogan-model makes the models in results/cache)
readme: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) results/tables/main.md results/bench/inference_speed.csv \
		results/timing/timing.csv results/claims/claims.csv results/crossval/check.csv \
		results/generalist/lofo.csv --configfile $(CONFIG)
	$(BIN)/python -m study.pages docs/results.md --configfile $(CONFIG)
	$(BIN)/python -m study.pages README.md --blocks findings --configfile $(CONFIG)
	$(BIN)/python bench/run_cost.py
	$(BIN)/python -m study.pages docs/performance.md --blocks cost --configfile $(CONFIG)
	$(BIN)/python bench/scan_truth.py --generalist $(CONFIG) --matched --n2i --cache results/cache
	$(BIN)/python -m study.pages docs/methods.md --blocks scan_truth --configfile $(CONFIG)

dry-run: $(STAMP)
	$(BIN)/snakemake -n all --configfile $(CONFIG)

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=23"
	$(BIN)/python -m pip install --quiet $(TORCH_INDEX) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

clean-results:
	rm -rf results logs benchmarks .snakemake
