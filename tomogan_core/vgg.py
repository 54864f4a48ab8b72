"""VGG19 feature extractor for TomoGAN's perceptual loss, in plain PyTorch (no torchvision).

The convolutional part of VGG19 (Simonyan & Zisserman, 2015) is built with torchvision's exact layer
indices, so torchvision's ImageNet state dict ``vgg19-dcbb9e9d.pth`` (keys ``features.0.weight`` ...
``features.34.bias``; its ``classifier.*`` keys are dropped) loads with ``load_state_dict``.

TomoGAN [1]_ uses the VGG19 output without the classifier head (Keras ``include_top=False``, i.e.
``block5_pool``), which is torchvision's ``features[36]``, the last of the 37 modules. Which weights it
gets is the config's choice (docs/methods.md, "VGG19 weights"; :func:`load_vgg19`).

References
----------
.. [1] Z. Liu et al., "TomoGAN: low-dose synchrotron x-ray tomography with generative adversarial
   networks: discussion", JOSA A 37(3):422-434, 2020. arXiv:1902.07582.
.. [2] K. Simonyan, A. Zisserman, "Very deep convolutional networks for large-scale image
   recognition", ICLR 2015. arXiv:1409.1556.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
from pathlib import Path
from typing import List, Optional, Tuple, Union

import torch
import torch.nn as nn

__all__ = [
    "VGG19_CFG",
    "PUBLISHED_LAYER_INDEX",
    "IMAGENET_FILE",
    "IMAGENET_URL",
    "make_vgg19_features",
    "VGGFeatures",
    "load_vgg19",
]

logger = logging.getLogger(__name__)

# torchvision's configuration "E": conv widths, "M" = 2x2 max-pool
VGG19_CFG: List[Union[int, str]] = [
    64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M",
]  # fmt: skip
PUBLISHED_LAYER_INDEX = 36  # block5_pool = the last module of ``features`` (Keras include_top=False)
IMAGENET_FILE = "vgg19-dcbb9e9d.pth"
IMAGENET_URL = f"https://download.pytorch.org/models/{IMAGENET_FILE}"
IMAGENET_SHA256_PREFIX = "dcbb9e9d"  # torchvision names its files by the first hex digits of the SHA-256
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB, for inputs in [0, 1] (torchvision's ImageNet weights)
IMAGENET_STD = (0.229, 0.224, 0.225)
RANDOM_INIT_LABEL = "random-init"

PathLike = Union[str, os.PathLike]


def make_vgg19_features() -> nn.Sequential:
    """VGG19's convolutional part with torchvision's module indices: 37 modules, (conv 3x3, ReLU) pairs and
    2x2 max-pools, the convs at 0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34; (B, 3, H, W)
    to (B, 512, H/32, W/32)."""
    layers: List[nn.Module] = []
    channels = 3
    for v in VGG19_CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, int(v), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = int(v)
    return nn.Sequential(*layers)


class VGGFeatures(nn.Module):
    """Frozen VGG19 features of grayscale images, at ``layer_index`` of ``features`` (36: block5_pool).

    The module holds the whole ``features`` Sequential, so its state dict has torchvision's keys; the
    forward pass stops at ``layer_index``. ``weights_label`` (set by :func:`load_vgg19`) is recorded
    downstream.

    The published release fed Keras' VGG19 with 'caffe' preprocessing (BGR, ImageNet mean subtracted,
    0..255). The torchvision weights used here were trained differently and expect RGB inputs in [0, 1]
    normalised by the ImageNet mean and std, which is what :meth:`forward` applies.
    """

    def __init__(self, layer_index: int = PUBLISHED_LAYER_INDEX, weights_label: str = RANDOM_INIT_LABEL):
        super().__init__()
        self.features = make_vgg19_features()
        if not 0 <= layer_index < len(self.features):
            raise ValueError(f"layer_index must be in 0..{len(self.features) - 1}, got {layer_index}")
        self.layer_index = layer_index
        self.weights_label = weights_label
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "VGGFeatures":
        """Keep eval mode whatever is asked (the features are a fixed measurement)."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) grayscale images, mapped to [0, 1] by the caller, to the activation at
        ``layer_index``: (B, 512, H/32, W/32) at the published layer."""
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"expected a grayscale batch (B, 1, H, W), got {list(x.shape)}")
        x = (x.expand(-1, 3, -1, -1) - self.mean) / self.std  # (B, 3, H, W)
        for index, module in enumerate(self.features):
            x = module(x)  # (B, C_i, H_i, W_i)
            if index == self.layer_index:
                break
        return x


def _init_random(features: nn.Sequential, seed: int) -> None:
    """Seeded torchvision-style initialisation: Kaiming-normal (fan_out, ReLU) kernels, zero biases."""
    gen = torch.Generator().manual_seed(seed)
    for module in features:
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu", generator=gen)
            nn.init.zeros_(module.bias)


def _file_label(path: Path) -> str:
    """Label a weights file: ``imagenet:<name>`` if its SHA-256 matches torchvision's, else name + hash."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    sha = digest.hexdigest()
    if sha.startswith(IMAGENET_SHA256_PREFIX):
        return f"imagenet:{IMAGENET_FILE}"
    return f"file:{path.name}:sha256={sha[:16]}"


def _load_file(module: VGGFeatures, path: Path) -> None:
    """Load a torchvision-style VGG19 state dict (``features.*`` keys) from ``path`` into ``module``."""
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and unsupported-type errors vary
        raise ValueError(f"{path}: not a PyTorch state dict ({type(exc).__name__})") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a VGG19 state dict (holds a {type(state).__name__})")
    features = {k: v for k, v in state.items() if isinstance(k, str) and k.startswith("features.")}
    try:
        module.load_state_dict(features, strict=True)
    except RuntimeError:
        expected = len(module.state_dict())
        raise ValueError(
            f"{path}: not a VGG19 state dict (need {expected} features.* tensors with torchvision's "
            f"names and shapes, found {len(features)} features.* keys)"
        ) from None


def _download(timeout_s: float) -> Optional[Path]:
    """Try to fetch the ImageNet weights into the hub cache; return the file, or None on any failure.

    The attempt runs in a daemon thread and is abandoned after about ``timeout_s`` seconds, since a
    socket timeout alone does not bound a hanging DNS lookup.
    """
    errors: List[BaseException] = []

    def _fetch() -> None:
        try:
            torch.hub.load_state_dict_from_url(IMAGENET_URL, map_location="cpu", progress=False, check_hash=True)
        except Exception as exc:  # no network, timeout, HTTP error, bad hash
            errors.append(exc)

    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout_s)
    try:
        thread = threading.Thread(target=_fetch, name="vgg19-download", daemon=True)
        thread.start()
        thread.join(timeout_s + 1.0)
    finally:
        socket.setdefaulttimeout(old_timeout)
    if thread.is_alive() or errors:
        logger.info("could not download %s: %s", IMAGENET_URL, errors[0] if errors else "timed out")
        return None
    path = Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_FILE
    return path if path.is_file() else None


def load_vgg19(
    weights: PathLike = "random-init",
    *,
    layer_index: int = PUBLISHED_LAYER_INDEX,
    seed: int = 0,
    download: bool = True,
    timeout_s: float = 5.0,
) -> Tuple[VGGFeatures, str]:
    """Build the frozen VGG19 feature extractor (CPU) and load its weights.

    The weights are the caller's explicit choice, never the machine's: one config means one result.

    Parameters
    ----------
    weights : {"imagenet", "random-init"} or path, default "random-init"
        ``"imagenet"``: torchvision's ``vgg19-dcbb9e9d.pth`` from the torch hub cache
        (``torch.hub.get_dir()/checkpoints``), else downloaded (if ``download``), else a ValueError.
        ``"random-init"``: seeded by ``seed`` (the perceptual term is then not the paper's).
        A path: a torchvision-style VGG19 state dict (``classifier.*`` keys are ignored).
    timeout_s : float, default 5.0
        Socket timeout of the download attempt, so that it fails fast offline.

    Returns
    -------
    module : VGGFeatures
    weights_label : str
        ``"imagenet:vgg19-dcbb9e9d.pth"``, ``"file:<name>:sha256=<prefix>"`` or ``"random-init"``
        (also ``module.weights_label``). Record it with every result.

    Raises
    ------
    ValueError
        ``"{path}: ..."`` if a given path is missing or does not hold a VGG19 state dict; for ``"imagenet"``,
        when the file is neither cached nor downloadable.
    """
    module = VGGFeatures(layer_index=layer_index)
    if weights == "random-init":
        path = None
    elif weights == "imagenet":
        path = Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_FILE
        if not path.is_file():
            path = _download(timeout_s) if download else None
        if path is None:
            cached = Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_FILE
            raise ValueError(f"{cached}: VGG19 ImageNet weights not in the torch hub cache and not downloadable "
                             f"(put {IMAGENET_URL} there, give its path, or choose vgg_weights: random-init)")
    else:
        path = Path(weights)

    if path is None:
        _init_random(module.features, seed)
        label = RANDOM_INIT_LABEL
    else:
        _load_file(module, path)
        label = _file_label(path)
    module.weights_label = label
    logger.info("VGG19 features at layer %d, weights %s", layer_index, label)
    return module, label
