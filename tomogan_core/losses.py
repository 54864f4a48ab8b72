"""TomoGAN's training losses: adversarial (WGAN-GP or cross-entropy), pixel MSE, VGG perceptual.

The generator minimises ``lambda_adv * adversarial + lambda_mse * MSE + lambda_vgg * perceptual`` [1]_.
The paper trains the critic as a Wasserstein GAN with gradient penalty [2]_; the public release trains
it with the standard binary cross-entropy GAN loss. Both are here. All loss weights come from the
caller's config; none has a default in this module.

References
----------
.. [1] Z. Liu et al., "TomoGAN: low-dose synchrotron x-ray tomography with generative adversarial
   networks: discussion", JOSA A 37(3):422-434, 2020. arXiv:1902.07582.
.. [2] I. Gulrajani, F. Ahmed, M. Arjovsky, V. Dumoulin, A. Courville, "Improved training of
   Wasserstein GANs", NeurIPS 2017. arXiv:1704.00028.
"""

from __future__ import annotations

import logging
from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn.functional as F

__all__ = [
    "ADVERSARIAL_KINDS",
    "gradient_penalty",
    "critic_loss_wgan",
    "generator_adv_loss_wgan",
    "critic_loss_bce",
    "generator_adv_loss_bce",
    "perceptual_loss",
    "generator_loss",
]

logger = logging.getLogger(__name__)

ADVERSARIAL_KINDS = ("wgan", "bce")

Critic = Callable[[torch.Tensor], torch.Tensor]


def gradient_penalty(
    critic: Critic,
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """WGAN-GP gradient penalty, without its weight.

    .. math:: \\mathrm{GP} = \\frac{1}{B}\\sum_b \\left(\\lVert \\nabla_x D(\\hat x_b) \\rVert_2 - 1\\right)^2,
       \\qquad \\hat x_b = \\epsilon_b x^{real}_b + (1 - \\epsilon_b) x^{fake}_b,\\ \\epsilon_b \\sim U[0, 1].

    Parameters
    ----------
    real, fake : Tensor, shape (B, C, H, W)
        Ground-truth and generated patches; both are detached (the penalty trains the critic only).
    generator : torch.Generator, optional
        Random source of ``eps`` (one value per sample).

    Returns
    -------
    Tensor, scalar
        Differentiable with respect to the critic's parameters. Multiply it by ``lambda_gp`` (10 in [2]_)
        and add it to the critic loss.
    """
    if real.shape != fake.shape:
        raise ValueError(f"real and fake shapes differ: {list(real.shape)} vs {list(fake.shape)}")
    eps_shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    eps = torch.rand(eps_shape, generator=generator, device=real.device, dtype=real.dtype)  # (B, 1, 1, 1)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)  # (B, C, H, W)
    scores = critic(x_hat)  # (B, 1)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)  # (B, C, H, W)
    grad_norm = grad.flatten(1).norm(2, dim=1)  # (B,)
    return ((grad_norm - 1) ** 2).mean()


def critic_loss_wgan(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Wasserstein critic loss ``mean(D(fake)) - mean(D(real))`` (to minimise; add the gradient penalty)."""
    return d_fake.mean() - d_real.mean()


def generator_adv_loss_wgan(d_fake: torch.Tensor) -> torch.Tensor:
    """Wasserstein generator loss ``-mean(D(fake))``."""
    return -d_fake.mean()


def critic_loss_bce(d_real_logits: torch.Tensor, d_fake_logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy discriminator loss of the release: real labelled 1, fake labelled 0 (logits in)."""
    real = F.binary_cross_entropy_with_logits(d_real_logits, torch.ones_like(d_real_logits))
    fake = F.binary_cross_entropy_with_logits(d_fake_logits, torch.zeros_like(d_fake_logits))
    return real + fake


def generator_adv_loss_bce(d_fake_logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy (non-saturating) generator loss of the release: fake labelled 1 (logits in)."""
    return F.binary_cross_entropy_with_logits(d_fake_logits, torch.ones_like(d_fake_logits))


def perceptual_loss(
    vgg: Critic, fake: torch.Tensor, real: torch.Tensor, *, grad: bool = True
) -> torch.Tensor:
    """MSE between VGG features (:class:`tomogan_core.vgg.VGGFeatures`) of the generated and the target
    images, (B, 1, H, W) both, already mapped to the extractor's [0, 1] input range.

    ``grad=False`` computes ``fake``'s features without autograd, reproducing the release's defect
    (``predict()`` outside the tape): same value, but no gradient reaches the generator.
    """
    with torch.no_grad():
        target = vgg(real)  # (B, C', H', W')
    if grad:
        features = vgg(fake)  # (B, C', H', W')
    else:
        with torch.no_grad():
            features = vgg(fake)  # (B, C', H', W'), detached
    return F.mse_loss(features, target)


def generator_loss(
    fake: torch.Tensor,
    real: torch.Tensor,
    *,
    lambda_adv: float,
    lambda_mse: float,
    lambda_vgg: float,
    critic: Optional[Critic] = None,
    vgg: Optional[Critic] = None,
    adversarial: str = "wgan",
    perceptual_grad: bool = True,
    vgg_input: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """TomoGAN's generator objective ``lambda_adv * adv + lambda_mse * mse + lambda_vgg * perceptual``.

    A term whose weight is 0 is not computed at all (its network may then be None).

    Parameters
    ----------
    fake, real : Tensor, shape (B, 1, H, W)
        Generator output and target, on the training scale.
    lambda_adv, lambda_mse, lambda_vgg : float
        Loss weights (release: 20, 0.5, 2), from the config.
    adversarial : {"wgan", "bce"}, default "wgan"
        Adversarial loss: Wasserstein (paper) or cross-entropy (release).
    perceptual_grad : bool, default True
        :func:`perceptual_loss`'s ``grad``.
    vgg_input : callable, optional
        Maps the training scale to the extractor's [0, 1] input (applied to both images); identity if None.

    Returns
    -------
    total : Tensor, scalar
        The weighted sum, to backpropagate.
    parts : dict of str to Tensor
        Detached unweighted terms that were computed (``"adv"``, ``"mse"``, ``"perceptual"``) and ``"total"``.
    """
    if adversarial not in ADVERSARIAL_KINDS:
        raise ValueError(f"adversarial must be one of {ADVERSARIAL_KINDS}, got {adversarial!r}")
    for name, value in (("lambda_adv", lambda_adv), ("lambda_mse", lambda_mse), ("lambda_vgg", lambda_vgg)):
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    if lambda_adv > 0 and critic is None:
        raise ValueError("lambda_adv > 0 needs a critic")
    if lambda_vgg > 0 and vgg is None:
        raise ValueError("lambda_vgg > 0 needs a VGG feature extractor")

    total = fake.new_zeros(())
    parts: Dict[str, torch.Tensor] = {}
    if lambda_adv > 0:
        scores = critic(fake)  # (B, 1)
        adv = generator_adv_loss_wgan(scores) if adversarial == "wgan" else generator_adv_loss_bce(scores)
        total = total + lambda_adv * adv
        parts["adv"] = adv.detach()
    if lambda_mse > 0:
        mse = F.mse_loss(fake, real)
        total = total + lambda_mse * mse
        parts["mse"] = mse.detach()
    if lambda_vgg > 0:
        to_vgg = vgg_input if vgg_input is not None else (lambda t: t)
        perc = perceptual_loss(vgg, to_vgg(fake), to_vgg(real), grad=perceptual_grad)
        total = total + lambda_vgg * perc
        parts["perceptual"] = perc.detach()
    parts["total"] = total.detach()
    return total, parts
