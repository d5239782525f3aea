"""The autograd functions of the fast paths, one per family, over a backend's fused kernels.

A backend (:mod:`actlab.fast.cpu` with numba, :mod:`actlab.fast.gpu` with Triton) fills
preallocated flat tensors; this module allocates them (on the CPU from :mod:`actlab.fast.pool`),
shapes them, decides what backward keeps, and writes each backward beside its forward.
:func:`run` calls a Function, skipping autograd's machinery when no gradient is wanted.
What is kept (the "memory kept for backward" of the bench):

==============  ===================================  ========================================
function        kept (default)                       kept with ``lean=True``
==============  ===================================  ========================================
sigmoid, tanh   y (σ' = y(1−y), tanh' = 1−y²)        —
relu, leaky     y (x > 0 ⇔ y > 0 as the slope ≥ 0)   1 bit per element
rrelu (train)   y, and the 64-bit step seed          1 bit per element, and the seed
prelu           x (a may be learned negative, so y   1 bit per element if the slope is frozen
                cannot tell the sign of x; and       (``weight.requires_grad`` False); else x,
                ∂L/∂a = Σ_{x≤0} x·g needs x)         as without lean — see :class:`PReLU`
elu             y (f' = y + α for y ≤ 0)             —
==============  ===================================  ========================================

torch.nn keeps the input for LeakyReLU and ELU, the input and weight for PReLU, and the input
and a full-size noise tensor for RReLU in training; so nothing here keeps more. (Where a backend
lists an op in ``NATIVE`` — relu, and leaky_relu on the CPU — outside lean mode torch's own op
runs and keeps what torch keeps.)

Double backward (``create_graph=True``) runs the same maths as plain differentiable torch
operations on the kept tensors, so second derivatives agree with the plain path; so does a
backward whose incoming gradient is not a plain eager tensor (``gradcheck``'s batched-gradient
check runs backward under ``vmap``).

Every Function takes its arguments in one order: ``(backend, x, *parameters, lean)``, as the
backend's kernels take ``(inputs, outputs, parameters)`` (see :mod:`actlab.fast.backend`).
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor
from torch.autograd import Function

from . import pool
from .backend import Backend, RReLUParams

__all__ = ["eager", "memory_order", "run", "Rectifier", "rrelu_params", "check_prelu_channels", "prelu_slopes",
           "PReLU", "ELU", "FromOutput"]


# --- when the kernels may run at all ---------------------------------------------------------------------

_is_wrapped = torch._C._functorch.is_functorch_wrapped_tensor
_is_legacy_batched = torch._C._functorch.is_legacy_batchedtensor  # gradcheck's batched-gradient check
_forward_ad = torch.autograd.forward_ad
_is_tracing = torch._C._is_tracing  # torch.jit.is_tracing without its Python wrapper (~0.2 µs a call)
_PLAIN_TYPES = (Tensor, torch.nn.Parameter)


def eager(*tensors: Tensor) -> bool:
    """True when the fast kernels may run on these tensors: plain concrete tensors in eager
    mode, with no tracer, compiler, exporter, forward-mode AD level or torch.func transform
    looking (about 1 µs). Otherwise the plain path's torch operations run — what those tools
    trace, fuse, export and differentiate."""
    # torch.compiler.is_compiling first: dynamo folds it to True, so it never traces what follows
    if torch.compiler.is_compiling() or _is_tracing() or _forward_ad._current_level >= 0:
        return False
    for t in tensors:
        if type(t) not in _PLAIN_TYPES or _is_wrapped(t) or _is_legacy_batched(t):
            return False  # FakeTensor, FunctionalTensor, other subclasses; functorch's wrappers
    return True


# --- layout: every kernel sees flat tensors in memory order ----------------------------------------


def memory_order(x: Tensor) -> tuple[int, ...] | None:
    """How the kernels walk x: ``()`` if contiguous; the permutation of its dims that lists them in
    memory order for channels-last 4-D and 5-D tensors (x.permute(p) is contiguous); else None."""
    if x.is_contiguous():
        return ()
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return (0, 2, 3, 1)
    if x.dim() == 5 and x.is_contiguous(memory_format=torch.channels_last_3d):
        return (0, 2, 3, 4, 1)
    return None


def _flat(t: Tensor, perm: tuple[int, ...]) -> Tensor:
    """t's elements in the memory order of layout ``perm``, for a backend that walks them flat:
    contiguous t as it is (each torch call costs the host microseconds, so none is spent on
    views), else a copy in that order (e.g. the expanded gradient of ``y.sum()``)."""
    if not perm:
        return t if t.is_contiguous() else t.contiguous()
    return t.permute(perm).contiguous().view(-1)


def _flat_out(t: Tensor, perm: tuple[int, ...]) -> Tensor:
    """An output made by :func:`_empty` with the same ``perm``, in memory order."""
    return t if not perm else t.permute(perm).view(-1)


def _empty(x: Tensor, perm: tuple[int, ...]) -> Tensor:
    """An uninitialised tensor shaped like x with the memory layout ``perm``; on the CPU from
    :mod:`actlab.fast.pool` (no page faults for a fresh output)."""
    if memory_order(x) == perm:  # x itself, or a gradient laid out like it
        if x.device.type != "cpu":
            return torch.empty_like(x)
        return pool.empty_strided(x.shape, x.stride(), x.dtype)
    shape = [x.shape[p] for p in perm] if perm else list(x.shape)
    stride, step = [0] * len(shape), 1
    for i in reversed(range(len(shape))):  # contiguous strides of the shape in memory order
        stride[i], step = step, step * max(shape[i], 1)
    if perm:  # back to x's dim order
        inverse = sorted(range(len(perm)), key=perm.__getitem__)
        shape, stride = [shape[i] for i in inverse], [stride[i] for i in inverse]
    if x.device.type != "cpu":
        return torch.empty_strided(shape, stride, dtype=x.dtype, device=x.device)
    return pool.empty_strided(shape, stride, x.dtype)


def _bits(backend: Backend, n: int, device: torch.device) -> Tensor:
    return torch.empty(backend.bits_nbytes(n), dtype=torch.uint8, device=device)


# --- calling a Function: without autograd's machinery when no gradient is wanted ---------------------


class _NoGraph:
    """Stands in for ctx when nothing needs a gradient: what forward keeps goes nowhere."""

    def save_for_backward(self, *tensors: Tensor | None) -> None:
        pass


def run(fn: type[Function], *args: Any) -> Tensor:
    """``fn.apply(*args)``, or straight ``fn.forward`` when grad mode is off or no tensor argument
    requires a gradient (inference): the same output without a graph node, saving the ~10 µs
    that ``Function.apply`` costs the host per call."""
    if torch.is_grad_enabled():
        for a in args:
            if isinstance(a, Tensor) and a.requires_grad:
                return fn.apply(*args)
    return fn.forward(_NoGraph(), *args)


# --- rectifiers: relu (slope None) and leaky ---------------------------------------------------------


class Rectifier(Function):
    """The piecewise-linear family with a fixed or drawn slope: y = x for x > 0, else s·x.

    ``slope``: None for relu (s = 0), a float for leaky relu, or :data:`RReLUParams` for RReLU in
    training, whose s is drawn per element from the step seed (Philox; see
    :mod:`actlab.fast.philox`) — drawn again in backward instead of being stored.

    Backward: g where x > 0 (read from y > 0, or from the bit), else s·g (relu: 0). Kept: y, or
    one bit per element with ``lean`` (and RReLU's seed, in ``slope``).
    """

    @staticmethod
    def forward(ctx: Any, backend: Backend, x: Tensor, slope: float | RReLUParams | None, lean: bool) -> Tensor:
        perm = memory_order(x)
        y = _empty(x, perm)
        bits = _bits(backend, x.numel(), x.device) if lean else None
        fwd = backend.rrelu_fwd if isinstance(slope, tuple) else backend.rect_fwd
        fwd(_flat(x, perm), _flat_out(y, perm), bits, slope)
        ctx.save_for_backward(bits if lean else y)
        ctx.slope, ctx.lean, ctx.backend, ctx.perm = slope, lean, backend, perm
        ctx.like = (x.shape, x.stride(), x.dtype, x.device)
        return y

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        (kept,) = ctx.saved_tensors
        if torch.is_grad_enabled() or not eager(g):  # g · f'(x), f' piecewise constant (see the module)
            return None, g * _rect_grad(ctx, kept, _ones(ctx.like)), None, None
        return None, _rect_grad(ctx, kept, g), None, None


def _ones(like: tuple[Any, ...]) -> Tensor:
    """A plain tensor of ones with x's shape and layout (f'(x) = the backward of a gradient of ones)."""
    shape, stride, dtype, device = like
    return torch.ones_like(torch.empty_strided(shape, stride, dtype=dtype, device=device))


def _rect_grad(ctx: Any, kept: Tensor, g: Tensor) -> Tensor:
    gx = _empty(g, ctx.perm)
    bwd = ctx.backend.rrelu_bwd if isinstance(ctx.slope, tuple) else ctx.backend.rect_bwd
    bwd(kept if ctx.lean else _flat(kept, ctx.perm), _flat(g, ctx.perm), _flat_out(gx, ctx.perm), ctx.slope, ctx.lean)
    return gx


def rrelu_params(lower: float, upper: float, form: str, seed: int) -> RReLUParams:
    """RReLU's training slope for :class:`Rectifier` and the backends."""
    return int(seed), float(lower), float(upper), form == "divisor"


def check_prelu_channels(x: Tensor, c: int, channel_axis: int = 1) -> None:
    """Raise if ``c`` slopes cannot apply to ``x`` along ``channel_axis`` (plain integers, no tensor
    op: every PReLU call checks, the fast path included)."""
    if c == 1:
        return
    if x.dim() < 2:
        raise ValueError(f"prelu: {c} channels need an input with a channel axis; got shape {tuple(x.shape)}")
    n = x.shape[channel_axis % x.dim()]
    if n != c:
        raise ValueError(f"prelu: input has {n} channels on axis {channel_axis} but num_parameters={c}; "
                         f"valid: 1 or {n}")


def prelu_slopes(x: Tensor, weight: Tensor, channel_axis: int = 1) -> Tensor:
    """``weight`` shaped to broadcast against ``x`` along ``channel_axis``; checks the count."""
    c = weight.numel()
    check_prelu_channels(x, c, channel_axis)
    if c == 1:
        return weight.reshape(())
    axis = channel_axis % x.dim()
    shape = [1] * x.dim()
    shape[axis] = c
    return weight.reshape(shape)


# --- PReLU ---------------------------------------------------------------------------------------------


def prelu_geometry(x: Tensor, c: int, channel_axis: int, perm: tuple[int, ...]) -> tuple[int, int, int]:
    """(outer, C, inner): x in memory order viewed as C channel blocks of ``inner`` elements."""
    if c == 1:
        return 1, 1, x.numel()
    perm = perm or tuple(range(x.dim()))
    pos = perm.index(channel_axis % x.dim())
    shape = [x.shape[p] for p in perm]
    outer = 1
    for s in shape[:pos]:
        outer *= s
    return outer, c, x.numel() // (outer * c)


class PReLU(Function):
    """y = x for x > 0, else a_c·x, a = ``weight`` (one shared, or one per channel).

    Backward: ∂L/∂x = g where x > 0 else a_c·g; ∂L/∂a_c = Σ over channel c of x·g where x ≤ 0,
    reduced in the same pass (CPU: per-task partial sums in float64; GPU: per-program partial
    sums, then one small deterministic sum — no atomics, so the result is reproducible).

    Kept: x. With ``lean=True`` and a frozen slope (``weight.requires_grad`` False) one bit per
    element; with a learned slope lean keeps x all the same: ∂L/∂a needs the values of x where
    x ≤ 0 — a bit cannot give them, and recovering x = y/a from the next layer's copy of y is
    neither exact nor possible where a = 0.
    """

    @staticmethod
    def forward(ctx: Any, backend: Backend, x: Tensor, weight: Tensor, channel_axis: int, lean: bool) -> Tensor:
        perm = memory_order(x)
        geom = prelu_geometry(x, weight.numel(), channel_axis, perm)
        w = _slopes_as(weight, x.dtype)
        y = _empty(x, perm)
        bits_only = lean and not weight.requires_grad
        bits = _bits(backend, x.numel(), x.device) if bits_only else None
        backend.prelu_fwd(_flat(x, perm), _flat_out(y, perm), bits, w, geom)
        ctx.save_for_backward(bits if bits_only else x, weight)
        ctx.bits_only, ctx.backend, ctx.perm, ctx.geom, ctx.channel_axis = bits_only, backend, perm, geom, channel_axis
        ctx.like = (x.shape, x.stride(), x.dtype, x.device)
        return y

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        kept, weight = ctx.saved_tensors
        need_w = ctx.needs_input_grad[2] and not ctx.bits_only
        plain = torch.is_grad_enabled() or not eager(g)  # double backward, vmap: the plain formulas
        if plain and not ctx.bits_only:
            a = prelu_slopes(kept, weight, ctx.channel_axis).to(kept.dtype)
            gx = torch.where(kept > 0, g, a * g)
            gw = None
            if need_w:
                contrib = torch.where(kept > 0, torch.zeros_like(g), kept * g)
                gw = _sum_to_channels(contrib, weight, ctx.channel_axis).to(weight.dtype)
            return None, gx, gw, None, None
        perm, backend = ctx.perm, ctx.backend
        w = _slopes_as(weight, ctx.like[2])
        if ctx.bits_only:  # g · f'(x) in plain mode, f' from the bits, so it is linear in g
            ones = _ones(ctx.like) if plain else g
            gx = _empty(ones, perm)
            backend.prelu_bits_bwd(kept, _flat(ones, perm), _flat_out(gx, perm), w, ctx.geom)
            return None, (g * gx if plain else gx), None, None, None
        gx = _empty(g, perm)
        gw = backend.prelu_bwd(_flat(kept, perm), _flat(g, perm), _flat_out(gx, perm), w, ctx.geom)
        return None, gx, (gw.to(weight.dtype).view(weight.shape) if need_w else None), None, None


def _slopes_as(weight: Tensor, dtype: torch.dtype) -> Tensor:
    """The slopes in x's dtype, as the plain path rounds them (no copy when they already are)."""
    w = weight.detach()
    if w.dtype != dtype:
        w = w.to(dtype)
    return w if w.is_contiguous() else w.contiguous()


def _sum_to_channels(t: Tensor, weight: Tensor, channel_axis: int) -> Tensor:
    if weight.numel() == 1:
        return t.sum().reshape(weight.shape)
    axis = channel_axis % t.dim()
    return t.sum(dim=[d for d in range(t.dim()) if d != axis])


# --- smooth functions: backward from the output ------------------------------------------------------------


class ELU(Function):
    """y = x for x > 0, else α(eˣ − 1); kept: y, since f' = y + α for y ≤ 0 (f'(0) = α), else 1
    (NaN included, as torch's scalar elu_backward)."""

    @staticmethod
    def forward(ctx: Any, backend: Backend, x: Tensor, alpha: float, lean: bool) -> Tensor:
        """``lean`` is accepted for the common argument order; ELU keeps y either way."""
        perm = memory_order(x)
        y = _empty(x, perm)
        backend.elu_fwd(_flat(x, perm), _flat_out(y, perm), alpha)
        ctx.save_for_backward(y)
        ctx.alpha, ctx.backend, ctx.perm = alpha, backend, perm
        return y

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        (y,) = ctx.saved_tensors
        if torch.is_grad_enabled() or not eager(g):
            return None, torch.where(y <= 0, g * (y + ctx.alpha), g), None, None
        gx = _empty(g, ctx.perm)
        ctx.backend.elu_bwd(_flat(y, ctx.perm), _flat(g, ctx.perm), _flat_out(gx, ctx.perm), ctx.alpha)
        return None, gx, None, None


#: f' from the output, for the functions whose backward needs only y
_GRAD_FROM_OUTPUT: dict[str, Callable[[Tensor], Tensor]] = {
    "sigmoid": lambda y: y * (1 - y),  # σ' = σ(1 − σ)
    "tanh": lambda y: 1 - y * y,  # tanh' = 1 − tanh²
}


class FromOutput(Function):
    """sigmoid or tanh (``name``), through the backend's kernels ``fwd(x, y)`` and
    ``bwd(y, g, gx)`` (e.g. ``backend.tanh_fwd``, ``backend.tanh_bwd``); kept: y."""

    @staticmethod
    def forward(ctx: Any, backend: Backend, x: Tensor, fwd: Callable[..., None], bwd: Callable[..., None],
                name: str, lean: bool = False) -> Tensor:
        perm = memory_order(x)
        y = _empty(x, perm)
        fwd(_flat(x, perm), _flat_out(y, perm))
        ctx.save_for_backward(y)
        ctx.bwd, ctx.perm, ctx.name = bwd, perm, name
        return y

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        (y,) = ctx.saved_tensors
        if torch.is_grad_enabled() or not eager(g):  # double backward, vmap: differentiable torch ops
            return None, g * _GRAD_FROM_OUTPUT[ctx.name](y), None, None, None, None
        gx = _empty(g, ctx.perm)
        ctx.bwd(_flat(y, ctx.perm), _flat(g, ctx.perm), _flat_out(gx, ctx.perm))
        return None, gx, None, None, None, None
