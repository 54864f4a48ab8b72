"""Noise2Inverse: self-supervised denoising of a tomogram from its own projections, on TomoGAN's generator.

Hendriksen, Pelt and Batenburg, "Noise2Inverse: self-supervised deep convolutional denoising for
tomography", IEEE Transactions on Computational Imaging 6:1320-1335, 2020 (arXiv:2001.11801). How the
study uses it, and the three commands (``tomogan-n2i split|train|infer``): docs/methods.md, "Noise2Inverse".

The ``K`` interleaved angle subsets (:func:`split_views`), each reconstructed by FBP, show the same object
with *independent* noise, so a network trained to map the mean of ``K-1`` of them to the remaining one (the
paper's "X:1" strategy, over all ``K`` choices) learns the noise-free image: the target's noise averages
out of the MSE's minimiser. Everything else is TomoGAN's: the generator, :func:`tomogan_core.train.train`
with pixel MSE alone (:func:`n2i_config`), and :func:`tomogan_core.modelfile.denoise`'s ``n2i`` mode.

Validation is self-supervised too: held-out slices of every pair, the output scored against the held-out
(noisy) remaining sub-reconstruction. The expected squared error against it is the error against the clean
image plus the target's noise variance, so checkpoints are ranked rightly; but ``val_psnr`` is low and not
comparable with a supervised run's.

``SUBSETS.h5`` holds ``/subsets`` ``(k, slices, rows, cols)`` float32, ``/slices`` int32 (the
detector rows) and the projections' provenance plus ``k``; ``OUT.h5`` is a reconstruction file
(``/recon``, ``/slices``, ``method = "n2i"``) that :mod:`analysis.metrics` reads like any other.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from simulate.io import read_array, read_attrs, software_versions, write_arrays
from simulate.plumbing import InputError, cli

from .data import VolumePair, split_held_out
from .infer import add_runtime_args, parse_runtime_args
from .modelfile import LoadedModel, denoise, flat_attrs, input_provenance, load_any, model_provenance
from .train import TrainConfig, parse_bool, train

__all__ = ["MODE", "split_views", "subset_reconstructions", "n2i_pairs", "n2i_config", "train_n2i",
           "read_subsets", "model_provenance", "denoise_n2i", "main"]

logger = logging.getLogger(__name__)

MODE = "noise2inverse"  # recorded in model.pt's provenance
STRATEGY = "X:1"  # input: mean of K-1 sub-reconstructions; target: the remaining one
VALIDATION_NOTE = ("self-supervised: held-out slices of the K pairs, output from the mean of K-1 "
                   "sub-reconstructions scored against the remaining (noisy) one")


# -----------------------------------------------------------------------------
# splitting and pairs


def split_views(n_angles: int, k: int) -> List[np.ndarray]:
    """Split ``n_angles`` projection indices into ``k`` interleaved subsets: subset ``j`` holds the angles
    ``j, j+k, j+2k, ...``, so each covers [0, pi) evenly.

    Raises
    ------
    ValueError
        ``k < 2``, or fewer than 2 angles per subset (``n_angles < 2k``).

    Examples
    --------
    >>> [s.tolist() for s in split_views(7, 3)]
    [[0, 3, 6], [1, 4], [2, 5]]
    """
    n_angles, k = int(n_angles), int(k)
    if k < 2:
        raise ValueError(f"Noise2Inverse needs k >= 2 subsets, got k = {k}")
    if n_angles < 2 * k:
        raise ValueError(f"{n_angles} angles are too few for k = {k} subsets (need at least {2 * k})")
    return [np.arange(j, n_angles, k, dtype=np.int64) for j in range(k)]


def subset_reconstructions(proj, theta, *, k: int, center=None, backend: str = "auto", threads: int = 1,
                           filter_name: str = "ram-lak") -> np.ndarray:
    """FBP-reconstruct each of the ``k`` interleaved angle subsets (:func:`split_views`) of a scan.

    Parameters
    ----------
    proj : ndarray, shape (angles, slices, detector)
        Line integrals (all angles of the scan).
    theta : ndarray, shape (angles,)
        Angles in radians.
    center : float, optional
        Rotation axis on the detector, pixels (default ``detector / 2``).

    Returns
    -------
    ndarray of float32, shape (k, slices, detector, detector)
        Their mean is the full-view FBP (FBP is linear and normalised per angle count).
    """
    from simulate.reconstruct import reconstruct

    proj = np.asarray(proj, np.float32)
    theta = np.asarray(theta, np.float64)
    if proj.ndim != 3:
        raise ValueError(f"projections must be (angles, slices, detector), got shape {proj.shape}")
    if theta.shape != (proj.shape[0],):
        raise ValueError(f"need one angle per projection: {theta.size} angles for {proj.shape[0]} projections")
    out = None
    for j, views in enumerate(split_views(proj.shape[0], k)):
        rec = reconstruct(proj[views], theta[views], "fbp", center=center, filter_name=filter_name,
                          backend=backend, threads=threads)  # (slices, H, W)
        if out is None:
            out = np.empty((k,) + rec.shape, np.float32)
        out[j] = rec
        logger.info("subset %d of %d: %d angles reconstructed", j + 1, k, views.size)
    return out


def _check_subsets(subsets, name="subsets") -> np.ndarray:
    subsets = np.asarray(subsets, np.float32)
    if subsets.ndim != 4:
        raise ValueError(f"{name} must be (k, slices, rows, cols), got shape {subsets.shape}")
    if subsets.shape[0] < 2:
        raise ValueError(f"{name} hold {subsets.shape[0]} sub-reconstruction(s); Noise2Inverse needs k >= 2")
    return subsets


def n2i_pairs(subsets, *, name: str = "subsets") -> List[VolumePair]:
    """The ``k`` training pairs of the X:1 strategy from ``(k, slices, rows, cols)`` sub-reconstructions:
    pair ``j``'s ``low`` is the mean of the other ``k-1``, its ``normal`` subset ``j``; ``name`` prefixes
    their names.

    Examples
    --------
    >>> s = np.arange(3, dtype=np.float32)[:, None, None, None] * np.ones((3, 1, 1, 1), np.float32)
    >>> [(float(p.low.item()), float(p.normal.item())) for p in n2i_pairs(s)]
    [(1.5, 0.0), (1.0, 1.0), (0.5, 2.0)]
    """
    subsets = _check_subsets(subsets)
    k = subsets.shape[0]
    total = subsets.sum(axis=0, dtype=np.float64)
    return [VolumePair(low=((total - subsets[j]) / (k - 1)).astype(np.float32), normal=subsets[j],
                       name=f"{name}[subset {j} of {k}]")
            for j in range(k)]


# -----------------------------------------------------------------------------
# training


def n2i_config(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with the loss set to pixel MSE only: :func:`tomogan_core.train.train` then builds no critic
    and loads no VGG."""
    return replace(cfg, lambda_adv=0.0, lambda_vgg=0.0, lambda_mse=1.0, itd=0)


def train_n2i(subsets, out_dir, cfg: TrainConfig, *, val_subsets=None, name: str = "subsets",
              provenance: Optional[dict] = None, progress: bool = True,
              stop_after: Optional[int] = None) -> Path:
    """Train TomoGAN's generator the Noise2Inverse way (X:1 over all ``k`` subsets), with :func:`train`.

    Parameters
    ----------
    subsets : ndarray, shape (k, slices, rows, cols)
        Sub-reconstructions of the scan.
    out_dir : path
        As :func:`tomogan_core.train.train` (running the same call again resumes).
    cfg : TrainConfig
        Training settings, the loss made pixel MSE only (:func:`n2i_config`). With ``cfg.init`` the
        generator starts from that file's (a fine-tune).
    val_subsets : ndarray, shape (k, slices', rows', cols'), optional
        Sub-reconstructions of another scan for validation. Default: hold out the last
        ``cfg.val_fraction`` of the slices of every pair (:func:`tomogan_core.data.split_held_out`).
    provenance : dict, optional
        Added to the model's provenance, which records ``mode = "noise2inverse"``, ``k`` and the
        strategy.

    Returns
    -------
    Path of ``model.pt`` (of ``checkpoint.pt`` when stopped early).
    """
    subsets = _check_subsets(subsets)
    k = subsets.shape[0]
    mse_cfg = n2i_config(cfg)
    if (cfg.lambda_adv, cfg.lambda_vgg) != (0.0, 0.0):
        logger.info("Noise2Inverse trains on pixel MSE only: lambda_adv %g and lambda_vgg %g set to 0",
                    cfg.lambda_adv, cfg.lambda_vgg)
    notes = {}
    n = subsets.shape[1]
    if n < mse_cfg.depth:  # a scan of a few detector rows: repeat the edge slices up to d
        before = (mse_cfg.depth - n) // 2
        subsets = np.pad(subsets, ((0, 0), (before, mse_cfg.depth - n - before), (0, 0), (0, 0)), mode="edge")
        notes["edge_slices"] = f"{n} slices < depth d = {mse_cfg.depth}: edge slices repeated for training"
        logger.warning("%s: %s", name, notes["edge_slices"])
    pairs = n2i_pairs(subsets, name=name)
    if val_subsets is None:
        try:
            split = [split_held_out(p, fraction=mse_cfg.val_fraction, depth=mse_cfg.depth) for p in pairs]
        except InputError:  # too few slices to hold any out: validate on the training slices, and say so
            train_pairs, val_pairs = pairs, pairs
            val_how = f"on the training slices (only {n}: too few to hold any out)"
            logger.warning("%s: validation %s", name, val_how)
        else:
            train_pairs, val_pairs = [t for t, _ in split], [v for _, v in split]
            val_how = f"held out: the last {val_pairs[0].n_slices} of {subsets.shape[1]} slices"
    else:
        val_subsets = _check_subsets(val_subsets, "val_subsets")
        if val_subsets.shape[0] != k:
            raise ValueError(f"val_subsets hold k = {val_subsets.shape[0]} sub-reconstructions, subsets k = {k}")
        train_pairs, val_pairs = pairs, n2i_pairs(val_subsets, name=f"{name}:validation")
        val_how = "a separate validation scan"
    prov = dict(provenance or {}, mode=MODE, k=k, strategy=STRATEGY, validation=VALIDATION_NOTE,
                validation_slices=val_how, loss="pixel MSE", **notes)
    return train(mse_cfg, train_pairs, val_pairs, out_dir, provenance=prov, progress=progress,
                 stop_after=stop_after)


# -----------------------------------------------------------------------------
# inference


def _check_model(path, k: int) -> dict:
    """Refuse a model that is not a Noise2Inverse one or was trained on another ``k``."""
    prov = model_provenance(path)
    if prov.get("mode") != MODE:
        raise InputError(path, "is not a Noise2Inverse model (its provenance lacks mode 'noise2inverse'); "
                               "train one with tomogan-n2i train and give its model.pt")
    if int(prov.get("k", -1)) != k:
        raise InputError(path, f"model was trained on k = {prov.get('k')} subsets, the data have k = {k}")
    return prov


def denoise_n2i(subsets, model, *, indices: Optional[Sequence[int]] = None, batch: int = 4,
                device: str = "auto", progress: bool = False, check_model: bool = True) -> np.ndarray:
    """Denoise a scan from its ``(k, slices, rows, cols)`` sub-reconstructions: the mean of the ``k`` X:1
    outputs (:func:`tomogan_core.modelfile.denoise` with ``n2i``), as float32 ``(len(indices), rows, cols)``.

    ``model`` is a Noise2Inverse ``model.pt`` (or its served ``.pt``); a path is checked to record mode
    ``noise2inverse`` and the same ``k`` (unless ``check_model`` is False). A volume with fewer slices
    than the model's depth has its edge slices repeated, with a warning.
    """
    subsets = _check_subsets(subsets)
    k = subsets.shape[0]
    if not isinstance(model, LoadedModel):
        if check_model:
            _check_model(model, k)
        model = load_any(model, device=device)
    if subsets.shape[1] < model.depth:
        logger.warning("%d slices, fewer than the model's depth d = %d: edge slices repeated",
                       subsets.shape[1], model.depth)
    return denoise(subsets, model, indices=indices, batch=batch, repeat_edges=True, progress=progress, n2i=True)


# -----------------------------------------------------------------------------
# files


def read_subsets(path) -> Tuple[np.ndarray, np.ndarray, dict]:
    """Read a subsets file written by ``split``: the subsets, their slices' detector rows (int64) and the
    file's attributes.

    Raises
    ------
    InputError
        Missing file or dataset, wrong rank, NaN/Inf, fewer than 2 subsets, a ``k`` attribute that
        disagrees with the data, or slice indices that do not match.
    """
    subsets = read_array(path, "/subsets", ndim=4, dtype_kind="f")
    if subsets.shape[0] < 2:
        raise InputError(path, f"'/subsets' holds {subsets.shape[0]} sub-reconstruction(s); Noise2Inverse needs k >= 2")
    if min(subsets.shape) < 1:
        raise InputError(path, f"'/subsets' is empty, shape {subsets.shape}")
    slices = read_array(path, "/slices", ndim=1, dtype_kind="iu", dtype=np.int64)
    if slices.shape[0] != subsets.shape[1]:
        raise InputError(path, f"{slices.shape[0]} slice indices for {subsets.shape[1]} slices")
    attrs = read_attrs(path)
    if "k" in attrs and int(attrs["k"]) != subsets.shape[0]:
        raise InputError(path, f"attribute k = {attrs['k']} but '/subsets' holds {subsets.shape[0]} sub-reconstructions")
    return subsets, slices, attrs


def _split(args) -> Path:
    from simulate.acquire import read_projections
    from simulate.reconstruct import central_slices, recon_attrs, resolve_backend

    data, theta, src = read_projections(args.proj)
    try:
        split_views(data.shape[0], args.k)
    except ValueError as exc:
        raise InputError(args.proj, str(exc)) from None
    center = args.center if args.center is not None else float(src.get("center", data.shape[-1] / 2))
    idx = central_slices(data.shape[1], args.slices)
    try:
        backend = resolve_backend(args.backend)
        subsets = subset_reconstructions(data[:, idx, :], theta, k=args.k, center=center, backend=backend,
                                         threads=args.threads, filter_name=args.filter)
    except ValueError as exc:
        raise InputError(args.proj, str(exc)) from None
    attrs = recon_attrs(src, method="n2i-subsets", algorithm="fbp", backend=backend, filter=args.filter,
                         n_iter=0, center=center, parent=str(args.proj), k=args.k,
                         subset_angles=f"subset j = angles j, j+k, j+2k, ... of {data.shape[0]}")
    attrs["axes"] = "subsets, slices, rows, cols"
    write_arrays(args.out, {"/subsets": subsets, "/slices": idx.astype(np.int32)}, attrs)
    logger.info("%s -> %s %s", args.proj, args.out, subsets.shape)
    return Path(args.out)


# the settings `train` takes from the command line: TrainConfig's, less those of the critic and VGG
_LOSS_FIELDS = {"lambda_adv", "lambda_mse", "lambda_vgg", "gan_loss", "gp_weight", "vgg_grad", "vgg_weights",
                "vgg_layer", "lr_d", "itd"}
_HELP = {"init": "start from this file's generator (model.pt, checkpoint.pt or served .pt of the same depth): "
                 "a fine-tune; default: the seed's random one"}


def _train(args) -> Path:
    subsets, slices, attrs = read_subsets(args.subsets)
    try:
        cfg = n2i_config(TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                                        if f.name not in _LOSS_FIELDS}))
    except ValueError as exc:
        raise InputError("settings", str(exc)) from None
    if min(subsets.shape[2:]) < cfg.patch:
        raise InputError(args.subsets, f"slices of {subsets.shape[2:]} are smaller than the patch size {cfg.patch}")
    files = {"subsets": str(args.subsets), "parent": attrs.get("parent", ""), "dataset": attrs.get("dataset", ""),
             "dose": attrs.get("dose", "")}
    return train_n2i(subsets, args.out, cfg, name=str(args.subsets), provenance={"files": files},
                     progress=not args.quiet)


def _infer(args) -> Tuple[Path, int, float]:
    subsets, slices, attrs = read_subsets(args.subsets)
    k = subsets.shape[0]
    _check_model(args.model, k)
    model = load_any(args.model, device=args.device, precision=args.precision)
    from simulate.reconstruct import central_slices

    pick = central_slices(subsets.shape[1], args.slices)
    t0 = time.perf_counter()
    out = denoise_n2i(subsets, model, indices=pick, batch=args.batch, progress=not args.quiet)
    seconds = time.perf_counter() - t0
    provenance = input_provenance(attrs)
    provenance.update(flat_attrs(model.info))
    repeated = subsets.shape[1] < model.depth
    provenance.update(method="n2i", run=args.run or Path(args.model).parent.name, input_file=str(args.subsets),
                      k=k, depth=model.depth, device=str(model.device), axes="slices, rows, cols",
                      edge_slices_repeated=bool(repeated), slices_per_s=len(pick) / seconds,
                      versions=software_versions())
    if repeated:
        provenance["edge_slices"] = (f"{subsets.shape[1]} slices < depth d = {model.depth}: "
                                     "neighbours beyond the ends repeat the edge slices")
    write_arrays(args.out, {"/recon": out, "/slices": slices[pick].astype(np.int32)}, provenance)
    return Path(args.out), len(pick), seconds


# -----------------------------------------------------------------------------
# command line


def build_parser() -> argparse.ArgumentParser:
    from simulate.reconstruct import FILTERS

    p = argparse.ArgumentParser(prog="tomogan-n2i", description="Noise2Inverse with TomoGAN's generator: "
                                "self-supervised denoising from the scan's own projections.")
    sub = p.add_subparsers(dest="command", required=True)

    ps = sub.add_parser("split", help="projections.h5 -> k sub-reconstructions (FBP of interleaved angle subsets)")
    ps.add_argument("proj", metavar="PROJ.h5")
    ps.add_argument("out", metavar="OUT.h5")
    ps.add_argument("--k", type=int, default=4, help="number of angle subsets (default %(default)s)")
    ps.add_argument("--slices", type=int, default=0, help="only the N central detector rows (0: all)")
    ps.add_argument("--center", type=float, help="rotation axis, detector pixels (default: from the file)")
    ps.add_argument("--filter", default="ram-lak", choices=FILTERS)
    ps.add_argument("--backend", default="auto")
    ps.add_argument("--threads", type=int, default=1)

    pt = sub.add_parser("train", help="subsets.h5 -> OUT/model.pt (pixel MSE only; the same command resumes)")
    pt.add_argument("subsets", metavar="SUBSETS.h5")
    pt.add_argument("-o", "--out", required=True, metavar="OUT_DIR")
    pt.add_argument("--threads", type=int, help="CPU threads for PyTorch")
    pt.add_argument("--quiet", action="store_true", help="no progress bar")
    for f in dataclasses.fields(TrainConfig):
        if f.name in _LOSS_FIELDS:
            continue
        kind = {bool: parse_bool, "bool": parse_bool, int: int, "int": int, float: float, "float": float}.get(f.type, str)
        pt.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=kind, default=f.default,
                        help=_HELP.get(f.name, f"default {f.default}"))

    pi = sub.add_parser("infer", help="subsets.h5 + model.pt -> denoised reconstruction.h5 (/recon, /slices)")
    pi.add_argument("subsets", metavar="SUBSETS.h5")
    pi.add_argument("model", metavar="MODEL.pt")
    pi.add_argument("out", metavar="OUT.h5")
    pi.add_argument("--batch", type=int, default=4, help="slices per forward pass")
    pi.add_argument("--slices", type=int, default=0, help="only the N central slices (0: all)")
    pi.add_argument("--run", default="", help="model name written to the output (default: the model's folder)")
    add_runtime_args(pi)
    return p


@cli
def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``tomogan-n2i``; bad input exits with status 2 and one ``error:`` line."""
    args = parse_runtime_args(build_parser(), argv)
    if args.command == "split":
        print(f"wrote {_split(args)}")
    elif args.command == "train":
        print(f"trained {_train(args)}")
    else:
        out, n, seconds = _infer(args)
        print(f"denoised {n} slices in {seconds:.2f} s -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
