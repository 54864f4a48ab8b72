"""Estimated cost of running a config's study on a cluster: jobs, GPU and CPU hours, disk.

Computed from the config and measurements, not typed:

* **jobs** per rule: Snakemake's own dry-run of the config through ``profiles/slurm`` (the DAG it would submit);
* **requested hours**: each job's ``cpus`` / ``gpu`` times its ``runtime`` from the config's ``resources:`` section,
  i.e. what the queue is asked for (an upper bound: a job ends when its work is done);
* **GPU hours of the work**: the floating-point operations of one training step (generator, critic with its
  gradient penalty -- its double backward approximated by two critic passes --, VGG19 perceptual term, as the
  run's settings say) and of one slice's inference, counted by
  PyTorch's ``FlopCounterMode`` on the meta device (nothing is computed), times the steps and slices of the DAG,
  converted to time with the throughput the paper's own V100 timing implies (TomoGAN, 30 ms for a 1024² slice:
  ``--gpu-ms-per-1024``) -- so the figure is for V100-class GPUs at the paper's efficiency;
* **CPU hours of the same work on this project's machine** (2 cores): the same FLOPs at the throughput that
  ``bench/bench_tomogan.py`` measured here for a full training step (``results/bench/tomogan.csv``);
* **disk**: every output file of the DAG (Snakemake's ``--summary``) sized from the config's shapes
  (:mod:`study.disk`, which ``make all`` checks against the free space before it starts).

``python bench/estimate_cost.py --configfile config/paper.yaml [--out results/bench/cost.csv] [--page docs/cluster.md]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulate.plumbing import InputError, cli, write_csv, write_text  # noqa: E402
from study.disk import dag_outputs, file_bytes, run_snakemake, shapes  # noqa: E402

PAPER_MS_PER_1024 = 30.0  # TomoGAN inference of one 1024^2 slice on a V100 (the paper's timing)


def job_counts(configfile) -> dict:
    """Jobs per rule of the config's whole study, from Snakemake's dry-run through the Slurm profile."""
    out = run_snakemake("-n", "--profile", str(ROOT / "profiles" / "slurm"), "--cores", "64", "all",
                        configfile=configfile)
    stats = out[out.index("Job stats"):].splitlines()[3:]
    counts = {}
    for line in stats:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        if parts[0] != "total":
            counts[parts[0]] = int(parts[1])
    return counts


# ----------------------------------------------------------------------------- floating-point operations

def step_flops(settings: dict) -> float:
    """FLOPs of one training step with these TrainConfig settings (counted on the meta device)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from tomogan_core.losses import critic_loss_wgan, generator_loss
    from tomogan_core.model import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
    from tomogan_core.train import TrainConfig
    from tomogan_core.vgg import VGGFeatures

    cfg = TrainConfig(**{k: v for k, v in settings.items() if k in TrainConfig.__dataclass_fields__})
    with torch.device("meta"):
        gen = Generator(GeneratorConfig(in_slices=cfg.depth, upsample=cfg.upsample))
        critic = Discriminator(DiscriminatorConfig(patch_size=cfg.patch))
        vgg = VGGFeatures(layer_index=cfg.vgg_layer) if cfg.lambda_vgg > 0 else None
        x = torch.randn(cfg.batch, cfg.depth, cfg.patch, cfg.patch)
        y = torch.randn(cfg.batch, 1, cfg.patch, cfg.patch)
    with FlopCounterMode(display=False) as counter:
        for _ in range(cfg.itg):
            loss, _ = generator_loss(gen(x), y, lambda_adv=cfg.lambda_adv, lambda_mse=cfg.lambda_mse,
                                     lambda_vgg=cfg.lambda_vgg, critic=critic if cfg.lambda_adv > 0 else None,
                                     vgg=vgg, perceptual_grad=cfg.vgg_grad)
            loss.backward()
        if cfg.lambda_adv > 0:
            for _ in range(cfg.itd):
                with torch.no_grad():
                    fake = gen(x)
                critic_loss_wgan(critic(y), critic(fake)).backward()
                # the gradient penalty's double backward cannot run under the counter's module hooks: it is
                # counted as twice a forward and backward pass of the critic on the interpolates
                x_hat = fake.clone().requires_grad_(True)
                critic(x_hat).sum().backward()
                critic(x_hat).sum().backward()
    return float(counter.get_total_flops())


def slice_flops(depth: int, size: int) -> float:
    """FLOPs of the generator on one ``size`` x ``size`` slice with ``depth`` input slices."""
    from tomogan_core.model import generator_flops

    return generator_flops(depth, size)


# ----------------------------------------------------------------------------- the estimate

def cpu_flops_per_s(bench_csv) -> tuple[float, str]:
    """FLOP/s of a full training step (every loss term) as ``bench/bench_tomogan.py`` measured it, largest patch,
    and the CPU it was measured on."""
    df = pd.read_csv(bench_csv)
    rows = df[(df["task"] == "train step") & (df["variant"] == "mse+adv+vgg (vgg_grad)")]
    if rows.empty:
        raise InputError(bench_csv, "no full training step measured (run bench/bench_tomogan.py)")
    row = rows.sort_values("size").iloc[-1]
    settings = {"depth": int(row["depth"]), "patch": int(row["size"]), "batch": int(row["batch"]),
                "vgg_weights": "random-init"}  # the benchmark's TrainConfig: published settings otherwise
    return step_flops(settings) / float(row["seconds"]), f"{row['device_name']}, {row['threads']} threads"


def estimate(configfile, *, gpu_ms_per_1024: float = PAPER_MS_PER_1024, bench_csv=None) -> pd.DataFrame:
    """One row per kind of work: jobs, requested CPU/GPU hours, estimated GPU hours of the work, disk."""
    from study import Plan, config_hash, load_config

    cfg = load_config(configfile)
    cfg_hash = config_hash(cfg)
    counts = job_counts(configfile)
    outputs = [(path, rule) for path, rule, _ in dag_outputs(configfile)]
    shp = shapes(cfg)
    res = cfg.get("resources", {})
    kind_of = {"foam_phantom": "simulate", "shale_raw": "simulate", "project_foam": "simulate",
               "family_phantom": "simulate", "matched_phantom": "simulate", "project_matched": "simulate",
               "prepare_shale": "simulate", "prepare_scan": "simulate", "low_dose": "simulate",
               "fbp": "reconstruct", "tune_sirt": "reconstruct", "tune_classical": "reconstruct", "apply_classical": "reconstruct",
               "n2i_split": "reconstruct", "crossval": "reconstruct", "train": "train", "n2i_train": "train", "infer": "infer",
               "infer_release": "infer", "n2i_infer": "infer", "timing": "infer", "inference_speed": "infer"}
    flops_per_s = slice_flops(3, 1024) / (gpu_ms_per_1024 / 1000)  # the paper's V100 throughput
    cpu_rate, cpu = (cpu_flops_per_s(bench_csv) if bench_csv and Path(bench_csv).exists()
                     else (float("nan"), "not measured: run bench/bench_tomogan.py"))

    # GPU work: every TomoGAN and Noise2Inverse training run, every inference pass
    runs = Plan.from_config(cfg).runs
    # a run on a CPU budget (the compute-matched ablation) costs that budget in CPU-seconds, whatever a step costs;
    # on a GPU it would be another experiment, so it is left out of the GPU estimate
    budget_cpu_s = sum(float(run.settings.get("cpu_budget_s") or 0) for run in runs.values())
    train_flops = sum(step_flops(run.settings) * run.settings.get("max_iter", 8000) for run in runs.values()
                      if not run.settings.get("cpu_budget_s"))
    n2i = cfg.get("noise2inverse")
    if n2i:
        n2i_settings = dict(cfg["tomogan"]["train"], **n2i.get("train", {}), lambda_adv=0.0, lambda_vgg=0.0)
        train_flops += step_flops(n2i_settings) * n2i_settings.get("max_iter", 8000) * counts.get("n2i_train", 0)
    infer_flops = 0.0
    for path, rule in outputs:
        if rule in ("infer", "infer_release", "n2i_infer"):
            slices, _, side, _ = shp[path.split("/")[1]]
            n = slices if rule != "n2i_infer" else (cfg["metrics"]["slices"] or slices)
            per = n2i.get("k", 4) if rule == "n2i_infer" else 1
            infer_flops += per * n * slice_flops(3 if rule != "infer_release" else 1, side)

    rows = []
    for kind in ("simulate", "reconstruct", "train", "infer"):
        rules = [r for r, k in kind_of.items() if k == kind]
        jobs = sum(counts.get(r, 0) for r in rules)
        r = res.get(kind, {})
        hours = r.get("runtime", 30) / 60
        disk = sum(file_bytes(p, rule, cfg, shp) for p, rule in outputs if rule in rules)
        flops = {"train": train_flops, "infer": infer_flops}.get(kind, 0.0)
        rows.append({"kind": kind, "rules": ", ".join(r for r in rules if counts.get(r)), "jobs": jobs,
                     "cpu_hours_requested": jobs * hours * r.get("cpus", cfg.get("threads", 1)),
                     "gpu_hours_requested": jobs * hours * r.get("gpu", 0),
                     "gpu_hours_estimated": flops / flops_per_s / 3600,
                     "hours_on_2_cpu_cores": ((flops / cpu_rate if flops else 0.0)
                                              + (budget_cpu_s / 2 if kind == "train" else 0.0)) / 3600,
                     "disk_gb": disk / 1e9})
    other = sorted(r for r in counts if r not in kind_of)
    rows.append({"kind": "other (metrics, tables, figures)", "rules": ", ".join(other),
                 "jobs": sum(counts[r] for r in other), "cpu_hours_requested": 0.0, "gpu_hours_requested": 0.0,
                 "gpu_hours_estimated": 0.0, "hours_on_2_cpu_cores": 0.0, "disk_gb": 0.0})
    table = pd.DataFrame(rows)
    total = {"kind": "total", "rules": "", "jobs": sum(counts.values())}
    total.update({c: table[c].sum() for c in table.columns if c not in ("kind", "rules", "jobs")})
    table = pd.concat([table, pd.DataFrame([total])], ignore_index=True)
    table.attrs["note"] = (f"{Path(configfile).name}, config hash {cfg_hash}; GPU hours of the work at "
                           f"{flops_per_s / 1e12:.1f} TFLOP/s (the paper's V100: {gpu_ms_per_1024:g} ms for a 1024² "
                           f"slice); 2-CPU-core hours at {cpu_rate / 1e9:.0f} GFLOP/s (a training step measured on "
                           f"{cpu}); FLOPs counted on the meta device")
    return table


def render(table: pd.DataFrame) -> str:
    md = table.round({"cpu_hours_requested": 0, "gpu_hours_requested": 0, "gpu_hours_estimated": 1,
                      "hours_on_2_cpu_cores": 0, "disk_gb": 0}).to_markdown(index=False)
    return f"Estimated by `python bench/estimate_cost.py` ({table.attrs.get('note', '')}).\n\n{md}\n"


@cli
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configfile", default=str(ROOT / "config" / "paper.yaml"))
    p.add_argument("--out", default="results/bench/cost.csv", help="CSV to write (a .md twin beside it)")
    p.add_argument("--gpu-ms-per-1024", type=float, default=PAPER_MS_PER_1024,
                   help="TomoGAN inference time of a 1024^2 slice on the target GPU (paper, V100: 30 ms)")
    p.add_argument("--bench", default=str(ROOT / "results" / "bench" / "tomogan.csv"),
                   help="bench/bench_tomogan.py's CSV, for the CPU column (skipped when absent)")
    p.add_argument("--page", help="paste the table into this page between its '<!-- begin cost -->' and "
                   "'<!-- end cost -->' markers")
    args = p.parse_args(argv)
    table = estimate(args.configfile, gpu_ms_per_1024=args.gpu_ms_per_1024, bench_csv=args.bench)
    out = write_csv(table, args.out)
    md = render(table)
    write_text(out.with_suffix(".md"), md)
    print(md)
    if args.page:
        from study.pages import replace_blocks

        try:
            text = Path(args.page).read_text()
        except OSError as exc:
            raise InputError(args.page, f"cannot read: {exc.strerror}") from None
        write_text(args.page, replace_blocks(text, {"cost": md}, args.page))


if __name__ == "__main__":
    main()
