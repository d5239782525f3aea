"""Own models in the lab: specs, swapping every activation module, the `model` variant, the
refusals (no activation module, functional activations, a factory that does not fit), the
torchvision / timm specs (with fake packages) and the Python API."""

from __future__ import annotations

import sqlite3
import sys
import textwrap
import types

import pytest
import torch
from torch import nn

import actlab
import actlab.lab
from actlab import cli
from actlab.lab import models, plan, train
from actlab.lab.store import DB_NAME
from actlab.layers import Activation
from cli_errors import one_line_error as _one_line_error

TINY = ["--data", "digits", "--subset", "100", "--batch-size", "32", "--device", "cpu", "--epochs", "1",
        "--seeds", "1", "--jobs", "1"]

MODEL_FILE = '''
import torch.nn.functional as F
from torch import nn

import actlab


def every_kind(num_classes, input_shape):
    """One of each activation module the lab must replace, actlab's own included."""
    c, h, w = input_shape
    acts = [nn.ReLU(), nn.GELU(), nn.SiLU(), nn.ReLU6(), nn.LeakyReLU(0.1), nn.ELU(), nn.Tanh(), nn.Sigmoid(),
            nn.Hardswish(), actlab.layer("relu")]
    layers = [nn.Conv2d(c, 4, 3, padding=1), acts[0], nn.Conv2d(4, 6, 3, padding=1), acts[1], nn.Flatten()]
    width = 6 * h * w
    for act in acts[2:]:
        layers += [nn.Linear(width, 16), act]
        width = 16
    return nn.Sequential(*layers, nn.Linear(width, num_classes))


def small(num_classes, input_shape):
    c, h, w = input_shape
    return nn.Sequential(nn.Conv2d(c, 8, 3, padding=1), nn.GELU(), nn.Flatten(), nn.Linear(8 * h * w, 16),
                         nn.SiLU(), nn.Linear(16, num_classes))


class Functional(nn.Module):
    def __init__(self, num_classes, features):
        super().__init__()
        self.fc1, self.fc2, self.act = nn.Linear(features, 16), nn.Linear(16, num_classes), nn.ReLU()

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x.flatten(1))))  # self.act is never called


def functional(num_classes, input_shape):
    return Functional(num_classes, input_shape[0] * input_shape[1] * input_shape[2])


def linear(num_classes, input_shape):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, num_classes))


def two_args(n):
    return nn.ReLU()


def not_a_module(num_classes, input_shape):
    return "a string"


def wrong_output(num_classes, input_shape):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 3), nn.ReLU())
'''


@pytest.fixture
def model_file(tmp_path, monkeypatch):
    path = tmp_path / "my_models.py"
    path.write_text(textwrap.dedent(MODEL_FILE))
    monkeypatch.chdir(tmp_path)
    return path


def _build(spec_model, act="relu", seed=0, **hp):
    spec = plan.RunSpec(model=spec_model, act=act, hparams=tuple(sorted(hp.items())), variant=act, seed=seed)
    torch.manual_seed(seed)
    return models.build(spec_model, input_shape=(1, 8, 8), num_classes=10, act=train.activation_factory(spec))


def test_every_activation_module_is_swapped_and_counted(model_file):
    original = _build("my_models.py:every_kind", "model")
    kinds = [type(m).__name__ for _, m in models.activation_modules(original)]
    assert kinds == ["ReLU", "GELU", "SiLU", "ReLU6", "LeakyReLU", "ELU", "Tanh", "Sigmoid", "Hardswish",
                     "ReLU"]  # the last is actlab's own relu
    assert isinstance(models.activation_modules(original)[-1][1], Activation)
    assert original.swapped == 10
    assert models.describe_activations(original).startswith("10 activation modules (ReLU ×2, GELU, SiLU")

    swapped = _build("my_models.py:every_kind", "tanh")
    found = models.activation_modules(swapped)
    assert len(found) == 10 and all(isinstance(m, Activation) and m.name == "tanh" for _, m in found)
    # the monitors see an own model's actlab activations by qualified name
    assert [n for n, _ in models.activation_layers(swapped)] == [n for n, _ in found]


def test_variants_share_the_initial_weights_and_the_model_variant_keeps_its_activations(model_file):
    a, b = _build("my_models.py:small", "model", seed=3), _build("my_models.py:small", "elu", seed=3)
    shared_a = {k: v for k, v in a.state_dict().items()}
    shared_b = {k: v for k, v in b.state_dict().items()}
    assert shared_a.keys() == shared_b.keys()
    assert all(torch.equal(shared_a[k], shared_b[k]) for k in shared_a)  # paired: same weights
    assert not torch.equal(_build("my_models.py:small", "model", seed=4)[0].weight, a[0].weight)
    assert [type(m).__name__ for _, m in models.activation_modules(a)] == ["GELU", "SiLU"]
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        assert not torch.equal(a(x), b(x))


def test_channelwise_prelu_is_sized_per_layer_and_rrelu_gets_one_stream_per_layer(model_file):
    model = _build("my_models.py:small", "prelu", num_parameters="channel")
    sizes = [m.weight.numel() for _, m in models.activation_modules(model)]
    assert sizes == [8, 16]
    rrelu = _build("my_models.py:small", "rrelu", seed=2)
    seeds = [m.seed for _, m in models.activation_modules(rrelu)]
    assert len(set(seeds)) == 2 and seeds[0] == 2 * 1_000_003


def test_module_spec_and_registered_callable(model_file, monkeypatch):
    monkeypatch.syspath_prepend(str(model_file.parent))
    assert models.load_factory("my_models:small").__name__ == "small"
    fn = models.load_factory("my_models:small")
    assert models.register(fn) == "my_models:small"  # importable: workers can import it too
    local = lambda num_classes, input_shape: nn.Sequential(nn.Flatten(), nn.Linear(64, num_classes), nn.ReLU())  # noqa: E731
    spec = models.register(local)
    assert spec.startswith("python:") and models.is_local_only(spec) and models.load_factory(spec) is local


def _fake_torchvision(monkeypatch, calls):
    tv = types.ModuleType("torchvision")
    tv.models = types.SimpleNamespace(
        list_models=lambda: ["tinynet", "resnet18"],
        get_model=lambda name, weights, num_classes: calls.append((name, weights, num_classes)) or nn.Sequential(
            nn.Flatten(), nn.Linear(64, 12), nn.ReLU(), nn.Linear(12, num_classes)))
    monkeypatch.setitem(sys.modules, "torchvision", tv)


def test_torchvision_and_timm_specs_resolve_through_the_package(monkeypatch):
    calls: list = []
    _fake_torchvision(monkeypatch, calls)
    model = _build("torchvision:tinynet", "elu")
    assert calls == [("tinynet", None, 10)]  # no weights: trained from scratch, nothing downloaded
    assert [m.name for _, m in models.activation_modules(model)] == ["elu"]
    with pytest.raises(ValueError, match="torchvision has no model 'nonet'; valid: resnet18, tinynet"):
        models.load_factory("torchvision:nonet")

    timm = types.ModuleType("timm")
    timm.is_model = lambda name: name == "vit_tiny"
    timm.create_model = lambda name, pretrained, num_classes, in_chans: calls.append(
        (name, pretrained, num_classes, in_chans)) or nn.Sequential(nn.Flatten(), nn.Linear(64, 5), nn.GELU(),
                                                                    nn.Linear(5, num_classes))
    monkeypatch.setitem(sys.modules, "timm", timm)
    assert _build("timm:vit_tiny", "model").swapped == 1
    assert calls[-1] == ("vit_tiny", False, 10, 1)
    with pytest.raises(ValueError, match="timm has no model 'x'"):
        models.load_factory("timm:x")


@pytest.mark.parametrize("package", ["torchvision", "timm"])
def test_a_missing_package_names_the_extra(monkeypatch, package):
    monkeypatch.setitem(sys.modules, package, None)  # import fails as if not installed
    with pytest.raises(ValueError, match=rf"needs the {package} package.*pip install 'actlab\[{package}\]'"):
        models.load_factory(f"{package}:resnet18")


@pytest.mark.parametrize("model, acts, match", [
    ("my_models.py:linear", "relu", "no activation modules to swap"),
    ("my_models.py:functional", "relu", "outputs stay the same when every activation module (1 activation module "
                                        "(ReLU)) is swapped (relu vs sigmoid)"),
    ("my_models.py:two_args", "relu", "two_args(n) does not fit; the factory is called as FN(num_classes=K"),
    ("my_models.py:not_a_module", "relu", "the factory returned str; an nn.Module is needed"),
    ("my_models.py:wrong_output", "relu", "maps a batch of 2 to (2, 3), expected logits of shape (2, 10)"),
    ("my_models.py:nope", "relu", "has no function 'nope'; valid: Functional, every_kind, functional"),
    ("missing.py:build", "relu", "model file missing.py not found"),
    ("no_such_module_x:build", "relu", "cannot import module 'no_such_module_x'"),
    ("cnn", "model,relu", "--acts model: keeps an own model's activations"),
    ("my_models.py:small", "relu --width 2", "width, depth and batchnorm apply to the built-in models"),
])
def test_bad_own_model_is_one_line(model_file, capsys, model, acts, match):
    acts, *extra = acts.split()
    line = _one_line_error(capsys, ["compare", *TINY, "--model", model, "--acts", acts, "--out", "o", *extra])
    assert match in line
    assert not (model_file.parent / "o").exists()


def test_compare_an_own_model_from_the_cli_and_the_python_api(model_file, capsys):
    assert cli.main(["compare", *TINY, "--model", "my_models.py:small", "--acts", "model,relu,prelu:channelwise",
                     "--out", "cli"]) == 0
    err = capsys.readouterr().err
    assert "model my_models.py:small: 2 activation modules (GELU, SiLU); each variant replaces them" in err
    with sqlite3.connect(model_file.parent / "cli" / DB_NAME) as db:
        cli_rows = dict(db.execute("SELECT r.variant, e.test_loss FROM runs r JOIN epochs e ON e.run_key = r.key"))
    assert set(cli_rows) == {"model", "relu", "prelu(channel)"} and len(set(cli_rows.values())) == 3

    fn = models.load_factory("my_models.py:small")
    outcome = actlab.lab.compare(model=fn, data="digits", acts=["model", "relu", "prelu:channelwise"], seeds=1,
                                 epochs=1, subset=100, batch_size=32, device="cpu", out="api", jobs=1)
    assert (outcome.done, outcome.failed) == (3, 0) and outcome.report["html"].is_file()
    with sqlite3.connect(outcome.directory / DB_NAME) as db:
        api_rows = dict(db.execute("SELECT r.variant, e.test_loss FROM runs r JOIN epochs e ON e.run_key = r.key"))
    assert api_rows == cli_rows  # the same factory, the same seeds: the same numbers
    with pytest.raises(ValueError, match="unknown setting 'epoch'; valid: subset"):
        actlab.lab.compare(model=fn, epoch=1)
    with pytest.raises(ValueError, match="runs in this process only; valid: jobs=1"):
        actlab.lab.compare(model=lambda num_classes, input_shape: fn(num_classes, input_shape), jobs=2, subset=50)
