"""Why does TomoGAN trained here lose to a tuned classical denoiser? Train variants of one main run and score them.

Issue 6 asks, where TomoGAN trained on the default config's budget does not beat FBP+TV or FBP+BM3D tuned on
validation slices, to find out why (training length, depth, loss weights, normalisation, crop size). This
script takes one main run of a finished ``make all`` (default: foam at 1/8 of the views), retrains it with
each variant's settings changed, applies each model to the run's test volume exactly as the workflow does
(same FBP input, same evaluated slices, same metrics: :func:`simulate.scores.compare_volumes`), and writes
one table with the workflow's own rows beside them (FBP, the tuned classical methods, the main model)::

    python bench/investigate_tomogan.py --dose sparse-8 \\
        --variant steps-1200:max_iter=1200 --variant select-ssim:select=ssim \\
        --variant patch-128:patch=128 [--configfile config/default.yaml] [--out results/investigation/...]

Trainings resume from their checkpoints when the script is run again. Each row records the variant's
settings, training time, best validation scores and the mean test SSIM/PSNR in the field of view and
inside the object.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.metrics import read_slices, slice_indices  # noqa: E402
from simulate.scores import compare_volumes  # noqa: E402
from simulate.plumbing import write_csv  # noqa: E402
from simulate.reconstruct import central_slices  # noqa: E402
from study import Paths, Plan, load_config, settings_flags  # noqa: E402

def _value(text: str):
    """A settings value from the command line: int, float, bool or string."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_variant(text: str):
    """``name:key=value,key=value`` -> (name, {key: value})."""
    name, _, rest = text.partition(":")
    pairs = [kv.split("=", 1) for kv in rest.split(",") if kv]
    return name, {k: _value(v) for k, v in pairs}


def score(path, reference, wanted) -> dict:
    """Mean test metrics of one reconstruction on the evaluated slices."""
    rows = compare_volumes(read_slices(path, wanted), read_slices(reference, wanted))
    df = pd.DataFrame(rows)
    return {k: float(df[k].mean()) for k in ("ssim", "psnr", "ssim_object", "psnr_object")}


def train_variant(plan: Plan, run, settings: dict, workdir: Path, out_dir: Path, threads: int) -> float:
    """Train one model with the workflow's command and inputs (resumable); returns the wall seconds of this call."""
    inputs = {k: [str(workdir / p) for p in v] for k, v in plan.train_inputs(run.name).items()}
    cmd = [sys.executable, "-m", "tomogan_core.train", "-ld", *inputs["ld"], "-nd", *inputs["nd"], "-o", str(out_dir),
           "-expName", out_dir.name, "--threads", str(threads), "--quiet"]
    if run.val:
        cmd += ["-vld", *inputs["vld"], "-vnd", *inputs["vnd"]]
    cmd += settings_flags(settings)
    t0 = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "train.log", "a") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    return time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configfile", default=str(ROOT / "config" / "default.yaml"))
    p.add_argument("--directory", default=".", help="the finished workflow's working directory (holds results/)")
    p.add_argument("--split", default="foam")
    p.add_argument("--dose", default="sparse-8")
    p.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE,...",
                   help="TrainConfig settings changed from the main run's")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", help="CSV to write (default RESULTS/investigation/SPLIT-DOSE.csv)")
    args = p.parse_args(argv)

    plan = Plan.from_config(load_config(args.configfile))
    workdir = Path(args.directory)
    run = plan.main_run(args.split, args.dose, where="--split/--dose")
    test = run.test[0]
    reference = workdir / plan.reference(test)
    n_eval = plan.config["metrics"]["slices"]
    idx = slice_indices(reference)
    wanted = [int(s) for s in idx[central_slices(len(idx), n_eval)]]
    base = {"test_volume": test, "dose": args.dose, "slices": n_eval}

    rows = []
    for method in ["fbp", *plan.classical, "n2i"]:
        path = workdir / Paths.recon(test, args.dose, method)
        if path.exists():
            rows.append({**base, "variant": f"workflow: {method}", **score(path, reference, wanted)})
    main_model = workdir / Paths.model(run.name)
    enhanced = workdir / Paths.enhanced(test, args.dose, run.name)
    if enhanced.exists():
        rows.append({**base, "variant": "workflow: tomogan", "settings": json.dumps(run.settings),
                     **score(enhanced, reference, wanted), **_model_scores(main_model)})

    from tomogan_core.infer import denoise_file, load_any

    folder = workdir / "results" / "investigation" / f"{args.split}-{args.dose}"
    for text in args.variant:
        name, overrides = parse_variant(text)
        settings = {**run.settings, **overrides}
        out_dir = folder / name
        seconds = train_variant(plan, run, settings, workdir, out_dir, args.threads)
        out = out_dir / "enhanced.h5"
        denoise_file(workdir / Paths.recon(test, args.dose, "fbp"), out, load_any(out_dir / "model.pt"),
                     slices=n_eval, repeat_edges=True, attrs={"run": name})
        rows.append({**base, "variant": name, "settings": json.dumps(overrides), "train_seconds_this_call": seconds,
                     **score(out, reference, wanted), **_model_scores(out_dir / "model.pt")})
        print(pd.DataFrame(rows).drop(columns=["settings"], errors="ignore").round(4).to_string(index=False),
              flush=True)
    out = Path(args.out) if args.out else folder.with_suffix(".csv")
    table = pd.DataFrame(rows)
    write_csv(table, out)
    out.with_suffix(".md").write_text(table.drop(columns=["settings"], errors="ignore").round(4)
                                      .to_markdown(index=False) + "\n")
    print(f"wrote {out}")


def _model_scores(model_path) -> dict:
    """The model file's best validation step and scores, and how long it trained."""
    import torch

    if not Path(model_path).exists():
        return {}
    m = torch.load(model_path, map_location="cpu", weights_only=False)
    log = Path(model_path).with_name("log.csv")
    elapsed = float(pd.read_csv(log)["elapsed_s"].iloc[-1]) if log.exists() else np.nan
    return {"steps": m.get("steps_trained"), "best_step": m.get("step"), "val_ssim": m.get("val_ssim"),
            "val_psnr": m.get("val_psnr"), "train_seconds": elapsed}


if __name__ == "__main__":
    main()
