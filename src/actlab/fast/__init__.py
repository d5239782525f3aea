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

Dispatch rules (:func:`lookup`):

* Only concrete tensors in eager mode: under ``torch.compile`` and ``torch.export`` (and any
  FakeTensor or tensor subclass), ``torch.jit.trace`` (so the legacy ONNX exporter), forward-mode
  AD (``torch.autograd.forward_ad``) and torch.func transforms (``grad``, ``vmap``, ``jvp``,
  ``jacrev``: functorch-wrapped tensors), :func:`lookup` returns None: the plain path's few
  torch operations are what those tools trace, fuse, export and differentiate (see
  :func:`eager`).
* CPU tensors go to :mod:`actlab.fast.cpu` (numba; absent numba, the plain path): float32 and
  float64; all seven, with outputs from :mod:`actlab.fast.pool`. Outside lean mode relu,
  leaky_relu and sigmoid are torch's own ops (``actlab.fast.cpu.NATIVE``: one pass each way with
  the plain path's semantics, as fast as a fused kernel) up to the policy's ``native_max_bytes``
  of output, above which torch's fresh outputs page-fault and ours do not; so is PReLU's forward
  when no gradient is wanted (``actlab.fast.cpu.INFERENCE``: torch's is faster alone, its
  backward is the slow part). Below the policy's
  ``min_numel`` elements, where a Python autograd.Function costs more than the whole layer of
  torch.nn, torch's own op serves where it has the plain path's semantics
  (``actlab.fast.cpu.SMALL``; RReLU in training: the kernel's noise drawn in one numba pass,
  times x by torch's mul), else the plain path — except in lean mode, whose kernels serve at
  every size (chosen for its memory: torch's ops keep the full-size tensor) (:class:`Policy`).
* CUDA tensors go to :mod:`actlab.fast.gpu` (Triton; absent Triton, the plain path): float32,
  bfloat16 and float16; all seven; fewer than 2³¹ elements.
* Either way the tensor must be dense in a layout the kernels walk in memory order: contiguous,
  or channels-last (4-D and 5-D). Anything else takes the plain path. RReLU in training takes
  contiguous tensors only: its noise is a function of the seed and each element's logical
  (row-major) position, which for a contiguous tensor is its memory position; the plain path
  draws the same stream in torch operations (:func:`actlab.fast.philox.torch_slopes`), so a
  channels-last, transposed or in-place input gets the same noise as a contiguous one.

The thresholds are a :class:`Policy`; :func:`policy` is the one in force and :func:`dispatch`
changes it for a ``with`` block (in this thread and context only), e.g.
``with fast.dispatch(min_numel=0, native_max_bytes=-1):`` to run actlab's kernels at any size.

The environment variable ``ACTLAB_FAST_BACKEND`` overrides the choice (``auto`` or unset: the
rules above): ``none`` turns every fast path off; ``triton`` sends every tensor, CPU ones
included, to the Triton kernels (with ``TRITON_INTERPRET=1`` set before Triton is imported, that
runs them on the CPU — how the tests check them on a machine without a GPU). Any other value is
an error naming the valid ones.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import dataclasses
import importlib
import itertools
import os
from typing import Any, Callable, Iterator

import torch
from torch import Tensor

from . import ops
from .backend import Backend
from .ops import eager

__all__ = ["warm", "lookup", "serves", "backend_for", "eager", "status", "rrelu_slopes", "retain_freed_memory",
           "Policy", "policy", "dispatch", "Backend"]


@dataclasses.dataclass(frozen=True)
class Policy:
    """When a fast kernel serves a tensor, by backend kind ("cpu", "gpu").

    ``min_numel``: the smallest tensor (elements) each backend's kernels take (lean mode's
    aside); smaller ones run torch's own op where the backend lists one in ``SMALL``, else
    the plain path. On the CPU, 128K elements: measured forward+backward against torch.nn's layer
    (2 threads, float32, kernels forced), ours overtake torch's own ops between 64K (tanh) and
    128K (ELU) elements (at 16K: 0.54-0.65x, the Python of an autograd.Function and two numba
    calls against one native op each way). The GPU path takes any size.

    ``native_max_bytes``: the largest output (bytes) for which a backend's ``NATIVE`` ops
    (torch's own, as fast as a kernel of ours) serve, and its ``INFERENCE`` ops when no gradient
    is wanted; −1: never. On the CPU, 32 MiB less a page: glibc maps every block of its largest
    mmap threshold (32 MiB) or more afresh — a request of exactly 32 MiB included, with
    posix_memalign's padding — so each such output of torch's page-faults, while ours come warm
    from :mod:`actlab.fast.pool`: measured 3.7-5.3x torch's forward+backward for relu and
    leaky_relu at 16M float32 elements (64 MiB), and 3.3-5.1x its forward alone for relu,
    leaky_relu and sigmoid at 8M (32 MiB exactly; the bound was 32 MiB inclusive until then).
    Below, torch's allocations fault or not by the heap's history.
    """

    min_numel: tuple[tuple[str, int], ...] = (("cpu", 131072), ("gpu", 0))
    native_max_bytes: tuple[tuple[str, int], ...] = (("cpu", 32 * 2**20 - 4096), ("gpu", 2**62))
    # the two as dicts, built once: lookup reads them on every activation call
    _min: dict[str, int] = dataclasses.field(init=False, repr=False, compare=False)
    _native: dict[str, int] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_min", dict(self.min_numel))
        object.__setattr__(self, "_native", dict(self.native_max_bytes))

    def min_numel_for(self, kind: str) -> int:
        return self._min[kind]

    def native_max_bytes_for(self, kind: str) -> int:
        return self._native[kind]

    def with_(self, *, min_numel: int | dict[str, int] | None = None,
              native_max_bytes: int | dict[str, int] | None = None) -> Policy:
        """A copy with these thresholds: one int for every backend, or a dict by kind."""

        def merged(old: tuple[tuple[str, int], ...], new: int | dict[str, int] | None) -> tuple[tuple[str, int], ...]:
            if new is None:
                return old
            upd = new if isinstance(new, dict) else {k: int(new) for k, _ in old}
            unknown = set(upd) - {k for k, _ in old}
            if unknown:
                raise ValueError(f"dispatch: unknown backend kind {sorted(unknown)[0]!r}; valid: cpu, gpu")
            return tuple((k, int(upd.get(k, v))) for k, v in old)

        return Policy(merged(self.min_numel, min_numel), merged(self.native_max_bytes, native_max_bytes))


_DEFAULT = Policy()
_POLICY: contextvars.ContextVar[Policy | None] = contextvars.ContextVar("actlab_fast_policy", default=None)
_PROCESS_POLICY = [_DEFAULT]  # the process-wide policy; retain_freed_memory() raises its native size


def policy() -> Policy:
    """The dispatch policy in force here: the innermost :func:`dispatch` block's, else the process's."""
    p = _POLICY.get()
    return _PROCESS_POLICY[0] if p is None else p


@contextlib.contextmanager
def dispatch(*, min_numel: int | dict[str, int] | None = None,
             native_max_bytes: int | dict[str, int] | None = None) -> Iterator[Policy]:
    """Change the dispatch thresholds inside a ``with`` block (this thread and context only).

    ``with dispatch(min_numel=0, native_max_bytes=-1):`` makes actlab's own kernels take
    tensors of any size (what the tests and the fast-path checks use); ``min_numel=2**62``
    sends every tensor to the small-tensor ops (torch's own; RReLU in training: its numba noise
    pass and torch's mul) or the plain path; ``ACTLAB_FAST_BACKEND=none`` or ``impl="plain"``
    turns the fast paths off.
    """
    token = _POLICY.set(policy().with_(min_numel=min_numel, native_max_bytes=native_max_bytes))
    try:
        yield policy()
    finally:
        _POLICY.reset(token)


_MODULES: dict[str, Backend | None] = {}
_WHY: dict[str, str] = {}


def _load(kind: str) -> Backend | None:
    """The backend module ``kind`` ("cpu" or "gpu"), or None if its compiler is missing."""
    if kind not in _MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{kind}")
        except ImportError as err:  # numba or triton not installed: the plain path serves
            _MODULES[kind], _WHY[kind] = None, f"{type(err).__name__}: {err}"
        else:
            if not isinstance(module, Backend):  # a contract broken by an edit: say so at once
                raise TypeError(f"{module.__name__} does not satisfy actlab.fast.backend.Backend")
            _MODULES[kind] = module
    return _MODULES[kind]


_ENV_NAME = "ACTLAB_FAST_BACKEND"
# os.environ's own store (CPython keeps it in sync with every os.environ change, monkeypatch's too):
# os.environ.get raises and catches a KeyError inside when the variable is unset, 0.6 µs a call
_ENV_DATA = getattr(os.environ, "_data", None)
_ENV_KEY = os.environ.encodekey(_ENV_NAME) if _ENV_DATA is not None and hasattr(os.environ, "encodekey") else None


def _forced_backend() -> str | None:
    """$ACTLAB_FAST_BACKEND, read on every call (tests and users toggle it) in ~0.1 µs."""
    if _ENV_KEY is None:
        return os.environ.get(_ENV_NAME)
    raw = _ENV_DATA.get(_ENV_KEY)
    return None if raw is None else os.environ.decodevalue(raw)


def backend_for(x: Tensor) -> Backend | None:
    """The backend module that would run on ``x``'s device, or None."""
    forced = _forced_backend()
    if forced:
        forced = forced.strip().lower()
        if forced == "none":
            return None
        if forced == "triton":
            return _load("gpu")
        if forced != "auto":
            raise ValueError(f"ACTLAB_FAST_BACKEND={forced!r} is not a backend; valid: none, triton, auto "
                             f"(or unset)")
    if x.is_cuda:  # attributes, not x.device.type: this runs on every activation call
        return _load("gpu")
    if x.is_cpu:
        return _load("cpu")
    return None


def serves(name: str, x: Tensor) -> bool:
    """Whether a backend has a kernel for ``name`` on x's device and dtype (at some size and layout)."""
    b = backend_for(x)
    return b is not None and name in b.NAMES and x.dtype in b.DTYPES


def lookup(name: str, x: Tensor, *, lean: bool = False) -> Callable[..., Tensor] | None:
    """The fast kernel for ``name`` on ``x``, or None (see the dispatch rules above)."""
    if not eager(x):
        return None
    b = backend_for(x)
    if b is None or name not in b.NAMES or x.dtype not in b.DTYPES:
        return None
    p = policy()
    n = x.numel()
    if n == 0 or n >= 2**31:
        return None
    if n < p._min[b.KIND] and not lean:  # small: torch's op, or the plain path
        return b.SMALL.get(name)
    perm = ops.memory_order(x)
    if perm is None or (perm and name == "rrelu"):  # rrelu: noise by logical position (see above)
        return None
    native = b.NATIVE.get(name)
    if native is not None and not lean and n * x.element_size() <= p._native[b.KIND]:
        return native
    if name in ("sigmoid", "tanh"):
        fwd, bwd = (b.sigmoid_fwd, b.sigmoid_bwd) if name == "sigmoid" else (b.tanh_fwd, b.tanh_bwd)
        return lambda x: ops.run(ops.FromOutput, b, x, fwd, bwd, name)
    if name == "relu":
        return lambda x: ops.run(ops.Rectifier, b, x, None, lean)
    if name == "leaky_relu":
        return lambda x, negative_slope: ops.run(ops.Rectifier, b, x, float(negative_slope), lean)
    if name == "prelu":
        infer = b.INFERENCE.get(name) if n * x.element_size() <= p._native[b.KIND] else None
        if infer is None:
            return lambda x, weight, channel_axis: ops.run(ops.PReLU, b, x, weight, channel_axis, lean)

        def prelu(x: Tensor, weight: Tensor, channel_axis: int) -> Tensor:
            if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
                return ops.run(ops.PReLU, b, x, weight, channel_axis, lean)
            return infer(x, weight, channel_axis)  # inference: nothing kept, lean or not

        return prelu
    if name == "rrelu":
        return lambda x, lower, upper, form, seed: ops.run(
            ops.Rectifier, b, x, ops.rrelu_params(lower, upper, form, seed), lean)
    if name == "elu":
        return lambda x, alpha: ops.run(ops.ELU, b, x, float(alpha), False)
    return None


#: Arguments after x for each kernel of the contract (see the table at the top), for :func:`warm`.
_WARM_ARGS: dict[str, tuple[Any, ...]] = {
    "sigmoid": (), "tanh": (), "relu": (), "leaky_relu": (0.01,), "elu": (1.0,),
    "rrelu": (1 / 8, 1 / 3, "slope", 0), "prelu": (None, 1),
}


def warm(kind: str = "cpu") -> dict[str, float]:
    """Compile (or load from numba's on-disk cache) every kernel of backend ``kind``: forward and
    backward, each dtype, lean and not; returns the seconds each activation took.

    numba compiles a kernel at its first call and caches the machine code beside the sources
    (``cache=True``), so only the first process on a fresh install pays for it (about a minute
    on 2 cores). ``make``'s install step calls this once so that no user's first call does; the
    lab also warms the model it trains before timing it. A backend that does not load is skipped.
    """
    import time

    b = _load(kind)
    if b is None:
        return {}
    device = "cuda" if kind == "gpu" else "cpu"
    out: dict[str, float] = {}
    with dispatch(min_numel=0, native_max_bytes=-1):
        for name in b.NAMES:
            t0 = time.perf_counter()
            for dtype, lean, layout, learned in itertools.product(
                    b.DTYPES, (False, True), (torch.contiguous_format, torch.channels_last), (True, False)):
                if (layout != torch.contiguous_format or not learned) and name != "prelu":
                    continue  # the other kernels walk any dense layout the same flat way
                x = torch.linspace(-2, 2, 256, dtype=dtype, device=device).reshape(2, 2, 8, 8)
                x = x.contiguous(memory_format=layout).requires_grad_(True)
                args = list(_WARM_ARGS[name])
                if name == "prelu":
                    args[0] = torch.full((2,), 0.25, dtype=dtype, device=device, requires_grad=learned)
                k = lookup(name, x, lean=lean)
                if k is not None:
                    k(x, *args).sum().backward()
            if name == "rrelu":
                for dtype in b.DTYPES:
                    rrelu_slopes(64, 1 / 8, 1 / 3, "slope", 0, dtype=dtype, device=device)
                    if "rrelu" in b.SMALL:  # small tensors' own numba pass
                        b.SMALL["rrelu"](torch.ones(8, dtype=dtype, device=device), *_WARM_ARGS["rrelu"])
            out[name] = time.perf_counter() - t0
    return out


def rrelu_slopes(n: int, lower: float, upper: float, form: str, seed: int, *, dtype: torch.dtype = torch.float32,
                 device: str | torch.device = "cpu") -> Tensor:
    """The training slopes the fast path draws for the first n elements (memory order) of a
    tensor with step seed ``seed`` — what :func:`actlab.functional.rrelu` multiplies x ≤ 0 by."""
    x = torch.empty(n, dtype=dtype, device=device)
    b = backend_for(x)
    if b is None:
        raise ValueError(f"rrelu: no fast backend for {x.device.type}; valid: cpu with numba, cuda with triton")
    b.rrelu_slopes_into(x, ops.rrelu_params(lower, upper, form, seed))
    return x


def status() -> dict[str, str]:
    """Which backends load here, and why not where they don't (for ``actlab bench`` and bug reports)."""
    out = {}
    for kind in ("cpu", "gpu"):
        m = _load(kind)
        out[kind] = "available" if m is not None else f"unavailable ({_WHY[kind]})"
    return out


def retain_freed_memory(limit: int = 1 << 30) -> bool:
    """Opt-in allocation remedy for CPU tensors: glibc keeps freed blocks up to ``limit`` bytes
    for reuse instead of unmapping them.

    By default glibc maps a block above its mmap threshold (at most 32 MB) afresh for every
    allocation and unmaps it when freed, so every out-of-place op on 16M float32 elements pays
    a page fault per 4 KiB of its fresh output — on the 2-core VM this was measured on, that
    cost more than the arithmetic, for torch's ops and actlab's alike. With both thresholds at
    ``limit``, freed outputs are reused already mapped, and torch's own relu, leaky_relu and
    sigmoid then serve up to ``limit`` bytes (the policy's ``native_max_bytes``). The change is
    process-wide and lasting:
    resident memory stays at its peak, as with a caching allocator. ``actlab bench
    --retain-freed-memory`` measures with it. Returns False where it does not apply (no glibc).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    done = bool(libc.mallopt(m_mmap_threshold, int(limit))) and bool(libc.mallopt(m_trim_threshold, int(limit)))
    if done:  # torch's outputs no longer fault, so its own ops serve at every size (see Policy)
        p = _PROCESS_POLICY[0]
        _PROCESS_POLICY[0] = p.with_(native_max_bytes={"cpu": max(p.native_max_bytes_for("cpu"), int(limit))})
    return done
