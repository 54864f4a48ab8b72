"""The candidates a scan is ranked over: classical methods at a value, trained models, Noise2Inverse.

Each is a :class:`analysis.crossval.core.Reconstructor`: the kept views in, a slice stack out. A TomoGAN model
(:func:`model_reconstructor`) is applied to the FBP of the kept views and is a method of its own,
``tomogan:<label>`` (:data:`MODEL_PREFIX`), without a parameter; Noise2Inverse (:func:`n2i_reconstructor`), trained
per fold on the kept views, is ``n2i``, and a further one (a fine-tune, say) ``n2i:<label>`` (:data:`N2I_PREFIX`).
Which models the workflow ranks: docs/methods.md, "Choosing a method on your own scan, without a reference".

Examples
--------
>>> rec = fbp_reconstructor()
>>> theta = np.linspace(0, np.pi, 8, endpoint=False)
>>> rec(np.zeros((8, 1, 16), np.float32), theta, 8.0, 16).shape
(1, 16, 16)
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from analysis.classical import METHODS, Projections, format_value
from analysis.crossval.core import _LABEL, MODEL_PREFIX, N2I, N2I_PREFIX, RUN_FOLDER_FILES, Reconstructor
from simulate.plumbing import InputError, json_argument
from simulate.reconstruct import fbp, sirt


class StartCache:
    """Images of the methods others start from (SIRT, for SIRT+TV), kept by method, value and the views used.

    A method that starts from another's chosen value (``needs``) takes the images :func:`tune_by_holdout` and
    :func:`all_view_candidates` made of it instead of running the start again: ``K + 1`` SIRT runs saved. An entry
    is keyed by a digest of the very views and angles it was made from, so a hit is the image the start would make
    again (the reconstructors are deterministic); one image stack per fold and grid value, a few MiB.
    """

    #: the registry methods some other method starts from
    STARTS = frozenset(m.input for m in METHODS.values()) - {"projections", "fbp"}

    def __init__(self):
        self._images: Dict[tuple, np.ndarray] = {}
        self.hits = 0

    @staticmethod
    def _key(name, value, data, theta, center, size) -> tuple:
        digest = hashlib.blake2b(digest_size=16)
        for array in (np.ascontiguousarray(data), np.ascontiguousarray(theta)):
            digest.update(str((array.dtype, array.shape)).encode())
            digest.update(array.view(np.uint8))
        return name, METHODS[name].value_type(value), float(center), int(size), digest.hexdigest()

    def put(self, name, value, data, theta, center, size, image) -> None:
        """Keep ``image``, method ``name`` at ``value`` made from these views (ignored unless a start)."""
        if name in self.STARTS:
            self._images[self._key(name, value, data, theta, center, size)] = image

    def get(self, name, value, data, theta, center, size) -> Optional[np.ndarray]:
        """The kept image of method ``name`` at ``value`` made from these views, or None."""
        image = self._images.get(self._key(name, value, data, theta, center, size))
        self.hits += image is not None
        return image


# ----------------------------------------------------------------------------- reconstructors

def fbp_reconstructor(filter_name: str = "ram-lak") -> Reconstructor:
    """FBP of the kept views (:func:`simulate.reconstruct.fbp`)."""
    def rec(data, theta, center, size, *, backend="auto", threads=1):
        return fbp(data, theta, center=center, size=size, filter_name=filter_name, backend=backend,
                   threads=threads)
    return rec


def sirt_reconstructor(n_iter: int) -> Reconstructor:
    """SIRT at ``n_iter`` iterations from a zero start (:func:`simulate.reconstruct.sirt`)."""
    n_iter = int(n_iter)

    def rec(data, theta, center, size, *, backend="auto", threads=1):
        return sirt(data, theta, n_iter=n_iter, center=center, size=size, backend=backend, threads=threads)
    return rec


def fbp_tv_reconstructor(weight: float) -> Reconstructor:
    """Chambolle TV (weight relative to the range) of the FBP, as the registry's ``fbp-tv`` applies it."""
    return classical_reconstructor("fbp-tv", weight)


def fbp_bm3d_reconstructor(sigma: float) -> Reconstructor:
    """BM3D (sigma relative to the range) of the FBP, as the registry's ``fbp-bm3d`` applies it."""
    return classical_reconstructor("fbp-bm3d", sigma)


def model_reconstructor(model, *, batch: int = 4, device: str = "auto", grey255: bool = False) -> Reconstructor:
    """A denoiser model applied to the FBP of the kept views.

    Parameters
    ----------
    model : LoadedModel or path
        What :func:`tomogan_core.modelfile.load_any` returns, or a file it reads (loaded once, here).
        It is applied with :func:`tomogan_core.modelfile.denoise` and ``repeat_edges=True``, so a stack
        of fewer slices than the model's depth works (its neighbours repeated).
    grey255 : bool
        For a model on 0..255 grey levels (the authors' release): wrap it, for each FBP it is given, with
        :func:`tomogan_core.infer.grey255_from_input` of that FBP (its own 0.5..99.5 percentile range mapped
        to 0..255 and back), as ``tomogan-infer --grey255-from-input`` does. A constant FBP is a ValueError.
    """
    from tomogan_core.modelfile import LoadedModel, denoise, load_any

    if not isinstance(model, LoadedModel):
        model = load_any(model, device=device)
    if grey255:
        from tomogan_core.infer import grey255_from_input

    def rec(data, theta, center, size, *, backend="auto", threads=1):
        base = fbp(data, theta, center=center, size=size, backend=backend, threads=threads)
        applied = grey255_from_input(model, base)[0] if grey255 else model
        return denoise(base, applied, batch=batch, repeat_edges=True)
    return rec


def n2i_reconstructor(settings: Mapping, *, k: int = 4, batch: int = 4, device: str = "auto") -> Reconstructor:
    """Noise2Inverse trained on the views it is given, then applied to them (method ``n2i`` or ``n2i:<label>``).

    Per call, the ``k`` subsets of the given views are reconstructed, trained on (in a temporary folder) and
    denoised (:mod:`tomogan_core.noise2inverse`), so a fold's network never sees the views left out: ``K + 1``
    trainings per scan, each on the rows scored.

    Parameters
    ----------
    settings : mapping
        :class:`tomogan_core.train.TrainConfig` fields (the config's ``noise2inverse.train``); the loss is
        pixel MSE whatever they say. With ``init`` (a ``model.pt``, ``checkpoint.pt`` or served ``.pt``) every
        training starts from that file's generator instead of the seed's random one: a fine-tune, read and
        checked here (:func:`tomogan_core.train.load_init`) so that a missing or unfit file fails before any fold.
    k : int
        Angle subsets of each call's views (the config's ``noise2inverse.k``).

    Raises
    ------
    InputError
        An ``init`` file that is missing, unreadable, or of another depth or upsampling (naming it; at once).
    ValueError
        Settings TrainConfig refuses (at once), or, per call, slices smaller than the patch or a grid other than
        the detector width.
    """
    import tempfile

    from tomogan_core.noise2inverse import denoise_n2i, n2i_config, subset_reconstructions, train_n2i
    from tomogan_core.train import TrainConfig

    cfg = n2i_config(TrainConfig(**dict(settings)))
    if cfg.init:  # the check each training makes, on a throwaway generator: a bad file fails now, not in a fold
        from tomogan_core.model import Generator, GeneratorConfig
        from tomogan_core.train import load_init

        load_init(cfg, Generator(GeneratorConfig(in_slices=cfg.depth, upsample=cfg.upsample)))

    def rec(data, theta, center, size, *, backend="auto", threads=1):
        if size != data.shape[-1]:
            raise ValueError(f"Noise2Inverse reconstructs on the detector's grid ({data.shape[-1]}), not {size}")
        if size < cfg.patch:
            raise ValueError(f"slices of {size} pixels are smaller than Noise2Inverse's patch ({cfg.patch})")
        subsets = subset_reconstructions(data, theta, k=k, center=center, backend=backend, threads=threads)
        with tempfile.TemporaryDirectory(prefix="crossval-n2i-") as tmp:
            model = train_n2i(subsets, tmp, cfg, progress=False)
            return denoise_n2i(subsets, model, batch=batch, device=device)
    return rec


class ModelEntry(NamedTuple):
    """A model to rank: ``method`` (``tomogan:<label>``), its file, and whether it works on 0..255 grey levels."""

    label: str
    path: str
    grey255: bool = False

    @property
    def method(self) -> str:
        return MODEL_PREFIX + self.label


def model_label(path) -> str:
    """The label of a model file given without one: its run folder's name for a file the tools write in one
    (:data:`RUN_FOLDER_FILES`), else the file's stem.

    >>> model_label("results/models/foam-sparse-8-d3-all-s0/model.pt")
    'foam-sparse-8-d3-all-s0'
    >>> model_label("results/models/release/served.pt"), model_label("served/foam.pt")
    ('release', 'foam')
    """
    path = Path(path)
    return path.parent.name if path.name in RUN_FOLDER_FILES and path.parent.name else path.stem


def model_entries(models: Sequence[str] = (), grey255_models: Sequence[str] = ()) -> List[ModelEntry]:
    """The ``--model`` and ``--grey255-model`` entries, ``LABEL=PATH`` or ``PATH`` (:func:`model_label`), in order.

    Raises
    ------
    InputError
        Naming the option: an empty label or path, a label that is not letters, digits and ``. _ + -`` (a
        path holding ``=`` needs a label), or a label given twice.

    >>> for e in model_entries(["a=m.pt", "runs/foam-s1/model.pt"], ["x/served.pt"]):
    ...     print(e.method, e.path, e.grey255)
    tomogan:a m.pt False
    tomogan:foam-s1 runs/foam-s1/model.pt False
    tomogan:x x/served.pt True
    """
    out: List[ModelEntry] = []
    for flag, items, grey255 in (("--model", models, False), ("--grey255-model", grey255_models, True)):
        for item in items or ():
            label, eq, path = item.partition("=")
            if not eq:
                label, path = model_label(item), item
            elif not _LABEL.fullmatch(label):
                raise InputError(flag, f"'{item}': expected LABEL=PATH or PATH, with a label of letters, digits "
                                       "and . _ + - (a path holding '=' needs a label)")
            if not path or not label:
                raise InputError(flag, f"'{item}': expected LABEL=PATH or PATH, got no "
                                       f"{'path' if not path else 'label'}")
            if any(e.label == label for e in out):
                raise InputError(flag, f"'{item}': label '{label}' is given twice (method {MODEL_PREFIX}{label})")
            out.append(ModelEntry(label, path, grey255))
    return out


def _needed_value(name: str, needs: Optional[Mapping[str, float]], wanted_by: str):
    """The chosen value of method ``name`` from ``needs`` (keyed by its name or its tuning key)."""
    method = METHODS[name]
    for key in (name, method.tuning_key):
        if needs and key in needs:
            return method.value_type(needs[key])
    raise ValueError(f"method '{wanted_by}' starts from {name}: give its chosen {method.parameter} "
                     f"as needs={{'{name}': value}}")


def _start(method, data, theta, center, size, needs, backend, threads, cache=None):
    """The input a registry method works on, made from the kept views only (or taken from ``cache``)."""
    if method.input == "projections":
        return Projections(data, theta, center, size)
    if method.input == "fbp":
        return fbp(data, theta, center=center, size=size, backend=backend, threads=threads)
    value = _needed_value(method.input, needs, method.name)
    image = None if cache is None else cache.get(method.input, value, data, theta, center, size)
    if image is None:
        image = classical_reconstructor(method.input, value, needs=needs)(data, theta, center, size,
                                                                         backend=backend, threads=threads)
        if cache is not None:
            cache.put(method.input, value, data, theta, center, size, image)
    return image


def classical_reconstructor(method_name: str, value, *, needs: Optional[Mapping[str, float]] = None
                            ) -> Reconstructor:
    """A reconstructor from the registry :data:`analysis.classical.METHODS`, at one parameter value.

    By the entry's ``input``: ``"projections"`` -- the entry reconstructs from the kept views;
    ``"fbp"`` -- FBP of the kept views, then the entry; another method's name (``"sirt"``) -- that
    method at its already-chosen value from ``needs`` (keyed by name, ``{"sirt": 50}``, or tuning key,
    ``{"sirt_n_iter": 50}``), then the entry.

    Raises
    ------
    ValueError
        Unknown method, or a start whose value ``needs`` lacks.
    """
    method = METHODS[method_name]
    value = method.value_type(value)
    if method.input not in ("projections", "fbp"):  # starts from another method: fail now, not in a fold
        _needed_value(method.input, needs, method.name)
    needs = dict(needs or {})

    def rec(data, theta, center, size, *, backend="auto", threads=1):
        x = _start(method, data, theta, center, size, needs, backend, threads)
        return method.apply(x, value, backend=backend, threads=threads)
    return rec


def _label(value) -> str:
    """A cell as text: empty for a missing value, a number as :func:`analysis.classical.format_value` writes it."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, float, np.integer, np.floating)):
        return format_value(value.item() if isinstance(value, np.generic) else value)
    return str(value)


def candidate_label(method: str, value="") -> str:
    """A method at a value as a figure names it.

    >>> candidate_label("fbp-tv", "0.05"), candidate_label("sirt", 50)
    ('FBP+TV (weight 0.05)', 'SIRT (n_iter 50)')
    >>> candidate_label("fbp"), candidate_label("n2i"), candidate_label("tomogan:release")
    ('FBP', 'Noise2Inverse', 'TomoGAN release')
    >>> candidate_label("n2i:generalist")
    'N2I from generalist'
    """
    from analysis.tables import COLUMNS

    if method.startswith(MODEL_PREFIX):
        return "TomoGAN " + method[len(MODEL_PREFIX):]
    if method.startswith(N2I_PREFIX):
        return "N2I from " + method[len(N2I_PREFIX):]
    if method in METHODS:
        return f"{METHODS[method].label} ({METHODS[method].parameter} {_label(value)})"
    return COLUMNS.get(method, method)


def n2i_candidates(text, flag: str = "--n2i") -> List[Tuple[str, Reconstructor]]:
    """Noise2Inverse candidates from a command-line option (``--n2i`` of ``python -m analysis.crossval`` and
    ``tomogan-scan``): ``(method, reconstructor)`` in the order given.

    ``text`` (JSON, or ``@FILE``) is one object ``{"k": 4, "train": {...}}`` (the config's noise2inverse section)
    or a list of them, each with an optional ``"label"``: ``n2i`` (the default) or ``n2i:<label>``, a label of
    letters, digits and ``. _ + -``, each given once. An ``init`` file among the train settings is read now
    (:func:`n2i_reconstructor`).

    Raises
    ------
    InputError
        Naming the option (or its file): not such objects, a bad or repeated label, settings TrainConfig refuses;
        naming the init file: a missing or unfit one.
    """
    specs, where = json_argument(text, flag=flag)
    out: List[Tuple[str, Reconstructor]] = []
    for spec in specs if isinstance(specs, list) else [specs]:
        if not isinstance(spec, dict) or set(spec) - {"label", "k", "train"}:
            raise InputError(where, "expected a JSON object with 'k' and 'train' (the config's noise2inverse "
                                    "section) and optionally 'label', or a list of such objects")
        label = spec.get("label", N2I)
        if not (label == N2I or (isinstance(label, str) and label.startswith(N2I_PREFIX)
                                 and _LABEL.fullmatch(label[len(N2I_PREFIX):]))):
            raise InputError(where, f"label {label!r}: expected '{N2I}' or '{N2I_PREFIX}NAME', with a name of "
                                    "letters, digits and . _ + -")
        if any(method == label for method, _ in out):
            raise InputError(where, f"label '{label}' is given twice")
        try:
            out.append((label, n2i_reconstructor(spec.get("train") or {}, k=int(spec.get("k", 4)))))
        except InputError:  # the init file: named by itself
            raise
        except (TypeError, ValueError) as exc:
            raise InputError(where, f"bad Noise2Inverse settings{'' if label == N2I else ' of ' + label}: "
                                    f"{exc}") from None
    if not out:
        raise InputError(where, "an empty list: give at least one Noise2Inverse object")
    return out
