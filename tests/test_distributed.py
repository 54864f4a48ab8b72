"""Data-parallel training under torchrun (gloo, 2 CPU processes): it finishes, its model loads in one
process, its loss falls; and the patch sampler's shards split the training slices."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from simulate.io import write_arrays
from tomogan_core.data import PatchSampler, VolumePair

ROOT = Path(__file__).resolve().parents[1]


def test_shards_split_the_patch_start_slices():
    vol = np.arange(12, dtype=np.float32)[:, None, None] * np.ones((1, 16, 16), np.float32)
    pair = VolumePair(vol, vol, "v")
    seen = []
    for rank in range(3):
        sampler = PatchSampler([pair], depth=3, patch=8, rng=np.random.default_rng(rank), augment=False,
                               shard=(rank, 3))
        x, _ = sampler.sample(200)
        starts = set(x[:, 0, 0, 0].astype(int).tolist())  # the first input slice is the start s
        assert all(s % 3 == rank for s in starts)
        seen.append(starts)
    assert set().union(*seen) == set(range(10))  # together, every start of 12 slices at d = 3


def _volumes(tmp_path):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:48, :48] - 23.5
    clean = np.stack([(np.hypot(yy - 3 * np.sin(z), xx) < 16) * 1.0 + (np.hypot(yy, xx - 6) < 5) * 0.5
                      for z in range(16)]).astype(np.float32)
    noisy = clean + rng.normal(0, 0.3, clean.shape).astype(np.float32)
    for name, vol in (("ld", noisy), ("nd", clean)):
        write_arrays(tmp_path / f"{name}.h5", {"/recon": vol, "/slices": np.arange(16, dtype=np.int32)}, {})
    return tmp_path / "ld.h5", tmp_path / "nd.h5"


@pytest.mark.slow
def test_torchrun_two_processes_train_one_model(tmp_path):
    ld, nd = _volumes(tmp_path)
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
           "-m", "tomogan_core.train", "-ld", str(ld), "-nd", str(nd), "-o", str(out), "--device", "cpu",
           "--threads", "1", "--quiet", "--max-iter", "40", "--patch", "32", "--batch", "4", "--itd", "1",
           "--lambda-adv", "0.01", "--lambda-mse", "1", "--lambda-vgg", "0.1", "--vgg-layer", "4",
           "--vgg-weights", "random-init", "--lr-g", "0.002", "--lr-d", "0.001", "--normalization", "zscore",
           "--log-every", "5", "--val-every", "20", "--ckpt-every", "20", "--val-slices", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from tomogan_core.modelfile import load_model

    generator, norm, info = load_model(out / "model.pt")  # a plain single-process model
    assert info["steps_trained"] == 40 and generator.cfg.in_slices == 3
    load_model(out / "checkpoint.pt")  # and so is the checkpoint
    with open(out / "log.csv") as f:
        mse = [float(r["mse"]) for r in csv.DictReader(f) if r["mse"]]
    assert len(mse) == 8  # rank 0 alone wrote the log: one row per 5 steps
    assert np.mean(mse[-2:]) < 0.7 * np.mean(mse[:2])  # the loss falls
