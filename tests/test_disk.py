"""A full disk is told before it happens, and in words when it does (study/disk.py, the workflow's logs)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from study import disk

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "config" / "smoke.yaml"


def test_the_estimate_sizes_volumes_from_the_config_and_models_from_their_parameters():
    from study.config import load_config

    cfg = load_config(SMOKE)
    shp = disk.shapes(cfg)
    slices, det, side, angles = shp["foam1"]
    assert disk.file_bytes("results/foam1/recon/full/fbp.h5", "fbp", cfg, shp) == slices * side * side * 4 + disk.SMALL
    sparse = next(d for d, v in cfg["doses"].items() if v["mode"] == "sparse")
    views = angles // cfg["doses"][sparse]["factor"]
    assert disk.file_bytes(f"results/foam1/proj/{sparse}.h5", "low_dose", cfg, shp) == views * slices * det * 4 + disk.SMALL
    # a run with a critic keeps it, and its moments, in the checkpoint: heavier than one without
    with_critic = disk.file_bytes("results/models/foam-full-d3-all-s0/model.pt", "train", cfg, shp)
    without = disk.file_bytes("results/models/foam-full-d3-mse-s0/model.pt", "train", cfg, shp)
    assert with_critic > without > 5 * 4 * 100_000


def test_a_plan_that_does_not_fit_stops_before_any_job_with_one_line(tmp_path, monkeypatch, capsys):
    need = sum(r["missing"] for r in disk.estimate(SMOKE, directory=tmp_path).values())
    assert need > 0
    monkeypatch.setattr(disk, "free_bytes", lambda folder: need // 2)
    with pytest.raises(SystemExit) as exc:
        disk.main(["check", "--configfile", str(SMOKE), "--directory", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: results/: this plan writes about "), err
    assert f"config: {SMOKE}" in err[0]
    assert not (tmp_path / "results").exists()  # nothing was started
    monkeypatch.setattr(disk, "free_bytes", lambda folder: 4 * need)  # with room it passes and says what it found
    assert disk.main(["check", "--configfile", str(SMOKE), "--directory", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("disk: this plan writes about ")


def test_a_job_out_of_space_says_so_in_its_log_and_in_snakemakes_output(tmp_path):
    """Every write of the job finds no room (its Python sees a full disk): the job fails with its one line, which is
    in its log beside results/ and in Snakemake's own output, and leaves no half-written file."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import shutil\nshutil.disk_usage = lambda _: shutil._ntuple_diskusage(1 << 30, 1 << 30, 0)\n")
    work = tmp_path / "work"
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
               PYTHONPATH=os.pathsep.join(p for p in (str(site), str(ROOT), os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory",
                           str(work), "--cores", "1", "results/foam1/phantom.h5", "--configfile", str(SMOKE)],
                          capture_output=True, text=True, cwd=ROOT, env=env)
    assert proc.returncode != 0
    line = "error: results/foam1/phantom.h5: no space left on device"
    assert line in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-3000:]
    log = work / "logs" / "foam_phantom" / "foam1.log"
    assert line in log.read_text()
    assert not (work / "results" / "foam1" / "phantom.h5").exists()


@pytest.mark.parametrize("target", ["all", "slurm"])
def test_make_checks_the_disk_before_snakemake_runs_or_submits(target):
    env = dict(os.environ, MAKEFLAGS="")
    lines = subprocess.run(["make", "-n", "-W", ".venv/.installed", target], cwd=ROOT, capture_output=True,
                           text=True, env=env).stdout.splitlines()
    check = next(i for i, line in enumerate(lines) if "study.disk check" in line)
    run = next(i for i, line in enumerate(lines) if "snakemake " in line and "--report" not in line)
    assert check < run, lines
    skipped = subprocess.run(["make", "-n", "-W", ".venv/.installed", target, "DISK_CHECK=0"], cwd=ROOT,
                             capture_output=True, text=True, env=env).stdout
    assert "study.disk check" not in skipped
    if target == "slurm":
        assert "--profile profiles/slurm" in lines[run]
