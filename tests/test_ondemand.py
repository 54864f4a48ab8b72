"""tomogan-generalist: the config's generalist from the workflow's own target, in a cache, reused when there."""

import subprocess
from pathlib import Path

import pytest

from study import ondemand

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "config" / "smoke.yaml"


def test_a_cached_generalist_is_reused_without_running_the_workflow(tmp_path, monkeypatch):
    config_hash, target = ondemand.generalist_target(SMOKE)
    model = tmp_path / config_hash / target
    model.parent.mkdir(parents=True)
    model.write_bytes(b"a model")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("the workflow ran"))
    assert ondemand.generalist(SMOKE, tmp_path) == model


def test_a_missing_generalist_is_planned_with_the_workflows_own_rules(tmp_path, capsys):
    """A dry run plans the training in the cache's folder for this config's hash and writes no model."""
    ondemand.main(["--configfile", str(SMOKE), "--cache", str(tmp_path), "--dry-run", "--cores", "1"])
    path = Path(capsys.readouterr().out.strip())
    config_hash, target = ondemand.generalist_target(SMOKE)
    assert path == tmp_path / config_hash / target and not path.exists()
    log = (tmp_path / config_hash / "generalist.log").read_text()
    assert "rule train:" in log and "wildcards: run=generalist-" in log, log[-2000:]


def test_a_config_without_a_corpus_is_refused_in_one_line(tmp_path, capsys):
    import yaml

    cfg = yaml.safe_load(SMOKE.read_text())
    del cfg["corpus"]
    cfg.pop("scan_matched", None)
    cfg["noise2inverse"]["fine_tune_from"] = "none"
    bad = tmp_path / "bare.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    with pytest.raises(SystemExit) as exc:
        ondemand.main(["--configfile", str(bad), "--cache", str(tmp_path / "c")])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and len(err.splitlines()) == 1 and "trains no generalist" in err, err
    assert not (tmp_path / "c").exists()
