"""The configs validate against the schema, and a wrong key or value stops Snakemake naming it."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "config" / "config.schema.yaml"


def _load(name):
    return yaml.safe_load((ROOT / "config" / name).read_text())


@pytest.mark.parametrize("name", ["default.yaml", "smoke.yaml", "paper.yaml"])
def test_shipped_configs_are_valid(name):
    validate(_load(name), str(SCHEMA))



def test_schema_fills_the_sections_a_config_leaves_out():
    """The workflow reads memory.slab_mb and inference.batch from the config alone: the schema supplies them."""
    cfg = _load("smoke.yaml")
    cfg.pop("memory")
    cfg.pop("inference", None)
    validate(cfg, str(SCHEMA))
    assert cfg["memory"] == {"slab_mb": 512} and cfg["inference"] == {"batch": 4}

@pytest.mark.parametrize("mutate, needle", [
    (lambda c: c["foam"].update(sise=256), "sise"),                          # typo in a key
    (lambda c: c["foam"].update(size="large"), "large"),                     # wrong type
    (lambda c: c["doses"].update({"sparse-3": {"mode": "sparse"}}), "factor"),   # sparse without factor
    (lambda c: c.update(backend="matlab"), "matlab"),
    (lambda c: c["tomogan"]["train"].update(lr=0.1), "lr"),                  # not a training setting
    (lambda c: c["tomogan"]["train"].update(gan_loss="hinge"), "hinge"),
    (lambda c: c["tomogan"]["train"].update(patch=60), "60"),                # not a multiple of 8
    (lambda c: c["tomogan"]["ablation"].update(loss_sets=["adv"]), "adv"),
])
def test_schema_rejects_bad_values(mutate, needle):
    cfg = copy.deepcopy(_load("smoke.yaml"))
    mutate(cfg)
    with pytest.raises(Exception, match=needle):
        validate(cfg, str(SCHEMA))


def _dry_run(tmp_path, cfg):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return subprocess.run([sys.executable, "-m", "snakemake", "-n", "all", "--configfile", str(path),
                           "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT)


def test_snakemake_stops_on_an_unknown_key_and_names_it(tmp_path):
    cfg = _load("smoke.yaml")
    cfg["classical"]["grids"]["sirt_iters"] = [10]
    proc = _dry_run(tmp_path, cfg)
    assert proc.returncode != 0
    assert "sirt_iters" in proc.stdout + proc.stderr


def test_snakemake_stops_on_a_dangling_dataset_reference(tmp_path):
    cfg = _load("smoke.yaml")
    cfg["tomogan"]["splits"]["foam"]["val"] = ["foam9"]
    proc = _dry_run(tmp_path, cfg)
    assert proc.returncode != 0
    assert "tomogan.splits.foam" in proc.stdout + proc.stderr and "foam9" in proc.stdout + proc.stderr


@pytest.mark.parametrize("change, needle", [
    (lambda c: c["scans"]["demo-scan"].update(doses=["photons-7"]), "scans.demo-scan.doses"),
    (lambda c: c["scans"]["demo-scan"].update(split="nope"), "split 'nope' has no main run"),
    (lambda c: c["scans"]["demo-scan"].update(center="middle"), "middle"),
    (lambda c: c["classical"].update(methods=["sirt-tv"]), "sirt-tv starts from the tuned sirt"),
])
def test_snakemake_stops_on_a_bad_scan_or_method_entry(tmp_path, change, needle):
    cfg = _load("smoke.yaml")
    change(cfg)
    proc = _dry_run(tmp_path, cfg)
    assert proc.returncode != 0 and needle in proc.stdout + proc.stderr
