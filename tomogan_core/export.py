"""The served-model format: a TorchScript generator plus a JSON model card.

A served model is two files side by side:

- ``NAME.pt``: the generator compiled with TorchScript (eval mode, float32, CPU). Calling it on an
  NCHW float32 tensor ``(B, d, H, W)`` of any height and width returns ``(B, 1, H, W)``: the
  reflect-padding to a multiple of 8 and the crop back are part of the scripted forward, so
  ``torch.jit.load("NAME.pt")(x)`` needs nothing from this package.
- ``NAME.json``: the model card: ``format_version``, ``in_slices``, ``upsample``, ``input_scale`` (how
  to map data to the network's input scale), ``source``, ``torch_version``, ``created`` and whatever
  the caller adds. A copy is also embedded in the ``.pt`` file as the extra file ``card.json``.

Both files are written atomically (temporary file in the same folder, then :func:`os.replace`).

.. note:: TorchScript (``torch.jit.script``/``save``/``load``) warns that it is deprecated in favour of
   ``torch.export`` in the PyTorch this project pins (2.13). It still works; this module silences
   those warnings around its own calls.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import logging
import os
import uuid
import warnings
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, Iterator, Tuple, Union

import torch
import torch.nn as nn

from .model import SIZE_MULTIPLE, Generator

__all__ = ["FORMAT_VERSION", "REQUIRED_CARD_KEYS", "card_path", "export_served", "load_served"]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
REQUIRED_CARD_KEYS = ("input_scale", "source")  # what only the caller can know
_EMBEDDED_CARD = "card.json"

PathLike = Union[str, os.PathLike]


class ServedGenerator(nn.Module):
    """Wraps a :class:`~tomogan_core.model.Generator` so that its forward accepts any H, W."""

    def __init__(self, generator: Generator):
        super().__init__()
        self.net = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (B, d, H, W) float32 to (B, 1, H, W); any H, W (padded to a multiple of 8 inside)."""
        return self.net.forward_any_size(x)


def card_path(path: PathLike) -> Path:
    """Return the card path that goes with a served model path (``OUT.pt`` -> ``OUT.json``)."""
    return Path(path).with_suffix(".json")


@contextmanager
def _quiet_torchscript() -> Iterator[None]:
    """Silence PyTorch's 'torch.jit.* is deprecated' warnings for the enclosed calls."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated", category=DeprecationWarning)
        yield


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


def _temp_path(target: Path) -> Path:
    """Return an unused hidden temporary path next to ``target`` (same folder, so os.replace is atomic)."""
    return target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")


def export_served(generator: Generator, path: PathLike, card: Dict[str, Any]) -> Path:
    """Write a generator in the served format: TorchScript ``path`` plus its JSON card.

    Parameters
    ----------
    generator : Generator
        The eager model; it is copied (to CPU, float32, eval mode), not modified.
    path : str or PathLike
        Output TorchScript file, e.g. ``OUT.pt``; the card goes to ``OUT.json``.
    card : dict
        JSON-serialisable fields for the card. Must hold ``input_scale`` (e.g.
        ``{"kind": "affine", "offset": 0.0, "scale": 1.0, "note": "raw 0..255 grey levels"}``,
        meaning network input = (data - offset) / scale) and ``source`` (provenance string).
        Other keys are copied as given.

    Returns
    -------
    Path
        The card's path.

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

    net = copy.deepcopy(generator).to(device="cpu", dtype=torch.float32).eval()
    with _quiet_torchscript():
        scripted = torch.jit.script(ServedGenerator(net))

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_pt, tmp_json = _temp_path(path), _temp_path(json_path)
    try:
        with _quiet_torchscript():
            torch.jit.save(scripted, str(tmp_pt), _extra_files={_EMBEDDED_CARD: card_text})
        tmp_json.write_text(card_text, encoding="utf-8")
        os.replace(tmp_pt, path)
        os.replace(tmp_json, json_path)
    finally:
        for tmp in (tmp_pt, tmp_json):
            tmp.unlink(missing_ok=True)
    logger.info("wrote served model %s and card %s", path, json_path)
    return json_path


def load_served(path: PathLike, *, map_location: str = "cpu") -> Tuple[torch.jit.ScriptModule, Dict[str, Any]]:
    """Load a served model and its card.

    Parameters
    ----------
    path : str or PathLike
        The TorchScript file written by :func:`export_served`.
    map_location : str, default "cpu"
        Device to load the module onto.

    Returns
    -------
    module : torch.jit.ScriptModule
        In eval mode; maps (B, d, H, W) float32 to (B, 1, H, W).
    card : dict
        The sidecar ``.json`` card, or the copy embedded in the ``.pt`` file if the sidecar is missing.

    Raises
    ------
    ValueError
        If the file is missing or unreadable, or the card's format version is unknown.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    extra = {_EMBEDDED_CARD: ""}
    try:
        with _quiet_torchscript():
            module = torch.jit.load(str(path), map_location=map_location, _extra_files=extra)
    except Exception as exc:  # torch raises RuntimeError or others for corrupt archives
        raise ValueError(f"{path}: not a TorchScript served model ({type(exc).__name__})") from None
    json_path = card_path(path)
    try:
        if json_path.is_file():
            card = json.loads(json_path.read_text(encoding="utf-8"))
        else:
            logger.warning("%s: card %s missing, using the copy embedded in the model", path, json_path)
            card = json.loads(extra[_EMBEDDED_CARD] or "null")
    except json.JSONDecodeError as exc:
        raise ValueError(f"{json_path}: not a valid JSON card ({exc})") from None
    if not isinstance(card, dict):
        raise ValueError(f"{path}: no model card found")
    if card.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: card format_version {card.get('format_version')!r}, expected {FORMAT_VERSION}"
        )
    module.eval()
    return module, card
