"""actlab.lab.monitors: the definitions of dead and saturated units, gradient norms, slopes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import actlab
from actlab import registry
from actlab.lab import models
from actlab import properties
from actlab.lab.monitors import Monitor, _Layer
from actlab.reference import SATURATED_UNIT_FRACTION, saturated

VARIANTS = [  # (name, hparams): every activation, plus hyper-parameters that change the region
    *[(n, {}) for n in registry.names(registry.EVERY)],
    ("leaky_relu", {"negative_slope": 0.001}), ("leaky_relu", {"negative_slope": 0.3}),
    ("rrelu", {"form": "divisor"}), ("elu", {"alpha": 0.005}), ("elu", {"alpha": 300.0}), ("elu", {"alpha": 0.5}),
]


def _layer(name, hp, channels=4):
    per_channel = registry.entry(name).per_channel
    m = actlab.layer(name, **hp) if per_channel is None else actlab.layer(name, **{per_channel: channels})
    if per_channel:  # PReLU: channel slopes on both sides of the 2.5% rule, one negative
        with torch.no_grad():
            m.weight.copy_(torch.tensor([0.0, 0.005, 0.25, -2.0])[:channels])
    return m


@pytest.mark.parametrize("name, hp", VARIANTS)
def test_saturated_counts_are_the_layers_derivative_under_the_one_definition(name, hp):
    m = _layer(name, hp)
    layer = _Layer(0, "l", m, None)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 4, 5, 5, generator=g) * 6
    layer.observe(x)
    direct = (m.derivative(x).abs() < 0.025 * torch.as_tensor(m.max_derivative(x))).sum((0, 2, 3))
    assert torch.equal(layer.low, direct)
    assert layer.count == 16 * 25
    assert layer.positive is None or torch.equal(layer.positive, (x > 0).sum((0, 2, 3)))
    assert (layer.positive is not None) is (registry.entry(name).family == "rectifier")


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "elu", "gelu", "silu", "selu", "mish"])
def test_monitors_and_property_table_share_the_saturation_region(name):
    """Where the property table puts the onset of saturation, the monitors start counting."""
    onset = properties.of(name, measure_cost=False)["saturation_onset"]
    m = actlab.layer(name).eval()
    for side, sign in (("left", -1), ("right", 1)):
        if onset[side] is None:
            continue
        inside, outside = torch.tensor([onset[side] - sign * 0.011]), torch.tensor([onset[side] + sign * 0.01])
        assert not saturated(m.derivative(inside), m.max_derivative(inside)).item(), (name, side)
        assert saturated(m.derivative(outside), m.max_derivative(outside)).item(), (name, side)


def _net(act, features=3):
    return models.Net([("fc1", nn.Linear(2, features)), ("fc1_act", act), ("fc2", nn.Linear(features, 2))],
                      arch="test", config={})


def test_dead_and_saturated_units_by_definition():
    net = _net(actlab.layer("relu"))
    with torch.no_grad():
        net.fc1.weight.zero_()
        net.fc1.bias.copy_(torch.tensor([-1.0, 1.0, 0.0]))  # unit 0: never > 0; unit 2: exactly 0
    mon = Monitor(net, models.activation_layers(net), example=torch.zeros(2, 2))
    with mon:
        mon.active = True
        net(torch.randn(50, 2))
        mon.active = False
        net(torch.randn(50, 2))  # evaluation passes do not count
    row = mon.end_epoch(1)[0]
    assert (row["layer"], row["units"], row["dead"], row["saturated"]) == ("fc1", 3, 2, 2)  # relu'(0) = 0
    assert row["slopes"] is None and row["slope_mean"] is None
    assert mon.end_epoch(2)[0]["units"] == 0  # counts reset each epoch


def test_saturation_needs_99_percent_of_inputs():
    net = _net(actlab.layer("sigmoid"), features=2)
    with torch.no_grad():
        net.fc1.weight.zero_()
        net.fc1.bias.copy_(torch.tensor([20.0, 0.0]))
    mon = Monitor(net, models.activation_layers(net), example=torch.zeros(2, 2))
    with mon:
        mon.active = True
        net(torch.zeros(100, 2))
    row = mon.end_epoch(1)[0]
    assert row["dead"] is None  # not a rectifier
    assert row["saturated"] == 1
    assert SATURATED_UNIT_FRACTION == 0.99


def test_gradient_norm_is_that_of_the_layer_the_activation_follows():
    torch.manual_seed(0)
    net = _net(actlab.layer("prelu", num_parameters=3))
    mon = Monitor(net, models.activation_layers(net), example=torch.zeros(2, 2))
    x = torch.randn(8, 2)
    with mon:
        mon.active = True
        norms = []
        for _ in range(2):
            net.zero_grad()
            net(x).sum().backward()
            mon.after_backward()
            norms.append(float(net.fc1.weight.grad.norm()))
    row = mon.end_epoch(1)[0]
    assert row["grad_norm"] == pytest.approx(sum(norms) / 2)
    assert row["slopes"] == pytest.approx([0.25] * 3) and row["slope_mean"] == pytest.approx(0.25)


def test_monitor_on_a_lab_model_names_every_layer():
    torch.manual_seed(0)
    net = models.build("cnn", input_shape=(1, 8, 8), num_classes=10, act=lambda c: actlab.layer("tanh"))
    mon = Monitor(net, models.activation_layers(net), example=torch.zeros(2, 1, 8, 8))
    assert all(layer.weight is not None for layer in mon.layers)
    conv = dict(net.named_children())["conv1_1"]
    assert mon.layers[0].weight is conv.weight
    with mon:
        mon.active = True
        net(torch.randn(4, 1, 8, 8)).sum().backward()
        mon.after_backward()
    rows = mon.end_epoch(1)
    assert [r["layer"] for r in rows] == [n for n, _ in models.activation_layers(net)]
    assert all(r["units"] > 0 and r["grad_norm"] > 0 and r["dead"] is None for r in rows)
