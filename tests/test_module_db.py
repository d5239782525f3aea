"""PyTorch's own module test inputs (``torch.testing._internal.common_modules.module_db``) through
actlab's layers on the fast path, against torch.nn: forward, input gradient and PReLU's weight
gradient, float32 and float64, training and eval. Plus every layer at a natural large size,
where ``impl="auto"`` takes the fast path by itself.

module_db has no RReLU entry: RReLU is checked in eval (its fixed slope) on LeakyReLU's sample
inputs, and in training distributionally (slopes drawn in [lower, upper], reproducible from the
seed) — torch.nn draws its noise from another generator, so outputs cannot be equal.
"""

from __future__ import annotations

import pytest
import torch

import actlab
from actlab import layers

pytest.importorskip("numba")
pytest.importorskip("expecttest")  # imported by torch's test helpers

ACTIVATIONS = {"Sigmoid": layers.Sigmoid, "Tanh": layers.Tanh, "ReLU": layers.ReLU, "LeakyReLU": layers.LeakyReLU,
               "PReLU": layers.PReLU, "ELU": layers.ELU}


def _module_db() -> dict:
    """torch.nn's activation ModuleInfos by class name. Imported here, not at collection, and
    undoing what importing torch's test helpers does to the whole process: they freeze the
    torch.backends flags (other tests set cudnn's) and wrap TorchScript calls for profiling."""
    frozen = torch.backends.flags_frozen()
    calls = torch._C.ScriptFunction.__call__, torch._C.ScriptMethod.__call__
    try:
        from torch.testing._internal import common_modules
    finally:
        if not frozen:
            torch.backends.flags_frozen.__globals__["__allow_nonbracketed_mutation_flag"] = True
        torch._C.ScriptFunction.__call__, torch._C.ScriptMethod.__call__ = calls
    return {m.module_cls.__name__: m for m in common_modules.module_db
            if m.module_cls.__module__.startswith("torch.nn") and m.module_cls.__name__ in ACTIVATIONS}
#: actlab's Functions, which the forced fast path must run (eager, not torch's ops)
OURS = ("FromOutputBackward", "RectifierBackward", "PReLUBackward", "ELUBackward")


def test_module_db_has_the_six_activations_and_leaves_global_state_alone():
    frozen = torch.backends.flags_frozen()
    assert sorted(_module_db()) == sorted(ACTIVATIONS)
    assert torch.backends.flags_frozen() == frozen


def _tol(dtype):
    return dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1.3e-6, atol=1e-6)


def _compare(ours: torch.nn.Module, theirs: torch.nn.Module, x: torch.Tensor, what: str, fast: bool) -> None:
    tol = _tol(x.dtype)
    xa, xb = x.detach().clone().requires_grad_(True), x.detach().clone().requires_grad_(True)
    ya, yb = ours(xa), theirs(xb)
    if fast:
        assert type(ya.grad_fn).__name__ in OURS, f"{what}: the fast path did not run ({ya.grad_fn})"
    torch.testing.assert_close(ya, yb, **tol, msg=lambda m: f"{what} forward: {m}")
    g = torch.linspace(-1, 1, yb.numel(), dtype=yb.dtype).reshape(yb.shape)
    pa = [xa] + [p for p in ours.parameters()]
    pb = [xb] + [p for p in theirs.parameters()]
    for i, (a, b) in enumerate(zip(torch.autograd.grad(ya, pa, g), torch.autograd.grad(yb, pb, g))):
        if i and x.dtype == torch.float32:  # a sum over the channel: torch accumulates in float32, ours in float64
            tol = dict(rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(a, b, **tol, msg=lambda m: f"{what} grad {'xw'[i]}: {m}")


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_module_db_samples_agree_with_torch_nn_on_the_fast_path(name, dtype, training, fast_path_forced):
    info = _module_db()[name]
    samples = info.module_inputs_func(info, device="cpu", dtype=dtype, requires_grad=True, training=training)
    assert samples
    for k, s in enumerate(samples):
        args, kwargs = s.constructor_input.args, s.constructor_input.kwargs
        theirs = info.module_cls(*args, **kwargs).to(dtype).train(training)
        ours = ACTIVATIONS[info.module_cls.__name__](*args, **kwargs).to(dtype).train(training)
        if isinstance(ours, layers.PReLU):  # slopes of both signs, the same in both
            w = torch.linspace(-0.5, 0.5, ours.weight.numel(), dtype=dtype)
            with torch.no_grad():
                ours.weight.copy_(w)
                theirs.weight.copy_(w)
        (x,) = s.forward_input.args
        for layout in ("as given", "channels_last"):
            if layout == "channels_last":
                if x.dim() not in (4, 5):
                    continue
                fmt = torch.channels_last if x.dim() == 4 else torch.channels_last_3d
                x = x.detach().contiguous(memory_format=fmt)
            _compare(ours, theirs, x, f"{info.module_cls.__name__} sample {k} ({s.desc or 'default'}, {layout})",
                     fast=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_rrelu_eval_on_leaky_relus_samples_is_torch_nns(dtype, fast_path_forced):
    info = _module_db()["LeakyReLU"]
    for form, (lo, hi) in (("slope", (1 / 8, 1 / 3)), ("slope", (0.1, 0.3))):
        for s in info.module_inputs_func(info, device="cpu", dtype=dtype, requires_grad=True, training=False):
            ours = layers.RReLU(lo, hi, form=form).eval().to(dtype)
            theirs = torch.nn.RReLU(lo, hi).eval()
            _compare(ours, theirs, s.forward_input.args[0], f"RReLU eval {s.desc}", fast=True)


def test_rrelu_training_slopes_are_drawn_in_range_and_reproducible(fast_path_forced):
    x = -torch.rand(4, 16, 32, dtype=torch.float64) - 0.01
    ours = layers.RReLU(seed=3).train()(x.clone().requires_grad_(True))
    theirs = torch.nn.RReLU().train()(x)
    for y in (ours.detach(), theirs):
        s = y / x
        assert s.min() >= 1 / 8 - 1e-12 and s.max() <= 1 / 3 + 1e-12
        assert abs(s.mean().item() - (1 / 8 + 1 / 3) / 2) < 0.01 and s.std().item() > 0.05
    assert torch.equal(layers.RReLU(seed=3).train()(x), ours.detach())


#: each layer at the fast path's natural size: (8, 64, 32, 32) = 524,288 elements
LARGE = [("sigmoid", {}), ("tanh", {}), ("relu", {}), ("leaky_relu", {"negative_slope": 0.2}),
         ("prelu", {"num_parameters": 64}), ("rrelu", {}), ("elu", {"alpha": 0.7})]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name,hp", LARGE, ids=[n for n, _ in LARGE])
def test_every_layer_at_a_natural_large_size_takes_the_fast_path_and_agrees_with_torch_nn(name, hp, training):
    from actlab import fast

    torch.manual_seed(0)
    x = torch.randn(8, 64, 32, 32)
    served = "leaky_relu" if name == "rrelu" and not training else name
    assert fast.lookup(served, x) is not None, f"{name}: auto does not take the fast path at this size"
    ours = actlab.layer(name, **hp).train(training)
    if name == "rrelu":
        if training:  # the slopes, by position, are the kernels' Philox stream
            y = ours(x.clone().requires_grad_(True))
            assert type(y.grad_fn).__name__ == "RectifierBackward"
            s = (y.detach() / x)[x < 0]
            assert s.min() >= 1 / 8 - 1e-6 and s.max() <= 1 / 3 + 1e-6 and abs(s.mean() - 11 / 48) < 1e-3
            torch.testing.assert_close(y.detach()[x > 0], x[x > 0], rtol=0, atol=0)
            return
        theirs = torch.nn.RReLU().eval()
    else:
        nn_name = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "ReLU", "leaky_relu": "LeakyReLU",
                   "prelu": "PReLU", "elu": "ELU"}[name]
        theirs = getattr(torch.nn, nn_name)(**{k: v for k, v in hp.items()}).train(training)
        if name == "prelu":
            with torch.no_grad():
                w = torch.linspace(-0.5, 0.5, 64)
                ours.weight.copy_(w)
                theirs.weight.copy_(w)
    _compare(ours, theirs, x, f"{name} large", fast=False)
