"""TomoGAN core: the published generator and critic, and (in submodules) what trains and serves them.

Liu et al., "TomoGAN: low-dose synchrotron x-ray tomography with generative adversarial networks:
discussion", JOSA A 37(3):422-434, 2020 (arXiv:1902.07582).

Submodules, imported on demand so that ``import tomogan_core`` stays light:

- :mod:`tomogan_core.model`: :class:`Generator`, :class:`Discriminator` and their configs.
- :mod:`tomogan_core.losses`: WGAN-GP, cross-entropy, MSE and VGG perceptual losses.
- :mod:`tomogan_core.vgg`: VGG19 features in plain PyTorch (torchvision-compatible weights).
- :mod:`tomogan_core.keras_import`: the authors' released ``TomoGAN.h5`` into :class:`Generator`.
- :mod:`tomogan_core.export`: the served format (TorchScript ``.pt`` + JSON card).
"""

from .model import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig

__all__ = ["Generator", "GeneratorConfig", "Discriminator", "DiscriminatorConfig"]
