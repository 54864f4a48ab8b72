"""The command line of ``tomogan-train`` (``python -m tomogan_core.train``; the release's flag names, plus ours).

Part of :mod:`tomogan_core.train`; import its public names from there."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path
from typing import Optional, Sequence

import torch

from simulate.plumbing import InputError, cli
from tomogan_core.data import describe_training_data, read_pair, read_release_file, split_held_out
from tomogan_core.train.config import TrainConfig
from tomogan_core.train.loop import train

logger = logging.getLogger("tomogan_core.train")  # one logger for the whole training command

# the release's flag names for our settings
RELEASE_FLAGS = {"depth": "-depth", "lambda_mse": "-lmse", "lambda_adv": "-ladv", "lambda_vgg": "-lperc",
                 "patch": "-psz", "batch": "-mbsz", "itg": "-itg", "itd": "-itd", "max_iter": "-maxiter"}


def parse_bool(text: str) -> bool:
    """A command-line true/false (1/0, true/false, yes/no, on/off).

    Examples
    --------
    >>> parse_bool("Yes"), parse_bool("0")
    (True, False)
    """
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tomogan-train",
        description="Train TomoGAN on (low-dose, normal-dose) volume pairs. Killed runs resume from "
                    "OUT/checkpoint.pt when the same command is run again.")
    data = p.add_argument_group("data")
    data.add_argument("-ld", nargs="+", metavar="LOW.h5", help="low-dose volume file(s), (slices, rows, cols)")
    data.add_argument("-nd", nargs="+", metavar="NORMAL.h5", help="normal-dose volume file(s), paired with -ld")
    data.add_argument("-vld", nargs="+", metavar="LOW.h5", help="validation low-dose volume(s); default: hold "
                      "out the last --val-fraction of the (first) training volume's slices")
    data.add_argument("-vnd", nargs="+", metavar="NORMAL.h5", help="validation normal-dose volume(s)")
    data.add_argument("-dsfn", metavar="FILE.h5", help="the release's single file (train_ns, train_gt, "
                      "test_ns, test_gt) instead of -ld/-nd; test_* is used for validation")
    data.add_argument("--ld-key", help="dataset in the low-dose files (default /recon, else the only 3-D one)")
    data.add_argument("--nd-key", help="dataset in the normal-dose files")
    out = p.add_argument_group("output")
    out.add_argument("-o", "--out", help="output folder (default: runs/<expName>)")
    out.add_argument("-expName", default="tomogan", help="experiment name (default %(default)s)")
    out.add_argument("--threads", type=int, help="CPU threads for PyTorch")
    out.add_argument("--quiet", action="store_true", help="no progress bar")
    hyper = p.add_argument_group("training settings (defaults: the published ones)")
    for f in dataclasses.fields(TrainConfig):
        names = ["--" + f.name.replace("_", "-")]
        if f.name in RELEASE_FLAGS:
            names.insert(0, RELEASE_FLAGS[f.name])
        kind = {bool: parse_bool, "bool": parse_bool, int: int, "int": int, float: float, "float": float}.get(f.type, str)
        hyper.add_argument(*names, dest=f.name, type=kind, default=f.default, help=f"default {f.default}")
    return p


def _load_data(args, depth):
    if args.dsfn:
        if args.ld or args.nd:
            raise InputError(args.dsfn, "give either -dsfn or -ld/-nd, not both")
        train_pair, val_pair = read_release_file(args.dsfn, depth=depth)
        return [train_pair], [val_pair], {"dsfn": str(args.dsfn)}
    if not args.ld or not args.nd:
        raise InputError("command line", "give -ld and -nd (or -dsfn)")
    if len(args.ld) != len(args.nd):
        raise InputError(args.ld[0], f"{len(args.ld)} low-dose files for {len(args.nd)} normal-dose files")
    pairs = [read_pair(l, n, depth=depth, key_low=args.ld_key, key_normal=args.nd_key)
             for l, n in zip(args.ld, args.nd)]
    if args.vld or args.vnd:
        if len(args.vld or []) != len(args.vnd or []):
            raise InputError((args.vld or args.vnd)[0], "-vld and -vnd must list the same number of files")
        val = [read_pair(l, n, depth=depth, key_low=args.ld_key, key_normal=args.nd_key)
               for l, n in zip(args.vld, args.vnd)]
    else:
        first, held_out = split_held_out(pairs[0], fraction=args.val_fraction, depth=depth)
        pairs, val = [first] + pairs[1:], [held_out]
    return pairs, val, {"ld": [str(x) for x in args.ld], "nd": [str(x) for x in args.nd],
                        "vld": [str(x) for x in args.vld or []], "vnd": [str(x) for x in args.vnd or []]}


@cli
def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``tomogan-train``; bad input exits with status 2 and one ``error:`` line."""
    args = build_parser().parse_args(argv)
    try:
        cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})
    except ValueError as exc:
        raise InputError("settings", str(exc)) from None
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else Path("runs") / args.expName
    train_pairs, val_pairs, files = _load_data(args, cfg.depth)
    if args.dsfn:
        corpus = describe_training_data([args.dsfn], [args.dsfn], key="/train_ns", val_key="/test_ns")
    else:
        corpus = describe_training_data(args.ld, args.vld or [], key=args.ld_key)
    path = train(cfg, train_pairs, val_pairs, out,
                 provenance={"files": files, "expName": args.expName, "training_data": corpus},
                 progress=not args.quiet)
    print(f"trained {path}")
    return 0
