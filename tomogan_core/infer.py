"""``tomogan-infer``: apply a TomoGAN model (``model.pt``, ``checkpoint.pt`` or a served ``.pt``) to a volume file.

:func:`denoise`, :func:`load_any` and :class:`LoadedModel` are :mod:`tomogan_core.modelfile`'s, imported
here; this module adds the file-level pieces: slabs (:func:`denoise_file`), the release's single-file
layout, and the grey-level mapping for a model on 0..255 (:func:`grey255_from_input`).

Command line::

    python infer.py -ld ld-prod.h5 -model runs/foam/model.pt [-o enhanced.h5]
    tomogan-infer -ld recon/sparse-8/fbp.h5 -model served/foam.pt -o enhanced.h5 --slices 8

The output HDF5 holds ``/recon`` (enhanced slices, float32, data units) and ``/slices`` (their indices),
with the input's provenance attributes and the model's; ``input_mapping`` gives the numbers of a per-input
or grey-level map (a per-input model's is the whole volume's, also when only ``--slices`` are enhanced or the
file is streamed in slabs). For the release's single-file layout (a file with ``test_ns``) it writes the
release's ``ns``, ``gt`` (when present) and ``dn`` datasets instead.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Optional, Sequence, Tuple

import h5py
import numpy as np
import torch

from simulate.io import dataset_shape, read_array, read_attrs, software_versions, write_arrays
from simulate.plumbing import InputError, cli

from .data import RunningStats, find_volume_key, read_volume
from .modelfile import PRECISIONS, LoadedModel, denoise, flat_attrs, input_provenance, load_any

__all__ = ["LoadedModel", "load_any", "grey255_from_input", "bind_to_input", "denoise", "main"]

logger = logging.getLogger(__name__)


def grey255_from_input(model: LoadedModel, volume: np.ndarray) -> Tuple[LoadedModel, dict]:
    """Wrap a model that works on 0..255 grey levels (the authors' release) for data in other units: the
    input volume's own 0.5..99.5 percentile range is mapped to 0..255 and back (no normal-dose information
    used). Returns the wrapped model and the mapping, for provenance.
    """
    if model.per_input:
        raise ValueError("the model normalises each input volume itself (normalization 'input'): "
                         "no grey-level mapping applies")
    lo, hi = (float(v) for v in np.percentile(volume, [0.5, 99.5]))
    if not hi > lo:
        raise ValueError("input volume is constant: no grey-level range to map")
    step = (hi - lo) / 255.0
    inner = model.forward

    def forward(x):
        return inner((x - lo) / step) * step + lo

    info = dict(model.info, grey255_from_input=[lo, hi])
    mapping = {"input_mapping": f"input 0.5..99.5 percentiles [{lo:.6g}, {hi:.6g}] -> 0..255 and back"}
    return LoadedModel(forward, model.depth, info, model.device, model.precision), mapping


def bind_to_input(model: LoadedModel, stats, where="input volume") -> Tuple[LoadedModel, dict]:
    """Bind a per-input model to one volume's map: ``stats`` is the whole low-dose volume (or an iterable of
    its slices), or a filled :class:`~tomogan_core.data.RunningStats`. Returns the bound model and
    ``{"input_mapping": ...}``; a model with a fixed map is returned as it is, with ``{}``.

    Raises
    ------
    InputError
        A constant or non-finite volume, naming ``where``.
    """
    if not model.per_input:
        return model, {}
    try:
        if not isinstance(stats, RunningStats):
            acc = RunningStats()
            acc.add_slices(stats)
            stats = acc
        offset, scale = stats.as_map()
    except ValueError as exc:
        raise InputError(where, str(exc)) from None
    mapping = {"input_mapping": f"normalization 'input': the input volume's own mean {offset:.6g} and std {scale:.6g} "
                                "(over all its slices) -> network units, and the output back"}
    return model.for_input(offset, scale), mapping


def _refuse_grey255(model: LoadedModel, where) -> None:
    if model.per_input:
        raise InputError(where, "the model normalises each input volume itself (normalization 'input'); "
                                "--grey255-from-input does not apply to it")


# -----------------------------------------------------------------------------
# command line


def _release_layout(path) -> bool:
    try:
        with h5py.File(path, "r") as f:
            return "test_ns" in f and "recon" not in f
    except OSError:
        return False


def denoise_file(src, out, model: LoadedModel, *, key: Optional[str] = None, slices: int = 0, slab_mb: float = 256.0,
                 batch: int = 4, repeat_edges: bool = False, grey255: bool = False, attrs: Optional[dict] = None,
                 progress: bool = False) -> Tuple[int, float]:
    """Enhance a volume file slab by slab: memory bounded by ``slab_mb`` MiB whatever the volume's size.

    Each slab is computed from its input slices plus ``d // 2`` neighbours either side, so the result
    equals :func:`denoise` of the whole volume; a per-input model gets the whole volume's mean and std
    from a first pass. With ``grey255`` the percentiles come from the whole volume when it fits in one
    slab, else from up to 64 evenly spaced slices (said in ``input_mapping``). Writes ``/recon`` (chunked
    one slice at a time) and ``/slices`` atomically; returns (slices enhanced, seconds).
    """
    from simulate.io import to_h5_attr
    from simulate.plumbing import atomic_h5
    from simulate.reconstruct import central_slices, slab_rows

    name = find_volume_key(src, key)
    n, rows, cols = dataset_shape(src, name, ndim=3)
    with h5py.File(src, "r") as f:
        has_slices = name == "/recon" and "slices" in f
    idx = read_array(src, "/slices", ndim=1, dtype_kind="iu", dtype=np.int64) if has_slices else np.arange(n)
    if idx.shape[0] != n:
        raise InputError(src, f"{idx.shape[0]} slice indices for {n} slices")
    if n < model.depth and not repeat_edges:
        raise InputError(src, f"has {n} slices, fewer than the model's depth d = {model.depth} "
                              "(--repeat-edges pads by repeating them)")
    pick = central_slices(n, slices)
    step = slab_rows(4 * rows * cols * 3, slab_mb, len(pick))  # input, output and network copies
    half = model.depth // 2
    mapping = {}
    if grey255:
        _refuse_grey255(model, src)
        sample = np.arange(n) if step >= n else np.unique(np.linspace(0, n - 1, min(n, 64)).astype(int))
        model, mapping = grey255_from_input(model, read_array(src, name, ndim=3, index=np.s_[sample.tolist()]))
        if step < n:
            mapping["input_mapping"] += f" (percentiles of {len(sample)} evenly spaced slices)"
    if model.per_input:  # a first pass: the whole volume's mean and std, one map for every slab
        stats = RunningStats()
        for a in range(0, n, step):
            stats.add_slices(read_array(src, name, ndim=3, index=np.s_[a:min(n, a + step)]))
        model, mapping = bind_to_input(model, stats, src)
    t0 = time.perf_counter()
    with atomic_h5(out, nbytes=4 * len(pick) * rows * cols) as f:  # refused up front if the disk lacks room
        dset = f.create_dataset("/recon", shape=(len(pick), rows, cols), dtype=np.float32, chunks=(1, rows, cols))
        f.create_dataset("/slices", data=idx[pick])
        for a in range(0, len(pick), step):
            part = pick[a:a + step]
            lo, hi = max(0, int(part[0]) - half), min(n, int(part[-1]) + half + 1)
            # at the volume's ends the block ends where the volume does, so edge slices repeat as in denoise()
            block = read_array(src, name, ndim=3, index=np.s_[lo:hi])
            dset[a:a + len(part)] = denoise(block, model, indices=[int(i) - lo for i in part], batch=batch,
                                            repeat_edges=True, progress=progress)
        for k, v in dict(attrs or {}, **mapping, slab_slices=int(step)).items():
            f.attrs[k] = to_h5_attr(v)
    return len(pick), time.perf_counter() - t0


def run(args) -> Tuple[Path, int, float]:
    """Do what ``tomogan-infer`` was asked; returns (output, slices enhanced, seconds)."""
    from simulate.reconstruct import central_slices

    src = Path(args.ld)
    if not src.exists():
        raise InputError(src, "file not found")
    model = load_any(args.model, depth=args.depth, device=args.device, precision=args.precision)
    release = args.key is None and _release_layout(src)
    if args.grey255_from_input:
        _refuse_grey255(model, args.model)
    if args.slab_mb and not release:  # stream the volume through in slabs
        out = Path(args.out) if args.out else src.with_name(src.stem + "-tomogan.h5")
        attrs = input_provenance(read_attrs(src))
        attrs.update(flat_attrs(model.info))
        n_in = dataset_shape(src, find_volume_key(src, args.key), ndim=3)[0]
        attrs.update(method=args.method, run=args.run or Path(args.model).parent.name, input_file=str(src),
                     depth=model.depth, device=str(model.device), edge_slices_repeated=bool(n_in < model.depth),
                     versions=software_versions())
        n, seconds = denoise_file(src, out, model, key=args.key, slices=args.slices, slab_mb=args.slab_mb,
                                  batch=args.batch, repeat_edges=args.repeat_edges,
                                  grey255=args.grey255_from_input, attrs=attrs, progress=not args.quiet)
        return out, n, seconds
    if release:
        vol = read_array(src, "/test_ns", ndim=3)
        idx, attrs = np.arange(vol.shape[0]), {}
    else:
        vol, idx, attrs = read_volume(src, args.key)
    if vol.shape[0] < model.depth and not args.repeat_edges:
        raise InputError(src, f"has {vol.shape[0]} slices, fewer than the model's depth d = {model.depth} "
                              "(--repeat-edges pads by repeating them)")
    pick = central_slices(vol.shape[0], args.slices)
    mapping = {}
    if args.grey255_from_input:
        model, mapping = grey255_from_input(model, vol)
    model, per_input = bind_to_input(model, vol, src)  # normalisation "input": the whole volume's map
    mapping.update(per_input)
    out = Path(args.out) if args.out else src.with_name(src.stem + "-tomogan.h5")
    t0 = time.perf_counter()
    enhanced = denoise(vol, model, indices=pick, batch=args.batch, repeat_edges=args.repeat_edges,
                       progress=not args.quiet)
    seconds = time.perf_counter() - t0
    provenance = input_provenance(attrs)
    provenance.update(flat_attrs(model.info))
    provenance.update(method=args.method, run=args.run or Path(args.model).parent.name, input_file=str(src), depth=model.depth, device=str(model.device),
                      edge_slices_repeated=bool(vol.shape[0] < model.depth), slices_per_s=len(pick) / seconds,
                      versions=software_versions(), **mapping)
    if release:
        arrays = {"ns": vol[pick], "dn": enhanced}
        with h5py.File(src, "r") as f:
            if "test_gt" in f:
                arrays["gt"] = read_array(src, "/test_gt", ndim=3)[pick]
    else:
        arrays = {"recon": enhanced, "slices": idx[pick]}
    write_arrays(out, arrays, provenance)
    return out, len(pick), seconds


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tomogan-infer", description="Enhance a low-dose volume with a "
                                "trained (model.pt) or served (.pt + card) TomoGAN model.")
    p.add_argument("-ld", required=True, metavar="LOW.h5", help="low-dose volume (or the release's file "
                   "with test_ns)")
    p.add_argument("-model", required=True, metavar="MODEL.pt", help="model.pt, checkpoint.pt or a served .pt")
    p.add_argument("-o", "--out", help="output HDF5 (default: LOW-tomogan.h5 beside the input)")
    p.add_argument("-depth", type=int, help="expected depth d; refuses a model of another depth")
    p.add_argument("--key", help="dataset in the input file (default /recon, else its only 3-D dataset)")
    p.add_argument("--slices", type=int, default=0, help="central slices to enhance (0 = all)")
    p.add_argument("--batch", type=int, default=4, help="slices per forward pass")
    p.add_argument("--method", default="tomogan", help="method name written to the output (tables use it)")
    p.add_argument("--run", default="", help="model name written to the output (tables use it)")
    p.add_argument("--grey255-from-input", action="store_true", help="for models on 0..255 grey levels (the "
                   "authors' TomoGAN.h5): map the input's 0.5..99.5 percentile range to 0..255 and back")
    p.add_argument("--repeat-edges", action="store_true", help="allow fewer slices than d by repeating them")
    p.add_argument("--slab-mb", type=float, help="memory budget: stream the volume through in slabs of as many "
                   "slices as fit in this many MiB (default: read it whole)")
    add_runtime_args(p)
    return p


def add_runtime_args(p: argparse.ArgumentParser) -> None:
    """``--device``, ``--threads`` and ``--quiet``, shared by the inference commands."""
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, ...")
    p.add_argument("--threads", type=int, help="CPU threads for PyTorch")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="bf16: bfloat16 autocast (faster "
                   "where the CPU has AMX or on GPUs; see analysis.inference_speed for its SSIM change)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def parse_runtime_args(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse ``argv`` and apply ``--threads`` (see :func:`add_runtime_args`)."""
    args = parser.parse_args(argv)
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    return args


@cli
def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``tomogan-infer``; bad input exits with status 2 and one ``error:`` line."""
    out, n, seconds = run(parse_runtime_args(build_parser(), argv))
    print(f"enhanced {n} slices in {seconds:.2f} s ({n / seconds:.1f} slices/s) -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
