"""HDF5 input and output, and provenance, shared by every stage of the study.

Every file the workflow writes is HDF5 with provenance attributes (:func:`write_arrays`, atomic); every reader
checks what it is given and raises :class:`simulate.plumbing.InputError` naming the file and the problem. The axis
order and the attributes: docs/data-model.md.
"""

from __future__ import annotations

import json
import logging
import platform
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from .plumbing import InputError, atomic_h5

__all__ = [
    "read_array",
    "read_attrs",
    "dataset_shape",
    "has_dataset",
    "check_finite",
    "write_arrays",
    "to_h5_attr",
    "read_table",
    "benchmark_seconds",
    "read_benchmark",
    "software_versions",
    "cpu_name",
]

logger = logging.getLogger(__name__)


@contextmanager
def _open_for_read(path):
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir():
        raise InputError(path, "is a directory, expected an HDF5 file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:  # truncated, corrupt, or not HDF5 at all
        reason = str(exc).split(";")[0].split("(")[0].strip() or "unreadable"
        raise InputError(path, f"not a readable HDF5 file (truncated or corrupt?): {reason}") from None
    with f:
        yield f


def read_array(path, name: str, *, ndim: int | None = None, dtype_kind: str = "fiu",
               finite: bool = True, dtype=np.float32, index=None) -> np.ndarray:
    """Read one dataset from an HDF5 file, checking it on the way.

    Parameters
    ----------
    path : str or Path
        HDF5 file.
    name : str
        Dataset path inside the file, e.g. ``"/exchange/data"``.
    ndim : int, optional
        Required number of dimensions.
    dtype_kind : str
        Allowed numpy dtype kinds (``"f"`` float, ``"i"``/``"u"`` integers).
    finite : bool
        Reject NaN and Inf.
    dtype : numpy dtype or None
        Cast the result to this type (``None`` keeps the stored type).
    index : h5py selection, optional
        Read only this part (e.g. ``np.s_[[3, 4, 5]]`` for three slices, increasing indices); the
        finiteness check then covers only what was read.

    Returns
    -------
    ndarray
        The dataset's values.

    Raises
    ------
    InputError
        Missing file or dataset, unreadable file, wrong rank or dtype, NaN/Inf.
    """
    with _open_for_read(path) as f:
        if name not in f:
            raise InputError(path, f"missing dataset '{name}'")
        ds = f[name]
        if not isinstance(ds, h5py.Dataset):
            raise InputError(path, f"'{name}' is a group, expected a dataset")
        if ds.dtype.kind not in dtype_kind:
            raise InputError(path, f"dataset '{name}' has dtype {ds.dtype}, expected one of kinds '{dtype_kind}'")
        if ndim is not None and ds.ndim != ndim:
            raise InputError(path, f"dataset '{name}' has shape {ds.shape}, expected {ndim} dimensions")
        try:
            arr = ds[()] if index is None else ds[index]
        except OSError as exc:
            raise InputError(path, f"dataset '{name}' cannot be read (truncated file?): {exc}") from None
    if dtype is not None:
        arr = np.asarray(arr, dtype=dtype)
    if finite:
        check_finite(arr, path, name)
    return arr


def dataset_shape(path, name: str, *, ndim: int | None = None) -> tuple:
    """The shape of a dataset, without reading it (checks as :func:`read_array`: file, name, rank)."""
    with _open_for_read(path) as f:
        if name not in f or not isinstance(f[name], h5py.Dataset):
            raise InputError(path, f"missing dataset '{name}'")
        shape = f[name].shape
    if ndim is not None and len(shape) != ndim:
        raise InputError(path, f"dataset '{name}' has shape {shape}, expected {ndim} dimensions")
    return tuple(shape)


def has_dataset(path, name: str) -> bool:
    """Whether the HDF5 file holds a dataset ``name`` (the file itself must exist and be readable)."""
    with _open_for_read(path) as f:
        return name in f and isinstance(f[name], h5py.Dataset)


def check_finite(arr: np.ndarray, path, name: str) -> None:
    """Raise :class:`InputError` if ``arr`` holds NaN or Inf."""
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = int(arr.size - np.isfinite(arr).sum())
        raise InputError(path, f"dataset '{name}' holds {bad} NaN/Inf values")


def read_attrs(path, name: str = "/") -> dict:
    """Return the attributes of a group or dataset as plain Python values."""
    with _open_for_read(path) as f:
        if name not in f:
            raise InputError(path, f"missing '{name}'")
        return {k: _from_h5(v) for k, v in f[name].attrs.items()}


def _from_h5(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def to_h5_attr(value):
    """Map a Python value to something HDF5 attributes store (dicts as JSON)."""
    if value is None:
        return "none"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, (list, tuple)) and any(isinstance(v, (str, dict)) for v in value):
        return json.dumps(value)
    return value


def write_arrays(path, arrays: dict, attrs: dict | None = None, *, chunks_slices: int | None = 1,
                 compression: str | None = None) -> None:
    """Write named arrays and root attributes to ``path`` atomically.

    Parameters
    ----------
    path : str or Path
        Target file.
    arrays : dict of str to ndarray
        Dataset path -> array. 3-D arrays are chunked one slice (first axis) at a time.
    attrs : dict, optional
        Root attributes (provenance). Dicts are stored as JSON strings.
    compression : str, optional
        HDF5 filter for every dataset (none by default).

    Raises
    ------
    OutputError
        The disk has no room: checked before the file is made (the arrays' ``nbytes`` summed, when
        uncompressed; a compressed file's size is not known beforehand, so it is not checked), or the write
        failed for lack of room. No file is left behind.
    """
    arrays = {name: np.asarray(arr) for name, arr in arrays.items()}
    nbytes = 0 if compression else sum(arr.nbytes for arr in arrays.values())
    with atomic_h5(path, nbytes=nbytes) as f:
        for name, arr in arrays.items():
            chunks = None
            if chunks_slices and arr.ndim == 3 and arr.shape[0] > 0:
                chunks = (min(chunks_slices, arr.shape[0]),) + arr.shape[1:]
            f.create_dataset(name, data=arr, chunks=chunks, compression=compression)
        for key, value in (attrs or {}).items():
            f.attrs[key] = to_h5_attr(value)


def read_table(path, *, what: str = "CSV table", need=()):
    """A CSV file as a pandas table; a missing, unreadable or empty file, or one lacking a ``need`` column, is an
    :class:`~simulate.plumbing.InputError` naming ``what`` it should have been."""
    import pandas as pd

    try:
        table = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(path, f"not a readable {what}: {exc}") from None
    missing = sorted(set(need) - set(table.columns))
    if missing or table.empty:
        raise InputError(path, f"{what} lacks columns {missing}" if missing else f"{what} has no rows")
    return table


def read_benchmark(path, need=("s",)):
    """The last row of a Snakemake benchmark file (one row per repeat) as a ``pandas.Series``, or None when it has
    no row; a file that is not one, or lacks a column of ``need``, is an :class:`InputError` naming it."""
    import pandas as pd

    try:
        table = pd.read_csv(path, sep="\t")
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(path, f"not a Snakemake benchmark file ({type(exc).__name__}: {exc})") from None
    missing = sorted(set(need) - set(table.columns))
    if missing:
        raise InputError(path, f"not a Snakemake benchmark file: no column {', '.join(missing)}")
    return table.iloc[-1] if len(table) else None


def benchmark_seconds(files) -> float:
    """The wall seconds (column ``s``, its last row) of Snakemake benchmark files, summed; a file without them is
    an :class:`InputError` naming it."""
    total = 0.0
    for f in files:
        row = read_benchmark(f)
        if row is None:
            raise InputError(f, "not a Snakemake benchmark file with wall seconds 's' (no row)")
        total += float(row["s"])
    return total


def software_versions() -> dict:
    """Versions of the software that shaped a result, for provenance attributes."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for dist in ("tomogan-study", "numpy", "scipy", "h5py", "astra-toolbox", "tomopy",
                 "xdesign", "scikit-image", "torch"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions


def cpu_name(cpuinfo="/proc/cpuinfo") -> str:
    """The CPU model, with the bfloat16 units that decide how fast bf16 runs, e.g. ``AMD EPYC (avx512_bf16)``.

    Timings from different machines differ several-fold (bf16 most: Intel's AMX against AVX-512 BF16), so
    every benchmark row names the CPU. Falls back to :func:`platform.processor` / ``machine`` off Linux.
    """
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return platform.processor() or platform.machine()
    first = text.split("\n\n")[0]  # the first processor's block
    fields = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in first.splitlines() if ":" in line)}
    model = fields.get("model name") or platform.processor() or platform.machine()
    units = [u for u in ("amx_bf16", "avx512_bf16") if u in fields.get("flags", "").split()]
    return f"{model} ({', '.join(units)})" if units else model
