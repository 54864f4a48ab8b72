"""Train TomoGAN: the generator against a WGAN-GP (or cross-entropy) critic, with MSE and VGG terms.

One training step, as the public release does it: ``itg`` generator updates, then ``itd`` critic
updates, each on a fresh batch of random patches (:class:`tomogan_core.data.PatchSampler`).

Everything a run needs to continue lives in ``OUT/checkpoint.pt``, written atomically every
``ckpt_every`` steps: both networks and their optimisers (the critic's only when the loss has an
adversarial term; else None), the step, the sampler's and the penalty's random states, the loss
history and the best generator so far. Running the same command again after a kill
continues from there, and ends with the same weights as an uninterrupted run (on the same device).
At the end ``OUT/model.pt`` holds the generator chosen on the validation slices (highest PSNR in the
field of view), its normalisation and the run's provenance; ``tomogan-export`` serves it. From the command
line that provenance also records the training corpus (``training_data``, :func:`describe_training_data`:
each volume file's family, dose, geometry and seed, and their summary).

A run may start from another model's generator (``init``, ``--init PATH``: a ``model.pt``, a
``checkpoint.pt``'s best generator or a served ``.pt``; :func:`tomogan_core.modelfile.read_generator`)
instead of the random initialisation of its seed: a fine-tune. Its depth and upsampling must be the
run's. The model's provenance then records ``init`` (the path), ``init_model`` (what kind of file, its
step, normalisation and training data) and ``init_provenance`` (the provenance that file carries), and a
resumed run keeps them (they travel in its checkpoint) and refuses a checkpoint of another ``init``.

:func:`train` reads top to bottom as its steps: :func:`build` (normalisation, patch sampler, models,
optimisers, random streams, losses), :func:`resume` (from ``checkpoint.pt``), then per step
:func:`train_step`, :func:`log_and_validate` (a row of ``log.csv``; :func:`validate_and_keep_best`) and
:func:`write_checkpoint`, and at the end :func:`write_final` (``log.csv``, :func:`write_model`). What a
run updates lives in one :class:`Run`. The file formats, their loader and the loop that applies a
generator to a volume (which validation shares with ``tomogan-infer``) are :mod:`tomogan_core.modelfile`'s.

Command line (the release's flag names, plus ours; ``-h`` lists all)::

    python train.py -ld low.h5 [low2.h5 ...] -nd normal.h5 [normal2.h5 ...] -o runs/foam -depth 3
    python train.py -dsfn release-layout.h5 -expName demo
    tomogan-train ...   (the same, as an installed command)

The package: :mod:`~tomogan_core.train.config` (the settings), :mod:`~tomogan_core.train.loop` (the run and
its steps), :mod:`~tomogan_core.train.cli` (the command line).
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
