"""The PyTorch layers: agreement with the reference, gradcheck, drop-in for torch.nn, RReLU.

Every test runs on each implementation (``plain`` and ``auto``, i.e. the fast kernels where
they serve the tensor — forced here at every size, see the fixture), so the fast paths are held to
the same contract.
"""

from __future__ import annotations

import inspect
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import actlab
from actlab import functional as F
from actlab import layers, registry

NAMES = registry.names(registry.EVERY)
IMPLS = ["plain", "auto"]

# non-default hyper-parameters each entry is also checked with (keys must be registry names)
VARIANTS = {
    "leaky_relu": [{"negative_slope": 0.2}],
    "prelu": [{"init": 0.1}, {"init": -0.3}],
    "rrelu": [{"form": "divisor"}, {"lower": 0.05, "upper": 0.5}],
    "elu": [{"alpha": 0.5}],
    "gelu": [{"approximate": "tanh"}],
}
CASES = [(n, {}) for n in NAMES] + [(n, hp) for n, hps in VARIANTS.items() for hp in hps]


@pytest.fixture(autouse=True)
def _auto_runs_the_fast_path(request):
    """``impl="auto"`` is the fast path where a kernel serves; these inputs are below its natural
    size, so the size floor is dropped for them (``fast_path_forced``; natural sizes and
    torch's module inputs: test_module_db.py)."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("impl") == "auto":
        request.getfixturevalue("fast_path_forced")
    yield


def test_variants_name_real_hparams():
    for name, hps in VARIANTS.items():
        for hp in hps:
            registry.resolve(name, hp)


def _eval(module: torch.nn.Module) -> torch.nn.Module:
    return module.eval()


def _reference_for(name, hp, module):
    ref = actlab.get(name, **hp)
    if registry.entry(name).learned:  # PReLU: the layer's slopes
        ref.weight = module.weight.detach().double().numpy().copy()
    return ref


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name,hp", CASES, ids=[f"{n}-{hp}" for n, hp in CASES])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_layer_agrees_with_reference_forward_and_backward(name, hp, impl, dtype):
    torch.manual_seed(0)
    module = _eval(actlab.layer(name, impl=impl, **hp))
    x = (torch.randn(4, 3, 7, 5, dtype=torch.float64) * 3).to(dtype)
    x.view(-1)[:3] = torch.tensor([0.0, -1.0, 1.0])  # the kink and ±1
    x.requires_grad_(True)
    y = module(x)
    upstream = torch.randn_like(y)
    y.backward(upstream)
    ref = _reference_for(name, hp, module)
    xn = x.detach().numpy()
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y.detach().numpy(), ref.forward(xn), **tol)
    np.testing.assert_allclose(x.grad.numpy(), ref.grad(xn) * upstream.numpy(), **tol)
    if registry.entry(name).learned:
        np.testing.assert_allclose(module.weight.grad.numpy(), ref.weight_grad(xn, upstream.numpy()), rtol=1e-5)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name,hp", CASES, ids=[f"{n}-{hp}" for n, hp in CASES])
def test_gradcheck_float64(name, hp, impl):
    torch.manual_seed(0)
    module = _eval(actlab.layer(name, impl=impl, **hp)).double()
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    x = torch.where(x.abs() < 1e-2, x + 0.1, x).requires_grad_(True)  # finite differences straddle no kink
    learned = registry.entry(name).learned  # PReLU: the slopes are checked too
    inputs = (x, module.weight) if learned else (x,)
    fn = (lambda x, w: F.prelu(x, w, impl=impl)) if learned else module
    assert torch.autograd.gradcheck(fn, inputs)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("channel_axis,shape", [(1, (2, 3, 4, 5)), (-1, (2, 4, 5, 3)), (1, (6, 3))])
def test_prelu_channelwise_gradcheck_and_layout(impl, channel_axis, shape):
    w = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64, requires_grad=True)
    x = torch.randn(*shape, dtype=torch.float64)
    x = torch.where(x.abs() < 1e-2, x + 0.1, x).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, w: F.prelu(x, w, channel_axis=channel_axis, impl=impl), (x, w))
    y = F.prelu(-torch.ones(*shape, dtype=torch.float64), w.detach(), channel_axis=channel_axis, impl=impl)
    per_channel = y.movedim(channel_axis, 0).reshape(3, -1)
    np.testing.assert_allclose(per_channel[:, 0].numpy(), [-0.1, 0.2, -0.3])


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("form", ["slope", "divisor"])
def test_rrelu_training_gradcheck_with_fixed_seed(impl, form):
    x = torch.randn(3, 4, 5, dtype=torch.float64)
    x = torch.where(x.abs() < 1e-2, x + 0.1, x).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: F.rrelu(x, training=True, form=form, seed=7, impl=impl,
                                                      lower=1 / 8 if form == "slope" else 3.0,
                                                      upper=1 / 3 if form == "slope" else 8.0), (x,))


# --- drop-in for torch.nn --------------------------------------------------------------------------


def test_defaults_and_argument_names_match_torch_nn():
    for e in registry.entries():
        ours = inspect.signature(e.layer).parameters
        theirs = inspect.signature(e.torch_twin).parameters
        for name, p in theirs.items():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            assert name in ours, f"{e.name}: torch.nn argument {name!r} missing"
            if name in ("lower", "upper"):  # None = the form's defaults, 1/8 and 1/3 in slope form
                assert getattr(actlab.layer(e.name), name) == pytest.approx(p.default)
            else:
                assert ours[name].default == p.default, (e.name, name)


TWIN_CASES = [(n, {}) for n in NAMES] + [("gelu", {"approximate": "tanh"}), ("elu", {"alpha": 0.5})]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name,hp", TWIN_CASES, ids=[f"{n}-{hp}" for n, hp in TWIN_CASES])
def test_same_outputs_and_gradients_as_torch_nn(name, hp, impl):
    torch.manual_seed(0)
    ours = actlab.layer(name, impl=impl, **hp).eval()
    theirs = registry.entry(name).torch_twin(**hp).eval()
    x = torch.randn(3, 1, 8, 8, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    y, y2 = ours(x), theirs(x2)
    torch.testing.assert_close(y, y2)
    y.sum().backward()
    y2.sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)


def test_prelu_loads_a_torch_nn_state_dict():
    native = torch.nn.PReLU(4, init=0.1)
    ours = actlab.layer("prelu", num_parameters=4)
    ours.load_state_dict(native.state_dict())
    assert torch.equal(ours.weight, native.weight)


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "rrelu", "elu", "silu", "selu", "mish"])
def test_inplace_overwrites_the_input(name):
    module = actlab.layer(name, inplace=True).eval()
    x = torch.tensor([-2.0, 0.0, 3.0])
    out = module(x)
    assert out.data_ptr() == x.data_ptr()
    torch.testing.assert_close(x, actlab.layer(name).eval()(torch.tensor([-2.0, 0.0, 3.0])))


def test_prelu_channel_count_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="input has 4 channels on axis 1 but num_parameters=3"):
        actlab.layer("prelu", num_parameters=3)(torch.ones(2, 4, 5))


def test_extra_repr_shows_hparams():
    assert repr(actlab.layer("leaky_relu", negative_slope=0.2)) == "LeakyReLU(negative_slope=0.2)"
    assert "form='divisor'" in repr(actlab.layer("rrelu", form="divisor"))
    assert repr(actlab.layer("prelu", num_parameters=3, channel_axis=-1)) == "PReLU(num_parameters=3, channel_axis=-1)"


# --- RReLU: random in train, deterministic in eval, reproducible ---------------------------------


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("form", ["slope", "divisor"])
def test_rrelu_training_slopes_in_range_with_the_right_mean(impl, form):
    module = actlab.layer("rrelu", form=form, seed=0, impl=impl).train()
    x = -torch.ones(400_000)
    slopes_ = -module(x)
    lo, hi = actlab.get("rrelu", form=form).slope_bounds()
    assert slopes_.min() >= lo - 1e-7 and slopes_.max() <= hi + 1e-7
    a = torch.empty(400_000, dtype=torch.float64).uniform_(module.lower, module.upper)
    expected = a.mean() if form == "slope" else a.reciprocal().mean()
    assert slopes_.double().mean().item() == pytest.approx(expected.item(), rel=5e-3)
    assert slopes_.double().std().item() > 0.1 * (hi - lo)  # really random, not the mean
    assert torch.equal(module(torch.ones(10)), torch.ones(10))  # positive side untouched


@pytest.mark.parametrize("impl", IMPLS)
def test_rrelu_reproducible_from_seed_generator_and_global_rng(impl):
    x = -torch.rand(1000)
    a, b = actlab.layer("rrelu", seed=3, impl=impl), actlab.layer("rrelu", seed=3, impl=impl)
    assert torch.equal(a(x), b(x)) and torch.equal(a(x), b(x))
    assert not torch.equal(a(x), a(x))  # a fresh draw each step
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(actlab.layer("rrelu", generator=g1, impl=impl)(x), actlab.layer("rrelu", generator=g2, impl=impl)(x))
    torch.manual_seed(9)
    first = actlab.layer("rrelu", impl=impl)(x)
    torch.manual_seed(9)
    assert torch.equal(first, actlab.layer("rrelu", impl=impl)(x))


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=25, deadline=None)
@given(xs=st.lists(st.floats(-1e4, 1e4, allow_nan=False, width=32), min_size=1, max_size=30),
       form=st.sampled_from(["slope", "divisor"]))
def test_rrelu_eval_is_leaky_relu_at_its_test_slope(impl, xs, form):
    x = torch.tensor(xs)
    rr = actlab.layer("rrelu", form=form, impl=impl).eval()
    leaky = actlab.layer("leaky_relu", negative_slope=rr.test_slope, impl=impl)
    assert torch.equal(rr(x), leaky(x))


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=25, deadline=None)
@given(xs=st.lists(st.floats(-1e4, 1e4, allow_nan=False, width=32), min_size=1, max_size=30),
       a=st.floats(0, 1, width=32))
def test_prelu_at_a_is_leaky_relu_at_a_and_slope_zero_is_relu(impl, xs, a):
    x = torch.tensor(xs)
    prelu = actlab.layer("prelu", init=a, impl=impl)
    with torch.no_grad():
        torch.testing.assert_close(prelu(x), actlab.layer("leaky_relu", negative_slope=a, impl=impl)(x), rtol=0, atol=0)
    assert torch.equal(actlab.layer("leaky_relu", negative_slope=0, impl=impl)(x), actlab.layer("relu", impl=impl)(x))


# --- bad input ---------------------------------------------------------------------------------------

BAD = [
    (("nope",), {}, "unknown activation 'nope'; valid: sigmoid, tanh, relu"),
    (("rrelu",), {"lower": 0.3, "upper": 0.2}, "lower=0.3 > upper=0.2"),
    (("rrelu",), {"form": "both"}, "invalid form='both'; valid: one of 'slope', 'divisor'"),
    (("rrelu",), {"form": "divisor", "lower": 0.5}, "invalid lower=0.5; valid: float in [1"),
    (("elu",), {"alpha": -1}, "invalid alpha=-1; valid: float in [0, inf)"),
    (("prelu",), {"num_parameters": 0}, "invalid num_parameters=0; valid: int in [1, inf)"),
    (("prelu",), {"num_parameters": 2.5}, "invalid num_parameters=2.5"),
    (("leaky_relu",), {"negative_slope": 1.5}, "invalid negative_slope=1.5; valid: float in [0, 1]"),
    (("leaky_relu",), {"negative_slope": "abc"}, "invalid negative_slope='abc'"),
    (("leaky_relu",), {"negative_slope": float("nan")}, "invalid negative_slope=nan"),
    (("elu",), {"alhpa": 1}, "unknown option 'alhpa'"),
    (("relu",), {"impl": "cuda"}, "invalid impl='cuda'; valid: auto, plain, fast"),
    (("gelu",), {"impl": "fast"}, "gelu: invalid impl='fast'; valid: auto, plain"),
    (("gelu",), {"approximate": "erf"}, "invalid approximate='erf'; valid: one of 'none', 'tanh'"),
    (("gelu",), {"inplace": True}, "gelu: unknown option 'inplace'; valid: approximate"),
]


@pytest.mark.parametrize("args,kwargs,message", BAD, ids=[m[:30] for *_, m in BAD])
def test_bad_input_is_one_line_value_error(args, kwargs, message):
    with pytest.raises(ValueError) as info:
        actlab.layer(*args, **kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)
    if "impl" not in kwargs and "alhpa" not in kwargs and "inplace" not in kwargs:  # the reference checks the same values
        with pytest.raises(ValueError, match=message[:20].replace("(", r"\(").replace("[", r"\[")):
            actlab.get(*args, **kwargs)


def test_direct_class_construction_is_checked_too():
    with pytest.raises(ValueError, match="invalid alpha"):
        layers.ELU(alpha=-0.1)
    with pytest.raises(ValueError, match="lower=0.5 > upper=0.1"):
        layers.RReLU(0.5, 0.1)


# --- the derivative beside the forward (what the lab's monitors use) -------------------------------


@pytest.mark.parametrize("name,hp", CASES, ids=[f"{n}-{hp}" for n, hp in CASES])
def test_derivative_is_the_references_and_autograds(name, hp):
    torch.manual_seed(0)
    module = actlab.layer(name, impl="plain", **hp).eval().double()
    x = torch.linspace(-12, 12, 481, dtype=torch.float64)
    x = torch.cat([x, torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64)]).reshape(1, 1, -1).repeat(1, 4, 1)
    per_channel = registry.entry(name).per_channel
    if per_channel:  # PReLU: one slope per channel, on both sides of 1, one negative
        hp = {**hp, per_channel: 4}
        module = actlab.layer(name, impl="plain", **hp).eval().double()
        with torch.no_grad():
            module.weight.copy_(torch.tensor([0.0, 0.005, 0.25, -2.0]))
    ref = _reference_for(name, hp, module)
    got = module.derivative(x)
    np.testing.assert_allclose(got.numpy(), ref.grad(x.numpy()), rtol=1e-12, atol=1e-13)
    xa = x.clone().requires_grad_(True)
    module(xa).backward(torch.ones_like(xa))  # autograd of the forward: the same f' (the kink included)
    np.testing.assert_allclose(got.numpy(), xa.grad.numpy(), rtol=1e-10, atol=1e-13)
    bound = torch.as_tensor(module.max_derivative(x), dtype=torch.float64)
    assert torch.all(got.abs() <= bound + 1e-12)
    assert torch.all((got.abs() - bound).amax(dim=-1) > -2e-3)  # attained on x's grid (step 0.05), per channel


# --- one docstring template, PyTorch's ---------------------------------------------------------------


@pytest.mark.parametrize("e", registry.entries(), ids=lambda e: e.name)
def test_every_layer_docstring_follows_the_template_and_its_example_runs(e):
    import doctest

    doc = inspect.getdoc(e.layer)
    summary, _, rest = doc.partition("\n")
    assert summary.endswith(".") and "\n.. math::\n" in doc and ("'(x)" in doc or "\\prime" in doc)
    sections = [s for s in ("Args:", "Shape:", "Examples::", "Paper:") if "\n" + s in doc]
    assert sections == ["Args:", "Shape:", "Examples::", "Paper:"], e.name
    args = doc.split("\nArgs:\n")[1].split("\n\n")[0]
    for name in inspect.signature(e.layer).parameters:
        assert f"    {name}:" in args or f", {name}:" in args or f"    {name}," in args, (e.name, name)
        if inspect.signature(e.layer).parameters[name].default is not inspect.Parameter.empty:
            line = next(p for p in re.split(r"\n    (?=\S)", args) if name in p.split(":")[0])
            assert "Default:" in line, (e.name, name)
    finder = doctest.DocTestFinder(recurse=False)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    tests = finder.find(e.layer, e.layer.__name__, globs={"torch": torch, **vars(layers)})
    assert sum(len(t.examples) for t in tests) >= 1
    for t in tests:
        runner.run(t)
    assert runner.failures == 0, e.name
