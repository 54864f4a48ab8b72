"""The served-model format: a TorchScript generator plus a JSON model card.

A served model is two files side by side:

- ``NAME.pt``: the generator compiled with TorchScript (eval mode, float32, CPU). Calling it on an
  NCHW float32 tensor ``(B, d, H, W)`` of data values (any height and width) returns the enhanced
  centre slices ``(B, 1, H, W)`` in the same units: the data scaling of ``input_scale``, the
  reflect-padding to a multiple of 8 and the crop back are all part of the scripted forward, so
  ``torch.jit.load("NAME.pt")(x)`` needs nothing from this package.
- ``NAME.json``: the model card: ``format_version``, ``in_slices``, ``upsample``, ``input_scale`` (the
  affine map from data to network units, ``z = (data - offset) / scale``, applied inside the module and
  inverted on its output), ``source``, ``torch_version``, ``created`` and whatever the caller adds. A
  copy is also embedded in the ``.pt`` file as the extra file ``card.json``.

Both files are written atomically. Reading the format lives in :mod:`tomogan_core.modelfile`.
TorchScript warns that it is deprecated in favour of ``torch.export`` in the PyTorch this project pins
(2.13); it still works, and those warnings are silenced around these calls.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import logging
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, Union

import torch
import torch.nn as nn

from simulate.plumbing import InputError, atomic_path, cli, write_text

from .model import SIZE_MULTIPLE, Generator
from .modelfile import EMBEDDED_CARD, SERVED_FORMAT_VERSION, card_path, load_model, load_served, quiet_torchscript

__all__ = ["FORMAT_VERSION", "REQUIRED_CARD_KEYS", "card_path", "export_served", "load_served", "export_trained", "main"]

logger = logging.getLogger(__name__)

FORMAT_VERSION = SERVED_FORMAT_VERSION  # the card's format_version (reading lives in tomogan_core.modelfile)
REQUIRED_CARD_KEYS = ("input_scale", "source")  # what only the caller can know

PathLike = Union[str, os.PathLike]


class ServedGenerator(nn.Module):
    """Wraps a :class:`~tomogan_core.model.Generator`: data units in and out, any H, W."""

    def __init__(self, generator: Generator, offset: float = 0.0, scale: float = 1.0):
        super().__init__()
        self.net = generator
        self.register_buffer("offset", torch.tensor(float(offset)))
        self.register_buffer("scale", torch.tensor(float(scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.offset) / self.scale  # (B, d, H, W) network units
        return self.net.forward_any_size(z) * self.scale + self.offset  # (B, 1, H, W)


def _build_card(generator: Generator, card: Dict[str, Any]) -> Dict[str, Any]:
    """Merge the caller's card with the fields this module owns, and check it."""
    missing = [k for k in REQUIRED_CARD_KEYS if k not in card]
    if missing:
        raise ValueError(f"card is missing required key(s) {missing}")
    for key, value in (("in_slices", generator.cfg.in_slices), ("upsample", generator.cfg.upsample)):
        if key in card and card[key] != value:
            raise ValueError(f"card says {key}={card[key]!r} but the generator has {value!r}")
    full = {
        "format_version": FORMAT_VERSION,
        "model": "tomogan-generator",
        "in_slices": generator.cfg.in_slices,
        "upsample": generator.cfg.upsample,
        "generator_config": asdict(generator.cfg),
        "num_params": generator.get_num_params(),
        "size_multiple": SIZE_MULTIPLE,
        "input_layout": "NCHW float32, any H, W (padded to size_multiple inside)",
        "torch_version": torch.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    full.update(card)
    full["format_version"] = FORMAT_VERSION
    return full


def export_served(generator: Generator, path: PathLike, card: Dict[str, Any]) -> Path:
    """Write a generator in the served format: TorchScript ``path`` plus its JSON card.

    ``generator`` is copied (to CPU, float32, eval mode), not modified. ``card`` must hold ``input_scale``
    (e.g. ``{"kind": "affine", "offset": 0.0, "scale": 1.0, "note": "raw 0..255 grey levels"}``) and
    ``source`` (provenance string); other JSON-serialisable keys are copied as given. Returns the card's
    path (``OUT.pt`` -> ``OUT.json``).

    Raises
    ------
    ValueError
        If the card lacks a required key, disagrees with the generator, or is not JSON-serialisable.
    """
    path = Path(path)
    json_path = card_path(path)
    if path == json_path:
        raise ValueError(f"{path}: the served model file must not end in .json")
    full_card = _build_card(generator, card)
    try:
        card_text = json.dumps(full_card, indent=2, sort_keys=True) + "\n"
    except (TypeError, ValueError) as exc:
        raise ValueError(f"card is not JSON-serialisable: {exc}") from None

    scale = full_card["input_scale"]
    if scale.get("kind") != "affine" or not float(scale.get("scale", 0)) > 0:
        raise ValueError(f"card input_scale must be affine with a positive scale, got {scale!r}")
    net = copy.deepcopy(generator).to(device="cpu", dtype=torch.float32).eval()
    with quiet_torchscript():
        scripted = torch.jit.script(ServedGenerator(net, float(scale["offset"]), float(scale["scale"])))

    with atomic_path(path) as tmp_pt:
        with quiet_torchscript():
            torch.jit.save(scripted, str(tmp_pt), _extra_files={EMBEDDED_CARD: card_text})
        write_text(json_path, card_text)
    logger.info("wrote served model %s and card %s", path, json_path)
    return json_path


def export_trained(model_path: PathLike, out: PathLike) -> Path:
    """Serve a trained ``model.pt`` (from ``tomogan-train``): TorchScript ``out`` plus its card, which records
    the normalisation, training settings and data, VGG weights and validation metrics, and
    ``training_corpus`` (:func:`tomogan_core.data.describe_training_data`'s summary) when recorded.
    """
    generator, norm, info = load_model(model_path)
    corpus = (info.get("provenance") or {}).get("training_data") or {}
    card = {
        "input_scale": norm.card_scale(),
        "source": f"trained: {Path(model_path)}",
        "normalization": norm.as_dict(),
        "train_config": info.get("config", {}),
        "train_data": info.get("train_data", []),
        "val_data": info.get("val_data", []),
        "provenance": info.get("provenance", {}),
        "vgg_weights": info.get("vgg_weights", "unknown"),
        "validation": {"step": info.get("step"), "ssim": info.get("val_ssim"), "psnr": info.get("val_psnr"),
                       "region": "circular field of view"},
        "steps_trained": info.get("steps_trained"),
        "trained_on_device": info.get("device"),
        "versions": info.get("versions", {}),
    }
    if corpus.get("summary"):
        card["training_corpus"] = corpus["summary"]
    return export_served(generator, out, card)


@cli
def main(argv=None) -> int:
    """``tomogan-export MODEL.pt OUT.pt``: write the served TorchScript model and its JSON card."""
    import argparse

    p = argparse.ArgumentParser(prog="tomogan-export", description="Write a trained TomoGAN model "
                                "(model.pt from tomogan-train) as TorchScript OUT.pt plus an OUT.json card.")
    p.add_argument("model", help="model.pt (or checkpoint.pt) written by tomogan-train")
    p.add_argument("out", help="served model to write, e.g. served/foam.pt")
    args = p.parse_args(argv)
    try:
        card = export_trained(args.model, args.out)
    except InputError:
        raise
    except ValueError as exc:
        raise InputError(args.model, str(exc)) from None
    print(f"wrote {args.out} and {card}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
