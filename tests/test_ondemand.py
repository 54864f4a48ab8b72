"""tomogan-model: the config's generalist, and a scan's own matched model, from the workflow's own targets in a
cache, reused when there."""

import subprocess
from pathlib import Path

import pytest

from study import ondemand

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "config" / "smoke.yaml"
DEMO = ROOT / "tests" / "data" / "scan_demo.h5"


def test_a_cached_generalist_is_reused_without_running_the_workflow(tmp_path, monkeypatch):
    config_hash, models = ondemand.model_target(SMOKE)
    path = tmp_path / config_hash / models["generalist"]
    path.parent.mkdir(parents=True)
    path.write_bytes(b"a model")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("the workflow ran"))
    assert ondemand.model("generalist", SMOKE, tmp_path) == path


def test_a_missing_generalist_is_planned_with_the_workflows_own_rules(tmp_path, capsys):
    """A dry run plans the training in the cache's folder for this config's hash and writes no model."""
    ondemand.main(["generalist", "--configfile", str(SMOKE), "--cache", str(tmp_path), "--dry-run", "--cores", "1"])
    path = Path(capsys.readouterr().out.strip())
    config_hash, models = ondemand.model_target(SMOKE)
    assert path == tmp_path / config_hash / models["generalist"] and not path.exists()
    log = (tmp_path / config_hash / "generalist.log").read_text()
    assert "rule train:" in log and "wildcards: run=generalist-" in log, log[-2000:]


def test_a_scans_matched_model_is_planned_at_its_own_acquisition(tmp_path, capsys):
    """For a scan, the config gets that scan as acquired, and the plan trains its as-acquired matched run from the
    generalist, on volumes simulated from the scan's own prepared projections."""
    ondemand.main(["matched", str(DEMO), "--rows", "0", "2", "--configfile", str(SMOKE), "--cache", str(tmp_path),
                   "--dry-run", "--cores", "1"])
    path = Path(capsys.readouterr().out.strip())
    name = ondemand.scan_name(DEMO, rows=[0, 2])
    assert path.name == "model.pt" and f"matched-{name}-as-acquired" in str(path) and not path.exists()
    folder = path.parents[3]
    assert folder == tmp_path / ondemand.model_target(SMOKE)[0]  # the generalist's folder: shared by every scan
    log = (folder / f"matched-{name}.log").read_text()
    assert f"wildcards: run=matched-{name}-as-acquired" in log and "rule prepare_scan:" in log, log[-2000:]
    assert "rule train:" in log and "wildcards: run=generalist-" in log  # the generalist first
    assert str(DEMO.resolve()) in (folder / f"config-{name}.yaml").read_text()
    assert ondemand.scan_name(DEMO) != name  # another way of reading it: outputs of its own


@pytest.mark.parametrize("case, needle", [("no-corpus", "trains no generalist model"),
                                          ("missing-scan", "no such file")])
def test_what_cannot_be_made_is_refused_in_one_line(tmp_path, capsys, case, needle):
    import yaml

    cfg = yaml.safe_load(SMOKE.read_text())
    del cfg["corpus"]
    cfg.pop("scan_matched", None)
    cfg["noise2inverse"]["fine_tune_from"] = "none"
    bare = tmp_path / "bare.yaml"
    bare.write_text(yaml.safe_dump(cfg))
    argv = (["generalist", "--configfile", str(bare)] if case == "no-corpus" else
            ["matched", str(tmp_path / "nothing.h5"), "--configfile", str(SMOKE)])
    with pytest.raises(SystemExit) as exc:
        ondemand.main([*argv, "--cache", str(tmp_path / "c")])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and len(err.splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "c").exists()
