"""The silent wrong answers of issue 9, one test each (each failed on the code before the fix):
ELU in place in training, RReLU noise under checkpoint recomputation, the functional forms'
hyper-parameter checks, RReLU noise by logical position. (The pool's reachable-storage case is in
test_pool.py; trace's empty output and forward AD's None tangent in test_torch_integration.py.)
"""

from __future__ import annotations

import pytest
import torch
from torch.utils.checkpoint import checkpoint

from actlab import fast
from actlab import functional as F
from actlab import layers

pytest.importorskip("numba")


@pytest.mark.parametrize("size", ["forced", "large"])
def test_elu_inplace_after_another_op_trains_like_torch_nn(size, request):
    """It raised "modified by an inplace operation" at any size: the plain path's clamp kept x."""
    if size == "forced":
        request.getfixturevalue("fast_path_forced")
        shape = (4, 16, 8, 8)
    else:
        shape = (8, 64, 32, 32)  # 524,288 elements: the fast path's natural size
    torch.manual_seed(0)
    x = torch.randn(shape, requires_grad=True)
    grads = []
    for elu in (layers.ELU(0.7, inplace=True), torch.nn.ELU(0.7, inplace=True)):
        h = x * 1.5  # another op first: a non-leaf that may be overwritten
        y = elu(h)
        assert y.data_ptr() == h.data_ptr()  # in place, as asked
        (g,) = torch.autograd.grad((y * y).sum(), x)
        grads.append((y.detach().clone(), g))
    torch.testing.assert_close(grads[0][0], grads[1][0])
    torch.testing.assert_close(grads[0][1], grads[1][1])


@pytest.mark.parametrize("use_reentrant", [False, True], ids=["non-reentrant", "reentrant"])
@pytest.mark.parametrize("seed", [None, 123], ids=["global-rng", "own-seed"])
def test_rrelu_under_checkpoint_recomputes_the_same_noise(seed, use_reentrant):
    """Recomputation drew new noise for RReLU(seed=…): the gradients belonged to another forward.
    (16,384 elements: below min_numel, the small-tensor path: the noise in numba, torch's mul.)"""
    torch.manual_seed(0)
    m = layers.RReLU(seed=seed).train()
    w = torch.randn(4, 64, 64)
    x = (-torch.rand(4, 64, 64) - 0.1).requires_grad_(True)  # all negative: every slope drawn

    def block(x):
        return m(x * 1.0) * w

    torch.manual_seed(1)
    y = checkpoint(block, x, use_reentrant=use_reentrant)
    y.sum().backward()  # reentrant checkpoint does not support autograd.grad
    g = x.grad
    slopes = (y.detach() / w) / x.detach()  # the noise of the forward whose output we hold
    torch.testing.assert_close(g, slopes * w)  # ∂y/∂x = slope·w with that same noise
    # and the next forward draws fresh noise
    y2 = checkpoint(block, x, use_reentrant=use_reentrant)
    assert not torch.equal(y2, y)


BAD = [  # (functional call, the layer built with the same bad value)
    (lambda x: F.leaky_relu(x, negative_slope=-0.1), lambda: layers.LeakyReLU(negative_slope=-0.1)),
    (lambda x: F.leaky_relu(x, negative_slope=1.5), lambda: layers.LeakyReLU(negative_slope=1.5)),
    (lambda x: F.elu(x, alpha=-1.0), lambda: layers.ELU(alpha=-1.0)),
    (lambda x: F.elu(x, alpha=float("nan")), lambda: layers.ELU(alpha=float("nan"))),
    (lambda x: F.rrelu(x, lower=0.5, upper=0.2, training=True), lambda: layers.RReLU(lower=0.5, upper=0.2)),
    (lambda x: F.rrelu(x, lower=0.5, upper=2.0), lambda: layers.RReLU(lower=0.5, upper=2.0)),
    (lambda x: F.rrelu(x, form="quotient"), lambda: layers.RReLU(form="quotient")),
    (lambda x: F.prelu(x, torch.ones(1), channel_axis=1.5), lambda: layers.PReLU(channel_axis=1.5)),
]


@pytest.mark.parametrize("call,layer", BAD)
@pytest.mark.parametrize("size", ["forced", "natural"])
def test_functional_forms_reject_what_the_layers_reject_with_the_same_message(call, layer, size, request):
    """F.leaky_relu(x, -0.1) was accepted (and above 32 MiB gave gradient 1.0 instead of the slope)."""
    if size == "forced":
        request.getfixturevalue("fast_path_forced")
    x = torch.randn(4, 32, 16, 16, requires_grad=True)  # 32,768 elements: torch's small ops, or forced ours
    with pytest.raises(ValueError) as from_layer:
        layer()
    with pytest.raises(ValueError) as from_functional:
        call(x)
    assert str(from_functional.value) == str(from_layer.value)


def test_functional_rrelu_defaults_by_form_as_the_layer():
    x = -torch.rand(4, 64, 64)
    for form in ("slope", "divisor"):
        m = layers.RReLU(form=form).eval()
        torch.testing.assert_close(F.rrelu(x, form=form), m(x))


@pytest.mark.parametrize("min_numel,path", [(None, "MulBackward0"), (0, "RectifierBackward")],
                         ids=["small-path", "kernel"])
@pytest.mark.parametrize("form", ["slope", "divisor"])
def test_rrelu_noise_depends_on_logical_position_and_seed_not_layout_or_inplace(form, min_numel, path):
    """The same seed gave three outputs for contiguous, transposed and in-place inputs. 20,480
    elements: at the natural threshold the small-tensor path (the noise in numba, torch's mul),
    forced, the kernel."""
    x = torch.randn(8, 16, 16, 10)
    lo, hi = (1 / 8, 1 / 3) if form == "slope" else (3.0, 8.0)

    def run(t, **kw):
        with fast.dispatch(min_numel=min_numel):
            return F.rrelu(t, lo, hi, True, form=form, seed=77, **kw)

    want = run(x.clone())  # contiguous: the fast path
    y = run(x.clone().requires_grad_(True))
    assert type(y.grad_fn).__name__ == path
    variants = {
        "transposed view": run(x.transpose(1, 3).contiguous().transpose(1, 3)),
        "channels_last": run(x.contiguous(memory_format=torch.channels_last)),
        "inplace": run(x.clone(), inplace=True),
        "plain": run(x.clone(), impl="plain"),
        "lean": run(x.clone().requires_grad_(True), lean=True).detach(),
    }
    for what, got in variants.items():
        assert torch.equal(got, want), f"{what}: other noise for the same seed"
    assert not torch.equal(F.rrelu(x, lo, hi, True, form=form, seed=78), want)  # the seed does matter


def test_rrelu_noise_by_position_under_the_natural_threshold_too():
    x = torch.randn(8, 64, 32, 32)  # the fast path's natural size
    a = F.rrelu(x, training=True, seed=5)
    b = F.rrelu(x.contiguous(memory_format=torch.channels_last), training=True, seed=5)
    assert torch.equal(a, b)


def test_rrelu_with_its_own_seed_is_the_same_with_and_without_checkpoint_and_leaves_the_global_rng():
    """Recomputation takes the journalled seed without drawing, so the generator's stream — and
    every later step's noise — is the same as without checkpointing; the global RNG is untouched."""
    x = -torch.rand(4, 64, 64) - 0.1
    plain, ckpt = layers.RReLU(seed=9).train(), layers.RReLU(seed=9).train()
    for _ in range(2):
        state = torch.random.get_rng_state()
        xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        ya = plain(xa * 1.0)
        yb = checkpoint(lambda t: ckpt(t * 1.0), xb, use_reentrant=False)
        ya.sum().backward()
        yb.sum().backward()
        assert torch.equal(ya, yb) and torch.equal(xa.grad, xb.grad)
        assert torch.equal(state, torch.random.get_rng_state())
