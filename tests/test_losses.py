"""Tests of tomogan_core.losses against hand-computed cases."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from tomogan_core.losses import (
    critic_loss_bce,
    critic_loss_wgan,
    generator_adv_loss_bce,
    generator_adv_loss_wgan,
    generator_loss,
    gradient_penalty,
    perceptual_loss,
)

SHAPE = (4, 1, 8, 8)


def _pair(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(SHAPE, generator=gen), torch.rand(SHAPE, generator=gen)


class LinearCritic(nn.Module):
    """D(x) = sum(w * x) per sample: its gradient is w everywhere."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x):
        return (self.w * x).flatten(1).sum(1, keepdim=True)  # (B, 1)


def test_gradient_penalty_linear_critic_is_exact():
    w = torch.full(SHAPE[1:], 0.1)
    real, fake = _pair()
    penalty = gradient_penalty(LinearCritic(w), real, fake, generator=torch.Generator().manual_seed(1))
    expected = (w.norm() - 1) ** 2  # ||w|| = 0.1 * 8 = 0.8 -> 0.04, whatever eps is
    torch.testing.assert_close(penalty, expected)
    assert abs(penalty.item() - 0.04) < 1e-6


def test_gradient_penalty_quadratic_critic_uses_interpolates():
    # D(x) = 0.5 * sum(x^2): grad at x_hat is x_hat itself
    real, fake = _pair()
    penalty = gradient_penalty(
        lambda x: 0.5 * (x**2).flatten(1).sum(1, keepdim=True), real, fake, generator=torch.Generator().manual_seed(7)
    )
    eps = torch.rand((SHAPE[0], 1, 1, 1), generator=torch.Generator().manual_seed(7))
    x_hat = eps * real + (1 - eps) * fake
    expected = ((x_hat.flatten(1).norm(dim=1) - 1) ** 2).mean()
    torch.testing.assert_close(penalty, expected)
    # a wrong interpolation (eps on fake instead of real) would give another value
    wrong = (((eps * fake + (1 - eps) * real).flatten(1).norm(dim=1) - 1) ** 2).mean()
    assert abs(penalty.item() - wrong.item()) > 1e-3


def test_gradient_penalty_same_seed_same_value_and_trains_critic():
    real, fake = _pair()
    critic = LinearCritic(torch.randn(SHAPE[1:], generator=torch.Generator().manual_seed(3)))
    quad = lambda x: critic(x) ** 2  # noqa: E731  (gradient depends on x_hat, so on eps)
    a = gradient_penalty(quad, real, fake, generator=torch.Generator().manual_seed(5))
    b = gradient_penalty(quad, real, fake, generator=torch.Generator().manual_seed(5))
    c = gradient_penalty(quad, real, fake, generator=torch.Generator().manual_seed(6))
    assert a.item() == b.item() and a.item() != c.item()
    a.backward()
    assert critic.w.grad is not None and critic.w.grad.abs().sum() > 0


def test_gradient_penalty_does_not_reach_generator():
    real, fake = _pair()
    fake = fake.clone().requires_grad_(True)
    critic = LinearCritic(torch.full(SHAPE[1:], 0.3))
    gradient_penalty(lambda x: critic(x) ** 2, real, fake).backward()
    assert fake.grad is None


def test_wgan_loss_signs():
    d_real, d_fake = torch.tensor([[3.0], [5.0]]), torch.tensor([[-1.0], [1.0]])
    assert critic_loss_wgan(d_real, d_fake).item() == pytest.approx(0.0 - 4.0)
    assert generator_adv_loss_wgan(d_fake).item() == pytest.approx(-0.0)
    assert generator_adv_loss_wgan(torch.tensor([[2.0]])).item() == pytest.approx(-2.0)
    # a critic that scores real higher has a lower loss
    assert critic_loss_wgan(d_real, d_fake) < critic_loss_wgan(d_fake, d_real)


def test_bce_losses_match_formula():
    real_logits, fake_logits = torch.tensor([[2.0], [-0.5]]), torch.tensor([[0.3], [-1.0]])
    expected_critic = -torch.log(torch.sigmoid(real_logits)).mean() - torch.log(1 - torch.sigmoid(fake_logits)).mean()
    torch.testing.assert_close(critic_loss_bce(real_logits, fake_logits), expected_critic)
    torch.testing.assert_close(generator_adv_loss_bce(fake_logits), -torch.log(torch.sigmoid(fake_logits)).mean())


class TinyFeatures(nn.Module):
    """A frozen conv standing in for VGG (same interface: (B, 1, H, W) -> features)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(4, 1, 3, 3, generator=torch.Generator().manual_seed(2)))
        self.requires_grad_(False)

    def forward(self, x):
        return F.relu(self.conv(x))


def test_perceptual_loss_grad_flag():
    vgg = TinyFeatures()
    real, source = _pair()
    results = {}
    for grad in (True, False):
        x = source.clone().requires_grad_(True)
        fake = 2.0 * x  # stands for the generator
        loss = perceptual_loss(vgg, fake, real, grad=grad)
        if loss.requires_grad:
            loss.backward()
        results[grad] = (loss.item(), x.grad)
    assert results[True][0] == pytest.approx(results[False][0], rel=1e-6)
    assert results[True][1] is not None and results[True][1].abs().sum() > 0
    assert results[False][1] is None or results[False][1].abs().sum() == 0
    torch.testing.assert_close(
        torch.tensor(results[True][0]), F.mse_loss(vgg(2.0 * source), vgg(real)), rtol=1e-6, atol=0
    )


class CountingModule(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


def test_generator_loss_combines_terms():
    real, fake = _pair()
    critic = CountingModule(LinearCritic(torch.full(SHAPE[1:], 0.1)))
    vgg = CountingModule(TinyFeatures())
    total, parts = generator_loss(
        fake, real, critic=critic, vgg=vgg, lambda_adv=20.0, lambda_mse=0.5, lambda_vgg=2.0
    )
    adv = -critic.inner(fake).mean()
    mse = F.mse_loss(fake, real)
    perc = F.mse_loss(vgg.inner(fake), vgg.inner(real))
    torch.testing.assert_close(total, 20.0 * adv + 0.5 * mse + 2.0 * perc)
    assert set(parts) == {"adv", "mse", "perceptual", "total"}
    torch.testing.assert_close(parts["mse"], mse)


def test_generator_loss_bce_kind():
    real, fake = _pair()
    critic = LinearCritic(torch.full(SHAPE[1:], 0.1))
    total, parts = generator_loss(fake, real, critic=critic, lambda_adv=1.0, lambda_mse=0.0, lambda_vgg=0.0, adversarial="bce")
    torch.testing.assert_close(total, generator_adv_loss_bce(critic(fake)))


def test_zero_lambdas_skip_terms():
    real, fake = _pair()
    critic = CountingModule(LinearCritic(torch.full(SHAPE[1:], 0.1)))
    vgg = CountingModule(TinyFeatures())
    total, parts = generator_loss(fake, real, critic=critic, vgg=vgg, lambda_adv=0.0, lambda_mse=1.0, lambda_vgg=0.0)
    assert critic.calls == 0 and vgg.calls == 0
    assert set(parts) == {"mse", "total"}
    torch.testing.assert_close(total, F.mse_loss(fake, real))
    # with the term off, the network is not needed at all
    total, parts = generator_loss(fake, real, lambda_adv=0.0, lambda_mse=1.0, lambda_vgg=0.0)
    assert set(parts) == {"mse", "total"}


def test_generator_loss_needs_networks_for_active_terms():
    real, fake = _pair()
    with pytest.raises(ValueError, match="critic"):
        generator_loss(fake, real, lambda_adv=1.0, lambda_mse=0.0, lambda_vgg=0.0)
    with pytest.raises(ValueError, match="VGG"):
        generator_loss(fake, real, lambda_adv=0.0, lambda_mse=0.0, lambda_vgg=1.0)
    with pytest.raises(ValueError, match="adversarial"):
        generator_loss(fake, real, critic=lambda x: x, lambda_adv=1.0, lambda_mse=0.0, lambda_vgg=0.0, adversarial="ls")
