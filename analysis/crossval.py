"""Choosing a method without a reference: K-fold cross-validation over the acquired views.

A beamline scientist with a sparse-view or short-exposure scan has no normal-dose reference to compute
SSIM against. The views themselves can stand in for it: leave out a fold of the views, reconstruct (and
denoise) from the others, forward-project the result at the left-out angles and compare with what was
measured there. A method that invents structure or smooths away real structure predicts unseen views
badly; one that only removes noise predicts them as well as the noise allows. On a real scan the TV
weight with the smallest held-out residual over 4 folds was the one with the best SSIM against the
full-view reference.

Procedure (:func:`holdout_residual`), for a scan ``data`` ``(angles, rows, detector)`` with angles ``theta``:

1. :func:`folds` splits the views into ``K`` interleaved folds (fold ``j``: views ``j, j+K, j+2K, ...``),
   so each fold and each training set covers ``[0, pi)`` evenly.
2. For each fold, the method gets the projections and angles of the *other* folds only -- copies taken
   before the call, so it cannot reach the left-out views -- and returns ``(slices, size, size)``.
3. That image, restricted to its circular field of view (outside the disc set to 0), is forward-projected
   at the fold's angles with :func:`simulate.reconstruct.project` (the same ``linear`` projector the
   reconstructions use), and moved along the detector so that its axis sits at ``center`` -- the inverse of
   the shift :func:`simulate.reconstruct.fbp` applies to the measured data -- so measured and predicted
   projections share one geometry (checked by ``tests/test_crossval.py`` on an off-centre scan).
4. The residual ``r = A x - p`` is scored on the *rays of the field of view*: the detector pixels whose
   ray crosses the reconstruction disc (distance from the axis at most ``size / 2 - 1`` pixels). Other
   rays see what no reconstruction on this grid describes.

Scores:

- with ``incident`` (``I0`` photons per detector pixel, scalar or per detector pixel), each squared
  residual is weighted by the inverse of its Poisson variance. From ``counts = I0 exp(-p)``,
  ``var(p) ~= exp(p) / I0``; the weight ``I0 exp(-p)`` is taken from the *measured* ``p`` (the detected
  counts: the usual weights of penalised weighted least squares), so it is the same for every method.
  The score is then the residual **relative to the noise level**: a perfect image scores about 1
  (``1 - O(1/counts)``), and ``score - 1`` is the method's own error in units of the noise;
- without ``incident``: the plain mean squared residual, in (line integral)^2 -- for a perfect image,
  the mean noise variance of the held-out projections.

Which residual (``residual``, :func:`residual_kind`): the plain one charges an image's error at spatial frequency
``f`` by ``1 / |f|`` (Fourier slice theorem), so noise left in an image costs little and the plain score prefers
too little smoothing. On photon-limited data (``auto`` with ``incident``) each fold's residual is first filtered by
``sqrt(|f|)`` along the detector (``ramp``), which makes its sum of squares the image-domain squared error, every
pixel alike; it is divided by the noise level the filter passes (its mean power times the mean Poisson variance of
the rays), so a perfect image still scores about 1. Sparse-view data without noise keep the plain residual
(:func:`residual_kind` says why).

Lower is better. :func:`tune_by_holdout` picks a registry method's parameter on a grid (sharing the
per-fold start -- the FBP, or SIRT's iterates -- between the values), :func:`rank_methods` ranks any
reconstructors. :func:`classical_reconstructor` turns any entry of :data:`analysis.classical.METHODS` into
a reconstructor, so a new registry entry is cross-validated without code here.

TomoGAN models (:func:`model_reconstructor`) are applied to the FBP of the kept views; each is a method of
its own, named ``tomogan:<label>`` (:data:`MODEL_PREFIX`), without a parameter. The workflow ranks every
seed's model of the scan's evaluated run (labelled by run name, ``tomogan:foam-sparse-8-d3-all-s0``) and the
authors' released generator (``tomogan:release``). Noise2Inverse (:func:`n2i_reconstructor`), trained per fold on
the kept views, is method ``n2i``; further Noise2Inverse candidates -- a fine-tune from another model's generator,
say -- are named ``n2i:<label>`` (:data:`N2I_PREFIX`; ``n2i:generalist`` is shown as "N2I from generalist",
:func:`candidate_label`). The release works on 0..255 grey levels, so it is applied as
``tomogan-infer --grey255-from-input`` applies it (:func:`tomogan_core.infer.grey255_from_input`): the input's
own 0.5..99.5 percentile range -- here that of the FBP it denoises, per fold and for the all-view candidate,
of the rows scored -- mapped to 0..255 before the model and back after; no reference is used.

Cost: per fold, one run of the method on ``(K-1)/K`` of the views plus one forward projection of the
``N/K`` left-out views; in all about ``K`` times the method itself (the workflow's benchmark files,
``results/benchmarks/crossval/``, time each job). For denoisers (TV, BM3D, a model) the forward projections
are a small part of the cost.
:func:`tune_by_holdout` makes each fold's FBP (or SIRT run, for all counts at once) once for the grid.

Against a reference (``--reference``): where a normal-dose reconstruction exists (the simulated datasets,
the demo scan), every candidate -- each method at each value -- is also reconstructed from *all* the views
of the file, by the same reconstructor (the same start: the FBP, SIRT's iterates, the needed method at its
holdout-chosen value), and scored against the reference with :func:`analysis.metrics.compare_volumes`
(:func:`against_reference`: the mean over the slices of SSIM and PSNR in the field of view, and of SSIM in the
object region). Per method the value with the best SSIM is ``chosen_by_reference``, beside the holdout's
``chosen``. The slices scored are the reference's slices of the *same detector rows* as the projections
scored (matched through the reference's ``/slices``), so both choices are judged on one set of rows. Cost:
one more reconstruction per candidate -- ``K + 1`` runs of each method instead of ``K`` (the all-view start is
made once per method, as each fold's is) -- plus the SSIM maps.

:func:`check` gathers such tables (one per dataset and dose) and says how often the holdout choice agrees
with the reference's: per method, the two values, whether they agree, the SSIM at each and the SSIM the
holdout choice loses; per scan, the Spearman correlation of the methods' two rankings, whether the top
method agrees, and the SSIM the fully automatic choice (the best holdout score of all) loses.

Commands::

    python -m analysis.crossval OUT.csv PROJECTIONS.h5 --method fbp-tv [--grid 0.01 0.05 ...] [--k 4] \\
        [--incident I0|auto|none] [--residual auto|plain|ramp] [--model [LABEL=]MODEL.pt ...] \\
        [--grey255-model [LABEL=]MODEL.pt ...] [--n2i JSON] [--slices N] [--center C] [--needs sirt=50] \\
        [--reference REF.h5] [--images IMAGES.h5]
    python -m analysis.crossval check OUT.csv IN.csv [IN.csv ...] [--scans NAME ...] [--benchmarks DIR --costs JSON]
    python -m analysis.crossval figure IMAGES.h5 OUT.png

The first writes one row per method and value: ``dataset``, ``dose`` (the projection file's attributes), ``method``,
``parameter``, ``value``, ``score``, ``fold_1 .. fold_K``, ``score_plain``, ``score_ramp`` (the score in each
residual kind; ``score`` is one of them), ``weighted``, ``residual`` (the kind ``score`` is), ``k``, ``n_rays``,
``chosen`` (the smallest score of its method's grid); with ``--reference`` also ``ssim``, ``psnr``, ``ssim_object``,
``psnr_object`` (all views, against the reference) and ``chosen_by_reference`` (the best ``ssim`` of its method's
grid). A model's row is ``tomogan:<label>`` without a parameter or value (chosen either way). Each
``--n2i`` candidate's row is its label (``n2i``, ``n2i:<label>``), also without a parameter. Each
``--model`` and ``--grey255-model`` entry is ``LABEL=PATH`` or a plain ``PATH``, labelled by :func:`model_label`
(its run folder's name for a file the tools write in one -- ``model.pt``, ``checkpoint.pt``, ``served.pt`` --
else the file's stem); a label is letters, digits and ``. _ + -``, given once over both options, and the first
``=`` ends it (a path holding ``=`` needs a label). ``--grey255-model`` models (the release) are applied with the
grey-level mapping above. ``--incident auto`` (the default) weights by the file's dose when its ``dose_mode`` is
``photons`` (``dose_level`` is then I0) and scores plainly otherwise. ``--slices N`` takes the ``N`` central
detector rows of the projection file (:func:`simulate.reconstruct.central_slices`), with or without a
reference; the reference must hold those rows among its ``/slices``, and slices of ``detector x detector``
pixels. ``--images IMAGES.h5`` also writes (:func:`write_images`) each method's image at its ``chosen`` value, made
from all the views, of the central row scored: ``/recon`` ``(methods, rows, cols)``, ``/method``, ``/label``
(:func:`candidate_label`, ``FBP+TV (weight 0.05)``), ``/score``, ``/rank`` (by score, 1 = best), and with
``--reference`` ``/ssim`` and that row of the reference, ``/reference``. With ``--reference`` those images are the
all-view candidates already made for the SSIM (one row of each kept); without, only the chosen value of each
method is made from all the views (one more run of it).

``--n2i`` takes the config's ``noise2inverse`` section as JSON (or ``@FILE``), ``{"k": 4, "train": {...}}``, or a
list of such objects, each with an optional ``"label"`` (``n2i``, the default, or ``n2i:<label>``; each given once)
and train settings that may hold ``"init": PATH`` (a fine-tune from that model's generator,
:func:`n2i_reconstructor`); each object is a candidate of its own.

``figure`` (:func:`images_figure`) draws such a file: the images ranked best first, each titled with its rank,
label, held-out score and SSIM when known, the reference last; one grey scale, the reference's 0.5..99.5
percentile range (else the FBP's); PNG at OUT.png and PDF beside it. (Like ``check``, ``figure`` is the first
word: to write a CSV named ``figure`` with the first command, call it ``./figure``.)

``check`` (the first word; to write a CSV named ``check`` with the first command, call it ``./check``) reads
tables made with ``--reference`` and writes OUT.csv and a Markdown twin (OUT with suffix ``.md``): the
columns of :func:`check`'s ``methods``, one row per (dataset, dose, method), followed by those of its
``scans``, repeated on each row of that dataset and dose (take them once per scan). Each model label is a
method of its own (each seed's model, the release); having no parameter, its two choices agree by construction.
With ``--scans NAME ...`` (datasets of the tables; after the tables, as ``--scans`` takes every word up to the next
option), OUT.md also lists every route on those scans (:func:`routes_table`, :func:`routes_markdown`): each
candidate at its held-out choice, ranked by score, with its SSIM and PSNR against the reference and its rank by
SSIM; the same table is written as ``routes.csv`` beside OUT.csv. With ``--benchmarks DIR --costs JSON`` too (the
workflow's ``results/benchmarks``, and which of its jobs each route is: ``Plan.route_cost_spec``), what those scans'
own routes cost (:func:`route_costs`): the simulation at the scan's acquisition, the scan-matched and the
generalist's trainings, and each dose's held-out ranking.

Limits: the sample must lie inside the reconstruction disc. For a scan of a sample wider than the field
of view (local tomography) every held-out ray also crosses material outside the disc, which adds a floor
common to all methods. The held-out residual ranks methods run on ``(K-1)/K`` of the views; a method whose
best parameter depends strongly on the number of views is tuned for slightly sparser data than the scan.

Examples
--------
>>> [f.tolist() for f in folds(10, k=4)]
[[0, 4, 8], [1, 5, 9], [2, 6], [3, 7]]
>>> rec = fbp_reconstructor()
>>> theta = np.linspace(0, np.pi, 8, endpoint=False)
>>> rec(np.zeros((8, 1, 16), np.float32), theta, 8.0, 16).shape
(1, 16, 16)
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import math
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Mapping, NamedTuple, Optional, Protocol, Sequence, Tuple

import numpy as np
from scipy import ndimage

from analysis.classical import METHODS, Projections, format_value
from analysis.metrics import compare_volumes, read_slices, slice_indices
from simulate.plumbing import InputError, circular_mask, cli, json_argument, write_csv, write_text
from simulate.reconstruct import central_slices, fbp, project, resolve_backend, sirt

if TYPE_CHECKING:  # pandas is imported where tables are made
    import pandas

__all__ = ["Reconstructor", "HoldoutResult", "TuneResult", "ModelEntry", "StartCache", "MODEL_PREFIX", "RESIDUALS",
           "folds", "fov_rays", "residual_kind", "held_out_folds", "fold_result", "fbp_reconstructor",
           "sirt_reconstructor", "fbp_tv_reconstructor", "fbp_bm3d_reconstructor", "model_reconstructor",
           "n2i_reconstructor", "model_label", "model_entries", "classical_reconstructor", "holdout_residual",
           "tune_by_holdout", "rank_methods", "against_reference", "tune_against_reference", "all_view_candidates",
           "candidate_label", "RankedImages", "write_images", "read_images", "images_figure", "CheckResult", "check",
           "check_markdown", "cost_table", "cost_markdown", "routes_table", "route_costs", "COST_KINDS",
           "routes_markdown", "N2I_PREFIX", "main"]

logger = logging.getLogger(__name__)

FOV_MARGIN = 1.0  # pixels: rays closer than this to the rim of the reconstruction disc are not scored
REFERENCE_COLUMNS = ("ssim", "psnr", "ssim_object", "psnr_object")  # what --reference adds (and chosen_by_reference)
REFERENCE_FOV_MARGIN = 2.0  # pixels left out at the rim when scoring against a reference (analysis.metrics' default)
MODEL_PREFIX = "tomogan:"  # a model's method name: tomogan:<label>
N2I = "n2i"  # Noise2Inverse's method name (trained from scratch, or the one --n2i candidate)
N2I_PREFIX = N2I + ":"  # a further Noise2Inverse candidate's method name: n2i:<label> (a fine-tune, say)
#: how a fold's residual is scored: ``plain`` squared residual; ``ramp``, filtered by ``sqrt(|f|)`` along the
#: detector first, so that its sum is the image-domain squared error (:func:`residual_kind`); ``auto`` -- ramp
#: on photon-limited data (weighted), plain otherwise
RESIDUALS = ("auto", "plain", "ramp")
KINDS = ("plain", "ramp")  # the residuals every score is also given in (score_plain, score_ramp)
RUN_FOLDER_FILES = ("model.pt", "checkpoint.pt", "served.pt")  # what the tools write in a run's folder
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


class Reconstructor(Protocol):
    """A method under test: the kept views in, a slice stack out.

    ``rec(data, theta, center, size, *, backend="auto", threads=1)``

    Parameters
    ----------
    data : ndarray of float32, shape (angles, rows, detector)
        Line integrals of the kept views only.
    theta : ndarray, shape (angles,)
        Their angles, radians.
    center : float
        Rotation axis on the detector, pixels (``detector / 2`` when centred).
    size : int
        Side of the square reconstruction grid.

    Returns
    -------
    ndarray, shape (rows, size, size)
    """

    def __call__(self, data: np.ndarray, theta: np.ndarray, center: float, size: int, *,
                 backend: str = "auto", threads: int = 1) -> np.ndarray: ...


@dataclass(frozen=True)
class HoldoutResult:
    """A method's held-out residual.

    Attributes
    ----------
    score : float
        Mean of ``fold_scores``; lower is better.
    fold_scores : tuple of float
        One score per fold.
    k : int
        Number of folds.
    weighted : bool
        True: Poisson-weighted, relative to the noise level (a perfect image scores about 1);
        False: plain mean squared residual, (line integral)^2.
    n_rays : int
        Rays scored over all folds (field-of-view rays of the held-out views and slices).
    residual : str
        ``plain`` or ``ramp`` (filtered along the detector first, :data:`RESIDUALS`): the kind ``score`` is.
    by_residual : dict
        The mean score of each kind, ``{"plain": ..., "ramp": ...}`` (both come from one forward projection):
        what the other residual would have said, for :func:`check`'s comparison.
    """

    score: float
    fold_scores: Tuple[float, ...]
    k: int
    weighted: bool
    n_rays: int
    residual: str = "plain"
    by_residual: Dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TuneResult:
    """The outcome of :func:`tune_by_holdout`: ``chosen`` has the smallest score of ``scores``."""

    method: str
    parameter: str
    chosen: float
    scores: Dict[float, HoldoutResult]


class StartCache:
    """Images of the methods others start from (SIRT, for SIRT+TV), kept by method, value and the views used.

    :func:`tune_by_holdout` and :func:`all_view_candidates` make a start method's image at every value of its grid
    (per fold, and from all the views); a method tuned after it that starts from its chosen value
    (``needs``) then takes those images instead of running the start again: ``K + 1`` SIRT runs saved, the dearest
    part of SIRT+TV's cross-validation on a scan of many views.
    An entry is keyed by a digest of the very views and angles it was made from, so a hit is the image the
    start would make again (the reconstructors are deterministic). It holds one image stack per fold (and all
    views) per grid value: a few MiB for the rows a scan is scored on.
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


# ----------------------------------------------------------------------------- folds and rays

def folds(n_angles: int, k: int = 4) -> List[np.ndarray]:
    """``k`` interleaved folds of view indices: fold ``j`` is ``j, j+k, j+2k, ...`` (sorted).

    The folds partition ``range(n_angles)``; each spans the whole angular range.
    """
    n_angles, k = int(n_angles), int(k)
    if k < 2:
        raise ValueError(f"need k >= 2 folds, got {k}")
    if n_angles < 2 * k:
        raise ValueError(f"{n_angles} views are too few for {k} folds (need at least {2 * k})")
    return [np.arange(j, n_angles, k) for j in range(k)]


def fov_rays(n_det: int, center: float, size: int, *, margin: float = FOV_MARGIN) -> np.ndarray:
    """Boolean mask ``(n_det,)`` of the detector pixels whose ray crosses the reconstruction disc.

    Pixel ``i`` sees the ray at distance ``|i + 0.5 - center|`` from the axis; it is kept when that is at
    most ``size / 2 - margin``.

    >>> fov_rays(8, 4.0, 8).astype(int)
    array([0, 1, 1, 1, 1, 1, 1, 0])
    """
    u = np.arange(n_det) + 0.5 - float(center)
    return np.abs(u) <= size / 2 - margin


def _to_detector(pred: np.ndarray, center: float) -> np.ndarray:
    """Move projections whose axis is at ``detector / 2`` so that it sits at ``center``.

    The inverse of :func:`simulate.reconstruct._center_sinogram` (same linear interpolation).
    """
    offset = float(center) - pred.shape[-1] / 2
    if offset == 0:
        return pred
    return ndimage.shift(pred, (0,) * (pred.ndim - 1) + (offset,), order=1, mode="nearest")


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

    Per call: the ``k`` interleaved subsets of the given views are reconstructed by FBP
    (:func:`tomogan_core.noise2inverse.subset_reconstructions`), the generator is trained on them
    (:func:`tomogan_core.noise2inverse.train_n2i`, in a temporary folder) and applied
    (:func:`tomogan_core.noise2inverse.denoise_n2i`). So, unlike a model trained once on the whole scan,
    each fold's network never sees the views left out: ``K + 1`` trainings per scan (``K`` folds and the
    all-view candidate), each on the rows scored.

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


# ----------------------------------------------------------------------------- the held-out residual

def _check(data, theta, center, size, incident, slices):
    data = np.asarray(data, dtype=np.float32)
    theta = np.asarray(theta, dtype=np.float64)
    if data.ndim != 3:
        raise ValueError(f"projections must be (angles, rows, detector), got shape {data.shape}")
    if theta.shape != (data.shape[0],):
        raise ValueError(f"need one angle per projection: {theta.size} angles for {data.shape[0]} projections")
    n_det = data.shape[-1]
    center = n_det / 2 if center is None else float(center)
    size = int(size or n_det)
    weights = None
    if incident is not None:
        i0 = np.asarray(incident, dtype=np.float64)
        if not (np.isfinite(i0).all() and (i0 > 0).all()):
            raise ValueError("incident photons I0 must be finite and > 0")
        try:
            i0 = np.broadcast_to(i0, data.shape[1:])
        except ValueError:
            raise ValueError(f"incident photons of shape {i0.shape} do not match detector rows x pixels "
                             f"{data.shape[1:]}") from None
        weights = i0
    if slices is not None:
        rows = (central_slices(data.shape[1], int(slices)) if np.ndim(slices) == 0
                else np.asarray(slices, dtype=int))
        data = data[:, rows]
        weights = None if weights is None else weights[rows]
    rays = fov_rays(n_det, center, size)
    if not rays.any():
        raise ValueError(f"no detector pixel of {n_det} sees the {size}-pixel disc around centre {center}")
    return data, theta, center, size, weights, rays


def residual_kind(residual: str, weighted: bool) -> str:
    """The residual a score uses: ``plain`` or ``ramp``; ``auto`` is ``ramp`` when ``weighted`` (photon-limited).

    Why: by the Fourier slice theorem, a projection's detector frequency ``f`` samples the image's spectrum on a
    line through the origin, so the plain squared residual weights the image's error at spatial frequency ``f``
    by ``1 / |f|``: high-frequency noise left in an image costs it little, and the held-out residual then
    prefers too little smoothing. Filtering the residual by ``sqrt(|f|)`` first undoes that weight -- the sum of
    squares becomes the image-domain squared error at the held-out angles -- which is what the reference's SSIM
    and PSNR see. On sparse-view data, though, the folds' reconstructions from ``(K-1)/K`` of the views carry
    more streaks than the scan's own, and the ramp weight makes the score pick more smoothing than the whole
    scan needs; so ``auto`` keeps the plain residual there. ``bench/crossval_residual.py`` measures both
    against the reference.

    >>> residual_kind("auto", True), residual_kind("auto", False), residual_kind("ramp", False)
    ('ramp', 'plain', 'ramp')
    """
    if residual not in RESIDUALS:
        raise ValueError(f"residual must be one of {', '.join(RESIDUALS)}, got '{residual}'")
    return ("ramp" if weighted else "plain") if residual == "auto" else residual


class _Scorer:
    """Scores a fold's prediction against its measured projections (one geometry, one set of rays)."""

    def __init__(self, data, theta, held, center, size, i0, rays, backend, threads, residual="plain"):
        self.theta = theta[held]
        self.measured = data[held][:, :, rays].astype(np.float64)
        # Poisson weights from the measured counts, 1 / var(p) = I0 exp(-p)
        self.weights = None if i0 is None else i0[None, :, rays] * np.exp(-self.measured)
        self.center, self.size, self.n_det, self.rays = center, size, data.shape[-1], rays
        self.disc = circular_mask((size, size))
        self.backend, self.threads = backend, threads
        self.residual = residual
        # sqrt(|f|) on a zero-padded detector (no wrap-around). Its mean power is the variance it leaves of unit
        # white noise, so with Poisson noise of variance 1 / w per ray the filtered noise level is that power times
        # the mean variance: a perfect image's ramp score is then about 1
        n_fft = 2 * self.n_det
        self.ramp = np.sqrt(np.abs(np.fft.rfftfreq(n_fft)))
        ramp_power = float(np.mean(np.abs(np.fft.fftfreq(n_fft))))
        self.ramp_noise = None if self.weights is None else ramp_power * float(np.mean(1.0 / self.weights))

    def __call__(self, volume) -> float:
        """The score of this scorer's residual."""
        return self.scores(volume)[self.residual]

    def scores(self, volume) -> Dict[str, float]:
        """The score of every residual kind (:data:`KINDS`), from one forward projection."""
        volume = np.asarray(volume, dtype=np.float32)
        if volume.ndim != 3 or volume.shape[1:] != (self.size, self.size) or \
                volume.shape[0] != self.measured.shape[1]:
            raise ValueError(f"method returned shape {volume.shape}, expected "
                             f"({self.measured.shape[1]}, {self.size}, {self.size})")
        pred = project(volume * self.disc, self.theta, n_det=self.n_det, backend=self.backend,
                       threads=self.threads)
        r = _to_detector(pred, self.center)[:, :, self.rays] - self.measured
        r2 = r ** 2
        out = {"plain": float(np.mean(r2 if self.weights is None else self.weights * r2))}
        # not whitened: every ray, so every pixel of the image, counts alike (whitening would discount the rays
        # through dense material, and with them the errors there); relative to the noise the filter passes
        full = np.zeros(r.shape[:2] + (self.n_det,))  # rays outside the field of view add nothing
        full[:, :, self.rays] = r
        spectrum = np.fft.rfft(full, n=2 * self.n_det, axis=-1) * self.ramp
        filtered = np.fft.irfft(spectrum, n=2 * self.n_det, axis=-1)[:, :, :self.n_det][:, :, self.rays]
        out["ramp"] = float(np.mean(filtered ** 2) / (1.0 if self.weights is None else self.ramp_noise))
        return out

    @property
    def n_rays(self) -> int:
        return int(self.measured.size)


def held_out_folds(data, theta, *, k, center, size, incident, slices, backend, threads, residual="auto"):
    """Yield ``(kept_data, kept_theta, center, size, scorer)`` per fold: the kept arrays are copies without the
    fold's views, and ``scorer(volume)`` scores a volume made from them on the fold's views (every tuner's loop)."""
    data, theta, center, size, i0, rays = _check(data, theta, center, size, incident, slices)
    all_views = np.arange(data.shape[0])
    residual = residual_kind(residual, i0 is not None)
    for held in folds(data.shape[0], k):
        kept = np.setdiff1d(all_views, held)
        scorer = _Scorer(data, theta, held, center, size, i0, rays, backend, threads, residual)
        yield np.ascontiguousarray(data[kept]), theta[kept].copy(), center, size, scorer


def fold_result(fold_scores, k, weighted, n_rays, residual) -> HoldoutResult:
    """From each fold's scores of every kind (dicts), the result in ``residual``'s kind."""
    main = [f[residual] for f in fold_scores]
    return HoldoutResult(float(np.mean(main)), tuple(float(s) for s in main), int(k), bool(weighted), int(n_rays),
                         residual, {kind: float(np.mean([f[kind] for f in fold_scores])) for kind in KINDS})


def holdout_residual(data, theta, reconstructor: Reconstructor, *, k: int = 4, center=None, size=None,
                     incident=None, slices=None, residual: str = "auto", backend: str = "auto",
                     threads: int = 1) -> HoldoutResult:
    """K-fold held-out residual of a method on a scan (see the module docstring).

    Parameters
    ----------
    data : ndarray, shape (angles, rows, detector)
        Measured line integrals.
    theta : ndarray, shape (angles,)
        Angles, radians.
    reconstructor : Reconstructor
        The method; it is called once per fold with the other folds' views only.
    k : int
        Folds.
    center : float, optional
        Rotation axis, detector pixels (default ``detector / 2``).
    size : int, optional
        Reconstruction grid side (default: the detector width).
    incident : float or ndarray, optional
        I0, photons per detector pixel (scalar, ``(detector,)`` or ``(rows, detector)``): score relative
        to the Poisson noise level. None: plain mean squared residual.
    slices : int or sequence of int, optional
        Detector rows to use: ``N`` central ones, or these indices (default all).
    residual : str
        ``plain``, ``ramp`` or ``auto`` (ramp when ``incident`` is given), :func:`residual_kind`.

    Returns
    -------
    HoldoutResult
    """
    scores, n_rays, scorer = [], 0, None
    for kept_data, kept_theta, c, s, scorer in held_out_folds(data, theta, k=k, center=center, size=size,
                                                         incident=incident, slices=slices, backend=backend,
                                                         threads=threads, residual=residual):
        scores.append(scorer.scores(reconstructor(kept_data, kept_theta, c, s, backend=backend, threads=threads)))
        n_rays += scorer.n_rays
    return fold_result(scores, k, incident is not None, n_rays, scorer.residual)


def _grid(method, grid) -> list:
    """The values searched: ``grid`` (default the method's own), typed, without repeats, in order."""
    grid = list(dict.fromkeys(method.value_type(v) for v in (method.grid if grid is None else grid)))
    if not grid:
        raise ValueError(f"method '{method.name}': empty grid")
    return grid


def tune_by_holdout(data, theta, method_name: str, grid: Optional[Sequence[float]] = None, *, k: int = 4,
                    center=None, size=None, incident=None, slices=None, residual: str = "auto",
                    needs: Optional[Mapping[str, float]] = None, backend: str = "auto",
                    threads: int = 1, cache: Optional[StartCache] = None) -> TuneResult:
    """The parameter value of a registry method with the smallest held-out residual.

    Per fold, the method's start (its projections bundle, the FBP, or the needed method at its chosen
    value) is made once from the kept views, and the registry's ``candidates`` produce the grid's images
    from it (SIRT: all counts from one run). Each value's score equals ``holdout_residual`` of
    ``classical_reconstructor(method_name, value)``. With a :class:`StartCache`, a start method's fold images
    are kept there, and a needed start is taken from it when it holds one.

    Returns
    -------
    TuneResult
        ``chosen`` (the first of equal minima), and every value's :class:`HoldoutResult`.
    """
    method = METHODS[method_name]
    grid = _grid(method, grid)
    per_value = {v: [] for v in grid}
    n_rays, scorer = 0, None
    for kept_data, kept_theta, c, s, scorer in held_out_folds(data, theta, k=k, center=center, size=size,
                                                         incident=incident, slices=slices, backend=backend,
                                                         threads=threads, residual=residual):
        x = _start(method, kept_data, kept_theta, c, s, needs, backend, threads, cache)
        for value, volume in method.candidates(x, grid, backend=backend, threads=threads):
            per_value[method.value_type(value)].append(scorer.scores(volume))
            if cache is not None:
                cache.put(method_name, value, kept_data, kept_theta, c, s, volume)
        n_rays += scorer.n_rays
    scores = {v: fold_result(per_value[v], k, incident is not None, n_rays, scorer.residual) for v in grid}
    chosen = min(grid, key=lambda v: scores[v].score)
    if len(grid) > 2 and chosen in (grid[0], grid[-1]):
        logger.warning("%s: the chosen %s = %s is at the edge of the grid; widen it", method_name,
                       method.parameter, chosen)
    return TuneResult(method_name, method.parameter, chosen, scores)


def rank_methods(candidates: Mapping[str, Reconstructor], data, theta, *, k: int = 4, center=None, size=None,
                 incident=None, slices=None, residual: str = "auto", backend: str = "auto", threads: int = 1):
    """Held-out residuals of several methods, best first.

    Returns
    -------
    pandas.DataFrame
        Columns ``rank, method, score, fold_1 .. fold_K, weighted, k``, sorted by ``score`` (lower is
        better).
    """
    import pandas as pd

    rows = []
    for name, rec in candidates.items():
        res = holdout_residual(data, theta, rec, k=k, center=center, size=size, incident=incident,
                               slices=slices, residual=residual, backend=backend, threads=threads)
        rows.append({"method": name, **_score_columns(res)})
    table = pd.DataFrame(rows).sort_values("score", kind="stable").reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table


def _score_columns(res: HoldoutResult) -> dict:
    cols = {"score": res.score}
    cols.update({f"fold_{j + 1}": s for j, s in enumerate(res.fold_scores)})
    cols.update({f"score_{kind}": v for kind, v in res.by_residual.items()})
    cols.update(weighted=res.weighted, residual=res.residual, k=res.k, n_rays=res.n_rays)
    return cols


# ----------------------------------------------------------------------------- against a reference

def against_reference(volume, reference, *, fov_margin: float = REFERENCE_FOV_MARGIN) -> Dict[str, float]:
    """SSIM and PSNR of a volume against the normal-dose reference, as :mod:`analysis.metrics` scores them.

    Parameters
    ----------
    volume, reference : ndarray, shape (slices, rows, cols)
        The same slices (detector rows), in the same order.
    fov_margin : float
        Pixels left out at the rim of the field of view (:func:`analysis.metrics.compare_volumes`).

    Returns
    -------
    dict
        ``ssim``, ``psnr``: means over the slices in the field of view (one ``data_range`` for the volume,
        the reference's); ``ssim_object``, ``psnr_object``: means over the slices that have an object region (NaN
        if none has).
    """
    rows = compare_volumes(volume, reference, fov_margin=fov_margin)
    out = {"ssim": float(np.mean([r["ssim"] for r in rows])), "psnr": float(np.mean([r["psnr"] for r in rows]))}
    for key in ("ssim_object", "psnr_object"):
        obj = [r[key] for r in rows if np.isfinite(r[key])]
        out[key] = float(np.mean(obj)) if obj else float("nan")
    return out


def _best_by_ssim(metrics: Mapping) -> object:
    """The key with the highest ``ssim`` (the first of equal maxima, in order)."""
    keys = list(metrics)
    return max(keys, key=lambda v: (metrics[v]["ssim"], -keys.index(v)))


def tune_against_reference(data, theta, method_name: str, grid: Optional[Sequence[float]], reference, *,
                           center=None, size=None, slices=None, needs: Optional[Mapping[str, float]] = None,
                           fov_margin: float = REFERENCE_FOV_MARGIN, backend: str = "auto",
                           threads: int = 1) -> Dict[float, Dict[str, float]]:
    """Each value of a registry method's grid, reconstructed from *all* the views, scored against a reference.

    The counterpart of :func:`tune_by_holdout` with the truth: the same start (made once, from every view)
    and the same ``candidates``, so each value's image is what ``classical_reconstructor(method_name, value,
    needs=needs)`` makes of the whole scan. One more run of the method than the holdout's ``K``.

    Parameters
    ----------
    data : ndarray, shape (angles, rows, detector)
        Measured line integrals (all the views).
    reference : ndarray, shape (slices, size, size)
        The reference's slices of the detector rows used (all rows, or those ``slices`` selects), in order.
    slices, center, size, needs, backend, threads
        As for :func:`tune_by_holdout`.

    Returns
    -------
    dict
        ``{value: {"ssim", "psnr", "ssim_object", "psnr_object"}}`` in grid order (:func:`against_reference`); the best
        value by reference is the one with the highest ``ssim``.

    Raises
    ------
    ValueError
        A reference whose shape is not ``(rows used, size, size)``.
    """
    data, theta, center, size, _, _ = _check(data, theta, center, size, None, slices)
    reference = np.asarray(reference, dtype=np.float32)
    if reference.shape != (data.shape[1], size, size):
        raise ValueError(f"reference of shape {reference.shape} for reconstructions of shape "
                         f"({data.shape[1]}, {size}, {size})")
    return {v: against_reference(volume, reference, fov_margin=fov_margin)
            for v, volume in all_view_candidates(data, theta, method_name, grid, center=center, size=size,
                                                 needs=needs, backend=backend, threads=threads)}


def all_view_candidates(data, theta, method_name: str, grid: Optional[Sequence[float]] = None, *, center=None,
                        size=None, slices=None, needs: Optional[Mapping[str, float]] = None, backend: str = "auto",
                        threads: int = 1, cache: Optional[StartCache] = None):
    """Yield ``(value, volume)`` for each value of a registry method's grid, made from *all* the views.

    The start (the FBP, SIRT's iterates, the needed method at its value from ``needs``) is made once and the
    registry's ``candidates`` make the grid's images from it, lazily, one at a time: each volume is what
    ``classical_reconstructor(method_name, value, needs=needs)`` makes of the whole scan. A one-value grid makes
    only that value's image (SIRT: only as many iterations). ``cache``: as for :func:`tune_by_holdout`.
    """
    method = METHODS[method_name]
    grid = _grid(method, grid)
    data, theta, center, size, _, _ = _check(data, theta, center, size, None, slices)
    x = _start(method, data, theta, center, size, needs, backend, threads, cache)
    for v, volume in method.candidates(x, grid, backend=backend, threads=threads):
        if cache is not None:
            cache.put(method_name, v, data, theta, center, size, volume)
        yield method.value_type(v), volume


# ----------------------------------------------------------------------------- the images

class RankedImages(NamedTuple):
    """What ``--images`` writes (:func:`write_images`) and :func:`read_images` reads back, one entry per method.

    ``recon`` ``(methods, rows, cols)``: each method's image at its holdout choice, made from all the views, of
    one detector row; ``method``, ``label`` (the method at its value, :func:`candidate_label`), ``score`` (held
    out), ``rank`` (by score, 1 = best); ``ssim`` and ``reference`` (that row of the reference) when the scan was
    scored against one, else None; ``attrs``, the file's attributes (``dataset``, ``dose``, ``row``, ...).
    """

    recon: np.ndarray
    method: List[str]
    label: List[str]
    score: np.ndarray
    rank: np.ndarray
    ssim: Optional[np.ndarray]
    reference: Optional[np.ndarray]
    attrs: dict


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


def _ranks(scores) -> np.ndarray:
    """Rank by score, 1 = the smallest (equal scores: in order).

    >>> _ranks([1.2, 0.9, 1.2, 1.0]).tolist()
    [3, 1, 4, 2]
    """
    ranks = np.empty(len(scores), np.int32)
    ranks[np.argsort(np.asarray(scores, dtype=np.float64), kind="stable")] = np.arange(1, len(scores) + 1)
    return ranks


def write_images(path, methods: Sequence[str], labels: Sequence[str], images: Sequence[np.ndarray],
                 scores: Sequence[float], *, ssim: Optional[Sequence[float]] = None,
                 reference: Optional[np.ndarray] = None, attrs: Optional[dict] = None) -> None:
    """Write the methods' images with their names, labels, scores and ranks (:class:`RankedImages`) atomically.

    Datasets ``/recon`` (float32), ``/method`` and ``/label`` (UTF-8 text), ``/score``, ``/rank``, and with a
    reference ``/ssim`` and ``/reference``; ``attrs`` become the root attributes (its ``reference`` names the
    reference file given there, ``"none"`` without one).
    """
    from simulate.io import write_arrays

    arrays = {"/recon": np.stack([np.asarray(im, dtype=np.float32) for im in images]),
              "/method": np.array([m.encode() for m in methods]), "/label": np.array([t.encode() for t in labels]),
              "/score": np.asarray(scores, dtype=np.float64), "/rank": _ranks(scores)}
    if reference is not None:
        arrays.update({"/ssim": np.asarray(ssim, dtype=np.float64),
                       "/reference": np.asarray(reference, dtype=np.float32)})
    attrs = dict(attrs or {})
    attrs["reference"] = "none" if reference is None else str(attrs.get("reference") or "unnamed")
    write_arrays(path, arrays, attrs)


def read_images(path) -> RankedImages:
    """What :func:`write_images` wrote, checked: a missing or unreadable file, a missing dataset, or arrays that
    do not agree in length, size or ranks are an :class:`InputError` naming the file."""
    from simulate.io import read_array, read_attrs

    recon = read_array(path, "/recon", ndim=3, dtype_kind="f")
    text = {name: [b.decode(errors="replace") for b in read_array(path, f"/{name}", ndim=1, dtype_kind="S",
                                                                     dtype=None, finite=False).tolist()]
            for name in ("method", "label")}
    score = read_array(path, "/score", ndim=1, dtype_kind="f", dtype=np.float64, finite=False)
    rank = read_array(path, "/rank", ndim=1, dtype_kind="iu", dtype=np.int64)
    attrs = read_attrs(path)
    ssim = reference = None
    if attrs.get("reference", "none") != "none":
        ssim = read_array(path, "/ssim", ndim=1, dtype_kind="f", dtype=np.float64, finite=False)
        reference = read_array(path, "/reference", ndim=2, dtype_kind="f")
    n = recon.shape[0]
    lengths = {"method": len(text["method"]), "label": len(text["label"]), "score": len(score), "rank": len(rank),
               **({} if ssim is None else {"ssim": len(ssim)})}
    if n == 0 or any(v != n for v in lengths.values()):
        raise InputError(path, f"{n} images in /recon for " + ", ".join(f"{v} {k}" for k, v in lengths.items()))
    if sorted(rank.tolist()) != list(range(1, n + 1)):
        raise InputError(path, f"/rank holds {rank.tolist()}, expected the ranks 1..{n} once each")
    if reference is not None and reference.shape != recon.shape[1:]:
        raise InputError(path, f"/reference of shape {reference.shape} for images of shape {recon.shape[1:]}")
    return RankedImages(recon, text["method"], text["label"], score, rank, ssim, reference, attrs)


def images_figure(path, out) -> None:
    """The methods' images ranked best first (:func:`read_images`), the reference last when there is one.

    Each panel is titled with its rank, label, held-out score and SSIM when known; all share one grey scale, the
    0.5..99.5 percentile range of the reference, else of the FBP, else of the best method's image
    (:mod:`analysis.figures`' window). Written as PNG at ``out`` and PDF beside it, atomically.
    """
    images = read_images(path)
    from analysis.figures import UNITS, grey_window, save_figure  # matplotlib, on the Agg backend
    import matplotlib.pyplot as plt

    order = np.argsort(images.rank, kind="stable")
    panels = []
    for i in order:
        text = f"{images.rank[i]}. {images.label[i]}\nscore {images.score[i]:.4g}"
        if images.ssim is not None:
            text += f", SSIM {images.ssim[i]:.3f}"
        panels.append((text, images.recon[i]))
    if images.reference is not None:
        panels.append(("reference (normal dose)", images.reference))
    window = (images.reference if images.reference is not None else
              images.recon[images.method.index("fbp")] if "fbp" in images.method else panels[0][1])
    vmin, vmax = grey_window(window)
    ncols = min(len(panels), 4)
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.8 * nrows), squeeze=False, layout="constrained")
    for ax, (text, img) in zip(axes.flat, panels):
        im = ax.imshow(img, cmap="gray", vmin=vmin, vmax=vmax)
        ax.set_title(text, fontsize=8)
        ax.set_xticks([]), ax.set_yticks([])
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.02, pad=0.01).set_label(UNITS, fontsize=7)
    a = images.attrs
    fig.suptitle(f"{a.get('dataset', '')} {a.get('dose', '')}, detector row {a.get('row', '?')}: ranked by held-out "
                 "score (lower is better)", fontsize=9)
    save_figure(fig, out)


# ----------------------------------------------------------------------------- checking the choices

CHECK_NEEDS = ("dataset", "dose", "method", "value", "score", "chosen", "ssim", "chosen_by_reference")
ROUTE_NEEDS = ("dataset", "dose", "method", "value", "score", "chosen")  # what routes_table needs (no reference)
ROUTE_COLUMNS = ("dataset", "dose", "rank", "route", "method", "score", "ssim", "ssim_object", "psnr", "psnr_object",
                 "ref_rank")


class CheckResult(NamedTuple):
    """What :func:`check` finds.

    Attributes
    ----------
    methods : pandas.DataFrame
        One row per (dataset, dose, method): ``dataset, dose, method, parameter``; ``holdout_value``,
        ``reference_value`` (as the tables write them; empty for a method without a parameter); ``agree``;
        ``grid_steps`` (how far apart they are among the method's values sorted increasingly; 1: neighbours);
        ``score`` (the holdout score at ``holdout_value``); ``ssim_holdout``, ``ssim_reference`` (the
        SSIM at each value); ``ssim_lost = ssim_reference - ssim_holdout`` (>= 0).
    scans : pandas.DataFrame
        One row per (dataset, dose): ``n_methods``; ``spearman``, the Spearman correlation between the
        methods' holdout ranking (each at its holdout value, by ``score``, lower better) and their reference
        ranking (each at its reference value, by SSIM, higher better) -- 1: the same order, -1: reversed,
        NaN with fewer than 3 methods; ``top_holdout``, ``top_reference`` (the first of each ranking) and
        ``top_agrees``; ``ssim_auto`` (the SSIM of the automatic choice, ``top_holdout`` at its holdout value),
        ``ssim_best`` (the best SSIM of any method at any value) and ``auto_ssim_lost = ssim_best -
        ssim_auto`` (>= 0).
    residuals : pandas.DataFrame
        What each residual kind (:data:`KINDS`) would have chosen, from the tables' ``score_<kind>`` columns,
        one row per kind and kind of data (``data``: ``photon-limited`` for weighted scores, else
        ``unweighted``): ``in_use`` (the scans whose ``score`` is that kind, of ``n_scans``), ``n_tuned``,
        ``agree``, ``within_one_step``, ``ssim_lost_mean``, ``ssim_lost_max`` (over the tuned methods) and
        ``auto_ssim_lost_mean`` (over the scans). Empty when the tables lack those columns.
    """

    methods: "pandas.DataFrame"
    scans: "pandas.DataFrame"
    residuals: "pandas.DataFrame" = None


def _label(value) -> str:
    """A cell as text: empty for a missing value, a number as :func:`analysis.classical.format_value` writes it."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, float, np.integer, np.floating)):
        return format_value(value.item() if isinstance(value, np.generic) else value)
    return str(value)


def _flag(series, name: str, where) -> np.ndarray:
    """A column of True/False (bools, or the words as a CSV holds them) as bools."""
    words = {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}
    out = []
    for v in series:
        key = str(bool(v)).lower() if isinstance(v, (bool, np.bool_)) else str(v).strip().lower()
        if key not in words:
            raise InputError(where, f"column '{name}' holds {v!r}, expected True or False")
        out.append(words[key])
    return np.array(out, dtype=bool)


def _gather(tables, *, reference: bool = True) -> "pandas.DataFrame":
    """One table of all candidate rows, with ``_source`` naming where each came from; checked.

    With ``reference`` every row needs its SSIM and ``chosen_by_reference``; without, the reference's columns
    (:data:`REFERENCE_COLUMNS`) are taken as numbers where given and NaN where not.
    """
    import pandas as pd

    from simulate.io import read_table

    need = CHECK_NEEDS if reference else ROUTE_NEEDS
    parts = []
    for i, table in enumerate(tables):
        if isinstance(table, pd.DataFrame):
            where = f"table {i + 1}"
            missing = sorted(set(need) - set(table.columns))
            if missing:
                raise InputError(where, f"lacks columns {missing}")
        else:
            where = str(table)
            table = read_table(table, what="crossval table", need=need)
        table = table.copy()
        for col in ("dataset", "dose", "method", "parameter", "value"):
            table[col] = [_label(v) for v in table[col]] if col in table else ""
        for col in ("chosen", "chosen_by_reference") if reference else ("chosen",):
            table[col] = _flag(table[col], col, where)
        for col in ("score", "ssim") if reference else ("score",):
            table[col] = pd.to_numeric(table[col], errors="coerce")
            if table[col].isna().any():
                raise InputError(where, f"column '{col}' has missing or non-numeric values"
                                        + (" (made without --reference?)" if col == "ssim" else ""))
        if not reference:
            for col in REFERENCE_COLUMNS:
                table[col] = pd.to_numeric(table[col], errors="coerce") if col in table else np.nan
        table["_source"] = where
        parts.append(table)
    if not parts:
        raise ValueError("check needs at least one table")
    rows = pd.concat(parts, ignore_index=True)
    key = ["dataset", "dose", "method", "value"]
    twice = rows[rows.duplicated(key, keep=False)]
    if not twice.empty:
        dataset, dose, method, value = twice.iloc[0][key]
        same = twice[(twice[key] == [dataset, dose, method, value]).all(axis=1)]
        raise InputError(same["_source"].iloc[-1], f"{dataset}/{dose}: {method} {value or '(no parameter)'} "
                                                   f"appears twice (in {', '.join(dict.fromkeys(same['_source']))})")
    for col in ("k", "weighted", "n_rays"):  # scores compared across methods must be of one kind
        if col in rows:
            mixed = rows.groupby(["dataset", "dose"], sort=False)[col].nunique(dropna=False)
            if (mixed > 1).any():
                dataset, dose = mixed[mixed > 1].index[0]
                sources = sorted(set(rows.loc[(rows.dataset == dataset) & (rows.dose == dose), "_source"]))
                raise InputError(sources[-1], f"{dataset}/{dose}: scores with different {col} (other --k, "
                                              f"--slices or --incident?) cannot be compared")
    return rows


def _grid_steps(values, a, b) -> int:
    """How many steps apart values ``a`` and ``b`` lie among ``values`` sorted increasingly (1: neighbours)."""
    order = _numeric_order(values)
    return abs(order.index(values.index(a)) - order.index(values.index(b)))


def _numeric_order(values) -> list:
    """The positions of ``values`` (labels) in increasing numeric order (text after numbers)."""
    def key(i):
        try:
            return (0, float(values[i]), i)
        except ValueError:
            return (1, 0.0, i)
    return sorted(range(len(values)), key=key)


def _spearman(holdout_scores, reference_ssims) -> float:
    """Spearman's rho between ranking by score (lower better) and by SSIM (higher better); NaN below 3."""
    from scipy.stats import spearmanr

    if len(holdout_scores) < 3:
        return float("nan")
    with warnings.catch_warnings():  # a constant column: rho is undefined, NaN
        warnings.simplefilter("ignore")
        rho = spearmanr(np.asarray(holdout_scores, float), -np.asarray(reference_ssims, float)).statistic
    return float(rho)


def check(tables) -> CheckResult:
    """How often the held-out choice agrees with the reference's, from the tables of ``--reference`` runs.

    Parameters
    ----------
    tables : sequence of pandas.DataFrame or path
        Tables as the command writes them with ``--reference`` (one per dataset and dose, or several per
        scan with different methods), with at least the columns ``dataset, dose, method, value, score,
        chosen, ssim, chosen_by_reference``. Each (dataset, dose, method) needs exactly one ``chosen`` and
        one ``chosen_by_reference`` row, and those must hold its smallest score and its highest SSIM.

    Returns
    -------
    CheckResult
        ``methods`` and ``scans`` (see :class:`CheckResult`), in the order the tables list them.

    Raises
    ------
    InputError
        A table that lacks a column, has no SSIM, repeats a candidate, marks no or several choices, or marks
        one that is not the best; scores of one scan made with different ``k``, slices or weighting.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"dataset": "d", "dose": "x", "method": "fbp-tv", "value": [0.01, 0.1, 1.0],
    ...                   "score": [1.2, 1.1, 1.5], "chosen": [False, True, False], "ssim": [0.6, 0.7, 0.8],
    ...                   "chosen_by_reference": [False, False, True]})
    >>> row = check([t]).methods.iloc[0]
    >>> row.holdout_value, row.reference_value, bool(row.agree), int(row.grid_steps), round(float(row.ssim_lost), 6)
    ('0.1', '1', False, 1, 0.1)
    """
    import pandas as pd

    rows = _gather(tables)
    methods = []
    for (dataset, dose, method), g in rows.groupby(["dataset", "dose", "method"], sort=False):
        hold, ref = _choice(g, "chosen"), _choice(g, "chosen_by_reference")
        values = list(g["value"])
        steps = _grid_steps(values, hold["value"], ref["value"])
        methods.append({"dataset": dataset, "dose": dose, "method": method,
                        "parameter": _label(hold.get("parameter", "")),
                        "holdout_value": hold["value"], "reference_value": ref["value"],
                        "agree": hold["value"] == ref["value"], "grid_steps": steps, "score": float(hold["score"]),
                        "ssim_holdout": float(hold["ssim"]), "ssim_reference": float(ref["ssim"]),
                        "ssim_lost": float(ref["ssim"] - hold["ssim"])})
    methods = pd.DataFrame(methods)
    scans = []
    for (dataset, dose), g in methods.groupby(["dataset", "dose"], sort=False):
        top_h = g.loc[g["score"].idxmin()]           # first of equal minima
        top_r = g.loc[g["ssim_reference"].idxmax()]  # first of equal maxima
        scans.append({"dataset": dataset, "dose": dose, "n_methods": len(g),
                      "spearman": _spearman(g["score"], g["ssim_reference"]),
                      "top_holdout": top_h["method"], "top_reference": top_r["method"],
                      "top_agrees": bool(top_h["method"] == top_r["method"]),
                      "ssim_auto": float(top_h["ssim_holdout"]), "ssim_best": float(top_r["ssim_reference"]),
                      "auto_ssim_lost": float(top_r["ssim_reference"] - top_h["ssim_holdout"])})
    return CheckResult(methods, pd.DataFrame(scans), _residual_comparison(rows))


def _choice(g, col: str) -> "pandas.Series":
    """The one row of a (dataset, dose, method) group marked ``col`` (``chosen``: its smallest score;
    ``chosen_by_reference``: its highest SSIM); none, several or another is an :class:`InputError`."""
    dataset, dose, method = g[["dataset", "dose", "method"]].iloc[0]
    where = g["_source"].iloc[-1]
    key, best, what = ("score", g["score"].min(), "smallest score") if col == "chosen" else \
        ("ssim", g["ssim"].max(), "highest ssim")
    marked = g[g[col]]
    if len(marked) != 1:
        raise InputError(where, f"{dataset}/{dose}: {method} has {len(marked)} rows marked {col}, expected 1")
    if marked[key].iloc[0] != best:
        raise InputError(where, f"{dataset}/{dose}: {method}'s {col} row is not its {what}")
    return marked.iloc[0]


def _residual_comparison(rows) -> "pandas.DataFrame":
    """:class:`CheckResult`'s ``residuals``: each kind's choices, from its score column, against the reference's."""
    import pandas as pd

    kinds = [kind for kind in KINDS if f"score_{kind}" in rows and rows[f"score_{kind}"].notna().all()]
    out = []
    for kind in kinds:
        col = f"score_{kind}"
        per_scan = []
        for (dataset, dose), scan in rows.groupby(["dataset", "dose"], sort=False):
            best_ssim = float(scan["ssim"].max())
            picks = []  # per method: (its score at its choice, ssim there, agrees, grid steps, tuned)
            for _, g in scan.groupby("method", sort=False):
                choice = g.loc[pd.to_numeric(g[col]).idxmin()]
                ref = g[g["chosen_by_reference"]].iloc[0]
                values = list(g["value"])
                steps = _grid_steps(values, choice["value"], ref["value"])
                picks.append((float(choice[col]), float(choice["ssim"]), choice["value"] == ref["value"], steps,
                              len(g) > 1, float(ref["ssim"])))
            auto = min(picks, key=lambda t: t[0])
            weighted = _flag(scan["weighted"], "weighted", "") if "weighted" in scan else np.zeros(len(scan), bool)
            in_use = "residual" in scan and (scan["residual"].astype(str) == kind).all()
            per_scan.append({"data": "photon-limited" if weighted.all() else "unweighted", "in_use": bool(in_use),
                             "tuned": [t for t in picks if t[4]], "auto_lost": best_ssim - auto[1]})
        for data in ("photon-limited", "unweighted"):
            scans = [sc for sc in per_scan if sc["data"] == data]
            if not scans:
                continue
            tuned = [t for sc in scans for t in sc["tuned"]]
            lost = [t[5] - t[1] for t in tuned]
            out.append({"residual": kind, "data": data, "in_use": sum(sc["in_use"] for sc in scans),
                        "n_scans": len(scans), "n_tuned": len(tuned), "agree": sum(t[2] for t in tuned),
                        "within_one_step": sum(t[3] <= 1 for t in tuned),
                        "ssim_lost_mean": float(np.mean(lost)) if lost else float("nan"),
                        "ssim_lost_max": float(np.max(lost)) if lost else float("nan"),
                        "auto_ssim_lost_mean": float(np.mean([sc["auto_lost"] for sc in scans]))})
    return pd.DataFrame(out, columns=["residual", "data", "in_use", "n_scans", "n_tuned", "agree", "within_one_step",
                                      "ssim_lost_mean", "ssim_lost_max", "auto_ssim_lost_mean"])


def check_markdown(result: CheckResult) -> str:
    """The Markdown twin of :func:`check`'s result: a summary line, then the two tables."""
    m, s = result.methods, result.scans
    tuned = m[m["holdout_value"] != ""]  # methods without a parameter agree by construction
    rho = s["spearman"].dropna()
    summary = [f"The holdout chose the reference's value for {int(tuned['agree'].sum())} of {len(tuned)} tuned "
               f"methods (within one grid step: {int((tuned['grid_steps'] <= 1).sum())}); SSIM lost: mean "
               f"{tuned['ssim_lost'].mean():.4f}, largest {tuned['ssim_lost'].max():.4f}." if len(tuned) else
               "No method has a parameter.",
               f"The top method agreed in {int(s['top_agrees'].sum())} of {len(s)} scans; the automatic choice lost "
               f"{s['auto_ssim_lost'].mean():.4f} SSIM on average.",
               f"Spearman rho of the rankings: median {rho.median():.2f} over the {len(rho)} scans with 3 or more "
               "methods." if len(rho) else "No scan has 3 or more methods to rank."]
    lines = ["# Held-out choices against the reference", "", " ".join(summary), ""]
    r = result.residuals
    if r is not None and len(r):
        lines += ["## Which residual", "",
                  "Every candidate is scored with both residuals (`score_plain`, `score_ramp`); the choices each "
                  "would have made, against the reference's, by kind of data (`in_use`: scans whose ranking used "
                  "it):", "", _markdown_table(r), ""]
    lines += ["## Per method", "", _markdown_table(m), "", "## Per scan", "", _markdown_table(s), ""]
    return "\n".join(lines)


def cost_table(benchmarks) -> "pandas.DataFrame":
    """What the cross-validation of each scan and dose cost, beside the rest of that scan's work at that dose.

    From a workflow's benchmark files (``results/benchmarks``), found by the rules' job names
    (``tomogan_core.study.JOBS``): ``crossval`` (the wall seconds of each ``crossval`` job) and ``other`` (those
    of every other job of that dataset and dose -- its low-dose variant, FBP, each method applied, each model's
    inference, Noise2Inverse: every rule whose job name holds both; the figure of the ranking left out),
    ``ratio = crossval / other``. The trainings shared by every volume are not in ``other``. Empty when there is
    no crossval benchmark.
    """
    import pandas as pd

    from tomogan_core.study import JOBS, benchmark_fields, benchmark_glob, job_fields

    root = Path(benchmarks)
    per_pair = [rule for rule in JOBS if {"dataset", "dose"} <= set(job_fields(rule))
                and rule not in ("crossval", "crossval_figure")]
    rows = []
    for f in sorted(root.glob(benchmark_glob("crossval"))):
        fields = benchmark_fields("crossval", f.relative_to(root).as_posix())  # the glob's own shape: never None
        dataset, dose = fields["dataset"], fields["dose"]
        others = sorted({g for rule in per_pair for g in root.glob(benchmark_glob(rule, dataset=dataset, dose=dose))})
        cv_s, other_s = _bench_seconds([f]), _bench_seconds(others)
        rows.append({"dataset": dataset, "dose": dose, "crossval_s": cv_s, "other_jobs": len(others),
                     "other_s": other_s, "ratio": cv_s / other_s if other_s else float("nan")})
    return pd.DataFrame(rows, columns=["dataset", "dose", "crossval_s", "other_jobs", "other_s", "ratio"])


def cost_markdown(table, *, rows_scored=None, rows_processed=None, cpu: str = "") -> str:
    """:func:`cost_table` as a Markdown section (numbers to 1 decimal), with what the rows are."""
    if table is None or not len(table):
        return ""
    where = (f"The held-out ranking scores {rows_scored} detector row(s) of each scan; the other jobs process the "
             f"{rows_processed} evaluated slices. " if rows_scored and rows_processed else "")
    lines = ["## What it costs", "",
             f"Wall seconds of each scan's `crossval` job (one core) beside those of its other jobs at that dose"
             f"{' (' + cpu + ')' if cpu else ''}. {where}The trainings, shared by every volume, are not counted.",
             "", table.to_markdown(index=False, floatfmt=".1f"), ""]
    return "\n".join(lines)


def _bench_seconds(files) -> float:
    """The wall seconds (column ``s``, its last row) of Snakemake benchmark files, summed; a file without them is
    an :class:`InputError` naming it."""
    import pandas as pd

    total = 0.0
    for f in files:
        try:
            total += float(pd.read_csv(f, sep="\t")["s"].iloc[-1])
        except (OSError, KeyError, IndexError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise InputError(f, f"not a Snakemake benchmark file with wall seconds 's' ({type(exc).__name__}: "
                                f"{exc})") from None
    return total


COST_COLUMNS = ("dataset", "what", "dose", "seconds")


def routes_table(tables, scans: Sequence[str]) -> "pandas.DataFrame":
    """Every route on the given scans: each candidate at its held-out choice, ranked, with its reference metrics.

    Parameters
    ----------
    tables : sequence of pandas.DataFrame or path
        Tables as the command writes them (one per dataset and dose), with at least the columns ``dataset, dose,
        method, value, score, chosen``; ``ssim, ssim_object, psnr, psnr_object`` (``--reference``) where known.
        Each (dataset, dose, method) of the scans needs exactly one ``chosen`` row, its smallest score (a method
        without a parameter has one row, chosen).
    scans : sequence of str
        The datasets to list (a scan's every dose is listed).

    Returns
    -------
    pandas.DataFrame
        One row per (dataset, dose, method): ``dataset, dose``; ``rank`` (by ``score``, the held-out score the
        tables ranked by, 1 = the smallest; equal scores in table order); ``route`` (:func:`candidate_label`, with
        the value chosen), ``method``, ``score``; ``ssim, ssim_object, psnr, psnr_object`` against the reference
        (NaN without one); ``ref_rank`` (by ``ssim``, 1 = the highest, equal SSIMs sharing the better rank; NaN
        where the SSIM is). Sorted by dataset, dose and rank.

    Raises
    ------
    InputError
        Naming ``--scans``: a scan with no rows in the tables; naming a table: a missing column, a repeated
        candidate, scores of one scan that cannot be compared, a method without exactly one ``chosen`` row or
        whose ``chosen`` row is not its smallest score.

    Examples
    --------
    >>> import pandas as pd
    >>> t = pd.DataFrame({"dataset": "d", "dose": "x", "method": ["fbp", "fbp-tv", "fbp-tv"], "value": ["", 0.1, 1],
    ...                   "score": [1.3, 1.1, 1.2], "chosen": [True, True, False], "ssim": [0.7, 0.6, 0.8]})
    >>> routes_table([t], ["d"])[["rank", "route", "score", "ref_rank"]].values.tolist()
    [[1, 'FBP+TV (weight 0.1)', 1.1, 2.0], [2, 'FBP', 1.3, 1.0]]
    """
    import pandas as pd

    rows = _gather(tables, reference=False)
    scans = [str(s) for s in dict.fromkeys(scans)]
    known = list(dict.fromkeys(rows["dataset"]))
    absent = [s for s in scans if s not in known]
    if absent:
        raise InputError("--scans", f"no rows of {', '.join(absent)} in the tables (their datasets: "
                                    f"{', '.join(known)})")
    out = []
    for (dataset, dose), scan in rows[rows["dataset"].isin(scans)].groupby(["dataset", "dose"], sort=False):
        picks = pd.DataFrame([_choice(g, "chosen") for _, g in scan.groupby("method", sort=False)])
        ref_ranks = picks["ssim"].rank(ascending=False, method="min", na_option="keep")
        for (_, row), rank, ref_rank in zip(picks.iterrows(), _ranks(picks["score"]), ref_ranks):
            out.append({"dataset": dataset, "dose": dose, "rank": int(rank),
                        "route": candidate_label(row["method"], row["value"]), "method": row["method"],
                        "score": float(row["score"]), **{col: float(row[col]) for col in REFERENCE_COLUMNS},
                        "ref_rank": float(ref_rank)})
    table = pd.DataFrame(out, columns=list(ROUTE_COLUMNS))
    return table.sort_values(["dataset", "dose", "rank"], kind="stable", ignore_index=True)


#: What each kind of row of a route-cost spec (``tomogan_core.study.Plan.route_cost_spec``) is, as the table says it
COST_KINDS = {"simulation": "simulation at the scan's acquisition (all doses)",
              "matched": "scan-matched training",
              "generalist": "generalist training (shared by every scan)",
              "ranking": "held-out ranking of every route (Noise2Inverse trainings included)"}


def route_costs(benchmarks, spec: Sequence[Mapping]) -> "pandas.DataFrame":
    """What each scan's own routes cost: the wall seconds of the workflow's jobs that the plan names.

    Parameters
    ----------
    benchmarks : path
        The benchmark folder (``results/benchmarks``: Snakemake's files, column ``s``).
    spec : sequence of mapping
        Rows ``{dataset, kind, dose, benchmarks}`` (``tomogan_core.study.Plan.route_cost_spec``): ``kind`` one of
        :data:`COST_KINDS` -- ``simulation`` (the volumes simulated at the scan's acquisition, all doses: ``dose``
        empty), ``matched`` (the scan-matched training at a dose, its seeds summed), ``generalist`` (the
        generalist's training it starts from, shared by every scan), ``ranking`` (the held-out ranking at a dose,
        which runs every candidate ``k + 1`` times, so trains each Noise2Inverse route ``k + 1`` times);
        ``benchmarks`` glob patterns relative to the folder, each file counted once.

    Returns
    -------
    pandas.DataFrame
        ``dataset, what, dose, seconds`` in the spec's order, ``what`` the kind's words; rows with no file left out.

    Raises
    ------
    InputError
        A row that is not such a mapping or of an unknown kind, naming ``--costs``; a benchmark file without wall
        seconds, naming it.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "t.tsv").write_text("s\\th:m:s\\n12.5\\t0:00:12\\n")
    >>> spec = [{"dataset": "s", "kind": "matched", "dose": "x", "benchmarks": ["t.tsv", "u.tsv"]}]
    >>> route_costs(d, spec).values.tolist()
    [['s', 'scan-matched training', 'x', 12.5]]
    """
    import pandas as pd

    root = Path(benchmarks)
    rows = []
    for row in spec:
        try:
            kind, patterns = row["kind"], list(row["benchmarks"])
            dataset, dose = str(row["dataset"]), str(row["dose"])
        except (TypeError, KeyError) as exc:
            raise InputError("--costs", f"each row needs dataset, kind, dose and benchmarks (got {row!r}: "
                                        f"{type(exc).__name__} {exc})") from None
        if kind not in COST_KINDS:
            raise InputError("--costs", f"unknown kind '{kind}'; choose one of {', '.join(COST_KINDS)}")
        found = sorted({f for pattern in patterns for f in root.glob(pattern)})
        if found:
            rows.append({"dataset": dataset, "what": COST_KINDS[kind], "dose": dose, "seconds": _bench_seconds(found)})
    return pd.DataFrame(rows, columns=list(COST_COLUMNS))


_ROUTE_FORMATS = {"score": "{:.4g}", "ssim": "{:.4f}", "ssim_object": "{:.4f}", "psnr": "{:.2f}",
                  "psnr_object": "{:.2f}", "ref_rank": "{:.0f}", "seconds": "{:.1f}"}


def routes_markdown(routes, costs=None) -> str:
    """:func:`routes_table` (and :func:`route_costs`, when given) as a Markdown section, ``## Every route on your
    scans``: score to 4 significant digits, SSIM to 4 decimals, PSNR to 2, seconds to 1; ``costs`` empty: a line
    saying no benchmark was found."""
    lines = ["## Every route on your scans", "",
             "Each candidate at its held-out choice, ranked (`rank`) by how well it predicts the projections left "
             "out of its reconstruction, which needs no reference; `ssim` and `psnr` (and `ref_rank`, the order by "
             "`ssim`) are against the scan's normal-dose reference, so only a scan that has one can be checked "
             "this way.", "", _markdown_table(routes, formats=_ROUTE_FORMATS), ""]
    if costs is not None:
        lines += ["### What the scan's own routes cost", ""]
        if len(costs):
            lines += ["Wall seconds of one-core jobs of this run (Snakemake's benchmarks). The held-out ranking "
                      "trains each Noise2Inverse route k + 1 times; the generalist's training is made once for "
                      "every scan.", "", _markdown_table(costs, formats=_ROUTE_FORMATS),
                      ""]
        else:
            lines += ["No benchmark of these scans' routes was found.", ""]
    return "\n".join(lines)


_MARKDOWN_FORMATS = {"score": "{:.4g}", "spearman": "{:.2f}"}  # other numbers: 4 decimals (SSIM)


def _markdown_table(table, *, formats: Optional[Mapping[str, str]] = None) -> str:
    """A table as Markdown with its cells formatted here (parameter values stay as the tables write them);
    ``formats`` (column -> format) replace :data:`_MARKDOWN_FORMATS`."""
    formats = _MARKDOWN_FORMATS if formats is None else formats

    def cell(col, v):
        if isinstance(v, (bool, np.bool_)):
            return "yes" if v else "no"
        if isinstance(v, (float, np.floating)):
            return "n/a" if math.isnan(v) else formats.get(col, "{:.4f}").format(v)
        return str(v)
    shown = table.copy()
    for col in shown.columns:
        shown[col] = [cell(col, v) for v in table[col]]
    return shown.to_markdown(index=False, disable_numparse=True)


# ----------------------------------------------------------------------------- command line

def _incident_from(attrs: dict, option: str, path):
    """I0 for scoring: a number, ``"none"``, or ``"auto"`` (the file's photons dose, else unweighted)."""
    if option == "none":
        return None
    if option != "auto":
        try:
            value = float(option)
        except ValueError:
            raise InputError("--incident", f"expected a number, auto or none, got '{option}'") from None
        if not (math.isfinite(value) and value > 0):
            raise InputError("--incident", f"I0 must be > 0, got {option}")
        return value
    if attrs.get("dose_mode") != "photons":
        return None
    try:
        value = float(attrs.get("dose_level"))
    except (TypeError, ValueError):
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise InputError(path, f"dose_mode is photons but dose_level {attrs.get('dose_level')!r} is not a "
                               "photon count > 0")
    return value


def _read_scan(path, slices: int):
    """The projections of ``slices`` central rows (0: all), angles in radians, attributes, the detector rows
    read and the detector's row count."""
    from simulate.io import dataset_shape, read_array, read_attrs

    n_angles, n_rows, _ = dataset_shape(path, "/exchange/data", ndim=3)
    rows = central_slices(n_rows, slices)
    data = read_array(path, "/exchange/data", ndim=3, dtype_kind="f",
                      index=np.s_[:, int(rows[0]):int(rows[-1]) + 1, :])
    theta = np.radians(read_array(path, "/exchange/theta", ndim=1, dtype=np.float64))
    if theta.shape[0] != n_angles:
        raise InputError(path, f"{theta.shape[0]} angles in /exchange/theta for {n_angles} projections")
    return data, theta, read_attrs(path), rows, n_rows


def _read_reference(path, rows, n_rows: int, size: int) -> np.ndarray:
    """The reference's slices of detector rows ``rows`` (matched through its ``/slices``), in that order.

    A reference that is not of this detector -- a slice index beyond its ``n_rows`` rows, slices that are
    not ``size x size``, or without the rows scored -- or that is constant in the field of view is an
    :class:`InputError` naming it.
    """
    from analysis.metrics import reference_range
    from simulate.io import dataset_shape

    idx = slice_indices(path)
    shape = tuple(dataset_shape(path, "/recon", ndim=3)[1:])
    if shape != (size, size):
        raise InputError(path, f"slice shape {shape} differs from the reconstructions' ({size}, {size}) "
                               f"(the scan's detector is {size} pixels wide)")
    beyond = sorted({int(i) for i in idx if not 0 <= i < n_rows})
    if beyond:
        raise InputError(path, f"slices {beyond[:5]} are not rows of the scan's {n_rows}-row detector")
    reference = read_slices(path, [int(r) for r in rows], idx, what="scored").astype(np.float32)
    try:
        reference_range(reference, circular_mask(reference.shape, margin=REFERENCE_FOV_MARGIN))
    except ValueError as exc:
        raise InputError(path, f"{exc} (slices {[int(r) for r in rows]})") from None
    return reference


def _needs_argument(items) -> dict:
    needs = {}
    for item in items or ():
        name, _, value = item.partition("=")
        try:
            needs[name] = float(value)
        except ValueError:
            raise InputError("--needs", f"expected NAME=VALUE, got '{item}'") from None
    return needs


def _n2i_argument(text) -> List[Tuple[str, Reconstructor]]:
    """The ``--n2i`` candidates, ``(method, reconstructor)`` in the order given.

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
    specs, where = json_argument(text, flag="--n2i")
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


@cli
def main(argv=None):
    """``python -m analysis.crossval OUT.csv PROJ.h5 ...``, ``... check OUT.csv IN.csv ...`` or ``... figure IN.h5
    OUT.png`` (see the module)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "check":
        return _check_command(argv[1:])
    if argv and argv[0] == "figure":
        return _figure_command(argv[1:])
    return _score_command(argv)


def _figure_command(argv):
    p = argparse.ArgumentParser(prog="python -m analysis.crossval figure",
                                description="Draw the methods' images of 'python -m analysis.crossval ... --images "
                                            "IN.h5', ranked best first (PNG, and a PDF beside it).")
    p.add_argument("images", help="images file written with --images")
    p.add_argument("out", help="PNG to write (a PDF is written beside it)")
    args = p.parse_args(argv)
    images_figure(args.images, args.out)


def _check_command(argv):
    p = argparse.ArgumentParser(prog="python -m analysis.crossval check",
                                description="How often the held-out choices agree with the reference's: from "
                                            "tables of 'python -m analysis.crossval ... --reference REF.h5'.")
    p.add_argument("out", help="CSV to write (a .md twin is written beside it)")
    p.add_argument("tables", nargs="+", help="crossval tables made with --reference, one per dataset and dose")
    p.add_argument("--scans", nargs="+", metavar="NAME",
                   help="datasets of the tables (after them) whose every route to list, ranked: a section of the "
                        ".md, and routes.csv beside OUT")
    p.add_argument("--benchmarks", metavar="DIR",
                   help="the workflow's benchmark folder (results/benchmarks), with --costs")
    p.add_argument("--costs", metavar="JSON",
                   help="with --scans and --benchmarks, what their own routes cost: a JSON list of rows {dataset, "
                        "kind, dose, benchmarks}, or @FILE of it (the workflow's plan writes it: "
                        "Plan.route_cost_spec)")
    args = p.parse_args(argv)
    out = Path(args.out)
    routes_csv = out.parent / "routes.csv"
    costs_spec = None
    if args.benchmarks is not None or args.costs is not None:
        if not args.scans:
            raise InputError("--costs", "needs --scans (the scans whose routes it costs)")
        if args.benchmarks is None or args.costs is None:
            raise InputError("--costs", "needs --benchmarks too, and --benchmarks needs --costs")
        if not Path(args.benchmarks).is_dir():
            raise InputError(args.benchmarks, "not a folder (--benchmarks: the workflow's results/benchmarks)")
        costs_spec, where = json_argument(args.costs, flag="--costs")
        if not isinstance(costs_spec, list):
            raise InputError(where, "not a JSON list of rows")
    if args.scans and routes_csv.resolve() == out.resolve():
        raise InputError(out, "--scans writes routes.csv beside OUT: name OUT otherwise")
    result = check(args.tables)
    table = result.methods.merge(result.scans, on=["dataset", "dose"], how="left")
    markdown = check_markdown(result)
    routes = None
    if args.scans:
        routes = routes_table(args.tables, args.scans)
        costs = route_costs(args.benchmarks, costs_spec) if costs_spec is not None else None
        markdown += "\n" + routes_markdown(routes, costs)
    write_csv(table, out)
    if routes is not None:
        write_csv(routes, routes_csv)
    write_text(out.with_suffix(".md"), markdown)
    logger.info("%d methods of %d scans -> %s (+ .md%s)", len(result.methods), len(result.scans), out,
                f", {routes_csv.name}" if routes is not None else "")


def _score_command(argv):
    p = argparse.ArgumentParser(prog="python -m analysis.crossval",
                                description="Score methods on a scan without a reference: K-fold held-out "
                                            "residual of the views (lower is better). With --reference, also "
                                            "score each candidate, made from all the views, against it.",
                                epilog="python -m analysis.crossval check OUT.csv IN.csv [IN.csv ...]: compare "
                                       "the holdout and reference choices of such tables; python -m analysis.crossval "
                                       "figure IN.h5 OUT.png: draw the images of --images.")
    p.add_argument("out", help="CSV to write")
    p.add_argument("proj", help="projection file (DXchange layout)")
    p.add_argument("--method", nargs="+", default=[], choices=["fbp", *METHODS],
                   help="methods to score; a registry method is tuned over its grid")
    p.add_argument("--grid", type=float, nargs="+", help="values (with one tuned method; default its grid)")
    p.add_argument("--grids", help="grids of several methods as JSON, e.g. '{\"fbp-tv\": [0.05, 0.2]}' (the "
                   "config's classical.grids); a method it leaves out takes its registry grid")
    p.add_argument("--model", nargs="+", default=[], metavar="[LABEL=]PATH",
                   help="denoiser model files, each applied to the FBP; method tomogan:LABEL (default label: the "
                        "run folder's name for model.pt, checkpoint.pt or served.pt, else the file's stem)")
    p.add_argument("--grey255-model", nargs="+", default=[], metavar="[LABEL=]PATH",
                   help="models on 0..255 grey levels (the authors' release), applied as tomogan-infer "
                        "--grey255-from-input does: the FBP's own 0.5..99.5 percentile range mapped to 0..255 and back")
    p.add_argument("--n2i", metavar="JSON",
                   help="also rank Noise2Inverse (method n2i), trained per fold on the kept views and once on all: "
                        "the config's noise2inverse section as JSON, '{\"k\": 4, \"train\": {\"max_iter\": 150, ...}}' "
                        "(K + 1 trainings), or a list of such objects, each with a \"label\" (n2i or n2i:NAME) "
                        "and train settings that may hold \"init\": MODEL.pt (fine-tuned from that generator)")
    p.add_argument("--needs", nargs="+", help="chosen values of start methods, e.g. sirt=50 (for sirt-tv)")
    p.add_argument("--k", type=int, default=4, help="folds")
    p.add_argument("--incident", default="auto",
                   help="I0 photons per pixel for noise-weighted scores; auto: the file's photons dose; none")
    p.add_argument("--residual", default="auto", choices=RESIDUALS,
                   help="plain squared residual, or ramp: filtered by sqrt(|f|) along the detector first (the image's "
                        "squared error); auto (default): ramp on photon-limited data, plain otherwise")
    p.add_argument("--slices", type=int, default=0,
                   help="use only the N central detector rows (0: all); the reference's slices of the same rows")
    p.add_argument("--center", type=float, help="rotation axis, detector pixels (default: from the file)")
    p.add_argument("--reference", help="normal-dose reconstruction (/recon, /slices): also score every candidate, "
                                       "made from all the views, against it (one more reconstruction each)")
    p.add_argument("--images", metavar="OUT.h5",
                   help="also write each method's image at its holdout choice, made from all the views, of the "
                        "central row scored, with its label, score and rank (with --reference: its SSIM and the "
                        "reference's row)")
    p.add_argument("--backend", default="auto")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    tuned = [m for m in args.method if m != "fbp"]
    if not args.method and not args.model and not args.grey255_model and not args.n2i:
        p.error("give at least one --method, --model, --grey255-model or --n2i")
    if args.grid and len(tuned) != 1:
        p.error("--grid needs exactly one tuned method")
    grids = json_argument(args.grids, flag="--grids")[0] if args.grids else {}
    if args.grid:
        grids[tuned[0]] = args.grid
    if args.k < 2:
        p.error(f"--k must be >= 2, got {args.k}")

    needs = _needs_argument(args.needs)
    names = set(tuned)  # (a list being sorted looks empty to its key function)
    tuned.sort(key=lambda m: METHODS[m].input in names)  # a method that starts from another one's choice: after it
    for name in tuned:
        start = METHODS[name].input
        if start not in ("projections", "fbp", *tuned) and not {start, METHODS[start].tuning_key} & set(needs):
            p.error(f"{name} starts from {start}: add --method {start} or --needs {start}=VALUE")

    models = [(e.method, model_reconstructor(e.path, grey255=e.grey255))  # loaded now: a bad file fails first
              for e in model_entries(args.model, args.grey255_model)]
    if args.n2i:
        models.extend(_n2i_argument(args.n2i))
    data, theta, attrs, rows_read, n_rows = _read_scan(args.proj, args.slices)
    incident = _incident_from(attrs, args.incident, args.proj)
    center = float(attrs.get("center", data.shape[-1] / 2)) if args.center is None else args.center
    size = data.shape[-1]
    reference = None if args.reference is None else _read_reference(args.reference, rows_read, n_rows, size)
    backend = resolve_backend(args.backend)
    opts = dict(k=args.k, center=center, incident=incident, residual=args.residual, backend=backend,
                threads=args.threads)
    full = dict(center=center, size=size, backend=backend, threads=args.threads)
    scan = {"dataset": _label(attrs.get("dataset", "")), "dose": _label(attrs.get("dose", ""))}
    all_views = reference is not None or args.images is not None  # candidates made from all the views too
    mid = len(rows_read) // 2  # the central row scored: the one --images keeps
    kept = {}  # method -> its all-view image at the holdout choice, of that row
    cache = StartCache()  # SIRT's images, per fold and from all views, for SIRT+TV to start from

    def single(method, rec):  # a method without a parameter: one row, chosen either way
        row = {**scan, "method": method, "parameter": "", "value": "",
               **_score_columns(holdout_residual(data, theta, rec, **opts)), "chosen": True}
        if all_views:
            volume = rec(data, theta, center, size, backend=backend, threads=args.threads)
            if reference is not None:
                row.update(against_reference(volume, reference), chosen_by_reference=True)
            if args.images is not None:
                kept[method] = np.array(volume[mid], dtype=np.float32)
        return row

    rows = []
    try:
        folds(data.shape[0], args.k)
        if "fbp" in args.method:
            rows.append(single("fbp", fbp_reconstructor()))
        for name in tuned:
            result = tune_by_holdout(data, theta, name, grids.get(name), needs=needs, cache=cache, **opts)
            truth = {}
            if all_views:  # the same start (needs: the holdout's choices) from all views; without a reference
                #           only the chosen value is made
                grid = grids.get(name) if reference is not None else [result.chosen]
                for value, volume in all_view_candidates(data, theta, name, grid, needs=needs, cache=cache,
                                                         **full):
                    if reference is not None:
                        truth[value] = against_reference(volume, reference)
                    if args.images is not None and value == result.chosen:
                        kept[name] = np.array(volume[mid], dtype=np.float32)
            by_reference = _best_by_ssim(truth) if truth else None
            needs.setdefault(name, result.chosen)
            for value, res in result.scores.items():
                row = {**scan, "method": name, "parameter": result.parameter, "value": format_value(value),
                       **_score_columns(res), "chosen": value == result.chosen}
                if truth:
                    row.update(truth[value], chosen_by_reference=value == by_reference)
                rows.append(row)
            logger.info("%s: %s = %s (score %.4g)%s", name, result.parameter, result.chosen,
                        result.scores[result.chosen].score, "" if not truth else
                        f"; by reference {by_reference} (ssim {truth[by_reference]['ssim']:.4f})")
        for method, rec in models:
            rows.append(single(method, rec))
            logger.info("%s: score %.4g", method, rows[-1]["score"])
    except ValueError as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(args.proj, str(exc)) from None

    import pandas as pd

    write_csv(pd.DataFrame(rows), args.out)
    logger.info("%d rows -> %s (%s residual, %s%s)", len(rows), args.out, rows[0]["residual"] if rows else "no",
                "relative to the noise level" if incident is not None else "mean squared",
                "" if reference is None else f"; against {args.reference}")
    if args.images is not None:
        from simulate.io import software_versions

        chosen = [row for row in rows if row["chosen"]]
        write_images(args.images, [row["method"] for row in chosen],
                     [candidate_label(row["method"], row["value"]) for row in chosen],
                     [kept[row["method"]] for row in chosen], [row["score"] for row in chosen],
                     ssim=None if reference is None else [row["ssim"] for row in chosen],
                     reference=None if reference is None else reference[mid],
                     attrs={**scan, "row": int(rows_read[mid]), "k": args.k, "weighted": incident is not None,
                            "projections": str(args.proj), "reference": args.reference,
                            "versions": software_versions()})
        logger.info("%d images of row %d, ranked -> %s", len(chosen), int(rows_read[mid]), args.images)

if __name__ == "__main__":
    main()
