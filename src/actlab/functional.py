"""Functional forms of the seven activations, as in ``torch.nn.functional``.

Each function takes ``impl``:

* ``"plain"`` — a few plain torch operations that autograd differentiates. This is the path the
  fast kernels are checked against; it follows :mod:`actlab.reference` exactly (the left
  derivative at the kink: relu'(0) = 0, leaky/prelu/rrelu'(0) = a, elu'(0) = α).
* ``"fast"`` — the fused kernels of :mod:`actlab.fast` (CPU and Triton); an error if none
  serves this device and dtype; layouts the kernels do not walk take the plain path.
* ``"auto"`` (default) — fast where a kernel serves the tensor, plain otherwise.

``lean=True`` asks the fast path to keep only one bit per element for backward (the
piecewise-linear family); the plain path ignores it.

Hyper-parameters are checked by :func:`actlab.registry.resolve`, as the layers check them: a bad
value raises a one-line ``ValueError`` naming it and the valid range, on every path and size.

Under ``torch.compile``, ``torch.export``, ``torch.jit.trace``, ONNX export, forward-mode AD
and torch.func transforms every call takes the plain path (see :func:`actlab.fast.eager`), so
those tools see a few ordinary torch operations; ``impl="fast"`` then means "fast where eager".

The modules in :mod:`actlab.layers` are thin wrappers over these functions; see them for the
maths and the papers.
"""

from __future__ import annotations

import functools
import weakref
from collections import OrderedDict
from typing import Any, Callable

import torch
from torch import Tensor

from . import fast
from .fast.ops import check_prelu_channels, prelu_slopes
from .fast.philox import torch_slopes

__all__ = ["sigmoid", "tanh", "relu", "leaky_relu", "prelu", "rrelu", "elu", "rrelu_step_seed"]

IMPLS = ("auto", "plain", "fast")


@functools.lru_cache(maxsize=512)
def _resolved(name: str, items: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    from .registry import resolve  # the registry names the layers, which import this module

    return resolve(name, dict(items))[1]


def _checked(name: str, **hparams: Any) -> dict[str, Any]:
    """``hparams`` checked (and completed) by the registry, exactly as the layers check them."""
    if not torch.compiler.is_compiling():  # dynamo traces the check itself (it would skip the cache)
        try:
            return _resolved(name, tuple(hparams.items()))
        except TypeError:  # an unhashable value (a tensor): checked uncached, and rejected by its type
            pass
    from .registry import resolve

    return resolve(name, hparams)[1]


def _pick(name: str, x: Tensor, impl: str, lean: bool) -> Callable[..., Tensor] | None:
    """The fast kernel for ``name`` on ``x``, or None for the plain path."""
    if impl == "plain":
        return None
    if impl not in IMPLS:
        raise ValueError(f"{name}: invalid impl={impl!r}; valid: {', '.join(IMPLS)}")
    kernel = fast.lookup(name, x, lean=lean)
    if kernel is None and impl == "fast" and fast.eager(x) and not fast.serves(name, x):
        raise ValueError(f"{name}: no fast kernel for a {x.dtype} tensor on {x.device.type}; "
                         f"valid: impl='auto' or 'plain'")
    return kernel


def _inplace(x: Tensor, y: Tensor, inplace: bool) -> Tensor:
    return x.copy_(y) if inplace else y


def _scale_negative(x: Tensor, a: Tensor | float) -> Tensor:
    """x where x > 0, a·x elsewhere (so the derivative at 0 is a): leaky_relu's plain path."""
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
    negative_slope = _checked("leaky_relu", negative_slope=negative_slope)["negative_slope"]
    k = None if inplace else _pick("leaky_relu", x, impl, lean)
    if k:
        return k(x, negative_slope)
    return _inplace(x, _scale_negative(x, negative_slope), inplace)


def prelu(x: Tensor, weight: Tensor, *, channel_axis: int = 1, impl: str = "auto", lean: bool = False) -> Tensor:
    """x for x > 0, a·x otherwise, a = ``weight`` (1 or one per channel along ``channel_axis``).

    See :class:`actlab.layers.PReLU`.
    """
    channel_axis = _checked("prelu", channel_axis=channel_axis)["channel_axis"]
    check_prelu_channels(x, weight.numel(), channel_axis)  # on every path, in plain integers
    k = _pick("prelu", x, impl, lean)
    if k:
        return k(x, weight, channel_axis)
    a = prelu_slopes(x, weight, channel_axis).to(x.dtype)
    # ∂L/∂a = Σ_{x≤0} x·g: a·x sees 0 where x > 0, so x = +inf adds 0 (not 0·inf = NaN), as torch's prelu
    positive = x > 0
    return torch.where(positive, x, a * torch.where(positive, 0, x))


#: Step seeds of training forwards with a private generator, by the forward's key (see
#: :func:`rrelu_step_seed`): generator → {key: seed}, the last 1024 per generator.
_JOURNAL: weakref.WeakKeyDictionary[torch.Generator, OrderedDict[Any, int]] = weakref.WeakKeyDictionary()
_JOURNAL_SIZE = 1024


def _draw(generator: torch.Generator | None) -> int:
    return int(torch.randint(0, 2**63 - 1, (), generator=generator, dtype=torch.int64))


def _forward_key(x: Tensor | None) -> Any:
    """What a checkpoint recomputation reproduces of a forward, without consuming any RNG: the
    global CPU RNG state (checkpoint restores it) and the input — its shape and 64 of its
    values, spread over it (the recomputed input equals the first one bit for bit)."""
    state = hash(torch.get_rng_state().numpy().tobytes())
    if x is None:
        return state
    flat = x.detach().reshape(-1)
    step = max(1, flat.numel() // 64)
    return state, tuple(x.shape), x.dtype, tuple(flat[::step][:64].tolist())


def rrelu_step_seed(generator: torch.Generator | None = None, x: Tensor | None = None) -> int | Tensor:
    """A fresh 63-bit seed for one training step's noise, from ``generator`` or the global RNG.

    A recomputation gives the first forward's seed back, so ``torch.utils.checkpoint``
    reproduces the noise: from the global RNG because checkpoint restores its state; from a
    private ``generator`` because each forward journals (key → seed), the key being what a
    recomputation reproduces (the global RNG's state and the input ``x``; see
    :func:`_forward_key`), and a forward that runs during backward — a recomputation — takes the
    journalled seed of its key without drawing (so the generator's stream, and every later
    step's noise, is as without checkpointing). The global RNG is never consumed for a private
    generator. Under ``torch.compile``, export and ``jit.trace`` (no generator) the seed stays a
    0-d tensor, so the draw is part of the graph and each call of the compiled or traced model
    draws fresh noise.
    """
    if generator is None:
        if torch.compiler.is_compiling() or torch.jit.is_tracing():  # a graph op: fresh noise per call
            return torch.randint(0, 2**63 - 1, (), dtype=torch.int64)
        return _draw(None)
    key = _forward_key(x)
    journal = _JOURNAL.setdefault(generator, OrderedDict())
    if torch._C._current_autograd_node() is not None and key in journal:  # recomputation in backward
        return journal[key]
    seed = _draw(generator)
    journal[key] = seed
    journal.move_to_end(key)
    if len(journal) > _JOURNAL_SIZE:
        journal.popitem(last=False)
    return seed


def rrelu_noise(x: Tensor, lower: float, upper: float, form: str, seed: int | Tensor) -> Tensor:
    """The training slopes for x — a ~ U(lower, upper), or 1/a in divisor form — as a function
    of the seed and each element's logical (row-major) position only: the fast kernels' stream
    (Philox, :mod:`actlab.fast.philox`) in torch operations, whatever x's memory layout."""
    return torch_slopes(seed, x.shape, lower, upper, form, x.dtype, x.device)


def rrelu(x: Tensor, lower: float | None = None, upper: float | None = None, training: bool = False, *,
          form: str = "slope", seed: int | Tensor | None = None, inplace: bool = False, impl: str = "auto",
          lean: bool = False) -> Tensor:
    """Randomized leaky ReLU. In training the slope for x < 0 is drawn per element from
    ``seed`` (or the global RNG); in eval it is the test slope. ``lower``/``upper`` default by
    ``form`` as the layer's (1/8, 1/3 for "slope"; 3, 8 for "divisor").
    See :class:`actlab.layers.RReLU`.
    """
    hp = _checked("rrelu", lower=lower, upper=upper, form=form)
    lower, upper, form = hp["lower"], hp["upper"], hp["form"]
    mean = (lower + upper) / 2
    if not training:
        return leaky_relu(x, mean if form == "slope" else 1 / mean, inplace=inplace, impl=impl, lean=lean)
    if seed is None:
        seed = rrelu_step_seed()
    k = None if inplace or isinstance(seed, Tensor) else _pick("rrelu", x, impl, lean)
    if k:
        return k(x, lower, upper, form, seed)
    # x·s with s = 1 where x > 0, else the drawn slope: autograd keeps s alone (4 bytes an element)
    slopes = torch.where(x.detach() > 0, 1.0, rrelu_noise(x, lower, upper, form, seed))
    return _inplace(x, x * slopes, inplace)


def elu(x: Tensor, alpha: float = 1.0, *, inplace: bool = False, impl: str = "auto") -> Tensor:
    """x for x > 0, α(e^x − 1) otherwise; expm1 of min(x, 0) so nothing overflows.

    See :class:`actlab.layers.ELU`.
    """
    alpha = _checked("elu", alpha=alpha)["alpha"]
    if inplace:  # torch's elu_ differentiates from its output (f' = y + α for y ≤ 0): x may be overwritten
        return torch.nn.functional.elu(x, alpha, inplace=True)
    k = _pick("elu", x, impl, False)
    if k:
        return k(x, alpha)
    if torch.onnx.is_in_onnx_export():  # the legacy exporter has no expm1; ONNX's Elu is this function
        return torch.nn.functional.elu(x, alpha)
    # x ≤ 0 picks the curve, so NaN takes the identity branch: f(NaN) = NaN and f'(NaN) = 1, as
    # actlab's kernels and torch's scalar elu_backward differentiate it
    return torch.where(x <= 0, alpha * torch.expm1(x.clamp(max=0)), x)
