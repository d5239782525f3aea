"""actlab's layers inside real PyTorch programs, on the fast path: torch.compile, torch.export,
jit.trace, ONNX (+ onnxruntime), torch.func, forward-mode AD and the gradchecks — each result
compared with eager numbers, not only "it ran".

Eager runs the fast kernels (the ``fast_path_forced`` fixture drops the size floor to 0, and every
test checks that the eager output's ``grad_fn`` is actlab's own Function); under the tools the plain
path's torch operations run (:func:`actlab.fast.eager`), and the two must agree. Inputs are small
(960 elements) so that compiling stays cheap; ``tests/test_module_db.py`` adds torch's own module
inputs and large natural sizes.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
import torch.autograd.forward_ad as fwAD
from torch.func import grad, jacrev, jvp, vmap

from actlab import functional as F
from actlab import layers

pytest.importorskip("numba")

SHAPE = (4, 8, 6, 5)  # 960 elements, 8 channels


def _prelu(c: int, axis: int = 1) -> layers.PReLU:
    m = layers.PReLU(c, channel_axis=axis)
    with torch.no_grad():  # slopes of both signs, one per channel
        m.weight.copy_(torch.linspace(-0.4, 0.6, c))
    return m


#: the seven layers (RReLU in both modes); label → (factory, training)
LAYERS = {
    "sigmoid": (layers.Sigmoid, False),
    "tanh": (layers.Tanh, False),
    "relu": (layers.ReLU, False),
    "leaky_relu": (lambda: layers.LeakyReLU(0.2), False),
    "prelu-shared": (lambda: _prelu(1), False),
    "prelu-channel": (lambda: _prelu(8), False),
    "rrelu-eval": (layers.RReLU, False),
    "rrelu-train": (layers.RReLU, True),
    "elu": (lambda: layers.ELU(0.7), False),
}
#: the Function each layer's eager call must go through (proof that eager ran the kernels)
FAST_NODE = {"sigmoid": "FromOutputBackward", "tanh": "FromOutputBackward", "relu": "RectifierBackward",
             "leaky_relu": "RectifierBackward", "prelu-shared": "PReLUBackward", "prelu-channel": "PReLUBackward",
             "rrelu-eval": "RectifierBackward", "rrelu-train": "RectifierBackward", "elu": "ELUBackward"}
NAMES = list(LAYERS)
DETERMINISTIC = [n for n in NAMES if n != "rrelu-train"]


@pytest.fixture(autouse=True)
def _forced(fast_path_forced):
    yield


def _make(label: str, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    factory, training = LAYERS[label]
    return factory().to(dtype).train(training)


def _x(dtype: torch.dtype = torch.float32, shape: tuple[int, ...] = SHAPE, seed: int = 0) -> torch.Tensor:
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2
    x.view(-1)[:3] = torch.tensor([0.0, -1.0, 1.0])  # the kink and ±1
    return x.to(dtype)


def _eager(m: torch.nn.Module, x: torch.Tensor, label: str, seed: int = 7) -> tuple[torch.Tensor, ...]:
    """Forward and the input (and weight) gradients in eager mode, through the fast path."""
    x = x.detach().clone().requires_grad_(True)
    torch.manual_seed(seed)
    y = m(x)
    assert type(y.grad_fn).__name__ == FAST_NODE[label], f"{label}: eager did not run the fast path"
    return (y.detach(), *_grads(m, x, y))


def _grads(m: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
    g = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)
    inputs = [x] + [p for p in m.parameters() if p.requires_grad]
    return torch.autograd.grad(y, inputs, g)


def _run(fn, m: torch.nn.Module, x: torch.Tensor, seed: int = 7) -> tuple[torch.Tensor, ...]:
    x = x.detach().clone().requires_grad_(True)
    torch.manual_seed(seed)
    y = fn(x)
    return (y.detach(), *_grads(m, x, y))


def _same(got, want, what: str, exact: bool = False) -> None:
    """Equal to a few ulps; ``exact``: output and input gradient bit for bit (a weight gradient
    is a sum, whose order may differ)."""
    assert len(got) == len(want), what
    for i, (a, b) in enumerate(zip(got, want)):
        if exact and i < 2:
            assert torch.equal(a, b), f"{what}[{i}] differs"
        else:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=lambda m: f"{what}[{i}]: {m}")


# --- torch.compile ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("label", NAMES)
def test_compile_fullgraph_aot_eager_matches_eager(label):
    """One graph, no breaks; forward and gradients equal to eager's fast path (RReLU in training:
    the same global-RNG draw gives the same step seed, and the traced Philox the same noise)."""
    torch._dynamo.reset()
    m, x = _make(label), _x()
    want = _eager(m, x, label)
    compiled = torch.compile(m, backend="aot_eager", fullgraph=True)
    got = _run(compiled, m, x)
    exact = label in ("relu", "leaky_relu", "prelu-shared", "rrelu-eval", "rrelu-train")  # piecewise linear
    _same(got, want, f"{label} aot_eager", exact=exact)
    if label == "rrelu-train":  # and fresh noise on the next call
        assert not torch.equal(_run(compiled, m, x, seed=8)[0], got[0])


@pytest.mark.parametrize("label", ["relu", "prelu-channel", "elu"])
def test_compile_inductor_matches_eager(label):
    torch._dynamo.reset()
    m, x = _make(label), _x()
    want = _eager(m, x, label)
    got = _run(torch.compile(m, backend="inductor", fullgraph=True), m, x)
    _same(got, want, f"{label} inductor")


# --- torch.export -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("label", DETERMINISTIC)
def test_export_with_a_dynamic_batch_matches_eager(label):
    m, x = _make(label), _x()
    batch = torch.export.Dim("batch", min=1, max=1024)
    ep = torch.export.export(m, (x,), dynamic_shapes={"x": {0: batch}})
    for n in (4, 9):  # the traced size and another batch
        xn = _x(shape=(n, *SHAPE[1:]), seed=n)
        torch.testing.assert_close(ep.module()(xn), _eager(m, xn, label)[0], rtol=1e-5, atol=1e-6)


# --- jit.trace --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("label", DETERMINISTIC)
def test_jit_trace_at_two_shapes_matches_eager(label):
    """Traced at each of two shapes, each trace run at both: the activation is recorded (no
    empty output, as the autograd Function's numba call left it), and equals eager."""
    m = _make(label)
    shapes = [SHAPE, (2, 8, 3, 7)]
    for traced_at in shapes:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            traced = torch.jit.trace(m, _x(shape=traced_at))
        for shape in shapes:
            x = _x(shape=shape, seed=3)
            got = _run(traced, m, x)
            _same(got, _eager(m, x, label), f"{label} traced at {traced_at}, run at {shape}")


def test_jit_trace_of_rrelu_training_draws_fresh_noise_per_call():
    m = _make("rrelu-train")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(m, _x(), check_trace=False)
    x = -_x().abs() - 0.1
    torch.manual_seed(1)
    a = traced(x)
    torch.manual_seed(1)
    want = _eager(m, x, "rrelu-train", seed=1)[0]
    torch.testing.assert_close(a, want, rtol=0, atol=0)  # the same draw and stream as eager
    assert not torch.equal(traced(x), a)


# --- ONNX -------------------------------------------------------------------------------------------------

ONNX_CASES = {
    "sigmoid": (lambda: layers.Sigmoid(), False),
    "tanh": (lambda: layers.Tanh(), False),
    "relu": (lambda: layers.ReLU(), False),
    "leaky_relu": (lambda: layers.LeakyReLU(0.2), False),
    "elu": (lambda: layers.ELU(0.7), False),
    "prelu-shared": (lambda: _prelu(1), False),
    "prelu-channel": (lambda: _prelu(8), False),
    "prelu-channel-channels_last": (lambda: _prelu(8), True),
    "prelu-channel-axis-last": (lambda: _prelu(5, axis=-1), False),
    "rrelu-eval-slope": (lambda: layers.RReLU(), False),
    "rrelu-eval-divisor": (lambda: layers.RReLU(form="divisor"), False),
}


def _onnx_run(m: torch.nn.Module, x: torch.Tensor, dynamo: bool) -> np.ndarray:
    ort = pytest.importorskip("onnxruntime")
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            pytest.importorskip("onnxscript")
            program = torch.onnx.export(m, (x,), dynamo=True, verbose=False)
            program.save(buf)
        else:
            torch.onnx.export(m, (x,), buf, dynamo=False, input_names=["x"], output_names=["y"])
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.detach().contiguous().numpy()})[0]


@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "legacy"])
@pytest.mark.parametrize("label", list(ONNX_CASES))
def test_onnx_export_runs_in_onnxruntime_and_matches_eager(label, dynamo):
    factory, channels_last = ONNX_CASES[label]
    m = factory().eval()
    x = _x()
    if label.endswith("axis-last"):
        x = x.movedim(1, -1)[..., :5].contiguous()  # (N, H, W, C=5)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = m(x.clone().requires_grad_(True))  # eager, the fast path
    assert type(y.grad_fn).__name__ in ("FromOutputBackward", "RectifierBackward", "PReLUBackward", "ELUBackward")
    y = y.detach()
    got = _onnx_run(m, x, dynamo)
    np.testing.assert_allclose(got, y.numpy(), rtol=1e-5, atol=1e-6)


# --- torch.func and forward-mode AD ---------------------------------------------------------------------


def _fn(label: str, dtype: torch.dtype = torch.float64):
    """The layer as a function of (x, weight) — weight is PReLU's slope, or unused."""
    m = _make(label, dtype)
    if isinstance(m, layers.PReLU):
        return (lambda x, w: F.prelu(x, w, channel_axis=m.channel_axis)), m.weight.detach().clone()
    if label == "rrelu-train":
        return (lambda x, w: F.rrelu(x, m.lower, m.upper, True, seed=12345)), torch.zeros(1, dtype=dtype)
    return (lambda x, w: m(x)), torch.zeros(1, dtype=dtype)


def _plain_fn(label: str, dtype: torch.dtype = torch.float64):
    """The same function on the plain path (the reference for the transforms)."""
    m = _make(label, dtype)
    if isinstance(m, layers.PReLU):
        return lambda x, w: F.prelu(x, w, channel_axis=m.channel_axis, impl="plain")
    if label == "rrelu-train":
        return lambda x, w: F.rrelu(x, m.lower, m.upper, True, seed=12345, impl="plain")
    m.impl = "plain"
    return lambda x, w: m(x)


@pytest.mark.parametrize("label", NAMES)
def test_torch_func_grad_vmap_jvp_jacrev_match_eager_fast_gradients(label):
    fn, w = _fn(label)
    x = _x(torch.float64, shape=(3, 8, 2, 2))
    # the eager fast path's own gradients, as the reference
    xe, we = x.clone().requires_grad_(True), w.clone().requires_grad_(label.startswith("prelu"))
    ye = fn(xe, we)
    assert type(ye.grad_fn).__name__ == FAST_NODE[label]
    gx_e, *gw_e = torch.autograd.grad(ye.sum(), [xe] + ([we] if we.requires_grad else []))
    argnums = (0, 1) if label.startswith("prelu") else 0
    got = grad(lambda x, w: fn(x, w).sum(), argnums=argnums)(x, w)
    got = got if isinstance(got, tuple) else (got,)
    _same(got, (gx_e, *gw_e), f"{label} torch.func.grad")
    # vmap over the batch: each sample alone equals its slice of the batched eager output
    # (RReLU's noise depends on the element's position in the tensor it is drawn for, so skip it)
    if label != "rrelu-train":
        batched = vmap(lambda xi: fn(xi.unsqueeze(0), w).squeeze(0))(x)
        torch.testing.assert_close(batched, ye.detach())
    # jvp: the tangent is f'(x)·v; jacrev: the diagonal Jacobian of an elementwise function
    v = torch.linspace(-1, 1, x.numel(), dtype=x.dtype).reshape(x.shape)
    gv = torch.autograd.grad(fn(xe, we), xe, v)[0]  # f'(x)·v from the eager fast backward
    y, tangent = jvp(lambda x: fn(x, w), (x,), (v,))
    torch.testing.assert_close(y, ye.detach())
    torch.testing.assert_close(tangent, gv)
    small = x[:1, :, :1, :1]
    jac = jacrev(lambda x: fn(x, w))(small).reshape(small.numel(), small.numel())
    xs = small.clone().requires_grad_(True)
    want = torch.autograd.grad(fn(xs, w).sum(), xs)[0].reshape(-1) if label not in ("rrelu-train",) else None
    if want is not None:
        torch.testing.assert_close(jac, torch.diag(want))
    else:  # RReLU: drawn for a smaller tensor, so its own noise; still diagonal, slopes in range
        d = torch.diagonal(jac)
        assert torch.equal(jac, torch.diag(d)) and bool(((d == 1) | ((d >= 1 / 8) & (d <= 1 / 3))).all())


@pytest.mark.parametrize("label", NAMES)
def test_forward_mode_ad_gives_the_tangent(label):
    """The tangent was silently None through the autograd Function; now it is f'(x)·v."""
    fn, w = _fn(label)
    x = _x(torch.float64, shape=(3, 8, 2, 2))
    v = torch.linspace(-1, 1, x.numel(), dtype=x.dtype).reshape(x.shape)
    xe = x.clone().requires_grad_(True)
    want = torch.autograd.grad(fn(xe, w), xe, v)[0]
    with fwAD.dual_level():
        out = fwAD.unpack_dual(fn(fwAD.make_dual(x, v), w))
    assert out.tangent is not None, f"{label}: tangent None"
    torch.testing.assert_close(out.tangent, want)
    torch.testing.assert_close(out.primal, fn(x, w))


@pytest.mark.parametrize("label", [n for n in NAMES if n != "rrelu-eval"])
def test_gradcheck_batched_and_forward_ad_and_gradgradcheck_on_the_fast_path(label):
    fn, w = _fn(label)
    x = _x(torch.float64, shape=(2, 8, 2, 3))
    x = torch.where(x.abs() < 1e-2, x + 0.1, x).requires_grad_(True)  # no finite difference straddles a kink
    assert type(fn(x, w).grad_fn).__name__ == FAST_NODE[label]
    if label.startswith("prelu"):
        w = w.clone().requires_grad_(True)
        inputs = (x, w)
    else:
        inputs = (x,)
        fw = fn
        fn = lambda x: fw(x, w)  # noqa: E731
    assert torch.autograd.gradcheck(fn, inputs, check_batched_grad=True, check_forward_ad=True,
                                    check_backward_ad=True)
    assert torch.autograd.gradgradcheck(fn, inputs, check_batched_grad=True, check_fwd_over_rev=True)
