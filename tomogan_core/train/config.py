"""The settings of a training run: :class:`TrainConfig`, checked when it is made.

Part of :mod:`tomogan_core.train`; import its public names from there."""

from __future__ import annotations

from dataclasses import dataclass, replace

from tomogan_core.data import NORMALIZATIONS
from tomogan_core.model import GeneratorConfig
from tomogan_core.modelfile import PRECISIONS

GAN_LOSSES = ("wgan-gp", "bce")
SELECT_METRICS = ("psnr", "ssim")
HISTORY_FIELDS = ("step", "elapsed_s", "cpu_s", "loss_g", "adv", "mse", "perceptual", "loss_d", "gp",
                  "val_ssim", "val_psnr", "budget_mark")


@dataclass
class TrainConfig:
    """Every setting of a training run. Defaults are the published ones (and ``config/config.schema.yaml``'s;
    a test checks); the study's configs override what a CPU budget forces smaller."""

    depth: int = 3  # d adjacent input slices (paper's best; the release's default is 1)
    upsample: str = "bilinear"  # the authors' training code
    lambda_adv: float = 20.0  # release defaults: adv 20, mse 0.5, perceptual 2
    lambda_mse: float = 0.5
    lambda_vgg: float = 2.0
    gan_loss: str = "wgan-gp"  # the paper; "bce" = the release's cross-entropy critic
    gp_weight: float = 10.0  # lambda_D of WGAN-GP (Gulrajani et al.)
    vgg_grad: bool = True  # False reproduces the release's defect (no gradient through VGG)
    vgg_weights: str = "random-init"  # "imagenet" (cached or downloaded, else an error), "random-init", or a path
    vgg_layer: int = 36  # block5_pool, as published
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    itg: int = 1  # generator updates per step
    itd: int = 2  # critic updates per step
    patch: int = 256
    batch: int = 16
    max_iter: int = 8000
    augment: bool = True  # random flips and 90-degree rotations
    normalization: str = "grey255"  # the release's 0..255 scale, where its loss weights apply; "zscore"; "input"
    seed: int = 0
    log_every: int = 10  # steps between rows of log.csv
    val_every: int = 100  # steps between validations (and best-model choice)
    ckpt_every: int = 100  # steps between checkpoints
    val_slices: int = 8  # central slices of each validation volume scored
    val_fraction: float = 0.15  # held out from the training volume when no validation volume is given
    device: str = "auto"  # auto = CUDA when available, else CPU
    precision: str = "fp32"  # "bf16": forward passes and losses under bfloat16 autocast (2x faster on AMX CPUs)
    select: str = "psnr"  # validation metric that picks the saved generator among the validated steps: psnr, ssim
    mse_warmup: int = 0  # first steps with pixel MSE alone (no critic, no VGG), then the full loss: a warm start
    init: str = ""  # start from this file's generator (model.pt, checkpoint.pt, served .pt); "" = random from seed
    cpu_budget_s: float = 0.0  # > 0: train until the steps have used this many CPU-seconds (max_iter stays a cap)
    val_points: int = 20  # with cpu_budget_s: validate at every 1/val_points of the budget (not every val_every steps)

    def __post_init__(self):
        GeneratorConfig(in_slices=self.depth, upsample=self.upsample)  # validates depth and upsampling
        if self.gan_loss not in GAN_LOSSES:
            raise ValueError(f"gan_loss must be one of {GAN_LOSSES}, got {self.gan_loss!r}")
        for name in ("lambda_adv", "lambda_mse", "lambda_vgg", "gp_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.lambda_adv + self.lambda_mse + self.lambda_vgg <= 0:
            raise ValueError("at least one of lambda_adv, lambda_mse, lambda_vgg must be > 0")
        for name in ("itg", "patch", "batch", "log_every", "val_every", "ckpt_every", "val_slices", "val_points"):
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
        if self.mse_warmup < 0 or (self.mse_warmup and self.lambda_mse <= 0):
            raise ValueError(f"mse_warmup must be >= 0 and needs lambda_mse > 0, got {self.mse_warmup}")
        if not self.cpu_budget_s >= 0:
            raise ValueError(f"cpu_budget_s must be >= 0 (0: no budget), got {self.cpu_budget_s}")
        if not isinstance(self.init, str):
            raise ValueError(f"init must be a path (a string; '' for none), got {self.init!r}")

    @property
    def warm_start(self) -> "TrainConfig":
        """The settings of the warm-start steps: this run's, with the pixel MSE alone."""
        return replace(self, lambda_adv=0.0, lambda_vgg=0.0, mse_warmup=0)

    @property
    def needs_critic(self) -> bool:
        """The generator's loss has an adversarial term: a critic is built (and kept in checkpoints)."""
        return self.lambda_adv > 0

    @property
    def trains_critic(self) -> bool:
        return self.needs_critic and self.itd > 0
