"""The training run: its state (:class:`Run`), its steps, and :func:`train`, which reads top to bottom as them.

Part of :mod:`tomogan_core.train`; import its public names from there."""

from __future__ import annotations

import csv
import dataclasses
import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from simulate.io import software_versions
from simulate.plumbing import InputError, atomic_path
from tomogan_core.data import Normalization, PatchSampler, VolumePair
from tomogan_core.losses import critic_loss_bce, critic_loss_wgan, generator_loss, gradient_penalty
from tomogan_core.model import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
from tomogan_core.modelfile import (LoadedModel, denoise, read_checkpoint, read_generator, resolve_device,
                                   save_checkpoint, save_model)
from tomogan_core.train.config import HISTORY_FIELDS, TrainConfig

logger = logging.getLogger("tomogan_core.train")  # one logger for the whole training command


@dataclass
class Run:
    """Everything a training run updates, all of it saved in its checkpoint."""

    cfg: TrainConfig
    norm: Normalization  # fitted on the normal-dose training volumes (kind "input": identity, each pair its own map)
    sampler: PatchSampler  # random patches, in network units; its numpy stream is checkpointed
    generator: Generator
    critic: Optional[Discriminator]  # None when the loss has no adversarial term (cfg.needs_critic)
    opt_g: torch.optim.Optimizer
    opt_d: Optional[torch.optim.Optimizer]
    gp_rng: torch.Generator  # the gradient penalty's interpolation weights
    gen_step: torch.nn.Module  # the generator as trained: DistributedDataParallel under torchrun
    vgg: Optional[torch.nn.Module]
    vgg_label: str
    device: torch.device
    step: int = 0
    cpu_s: float = 0.0  # CPU-seconds the training steps have used (validation and checkpoints not counted)
    history: List[dict] = field(default_factory=list)  # the rows of log.csv
    best: dict = field(default_factory=lambda: {"step": 0, "val_psnr": -np.inf, "val_ssim": -np.inf, "generator": None})
    init: dict = field(default_factory=dict)  # provenance of cfg.init: init, init_model, init_provenance ({} without)

    def vgg_input(self, t: torch.Tensor) -> torch.Tensor:
        """Network units -> the [0, 1] window the VGG features see."""
        return (t - self.norm.vgg_lo) / (self.norm.vgg_hi - self.norm.vgg_lo)

    @property
    def done(self) -> bool:
        """``max_iter`` steps trained, or (a compute-matched run) its CPU budget used."""
        return self.step >= self.cfg.max_iter or (self.cfg.cpu_budget_s > 0 and self.cpu_s >= self.cfg.cpu_budget_s)

    @property
    def budget_mark(self) -> int:
        """How many of the budget's ``val_points`` marks the CPU time has passed (0 without a budget)."""
        if self.cfg.cpu_budget_s <= 0:
            return 0
        return min(int(self.cpu_s * self.cfg.val_points / self.cfg.cpu_budget_s), self.cfg.val_points)

    def validation_due(self) -> bool:
        """Validate now? Every ``val_every`` steps, or with a CPU budget at each new mark of it; and at the end."""
        if self.done:
            return True
        if self.cfg.cpu_budget_s > 0:
            last = max((r.get("budget_mark") or 0 for r in self.history if r.get("budget_mark") not in (None, "")),
                       default=0)
            return self.budget_mark * self.cfg.cpu_budget_s / self.cfg.val_points > float(last)
        return self.step % self.cfg.val_every == 0


@dataclass(frozen=True)
class RunFiles:
    """What a run writes in its folder."""

    folder: Path

    @property
    def checkpoint(self) -> Path:
        return self.folder / "checkpoint.pt"

    @property
    def model(self) -> Path:
        return self.folder / "model.pt"

    @property
    def log(self) -> Path:
        return self.folder / "log.csv"


def build(cfg: TrainConfig, train_pairs: Sequence[VolumePair], ctx, device: torch.device, *,
          fresh: bool = True) -> Run:
    """The run at step 0: normalisation, patch sampler, models, optimisers, random streams and losses.

    The generator is initialised from ``cfg.seed``, then from ``cfg.init`` when the run starts ``fresh``
    (a resumed run's checkpoint replaces it anyway). The critic is built after it, so that the generator's
    weights do not depend on whether there is one.
    """
    norm = Normalization.fit([p.normal for p in train_pairs], cfg.normalization,
                             inputs=[p.low for p in train_pairs], names=[p.name for p in train_pairs])
    net_pairs = [net_pair(norm, p) for p in train_pairs]
    sampler = PatchSampler(net_pairs, depth=cfg.depth, patch=cfg.patch, augment=cfg.augment,
                           rng=np.random.default_rng([cfg.seed, ctx.rank] if ctx.enabled else cfg.seed),
                           shard=(ctx.rank, ctx.world))

    torch.manual_seed(cfg.seed)
    generator = Generator(GeneratorConfig(in_slices=cfg.depth, upsample=cfg.upsample)).to(device)
    init = load_init(cfg, generator) if cfg.init and fresh else {}
    critic = Discriminator(DiscriminatorConfig(patch_size=cfg.patch)).to(device) if cfg.needs_critic else None
    opt_g = torch.optim.Adam(generator.parameters(), lr=cfg.lr_g)
    opt_d = torch.optim.Adam(critic.parameters(), lr=cfg.lr_d) if critic is not None else None
    gp_rng = torch.Generator(device=device).manual_seed(cfg.seed + 1 + 1000 * ctx.rank)
    gen_step = ctx.wrap(generator, device)

    vgg, vgg_label = None, "none (lambda_vgg = 0)"
    if cfg.lambda_vgg > 0:
        from tomogan_core.vgg import load_vgg19

        vgg, vgg_label = load_vgg19(cfg.vgg_weights, layer_index=cfg.vgg_layer, seed=cfg.seed)
        vgg = vgg.to(device)
    return Run(cfg=cfg, norm=norm, sampler=sampler, generator=generator, critic=critic, opt_g=opt_g, opt_d=opt_d,
               gp_rng=gp_rng, gen_step=gen_step, vgg=vgg, vgg_label=vgg_label, device=device, init=init)


def net_pair(norm: Normalization, pair: VolumePair) -> VolumePair:
    """A pair in network units: both volumes by one map, the pair's own low-dose one for kind ``"input"``.

    Raises
    ------
    InputError
        Kind ``"input"`` and a constant low-dose volume (naming the pair).
    """
    m = norm.for_volume(pair.low, name=pair.name)
    return VolumePair(m.to_net(pair.low), m.to_net(pair.normal), pair.name)


def load_init(cfg: TrainConfig, generator: Generator) -> dict:
    """Load ``cfg.init``'s generator weights into ``generator``; returns the provenance to record:
    ``init`` (the path as given), ``init_model`` (the file's kind, step, normalisation, training data)
    and ``init_provenance`` (the provenance dict it carries; ``{}`` when none).

    Raises
    ------
    InputError
        The file cannot be read, holds no generator, or its generator's depth or upsampling is not the run's.
    """
    path = cfg.init
    gcfg, weights, summary = read_generator(path)
    if gcfg["in_slices"] != cfg.depth:
        raise InputError(path, f"init generator takes d = {gcfg['in_slices']} slices, this run has depth {cfg.depth}")
    if gcfg["upsample"] != cfg.upsample:
        raise InputError(path, f"init generator upsamples by {gcfg['upsample']!r}, this run by {cfg.upsample!r}")
    generator.load_state_dict(weights)
    if summary.get("normalization") and summary["normalization"] != cfg.normalization:
        logger.warning("%s: init model was trained with normalization %r, this run uses %r: its weights expect "
                       "other network units", path, summary["normalization"], cfg.normalization)
    logger.info("generator initialised from %s (%s)", path, summary["kind"])
    provenance = summary.pop("provenance", {})
    return {"init": str(path), "init_model": summary, "init_provenance": provenance}


def resume(run: Run, path: Path, ctx) -> None:
    """Continue ``run`` from the checkpoint at ``path``: weights, optimisers, random streams, step,
    history and best generator so far.

    Raises
    ------
    InputError
        Unreadable, not a checkpoint, or written by a run with other settings.
    """
    state = read_checkpoint(path, map_location=run.device)
    diff = _config_differences(state["config"], asdict(run.cfg))
    if diff:
        raise InputError(path, "was written by a run with other settings (" + "; ".join(diff[:3])
                         + "): use another output folder or delete it")
    run.generator.load_state_dict(state["generator"])
    if run.critic is not None:
        run.critic.load_state_dict(state["critic"])
    run.opt_g.load_state_dict(state["opt_g"])
    if run.opt_d is not None:
        run.opt_d.load_state_dict(state["opt_d"])
    run.sampler.rng.bit_generator.state = state["rng_numpy"]
    run.gp_rng.set_state(state["rng_torch"].cpu() if run.device.type == "cpu" else state["rng_torch"])
    run.step, run.history, run.best = state["step"], state["history"], state["best"]
    run.cpu_s = float(state.get("cpu_s", 0.0))
    run.norm = Normalization(**state["normalization"])
    run.init = dict(state.get("init") or {})  # written only by runs with an init
    if ctx.enabled:  # only rank 0's streams were saved: every rank restarts its own from here
        run.sampler.rng = np.random.default_rng([run.cfg.seed, ctx.rank, run.step])
        run.gp_rng.manual_seed(run.cfg.seed + 1 + 1000 * ctx.rank + run.step)
    logger.info("resuming %s at step %d of %d", path, run.step, run.cfg.max_iter)


def train_step(cfg: TrainConfig, generator: Generator, critic: Optional[Discriminator], opt_g, opt_d,
               sampler: PatchSampler, *, vgg=None, vgg_input=None, gp_rng: Optional[torch.Generator] = None,
               device: torch.device = torch.device("cpu"), sync_critic=None) -> Dict[str, torch.Tensor]:
    """One training step as the release does it: ``itg`` generator updates, then ``itd`` critic updates,
    each on a fresh batch.

    Returns the step's detached loss terms (``total`` = the generator's objective; ``loss_d`` and, for
    WGAN-GP, ``gp`` when the critic was trained). ``sync_critic`` is called between each critic backward
    pass and its optimiser step (where distributed training averages the critic's gradients).
    """
    def batch():
        x, y = sampler.sample(cfg.batch)  # (B, d, P, P), (B, 1, P, P)
        return torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)

    def autocast():  # mixed precision of the forward passes and losses; backward passes follow their dtypes
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")

    if critic is not None:
        critic.requires_grad_(False)  # the generator's updates leave the critic alone
    for _ in range(cfg.itg):
        x, y = batch()
        with autocast():
            fake = generator(x)  # (B, 1, P, P)
            loss_g, parts = generator_loss(
                fake, y, lambda_adv=cfg.lambda_adv, lambda_mse=cfg.lambda_mse, lambda_vgg=cfg.lambda_vgg,
                critic=critic, vgg=vgg, adversarial="wgan" if cfg.gan_loss == "wgan-gp" else "bce",
                perceptual_grad=cfg.vgg_grad, vgg_input=vgg_input)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
    if critic is not None:
        critic.requires_grad_(True)
    if cfg.trains_critic:
        for _ in range(cfg.itd):
            x, y = batch()
            with autocast():
                with torch.no_grad():
                    fake = generator(x)
                d_real, d_fake = critic(y), critic(fake)  # (B, 1) each
                if cfg.gan_loss == "wgan-gp":
                    gp = gradient_penalty(critic, y, fake, generator=gp_rng)
                    loss_d = critic_loss_wgan(d_real, d_fake) + cfg.gp_weight * gp
                    parts["gp"] = gp.detach()
                else:
                    loss_d = critic_loss_bce(d_real, d_fake)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            if sync_critic is not None:
                sync_critic()
            opt_d.step()
        parts["loss_d"] = loss_d.detach()
    return parts


def validate(generator: Generator, pairs: Sequence[VolumePair], norm: Normalization, *, n_slices: int,
             device: torch.device) -> Dict[str, float]:
    """Mean SSIM and PSNR (field of view, :func:`simulate.scores.compare_volumes`) over the central validation
    slices, enhanced by :func:`tomogan_core.modelfile.denoise` (``tomogan-infer``'s loop) in eval mode."""
    from simulate.reconstruct import central_slices
    from simulate.scores import compare_volumes

    model = LoadedModel.from_generator(generator, norm, info={"kind": "training"}, device=device)
    was_training = generator.training
    generator.eval()
    rows = []
    try:
        for pair in pairs:
            idx = central_slices(pair.n_slices, n_slices)
            rows += compare_volumes(denoise(pair.low, model, indices=idx, repeat_edges=True), pair.normal[idx])
    finally:
        generator.train(was_training)
    return {"val_ssim": float(np.mean([r["ssim"] for r in rows])),
            "val_psnr": float(np.mean([r["psnr"] for r in rows]))}


def keep_best(run: Run, metrics: Dict[str, float], *, always: bool = False) -> None:
    """Keep the generator as the run's best when its ``cfg.select`` metric beats the best so far (NaN never
    does), or ``always``."""
    score, prev = metrics[f"val_{run.cfg.select}"], run.best[f"val_{run.cfg.select}"]
    if run.step <= run.cfg.mse_warmup < run.cfg.max_iter and not always:
        return  # a warm-start generator (MSE alone) is not this run's model while full-loss steps follow
    if always or (not np.isnan(score) and not score <= prev):  # prev is -inf, or NaN from an old run, at first
        run.best = {"step": run.step, **metrics,
                    "generator": {k: v.detach().cpu().clone() for k, v in run.generator.state_dict().items()}}


def validate_and_keep_best(run: Run, val_pairs: Sequence[VolumePair]) -> Dict[str, float]:
    """Score the generator on the validation slices and keep it if it is the best so far."""
    metrics = validate(run.generator, val_pairs, run.norm, n_slices=run.cfg.val_slices, device=run.device)
    keep_best(run, metrics)
    return metrics


def log_and_validate(run: Run, losses: "LossAverage", val_pairs: Sequence[VolumePair], bar, *,
                     validate_here: bool = True) -> None:
    """After a step: every ``log_every`` steps a row of the history; when a validation is due
    (:meth:`Run.validation_due`) validate-and-keep-best too, its metrics in the same row."""
    cfg = run.cfg
    validating = run.validation_due()
    if not (validating or run.done or run.step % cfg.log_every == 0):
        return
    row = dict(losses.row(run.step), cpu_s=round(run.cpu_s, 3))
    if validating and cfg.cpu_budget_s > 0:  # the curve's abscissa: the mark of the budget reached, in CPU-seconds
        row["budget_mark"] = round(run.budget_mark * cfg.cpu_budget_s / cfg.val_points, 6)
    bar.set_postfix({k: f"{row[k]:.3g}" for k in ("loss_g", "mse", "adv", "loss_d") if k in row})
    if validating and validate_here:
        row.update(validate_and_keep_best(run, val_pairs))
        bar.write(f"step {run.step}: val SSIM {row['val_ssim']:.4f}, PSNR {row['val_psnr']:.2f} dB")
    run.history.append(row)


def write_checkpoint(run: Run, files: RunFiles) -> None:
    """``checkpoint.pt`` (everything :func:`resume` needs) and ``log.csv``, each written atomically."""
    save_checkpoint(files.checkpoint, step=run.step, config=asdict(run.cfg),
                    generator=run.generator.state_dict(),
                    critic=run.critic.state_dict() if run.critic is not None else None,
                    opt_g=run.opt_g.state_dict(), opt_d=run.opt_d.state_dict() if run.opt_d is not None else None,
                    rng_numpy=run.sampler.rng.bit_generator.state, rng_torch=run.gp_rng.get_state(),
                    history=run.history, best=run.best, normalization=run.norm.as_dict(), cpu_s=run.cpu_s,
                    **({"init": run.init} if run.cfg.init else {}))
    _write_history(run.history, files.log)


def write_model(run: Run, path: Path, train_pairs: Sequence[VolumePair], val_pairs: Sequence[VolumePair],
                provenance: Optional[dict]) -> None:
    """``model.pt``: the best generator, its normalisation, the settings, validation metrics and provenance."""
    provenance = dict(provenance or {}, **run.init)
    save_model(path, generator_config=asdict(run.generator.cfg), generator=run.best["generator"],
               normalization=run.norm, config=asdict(run.cfg), step=run.best["step"],
               val_ssim=run.best["val_ssim"], val_psnr=run.best["val_psnr"], steps_trained=run.step,
               cpu_s=round(run.cpu_s, 3),
               vgg_weights=run.vgg_label, device=str(run.device), versions=software_versions(),
               train_data=[p.name for p in train_pairs], val_data=[p.name for p in val_pairs],
               provenance=provenance or {})
    logger.info("wrote %s (best step %d: val SSIM %.4f, PSNR %.2f dB)", path, run.best["step"],
                run.best["val_ssim"], run.best["val_psnr"])


def write_final(run: Run, files: RunFiles, train_pairs: Sequence[VolumePair], val_pairs: Sequence[VolumePair],
                provenance: Optional[dict]) -> None:
    """At the end: ``log.csv`` and ``model.pt``, validating first when no generator was kept (``max_iter == 0``)."""
    if not run.history or run.best["generator"] is None:
        metrics = validate(run.generator, val_pairs, run.norm, n_slices=run.cfg.val_slices, device=run.device)
        keep_best(run, metrics, always=True)
        write_checkpoint(run, files)
    _write_history(run.history, files.log)  # also when a resumed run had nothing left to do
    write_model(run, files.model, train_pairs, val_pairs, provenance)


class LossAverage:
    """The loss terms averaged over the steps since the last row of ``log.csv``."""

    def __init__(self, elapsed_before: float = 0.0):
        self.start = time.perf_counter() - elapsed_before
        self.sums: Dict[str, float] = {}
        self.count = 0

    def add(self, parts: Dict[str, torch.Tensor]) -> None:
        parts["loss_g"] = parts.pop("total")
        for k, v in parts.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
        self.count += 1

    def row(self, step: int) -> dict:
        """A row of the history (and start the next average)."""
        row = {"step": step, "elapsed_s": round(time.perf_counter() - self.start, 3)}
        row.update({k: v / self.count for k, v in self.sums.items()})
        self.sums, self.count = {}, 0
        return row


def _progress_bar(cfg: TrainConfig, step: int, name: str, enabled: bool) -> tqdm:
    return tqdm(total=cfg.max_iter, initial=step, desc=name or "train", disable=not enabled,
                dynamic_ncols=True, file=sys.stderr, mininterval=1.0 if sys.stderr.isatty() else 30.0)


def _write_history(rows: List[dict], path: Path) -> None:
    """Write the loss history as CSV, atomically (a resumed run rewrites it from the checkpoint)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=HISTORY_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in HISTORY_FIELDS})


def _config_differences(saved: dict, current: dict) -> List[str]:
    """Settings that change what a run computes (bookkeeping such as device may differ on resume)."""
    free = {"device", "log_every", "val_every", "ckpt_every", "max_iter"}  # a run may be extended
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}  # keys older checkpoints lack
    return [f"{k}: {saved.get(k, defaults.get(k))!r} -> {v!r}" for k, v in current.items()
            if k not in free and saved.get(k, defaults.get(k)) != v]


def train(cfg: TrainConfig, train_pairs: Sequence[VolumePair], val_pairs: Sequence[VolumePair], out_dir,
          *, provenance: Optional[dict] = None, progress: bool = True,
          stop_after: Optional[int] = None) -> Path:
    """Train (or resume) a TomoGAN run and write ``out_dir/model.pt``.

    Parameters
    ----------
    train_pairs, val_pairs : sequence of VolumePair
        In data units. Validation volumes are never sampled for training.
    out_dir : path
        Receives ``checkpoint.pt`` (resumable state), ``log.csv`` and, at the end, ``model.pt``.
    provenance : dict, optional
        Recorded in the model (training files, dataset names, config hash, ...), with :func:`load_init`'s.
    stop_after : int, optional
        Stop right after the checkpoint at this step, as if the process were killed there (for tests).

    Returns
    -------
    Path of ``model.pt`` (or of ``checkpoint.pt`` when stopped early).
    """
    from tomogan_core import distributed

    files = RunFiles(Path(out_dir))
    ctx, device = distributed.setup(resolve_device(cfg.device))  # a no-op unless launched by torchrun
    if not train_pairs:
        raise ValueError("no training volumes")
    if not val_pairs:
        raise ValueError("no validation volumes")
    run = build(cfg, train_pairs, ctx, device, fresh=not files.checkpoint.exists())
    if files.checkpoint.exists():
        resume(run, files.checkpoint, ctx)

    losses = LossAverage(run.history[-1]["elapsed_s"] if run.history else 0.0)
    bar = _progress_bar(cfg, run.step, files.folder.name, progress and ctx.is_main)
    sync_critic = (lambda: ctx.average_gradients(run.critic)) if ctx.enabled else None
    run.generator.train()
    warm = cfg.warm_start if cfg.mse_warmup else cfg
    while not run.done:
        step_cfg = warm if run.step < cfg.mse_warmup else cfg  # a warm start: MSE alone first, then the full loss
        cpu_before = time.process_time()
        losses.add(train_step(step_cfg, run.gen_step, run.critic, run.opt_g, run.opt_d, run.sampler,
                              vgg=run.vgg if step_cfg is cfg else None, vgg_input=run.vgg_input, gp_rng=run.gp_rng,
                              device=device, sync_critic=sync_critic))
        run.cpu_s += time.process_time() - cpu_before  # this process's CPU time: every thread it trains on
        run.step += 1
        bar.update(1)
        log_and_validate(run, losses, val_pairs, bar, validate_here=ctx.is_main)  # rank 0 alone validates
        if run.step % cfg.ckpt_every == 0 or run.done:
            if ctx.is_main:
                write_checkpoint(run, files)
            ctx.barrier()
            if stop_after is not None and run.step >= stop_after:
                bar.close()
                return files.checkpoint
    bar.close()
    if ctx.is_main:  # rank 0 writes the model; the others are done
        write_final(run, files, train_pairs, val_pairs, provenance)
    ctx.barrier()
    ctx.close()
    return files.model
