"""The CPU fast paths (numba): agreement with the plain path, gradcheck, dispatch, memory kept for
backward, RReLU's random numbers. The Triton kernels are tested in test_triton.py.

The checks themselves live in benchmarks/fast_check.py (the same ones run on a GPU by
benchmarks/gpu_check.sh); here each runs as its own test case, with the fast path forced (the
``fast_path_forced`` fixture of conftest.py) unless a test is marked ``natural_thresholds``.
No timing is asserted.
"""

from __future__ import annotations

import math
import os
import sys

import numpy as np
import pytest
import torch

import fast_check as check
import actlab
from actlab import fast
from actlab import functional as F
from actlab.fast import philox

pytest.importorskip("numba")

CASES = check.CASES
TRAINABLE = [c for c in CASES if c.label != "rrelu-eval"]
KEPT = [c for c in CASES if c.act not in ("sigmoid", "tanh", "elu") and c.label not in ("rrelu-eval", "leaky_relu-0")]


natural_thresholds = pytest.mark.natural_thresholds


@pytest.fixture(autouse=True)
def _forced_unless_marked(request):
    """The checks use tensors below the size where auto picks the fast path, so each test runs
    with it forced — except those marked ``natural_thresholds``, which test the thresholds."""
    if request.node.get_closest_marker("natural_thresholds"):
        yield
        return
    request.getfixturevalue("fast_path_forced")
    yield


def _ids(cases):
    return [c.label for c in cases]


# --- agreement with the plain path ----------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_fast_agrees_with_plain_forward_and_backward(case, dtype):
    check.agreement(case, dtype, "cpu")


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_fast_agrees_with_plain_over_many_tasks_and_tails(case):
    check.agreement(case, torch.float32, "cpu", large=True)


@pytest.mark.parametrize("case", TRAINABLE, ids=_ids(TRAINABLE))
def test_gradcheck_and_gradgradcheck_float64_through_the_fast_path(case):
    check.gradcheck(case, "cpu")


KINKS = [("relu", {}, 0.0), ("leaky_relu", {"negative_slope": 0.2}, 0.2), ("prelu", {"init": 0.3}, 0.3),
         ("elu", {"alpha": 0.7}, 0.7)]


@pytest.mark.parametrize("name,hp,slope,lean", [(*k, False) for k in KINKS] + [(*k, True) for k in KINKS[:3]])
def test_the_kink_takes_the_left_derivative(name, hp, slope, lean):
    x = torch.zeros(4, 64)
    x[0, :3] = torch.tensor([-1.0, 0.0, 1.0])
    x.requires_grad_(True)
    layer = actlab.layer(name, impl="fast", **hp, **({"lean": True} if lean else {}))
    (grad,) = torch.autograd.grad(layer(x), x, torch.ones_like(x))
    left = slope * math.exp(-1.0) if name == "elu" else slope  # f'(−1)
    np.testing.assert_allclose(grad[0, :3].numpy(), [left, slope, 1.0], rtol=1e-6)


def test_rrelu_kink_takes_the_drawn_slope():
    x = torch.zeros(1024, requires_grad=True)
    (grad,) = torch.autograd.grad(F.rrelu(x, training=True, seed=3, impl="fast"), x, torch.ones(1024))
    torch.testing.assert_close(grad, fast.rrelu_slopes(1024, 1 / 8, 1 / 3, "slope", 3))


def test_nan_gradients_follow_the_plain_path_for_rectifiers():
    x = torch.tensor([float("nan"), -1.0, 2.0] * 20000, requires_grad=True)
    for name in ("relu", "leaky_relu"):
        for lean in (False, True):
            fast_, plain = (actlab.layer(name, impl=impl, lean=lean) for impl in ("fast", "plain"))
            (got,) = torch.autograd.grad(fast_(x), x, torch.ones_like(x))
            (want,) = torch.autograd.grad(plain(x), x, torch.ones_like(x))
            torch.testing.assert_close(got[:3], want[:3])


def test_tanh_elu_and_sigmoid_stay_within_two_ulps_of_float64_over_a_wide_range():
    x = torch.cat([torch.linspace(-30, 30, 200_001), torch.tensor([1e-30, -1e-30, 1e4, -1e4, 0.0, -0.0])])
    for name, exact in (("tanh", torch.tanh), ("elu", lambda t: torch.where(t > 0, t, torch.expm1(t))),
                        ("sigmoid", torch.sigmoid)):
        got = actlab.layer(name, impl="fast")(x).double()
        want = exact(x.double())
        ulp = torch.finfo(torch.float32).eps * want.abs().clamp(min=torch.finfo(torch.float32).tiny)
        assert ((got - want).abs() / ulp).max().item() <= 2.0, name
    special = torch.tensor([float("inf"), -float("inf"), float("nan")] * 6000)
    torch.testing.assert_close(actlab.layer("tanh", impl="fast")(special), torch.tanh(special), equal_nan=True)
    torch.testing.assert_close(actlab.layer("elu", impl="fast")(special), torch.nn.functional.elu(special),
                               equal_nan=True)
    torch.testing.assert_close(actlab.layer("sigmoid", impl="fast")(special), torch.sigmoid(special),
                               equal_nan=True)


def test_sigmoid_keeps_its_subnormal_tail():
    x = torch.tensor([-88.0, -95.0, -103.0, -104.0, -110.0] * 4000, dtype=torch.float32)
    got = actlab.layer("sigmoid", impl="fast")(x).double()
    want = torch.sigmoid(x.double())  # down to 2^-149; float32 torch.sigmoid flushes these to 0
    assert (got - want).abs().max().item() <= torch.finfo(torch.float32).smallest_normal * 2**-22
    assert got[2].item() > 0 and got[4].item() == 0


# --- dispatch ------------------------------------------------------------------------------------------------


def _grad_fn(y: torch.Tensor) -> str:
    return type(y.grad_fn).__name__


def test_cpu_float32_contiguous_goes_fast():
    x = torch.randn(32, 64, 16, requires_grad=True)
    assert _grad_fn(actlab.layer("leaky_relu", lean=True)(x)) == "RectifierBackward"
    assert _grad_fn(actlab.layer("prelu", num_parameters=64)(x)) == "PReLUBackward"
    assert _grad_fn(actlab.layer("rrelu").train()(x)) == "RectifierBackward"
    assert _grad_fn(actlab.layer("elu")(x)) == "ELUBackward"
    assert _grad_fn(actlab.layer("tanh")(x)) == "FromOutputBackward"
    assert _grad_fn(actlab.layer("relu", lean=True)(x)) == "RectifierBackward"
    assert _grad_fn(actlab.layer("sigmoid")(x)) == "FromOutputBackward"  # forced: ours


@natural_thresholds
def test_torch_own_ops_serve_up_to_the_native_size_and_ours_above():
    x = torch.randn(32, 64, 128, requires_grad=True)  # 1 MiB: above min_numel, below the native size
    assert fast.lookup("relu", x) is torch.relu  # torch's own kernel is as fast at this size
    assert fast.lookup("sigmoid", x) is torch.sigmoid
    assert _grad_fn(actlab.layer("leaky_relu")(x)) == "LeakyReluBackward0"
    assert _grad_fn(actlab.layer("relu", lean=True)(x)) == "RectifierBackward"  # lean: always ours
    with fast.dispatch(native_max_bytes=x.numel() * x.element_size() - 1):
        assert _grad_fn(actlab.layer("relu")(x)) == "RectifierBackward"
        assert _grad_fn(actlab.layer("leaky_relu")(x)) == "RectifierBackward"
        assert _grad_fn(actlab.layer("sigmoid")(x)) == "FromOutputBackward"
    assert _grad_fn(actlab.layer("relu")(x)) == "ReluBackward0"  # the policy is back after the block


@natural_thresholds
def test_an_output_of_32_mib_is_ours_where_glibc_maps_it_afresh():
    """glibc mmaps blocks of 32 MiB and more for every allocation (its largest threshold), so
    torch's fresh output page-faults there: from that size on, ours serve."""
    below = torch.empty(2**23 - 2**14)  # 32 MiB less 64 KiB
    at = torch.empty(2**23)  # 32 MiB exactly: a batch of 128 x 64 x 32 x 32
    for name in ("relu", "sigmoid", "leaky_relu"):
        assert fast.lookup(name, below) is fast.cpu.NATIVE[name], name
        assert fast.lookup(name, at) is not fast.cpu.NATIVE[name], name


@natural_thresholds
def test_prelu_takes_torchs_forward_when_no_gradient_is_wanted(monkeypatch):
    """Inference (no_grad, or nothing requiring a gradient) at 1M elements runs torch's prelu,
    whose forward alone is faster than ours; with a gradient, ours (its backward is the gain);
    at 32 MiB, ours either way."""
    calls: list[tuple[int, ...]] = []
    real = fast.cpu.INFERENCE["prelu"]
    monkeypatch.setitem(fast.cpu.INFERENCE, "prelu", lambda x, w, axis: calls.append(x.shape) or real(x, w, axis))
    x = torch.randn(16, 64, 32, 32)
    for hp in ({}, {"num_parameters": 64}, {"num_parameters": 64, "lean": True}):
        m = actlab.layer("prelu", init=0.3, **hp)
        with torch.no_grad():
            y = m(x)
        assert len(calls) == 1 and y.grad_fn is None
        torch.testing.assert_close(y, actlab.layer("prelu", init=0.3, impl="plain", **hp)(x).detach(), rtol=0, atol=0)
        assert _grad_fn(m(x)) == "PReLUBackward" and len(calls) == 1  # the slope learns: ours
        m.weight.requires_grad_(False)
        assert m(x).grad_fn is None and len(calls) == 2  # nothing to differentiate: inference
        assert _grad_fn(m(x.requires_grad_(True))) == "PReLUBackward" and len(calls) == 2
        x = x.detach()
        calls.clear()
    with torch.no_grad():
        actlab.layer("prelu")(torch.randn(128, 64, 32, 32))
    assert calls == []


def test_channels_last_goes_fast_and_keeps_its_layout():
    x = torch.randn(4, 8, 16, 16).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    y = actlab.layer("prelu", num_parameters=8)(x)
    assert _grad_fn(y) == "PReLUBackward" and y.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("make", [lambda: torch.randn(64, 512).half(), lambda: torch.randn(64, 512).bfloat16(),
                                  lambda: torch.randn(512, 64).t(), lambda: torch.randn(8)[::2]],
                         ids=["float16", "bfloat16", "transposed", "strided"])
def test_unserved_tensors_take_the_plain_path(make):
    x = make().requires_grad_(True)
    for name in ("relu", "leaky_relu", "prelu", "rrelu", "elu", "tanh"):
        assert fast.lookup(name, x) is None
    assert _grad_fn(actlab.layer("leaky_relu", lean=True)(x)) != "RectifierBackward"


SMALL_OPS = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu, "leaky_relu": torch._C._nn.leaky_relu,
             "elu": torch._C._nn.elu}


@natural_thresholds
@pytest.mark.parametrize("n", [64, 2048, 65536])
def test_small_tensors_take_torchs_own_op_in_auto(n):
    x = torch.randn(n)
    assert fast.policy().min_numel_for("cpu") > n
    for name, op in SMALL_OPS.items():
        assert fast.lookup(name, x) is op, name
    assert _grad_fn(actlab.layer("prelu", num_parameters=1)(x.requires_grad_(True))) == "PreluKernelBackward0"
    # RReLU: the kernel's noise in one numba pass, then torch's mul (no Python autograd.Function)
    assert fast.lookup("rrelu", x) is fast.cpu.SMALL["rrelu"]
    assert _grad_fn(actlab.layer("rrelu").train()(x)) == "MulBackward0"
    # lean is chosen for its memory (torch's ops keep y): its kernel serves at every size
    assert _grad_fn(actlab.layer("relu", lean=True)(x)) == "RectifierBackward"
    assert fast.lookup("tanh", x.half()) is None
    with check.fast_everywhere():
        assert _grad_fn(actlab.layer("elu")(x)) == "ELUBackward"


@natural_thresholds
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("form", ["slope", "divisor"])
def test_small_rrelu_is_the_kernel_bit_for_bit(form, dtype):
    """Below min_numel RReLU in training is x times the kernel's factors (1, or the drawn slope):
    the same y and ∂L/∂x as the kernel, bit for bit, at the edge values too, on any layout."""
    gen = torch.Generator().manual_seed(1)
    x = torch.cat([torch.tensor(_EDGES + [float("nan")]), torch.randn(2048 - len(_EDGES) - 1, generator=gen) * 3])
    x = x.to(dtype).reshape(2, 16, 8, 8)
    g = torch.randn(x.shape, generator=gen, dtype=dtype)
    lower, upper = (1 / 8, 1 / 3) if form == "slope" else (3.0, 8.0)

    def run(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.detach().requires_grad_(True)
        y = F.rrelu(x, lower, upper, training=True, form=form, seed=2**40 + 9)
        return y, torch.autograd.grad(y, x, g)[0]

    y, gx = run(x)
    assert _grad_fn(y) == "MulBackward0"
    with fast.dispatch(min_numel=0):
        y_k, gx_k = run(x)
    assert _grad_fn(y_k) == "RectifierBackward"
    torch.testing.assert_close(y, y_k, rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(gx, gx_k, rtol=0, atol=0, equal_nan=True)
    y_cl, gx_cl = run(x.contiguous(memory_format=torch.channels_last))  # noise by logical position
    torch.testing.assert_close(y_cl, y, rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(gx_cl, gx, rtol=0, atol=0, equal_nan=True)


_EDGES = [float("inf"), -float("inf"), 0.0, -0.0, 1e-30, -1e-30, 1e-45, -1e-45, 3.0, -3.0, -20.0, 88.0, -104.0]


@natural_thresholds
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name,hp", [("sigmoid", {}), ("tanh", {}), ("relu", {}), ("leaky_relu", {"negative_slope": 0.2}),
                                     ("elu", {"alpha": 0.7}), ("prelu", {"init": -0.3}),
                                     ("prelu", {"num_parameters": 5, "init": 0.3}),
                                     ("prelu", {"num_parameters": 5, "init": 0.3, "channel_axis": -1})],
                         ids=["sigmoid", "tanh", "relu", "leaky", "elu", "prelu-shared", "prelu-channel",
                              "prelu-axis-last"])
def test_torchs_small_ops_agree_with_the_plain_path_on_edge_values(name, hp, dtype):
    """Where auto hands a small tensor to torch's own op, it is the plain path's function and
    derivative (∂L/∂x, and ∂L/∂a for PReLU) to a few ulps, at ±inf, ±0, subnormals and the kink."""
    gen = torch.Generator().manual_seed(0)
    x = torch.cat([torch.tensor(_EDGES), torch.randn(4 * 5 * 5 * 5 - len(_EDGES), generator=gen) * 4])
    x = x.to(dtype).reshape(4, 5, 5, 5)
    if hp.get("channel_axis") == -1:
        x = x.movedim(1, -1).contiguous()
    g = torch.randn(x.shape, generator=gen, dtype=dtype)
    small, plain = actlab.layer(name, **hp).to(dtype), actlab.layer(name, impl="plain", **hp).to(dtype)
    xs, xp = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ys, yp = small(xs), plain(xp)
    assert type(ys.grad_fn).__name__ != type(yp.grad_fn).__name__ or name in ("sigmoid", "tanh", "relu")
    # the forward: bit for bit, but ELU's (torch's scalar tail rounds α·expm1 once less: 1 ulp)
    torch.testing.assert_close(ys, yp, rtol=2 * torch.finfo(dtype).eps if name == "elu" else 0, atol=0)
    params = [p for p in small.parameters()]
    got = torch.autograd.grad(ys, [xs, *params], g)
    want = torch.autograd.grad(yp, [xp, *plain.parameters()], g)
    eps = torch.finfo(dtype).eps
    # ELU: the plain path differentiates through y + α (α·(expm1(x) + 1)), exact to an ulp of α·g;
    # torch's α·eˣ is exact relative to itself, so they agree to that absolute error
    atol = 2 * eps * hp["alpha"] * g.abs().max().item() if name == "elu" else 0.0
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=4 * eps, atol=atol)


@natural_thresholds
def test_elu_passes_the_gradient_at_nan_on_every_path():
    """f(NaN) = NaN; f'(NaN) = 1 (the identity branch): the plain path, the kernel, and torch's
    own elu at a small size outside its vectorised body, as torch.nn.ELU's scalar code does."""
    x = torch.tensor([float("nan"), -1.0, 2.0] * 40000)
    for impl, policy in (("plain", {}), ("fast", {"min_numel": 0}), ("auto", {"min_numel": 10**9})):
        with fast.dispatch(**policy):
            xx = x[:3].clone() if impl == "auto" else x.clone()
            xx.requires_grad_(True)
            y = actlab.layer("elu", alpha=0.5, impl=impl)(xx)
            (grad,) = torch.autograd.grad(y, xx, torch.ones_like(y))
        assert math.isnan(y[0].item()) and grad[0].item() == 1.0, impl
        assert grad[1].item() == pytest.approx(0.5 * math.exp(-1.0)) and grad[2].item() == 1.0, impl


def test_impl_fast_errors_where_no_kernel_serves():
    with pytest.raises(ValueError, match="no fast kernel for a torch.float16 tensor on cpu"):
        actlab.layer("elu", impl="fast")(torch.randn(100_000).half())
    with pytest.raises(ValueError, match="no fast kernel for a torch.int64 tensor on cpu"):
        actlab.layer("relu", impl="fast")(torch.arange(100_000))


def test_env_var_turns_the_fast_paths_off(monkeypatch):
    monkeypatch.setenv("ACTLAB_FAST_BACKEND", "none")
    assert fast.lookup("elu", torch.randn(100_000)) is None
    monkeypatch.setenv("ACTLAB_FAST_BACKEND", "auto")
    assert fast.lookup("elu", torch.randn(100_000)) is not None
    monkeypatch.setenv("ACTLAB_FAST_BACKEND", "numba-please")
    with pytest.raises(ValueError, match="ACTLAB_FAST_BACKEND='numba-please' is not a backend; valid: none, triton"):
        actlab.layer("elu")(torch.randn(100_000))


def test_numba_follows_torchs_thread_count():
    import numba

    from actlab.fast import cpu

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        actlab.layer("elu")(torch.randn(100_000))
        assert numba.get_num_threads() == 1
        torch.set_num_threads(2)
        actlab.layer("elu")(torch.randn(100_000))
        assert numba.get_num_threads() == min(2, numba.config.NUMBA_NUM_THREADS)
        actlab.layer("elu")(torch.randn(cpu.GRAIN - 1))  # small: one thread, as torch's own ops
        assert numba.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_starting_numbas_threads_keeps_torchs_thread_count():
    """numba's OpenMP start-up resets the calling thread's OpenMP thread count; actlab restores
    torch's (a fresh interpreter, since the start-up happens once)."""
    import subprocess
    import sys

    code = ("import torch; torch.set_num_threads(1); torch.get_num_threads(); import actlab; "
            "actlab.layer('elu')(torch.randn(100_000)); print(torch.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "1", out.stderr[-2000:]


# --- memory kept for backward ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", KEPT, ids=_ids(KEPT))
def test_keeps_no_more_than_torch_nn(case):
    check.memory(case, torch.float32, "cpu")


def _kept(fn, x):
    kept = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: kept.append(t) or t, lambda t: t):
        fn(x)
    return kept


def test_rrelu_training_keeps_no_noise():
    x = torch.randn(64, 1024, requires_grad=True)
    kept = _kept(actlab.layer("rrelu").train(), x)
    assert [tuple(t.shape) for t in kept] == [(64, 1024)]  # y only: the slopes are drawn again
    lean = _kept(actlab.layer("rrelu", lean=True).train(), x)
    assert [(t.dtype, t.numel()) for t in lean] == [(torch.uint8, x.numel() // 8)]
    native = _kept(torch.nn.RReLU().train(), x)
    assert sum(t.numel() * t.element_size() for t in native) == 2 * x.numel() * 4  # x and the noise


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "rrelu"])
def test_lean_keeps_one_bit_per_element(name):
    x = torch.randn(1000, 100, requires_grad=True)
    kept = _kept(actlab.layer(name, lean=True).train(), x)
    assert sum(t.numel() * t.element_size() for t in kept) == x.numel() // 8


def test_lean_prelu_keeps_bits_only_for_a_frozen_slope():
    x = torch.randn(100, 16, 64, requires_grad=True)
    learned = actlab.layer("prelu", num_parameters=16, lean=True)
    assert any(t.shape == x.shape for t in _kept(learned, x))  # ∂L/∂a needs x where x ≤ 0
    frozen = actlab.layer("prelu", num_parameters=16, lean=True)
    frozen.weight.requires_grad_(False)
    kept = _kept(frozen, x)
    assert sum(t.numel() * t.element_size() for t in kept if t.dtype == torch.uint8) == x.numel() // 8
    assert all(t.numel() <= 16 for t in kept if t.dtype != torch.uint8)


# --- RReLU's counter-based random numbers ----------------------------------------------------------------


def test_philox_matches_the_random123_known_answers():
    cases = [((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
             ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
             ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
              (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1))]
    for ctr, key, want in cases:
        got = philox.philox4x32(*[np.array([c]) for c in ctr], *key)
        assert [int(v[0]) for v in got] == list(want)


@pytest.mark.parametrize("form,lower,upper", [("slope", 1 / 8, 1 / 3), ("divisor", 3.0, 8.0), ("slope", 0.0, 0.5)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernel_slopes_are_the_numpy_stream_bit_for_bit(form, lower, upper, dtype):
    n = 3 * 16384 + 13
    got = fast.rrelu_slopes(n, lower, upper, form, seed=2**40 + 17, dtype=dtype).numpy()
    want = philox.slopes(2**40 + 17, n, lower, upper, form, np.float32 if dtype == torch.float32 else np.float64)
    assert np.array_equal(got, want)


def test_rrelu_statistics():
    check.rrelu_statistics("cpu", n=1 << 18)


def test_rrelu_training_is_reproducible_from_its_seed_and_fresh_each_step():
    x = -torch.rand(4, 64, 256)
    a, b = actlab.layer("rrelu", seed=11).train(), actlab.layer("rrelu", seed=11).train()
    first = a(x)
    assert torch.equal(first, b(x))
    assert not torch.equal(first, a(x))
    x.requires_grad_(True)
    y = F.rrelu(x, training=True, seed=5, impl="fast")
    (grad,) = torch.autograd.grad(y, x, torch.ones_like(y))
    torch.testing.assert_close(grad, y.detach() / x.detach())  # backward draws the same slopes again


def test_uniforms_are_even_16_bit_midpoints():
    u = philox.uniforms(9, 1 << 16)
    assert u.min() > 0 and u.max() < 1
    assert np.all((u * 65536 - 0.5) % 1 == 0)


def test_retaining_freed_memory_hands_every_size_back_to_torchs_own_ops():
    """It changes the process's allocator for good, so it runs in a process of its own."""
    import subprocess
    import sys

    code = ("import torch; from actlab import fast; x = torch.empty(2**24);"
            "before = fast.lookup('relu', x) is torch.relu; done = fast.retain_freed_memory();"
            "print(before, done, fast.lookup('relu', x) is torch.relu)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    before, done, after = out.stdout.split()
    assert before == "False"  # 64 MiB: above the native size, ours from the pool
    if done == "True":  # glibc: torch's blocks stay mapped now, so its op serves
        assert after == "True"


@pytest.mark.parametrize("name", ["elu", "tanh", "prelu", "leaky_relu"])
def test_inference_calls_build_no_graph_and_give_the_same_output(name):
    x = torch.randn(64, 512)
    hp = {"lean": True} if name == "leaky_relu" else {}
    fast_, plain = actlab.layer(name, impl="fast", **hp), actlab.layer(name, impl="plain")
    with torch.no_grad():
        y = fast_(x.clone().requires_grad_(True))
    assert y.grad_fn is None and not y.requires_grad
    torch.testing.assert_close(y, plain(x).detach())
    y = fast_(x.clone().requires_grad_(True))  # and with a gradient wanted, the Function's node
    assert y.grad_fn is not None and type(y.grad_fn).__name__.endswith("Backward")


# --- the backend contract and the layering ---------------------------------------------------------------


def test_the_cpu_backend_satisfies_the_declared_contract():
    from actlab.fast import cpu
    from actlab.fast.backend import Backend

    assert isinstance(cpu, Backend)
    missing = [n for n in ("rect_fwd", "prelu_bwd", "rrelu_slopes_into", "KIND") if not hasattr(cpu, n)]
    assert not missing


def test_the_gpu_backend_satisfies_the_declared_contract():
    pytest.importorskip("triton")
    from actlab.fast import gpu
    from actlab.fast.backend import Backend

    assert isinstance(gpu, Backend)


def test_fast_imports_nothing_above_it():
    """fast/ sits below functional and the layers: no module in it imports upward (the import
    circle functional → fast → ops → functional.prelu_slopes is gone)."""
    import ast
    import pathlib

    root = pathlib.Path(fast.__file__).parent
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                mod = node.module or ""
                upward = node.level >= 2 or (node.level == 0 and mod.startswith("actlab") and
                                            not mod.startswith("actlab.fast"))
                assert not upward, f"{path.name} imports {'.' * node.level}{mod}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    assert not (alias.name.startswith("actlab") and not alias.name.startswith("actlab.fast")), \
                        f"{path.name} imports {alias.name}"


def test_importing_the_cpu_backend_starts_no_threads_and_keeps_torchs_count():
    """Importing fast/cpu.py used to start numba's OpenMP pool (process-wide state); now the
    first kernel call does."""
    import subprocess
    import sys

    code = ("import os, torch; torch.set_num_threads(1); torch.get_num_threads();"
            "before = len(os.listdir('/proc/self/task')); env = dict(os.environ);"
            "import actlab.fast.cpu;"
            "print(len(os.listdir('/proc/self/task')) - before, torch.get_num_threads(),"
            "      dict(os.environ) == env)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["0", "1", "True"]


def test_dispatch_policy_is_scoped_to_the_with_block():
    x = torch.randn(64)
    natural = fast.policy()
    with fast.dispatch(min_numel=10**9):
        assert fast.lookup("elu", x) is torch._C._nn.elu and fast.policy().min_numel_for("cpu") == 10**9
        with fast.dispatch(min_numel={"cpu": 0}, native_max_bytes=-1):
            assert fast.lookup("elu", x) not in (None, torch._C._nn.elu)
        assert fast.lookup("elu", x) is torch._C._nn.elu
    assert fast.policy() == natural
    with pytest.raises(ValueError, match="unknown backend kind 'tpu'; valid: cpu, gpu"):
        with fast.dispatch(min_numel={"tpu": 0}):
            pass


@natural_thresholds
def test_the_policy_of_a_with_block_does_not_leak_into_other_threads():
    import threading

    seen = []
    with fast.dispatch(min_numel=0):
        t = threading.Thread(target=lambda: seen.append(fast.policy().min_numel_for("cpu")))
        t.start()
        t.join()
    assert seen == [fast.policy().min_numel_for("cpu")] and seen != [0]


def test_warm_loads_every_cpu_kernel_and_leaves_the_policy_alone():
    """fast.warm() (run by make's install step) reaches every kernel of the backend: afterwards a
    first call of each costs no compilation (a numba dispatcher with a compiled signature)."""
    from actlab import fast

    before = fast.policy()
    took = fast.warm("cpu")
    cpu = fast._load("cpu")
    if cpu is None:
        pytest.skip("numba is not installed")
    assert set(took) == set(cpu.NAMES)
    assert fast.policy() == before
    # the kernels the autograd Functions call (the _helpers are inlined into them)
    compiled = [f for k, f in vars(cpu).items() if hasattr(f, "signatures") and hasattr(f, "py_func")
                and not k.startswith("_")]
    assert compiled and all(f.signatures for f in compiled), [f.py_func.__name__ for f in compiled if not f.signatures]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="LD_DEBUG is glibc's dynamic loader's")
def test_the_kernels_run_on_torchs_openmp_runtime_not_a_second_one(tmp_path):
    """One thread pool in the process: numba's OpenMP layer binds its parallel regions to the
    libgomp torch already loaded, so the kernels run on torch's threads and no second pool spins
    against them (what glibc's loader reports it bound, in a fresh interpreter)."""
    import subprocess

    code = (
        "import torch, numba, actlab, actlab.fast as fast\n"
        "torch.set_num_threads(2)\n"
        "torch.randn(1 << 20).exp().sum()  # torch's parallel region first, as in a training step\n"
        "with fast.dispatch(min_numel=0, native_max_bytes=-1):\n"
        "    actlab.layer('elu')(torch.randn(1 << 16, requires_grad=True)).sum().backward()\n"
        "print(numba.threading_layer())\n")
    env = {**os.environ, "LD_DEBUG": "bindings", "LD_DEBUG_OUTPUT": str(tmp_path / "ld")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    if out.stdout.split()[-1] != "omp":
        pytest.skip(f"numba's threading layer here is {out.stdout.split()[-1]}, not OpenMP")
    logs = list(tmp_path.glob("ld.*"))
    if not logs:
        pytest.skip("the dynamic loader wrote no LD_DEBUG output (not glibc's)")
    targets: dict[str, set[str]] = {"omppool": set(), "libtorch_cpu": set()}
    for f in logs:
        for line in f.read_text(errors="replace").splitlines():
            if "`GOMP_parallel'" not in line or "binding file" not in line:
                continue
            src, dst = line.split("binding file ", 1)[1].split(" to ", 1)
            for k in targets:
                if k in src.rsplit("/", 1)[-1]:
                    targets[k].add(dst.split(" [", 1)[0])
    assert targets["libtorch_cpu"], "torch's parallel regions were not seen binding GOMP_parallel"
    assert targets["omppool"] == targets["libtorch_cpu"], targets


@pytest.mark.parametrize("shape", [(5, 16, 33, 33), (3, 7, 128, 128), (2, 3, 129, 131), (200, 64, 3, 3)],
                         ids=["33x33-planes", "plane-of-one-chunk", "plane-split-in-blocks", "3x3-planes"])
def test_prelu_planes_kernels_at_every_plane_size_equal_the_plain_path(shape, fast_path_forced):
    """The planes kernels (channels-first PReLU) at plane sizes below, at and above their task
    size (CHUNK elements: a large plane is cut into blocks, each with its own partial sum):
    every plane keeps its own slope and slope-gradient sum, exactly as the plain path."""
    c = shape[1]
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(shape, generator=gen, dtype=torch.float64)
    g = torch.randn(shape, generator=gen, dtype=torch.float64)
    w = torch.linspace(-0.4, 0.6, c, dtype=torch.float64)
    outs = []
    for impl in ("fast", "plain"):
        m = actlab.layer("prelu", num_parameters=c, impl=impl).double()
        with torch.no_grad():
            m.weight.copy_(w)
        xi = x.clone().requires_grad_(True)
        y = m(xi)
        outs.append((y.detach(), *torch.autograd.grad(y, (xi, m.weight), g)))
    assert fast.lookup("prelu", x) is not None
    for got, want in zip(outs[0], outs[1]):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
