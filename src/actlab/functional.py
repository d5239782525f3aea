"""Functional forms of the seven activations, as in ``torch.nn.functional``.

Each function takes ``impl``:

* ``"plain"`` — a few plain torch operations that autograd differentiates. This is the path the
  fast kernels are checked against; it follows :mod:`actlab.reference` exactly (the left
  derivative at the kink: relu'(0) = 0, leaky/prelu/rrelu'(0) = a, elu'(0) = α).
* ``"fast"`` — the fused kernels of :mod:`actlab.fast` (CPU and Triton); an error if none
  serves this device and dtype.
* ``"auto"`` (default) — fast where a kernel serves the tensor, plain otherwise.

``lean=True`` asks the fast path to keep only one bit per element for backward (the
piecewise-linear family); the plain path ignores it.

The modules in :mod:`actlab.layers` are thin wrappers over these functions; see them for the
maths and the papers.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from . import fast

__all__ = ["sigmoid", "tanh", "relu", "leaky_relu", "prelu", "rrelu", "elu", "rrelu_step_seed"]

IMPLS = ("auto", "plain", "fast")


def _pick(name: str, x: Tensor, impl: str, lean: bool) -> Callable[..., Tensor] | None:
    """The fast kernel for ``name`` on ``x``, or None for the plain path."""
    if impl == "plain":
        return None
    if impl not in IMPLS:
        raise ValueError(f"{name}: invalid impl={impl!r}; valid: {', '.join(IMPLS)}")
    kernel = fast.lookup(name, x, lean=lean)
    if kernel is None and impl == "fast":
        raise ValueError(f"{name}: no fast kernel for a {x.dtype} tensor on {x.device.type}; "
                         f"valid: impl='auto' or 'plain'")
    return kernel


def _inplace(x: Tensor, y: Tensor, inplace: bool) -> Tensor:
    return x.copy_(y) if inplace else y


def _scale_negative(x: Tensor, a: Tensor | float) -> Tensor:
    """x where x > 0, a·x elsewhere (so the derivative at 0 is a, and ∂/∂a at 0 is 0)."""
    return torch.where(x > 0, x, a * x)


def sigmoid(x: Tensor, *, impl: str = "auto") -> Tensor:
    """σ(x) = 1/(1 + e^(−x)). See :class:`actlab.layers.Sigmoid`."""
    k = _pick("sigmoid", x, impl, False)
    return k(x) if k else torch.sigmoid(x)


def tanh(x: Tensor, *, impl: str = "auto") -> Tensor:
    """tanh(x) = 2σ(2x) − 1. See :class:`actlab.layers.Tanh`."""
    k = _pick("tanh", x, impl, False)
    return k(x) if k else torch.tanh(x)


def relu(x: Tensor, *, inplace: bool = False, impl: str = "auto", lean: bool = False) -> Tensor:
    """max(0, x), relu'(0) = 0. See :class:`actlab.layers.ReLU`."""
    k = None if inplace else _pick("relu", x, impl, lean)
    if k:
        return k(x)
    # torch's own relu is already exact here: relu(NaN) = NaN, relu(−inf) = 0, and its backward
    # masks with result > 0, so relu'(0) = 0
    return torch.relu_(x) if inplace else torch.relu(x)


def leaky_relu(x: Tensor, negative_slope: float = 0.01, *, inplace: bool = False, impl: str = "auto",
               lean: bool = False) -> Tensor:
    """x for x > 0, a·x otherwise. See :class:`actlab.layers.LeakyReLU`."""
    k = None if inplace else _pick("leaky_relu", x, impl, lean)
    if k:
        return k(x, negative_slope)
    return _inplace(x, _scale_negative(x, negative_slope), inplace)


def prelu_slopes(x: Tensor, weight: Tensor, channel_axis: int = 1) -> Tensor:
    """``weight`` shaped to broadcast against ``x`` along ``channel_axis``; checks the count."""
    c = weight.numel()
    if c == 1:
        return weight.reshape(())
    if x.dim() < 2:
        raise ValueError(f"prelu: {c} channels need an input with a channel axis; got shape {tuple(x.shape)}")
    axis = channel_axis % x.dim()
    if x.shape[axis] != c:
        raise ValueError(f"prelu: input has {x.shape[axis]} channels on axis {channel_axis} but "
                         f"num_parameters={c}; valid: 1 or {x.shape[axis]}")
    shape = [1] * x.dim()
    shape[axis] = c
    return weight.reshape(shape)


def prelu(x: Tensor, weight: Tensor, *, channel_axis: int = 1, impl: str = "auto", lean: bool = False) -> Tensor:
    """x for x > 0, a·x otherwise, a = ``weight`` (1 or one per channel along ``channel_axis``).

    See :class:`actlab.layers.PReLU`.
    """
    a = prelu_slopes(x, weight, channel_axis)  # validates the channel count on every path
    k = _pick("prelu", x, impl, lean)
    if k:
        return k(x, weight, channel_axis)
    return _scale_negative(x, a.to(x.dtype))


def rrelu_step_seed(generator: torch.Generator | None = None) -> int:
    """A fresh 63-bit seed for one training step's noise, from ``generator`` or the global RNG."""
    return int(torch.randint(0, 2**63 - 1, (), generator=generator, dtype=torch.int64))


def rrelu_noise(x: Tensor, lower: float, upper: float, form: str, seed: int) -> Tensor:
    """The plain path's training slopes for ``x``: a ~ U(lower, upper), or 1/a in divisor form."""
    g = torch.Generator(device=x.device).manual_seed(seed)
    a = torch.empty(x.shape, dtype=torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype,
                    device=x.device).uniform_(lower, upper, generator=g)
    return (a if form == "slope" else a.reciprocal()).to(x.dtype)


def rrelu(x: Tensor, lower: float = 1 / 8, upper: float = 1 / 3, training: bool = False, *,
          form: str = "slope", seed: int | None = None, inplace: bool = False, impl: str = "auto",
          lean: bool = False) -> Tensor:
    """Randomized leaky ReLU. In training the slope for x < 0 is drawn per element from
    ``seed`` (or the global RNG); in eval it is the test slope. See :class:`actlab.layers.RReLU`.
    """
    mean = (lower + upper) / 2
    if not training:
        return leaky_relu(x, mean if form == "slope" else 1 / mean, inplace=inplace, impl=impl, lean=lean)
    if seed is None:
        seed = rrelu_step_seed()
    k = None if inplace else _pick("rrelu", x, impl, lean)
    if k:
        return k(x, lower, upper, form, seed)
    return _inplace(x, _scale_negative(x, rrelu_noise(x, lower, upper, form, seed)), inplace)


def elu(x: Tensor, alpha: float = 1.0, *, inplace: bool = False, impl: str = "auto") -> Tensor:
    """x for x > 0, α(e^x − 1) otherwise; expm1 of min(x, 0) so nothing overflows.

    See :class:`actlab.layers.ELU`.
    """
    k = None if inplace else _pick("elu", x, impl, False)
    if k:
        return k(x, alpha)
    return _inplace(x, torch.where(x > 0, x, alpha * torch.expm1(x.clamp(max=0))), inplace)
