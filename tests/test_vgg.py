"""Tests of tomogan_core.vgg: torchvision-compatible layout, loading, and offline fallback."""

from pathlib import Path

import pytest
import torch

from tomogan_core.vgg import PUBLISHED_LAYER_INDEX, VGGFeatures, load_vgg19

# torchvision's vgg19().features: conv indices of configuration "E"
CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
CONV_WIDTHS = [64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512]


def _small_batch(seed=0):
    return torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def random_vgg():
    return load_vgg19("random-init", seed=0)


def test_state_dict_has_torchvision_keys_and_shapes(random_vgg):
    module, _ = random_vgg
    state = module.state_dict()
    expected = [f"features.{i}.{p}" for i in CONV_INDICES for p in ("weight", "bias")]
    assert list(state) == expected  # 16 conv layers, nothing else (mean/std are not saved)
    assert len(module.features) == 37 and PUBLISHED_LAYER_INDEX == 36
    assert isinstance(module.features[36], torch.nn.MaxPool2d)
    assert state["features.0.weight"].shape == (64, 3, 3, 3)
    assert state["features.34.weight"].shape == (512, 512, 3, 3)
    in_ch = 3
    for index, width in zip(CONV_INDICES, CONV_WIDTHS):
        assert state[f"features.{index}.weight"].shape == (width, in_ch, 3, 3)
        assert state[f"features.{index}.bias"].shape == (width,)
        in_ch = width


def test_frozen_and_eval(random_vgg):
    module, label = random_vgg
    assert label == "random-init" and module.weights_label == "random-init"
    assert not any(p.requires_grad for p in module.parameters())
    module.train()
    assert not module.training


def test_published_layer_output_shape_and_grad_to_input(random_vgg):
    module, _ = random_vgg
    x = _small_batch().requires_grad_(True)
    y = module(x)
    assert y.shape == (1, 512, 1, 1)  # block5_pool: H/32
    y.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_layer_index_stops_early():
    module, _ = load_vgg19("random-init", layer_index=3)  # after conv2 + ReLU of block 1
    assert module(_small_batch()).shape == (1, 64, 32, 32)
    with pytest.raises(ValueError, match="layer_index"):
        VGGFeatures(layer_index=37)


def test_saved_state_dict_loads_into_another_instance(tmp_path, random_vgg):
    module, _ = random_vgg
    path = tmp_path / "vgg19-test.pth"
    # a torchvision file also holds classifier.* tensors: they must be ignored
    state = dict(module.state_dict())
    state["classifier.0.weight"] = torch.zeros(2, 2)
    torch.save(state, path)
    other, label = load_vgg19(path)
    assert label.startswith("file:vgg19-test.pth:sha256=")
    x = _small_batch(1)
    assert torch.equal(module(x), other(x))
    differently_seeded, _ = load_vgg19("random-init", seed=1)
    assert not torch.equal(module(x), differently_seeded(x))


def test_random_init_is_seeded():
    a, _ = load_vgg19("random-init", seed=3, layer_index=1)
    b, _ = load_vgg19("random-init", seed=3, layer_index=1)
    assert torch.equal(a.features[0].weight, b.features[0].weight)


def test_imagenet_offline_is_an_error_not_a_silent_random_init(tmp_path, monkeypatch):
    """Asked for ImageNet weights it cannot have, the loader says so: falling back to random weights would give
    one config two results, depending on the machine."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(ValueError, match="vgg19-dcbb9e9d.pth: VGG19 ImageNet weights not in the torch hub cache"):
        load_vgg19("imagenet", timeout_s=2.0)


def test_imagenet_without_download_does_not_touch_network(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def no_network(*args, **kwargs):
        raise AssertionError("download attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    with pytest.raises(ValueError, match="random-init"):
        load_vgg19("imagenet", download=False)


def test_imagenet_uses_hub_cache(tmp_path, monkeypatch, random_vgg):
    module, _ = random_vgg
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(module.state_dict(), checkpoints / "vgg19-dcbb9e9d.pth")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    loaded, label = load_vgg19("imagenet")
    # not the real ImageNet file, so its hash does not match torchvision's and the label says so
    assert label.startswith("file:vgg19-dcbb9e9d.pth:sha256=")
    x = _small_batch(2)
    assert torch.equal(loaded(x), module(x))


def test_the_default_is_random_init_everywhere():
    """One layer per default: the loader, TrainConfig and the schema agree on an explicit random-init."""
    import inspect

    import yaml

    from tomogan_core.train import TrainConfig

    schema = yaml.safe_load(open(Path(__file__).resolve().parents[1] / "config" / "config.schema.yaml"))
    train = schema["properties"]["tomogan"]["properties"]["train"]["properties"]
    assert inspect.signature(load_vgg19).parameters["weights"].default == "random-init"
    assert TrainConfig().vgg_weights == train["vgg_weights"]["default"] == "random-init"


def test_bad_paths_name_the_path(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(ValueError, match=f"{missing}: no such file"):
        load_vgg19(missing)
    text = tmp_path / "text.pth"
    text.write_text("hello")
    with pytest.raises(ValueError, match=f"{text}: not a PyTorch state dict"):
        load_vgg19(text)
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(3, 3)}, wrong)
    with pytest.raises(ValueError, match=f"{wrong}: not a VGG19 state dict"):
        load_vgg19(wrong)
    tensor = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(ValueError, match=f"{tensor}: not a VGG19 state dict"):
        load_vgg19(tensor)


def test_rejects_non_grayscale(random_vgg):
    module, _ = random_vgg
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        module(torch.rand(1, 3, 32, 32))
