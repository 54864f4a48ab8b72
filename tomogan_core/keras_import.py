"""Import the authors' released Keras generator (``TomoGAN.h5``) into :class:`~tomogan_core.model.Generator`.

Reads the Keras 2.2.4 HDF5 file with h5py only (no TensorFlow). The file holds the model config as
JSON (attribute ``model_config``) and the weights under ``model_weights/<layer>/<layer>/kernel:0`` and
``bias:0``, kernels laid out (kh, kw, in, out). The 16 Conv2D layers of the config, in order, map onto
the 16 convolutions of our generator, in order. The importer checks the topology it relies on (16 convs,
three upsampling layers, each concatenation taking the encoder's skip tensor first).

The released file's config names no interpolation for its ``UpSampling2D`` layers, so Keras loads them
as nearest-neighbour; that is the default here. The authors trained with bilinear upsampling.

``tomogan-import-keras IN.h5 OUT.pt [--upsample nearest|bilinear]`` (or ``python -m
tomogan_core.keras_import``) writes the served format (:mod:`tomogan_core.export`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import h5py
import numpy as np
import torch
import torch.nn as nn

from simulate.plumbing import InputError, cli

from .model import Generator, GeneratorConfig

__all__ = [
    "RELEASED_WEIGHTS_SHA256",
    "released_weights_path",
    "read_keras_generator",
    "load_keras_generator",
    "main",
]

logger = logging.getLogger(__name__)

RELEASED_WEIGHTS_SHA256 = "c6f4330cf66525b8fcf038d8341085f819bdb7b151dab619054f783c0cc81973"
IMPORT_CHOICES = ("nearest", "bilinear")  # the file holds no transposed-conv weights
KERAS_RAW_INPUT_SCALE = {"kind": "affine", "offset": 0.0, "scale": 1.0, "note": "raw 0..255 grey levels"}

# our convolutions in the order the Keras config lists its Conv2D layers (conv2d, conv2d_1, ... conv2d_15)
GENERATOR_CONVS = (
    "stem",
    "enc1.conv1", "enc1.conv2",
    "enc2.conv1", "enc2.conv2",
    "enc3.conv1", "enc3.conv2",
    "bottleneck",
    "dec3.conv1", "dec3.conv2",
    "dec2.conv1", "dec2.conv2",
    "dec1.conv1", "dec1.conv2",
    "head1",
    "head2",
)  # fmt: skip

PathLike = Union[str, os.PathLike]


def released_weights_path() -> Path:
    """Return the path of the authors' ``TomoGAN.h5`` shipped in ``tomogan_core/weights/``.

    Examples
    --------
    >>> released_weights_path().name
    'TomoGAN.h5'
    """
    return Path(__file__).resolve().parent / "weights" / "TomoGAN.h5"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _inbound_names(layer: Dict[str, Any]) -> List[str]:
    """Names of the layers feeding a functional-API layer (Keras 2 ``inbound_nodes`` format)."""
    nodes = layer.get("inbound_nodes") or []
    return [entry[0] for entry in nodes[0]] if nodes else []


def _parse_config(path: Path, config_json: str) -> Tuple[List[str], List[str]]:
    """The 16 Conv2D layer names (in config order) and each UpSampling2D layer's interpolation (``"nearest"``
    where the config names none) from ``model_config``, checking the topology."""
    try:
        layers = json.loads(config_json)["config"]["layers"]
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{path}: unreadable Keras model_config") from None
    kinds = {layer["name"]: layer["class_name"] for layer in layers}
    conv_names = [layer["name"] for layer in layers if layer["class_name"] == "Conv2D"]
    interpolations = [
        layer["config"].get("interpolation") or "nearest"
        for layer in layers
        if layer["class_name"] == "UpSampling2D"
    ]
    if any(layer["class_name"] == "Conv2DTranspose" for layer in layers):
        raise ValueError(f"{path}: transposed-conv upsampling is not supported by this importer")
    if len(conv_names) != len(GENERATOR_CONVS) or len(interpolations) != 3:
        raise ValueError(
            f"{path}: expected {len(GENERATOR_CONVS)} Conv2D and 3 UpSampling2D layers, "
            f"found {len(conv_names)} and {len(interpolations)}"
        )
    for layer in layers:
        if layer["class_name"] == "Concatenate":
            inputs = [kinds.get(name) for name in _inbound_names(layer)]
            if inputs != ["Conv2D", "UpSampling2D"]:
                raise ValueError(
                    f"{path}: {layer['name']} concatenates {inputs}, expected [skip Conv2D, UpSampling2D]"
                )
    return conv_names, interpolations


def _read_conv(path: Path, weights: h5py.Group, name: str) -> Tuple[np.ndarray, np.ndarray]:
    """Read one Conv2D layer's kernel (kh, kw, in, out) and bias (out,) as float32 arrays."""
    arrays = []
    for what in ("kernel:0", "bias:0"):
        key = f"{name}/{name}/{what}"
        if key not in weights:
            raise ValueError(f"{path}: missing weight model_weights/{key}")
        arrays.append(np.asarray(weights[key][()], dtype=np.float32))
    return arrays[0], arrays[1]


def read_keras_generator(path: PathLike) -> Dict[str, Any]:
    """Read a Keras 2 HDF5 model file (``model.save``) of the TomoGAN generator into plain arrays.

    Returns
    -------
    dict
        ``convs``: list of 16 ``(keras_name, kernel, bias)`` with kernels (kh, kw, in, out), in config
        order; ``interpolation``: the file's upsampling mode; ``in_slices``: input channels;
        ``keras_version``: the saving Keras version.

    Raises
    ------
    ValueError
        ``"{path}: ..."`` for a missing, non-HDF5 or corrupt file, or a missing weight.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    if not h5py.is_hdf5(path):
        raise ValueError(f"{path}: not an HDF5 file")
    try:
        with h5py.File(path, "r") as fh:
            if "model_config" not in fh.attrs:
                raise ValueError(f"{path}: no Keras model_config attribute (not a saved Keras model)")
            config_json = fh.attrs["model_config"]
            if isinstance(config_json, bytes):
                config_json = config_json.decode("utf-8")
            conv_names, interpolations = _parse_config(path, config_json)
            weights = fh["model_weights"] if "model_weights" in fh else fh
            convs = [(name, *_read_conv(path, weights, name)) for name in conv_names]
            keras_version = fh.attrs.get("keras_version", b"unknown")
    except ValueError:
        raise
    except (OSError, KeyError, RuntimeError) as exc:  # h5py's errors for truncated/corrupt files
        raise ValueError(f"{path}: corrupt or truncated HDF5 file ({type(exc).__name__})") from None
    if len(set(interpolations)) != 1:
        raise ValueError(f"{path}: mixed upsampling modes {interpolations}")
    if isinstance(keras_version, bytes):
        keras_version = keras_version.decode("utf-8")
    return {
        "convs": convs,
        "interpolation": interpolations[0],
        "in_slices": int(convs[0][1].shape[2]),
        "keras_version": str(keras_version),
    }


def _copy_conv(path: Path, conv: nn.Module, keras_name: str, kernel: np.ndarray, bias: np.ndarray) -> None:
    """Copy a Keras (kh, kw, in, out) kernel and its bias into a PyTorch (out, in, kh, kw) conv."""
    out_ch, in_ch, kh, kw = conv.weight.shape
    expected = ((kh, kw, in_ch, out_ch), (out_ch,))
    if (tuple(kernel.shape), tuple(bias.shape)) != expected:
        raise ValueError(
            f"{path}: shape mismatch for {keras_name}: kernel {tuple(kernel.shape)} bias {tuple(bias.shape)}, "
            f"expected kernel {expected[0]} bias {expected[1]}"
        )
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))))
        conv.bias.copy_(torch.from_numpy(bias))


def _build_generator(path: Path, keras: Dict[str, Any], upsample: Optional[str]) -> Generator:
    """Build a generator from :func:`read_keras_generator`'s output (see :func:`load_keras_generator`)."""
    mode = keras["interpolation"] if upsample is None else upsample
    if mode != keras["interpolation"]:
        logger.info("%s: file upsamples with %s, building the generator with %s", path, keras["interpolation"], mode)
    generator = Generator(GeneratorConfig(in_slices=keras["in_slices"], upsample=mode))
    modules = dict(generator.named_modules())
    for ours, (keras_name, kernel, bias) in zip(GENERATOR_CONVS, keras["convs"]):
        _copy_conv(path, modules[ours], keras_name, kernel, bias)
    logger.info("%s: imported %d parameters (Keras %s)", path, generator.get_num_params(), keras["keras_version"])
    return generator.eval()


def load_keras_generator(path: PathLike, upsample: Optional[str] = "nearest") -> Generator:
    """Build a :class:`Generator` holding the weights of a Keras TomoGAN file.

    Parameters
    ----------
    upsample : {"nearest", "bilinear"} or None, default "nearest"
        Upsampling of the built generator. ``"nearest"`` reproduces what Keras computes from the
        released file; ``"bilinear"`` is what the authors trained with; ``None`` takes the file's setting.

    Returns
    -------
    Generator
        In eval mode, float32, CPU. Input and output are raw 0..255 grey levels for the release.

    Raises
    ------
    ValueError
        ``"{path}: ..."`` for a missing, non-HDF5 or corrupt file, a missing weight, a shape mismatch,
        or an unknown ``upsample``.
    """
    path = Path(path)
    if upsample is not None and upsample not in IMPORT_CHOICES:
        raise ValueError(f"{path}: upsample must be one of {IMPORT_CHOICES} or None, got {upsample!r}")
    return _build_generator(path, read_keras_generator(path), upsample)


def _parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tomogan-import-keras",
        description="Convert the authors' Keras TomoGAN.h5 generator into the served TorchScript format "
        "(OUT.pt plus an OUT.json card).",
    )
    parser.add_argument("keras_file", type=Path, help="Keras HDF5 model file, e.g. TomoGAN.h5")
    parser.add_argument("out", type=Path, help="output TorchScript file, e.g. tomogan-release.pt")
    parser.add_argument(
        "--upsample",
        choices=IMPORT_CHOICES,
        default="nearest",
        help="upsampling of the imported generator: nearest (what Keras computes from the released file, "
        "default) or bilinear (what the authors trained with)",
    )
    return parser.parse_args(argv)


@cli
def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``tomogan-import-keras``; bad input exits with status 2 and one ``error:`` line."""
    from .export import export_served  # deferred: keeps ``import tomogan_core.keras_import`` light

    args = _parse_args(argv)
    try:
        keras = read_keras_generator(args.keras_file)
        generator = _build_generator(args.keras_file, keras, args.upsample)
        card = {
            "input_scale": dict(KERAS_RAW_INPUT_SCALE),
            "source": f"keras-import: {args.keras_file.name} sha256={_sha256(args.keras_file)}",
            "keras_file_upsample": keras["interpolation"],
            "license": "Apache-2.0 (weights by Liu et al., AIScienceTutorial/Denoising)",
        }
        export_served(generator, args.out, card)
    except InputError:
        raise
    except (ValueError, OSError) as exc:
        raise InputError(args.keras_file, str(exc)) from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
