"""Tests of actlab.lab.models: shapes, Table 8.1, width / depth, the paired-init property, errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from actlab.lab import models

RELU = lambda c: nn.ReLU()  # noqa: E731
PRELU_CHANNELWISE = lambda c: nn.PReLU(num_parameters=c)  # noqa: E731

# Table 8.1 of the chapter: the layers an activation follows, in order.
TABLE_8_1_ACTIVATED = ["conv1", "conv2_1", "conv2_2", "conv2_3", "conv2_4",
                       "conv3_1", "conv3_2", "conv3_3", "conv3_4", "conv3_5", "conv3_6", "fc1", "fc2"]


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def shared_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer not inside an activation module."""
    return {k: v for k, v in model.state_dict().items() if not k.split(".")[0].endswith(models.ACT_SUFFIX)}


# ---------------------------------------------------------------------------------------------
# shapes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, shape, width",
    [
        ("cnn", (1, 8, 8), 1.0),
        ("cnn", (3, 32, 32), 1.0),
        ("cnn", (1, 28, 28), 0.5),
        ("he14", (1, 8, 8), 0.125),
        ("he14", (3, 32, 32), 0.125),
        ("he14", (3, 4, 4), 0.125),
        ("he14", (3, 112, 96), 0.0625),
        ("mlp", (64,), 1.0),
        ("mlp", (1, 8, 8), 0.5),
        ("cnn1d", (1, 40), 1.0),
        ("cnn1d", (2, 7), 1.0),
    ],
)
def test_output_shape_and_backward(name, shape, width):
    torch.manual_seed(0)
    model = models.build(name, input_shape=shape, num_classes=7, act=PRELU_CHANNELWISE, width=width)
    out = model(torch.randn(3, *shape))
    assert out.shape == (3, 7)
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_default_for():
    assert models.default_for((1, 8, 8)) == "cnn"
    assert models.default_for((3, 32, 32)) == "cnn"
    assert models.default_for((1, 40)) == "cnn1d"
    assert models.default_for((64,)) == "mlp"
    expected = r"no default model for input shape \(1, 2, 3, 4\); valid: \(C,H,W\), \(C,L\) or \(D,\)"
    with pytest.raises(ValueError, match=expected):
        models.default_for((1, 2, 3, 4))
    assert models.names() == ["cnn", "he14", "mlp", "cnn1d"]


# ---------------------------------------------------------------------------------------------
# he14 = Table 8.1
# ---------------------------------------------------------------------------------------------


def test_he14_activation_layers_are_table_8_1():
    calls = []

    def act(c):
        calls.append(c)
        return nn.PReLU(c)

    model = models.build("he14", input_shape=(3, 32, 32), num_classes=10, act=act, width=0.125)
    named = models.activation_layers(model)
    assert [n for n, _ in named] == TABLE_8_1_ACTIVATED
    assert all(isinstance(m, nn.PReLU) for _, m in named)
    # the factory got the channel count of the layer each activation follows (d × 0.125)
    assert calls == [8] + [16] * 4 + [32] * 6 + [512, 512]
    assert [m.num_parameters for _, m in named] == calls


def test_he14_layers_at_full_width_on_imagenet_size_match_table_8_1():
    model = models.build("he14", input_shape=(3, 224, 224), num_classes=1000, act=RELU)
    layers = dict(model.named_children())
    conv1 = layers["conv1"]
    assert (conv1.kernel_size, conv1.stride, conv1.out_channels) == ((7, 7), (2, 2), 64)
    assert (layers["pool1"].kernel_size, layers["pool1"].stride) == (3, 3)
    for j in range(1, 5):
        c = layers[f"conv2_{j}"]
        assert (c.kernel_size, c.stride, c.out_channels) == ((2, 2), (1, 1), 128)
    assert (layers["pool2"].kernel_size, layers["pool2"].stride) == (2, 2)
    for j in range(1, 7):
        c = layers[f"conv3_{j}"]
        assert (c.kernel_size, c.stride, c.out_channels) == ((2, 2), (1, 1), 256)
    assert layers["spp"].levels == (6, 3, 2, 1)
    assert layers["fc1"].in_features == 256 * (36 + 9 + 4 + 1) and layers["fc1"].out_features == 4096
    assert (layers["fc2"].in_features, layers["fc2"].out_features) == (4096, 4096)
    assert (layers["fc3"].in_features, layers["fc3"].out_features) == (4096, 1000)
    # map sizes: 224 → conv1 112 → pool1 37 → stage 2 keeps 37 → pool2 18 → stage 3 keeps 18
    seen = {}
    hooks = [layers[k].register_forward_hook(lambda m, i, o, k=k: seen.__setitem__(k, tuple(o.shape[2:])))
             for k in ("conv1", "pool1", "conv2_4", "pool2", "conv3_6")]
    with torch.no_grad():
        model[:-7](torch.zeros(1, 3, 224, 224))  # up to conv3_6: skip the big fc layers
    for h in hooks:
        h.remove()
    assert seen == {"conv1": (112, 112), "pool1": (37, 37), "conv2_4": (37, 37), "pool2": (18, 18),
                    "conv3_6": (18, 18)}


def test_he14_small_input_stem():
    model = models.build("he14", input_shape=(3, 32, 32), num_classes=10, act=RELU, width=0.125)
    layers = dict(model.named_children())
    assert (layers["conv1"].kernel_size, layers["conv1"].stride) == ((3, 3), (1, 1))
    assert layers["pool1"].kernel_size == 2


def test_he14_too_small_says_the_minimum():
    with pytest.raises(ValueError, match=r"he14 needs inputs of at least 4x4, got 3x8"):
        models.build("he14", input_shape=(1, 3, 8), num_classes=10, act=RELU)


def test_spp_output_length_is_independent_of_input_size():
    spp = models.SpatialPyramidPool((6, 3, 2, 1))
    for side in (1, 2, 7, 18):
        assert spp(torch.randn(2, 5, side, side)).shape == (2, 5 * 50)
    x = torch.randn(1, 1, 6, 6)
    assert spp(x)[0, -1] == x.max()  # the 1×1 level is the global max


# ---------------------------------------------------------------------------------------------
# width and depth
# ---------------------------------------------------------------------------------------------


TYPICAL = [("he14", (3, 32, 32)), ("cnn", (3, 32, 32)), ("mlp", (64,)), ("cnn1d", (1, 40))]


@pytest.mark.parametrize("name, shape", TYPICAL)
def test_width_scales_parameter_count_about_quadratically(name, shape):
    small = n_params(models.build(name, input_shape=shape, num_classes=10, act=RELU, width=0.125))
    double = n_params(models.build(name, input_shape=shape, num_classes=10, act=RELU, width=0.25))
    assert 3.0 < double / small < 4.1  # ×4 for the weight matrices, less for biases and in/out layers


def test_width_scales_channel_counts():
    model = models.build("cnn", input_shape=(3, 32, 32), num_classes=10, act=RELU, width=0.5)
    layers = dict(model.named_children())
    assert [layers[f"conv{i}_1"].out_channels for i in (1, 2, 3)] == [16, 32, 64]
    assert layers["fc1"].out_features == 64


def test_depth():
    mlp = models.build("mlp", input_shape=(10,), num_classes=3, act=RELU, depth=3)
    assert [n for n, _ in models.activation_layers(mlp)] == ["fc1", "fc2", "fc3"]
    assert isinstance(mlp.fc4, nn.Linear) and mlp.fc4.out_features == 3
    assert len(models.activation_layers(models.build("mlp", input_shape=(10,), num_classes=3, act=RELU))) == 8
    cnn = models.build("cnn", input_shape=(1, 8, 8), num_classes=10, act=RELU, depth=3)
    assert [n for n, _ in models.activation_layers(cnn)] == [
        "conv1_1", "conv1_2", "conv1_3", "conv2_1", "conv2_2", "conv2_3", "fc1"]
    c1d = models.build("cnn1d", input_shape=(1, 40), num_classes=10, act=RELU, depth=1)
    assert [n for n, _ in models.activation_layers(c1d)] == ["conv1_1", "conv2_1", "conv3_1", "fc1"]


def test_activation_factory_gets_channel_or_feature_counts():
    calls = []
    models.build("mlp", input_shape=(5,), num_classes=2, act=lambda c: calls.append(c) or nn.ReLU(),
                 depth=2, width=0.5)
    assert calls == [128, 128]
    calls.clear()
    models.build("cnn1d", input_shape=(1, 40), num_classes=2, act=lambda c: calls.append(c) or nn.ReLU())
    assert calls == [32, 32, 64, 64, 128, 128, 128]


def test_activation_layers_on_a_wrapped_model_and_a_shared_module():
    shared = nn.ReLU()
    inner = models.build("mlp", input_shape=(4,), num_classes=2, act=lambda c: shared, depth=3)
    wrapper = nn.Sequential(inner)
    named = models.activation_layers(wrapper)
    assert [n for n, _ in named] == ["fc1", "fc2", "fc3"] and all(m is shared for _, m in named)


def test_batchnorm_option():
    plain = models.build("cnn", input_shape=(1, 8, 8), num_classes=10, act=RELU)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    assert plain.conv1_1.bias is not None
    bn = models.build("he14", input_shape=(1, 8, 8), num_classes=10, act=RELU, width=0.125, batchnorm=True)
    names = [n for n, _ in bn.named_children()]
    assert names[:3] == ["conv1", "conv1_bn", "conv1_act"]  # BN before the activation
    assert sum(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in bn.modules()) == 13
    assert bn.conv1.bias is None  # BN's shift makes the bias redundant
    assert bn.config["batchnorm"] is True and plain.config["batchnorm"] is False


# ---------------------------------------------------------------------------------------------
# the paired design and initialisation
# ---------------------------------------------------------------------------------------------


def rng_hungry(c: int) -> nn.Module:
    torch.randn(1000)  # a factory that draws from the global generator
    layer = nn.PReLU(c)
    nn.init.uniform_(layer.weight, 0.0, 0.5)
    return layer


@pytest.mark.parametrize("name, shape", [
    ("he14", (3, 32, 32)), ("cnn", (1, 8, 8)), ("mlp", (64,)), ("cnn1d", (1, 40))])
def test_shared_parameters_do_not_depend_on_the_activation(name, shape):
    kw = dict(input_shape=shape, num_classes=10, width=0.125 if name == "he14" else 0.5)
    torch.manual_seed(11)
    a = models.build(name, act=RELU, **kw)
    after_a = torch.randn(4)
    torch.manual_seed(11)
    b = models.build(name, act=rng_hungry, **kw)
    after_b = torch.randn(4)
    sa, sb = shared_state(a), shared_state(b)
    assert sa.keys() == sb.keys() and len(sa) > 0
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    # the factory's draws do not leak: what the caller draws next (e.g. batch order) is the same
    assert torch.equal(after_a, after_b)
    # and b really has activation parameters that a lacks
    assert n_params(b) > n_params(a)
    # a different seed gives different shared weights
    torch.manual_seed(12)
    c = models.build(name, act=RELU, **kw)
    assert not torch.equal(shared_state(c)[next(iter(sa))], sa[next(iter(sa))])


def test_kaiming_init_by_default_and_xavier_on_request():
    torch.manual_seed(0)
    model = models.build("mlp", input_shape=(1000,), num_classes=10, act=RELU, depth=2, width=4)  # 1024 wide
    fc1, fc2, fc3 = model.fc1, model.fc2, model.fc3
    assert abs(fc1.weight.std().item() - math.sqrt(2 / 1000)) < 0.02 * math.sqrt(2 / 1000)
    assert abs(fc2.weight.std().item() - math.sqrt(2 / 1024)) < 0.02 * math.sqrt(2 / 1024)
    assert abs(fc3.weight.std().item() - math.sqrt(1 / 1024)) < 0.1 * math.sqrt(1 / 1024)  # the classifier
    assert all(torch.all(m.bias == 0) for m in (fc1, fc2, fc3))
    xavier = models.build("mlp", input_shape=(1000,), num_classes=10, act=RELU, depth=2, width=4, init="xavier")
    assert abs(xavier.fc1.weight.std().item() - math.sqrt(2 / (1000 + 1024))) < 0.02 * math.sqrt(2 / 2024)


def test_activation_modules_are_left_as_the_factory_made_them():
    model = models.build("cnn", input_shape=(1, 8, 8), num_classes=10, act=lambda c: nn.PReLU(c, init=0.1))
    for _, m in models.activation_layers(model):
        assert torch.all(m.weight == 0.1)


def test_config_records_the_arguments():
    model = models.build("cnn1d", input_shape=(1, 40), num_classes=10, act=RELU, width=0.5)
    assert model.arch == "cnn1d"
    assert model.config == {"name": "cnn1d", "input_shape": [1, 40], "num_classes": 10, "width": 0.5,
                            "depth": 2, "batchnorm": False, "init": "kaiming"}


def test_cnn_learns_digits_quickly():
    """The small CNN is the lab's default: a few epochs on 8×8 digits must give > 93 %."""
    from actlab.lab import data

    ds = data.load("digits", val_fraction=0)
    torch.manual_seed(0)
    model = models.build("cnn", input_shape=ds.input_shape, num_classes=ds.num_classes, act=RELU)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(3):
        for idx in torch.randperm(len(ds.y_train)).split(64):
            loss = nn.functional.cross_entropy(model(ds.x_train[idx]), ds.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        acc = (model(ds.x_test).argmax(1) == ds.y_test).float().mean().item()
    assert acc > 0.93


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(name="resnet"), r"unknown model 'resnet'; valid: cnn, he14, mlp, cnn1d"),
        (dict(width=0), r"invalid width=0; valid: a finite number > 0"),
        (dict(width=-1.0), r"invalid width=-1\.0"),
        (dict(width=float("nan")), r"invalid width=nan"),
        (dict(width=True), r"invalid width=True"),
        (dict(depth=0), r"invalid depth=0; valid: None or an int >= 1"),
        (dict(depth=2.0), r"invalid depth=2\.0"),
        (dict(name="he14", depth=3), r"invalid depth=3 for he14; valid: None \(Table 8\.1 fixes its 14 layers\)"),
        (dict(num_classes=0), r"invalid num_classes=0; valid: an int >= 1"),
        (dict(init="orthogonal"), r"invalid init='orthogonal'; valid: kaiming, xavier"),
        (dict(input_shape=(40,)), r"cnn needs \(C, H, W\) images, got input shape \(40,\); for \(C, L\) use cnn1d"),
        (dict(name="cnn1d", input_shape=(1, 8, 8)), r"cnn1d needs \(C, L\) signals"),
        (dict(name="he14", input_shape=(1, 40)), r"he14 needs \(C, H, W\) images"),
        (dict(input_shape=(1, 0, 8)), r"invalid input_shape=\(1, 0, 8\)"),
    ],
)
def test_build_errors(kwargs, message):
    args = dict(name="cnn", input_shape=(1, 8, 8), num_classes=10, act=RELU) | kwargs
    name = args.pop("name")
    with pytest.raises(ValueError, match=message):
        models.build(name, **args)


def test_bad_factory_is_a_type_error():
    with pytest.raises(TypeError, match=r"act must be a factory: channels -> nn\.Module .*got ReLU"):
        models.build("cnn", input_shape=(1, 8, 8), num_classes=10, act=nn.ReLU())  # an instance, not a factory
    with pytest.raises(TypeError, match=r"act\(32\) returned builtin_function_or_method; an nn\.Module is needed"):
        models.build("cnn", input_shape=(1, 8, 8), num_classes=10, act=lambda c: torch.relu)
