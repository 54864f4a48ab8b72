"""TomoGAN core: the published generator and critic, and (in submodules) what trains and serves them.

Liu et al., "TomoGAN: low-dose synchrotron x-ray tomography with generative adversarial networks:
discussion", JOSA A 37(3):422-434, 2020 (arXiv:1902.07582).

Submodules, imported on demand so that ``import tomogan_core`` stays light:

- :mod:`tomogan_core.model`: :class:`Generator`, :class:`Discriminator` and their configs.
- :mod:`tomogan_core.losses`: WGAN-GP, cross-entropy, MSE and VGG perceptual losses.
- :mod:`tomogan_core.vgg`: VGG19 features in plain PyTorch (torchvision-compatible weights).
- :mod:`tomogan_core.keras_import`: the authors' released ``TomoGAN.h5`` into :class:`Generator`.
- :mod:`tomogan_core.modelfile`: the trained and served model files, their loader and provenance, and
  :func:`denoise`, the one loop that applies a model to a volume.
- :mod:`tomogan_core.export`: writes the served format; ``tomogan-export``.
- :mod:`tomogan_core.data`: paired volumes, normalisation, random patches of d slices.
- :mod:`tomogan_core.train`: training with checkpoints and resume; ``tomogan-train``.
- :mod:`tomogan_core.distributed`: data-parallel training under ``torchrun``.
- :mod:`tomogan_core.infer`: ``tomogan-infer`` (slabs, the release's file layout, grey-level mapping).
- :mod:`tomogan_core.noise2inverse`: self-supervised training and inference from angle subsets; ``tomogan-n2i``.
"""

_LAZY = {"Generator": "model", "GeneratorConfig": "model", "Discriminator": "model", "DiscriminatorConfig": "model"}


def __getattr__(name):
    # torch is imported on first use, so that planning code (study) stays light
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def denoise(volume, model, **kwargs):
    """Enhance a low-dose volume ``(slices, rows, cols)``: :func:`tomogan_core.modelfile.denoise`."""
    from .modelfile import denoise as _denoise

    return _denoise(volume, model, **kwargs)


__all__ = ["Generator", "GeneratorConfig", "Discriminator", "DiscriminatorConfig", "denoise"]
