"""Train TomoGAN: the generator against a WGAN-GP (or cross-entropy) critic, with MSE and VGG terms.

A step is the release's: ``itg`` generator updates, then ``itd`` critic updates, each on fresh random
patches. ``OUT/checkpoint.pt``, written atomically every ``ckpt_every`` steps, holds all a run needs to
continue: running the same command again after a kill continues from there and ends with the same
weights as an uninterrupted run (on the same device). At the end ``OUT/model.pt`` holds the generator
chosen on the validation slices, its normalisation and the run's provenance (from the command line also
the training corpus, :func:`describe_training_data`); ``tomogan-export`` serves it. A run may start from
another model's generator instead of its seed's (``init``, ``--init PATH``: a fine-tune, :func:`load_init`);
a resumed run keeps that record and refuses a checkpoint of another ``init``.

:func:`train` reads top to bottom as its steps (:mod:`~tomogan_core.train.loop`); the settings are
:mod:`~tomogan_core.train.config`'s, the command line :mod:`~tomogan_core.train.cli`'s, and the file
formats and the loop that applies a generator to a volume :mod:`tomogan_core.modelfile`'s.

Command line (the release's flag names, plus ours; ``-h`` lists all)::

    python train.py -ld low.h5 [low2.h5 ...] -nd normal.h5 [normal2.h5 ...] -o runs/foam -depth 3
    python train.py -dsfn release-layout.h5 -expName demo
    tomogan-train ...   (the same, as an installed command)
"""

from tomogan_core.data import describe_training_data
from tomogan_core.modelfile import load_model, resolve_device
from tomogan_core.train.cli import build_parser, main, parse_bool
from tomogan_core.train.config import GAN_LOSSES, TrainConfig
from tomogan_core.train.loop import (Run, build, keep_best, load_init, log_and_validate, net_pair, resume, train,
                                     train_step, validate, validate_and_keep_best, write_checkpoint, write_final,
                                     write_model)

__all__ = ["GAN_LOSSES", "TrainConfig", "Run", "train", "build", "resume", "train_step", "validate", "keep_best",
           "validate_and_keep_best", "log_and_validate", "write_checkpoint", "write_model", "write_final", "load_init",
           "net_pair", "load_model", "resolve_device", "parse_bool", "build_parser", "describe_training_data", "main"]
