"""An activation plugged in from outside the library: a reference class, a layer class and one
registry entry, registered here in the test — no library file knows it — and then everything
works on it: ``actlab list``, ``props``, ``plot``, the lab (a compare with its monitors) and swap.

Softsign, f(x) = x / (1 + |x|), f'(x) = 1 / (1 + |x|)², plain path only (no fast kernels).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import actlab
from actlab import registry
from actlab.cli import main
from actlab.layers import Activation
from actlab.reference import Reference


class SoftsignReference(Reference):
    """f(x) = x / (1 + |x|);  f'(x) = 1 / (1 + |x|)²."""

    name = "softsign"

    def forward(self, x):
        x = np.asarray(x, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            y = np.where(np.isinf(x), np.sign(x), x / (1 + np.abs(x)))
        return y

    def grad(self, x):
        x = np.asarray(x, dtype=np.float64)
        return 1 / (1 + np.abs(x)) ** 2


class SoftsignLayer(Activation):
    r"""Softsign, elementwise.

    .. math::
        f(x) = \frac{x}{1 + |x|}, \qquad f'(x) = \frac{1}{(1 + |x|)^2}
    """

    name = "softsign"
    impls = ("auto", "plain")  # no fast kernels

    def forward(self, x: Tensor) -> Tensor:
        return x / (1 + x.abs())

    def derivative(self, x: Tensor) -> Tensor:
        return 1 / (1 + x.abs()) ** 2


SOFTSIGN = registry.Entry(
    name="softsign", title="Softsign", formula="x / (1 + |x|)", derivative="1 / (1 + |x|)²",
    paper="Bergstra et al. 2009", reference=SoftsignReference, layer=SoftsignLayer, torch_twin=nn.Softsign,
    group="plugin", aliases=("soft_sign",),
)


@pytest.fixture
def softsign(tmp_path, monkeypatch):
    monkeypatch.setenv("ACTLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    assert "softsign" not in registry.names(registry.EVERY)
    with registry.registered(SOFTSIGN) as e:
        yield e
    assert "softsign" not in registry.names(registry.EVERY)  # unregistered on the way out
    with pytest.raises(ValueError, match="unknown activation 'softsign'"):
        actlab.layer("softsign")


def test_factories_and_torch_twin(softsign):
    x = torch.linspace(-5, 5, 101, dtype=torch.float64, requires_grad=True)
    layer = actlab.layer("soft-sign")
    torch.testing.assert_close(layer(x), nn.Softsign()(x))
    assert torch.autograd.gradcheck(layer, (x,))
    np.testing.assert_allclose(actlab.get("softsign").grad(x.detach().numpy()),
                               layer.derivative(x.detach()).numpy(), rtol=1e-15)
    with pytest.raises(ValueError, match="softsign: invalid impl='fast'; valid: auto, plain"):
        actlab.layer("softsign", impl="fast")
    assert registry.names("plugin") == ["softsign"] and "softsign" not in actlab.names()


def test_list_props_plot(softsign, capsys, tmp_path):
    assert main(["list", "--format", "json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["softsign"]["formula"] == "x / (1 + |x|)" and listing["softsign"]["group"] == "plugin"

    assert main(["props", "--format", "json", "--no-cost", "--only", "softsign"]) == 0
    p = json.loads(capsys.readouterr().out)["softsign"]
    assert p["range"] == [-1.0, 1.0] and p["range_closed"] == [False, False]
    assert p["zero_centred"] and p["monotonic"] and not p["dead_zone"] and not p["stochastic"]
    assert p["saturates"] == {"left": True, "right": True} and p["max_grad"] == 1.0
    # onset where 1/(1+|x|)² < 2.5%: |x| > √40 − 1 = 5.32
    assert p["saturation_onset"]["right"] == pytest.approx(np.sqrt(40) - 1, abs=0.01)

    assert main(["plot", "--out", str(tmp_path / "figs"), "--only", "softsign"]) == 0
    path = Path(capsys.readouterr().out.split()[0])
    assert path.name == "softsign.png" and path.read_bytes()[:4] == b"\x89PNG"


def test_lab_compare_with_monitors(softsign, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["compare", "--data", "digits", "--subset", "100", "--batch-size", "32", "--device", "cpu",
                 "--acts", "softsign", "--seeds", "1", "--epochs", "1", "--out", str(out), "--quiet"]) == 0
    with sqlite3.connect(out / "results.sqlite") as db:
        runs = db.execute("SELECT act, status FROM runs ORDER BY act").fetchall()
        layers = db.execute("SELECT r.act, l.dead, l.saturated, l.units FROM layers l JOIN runs r ON r.key = l.run_key "
                            "WHERE r.act = 'softsign'").fetchall()
    assert runs == [("softsign", "done")]
    assert layers and all(dead is None and 0 <= sat <= units for _, dead, sat, units in layers)  # smooth: no dead
    assert "softsign" in (out / "report.md").read_text()


def test_swap(softsign):
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2), nn.GELU())
    actlab.swap(model, "softsign")
    assert isinstance(model[1], SoftsignLayer) and isinstance(model[3], SoftsignLayer)
    x = torch.randn(5, 3)
    torch.testing.assert_close(model(x), model[3](model[2](nn.Softsign()(model[0](x)))))
    with pytest.raises(ValueError, match="'channel' is for a per-channel hyper-parameter"):
        actlab.swap(model, "softsign", num_parameters="channel")


def test_registering_checks_the_entry(softsign):
    with pytest.raises(ValueError, match="the name 'softsign' is taken"):
        registry.register(SOFTSIGN)
    with pytest.raises(ValueError, match="the reference class SoftsignReference has name 'softsign'; valid: 'other'"):
        registry.Entry(name="other", title="", formula="", derivative="", paper="",
                       reference=SoftsignReference, layer=SoftsignLayer)
    with pytest.raises(ValueError, match="invalid family='kinked'; valid: rectifier, smooth"):
        registry.Entry(name="softsign", title="", formula="", derivative="", paper="",
                       reference=SoftsignReference, layer=SoftsignLayer, family="kinked")
