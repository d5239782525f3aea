"""Fast paths behind :mod:`actlab.functional`: fused CPU kernels and Triton GPU kernels.

Contract: :func:`lookup` returns a callable for activation ``name`` on tensor ``x`` (its device,
dtype and layout), or ``None`` when no fast kernel serves it, in which case the plain path runs.
Each callable is autograd-aware (a ``torch.autograd.Function``) and has exactly the semantics of
the plain path in :mod:`actlab.functional`:

=============  ====================================================
name           call
=============  ====================================================
sigmoid, tanh  ``k(x)``
relu           ``k(x)``
leaky_relu     ``k(x, negative_slope)``
prelu          ``k(x, weight, channel_axis)``
rrelu          ``k(x, lower, upper, form, seed)``  (training only)
elu            ``k(x, alpha)``
=============  ====================================================
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor

__all__ = ["lookup"]


def lookup(name: str, x: Tensor, *, lean: bool = False) -> Callable[..., Tensor] | None:
    """The fast kernel for ``name`` on ``x``, or None."""
    return None
