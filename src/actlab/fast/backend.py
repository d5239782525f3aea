"""The contract between :mod:`actlab.fast.ops` and a backend (:mod:`actlab.fast.cpu`, :mod:`actlab.fast.gpu`).

A backend is a module that satisfies :class:`Backend`: it fills preallocated flat tensors (all
in memory order, contiguous, on its device) and allocates nothing but scratch. Every kernel
function takes its arguments in one order: **inputs, outputs, then parameters** — the tensors
it reads, the tensors it writes, then the scalars and small tensors that shape the maths. The
``bits`` argument of a forward is an output (the lean mask, or None); ``lean`` of a backward says
whether ``kept`` is that mask (else y, or x for PReLU).

Nothing here imports a backend: :mod:`actlab.fast` loads them lazily and checks
``isinstance(module, Backend)`` (a runtime-checkable protocol checks the names, not the types).
"""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

import torch
from torch import Tensor

__all__ = ["Backend", "RReLUParams"]

#: RReLU's slope in training: (step seed, lower, upper, divisor form), drawn per element from Philox
RReLUParams = tuple[int, float, float, bool]


@runtime_checkable
class Backend(Protocol):
    """What a fast backend module provides (see the module docstring for the argument order)."""

    #: "cpu" or "gpu": the key of its thresholds in :class:`actlab.fast.Policy`
    KIND: str
    #: dtypes it serves
    DTYPES: tuple[torch.dtype, ...]
    #: activations it serves
    NAMES: tuple[str, ...]
    #: torch's own ops that serve as fast as ours up to the policy's native size (name → callable)
    NATIVE: dict[str, Callable[..., Tensor]]
    #: torch's own ops with the plain path's semantics, for tensors below the policy's ``min_numel``
    SMALL: dict[str, Callable[..., Tensor]]
    #: torch's own ops for forwards that want no gradient, up to the policy's native size
    INFERENCE: dict[str, Callable[..., Tensor]]

    def bits_nbytes(self, n: int) -> int:
        """Bytes of the lean mask of n elements."""

    def rect_fwd(self, x: Tensor, y: Tensor, bits: Tensor | None, slope: float | None) -> None:
        """relu (slope None) or leaky relu: y = x for x > 0, else slope·x; bits: x > 0."""

    def rect_bwd(self, kept: Tensor, g: Tensor, gx: Tensor, slope: float | None, lean: bool) -> None:
        """gx = g where x > 0 (from y > 0, or the bits), else slope·g."""

    def rrelu_fwd(self, x: Tensor, y: Tensor, bits: Tensor | None, params: RReLUParams) -> None:
        """RReLU in training: y = x for x > 0, else a·x with a drawn from Philox (memory order)."""

    def rrelu_bwd(self, kept: Tensor, g: Tensor, gx: Tensor, params: RReLUParams, lean: bool) -> None:
        """gx = g where x > 0, else a·g with the same a drawn again."""

    def rrelu_slopes_into(self, s: Tensor, params: RReLUParams) -> None:
        """s[i] = the slope of element i (memory order)."""

    def prelu_fwd(self, x: Tensor, y: Tensor, bits: Tensor | None, w: Tensor,
                  geom: tuple[int, int, int]) -> None:
        """y = x for x > 0, else w[c]·x; geom = (outer, C, inner) of x in memory order."""

    def prelu_bwd(self, x: Tensor, g: Tensor, gx: Tensor, w: Tensor, geom: tuple[int, int, int]) -> Tensor:
        """gx, and returns ∂L/∂w (C values) reduced in the same pass."""

    def prelu_bits_bwd(self, bits: Tensor, g: Tensor, gx: Tensor, w: Tensor, geom: tuple[int, int, int]) -> None:
        """gx from the lean mask (frozen slope)."""

    def elu_fwd(self, x: Tensor, y: Tensor, alpha: float) -> None: ...

    def elu_bwd(self, y: Tensor, g: Tensor, gx: Tensor, alpha: float) -> None: ...

    def sigmoid_fwd(self, x: Tensor, y: Tensor) -> None: ...

    def sigmoid_bwd(self, y: Tensor, g: Tensor, gx: Tensor) -> None: ...

    def tanh_fwd(self, x: Tensor, y: Tensor) -> None: ...

    def tanh_bwd(self, y: Tensor, g: Tensor, gx: Tensor) -> None: ...
