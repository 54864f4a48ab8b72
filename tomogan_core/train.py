"""Train TomoGAN: the generator against a WGAN-GP (or cross-entropy) critic, with MSE and VGG terms.

One training step, as the public release does it: ``itg`` generator updates, then ``itd`` critic
updates, each on a fresh batch of random patches (:class:`tomogan_core.data.PatchSampler`).

Everything a run needs to continue lives in ``OUT/checkpoint.pt``, written atomically every
``ckpt_every`` steps: both networks, both optimisers, the step, the sampler's and the penalty's random
states, the loss history and the best generator so far. Running the same command again after a kill
continues from there, and ends with the same weights as an uninterrupted run (on the same device).
At the end ``OUT/model.pt`` holds the generator chosen on the validation slices (highest PSNR in the
field of view), its normalisation and the run's provenance; ``tomogan-export`` serves it.

Command line (the release's flag names, plus ours; ``-h`` lists all)::

    python train.py -ld low.h5 [low2.h5 ...] -nd normal.h5 [normal2.h5 ...] -o runs/foam -depth 3
    python train.py -dsfn release-layout.h5 -expName demo
    tomogan-train ...   (the same, as an installed command)
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import logging
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from simulate.io import InputError, software_versions

from .data import NORMALIZATIONS, Normalization, PatchSampler, VolumePair, read_pair, read_release_file, split_held_out, stack_neighbours
from .losses import critic_loss_bce, critic_loss_wgan, generator_loss, gradient_penalty
from .model import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig

__all__ = ["GAN_LOSSES", "TrainConfig", "train", "train_step", "load_model", "denoise_volume", "validate", "main"]

logger = logging.getLogger(__name__)

GAN_LOSSES = ("wgan-gp", "bce")
PRECISIONS = ("fp32", "bf16")
SELECT_METRICS = ("psnr", "ssim")
CHECKPOINT_FORMAT = "tomogan-checkpoint/1"
MODEL_FORMAT = "tomogan-model/1"
HISTORY_FIELDS = ("step", "elapsed_s", "loss_g", "adv", "mse", "perceptual", "loss_d", "gp",
                  "val_ssim", "val_psnr")


@dataclass
class TrainConfig:
    """Every setting of a training run. Defaults are the published ones (facts file); the study's
    configs override what a CPU budget forces smaller (iterations, patch, batch)."""

    depth: int = 3  # d adjacent input slices (paper's best; the release's default is 1)
    upsample: str = "bilinear"  # the authors' training code
    lambda_adv: float = 20.0  # release defaults: adv 20, mse 0.5, perceptual 2
    lambda_mse: float = 0.5
    lambda_vgg: float = 2.0
    gan_loss: str = "wgan-gp"  # the paper; "bce" = the release's cross-entropy critic
    gp_weight: float = 10.0  # lambda_D of WGAN-GP (Gulrajani et al.)
    vgg_grad: bool = True  # False reproduces the release's defect (no gradient through VGG)
    vgg_weights: str = "auto"  # "auto" (ImageNet file, else random-init with a warning), "random-init", or a path
    vgg_layer: int = 36  # block5_pool, as published
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    itg: int = 1  # generator updates per step
    itd: int = 2  # critic updates per step
    patch: int = 256
    batch: int = 16
    max_iter: int = 8000
    augment: bool = True  # random flips and 90-degree rotations
    normalization: str = "grey255"  # the release's 0..255 scale, where its loss weights apply; or "zscore"
    seed: int = 0
    log_every: int = 10  # steps between rows of log.csv
    val_every: int = 100  # steps between validations (and best-model choice)
    ckpt_every: int = 100  # steps between checkpoints
    val_slices: int = 8  # central slices of each validation volume scored
    val_fraction: float = 0.15  # held out from the training volume when no validation volume is given
    device: str = "auto"  # auto = CUDA when available, else CPU
    precision: str = "fp32"  # "bf16": forward passes and losses under bfloat16 autocast (2x faster on AMX CPUs)
    select: str = "psnr"  # validation metric that picks the saved generator among the validated steps: psnr, ssim

    def __post_init__(self):
        GeneratorConfig(in_slices=self.depth, upsample=self.upsample)  # validates depth and upsampling
        if self.gan_loss not in GAN_LOSSES:
            raise ValueError(f"gan_loss must be one of {GAN_LOSSES}, got {self.gan_loss!r}")
        for name in ("lambda_adv", "lambda_mse", "lambda_vgg", "gp_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.lambda_adv + self.lambda_mse + self.lambda_vgg <= 0:
            raise ValueError("at least one of lambda_adv, lambda_mse, lambda_vgg must be > 0")
        for name in ("itg", "patch", "batch", "log_every", "val_every", "ckpt_every", "val_slices"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.itd < 0 or self.max_iter < 0:
            raise ValueError("itd and max_iter must be >= 0")
        if self.patch % 8:
            raise ValueError(f"patch must be a multiple of 8 (the critic strides by 8), got {self.patch}")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.select not in SELECT_METRICS:
            raise ValueError(f"select must be one of {SELECT_METRICS}, got {self.select!r}")

    @property
    def trains_critic(self) -> bool:
        return self.lambda_adv > 0 and self.itd > 0


# -----------------------------------------------------------------------------
# small pieces


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is passed to :class:`torch.device`."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _atomic_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _write_history(rows: List[dict], path: Path) -> None:
    """Write the loss history as CSV, atomically (a resumed run rewrites it from the checkpoint)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=HISTORY_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in HISTORY_FIELDS})
    os.replace(tmp, path)


@torch.no_grad()
def denoise_volume(generator: Generator, volume: np.ndarray, norm: Normalization, *,
                   indices: Optional[Sequence[int]] = None, batch: int = 4,
                   device: Optional[torch.device] = None) -> np.ndarray:
    """Apply a generator to slices of a volume, each with its ``d`` neighbours (edges repeated).

    Parameters
    ----------
    generator : Generator
        Eval mode is set here and restored afterwards.
    volume : ndarray, shape (slices, rows, cols)
        Low-dose data in data units.
    norm : Normalization
        The model's normalisation.
    indices : sequence of int, optional
        Slices to enhance (default all).

    Returns
    -------
    ndarray, shape (len(indices), rows, cols), float32, in data units.
    """
    was_training = generator.training
    generator.eval()
    device = device or next(generator.parameters()).device
    indices = list(range(volume.shape[0])) if indices is None else list(indices)
    d = generator.cfg.in_slices
    out = np.empty((len(indices),) + volume.shape[1:], np.float32)
    for start in range(0, len(indices), batch):
        chunk = indices[start:start + batch]
        x = np.stack([norm.to_net(stack_neighbours(volume, i, d)) for i in chunk])  # (b, d, H, W)
        y = generator.forward_any_size(torch.from_numpy(x).to(device))  # (b, 1, H, W)
        out[start:start + len(chunk)] = norm.from_net(y[:, 0].float().cpu().numpy())
    generator.train(was_training)
    return out


def validate(generator: Generator, pairs: Sequence[VolumePair], norm: Normalization, *, n_slices: int,
             device: torch.device) -> Dict[str, float]:
    """Mean SSIM and PSNR (field of view, :mod:`analysis.metrics`) over the central validation slices."""
    from analysis.metrics import compare_volumes
    from simulate.reconstruct import central_slices

    rows = []
    for pair in pairs:
        idx = central_slices(pair.n_slices, n_slices)
        pred = denoise_volume(generator, pair.low, norm, indices=idx, device=device)
        rows += compare_volumes(pred, pair.normal[idx])
    return {"val_ssim": float(np.mean([r["ssim"] for r in rows])),
            "val_psnr": float(np.mean([r["psnr"] for r in rows]))}


def train_step(cfg: TrainConfig, generator: Generator, critic: Discriminator, opt_g, opt_d,
               sampler: PatchSampler, *, vgg=None, vgg_input=None, gp_rng: Optional[torch.Generator] = None,
               device: torch.device = torch.device("cpu"), sync_critic=None) -> Dict[str, torch.Tensor]:
    """One training step as the release does it: ``itg`` generator updates, then ``itd`` critic updates.

    Each update draws a fresh batch. Returns the step's detached loss terms (``total`` = the generator's
    objective; ``loss_d`` and, for WGAN-GP, ``gp`` when the critic was trained). ``sync_critic``, when
    given, is called between each critic backward pass and its optimiser step (distributed training
    averages the critic's gradients there, :mod:`tomogan_core.distributed`).
    """
    def batch():
        x, y = sampler.sample(cfg.batch)  # (B, d, P, P), (B, 1, P, P)
        return torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)

    def autocast():  # mixed precision of the forward passes and losses; backward passes follow their dtypes
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")

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


def _config_differences(saved: dict, current: dict) -> List[str]:
    """Settings that change what a run computes (bookkeeping such as device may differ on resume)."""
    free = {"device", "log_every", "val_every", "ckpt_every", "max_iter"}  # a run may be extended
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}  # keys older checkpoints lack
    return [f"{k}: {saved.get(k, defaults.get(k))!r} -> {v!r}" for k, v in current.items()
            if k not in free and saved.get(k, defaults.get(k)) != v]


# -----------------------------------------------------------------------------
# the run


def train(cfg: TrainConfig, train_pairs: Sequence[VolumePair], val_pairs: Sequence[VolumePair], out_dir,
          *, provenance: Optional[dict] = None, progress: bool = True,
          stop_after: Optional[int] = None) -> Path:
    """Train (or resume) a TomoGAN run and write ``out_dir/model.pt``.

    Parameters
    ----------
    cfg : TrainConfig
    train_pairs, val_pairs : sequence of VolumePair
        In data units; the normalisation is fitted on the normal-dose training volumes. Validation
        volumes are never sampled for training.
    out_dir : path
        Receives ``checkpoint.pt`` (resumable state), ``log.csv`` and, at the end, ``model.pt``.
    provenance : dict, optional
        Recorded in the model (training files, dataset names, config hash, ...).
    stop_after : int, optional
        Stop right after the checkpoint at this step, as if the process were killed there (for tests).

    Returns
    -------
    Path of ``model.pt`` (or of ``checkpoint.pt`` when stopped early).
    """
    from . import distributed

    out_dir = Path(out_dir)
    ckpt_path, model_path, log_path = out_dir / "checkpoint.pt", out_dir / "model.pt", out_dir / "log.csv"
    ctx, device = distributed.setup(resolve_device(cfg.device))  # a no-op unless launched by torchrun
    if not train_pairs:
        raise ValueError("no training volumes")
    if not val_pairs:
        raise ValueError("no validation volumes")

    norm = Normalization.fit([p.normal for p in train_pairs], cfg.normalization)
    net_pairs = [VolumePair(norm.to_net(p.low), norm.to_net(p.normal), p.name) for p in train_pairs]
    sampler = PatchSampler(net_pairs, depth=cfg.depth, patch=cfg.patch, augment=cfg.augment,
                           rng=np.random.default_rng([cfg.seed, ctx.rank] if ctx.enabled else cfg.seed),
                           shard=(ctx.rank, ctx.world))

    torch.manual_seed(cfg.seed)
    generator = Generator(GeneratorConfig(in_slices=cfg.depth, upsample=cfg.upsample)).to(device)
    critic = Discriminator(DiscriminatorConfig(patch_size=cfg.patch)).to(device)
    opt_g = torch.optim.Adam(generator.parameters(), lr=cfg.lr_g)
    opt_d = torch.optim.Adam(critic.parameters(), lr=cfg.lr_d)
    gp_rng = torch.Generator(device=device).manual_seed(cfg.seed + 1 + 1000 * ctx.rank)
    gen_step = ctx.wrap(generator, device)  # DistributedDataParallel under torchrun

    vgg, vgg_label = None, "none (lambda_vgg = 0)"
    if cfg.lambda_vgg > 0:
        from .vgg import load_vgg19

        vgg, vgg_label = load_vgg19(cfg.vgg_weights, layer_index=cfg.vgg_layer, seed=cfg.seed)
        vgg = vgg.to(device)
    span = norm.vgg_hi - norm.vgg_lo

    def vgg_input(t):
        return (t - norm.vgg_lo) / span

    step, history = 0, []
    best = {"step": 0, "val_psnr": -np.inf, "val_ssim": -np.inf, "generator": None}
    if ckpt_path.exists():
        try:
            state = torch.load(ckpt_path, map_location=device, weights_only=False)
        except Exception as exc:
            raise InputError(ckpt_path, f"unreadable checkpoint ({type(exc).__name__}); delete it to start over") from None
        if state.get("format") != CHECKPOINT_FORMAT:
            raise InputError(ckpt_path, f"not a TomoGAN training checkpoint (format {state.get('format')!r})")
        diff = _config_differences(state["config"], asdict(cfg))
        if diff:
            raise InputError(ckpt_path, "was written by a run with other settings (" + "; ".join(diff[:3])
                             + "): use another output folder or delete it")
        generator.load_state_dict(state["generator"])
        critic.load_state_dict(state["critic"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        sampler.rng.bit_generator.state = state["rng_numpy"]
        gp_rng.set_state(state["rng_torch"].cpu() if device.type == "cpu" else state["rng_torch"])
        step, history, best = state["step"], state["history"], state["best"]
        norm = Normalization(**state["normalization"])
        if ctx.enabled:  # only rank 0's streams were saved: every rank restarts its own from here
            sampler.rng = np.random.default_rng([cfg.seed, ctx.rank, step])
            gp_rng.manual_seed(cfg.seed + 1 + 1000 * ctx.rank + step)
        logger.info("resuming %s at step %d of %d", ckpt_path, step, cfg.max_iter)

    def save_checkpoint():
        if not ctx.is_main:
            return
        _atomic_save({"format": CHECKPOINT_FORMAT, "step": step, "config": asdict(cfg),
                      "generator": generator.state_dict(), "critic": critic.state_dict(),
                      "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                      "rng_numpy": sampler.rng.bit_generator.state, "rng_torch": gp_rng.get_state(),
                      "history": history, "best": best, "normalization": norm.as_dict()}, ckpt_path)
        _write_history(history, log_path)

    sums: Dict[str, float] = {}
    counts = 0
    start_time = time.perf_counter() - (history[-1]["elapsed_s"] if history else 0.0)
    bar = tqdm(total=cfg.max_iter, initial=step, desc=out_dir.name or "train", disable=not progress or not ctx.is_main,
               dynamic_ncols=True, file=sys.stderr, mininterval=1.0 if sys.stderr.isatty() else 30.0)
    generator.train()
    while step < cfg.max_iter:
        parts = train_step(cfg, gen_step, critic, opt_g, opt_d, sampler, vgg=vgg, vgg_input=vgg_input,
                           gp_rng=gp_rng, device=device,
                           sync_critic=(lambda: ctx.average_gradients(critic)) if ctx.enabled else None)
        step += 1
        parts["loss_g"] = parts.pop("total")
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + float(v)
        counts += 1
        bar.update(1)

        row = None
        if step % cfg.log_every == 0 or step % cfg.val_every == 0 or step == cfg.max_iter:
            row = {"step": step, "elapsed_s": round(time.perf_counter() - start_time, 3)}
            row.update({k: v / counts for k, v in sums.items()})
            sums, counts = {}, 0
            bar.set_postfix({k: f"{row[k]:.3g}" for k in ("loss_g", "mse", "adv", "loss_d") if k in row})
        if (step % cfg.val_every == 0 or step == cfg.max_iter) and ctx.is_main:
            metrics = validate(generator, val_pairs, norm, n_slices=cfg.val_slices, device=device)
            row.update(metrics)
            score, prev = metrics[f"val_{cfg.select}"], best[f"val_{cfg.select}"]
            if not np.isnan(score) and not score <= prev:  # better (prev is -inf, or NaN from an old run, at first)
                best = {"step": step, **metrics,
                        "generator": {k: v.detach().cpu().clone() for k, v in generator.state_dict().items()}}
            bar.write(f"step {step}: val SSIM {metrics['val_ssim']:.4f}, PSNR {metrics['val_psnr']:.2f} dB")
        if row is not None:
            history.append(row)
        if step % cfg.ckpt_every == 0 or step == cfg.max_iter:
            save_checkpoint()
            ctx.barrier()
            if stop_after is not None and step >= stop_after:
                bar.close()
                return ckpt_path
    bar.close()
    if not ctx.is_main:  # rank 0 validates and writes the model; the others are done
        ctx.barrier()
        ctx.close()
        return model_path
    if not history or best["generator"] is None:  # max_iter == 0, or resumed at the end: validate now
        metrics = validate(generator, val_pairs, norm, n_slices=cfg.val_slices, device=device)
        best = {"step": step, **metrics,
                "generator": {k: v.detach().cpu().clone() for k, v in generator.state_dict().items()}}
        save_checkpoint()

    _write_history(history, log_path)  # also when a resumed run had nothing left to do
    model = {"format": MODEL_FORMAT, "generator_config": asdict(generator.cfg), "generator": best["generator"],
             "normalization": norm.as_dict(), "config": asdict(cfg), "step": best["step"],
             "val_ssim": best["val_ssim"], "val_psnr": best["val_psnr"], "steps_trained": step,
             "vgg_weights": vgg_label, "device": str(device), "versions": software_versions(),
             "train_data": [p.name for p in train_pairs], "val_data": [p.name for p in val_pairs],
             "provenance": provenance or {}}
    _atomic_save(model, model_path)
    logger.info("wrote %s (best step %d: val SSIM %.4f, PSNR %.2f dB)", model_path, best["step"],
                best["val_ssim"], best["val_psnr"])
    ctx.barrier()
    ctx.close()
    return model_path


def load_model(path, *, depth: Optional[int] = None, device: str = "cpu"):
    """Load a trained ``model.pt`` (or the best generator of a ``checkpoint.pt``).

    Returns
    -------
    generator : Generator (eval mode)
    norm : Normalization
    info : dict
        The file's metadata (config, validation metrics, vgg weights, provenance ...), without weights.

    Raises
    ------
    InputError
        Missing or unreadable file, not a TomoGAN model, or a depth other than ``depth``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise InputError(path, f"not a readable PyTorch file ({type(exc).__name__})") from None
    fmt = state.get("format") if isinstance(state, dict) else None
    if fmt == CHECKPOINT_FORMAT:
        if state["best"]["generator"] is None:
            raise InputError(path, "checkpoint holds no validated generator yet")
        gcfg = {"in_slices": state["config"]["depth"], "upsample": state["config"]["upsample"]}
        weights, info = state["best"]["generator"], {"config": state["config"], "step": state["best"]["step"]}
    elif fmt == MODEL_FORMAT:
        gcfg, weights = state["generator_config"], state["generator"]
        info = {k: v for k, v in state.items() if k not in ("generator",)}
    else:
        raise InputError(path, "not a TomoGAN model.pt or checkpoint.pt (for a served .pt, use the served loader)")
    if depth is not None and gcfg["in_slices"] != depth:
        raise InputError(path, f"model was trained with depth d = {gcfg['in_slices']}, not {depth}")
    generator = Generator(GeneratorConfig(**gcfg))
    generator.load_state_dict(weights)
    return generator.to(device).eval(), Normalization(**state["normalization"]), info


# -----------------------------------------------------------------------------
# command line

# the release's flag names for our settings
RELEASE_FLAGS = {"depth": "-depth", "lambda_mse": "-lmse", "lambda_adv": "-ladv", "lambda_vgg": "-lperc",
                 "patch": "-psz", "batch": "-mbsz", "itg": "-itg", "itd": "-itd", "max_iter": "-maxiter"}


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tomogan-train",
        description="Train TomoGAN on (low-dose, normal-dose) volume pairs. Killed runs resume from "
                    "OUT/checkpoint.pt when the same command is run again.")
    data = p.add_argument_group("data")
    data.add_argument("-ld", nargs="+", metavar="LOW.h5", help="low-dose volume file(s), (slices, rows, cols)")
    data.add_argument("-nd", nargs="+", metavar="NORMAL.h5", help="normal-dose volume file(s), paired with -ld")
    data.add_argument("-vld", nargs="+", metavar="LOW.h5", help="validation low-dose volume(s); default: hold "
                      "out the last --val-fraction of the (first) training volume's slices")
    data.add_argument("-vnd", nargs="+", metavar="NORMAL.h5", help="validation normal-dose volume(s)")
    data.add_argument("-dsfn", metavar="FILE.h5", help="the release's single file (train_ns, train_gt, "
                      "test_ns, test_gt) instead of -ld/-nd; test_* is used for validation")
    data.add_argument("--ld-key", help="dataset in the low-dose files (default /recon, else the only 3-D one)")
    data.add_argument("--nd-key", help="dataset in the normal-dose files")
    out = p.add_argument_group("output")
    out.add_argument("-o", "--out", help="output folder (default: runs/<expName>)")
    out.add_argument("-expName", default="tomogan", help="experiment name (default %(default)s)")
    out.add_argument("--threads", type=int, help="CPU threads for PyTorch")
    out.add_argument("--quiet", action="store_true", help="no progress bar")
    hyper = p.add_argument_group("training settings (defaults: the published ones)")
    for f in dataclasses.fields(TrainConfig):
        names = ["--" + f.name.replace("_", "-")]
        if f.name in RELEASE_FLAGS:
            names.insert(0, RELEASE_FLAGS[f.name])
        kind = {bool: _bool, "bool": _bool, int: int, "int": int, float: float, "float": float}.get(f.type, str)
        hyper.add_argument(*names, dest=f.name, type=kind, default=f.default, help=f"default {f.default}")
    return p


def _load_data(args, depth):
    if args.dsfn:
        if args.ld or args.nd:
            raise InputError(args.dsfn, "give either -dsfn or -ld/-nd, not both")
        train_pair, val_pair = read_release_file(args.dsfn, depth=depth)
        return [train_pair], [val_pair], {"dsfn": str(args.dsfn)}
    if not args.ld or not args.nd:
        raise InputError("command line", "give -ld and -nd (or -dsfn)")
    if len(args.ld) != len(args.nd):
        raise InputError(args.ld[0], f"{len(args.ld)} low-dose files for {len(args.nd)} normal-dose files")
    pairs = [read_pair(l, n, depth=depth, key_low=args.ld_key, key_normal=args.nd_key)
             for l, n in zip(args.ld, args.nd)]
    if args.vld or args.vnd:
        if len(args.vld or []) != len(args.vnd or []):
            raise InputError((args.vld or args.vnd)[0], "-vld and -vnd must list the same number of files")
        val = [read_pair(l, n, depth=depth, key_low=args.ld_key, key_normal=args.nd_key)
               for l, n in zip(args.vld, args.vnd)]
    else:
        first, held_out = split_held_out(pairs[0], fraction=args.val_fraction, depth=depth)
        pairs, val = [first] + pairs[1:], [held_out]
    return pairs, val, {"ld": [str(x) for x in args.ld], "nd": [str(x) for x in args.nd],
                        "vld": [str(x) for x in args.vld or []], "vnd": [str(x) for x in args.vnd or []]}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``tomogan-train``; bad input exits with status 2 and one ``error:`` line."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})
    except ValueError as exc:
        print(f"error: settings: {exc}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else Path("runs") / args.expName
    try:
        train_pairs, val_pairs, files = _load_data(args, cfg.depth)
        path = train(cfg, train_pairs, val_pairs, out, provenance={"files": files, "expName": args.expName},
                     progress=not args.quiet)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"trained {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
