"""The public entry points: names, get, layer, swap, param_groups."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

import actlab
from actlab import catalog, layers, registry


def test_names_default_to_the_chapters_seven_and_every_adds_the_modern_four():
    chapter = [e.name for e in catalog.CHAPTER_ENTRIES]
    assert actlab.names() == registry.names() == chapter and len(chapter) == 7
    assert actlab.names("modern") == [e.name for e in catalog.MODERN_ENTRIES]
    assert actlab.names("every") == chapter + actlab.names("modern")
    assert registry.select(["all", "relu", "modern"]) == actlab.names("every")
    with pytest.raises(ValueError, match="unknown group 'chapters'; valid: chapter, modern, every"):
        registry.names("chapters")


@pytest.mark.parametrize("e", registry.entries(), ids=lambda e: e.name)
def test_every_entry_resolves_to_its_reference_and_layer_classes(e):
    assert type(actlab.get(e.name)) is e.reference and issubclass(e.reference, actlab.reference.Reference)
    assert type(actlab.layer(e.name)) is e.layer and issubclass(e.layer, layers.Activation)
    assert actlab.layer(e.name).name == e.name == actlab.get(e.name).name
    for alias in e.aliases:
        assert type(actlab.layer(alias.upper().replace("_", "-"))) is e.layer


@pytest.mark.parametrize("e", registry.entries(), ids=lambda e: e.name)
def test_defaults_are_written_once_the_classes_signatures_agree_with_the_registry(e):
    ref_sig = inspect.signature(e.reference).parameters
    layer_sig = inspect.signature(e.layer).parameters
    for h in e.hparams:
        assert layer_sig[h.name].default == h.default, (e.name, h.name)
        assert ref_sig[h.name].default == h.default, (e.name, h.name)
    _, filled = registry.resolve(e.name)
    layer = actlab.layer(e.name)
    for name, value in filled.items():
        assert getattr(layer, name) == value and actlab.get(e.name).hparams[name] == value


def test_hparams_from_strings_are_converted_and_checked():
    assert actlab.layer("leaky_relu", negative_slope="0.1").negative_slope == 0.1
    assert actlab.layer("prelu", num_parameters="8").weight.shape == (8,)


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 6, 3), nn.BatchNorm2d(6), nn.GELU())
        self.head = nn.ModuleDict({"fc": nn.Linear(6 * 4 * 4, 5), "act": nn.Tanh()})
        self.out = nn.Linear(5, 3)

    def forward(self, x):
        x = self.features(x).flatten(1)
        return self.out(self.head["act"](self.head["fc"](x)))


def _acts(model):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, layers.Activation)]


def test_swap_replaces_every_activation_in_place_and_keeps_outputs_shaped():
    model = SmallCNN()
    x = torch.randn(2, 1, 8, 8)
    assert actlab.swap(model, "elu", alpha=0.5) is model
    acts = _acts(model)
    assert [n for n, _ in acts] == ["features.1", "features.4", "head.act"]
    assert all(isinstance(m, layers.ELU) and m.alpha == 0.5 for _, m in acts)
    assert model(x).shape == (2, 3)
    actlab.swap(model, "relu")  # actlab's own layers are swapped too
    assert all(isinstance(m, layers.ReLU) for _, m in _acts(model))


def test_swap_channelwise_prelu_infers_channels_from_preceding_layers():
    model = actlab.swap(SmallCNN(), "prelu", num_parameters="channel")
    widths = {n: (m.num_parameters, m.channel_axis) for n, m in _acts(model)}
    assert widths == {"features.1": (4, 1), "features.4": (6, 1), "head.act": (5, -1)}
    model(torch.randn(2, 1, 8, 8)).sum().backward()
    assert all(m.weight.grad is not None for _, m in _acts(model))


def test_swap_channelwise_prelu_from_an_example_input():
    model = nn.Sequential(nn.Identity(), nn.ReLU(), nn.Flatten(), nn.ReLU())
    actlab.swap(model, "prelu", num_parameters="channel", example_input=torch.randn(2, 3, 4))
    assert model[1].num_parameters == 3 and model[3].num_parameters == 12


def test_swap_says_where_it_cannot_infer_channels():
    model = nn.Sequential(nn.ReLU(), nn.Linear(3, 3))
    with pytest.raises(ValueError, match=r"cannot infer the channel count of '0'"):
        actlab.swap(model, "prelu", num_parameters="channel")


def test_swap_errors():
    with pytest.raises(ValueError, match="no activation modules"):
        actlab.swap(nn.Linear(2, 2), "relu")
    with pytest.raises(ValueError, match="unknown activation 'softsign'"):
        actlab.swap(SmallCNN(), "softsign")
    with pytest.raises(ValueError, match="'channel' is for a per-channel hyper-parameter; valid: prelu.num_parameters"):
        actlab.swap(SmallCNN(), "elu", num_parameters="channel")
    with pytest.raises(ValueError, match="invalid alpha"):
        actlab.swap(SmallCNN(), "elu", alpha=-2)


def test_swap_keeps_the_models_dtype_for_learned_slopes():
    model = actlab.swap(SmallCNN().double(), "prelu")
    assert all(m.weight.dtype == torch.float64 for _, m in _acts(model))


def test_param_groups_exclude_prelu_slopes_from_weight_decay():
    model = actlab.swap(SmallCNN(), "prelu", num_parameters="channel")
    model.features[1] = nn.PReLU(4)  # torch.nn's PReLU slopes too
    groups = actlab.param_groups(model, 0.1)
    assert [(g["name"], g["weight_decay"]) for g in groups] == [("decay", 0.1), ("prelu_slopes", 0.0)]
    slopes = {id(m.weight) for m in model.modules() if isinstance(m, (nn.PReLU, layers.PReLU))}
    assert {id(p) for p in groups[1]["params"]} == slopes
    grouped = [id(p) for g in groups for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())  # each exactly once

    # behaviour: with zero gradients, decay shrinks the weights but leaves the slopes alone
    opt = torch.optim.SGD(groups, lr=1.0)
    before_slope = model.features[4].weight.detach().clone()
    before_conv = model.features[0].weight.detach().clone()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    assert torch.equal(model.features[4].weight, before_slope)
    torch.testing.assert_close(model.features[0].weight, before_conv * 0.9)


def test_param_groups_without_prelu_and_bad_decay():
    groups = actlab.param_groups(SmallCNN(), 0.0)
    assert [g["name"] for g in groups] == ["decay"]
    with pytest.raises(ValueError, match="invalid weight_decay=-1"):
        actlab.param_groups(SmallCNN(), -1)
