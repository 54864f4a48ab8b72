"""TomoGAN model files: their two formats, a loader for either, their provenance, and the one denoise loop.

- **trained**: ``model.pt`` (:data:`MODEL_FORMAT`, :func:`save_model`, :func:`load_model`): the chosen
  generator, its normalisation, the run's settings, validation metrics and provenance. A training
  ``checkpoint.pt`` (:data:`CHECKPOINT_FORMAT`) serves too, by its best generator so far. Reading either
  needs this package.
- **served**: a TorchScript ``NAME.pt`` and its JSON card ``NAME.json`` (a copy embedded in the ``.pt``),
  written by :mod:`tomogan_core.export`, read by :func:`load_served`; calling it needs only PyTorch.

:func:`load_any` loads either kind as a :class:`LoadedModel` (data units in, data units out), and
:func:`denoise` is the only loop that applies a model to a volume: training's validation, ``tomogan-infer``
and Noise2Inverse all go through it. A per-input model (normalisation ``"input"``, :mod:`tomogan_core.data`)
is mapped by the whole volume's own mean and std; code that feeds a volume in pieces (``tomogan-infer``'s
slabs) binds that map first (:meth:`LoadedModel.for_input`).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
import zipfile
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from tqdm import tqdm

from simulate.plumbing import InputError, save_torch

from .data import Normalization, input_stats, stack_neighbours
from .model import Generator, GeneratorConfig

__all__ = ["MODEL_FORMAT", "CHECKPOINT_FORMAT", "SERVED_FORMAT_VERSION", "EMBEDDED_CARD", "PRECISIONS",
           "resolve_device", "atomic_save", "save_model", "save_checkpoint", "read_checkpoint", "load_model",
           "card_path", "quiet_torchscript", "is_served", "load_served", "model_kind", "LoadedModel",
           "load_any", "read_generator", "model_provenance", "flat_attrs", "input_provenance", "denoise"]

logger = logging.getLogger(__name__)

MODEL_FORMAT = "tomogan-model/1"  # model.pt
CHECKPOINT_FORMAT = "tomogan-checkpoint/1"  # checkpoint.pt
SERVED_FORMAT_VERSION = 1  # the served card's format_version
EMBEDDED_CARD = "card.json"  # the card's copy inside a served .pt
PRECISIONS = ("fp32", "bf16")

PathLike = Union[str, os.PathLike]


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is passed to :class:`torch.device`.

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


# -----------------------------------------------------------------------------
# trained files: model.pt and checkpoint.pt


def atomic_save(obj, path: PathLike) -> None:
    """:func:`torch.save` ``obj`` to ``path`` through a temporary file beside it (a kill leaves the old file)."""
    save_torch(obj, path)


def save_model(path: PathLike, *, generator_config: dict, generator: dict, normalization: Normalization,
               **metadata) -> None:
    """Write a trained ``model.pt`` atomically.

    ``generator_config`` is a :class:`~tomogan_core.model.GeneratorConfig` as a dict, ``generator`` its
    state dict. ``metadata`` is stored after them, in the order given, and :func:`load_model` returns it as
    its ``info``; ``tomogan-train`` writes ``config``, ``step`` (of the chosen generator), ``val_ssim``,
    ``val_psnr``, ``steps_trained``, ``cpu_s`` (CPU-seconds of its training steps), ``vgg_weights``,
    ``device``, ``versions``, ``train_data``, ``val_data`` and ``provenance``.
    """
    atomic_save({"format": MODEL_FORMAT, "generator_config": generator_config, "generator": generator,
                 "normalization": normalization.as_dict(), **metadata}, path)


def save_checkpoint(path: PathLike, **state) -> None:
    """Write a training ``checkpoint.pt`` atomically: the format, then ``state`` in the order given.

    :func:`load_model` reads ``config`` (``depth``, ``upsample``), ``best`` (``generator``, ``step``) and
    ``normalization`` from it; the rest is the training run's.
    """
    atomic_save({"format": CHECKPOINT_FORMAT, **state}, path)


def read_checkpoint(path: PathLike, *, map_location="cpu") -> dict:
    """Read a training ``checkpoint.pt`` to resume from.

    Raises
    ------
    InputError
        Unreadable, or not a TomoGAN training checkpoint.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:
        raise InputError(path, f"unreadable checkpoint ({type(exc).__name__}); delete it to start over") from None
    fmt = state.get("format") if isinstance(state, dict) else None
    if fmt != CHECKPOINT_FORMAT:
        raise InputError(path, f"not a TomoGAN training checkpoint (format {fmt!r})")
    return state


def load_model(path: PathLike, *, depth: Optional[int] = None,
               device: str = "cpu") -> Tuple[Generator, Normalization, dict]:
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
# served files: TorchScript + card (written by tomogan_core.export)


def card_path(path: PathLike) -> Path:
    """Return the card path that goes with a served model path (``OUT.pt`` -> ``OUT.json``).

    Examples
    --------
    >>> card_path("served/foam.pt").as_posix()
    'served/foam.json'
    """
    return Path(path).with_suffix(".json")


@contextmanager
def quiet_torchscript() -> Iterator[None]:
    """Silence PyTorch's 'torch.jit.* is deprecated' warnings for the enclosed calls."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated", category=DeprecationWarning)
        yield


def is_served(path: PathLike) -> bool:
    """True for a TorchScript archive carrying our card (what :func:`~tomogan_core.export.export_served` writes)."""
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith(f"extra/{EMBEDDED_CARD}") for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def load_served(path: PathLike, *, map_location: str = "cpu") -> Tuple[torch.jit.ScriptModule, Dict[str, Any]]:
    """Load a served model (written by :func:`~tomogan_core.export.export_served`) and its card.

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
    extra = {EMBEDDED_CARD: ""}
    try:
        with quiet_torchscript():
            module = torch.jit.load(str(path), map_location=map_location, _extra_files=extra)
    except Exception as exc:  # torch raises RuntimeError or others for corrupt archives
        raise ValueError(f"{path}: not a TorchScript served model ({type(exc).__name__})") from None
    json_path = card_path(path)
    try:
        if json_path.is_file():
            card = json.loads(json_path.read_text(encoding="utf-8"))
        else:
            logger.warning("%s: card %s missing, using the copy embedded in the model", path, json_path)
            card = json.loads(extra[EMBEDDED_CARD] or "null")
    except json.JSONDecodeError as exc:
        raise ValueError(f"{json_path}: not a valid JSON card ({exc})") from None
    if not isinstance(card, dict):
        raise ValueError(f"{path}: no model card found")
    if card.get("format_version") != SERVED_FORMAT_VERSION:
        raise ValueError(
            f"{path}: card format_version {card.get('format_version')!r}, expected {SERVED_FORMAT_VERSION}"
        )
    module.eval()
    return module, card


def _served_or_input_error(path: Path, map_location: str = "cpu"):
    """:func:`load_served`, its errors as :class:`InputError` naming the file."""
    try:
        return load_served(path, map_location=map_location)
    except ValueError as exc:
        raise InputError(path, str(exc).split(": ", 1)[-1]) from None


# -----------------------------------------------------------------------------
# either kind


def model_kind(path: PathLike) -> str:
    """``"served"`` for a TorchScript file with our card, else ``"trained"`` (``model.pt``/``checkpoint.pt``,
    checked when loaded).

    Raises
    ------
    InputError
        The file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "model file not found")
    return "served" if is_served(path) else "trained"


class LoadedModel:
    """A model ready to apply, whatever file it came from: data units in, data units out.

    Attributes
    ----------
    forward : callable
        (B, d, H, W) tensor of data on ``device`` -> (B, 1, H, W) enhanced data.
    info : dict
        Provenance: ``kind`` ("trained" or "served"), ``path``, ``vgg_weights``, ``card``/``config``,
        ``precision``.
    precision : str
        "fp32", or "bf16" for bfloat16 autocast (its SSIM change: :mod:`analysis.inference_speed`).
    per_input : bool
        ``forward`` takes and returns network units of the ``"input"`` normalisation: each volume must be
        mapped by its own mean and std first (:meth:`for_volume`, :meth:`for_input`; :func:`denoise` does
        it). False for models with one fixed map (zscore, grey255, the release).
    """

    def __init__(self, forward: Callable[[torch.Tensor], torch.Tensor], depth: int, info: dict,
                 device: torch.device, precision: str = "fp32", per_input: bool = False):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.forward, self.depth, self.device, self.precision = forward, depth, device, precision
        self.per_input = bool(per_input)
        self.info = dict(info, precision=precision)
        if self.per_input:
            self.info.setdefault("normalization", "input")

    @classmethod
    def from_generator(cls, generator: Generator, norm: Normalization, *, info: Optional[dict] = None,
                       device: Optional[torch.device] = None, precision: str = "fp32") -> "LoadedModel":
        """Wrap a generator and its normalisation (a trained file's, or the one being trained), for any height
        and width; the generator is used as it is (its mode, memory layout and device are the caller's)."""
        def forward(x):
            z = (x - norm.offset) / norm.scale
            return generator.forward_any_size(z) * norm.scale + norm.offset

        device = device or next(generator.parameters()).device
        return cls(forward, generator.cfg.in_slices, info or {}, device, precision, per_input=norm.per_input)

    def for_input(self, offset: float, scale: float) -> "LoadedModel":
        """This per-input model bound to one volume's map: data in, ``(x - offset) / scale`` to the
        network, its output mapped back by ``* scale + offset``. The result is no longer per input."""
        if not self.per_input:
            raise ValueError("for_input binds a per-input model (normalization 'input'); this one has a fixed map")
        offset, scale = float(offset), float(scale)
        if not (np.isfinite(offset) and np.isfinite(scale) and scale > 0):
            raise ValueError(f"input map needs a finite offset and a positive scale, got {offset}, {scale}")
        inner = self.forward

        def forward(x):
            return inner((x - offset) / scale) * scale + offset

        info = dict(self.info, input_map={"offset": offset, "scale": scale})
        return LoadedModel(forward, self.depth, info, self.device, self.precision)

    def for_volume(self, volume) -> "LoadedModel":
        """The model to apply to ``volume`` (the whole low-dose volume, or an iterable of its slices): bound to
        its mean and std when per input, else itself.

        Raises
        ------
        ValueError
            A per-input model and a constant (or non-finite) volume.
        """
        return self.for_input(*input_stats(volume)) if self.per_input else self

    @torch.inference_mode()
    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(B, d, H, W) data -> (B, H, W) enhanced data, float32."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            y = self.forward(torch.from_numpy(np.ascontiguousarray(x, np.float32)).to(self.device))
        return y[:, 0].float().cpu().numpy()


def load_any(path: PathLike, *, depth: Optional[int] = None, device: str = "auto",
             precision: str = "fp32") -> LoadedModel:
    """Load a trained or served model file for :func:`denoise`.

    Trained generators run with channels-last weights (oneDNN's preferred layout: 1.3-1.5x faster on
    CPU, same numbers to 1e-7 SSIM; measured by :mod:`analysis.inference_speed`).

    Raises
    ------
    InputError
        Missing or unreadable file, or a model whose depth is not ``depth``.
    """
    path = Path(path)
    dev = resolve_device(device)
    if model_kind(path) == "served":
        module, card = _served_or_input_error(path, map_location=str(dev))
        d = int(card["in_slices"])
        if depth is not None and d != depth:
            raise InputError(path, f"model takes d = {d} slices, not {depth}")
        info = {"kind": "served", "path": str(path), "vgg_weights": card.get("vgg_weights", "n/a"),
                "source": card.get("source", ""), "card": card}
        per_input = bool((card.get("input_scale") or {}).get("per_input"))
        return LoadedModel(module, d, info, dev, precision, per_input=per_input)
    generator, norm, meta = load_model(path, depth=depth, device=str(dev))
    generator = generator.to(memory_format=torch.channels_last)
    info = {"kind": "trained", "path": str(path), "vgg_weights": meta.get("vgg_weights", "unknown"),
            "source": f"trained: {path}", "config": meta.get("config", {}),
            "val_ssim": meta.get("val_ssim"), "val_psnr": meta.get("val_psnr")}
    return LoadedModel.from_generator(generator, norm, info=info, device=dev, precision=precision)


def read_generator(path: PathLike) -> Tuple[dict, dict, dict]:
    """The generator weights a model file holds, whatever its kind (what a training's ``init`` reads);
    a served ``.pt``'s without its data scaling.

    Returns
    -------
    generator_config : dict
        ``in_slices``, ``upsample`` (:class:`~tomogan_core.model.GeneratorConfig`).
    weights : dict
        The generator's state dict, on the CPU, checked to load into a generator of that config.
    summary : dict
        ``path``, ``kind`` ("model.pt", "checkpoint.pt" or "served"), ``normalization`` (its kind, or ""
        when unknown), ``step``, ``train_data`` when recorded, and ``provenance``: the provenance dict the
        file carries (``{}`` for a checkpoint, which keeps none).

    Raises
    ------
    InputError
        Missing or unreadable file, or one that holds no (usable) generator.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "model file not found")
    summary: Dict[str, Any] = {"path": str(path)}
    if is_served(path):
        module, card = _served_or_input_error(path)
        prefix = "net."
        weights = {k[len(prefix):]: v.detach().cpu().clone() for k, v in module.state_dict().items()
                   if k.startswith(prefix)}
        gcfg = card.get("generator_config") or {"in_slices": card.get("in_slices"), "upsample": card.get("upsample")}
        norm = card.get("normalization") or {}
        summary.update(kind="served", normalization=str(norm.get("kind", "")) if isinstance(norm, dict) else "",
                       step=(card.get("validation") or {}).get("step"), source=card.get("source", ""),
                       train_data=list(card.get("train_data") or []), provenance=dict(card.get("provenance") or {}))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:
            raise InputError(path, f"not a readable PyTorch file ({type(exc).__name__})") from None
        fmt = state.get("format") if isinstance(state, dict) else None
        try:
            if fmt == CHECKPOINT_FORMAT:
                best = state.get("best") or {}
                weights = best.get("generator")
                if weights is None:
                    raise InputError(path, "checkpoint holds no validated generator yet")
                gcfg = {"in_slices": state["config"]["depth"], "upsample": state["config"]["upsample"]}
                summary.update(kind="checkpoint.pt", step=best.get("step"), provenance={},
                               normalization=str((state.get("normalization") or {}).get("kind", "")))
            elif fmt == MODEL_FORMAT:
                weights, gcfg = state.get("generator"), state.get("generator_config")
                summary.update(kind="model.pt", step=state.get("step"), train_data=list(state.get("train_data") or []),
                               normalization=str((state.get("normalization") or {}).get("kind", "")),
                               provenance=dict(state.get("provenance") or {}))
            else:
                raise InputError(path, "not a TomoGAN model.pt, checkpoint.pt or served .pt")
        except (KeyError, TypeError, AttributeError):
            raise InputError(path, "holds no generator (incomplete model file)") from None
    if not isinstance(weights, dict) or not weights:
        raise InputError(path, "holds no generator weights")
    try:
        cfg = GeneratorConfig(**{k: gcfg[k] for k in ("in_slices", "upsample")})
        Generator(cfg).load_state_dict(weights)  # checks that the weights are a whole generator of that config
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        why = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:120]}"
        raise InputError(path, f"holds no usable generator ({why})") from None
    return asdict(cfg), weights, summary


# -----------------------------------------------------------------------------
# provenance


def model_provenance(path: PathLike) -> dict:
    """The provenance a model file (or a served model's card) records; empty for a ``checkpoint.pt``."""
    path = Path(path)
    if model_kind(path) == "served":
        _, card = _served_or_input_error(path)
        return dict(card.get("provenance") or {})
    _, _, info = load_model(path)
    return dict(info.get("provenance") or {})


def flat_attrs(info: dict) -> dict:
    """A :class:`LoadedModel`'s ``info`` as the HDF5 attributes of what it enhanced.

    Examples
    --------
    >>> flat_attrs({"path": "m.pt", "kind": "served", "source": "s", "vgg_weights": "n/a"})["model_kind"]
    'served'
    """
    keep = {"model": info["path"], "model_kind": info["kind"], "model_source": info["source"],
            "vgg_weights": info["vgg_weights"]}
    if info.get("val_ssim") is not None:
        keep.update(model_val_ssim=info["val_ssim"], model_val_psnr=info["val_psnr"])
    if info.get("normalization"):  # per-input models ("input"): each volume mapped by its own mean and std
        keep["model_normalization"] = info["normalization"]
    return keep


def input_provenance(attrs: dict) -> dict:
    """An input file's attributes for its enhanced output: what described how the input was made
    (algorithm, method, filter, iterations) is kept under ``input_*``, the rest as it is.

    Examples
    --------
    >>> input_provenance({"method": "fbp", "dataset": "foam"})
    {'input_method': 'fbp', 'dataset': 'foam'}
    """
    return {(f"input_{k}" if k in ("algorithm", "method", "filter", "n_iter") else k): v for k, v in attrs.items()}


# -----------------------------------------------------------------------------
# applying a model


def denoise(volume: np.ndarray, model, *, indices: Optional[Sequence[int]] = None, batch: int = 4,
            repeat_edges: bool = False, progress: bool = False, device: str = "auto",
            n2i: bool = False) -> np.ndarray:
    """Enhance slices of a low-dose volume with a TomoGAN model.

    Each output slice (of ``indices``, default all) is the model applied to the ``d`` slices centred on it,
    ``batch`` slices per forward pass; at the volume's ends the edge slice is repeated.

    Parameters
    ----------
    volume : ndarray, shape (slices, rows, cols)
        Low-dose reconstruction, in the units the model was trained on (any units for a per-input model,
        mapped by this whole volume's mean and std whatever ``indices`` picks). With ``n2i``: shape
        ``(k, slices, rows, cols)``, the ``k >= 2`` sub-reconstructions of a scan.
    model : LoadedModel or path
        What :func:`load_any` returns, or a path it accepts.
    repeat_edges : bool
        Allow volumes with fewer slices than the model's depth.
    n2i : bool
        Noise2Inverse's X:1 inference: the mean over ``j`` of the model applied to the mean of the
        sub-reconstructions other than ``j`` (a per-input model maps pass ``j`` by its own input's mean
        and std, as training pair ``j`` was).

    Returns
    -------
    ndarray, shape (len(indices), rows, cols), float32

    Examples
    --------
    >>> import tomogan_core
    >>> from tomogan_core.keras_import import load_keras_generator, released_weights_path
    >>> from tomogan_core.export import export_served
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "release.pt")
    >>> _ = export_served(load_keras_generator(released_weights_path()), path,
    ...                   {"input_scale": {"kind": "affine", "offset": 0.0, "scale": 1.0}, "source": "doc"})
    >>> tomogan_core.denoise(np.zeros((2, 16, 16), np.float32), path).shape
    (2, 16, 16)
    """
    volume = np.asarray(volume, np.float32)
    if n2i and (volume.ndim != 4 or volume.shape[0] < 2):
        raise ValueError(f"Noise2Inverse needs (k >= 2, slices, rows, cols) sub-reconstructions, got shape {volume.shape}")
    if not n2i and volume.ndim != 3:
        raise ValueError(f"volume must be (slices, rows, cols), got shape {volume.shape}")
    if not isinstance(model, LoadedModel):
        model = load_any(model, device=device)
    n_slices, d = volume.shape[-3], model.depth
    if n_slices < d and not repeat_edges:
        raise ValueError(f"volume has {n_slices} slices, fewer than the model's depth d = {d}")
    if n2i:  # input j: the mean of the k - 1 sub-reconstructions other than j
        k, total = volume.shape[0], volume.sum(axis=0, dtype=np.float64)
        inputs = [lambda i, j=j: ((stack_neighbours(total, i, d) - stack_neighbours(volume[j], i, d)) / (k - 1))
                  .astype(np.float32) for j in range(k)]
        # a per-input model: pass j by its own input's map (that of Noise2Inverse's training pair j)
        models = [model.for_volume(((total[s] - volume[j, s]) / (k - 1)).astype(np.float32) for s in range(n_slices))
                  for j in range(k)]
    else:
        inputs = [lambda i: stack_neighbours(volume, i, d)]
        models = [model.for_volume(volume)]
    indices = list(range(n_slices)) if indices is None else [int(i) for i in indices]
    out = np.empty((len(indices),) + volume.shape[-2:], np.float32)
    for start in tqdm(range(0, len(indices), batch), desc="denoise", disable=not progress, file=sys.stderr,
                      unit="batch", mininterval=1.0 if sys.stderr.isatty() else 30.0):
        chunk = indices[start:start + batch]
        ys = [net(np.stack([neighbours(i) for i in chunk])) for neighbours, net in zip(inputs, models)]  # (b, H, W)
        if len(ys) == 1:
            out[start:start + len(chunk)] = ys[0]
        else:
            total_y = np.zeros(ys[0].shape, np.float64)
            for y in ys:
                total_y += y
            out[start:start + len(chunk)] = (total_y / len(ys)).astype(np.float32)
    return out
