"""Tests of tomogan_core.model: the published layer list, shapes, padding and config checks."""

import pytest
import torch
import torch.nn.functional as F

from tomogan_core.model import (
    Discriminator,
    DiscriminatorConfig,
    Generator,
    GeneratorConfig,
    pad_to_multiple,
)

torch.manual_seed(0)  # weight init and random inputs below


@pytest.mark.parametrize(
    ("in_slices", "upsample", "expected"),
    [
        (1, "nearest", 694_897),  # the released TomoGAN.h5
        (1, "bilinear", 694_897),
        (3, "bilinear", 694_913),  # the paper's d = 3
        (3, "nearest", 694_913),
    ],
)
def test_generator_parameter_count(in_slices, upsample, expected):
    model = Generator(GeneratorConfig(in_slices=in_slices, upsample=upsample))
    assert model.get_num_params() == expected


def test_generator_transpose_adds_three_transposed_convs():
    plain = Generator(GeneratorConfig(in_slices=1, upsample="nearest")).get_num_params()
    transpose = Generator(GeneratorConfig(in_slices=1, upsample="transpose")).get_num_params()
    # 4x4 transposed convs that keep 128, 64 and 32 channels, with biases
    assert transpose - plain == sum(c * c * 16 + c for c in (128, 64, 32))


def test_generator_layer_shapes_follow_the_release():
    model = Generator(GeneratorConfig(in_slices=1))
    convs = [(name, tuple(m.weight.shape)) for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    assert [shape for _, shape in convs] == [
        (8, 1, 1, 1),
        (32, 8, 3, 3), (32, 32, 3, 3),
        (64, 32, 3, 3), (64, 64, 3, 3),
        (128, 64, 3, 3), (128, 128, 3, 3),
        (128, 128, 3, 3),
        (64, 256, 3, 3), (64, 64, 3, 3),
        (32, 128, 3, 3), (32, 32, 3, 3),
        (32, 64, 3, 3), (32, 32, 3, 3),
        (16, 32, 1, 1),
        (1, 16, 1, 1),
    ]  # fmt: skip


@pytest.mark.parametrize("in_slices", [1, 3, 5, 7])
@pytest.mark.parametrize("upsample", ["bilinear", "nearest", "transpose"])
def test_generator_any_size_output_shape(in_slices, upsample):
    model = Generator(GeneratorConfig(in_slices=in_slices, upsample=upsample)).eval()
    x = torch.rand(2, in_slices, 37, 50)
    with torch.no_grad():
        y = model.forward_any_size(x)
    assert y.shape == (2, 1, 37, 50)
    assert torch.isfinite(y).all()


def test_forward_any_size_equals_forward_on_multiples_of_8():
    model = Generator(GeneratorConfig(in_slices=3)).eval()
    x = torch.rand(1, 3, 40, 24)
    with torch.no_grad():
        assert torch.equal(model.forward_any_size(x), model(x))


def test_forward_any_size_is_forward_on_the_reflect_padded_input():
    model = Generator(GeneratorConfig(in_slices=1)).eval()
    x = torch.rand(1, 1, 21, 30)
    padded = F.pad(x, [0, 2, 0, 3], mode="reflect")  # 21 -> 24, 30 -> 32
    with torch.no_grad():
        torch.testing.assert_close(model.forward_any_size(x), model(padded)[..., :21, :30], rtol=0, atol=0)


def test_pad_to_multiple_tiny_input_falls_back_to_replicate():
    x = torch.rand(1, 1, 3, 2)
    padded, h, w = pad_to_multiple(x, 8)
    assert padded.shape == (1, 1, 8, 8) and (h, w) == (3, 2)
    assert torch.equal(padded[..., :3, :2], x)


def test_generator_rejects_sizes_not_multiple_of_8_and_wrong_channels():
    model = Generator(GeneratorConfig(in_slices=3))
    with pytest.raises(ValueError, match="multiples of 8"):
        model(torch.rand(1, 3, 36, 40))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(1, 1, 32, 32))


def test_bilinear_upsampling_is_half_pixel_centred():
    # Keras UpSampling2D(bilinear) = tf.image.resize half-pixel: out[0] = in[0], out[1] = 0.75*in[0] + 0.25*in[1]
    model = Generator(GeneratorConfig(in_slices=1, upsample="bilinear"))
    x = torch.tensor([[[[0.0, 4.0]]]])
    y = model.up1(x)
    torch.testing.assert_close(y[0, 0, 0], torch.tensor([0.0, 1.0, 3.0, 4.0]))


def test_critic_output_and_flatten_size():
    critic = Discriminator(DiscriminatorConfig(patch_size=64))
    assert critic.flatten_size == 4 * (64 // 8) ** 2
    assert critic.fc1.in_features == 256
    y = critic(torch.rand(3, 1, 64, 64))
    assert y.shape == (3, 1)


def test_critic_strided_convs_pad_like_keras_same():
    # Keras 'same', stride 2, 3x3 on an even side: 0 rows/cols before, 1 after
    critic = Discriminator(DiscriminatorConfig(patch_size=16))
    x = torch.rand(2, 1, 16, 16)
    h = F.relu(critic.convs[0](F.pad(x, [1, 1, 1, 1])))  # stride 1: symmetric
    h = F.relu(F.conv2d(F.pad(h, [0, 1, 0, 1]), critic.convs[1].weight, critic.convs[1].bias, stride=2))
    h2 = F.relu(F.conv2d(h, critic.convs[2].weight, critic.convs[2].bias, padding=1))
    h3 = F.relu(F.conv2d(F.pad(h2, [0, 1, 0, 1]), critic.convs[3].weight, critic.convs[3].bias, stride=2))
    h4 = F.relu(F.conv2d(h3, critic.convs[4].weight, critic.convs[4].bias, padding=1))
    h5 = F.relu(F.conv2d(F.pad(h4, [0, 1, 0, 1]), critic.convs[5].weight, critic.convs[5].bias, stride=2))
    assert h5.shape == (2, 4, 2, 2)
    expected = critic.fc2(F.relu(critic.fc1(h5.flatten(1))))
    torch.testing.assert_close(critic(x), expected)


def test_critic_rejects_wrong_patch_size():
    critic = Discriminator(DiscriminatorConfig(patch_size=64))
    with pytest.raises(ValueError, match="64, 64"):
        critic(torch.rand(1, 1, 32, 32))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"in_slices": 0}, "positive integer"),
        ({"in_slices": 2}, "odd"),
        ({"in_slices": 3.0}, "positive integer"),
        ({"upsample": "bicubic"}, "upsample must be one of"),
    ],
)
def test_generator_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GeneratorConfig(**kwargs)


@pytest.mark.parametrize(("patch_size", "match"), [(100, "multiple of 8"), (4, ">= 8"), (0, ">= 8")])
def test_discriminator_config_validation(patch_size, match):
    with pytest.raises(ValueError, match=match):
        DiscriminatorConfig(patch_size=patch_size)


def test_default_configs_are_the_published_ones():
    assert GeneratorConfig() == GeneratorConfig(in_slices=3, upsample="bilinear")
    assert DiscriminatorConfig().patch_size == 256
