"""Plumbing every stage shares: bad input as one line, the command-line wrapper, atomic writers, the field of view.

- **Errors.** A reader that finds a problem in what it is given raises :class:`InputError` with the file and the
  problem; :func:`cli`, around every command-line ``main``, turns it into one line, ``error: <file>: <problem>``, and
  exit status 2. That is the only way a command reports bad input.
- **Atomic writers** (:func:`atomic_path`, and :func:`atomic_h5`, :func:`write_text`, :func:`write_json`,
  :func:`write_csv`, :func:`save_torch` on it): a file appears under its name only when complete. A write that
  fails for lack of room is an :class:`OutputError` whatever words the library used, and a large write of known
  size checks the free space before it creates any file (:func:`nbytes_of`, :func:`check_free_space`).
- **The field of view.** :func:`circular_mask`, the disc a parallel-beam scan determines.
- **Restarting after a crash.** :func:`clear_stale_lock` removes the lock a killed Snakemake left behind, unless a
  Snakemake still runs in that folder (``make all`` calls ``python -m simulate.plumbing clear-stale-lock .`` first).

Examples
--------
>>> import tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp()) / "a.json"
>>> write_json(out, {"x": 1}).read_text()
'{\\n "x": 1\\n}'
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

__all__ = ["InputError", "OutputError", "cli", "json_argument", "clear_stale_lock", "running_snakemake", "atomic_path",
           "atomic_h5", "write_text", "write_json", "write_csv", "save_torch", "nbytes_of", "check_free_space",
           "circular_mask", "usable_cores"]

logger = logging.getLogger(__name__)

_UMASK = os.umask(0)  # read once: mkstemp makes 0600 files, and a finished file should get the usual mode
os.umask(_UMASK)


# ----------------------------------------------------------------------------- errors

class InputError(ValueError):
    """Bad input: the message is one line that names the file and the problem."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem.removeprefix(f"{path}: ")  # a library's message may name the file already
        super().__init__(f"{path}: {self.problem}")


class OutputError(InputError):
    """A file could not be written (a full disk, a quota, an I/O error): one line naming the file and why."""


_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
FREE_FLOOR = 1 << 20  # bytes: a folder with less than this free after a failed write is taken as full
HEADROOM = 1 << 20  # bytes: a write checked beforehand must leave at least this much free besides its estimate


def _free_bytes(folder) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return -1


def _write_failure(path: Path, exc: BaseException):
    """The :class:`OutputError` a failed write means, or None when it was not the disk.

    Libraries report a full disk in their own words (``torch.save``: "basic_ios::clear: iostream error",
    "unexpected pos ..."; HDF5: "Can't write data"): besides ENOSPC/EDQUOT/EFBIG, any failure of a write after
    which the folder has less than :data:`FREE_FLOOR` bytes free is taken as a full disk.
    """
    free = _free_bytes(path.parent)
    errnum = getattr(exc, "errno", None)
    if errnum in _FULL or 0 <= free < FREE_FLOOR:
        return OutputError(path, f"no space left on device ({free if free >= 0 else 'unknown'} bytes free in "
                                 f"{path.parent}; {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
    if isinstance(exc, OSError) and errnum == errno.EIO:
        return OutputError(path, f"input/output error while writing ({exc.strerror})")
    return None


def _size(nbytes: int) -> str:
    """``nbytes`` for a reader: ``'512 B'``, ``'12.3 MiB'``.

    >>> _size(512), _size(4 << 20), _size(int(12.34 * 2**20))
    ('512 B', '4.0 MiB', '12.3 MiB')
    """
    if nbytes < 1024:
        return f"{nbytes} B"
    value = float(nbytes)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        value /= 1024
        if value < 1024 or unit == "EiB":
            return f"{value:.1f} {unit}"


def nbytes_of(obj) -> int:
    """The bytes the arrays and tensors in ``obj`` hold: a cheap lower bound on the size of a file that stores it.

    numpy arrays count ``nbytes``, torch tensors their storage's bytes (``numel() * element_size()`` unless a
    view; sparse ones nothing), a torch module its state dict; dicts (values), lists, tuples and sets are
    searched, anything else (numbers, strings, pickled objects) counts 0. An object found twice counts once, and
    so does a storage several tensors view, as :func:`torch.save` writes it once. Nothing is copied or moved;
    torch is not imported for this.

    >>> nbytes_of({"w": np.zeros((3, 4), np.float32), "meta": {"steps": 7, "b": [np.ones(2)]}})
    64
    """
    torch = sys.modules.get("torch")
    seen, storages, total = set(), set(), 0
    stack = [obj]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if torch is not None and isinstance(item, torch.Tensor):
            if item.layout != torch.strided:
                continue  # sparse: numel() counts the zeros that are not stored
            try:  # torch.save writes a tensor's whole storage, once however many tensors view it
                storage = item.untyped_storage()
                ptr, size = storage.data_ptr(), storage.nbytes()
            except (RuntimeError, NotImplementedError, AttributeError):
                ptr, size = 0, item.numel() * item.element_size()
            if ptr and ptr in storages:
                continue
            storages.add(ptr)
            total += size
        elif torch is not None and isinstance(item, torch.nn.Module):
            stack.append(item.state_dict(keep_vars=True))
        elif isinstance(item, np.ndarray):
            total += item.nbytes
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
    return int(total)


def check_free_space(path, nbytes: int, *, headroom: int = HEADROOM) -> None:
    """Raise :class:`OutputError` when writing ``nbytes`` to ``path`` would leave less than ``headroom`` free.

    The free space is that of ``path``'s folder (or of its nearest existing parent, as nothing is created here).
    ``nbytes`` of 0 or less means the size is unknown: nothing is checked, nor when the free space cannot be
    read. The estimate may be wrong either way, so a write that passes may still fail for lack of room; that
    failure is reported as before (:func:`atomic_path`).

    >>> check_free_space("/tmp/small.h5", 1024)
    >>> try:
    ...     check_free_space("/tmp/big.h5", 1 << 60)
    ... except OutputError as exc:
    ...     print(exc)  # doctest: +ELLIPSIS
    /tmp/big.h5: no space left on device (needs ~1.0 EiB, ... free on /tmp)
    """
    if nbytes <= 0:
        return
    path = Path(path)
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    free = _free_bytes(folder)
    if 0 <= free < nbytes + headroom:
        raise OutputError(path, f"no space left on device (needs ~{_size(nbytes)}, {_size(free)} free on {folder})")


def cli(main):
    """Decorate a command-line ``main(argv=None)``: :class:`InputError` -> one ``error:`` line on stderr, exit 2.

    Logging goes to stderr at INFO; ``main``'s return value is passed on (``None`` or 0 is success).
    """

    @functools.wraps(main)
    def wrapper(argv=None):
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        try:
            return main(argv)
        except InputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper


def json_argument(text: str, *, flag: str):
    """A command-line argument holding JSON, or ``@FILE`` naming a file of it: returns ``(value, where)``.

    ``where`` is the file, or ``flag`` for inline JSON: what an :class:`InputError` about the value should name.

    >>> json_argument('{"a": 1}', flag="--spec")
    ({'a': 1}, '--spec')
    """
    where = flag
    if text.startswith("@"):
        where = text[1:]
        try:
            text = Path(where).read_text()
        except OSError as exc:
            raise InputError(where, f"cannot read: {exc.strerror}") from None
    try:
        return json.loads(text), where
    except ValueError as exc:
        raise InputError(where, f"not JSON: {exc}") from None


# ----------------------------------------------------------------------------- atomic writers

@contextmanager
def atomic_path(path, *, nbytes: int = 0) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` when the block ends without an exception.

    On any exception (including a kill signal turned into one) the temporary file is removed and ``path``
    is left as it was. The temporary name keeps the suffix, so libraries that choose a format by it
    (matplotlib) still do. ``nbytes``, an estimate of the size to be written, is checked against the free
    space first (:func:`check_free_space`): too little raises :class:`OutputError` before any file or folder
    is made.
    """
    path = Path(path)
    check_free_space(path, nbytes)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    except OSError as exc:
        raise (_write_failure(path, exc) or exc) from None
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        failure = None if isinstance(exc, (InputError, KeyboardInterrupt, SystemExit)) else _write_failure(path, exc)
        if failure is not None:
            raise failure from None
        raise


@contextmanager
def atomic_h5(path, *, nbytes: int = 0):
    """Open ``path`` for writing through :func:`atomic_path`; yields an open :class:`h5py.File`.

    ``nbytes``: the size of the datasets to be written when known (the arrays' ``nbytes`` summed), checked
    against the free space before the file is made. That is the uncompressed size, an upper bound for
    compressed datasets: pass 0 (no check) for those rather than refuse a write that would fit.
    """
    import h5py

    with atomic_path(path, nbytes=nbytes) as tmp:
        with h5py.File(tmp, "w") as f:
            yield f


def write_text(path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path, obj, *, indent: int = 1) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically; returns the path."""
    return write_text(path, json.dumps(obj, indent=indent))


def write_csv(table, path) -> Path:
    """Write a pandas table to ``path`` as CSV atomically (no index); returns the path."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return Path(path)


def save_torch(obj, path) -> Path:
    """``torch.save`` to ``path`` atomically; returns the path.

    The tensors in ``obj`` (:func:`nbytes_of`, a lower bound on the file's size) are checked against the free
    space first: a checkpoint that cannot fit raises :class:`OutputError` before any file is made.
    """
    import torch

    with atomic_path(path, nbytes=nbytes_of(obj)) as tmp:
        torch.save(obj, tmp)
    return Path(path)


# ----------------------------------------------------------------------------- masks

def circular_mask(shape, *, margin: float = 0.0) -> np.ndarray:
    """Boolean mask of the reconstruction's circular field of view.

    Parallel-beam data determine only the disc inscribed in the square grid;
    astra fills the corners with values that no metric should see.

    Parameters
    ----------
    shape : tuple of int
        ``(rows, cols)`` of a slice (or any shape whose last two axes are that).
    margin : float
        Pixels to leave out at the rim.

    Returns
    -------
    ndarray of bool, shape ``(rows, cols)``

    Examples
    --------
    >>> circular_mask((4, 4)).astype(int)
    array([[0, 1, 1, 0],
           [1, 1, 1, 1],
           [1, 1, 1, 1],
           [0, 1, 1, 0]])
    """
    rows, cols = shape[-2:]
    y = np.arange(rows) - (rows - 1) / 2
    x = np.arange(cols) - (cols - 1) / 2
    radius = min(rows, cols) / 2 - margin
    return (y[:, None] ** 2 + x[None, :] ** 2) <= radius ** 2


# ----------------------------------------------------------------------------- cores

def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a batch system or ``taskset`` narrows), at least 1.

    >>> usable_cores() >= 1
    True
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


# ----------------------------------------------------------------------------- restarting a workflow

def running_snakemake(workdir, *, proc=Path("/proc")) -> list:
    """Process ids of the Snakemake runs working in ``workdir`` (Linux: from ``/proc``; elsewhere none found).

    A Snakemake process changes into its working directory (``--directory``), so a run is recognised by a
    command line that names snakemake and a current directory that is ``workdir``.
    """
    workdir = Path(workdir).resolve()
    me, pids = os.getpid(), []
    for entry in proc.glob("[0-9]*"):
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue
        if int(entry.name) != me and cwd == workdir and any(b"snakemake" in part for part in cmdline):
            pids.append(int(entry.name))
    return sorted(pids)


def clear_stale_lock(workdir) -> bool:
    """Remove the lock a killed Snakemake left in ``workdir``; True if there was one.

    Raises :class:`InputError` (one line) when a Snakemake still runs there: its lock is not stale.
    """
    locks = Path(workdir) / ".snakemake" / "locks"
    held = sorted(locks.glob("*.lock")) if locks.is_dir() else []
    if not held:
        return False
    pids = running_snakemake(workdir)
    if pids:
        raise InputError(locks, f"Snakemake is still running in this folder (pid {', '.join(map(str, pids))}); "
                                "wait for it or stop it, then run the same command again")
    for lock in held:
        lock.unlink(missing_ok=True)
    logger.info("removed the lock of a Snakemake run that no longer runs (%s)", locks)
    return True


@cli
def main(argv=None):
    """``python -m simulate.plumbing clear-stale-lock [DIR]``: what ``make all`` runs before Snakemake."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m simulate.plumbing")
    sub = p.add_subparsers(dest="command", required=True)
    clear = sub.add_parser("clear-stale-lock", help="remove a killed Snakemake run's lock from a working directory")
    clear.add_argument("workdir", nargs="?", default=".")
    args = p.parse_args(argv)
    if clear_stale_lock(args.workdir):
        print(f"removed a stale Snakemake lock in {args.workdir}: the run continues where it stopped")
    return 0


if __name__ == "__main__":
    main()

