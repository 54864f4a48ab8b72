"""The TomoGAN generator and critic, as published.

References
----------
.. [1] Z. Liu, T. Bicer, R. Kettimuthu, D. Gursoy, F. De Carlo, I. Foster, "TomoGAN: low-dose
   synchrotron x-ray tomography with generative adversarial networks: discussion",
   J. Opt. Soc. Am. A 37(3):422-434, 2020. arXiv:1902.07582.
.. [2] The authors' public release (AIScienceTutorial/Denoising, Apache-2.0): Keras model code and
   the trained generator ``TomoGAN.h5`` (Keras 2.2.4-tf, d = 1), loaded by :mod:`tomogan_core.keras_import`.

Notes
-----
The generator is a 3-level U-Net. The input holds ``d`` adjacent slices as channels and the output is
the centre slice. Its height and width must be multiples of 8 (three 2x2 max-pools); use
:meth:`Generator.forward_any_size` for other sizes. The upsampling mode is a config switch:

- ``"bilinear"``: what the authors' training code builds (Keras ``UpSampling2D(interpolation='bilinear')``,
  i.e. half-pixel centres, PyTorch ``align_corners=False``).
- ``"nearest"``: what the released ``TomoGAN.h5`` loads as (its saved config names no interpolation).
- ``"transpose"``: the release's alternative, a 4x4 stride-2 transposed conv + ReLU keeping the channel count.

Tensors are NCHW throughout: ``B`` batch, ``d`` input slices, ``H, W`` height and width.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "UPSAMPLE_MODES",
    "SIZE_MULTIPLE",
    "pad_to_multiple",
    "GeneratorConfig",
    "Generator",
    "generator_flops",
    "DiscriminatorConfig",
    "Discriminator",
]

logger = logging.getLogger(__name__)

UPSAMPLE_MODES = ("bilinear", "nearest", "transpose")
SIZE_MULTIPLE = 8  # 2**3: the generator pools three times, the critic strides by 2 three times


# -----------------------------------------------------------------------------
# helpers and small blocks


def pad_to_multiple(x: torch.Tensor, multiple: int) -> Tuple[torch.Tensor, int, int]:
    """Reflect-pad the bottom and right of a (B, C, H, W) batch up to multiples of ``multiple``.

    Returns the padded batch (``x`` itself when no padding is needed; replicate-padded where a side is too
    small to reflect) and the original ``h, w``, to crop the result back with ``[..., :h, :w]``.

    Examples
    --------
    >>> padded, h, w = pad_to_multiple(torch.zeros(1, 3, 37, 50), 8)
    >>> tuple(padded.shape), h, w
    ((1, 3, 40, 56), 37, 50)
    """
    h, w = x.shape[-2], x.shape[-1]
    pad_h = (multiple - h % multiple) % multiple
    pad_w = (multiple - w % multiple) % multiple
    if pad_h == 0 and pad_w == 0:
        return x, h, w
    # reflect needs the pad to be smaller than the side
    mode = "reflect" if (pad_h < h and pad_w < w) else "replicate"
    return F.pad(x, [0, pad_w, 0, pad_h], mode=mode), h, w


def _keras_same_pad(x: torch.Tensor, kernel_size: int, stride: int) -> torch.Tensor:
    """Zero-pad ``x`` exactly as Keras ``padding='same'`` does before a strided convolution.

    Keras (TensorFlow) puts ``total // 2`` before and the rest after, with
    ``total = max((ceil(n / s) - 1) * s + k - n, 0)``. For a 3x3 stride-2 conv on an even side
    that is 0 before and 1 after, which PyTorch's symmetric ``padding=`` cannot express.
    """
    h, w = x.shape[-2], x.shape[-1]
    pad_h = max((-(-h // stride) - 1) * stride + kernel_size - h, 0)
    pad_w = max((-(-w // stride) - 1) * stride + kernel_size - w, 0)
    return F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])


class DoubleConv(nn.Module):
    """Two 3x3 'same' convolutions, each followed by ReLU (the release's ``unet_conv_block``)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))  # (B, out, H, W)
        x = F.relu(self.conv2(x))  # (B, out, H, W)
        return x


def make_upsample(mode: str, channels: int) -> nn.Module:
    """One x2 upsampling step of ``mode`` (module docstring): (B, channels, H, W) -> (B, channels, 2H, 2W)."""
    if mode == "bilinear":
        # Keras UpSampling2D(interpolation='bilinear') uses half-pixel centres = align_corners=False
        return nn.Upsample(scale_factor=2.0, mode="bilinear", align_corners=False)
    if mode == "nearest":
        return nn.Upsample(scale_factor=2.0, mode="nearest")
    if mode == "transpose":
        # Keras Conv2DTranspose(k=4, s=2, padding='same') pads 1 on each side: output exactly 2H
        return nn.Sequential(
            nn.ConvTranspose2d(channels, channels, kernel_size=4, stride=2, padding=1),
            nn.ReLU(),
        )
    raise ValueError(f"unknown upsample mode {mode!r}; choose one of {UPSAMPLE_MODES}")


# -----------------------------------------------------------------------------
# generator


@dataclass
class GeneratorConfig:
    """Settings of the TomoGAN generator; the layer widths are the published architecture."""

    in_slices: int = 3  # d adjacent slices stacked as input channels (the paper's best; the release uses 1)
    upsample: str = "bilinear"  # "bilinear" (paper/training code), "nearest" (TomoGAN.h5), "transpose"

    def __post_init__(self):
        if isinstance(self.in_slices, bool) or not isinstance(self.in_slices, int) or self.in_slices < 1:
            raise ValueError(f"in_slices must be a positive integer, got {self.in_slices!r}")
        if self.in_slices % 2 == 0:
            raise ValueError(
                f"in_slices must be odd so that the output is the centre slice, got {self.in_slices}"
            )
        if self.upsample not in UPSAMPLE_MODES:
            raise ValueError(f"upsample must be one of {UPSAMPLE_MODES}, got {self.upsample!r}")


class Generator(nn.Module):
    """The TomoGAN generator: a 3-level U-Net from ``d`` noisy slices to one denoised slice.

    Notes
    -----
    Layers (and their names in the released ``TomoGAN.h5``, in order)::

        stem        1x1 conv d->8, ReLU                      conv2d
        enc1        3x3 convs 8->32, 32->32 (skip 1)         conv2d_1, conv2d_2
        enc2        pool, 3x3 convs 32->64, 64->64 (skip 2)  conv2d_3, conv2d_4
        enc3        pool, 3x3 convs 64->128, 128->128 (skip 3) conv2d_5, conv2d_6
        bottleneck  pool, 3x3 conv 128->128                  conv2d_7
        dec3        up, cat[skip 3, up], 256->64, 64->64     conv2d_8, conv2d_9
        dec2        up, cat[skip 2, up], 128->32, 32->32     conv2d_10, conv2d_11
        dec1        up, cat[skip 1, up], 64->32, 32->32      conv2d_12, conv2d_13
        head1       1x1 conv 32->16, ReLU                    conv2d_14
        head2       1x1 conv 16->1, linear                   conv2d_15

    694,897 parameters at d = 1 and 694,913 at d = 3 (``"bilinear"`` or ``"nearest"``).

    Examples
    --------
    >>> model = Generator(GeneratorConfig(in_slices=3)).eval()
    >>> model.get_num_params()
    694913
    >>> with torch.no_grad():
    ...     tuple(model.forward_any_size(torch.zeros(2, 3, 37, 50)).shape)
    (2, 1, 37, 50)
    """

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        self.cfg = cfg
        self.in_slices = cfg.in_slices  # plain attributes, readable from TorchScript
        self.upsample = cfg.upsample
        self.size_multiple = SIZE_MULTIPLE

        self.stem = nn.Conv2d(cfg.in_slices, 8, kernel_size=1)
        self.enc1 = DoubleConv(8, 32)
        self.enc2 = DoubleConv(32, 64)
        self.enc3 = DoubleConv(64, 128)
        self.bottleneck = nn.Conv2d(128, 128, kernel_size=3, padding=1)
        self.up3 = make_upsample(cfg.upsample, 128)
        self.dec3 = DoubleConv(128 + 128, 64)
        self.up2 = make_upsample(cfg.upsample, 64)
        self.dec2 = DoubleConv(64 + 64, 32)
        self.up1 = make_upsample(cfg.upsample, 32)
        self.dec1 = DoubleConv(32 + 32, 32)
        self.head1 = nn.Conv2d(32, 16, kernel_size=1)
        self.head2 = nn.Conv2d(16, 1, kernel_size=1)

        self.apply(_init_weights)
        logger.debug("generator: %d parameters (%s)", self.get_num_params(), cfg)

    def get_num_params(self) -> int:
        """Return the number of parameters."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Denoise the centre slice: (B, d, H, W), ``H`` and ``W`` multiples of 8, to (B, 1, H, W) on the
        input's scale, unclipped."""
        if x.dim() != 4 or x.shape[1] != self.in_slices:
            raise ValueError(
                f"expected input of shape (B, {self.in_slices}, H, W), got {list(x.shape)}"
            )
        m = self.size_multiple
        if x.shape[-2] % m != 0 or x.shape[-1] % m != 0:
            raise ValueError(
                f"height and width must be multiples of {m}, got {list(x.shape[-2:])}; "
                "use forward_any_size() to pad and crop"
            )
        x = F.relu(self.stem(x))  # (B, 8, H, W)
        s1 = self.enc1(x)  # (B, 32, H, W)
        s2 = self.enc2(F.max_pool2d(s1, 2))  # (B, 64, H/2, W/2)
        s3 = self.enc3(F.max_pool2d(s2, 2))  # (B, 128, H/4, W/4)
        x = F.relu(self.bottleneck(F.max_pool2d(s3, 2)))  # (B, 128, H/8, W/8)
        # decoder: the skip tensor comes first in the concatenation, as in the release
        x = self.dec3(torch.cat([s3, self.up3(x)], dim=1))  # (B, 256, H/4, W/4) -> (B, 64, H/4, W/4)
        x = self.dec2(torch.cat([s2, self.up2(x)], dim=1))  # (B, 128, H/2, W/2) -> (B, 32, H/2, W/2)
        x = self.dec1(torch.cat([s1, self.up1(x)], dim=1))  # (B, 64, H, W) -> (B, 32, H, W)
        x = F.relu(self.head1(x))  # (B, 16, H, W)
        return self.head2(x)  # (B, 1, H, W)

    def forward_any_size(self, x: torch.Tensor) -> torch.Tensor:
        """Run :meth:`forward` on any ``H, W >= 1``: reflect-padded to a multiple of 8, cropped back."""
        padded, h, w = pad_to_multiple(x, self.size_multiple)  # (B, d, H', W')
        return self.forward(padded)[..., :h, :w]  # (B, 1, H, W)


def generator_flops(depth: int, size: int) -> float:
    """FLOPs of one forward pass of the generator on a ``size`` x ``size`` slice with ``depth`` inputs.

    Counted by PyTorch's ``FlopCounterMode`` on the meta device (nothing is computed): convolutions and
    matmuls, 2 FLOPs per multiply-add; activations, pooling and upsampling are not counted.
    """
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        gen = Generator(GeneratorConfig(in_slices=depth))
        x = torch.randn(1, depth, size, size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        gen(x)
    return float(counter.get_total_flops())


def _init_weights(module: nn.Module) -> None:
    """Keras' defaults, as the release trains from: Glorot-uniform kernels, zero biases."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


# -----------------------------------------------------------------------------
# discriminator (critic)


@dataclass
class DiscriminatorConfig:
    """Settings of the TomoGAN critic; the layer widths are the published architecture."""

    patch_size: int = 256  # side of the square patches it scores (the release trains on 256x256)
    in_channels: int = 1  # it scores single denoised / ground-truth slices

    def __post_init__(self):
        if isinstance(self.patch_size, bool) or not isinstance(self.patch_size, int) or self.patch_size < SIZE_MULTIPLE:
            raise ValueError(f"patch_size must be an integer >= {SIZE_MULTIPLE}, got {self.patch_size!r}")
        if self.patch_size % SIZE_MULTIPLE != 0:
            raise ValueError(f"patch_size must be a multiple of {SIZE_MULTIPLE}, got {self.patch_size}")
        if isinstance(self.in_channels, bool) or not isinstance(self.in_channels, int) or self.in_channels < 1:
            raise ValueError(f"in_channels must be a positive integer, got {self.in_channels!r}")


class Discriminator(nn.Module):
    """The TomoGAN critic: six 3x3 convs, then two dense layers to one unbounded score.

    Notes
    -----
    Layers: 3x3 convs with ReLU 64, 64 (stride 2), 128, 128 (stride 2), 128, 4 (stride 2); flatten
    (``4 * (patch/8)**2`` features); dense 64, ReLU; dense 1. No sigmoid: the output is a WGAN critic
    score, or a logit for the cross-entropy loss. Padding is Keras 'same' exactly (0 before, 1 after
    for the stride-2 convs). Flattening is in PyTorch's (C, H, W) order, not Keras' (H, W, C); only
    matters for importing Keras critic weights, which the release does not ship.

    Examples
    --------
    >>> critic = Discriminator(DiscriminatorConfig(patch_size=64))
    >>> critic.flatten_size, tuple(critic(torch.zeros(5, 1, 64, 64)).shape)
    (256, (5, 1))
    """

    # (out_channels, stride) of the six 3x3 convs, as published
    conv_layers = ((64, 1), (64, 2), (128, 1), (128, 2), (128, 1), (4, 2))

    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        self.cfg = cfg
        self.patch_size = cfg.patch_size
        self.in_channels = cfg.in_channels
        self.strides: List[int] = [s for _, s in self.conv_layers]

        convs = []
        channels = cfg.in_channels
        for out_channels, stride in self.conv_layers:
            # padding=0 here: forward() pads the Keras 'same' way first
            convs.append(nn.Conv2d(channels, out_channels, kernel_size=3, stride=stride, padding=0))
            channels = out_channels
        self.convs = nn.ModuleList(convs)
        self.flatten_size = channels * (cfg.patch_size // SIZE_MULTIPLE) ** 2
        self.fc1 = nn.Linear(self.flatten_size, 64)
        self.fc2 = nn.Linear(64, 1)

        self.apply(_init_weights)
        logger.debug("critic: %d parameters (%s)", self.get_num_params(), cfg)

    def get_num_params(self) -> int:
        """Return the number of parameters."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Score a (B, in_channels, patch_size, patch_size) batch: (B, 1) unbounded scores (or logits)."""
        p = self.patch_size
        if x.dim() != 4 or x.shape[1] != self.in_channels or x.shape[-2] != p or x.shape[-1] != p:
            raise ValueError(
                f"expected input of shape (B, {self.in_channels}, {p}, {p}), got {list(x.shape)}"
            )
        for conv, stride in zip(self.convs, self.strides):
            x = F.relu(conv(_keras_same_pad(x, 3, stride)))  # (B, 64|64|128|128|128|4, P .. P/8)
        x = x.flatten(1)  # (B, 4 * (P/8)**2)
        x = F.relu(self.fc1(x))  # (B, 64)
        return self.fc2(x)  # (B, 1)
