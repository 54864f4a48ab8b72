"""Obtain a raw shale scan: download it from TomoBank (checksum verified) or build the stand-in.

Three modes, chosen in the config:

* ``download`` -- download the TomoBank file; an unreachable server, a missing checksum, a checksum or size
  mismatch are errors;
* ``synthetic`` -- always build the stand-in (:mod:`simulate.shale`, ``source: synthetic-shale``);
* ``auto`` -- download when the server answers and a checksum is known, otherwise build the stand-in and log
  :data:`FALLBACK_WARNING`. A download that starts and then fails (checksum mismatch, broken connection) is an
  error, never silently replaced by the stand-in.

Either way the output is a raw DXchange file read by :mod:`simulate.dxchange`, which labels a real one
``tomobank:<dataset>`` (docs/data-model.md, "Shale: real or stand-in"). Downloads go through :func:`pooch.retrieve`
(streamed to a temporary file beside the target, kept only if the SHA-256 matches); when a stale target already
exists, a failed re-download would keep it, so :func:`fetch` removes any target that does not match. A file whose
checksum is unknown is never kept unless ``allow_unverified=True``. A run killed mid-download may leave a pooch
``tmp*`` file in the target folder (never under the target's name).

Command line, one line for a Snakemake rule; everything after ``--`` goes to
``python -m simulate.shale`` (less the output path and ``--dataset``, which are added)::

    python -m simulate.download OUT.h5 --name tomo_00001 --url URL --sha256 HEX [--size BYTES] \\
        --mode auto -- --preset hornby --size 256 --slices 48 --facility aps --n-angles 376 ...

``--url``/``--sha256`` may be empty strings or ``none`` (unknown); then ``auto`` builds the stand-in.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import re
import socket
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

from .plumbing import InputError, cli

__all__ = ["MODES", "FALLBACK_WARNING", "DownloadError", "network_available", "sha256sum", "fetch",
           "obtain_raw", "main"]

logger = logging.getLogger(__name__)

MODES = ("auto", "download", "synthetic")
FALLBACK_WARNING = "TomoBank unreachable: using the synthetic stand-in (source: synthetic-shale)"
_DEFAULT_PORTS = {"http": 80, "https": 443, "ftp": 21}


class DownloadError(InputError):
    """A remote file could not be obtained or verified (one line naming the URL or file)."""


def network_available(url: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``url``'s host and port opens within ``timeout`` seconds.

    Name resolution and connection both run under the deadline (resolution in a helper
    thread, since :func:`socket.getaddrinfo` has no timeout of its own), so without a
    network this answers ``False`` within ``timeout``.

    Examples
    --------
    >>> network_available("http://127.0.0.1:9/x", timeout=1)  # the discard port: closed
    False
    """
    parts = urlsplit(url or "")
    host = parts.hostname
    try:
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return False
    if not host or not port:
        return False
    result = {}

    def attempt():
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result["ok"] = True
        except OSError as exc:
            result["error"] = exc

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    if not result.get("ok"):
        logger.info("%s:%s not reachable: %s", host, port, result.get("error", f"no answer in {timeout} s"))
    return bool(result.get("ok"))


def sha256sum(path, *, chunk: int = 2 ** 22) -> str:
    """SHA-256 of a file, hex, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _checked_hash(url, sha256):
    if sha256 is None:
        return None
    sha = str(sha256).strip().lower()
    if sha.startswith("sha256:"):
        sha = sha[len("sha256:"):]
    if not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise DownloadError(url, f"'{sha256}' is not a SHA-256 checksum (64 hex digits)")
    return sha


def _remove_if_bad(path: Path, sha: str | None) -> None:
    """Remove ``path`` unless it exists with the expected checksum."""
    if path.exists() and (sha is None or sha256sum(path) != sha):
        path.unlink()
        logger.info("removed unverified %s", path)


def fetch(url: str, path, *, sha256: str | None, size: int | None = None, allow_unverified: bool = False,
          progressbar: bool = True) -> Path:
    """Download ``url`` to ``path`` and keep it only if its SHA-256 (and size) match.

    Parameters
    ----------
    url : str
    path : str or Path
        Target file; its folder is created.
    sha256 : str or None
        Expected checksum, hex (``sha256:`` prefix allowed). ``None`` is refused unless
        ``allow_unverified``.
    size : int, optional
        Expected size in bytes, checked after the checksum.
    allow_unverified : bool
        Keep a file whose checksum is unknown (logged with its computed checksum).
    progressbar : bool
        Show pooch's tqdm progress bar (on stderr, i.e. in the rule's log).

    Returns
    -------
    Path
        ``path``, verified.

    Raises
    ------
    DownloadError
        No checksum (and not ``allow_unverified``), unreachable URL, HTTP error, checksum or
        size mismatch. No file is left at ``path`` in any of these cases.
    """
    import pooch

    path = Path(path)
    sha = _checked_hash(url, sha256)
    if sha is None and not allow_unverified:
        raise DownloadError(url, "no sha256 checksum given: refusing to keep an unverified file "
                                 "(give the checksum, or allow_unverified)")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        pooch.retrieve(url, known_hash=f"sha256:{sha}" if sha else None, fname=path.name,
                       path=path.parent, progressbar=progressbar)
    except ValueError as exc:  # pooch: hash mismatch
        _remove_if_bad(path, sha)
        raise DownloadError(url, f"checksum mismatch, file not kept: {str(exc).splitlines()[0]}") from None
    except OSError as exc:  # requests' errors are OSErrors: connection, HTTP status, timeouts
        _remove_if_bad(path, sha)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DownloadError(url, f"download failed: {reason}") from None
    except BaseException:
        _remove_if_bad(path, sha)
        raise
    if size is not None and path.stat().st_size != int(size):
        got = path.stat().st_size
        path.unlink()
        raise DownloadError(url, f"size {got} bytes, expected {int(size)}: file not kept")
    if sha is None:
        logger.warning("kept %s UNVERIFIED (sha256 %s)", path, sha256sum(path))
    return path


def obtain_raw(name: str, out, *, mode: str = "auto", tomobank_entry: dict | None = None,
               synthetic_args=(), timeout: float = 3.0, allow_unverified: bool = False) -> str:
    """Put the raw scan ``name`` at ``out``: the TomoBank file or the synthetic stand-in.

    Parameters
    ----------
    name : str
        Dataset name, e.g. ``tomo_00001``; recorded as ``dataset`` in the stand-in.
    out : str or Path
        Raw DXchange file to write.
    mode : {"auto", "download", "synthetic"}
        See the module docstring.
    tomobank_entry : dict, optional
        ``url``, ``sha256`` and optionally ``size`` (bytes) of the TomoBank file.
    synthetic_args : sequence of str
        Command-line arguments of :mod:`simulate.shale` for the stand-in (without the output
        path and ``--dataset``, which are added).
    timeout : float
        Seconds for the reachability check.

    Returns
    -------
    str
        ``"tomobank"`` or ``"synthetic-shale"``: what was written.

    Raises
    ------
    DownloadError
        ``download`` mode without a URL, a reachable server or a checksum; any failed download.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode '{mode}'; choose one of {', '.join(MODES)}")
    entry = dict(tomobank_entry or {})
    url = entry.get("url") or None
    sha = _checked_hash(url or name, entry.get("sha256") or None)
    size = entry.get("size") or None
    out = Path(out)

    if mode != "synthetic":
        if mode == "download" and not url:
            raise DownloadError(name, "mode 'download' needs the TomoBank URL")
        if sha and out.exists() and sha256sum(out) == sha:
            logger.info("%s already holds the verified TomoBank file", out)
            return "tomobank"
        reachable = bool(url) and network_available(url, timeout)
        if mode == "download":
            if not reachable:
                raise DownloadError(url, "unreachable (mode 'download' never falls back to the stand-in)")
            fetch(url, out, sha256=sha, size=size, allow_unverified=allow_unverified)
            return "tomobank"
        if reachable and (sha or allow_unverified):
            fetch(url, out, sha256=sha, size=size, allow_unverified=allow_unverified)
            return "tomobank"
        reason = ("no URL" if not url else "no answer from the server" if not reachable else "no sha256 checksum")
        logger.warning("%s [%s: %s]", FALLBACK_WARNING, name, reason)

    from . import shale

    shale.run([str(out), *map(str, synthetic_args), "--dataset", name])
    return shale.SOURCE


def _none(value):
    return None if value is None or str(value).strip().lower() in ("", "none", "null") else value


@cli
def main(argv=None):
    """``python -m simulate.download OUT.h5 --name NAME [--url U --sha256 H --size N] --mode M -- SHALE_ARGS``"""
    argv = list(sys.argv[1:] if argv is None else argv)
    own, shale_args = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    p = argparse.ArgumentParser(
        description="Download a TomoBank raw scan (checksum verified) or build the synthetic stand-in. "
                    "Arguments after '--' go to 'python -m simulate.shale' (without OUT and --dataset).",
        usage="python -m simulate.download OUT.h5 --name NAME [--url URL] [--sha256 HEX] [--size BYTES] "
              "[--mode {auto,download,synthetic}] [-- SHALE_ARGS ...]")
    p.add_argument("out", help="raw DXchange HDF5 to write")
    p.add_argument("--name", required=True, help="dataset name, e.g. tomo_00001")
    p.add_argument("--url", type=_none, help="TomoBank URL ('' or none: unknown)")
    p.add_argument("--sha256", type=_none, help="SHA-256 of the TomoBank file ('' or none: unknown)")
    p.add_argument("--size", type=_none, help="size of the TomoBank file, bytes ('' or none: unchecked)")
    p.add_argument("--mode", choices=MODES, default="auto")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds for the reachability check")
    p.add_argument("--allow-unverified", action="store_true", help="keep a download without a checksum")
    args = p.parse_args(own)
    size = None
    if args.size is not None:
        try:
            size = int(args.size)
        except ValueError:
            p.error(f"--size must be a number of bytes, got {args.size!r}")
    got = obtain_raw(args.name, args.out, mode=args.mode,
                     tomobank_entry={"url": args.url, "sha256": args.sha256, "size": size},
                     synthetic_args=shale_args, timeout=args.timeout, allow_unverified=args.allow_unverified)
    logger.info("%s: %s -> %s", args.name, got, args.out)


if __name__ == "__main__":
    main()
