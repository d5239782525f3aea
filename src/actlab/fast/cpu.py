"""Fused CPU kernels (numba) for the fast paths: one pass over memory per forward and backward.

Every kernel works on flat arrays in memory order (the caller passes zero-copy NumPy views of
dense torch tensors) split into tasks of :data:`CHUNK` elements that ``prange`` spreads over the
threads. Each task slices its part of the arrays and its inner loop counts from 0 over contiguous
memory with no division or gather, so LLVM vectorises it. (Measured: the same loop written as
``for i in range(lo, hi)`` over the whole array does not vectorise — numba's negative-index
wrap-around check stays in — and runs 10x slower.) ``fastmath`` is off — IEEE semantics for NaN,
±inf and signed zeros, as the plain path — except ``reassoc`` in the PReLU backward kernel, whose
slope-gradient sum would otherwise run as one serial chain of additions, and ``contract`` in the
forward kernels of ELU, tanh and sigmoid: their exp polynomial then runs as fused multiply-adds
(one rounding instead of two, so no less accurate; NaN and ±inf unchanged), measured 1.6x faster
for ELU at 1M float32 elements on 2 cores (257 → 158 µs). Nowhere else: RReLU's slopes must round
exactly as the plain path's torch operations do. exp has no vectorised
form in numba without Intel's SVML, so ELU and tanh use their own (:func:`_expm1_neg_f32`).

What each backward reads (see :mod:`actlab.fast.ops` for the choice):

* rectifiers (relu, leaky, rrelu) from the output y: x > 0 ⇔ y > 0 when the slope is ≥ 0;
* PReLU from the input x (its slope may be learned negative, and ∂L/∂a needs x);
* lean mode from one bit per element, x > 0 (relu: not x ≤ 0), stored as bit planes: in a task
  of s elements (nb = ⌈s/8⌉ bytes) bit j of byte b is element j·nb + b, so the loops that pack
  and unpack them run over contiguous memory and vectorise.

RReLU's slopes come from the counter-based stream of :mod:`actlab.fast.philox`, recomputed in
backward.
"""

from __future__ import annotations

import functools
import math
import threading
from typing import Any, Callable

import numba
import numpy as np
import torch
from numba import njit, prange, types
from llvmlite import ir
from numba.extending import intrinsic, overload

from . import philox
from .ops import rrelu_params

__all__ = ["CHUNK", "DTYPES", "NAMES", "set_threads"]

#: Elements per parallel task: a multiple of 64 (whole bytes of each bit plane, whole Philox
#: calls of 8 elements) and small enough (64 KiB of float32) to balance two threads at 1M.
CHUNK = 1 << 14

_JIT = dict(parallel=True, cache=True, nogil=True)

# Threading: numba's default layer (OpenMP here) launches a kernel in ~2 µs; the workqueue layer's
# sleeping threads cost 30-50 µs a launch (a third of a 1M-element kernel). One thread pool serves
# torch's ops and ours: numba's OpenMP layer (omppool) lists the system's libgomp as a dependency,
# but the dynamic loader binds its parallel regions (GOMP_parallel, omp_*) to the libgomp that
# torch loaded first, since this module imports torch before numba's layer can start — so the
# kernels run on torch's OpenMP threads, with torch's spin and wait settings, and no second pool
# spins beside them (tests/test_fast.py reads the loader's bindings to check it). Starting numba's
# layer calls omp_set_num_threads on that shared runtime — measured: torch.set_num_threads(1)
# silently became 2 — so torch's count is put back. It starts at the first kernel call, not at
# import: importing this module changes no process-wide state. Calls are serialised by _LOCK: a
# kernel never runs beside another one of ours, whatever the layer.
_started = False


def _start_threads() -> None:
    global _started
    _started = True
    torch_threads = torch.get_num_threads()
    try:
        from numba.np.ufunc import parallel

        parallel._launch_threads()
    except Exception:  # noqa: BLE001 - a private numba API; without it the layer starts lazily
        pass
    finally:
        torch.set_num_threads(torch_threads)


_LOCK = threading.Lock()
_U32 = np.uint64(0xFFFFFFFF)
_S32, _S16, _U16 = np.uint64(32), np.uint64(16), np.uint64(0xFFFF)
_KA, _KB = np.uint64(philox.KEY_A), np.uint64(philox.KEY_B)
_RA, _RB = np.uint64(philox.ROUND_A), np.uint64(philox.ROUND_B)
_TWO_M16, _TWO_M17 = 2.0**-16, 2.0**-17


_THREADS = threading.local()  # numba's thread count is per calling thread; this remembers it


def set_threads(n: int) -> None:
    """Run the kernels on ``n`` threads (capped at numba's pool), as torch does its own ops."""
    n = max(1, min(int(n), numba.config.NUMBA_NUM_THREADS))
    if getattr(_THREADS, "n", None) != n:  # numba.get_num_threads costs ~1 µs a call; this 0.1
        numba.set_num_threads(n)
        _THREADS.n = n


def _like(v, ref):  # pragma: no cover - kernels use the overload below
    return type(ref)(v)


@overload(_like, inline="always")
def _like_overload(v, ref):
    """v converted to ref's float type (a bare 0 would make numba compute in float64)."""
    if ref == types.float32:
        return lambda v, ref: np.float32(v)
    return lambda v, ref: np.float64(v)


@intrinsic
def _bits_as_float(typingctx, i):
    """Reinterpret an int32 (int64) as float32 (float64): builds 2^k for exp without a call."""
    if i == types.int32:
        sig, target = types.float32(types.int32), ir.FloatType()
    elif i == types.int64:
        sig, target = types.float64(types.int64), ir.DoubleType()
    else:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], target)

    return sig, codegen


_INV_LN2 = 1.4426950408889634


@njit(inline="always")
def _reduced_f32(x):
    """(k, eʳ − 1) with x = k·ln2 + r, |r| ≤ ln2/2, in float32: Cody–Waite reduction, then the
    Taylor series of eʳ − 1 to r⁷ (error < 2·10⁻⁸ relative) — vectorisable arithmetic only."""
    k = np.floor(x * np.float32(_INV_LN2) + np.float32(0.5))
    r = (x - k * np.float32(0.693145751953125)) - k * np.float32(1.428606765330187e-06)
    q = r * (np.float32(1.0) + r * (np.float32(1 / 2) + r * (np.float32(1 / 6) + r * (np.float32(1 / 24) + r * (
        np.float32(1 / 120) + r * (np.float32(1 / 720) + r * np.float32(1 / 5040)))))))
    return k, q


@njit(inline="always")
def _reduced_f64(x):
    """As :func:`_reduced_f32` in float64: the series to r¹³ (error < 10⁻¹⁷)."""
    k = np.floor(x * _INV_LN2 + 0.5)
    r = (x - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10
    p = 1 / 6227020800.0
    p = 1 / 479001600.0 + r * p
    p = 1 / 39916800.0 + r * p
    p = 1 / 3628800.0 + r * p
    p = 1 / 362880.0 + r * p
    p = 1 / 40320.0 + r * p
    p = 1 / 5040.0 + r * p
    p = 1 / 720.0 + r * p
    p = 1 / 120.0 + r * p
    p = 1 / 24.0 + r * p
    p = 1 / 6.0 + r * p
    p = 0.5 + r * p
    p = 1.0 + r * p
    return k, r * p


def _pow2(k):  # pragma: no cover - kernels use the overload below
    return 2.0**k


@overload(_pow2, inline="always")
def _pow2_overload(k):
    """2ᵏ from its bits: float32 for an int32 k (normal range), float64 for an int64 k."""
    if k == types.int32:
        return lambda k: _bits_as_float(np.int32((k + np.int32(127)) << np.int32(23)))
    return lambda k: _bits_as_float(np.int64((k + np.int64(1023)) << np.int64(52)))


@njit(inline="always")
def _expm1_neg_f32(x):
    """eˣ − 1 for x ≤ 0 (or NaN) in float32, ≤ 1.5 ulp: eˣ − 1 = 2ᵏ(eʳ − 1) + (2ᵏ − 1)."""
    k, q = _reduced_f32(np.float32(-87.0) if x < np.float32(-87.0) else x)  # below, −1 anyway
    s = _pow2(np.int32(k))
    return s * q + (s - np.float32(1.0))


@njit(inline="always")
def _expm1_neg_f64(x):
    """As :func:`_expm1_neg_f32` in float64, ≤ 1 ulp."""
    k, q = _reduced_f64(-708.0 if x < -708.0 else x)
    s = _pow2(np.int64(k))
    return s * q + (s - 1.0)


@njit(inline="always")
def _exp_neg_f32(x):
    """eˣ for x ≤ 0 (or NaN) in float32, ≤ 1.5 ulp down to the smallest subnormal: 2ᵏ applied as
    two halves, so that k < −126 does not underflow the bits it is built from."""
    k, q = _reduced_f32(np.float32(-104.0) if x < np.float32(-104.0) else x)  # below, 0 anyway
    ki = np.int32(k)
    return (_pow2(ki >> np.int32(1)) * (q + np.float32(1.0))) * _pow2(ki - (ki >> np.int32(1)))


@njit(inline="always")
def _exp_neg_f64(x):
    """As :func:`_exp_neg_f32` in float64."""
    k, q = _reduced_f64(-746.0 if x < -746.0 else x)
    ki = np.int64(k)
    return (_pow2(ki >> np.int64(1)) * (q + 1.0)) * _pow2(ki - (ki >> np.int64(1)))


def _by_float_type(pure: Callable[[float], float], f32: Any, f64: Any) -> Callable[[float], float]:
    """One name for a float32 and a float64 kernel helper, picked by the argument's type when a
    kernel compiles (``pure`` is what the name does outside numba)."""

    def stub(x: float) -> float:  # pragma: no cover - kernels use the overload
        return pure(x)

    @overload(stub, inline="always")
    def _pick(x):
        return (lambda x: f32(x)) if x == types.float32 else (lambda x: f64(x))

    return stub


_exp_neg = _by_float_type(math.exp, _exp_neg_f32, _exp_neg_f64)
_expm1_neg = _by_float_type(math.expm1, _expm1_neg_f32, _expm1_neg_f64)


# --- rectifiers: relu, leaky (and rrelu in eval, PReLU shared) ---------------------------------


@njit(**_JIT)
def relu_fwd(x, y):
    for t in prange((x.size + CHUNK - 1) // CHUNK):
        xs, ys = x[t * CHUNK:(t + 1) * CHUNK], y[t * CHUNK:(t + 1) * CHUNK]
        for i in range(xs.size):
            v = xs[i]
            ys[i] = v if not v <= 0 else _like(0.0, v)  # NaN stays NaN; −inf → 0


@njit(**_JIT)
def relu_bwd(y, g, gx):
    for t in prange((y.size + CHUNK - 1) // CHUNK):
        ys, gs, gxs = y[t * CHUNK:(t + 1) * CHUNK], g[t * CHUNK:(t + 1) * CHUNK], gx[t * CHUNK:(t + 1) * CHUNK]
        for i in range(ys.size):
            gi = gs[i]
            gxs[i] = gi if not ys[i] <= 0 else _like(0.0, gi)  # as the plain path: g passes at NaN


@njit(**_JIT)
def leaky_fwd(x, y, a):
    for t in prange((x.size + CHUNK - 1) // CHUNK):
        xs, ys = x[t * CHUNK:(t + 1) * CHUNK], y[t * CHUNK:(t + 1) * CHUNK]
        for i in range(xs.size):
            v = xs[i]
            ys[i] = v if v > 0 else a * v


@njit(**_JIT)
def leaky_bwd(y, g, gx, a):
    for t in prange((y.size + CHUNK - 1) // CHUNK):
        ys, gs, gxs = y[t * CHUNK:(t + 1) * CHUNK], g[t * CHUNK:(t + 1) * CHUNK], gx[t * CHUNK:(t + 1) * CHUNK]
        for i in range(ys.size):
            gi = gs[i]
            gxs[i] = gi if ys[i] > 0 else a * gi


@njit(**_JIT)
def rect_fwd_bits(x, y, bits, a, relu):
    """y and the bits of x > 0 (relu: of not x ≤ 0, so NaN passes, as its gradient does)."""
    for t in prange((x.size + CHUNK - 1) // CHUNK):
        xs, ys = x[t * CHUNK:(t + 1) * CHUNK], y[t * CHUNK:(t + 1) * CHUNK]
        bs = bits[t * (CHUNK // 8):(t + 1) * (CHUNK // 8)]
        nb = (xs.size + 7) >> 3
        bs[:] = 0
        for j in range(8):  # bit plane j: elements j·nb … j·nb + nb − 1 of the task
            xj, yj = xs[j * nb:(j + 1) * nb], ys[j * nb:(j + 1) * nb]
            for b in range(xj.size):
                v = xj[b]
                if relu:
                    keep = not v <= 0
                    yj[b] = v if keep else _like(0.0, v)
                else:
                    keep = v > 0
                    yj[b] = v if keep else a * v
                bs[b] |= np.uint8(keep) << np.uint8(j)


@njit(**_JIT)
def positive_bits(x, bits):
    """The bits of x > 0 (lean PReLU with a frozen slope keeps these)."""
    for t in prange((x.size + CHUNK - 1) // CHUNK):
        xs = x[t * CHUNK:(t + 1) * CHUNK]
        bs = bits[t * (CHUNK // 8):(t + 1) * (CHUNK // 8)]
        nb = (xs.size + 7) >> 3
        bs[:] = 0
        for j in range(8):
            xj = xs[j * nb:(j + 1) * nb]
            for b in range(xj.size):
                bs[b] |= np.uint8(xj[b] > 0) << np.uint8(j)


@njit(**_JIT)
def bits_bwd(bits, g, gx, a, relu):
    """gx = g where the bit is set, else a·g (relu: else 0, not 0·g, as the plain path)."""
    for t in prange((g.size + CHUNK - 1) // CHUNK):
        gs, gxs = g[t * CHUNK:(t + 1) * CHUNK], gx[t * CHUNK:(t + 1) * CHUNK]
        bs = bits[t * (CHUNK // 8):(t + 1) * (CHUNK // 8)]
        nb = (gs.size + 7) >> 3
        for j in range(8):
            gj, gxj = gs[j * nb:(j + 1) * nb], gxs[j * nb:(j + 1) * nb]
            for b in range(gj.size):
                gi = gj[b]
                gxj[b] = gi if (bs[b] >> np.uint8(j)) & np.uint8(1) else (_like(0.0, gi) if relu else a * gi)


# --- PReLU: x viewed as (outer, C, inner) in memory order ----------------------------------------


@njit(**_JIT)
def prelu_planes_fwd(x, y, w, C, inner):
    """inner > 1: tasks are blocks of one channel plane, so the slope is one scalar per task."""
    nb = (inner + CHUNK - 1) // CHUNK
    for t in prange((x.size // inner) * nb):
        p, blk = t // nb, t % nb
        a = w[p % C]
        lo = p * inner + blk * CHUNK
        hi = p * inner + min(inner, (blk + 1) * CHUNK)
        xs, ys = x[lo:hi], y[lo:hi]
        for i in range(xs.size):
            v = xs[i]
            ys[i] = v if v > 0 else a * v


@njit(fastmath={"reassoc"}, **_JIT)
def prelu_planes_bwd(x, g, gx, w, C, inner, partial):
    """gx, and partial[p, blk] = Σ x·g over x ≤ 0 in the task (vector lanes in x's type)."""
    nb = (inner + CHUNK - 1) // CHUNK
    for t in prange((x.size // inner) * nb):
        p, blk = t // nb, t % nb
        a = w[p % C]
        lo = p * inner + blk * CHUNK
        hi = p * inner + min(inner, (blk + 1) * CHUNK)
        xs, gs, gxs = x[lo:hi], g[lo:hi], gx[lo:hi]
        s = _like(0.0, a)
        for i in range(xs.size):
            v, gi = xs[i], gs[i]
            pos = v > 0
            gxs[i] = gi if pos else a * gi
            s += _like(0.0, a) if pos else v * gi
        partial[p, blk] = s


@njit(**_JIT)
def prelu_rows_fwd(x, y, w):
    """inner == 1 (channels last): rows of C, the inner loop runs over the channels."""
    C = w.size
    x2, y2 = x.reshape((x.size // C, C)), y.reshape((y.size // C, C))
    per = max(1, CHUNK // C)
    for t in prange((x2.shape[0] + per - 1) // per):
        xb, yb = x2[t * per:(t + 1) * per], y2[t * per:(t + 1) * per]
        for r in range(xb.shape[0]):
            for c in range(C):
                v = xb[r, c]
                yb[r, c] = v if v > 0 else w[c] * v


@njit(**_JIT)
def prelu_rows_bwd(x, g, gx, w, partial):
    """gx, and partial[task, c] = Σ x·g over x ≤ 0 in the task's rows (float64)."""
    C = w.size
    x2, g2, gx2 = x.reshape((x.size // C, C)), g.reshape((g.size // C, C)), gx.reshape((gx.size // C, C))
    per = max(1, CHUNK // C)
    for t in prange((x2.shape[0] + per - 1) // per):
        xb, gb, gxb = x2[t * per:(t + 1) * per], g2[t * per:(t + 1) * per], gx2[t * per:(t + 1) * per]
        acc = partial[t]
        acc[:] = 0
        for r in range(xb.shape[0]):
            for c in range(C):
                v, gi = xb[r, c], gb[r, c]
                pos = v > 0
                gxb[r, c] = gi if pos else w[c] * gi
                acc[c] += 0.0 if pos else np.float64(v * gi)


@njit(**_JIT)
def prelu_bits_bwd_kernel(bits, g, gx, w, C, inner):
    """Lean PReLU with a frozen slope: gx from the bits, the channel counted along (scalar loop)."""
    for t in prange((g.size + CHUNK - 1) // CHUNK):
        lo = t * CHUNK
        gs, gxs = g[lo:lo + CHUNK], gx[lo:lo + CHUNK]
        bs = bits[t * (CHUNK // 8):(t + 1) * (CHUNK // 8)]
        nb = (gs.size + 7) >> 3
        c, k = (lo // inner) % C, lo % inner
        for i in range(gs.size):
            gi = gs[i]
            gxs[i] = gi if (bs[i % nb] >> (i // nb)) & 1 else w[c] * gi
            k += 1
            if k == inner:
                k = 0
                c = c + 1 if c + 1 < C else 0


# --- ELU and tanh: one pass forward; backward from the output ------------------------------------------


@njit(fastmath={"contract"}, **_JIT)
def elu_fwd_kernel(x, y, alpha):
    """x for x > 0, else α(eˣ − 1); NaN stays NaN, −inf gives −α."""
    for t in prange((x.size + CHUNK - 1) // CHUNK):
        xs, ys = x[t * CHUNK:(t + 1) * CHUNK], y[t * CHUNK:(t + 1) * CHUNK]
        for i in range(xs.size):
            v = xs[i]
            ys[i] = v if v > 0 else alpha * _expm1_neg(v)


@njit(fastmath={"contract"}, **_JIT)
def sigmoid_fwd_kernel(x, y):
    """σ(x) from e = e^(−|x|): 1/(1 + e) for x ≥ 0, e/(1 + e) below; 0 at −inf, 1 at +inf."""
    for t in prange((x.size + CHUNK - 1) // CHUNK):
        xs, ys = x[t * CHUNK:(t + 1) * CHUNK], y[t * CHUNK:(t + 1) * CHUNK]
        for i in range(xs.size):
            v = xs[i]
            e = _exp_neg(-abs(v))
            p = _like(1.0, v) / (_like(1.0, v) + e)
            ys[i] = p if v >= 0 else e * p


@njit(**_JIT)
def sigmoid_bwd_kernel(y, g, gx):
    """σ' = y(1 − y)."""
    for t in prange((y.size + CHUNK - 1) // CHUNK):
        ys, gs, gxs = y[t * CHUNK:(t + 1) * CHUNK], g[t * CHUNK:(t + 1) * CHUNK], gx[t * CHUNK:(t + 1) * CHUNK]
        for i in range(ys.size):
            v = ys[i]
            gxs[i] = gs[i] * (v * (_like(1.0, v) - v))


@njit(fastmath={"contract"}, **_JIT)
def tanh_fwd_kernel(x, y):
    """tanh x = −sign(x)·e/(2 + e), e = e^(−2|x|) − 1: no cancellation near 0, ±1 beyond ±9."""
    for t in prange((x.size + CHUNK - 1) // CHUNK):
        xs, ys = x[t * CHUNK:(t + 1) * CHUNK], y[t * CHUNK:(t + 1) * CHUNK]
        for i in range(xs.size):
            v = xs[i]
            e = _expm1_neg(_like(-2.0, v) * abs(v))
            ys[i] = math.copysign((_like(0.0, v) - e) / (_like(2.0, v) + e), v)


@njit(**_JIT)
def tanh_bwd_kernel(y, g, gx):
    """tanh' = 1 − y²."""
    for t in prange((y.size + CHUNK - 1) // CHUNK):
        ys, gs, gxs = y[t * CHUNK:(t + 1) * CHUNK], g[t * CHUNK:(t + 1) * CHUNK], gx[t * CHUNK:(t + 1) * CHUNK]
        for i in range(ys.size):
            v = ys[i]
            gxs[i] = gs[i] * (_like(1.0, v) - v * v)



@njit(**_JIT)
def elu_bwd_kernel(y, g, gx, alpha):
    """f'(x) = α·eˣ = y + α for y ≤ 0 (f'(0) = α), else 1 (NaN passes g, as torch's scalar
    elu_backward and its CUDA kernel do)."""
    for t in prange((y.size + CHUNK - 1) // CHUNK):
        ys, gs, gxs = y[t * CHUNK:(t + 1) * CHUNK], g[t * CHUNK:(t + 1) * CHUNK], gx[t * CHUNK:(t + 1) * CHUNK]
        for i in range(ys.size):
            v, gi = ys[i], gs[i]
            gxs[i] = gi * (v + alpha) if v <= 0 else gi


# --- RReLU in training: slopes from Philox, recomputed in backward -------------------------------


@njit(inline="always")
def _philox(q, k0, k1):
    """Philox4x32-10 of counter (q lo, q hi, 0, 0) and key (k0, k1); 32-bit words in uint64."""
    c0, c1, c2, c3 = q & _U32, q >> _S32, np.uint64(0), np.uint64(0)
    for _ in range(philox.ROUNDS):
        pa, pb = _RA * c0, _RB * c2
        c0, c1, c2, c3 = (pb >> _S32) ^ c1 ^ k0, pb & _U32, (pa >> _S32) ^ c3 ^ k1, pa & _U32
        k0, k1 = (k0 + _KA) & _U32, (k1 + _KB) & _U32
    return c0, c1, c2, c3


@njit(inline="always")
def _slope(w, half, lo, span, smin, smax, divisor):
    """The slope for one 16-bit half of Philox word w, in lo's type (see actlab.fast.philox)."""
    h = (w >> _S16) if half else (w & _U16)
    u = _like(np.int64(h), lo) * _like(_TWO_M16, lo) + _like(_TWO_M17, lo)
    a = lo + span * u
    return min(max(_like(1.0, lo) / a if divisor else a, smin), smax)


@njit(inline="always")
def _slopes(s, q0, k0, k1, lo, span, smin, smax, divisor):
    """s[i] = the slope of element 8·q0 + i. Eight explicit stores per Philox call: written as a
    loop over the words, LLVM does not vectorise it (measured 6x slower)."""
    nq = s.size >> 3
    for q in range(nq):
        w0, w1, w2, w3 = _philox(np.uint64(q0 + q), k0, k1)
        s[8 * q] = _slope(w0, False, lo, span, smin, smax, divisor)
        s[8 * q + 1] = _slope(w0, True, lo, span, smin, smax, divisor)
        s[8 * q + 2] = _slope(w1, False, lo, span, smin, smax, divisor)
        s[8 * q + 3] = _slope(w1, True, lo, span, smin, smax, divisor)
        s[8 * q + 4] = _slope(w2, False, lo, span, smin, smax, divisor)
        s[8 * q + 5] = _slope(w2, True, lo, span, smin, smax, divisor)
        s[8 * q + 6] = _slope(w3, False, lo, span, smin, smax, divisor)
        s[8 * q + 7] = _slope(w3, True, lo, span, smin, smax, divisor)
    if s.size & 7:
        w = _philox(np.uint64(q0 + nq), k0, k1)
        for i in range(8 * nq, s.size):
            j = i - 8 * nq
            s[i] = _slope(w[j >> 1], (j & 1) == 1, lo, span, smin, smax, divisor)


@njit(**_JIT)
def rrelu_slopes(s, k0, k1, lo, span, smin, smax, divisor):
    """The slopes of a whole tensor (for tests and for inspection)."""
    for t in prange((s.size + CHUNK - 1) // CHUNK):
        _slopes(s[t * CHUNK:(t + 1) * CHUNK], t * (CHUNK // 8), k0, k1, lo, span, smin, smax, divisor)


@njit(**_JIT)
def rrelu_fwd_kernel(x, y, bits, lean, k0, k1, lo, span, smin, smax, divisor):
    """y (and with ``lean`` the bits of x > 0); each task draws its slopes into a scratch block
    first, so both loops vectorise."""
    for t in prange((x.size + CHUNK - 1) // CHUNK):
        xs, ys = x[t * CHUNK:(t + 1) * CHUNK], y[t * CHUNK:(t + 1) * CHUNK]
        s = np.empty(xs.size, xs.dtype)
        _slopes(s, t * (CHUNK // 8), k0, k1, lo, span, smin, smax, divisor)
        if not lean:
            for i in range(xs.size):
                v = xs[i]
                ys[i] = v if v > 0 else s[i] * v
            continue
        bs = bits[t * (CHUNK // 8):(t + 1) * (CHUNK // 8)]
        nb = (xs.size + 7) >> 3
        bs[:] = 0
        for j in range(8):
            xj, yj, sj = xs[j * nb:(j + 1) * nb], ys[j * nb:(j + 1) * nb], s[j * nb:(j + 1) * nb]
            for b in range(xj.size):
                v = xj[b]
                pos = v > 0
                yj[b] = v if pos else sj[b] * v
                bs[b] |= np.uint8(pos) << np.uint8(j)


@njit(**_JIT)
def rrelu_bwd_kernel(y, bits, lean, g, gx, k0, k1, lo, span, smin, smax, divisor):
    """gx from y > 0 (or the bits, with ``lean``) and the slopes drawn again."""
    for t in prange((g.size + CHUNK - 1) // CHUNK):
        gs, gxs = g[t * CHUNK:(t + 1) * CHUNK], gx[t * CHUNK:(t + 1) * CHUNK]
        s = np.empty(gs.size, gs.dtype)
        _slopes(s, t * (CHUNK // 8), k0, k1, lo, span, smin, smax, divisor)
        if not lean:
            ys = y[t * CHUNK:(t + 1) * CHUNK]
            for i in range(gs.size):
                gi = gs[i]
                gxs[i] = gi if ys[i] > 0 else s[i] * gi
            continue
        bs = bits[t * (CHUNK // 8):(t + 1) * (CHUNK // 8)]
        nb = (gs.size + 7) >> 3
        for j in range(8):
            gj, gxj, sj = gs[j * nb:(j + 1) * nb], gxs[j * nb:(j + 1) * nb], s[j * nb:(j + 1) * nb]
            for b in range(gj.size):
                gi = gj[b]
                gxj[b] = gi if (bs[b] >> np.uint8(j)) & np.uint8(1) else sj[b] * gi


@njit(**_JIT)
def rrelu_factors_kernel(x, f, k0, k1, lo, span, smin, smax, divisor):
    """f = 1 where x > 0, else the element's slope: y = x·f, and autograd's own product rule
    gives ∂L/∂x = g·f (the small-tensor path, :func:`_rrelu_small`)."""
    for t in prange((x.size + CHUNK - 1) // CHUNK):
        xs, fs = x[t * CHUNK:(t + 1) * CHUNK], f[t * CHUNK:(t + 1) * CHUNK]
        _slopes(fs, t * (CHUNK // 8), k0, k1, lo, span, smin, smax, divisor)
        for i in range(xs.size):
            if xs[i] > 0:
                fs[i] = _like(1.0, fs[i])


# --- the backend interface: flat CPU tensors in memory order, outputs preallocated --------------------

KIND = "cpu"
#: Dtypes these kernels serve; float16/bfloat16 on CPU take the plain path.
DTYPES = (torch.float32, torch.float64)
#: Activations served (through torch's own ops where NATIVE and SMALL below say so).
NAMES = ("sigmoid", "tanh", "relu", "leaky_relu", "prelu", "rrelu", "elu")
#: Where torch's own op is as fast as ours, lookup returns it (lean mode aside) for outputs of at
#: most the dispatch policy's ``native_max_bytes`` (``actlab.fast.Policy``). Each runs at copy
#: bandwidth both ways (relu, leaky_relu) or computes σ in one vectorised pass (sigmoid), keeps
#: what ours would keep (y; x for leaky_relu, the same 4 bytes per element) and passes g through
#: at NaN as the plain path; a kernel of ours moves the same bytes plus ~40 µs of Python per
#: forward+backward — measured 0.84-1.35x torch at 1M elements on 2 cores, depending on whether
#: torch's fresh outputs page-fault in that process (see actlab.fast.pool). Above the size, ours
#: win from the pool.
NATIVE = {"relu": torch.relu, "sigmoid": torch.sigmoid,
          "leaky_relu": torch._C._nn.leaky_relu}  # F.leaky_relu's op without its Python (modes still apply)


def _prelu_small(x: torch.Tensor, weight: torch.Tensor, channel_axis: int) -> torch.Tensor:
    """torch.prelu along any channel axis (torch's own takes axis 1), in x's dtype."""
    w = weight if weight.dtype == x.dtype else weight.to(x.dtype)
    axis = channel_axis % x.dim() if x.dim() else 1
    if weight.numel() == 1 or axis == 1:
        return torch.prelu(x, w)
    return torch.prelu(x.movedim(axis, 1), w).movedim(1, axis)


def _rrelu_small(x: torch.Tensor, lower: float, upper: float, form: str, seed: int) -> torch.Tensor:
    """RReLU in training as x·f, f = 1 where x > 0 else the kernel's Philox slope (one numba pass,
    on x's logical order, so any layout draws the same noise): torch's mul and its backward do the
    rest with no Python autograd.Function. Bit for bit the kernel's y and ∂L/∂x (the same
    products); it keeps f where the kernel keeps y, 4 bytes an element either way."""
    f = torch.empty(x.shape, dtype=x.dtype)
    rrelu_factors(x.detach().contiguous(), f, rrelu_params(lower, upper, form, seed))
    return x * f


#: Below the policy's ``min_numel`` lookup returns torch's own op where there is one with the
#: plain path's function and derivative (lean mode aside: it keeps less at every size): a kernel
#: of ours costs a Python autograd.Function and two numba calls (84-165 µs a forward+backward at
#: 2K elements on this 2-core VM, against 29-49 µs for torch.nn's whole layer), and the plain path
#: of leaky_relu, PReLU and ELU is several torch ops each way (64-113 µs). Differences: none for
#: relu, sigmoid, tanh, leaky_relu and PReLU (∂L/∂a summed in another order); torch's ELU derives
#: α·eˣ from x, ours y + α from y, so below x ≈ −17 (float32) torch's gradient is the exact one
#: (~1e-13) where ours rounds to 0, and at a NaN input torch's vectorised body gives a NaN
#: gradient where ours (and torch's own scalar tail) pass g. RReLU in training has no torch op
#: with its noise: :func:`_rrelu_small` draws the kernel's slopes in one numba pass and lets torch's
#: mul and its backward do the rest (forward+backward at 2K elements: 147 µs through the kernel's
#: autograd.Function before, against 46 µs for torch.nn's RReLU), bit for bit the kernel's result.
SMALL = {**NATIVE, "tanh": torch.tanh, "elu": torch._C._nn.elu, "prelu": _prelu_small, "rrelu": _rrelu_small}
#: Torch's own ops whose forward alone outruns ours up to the policy's ``native_max_bytes``, for
#: calls that want no gradient (inference; nothing is kept). torch's prelu forward is one
#: vectorised pass, ours a numba call with its thread hand-off: measured in no_grad on 2 cores,
#: torch's took 0.36-0.42x our time at 128K elements, 0.59-0.63x at 1M and 0.73x at 4M, while at
#: 8M (32 MiB, where torch's output page-faults) ours took 0.17-0.22x torch's. Its backward is
#: the slow part (ours: 5-10x at 1M), so with a gradient ours serves.
INFERENCE = {"prelu": _prelu_small}
_NONE8 = np.empty(0, np.uint8)


def _np(t: torch.Tensor) -> np.ndarray:
    """The flat NumPy view of a contiguous tensor (no copy; each step skipped where it can be,
    as every one costs the host a fraction of a microsecond, per array and per call)."""
    a = (t.detach() if t.requires_grad else t).numpy()
    return a if a.ndim == 1 else a.reshape(-1)


def _typed(v: float, t: torch.Tensor) -> np.floating:
    return np.float32(v) if t.dtype == torch.float32 else np.float64(v)


#: Below this many elements a kernel runs on one thread, as torch's own elementwise ops do (its
#: grain size): waking a second thread costs more than it saves there, and on a busy machine a
#: parallel region waits for a time slice on every core it uses.
GRAIN = 32768


def _serial(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run fn under the lock, on torch's thread count (one below GRAIN elements; the element
    count is the larger of the first two arguments', the first being a bit mask in backward)."""

    @functools.wraps(fn)
    def wrapper(*args: Any) -> Any:
        n = args[0].numel()
        if type(args[1]) is torch.Tensor:
            n = max(n, args[1].numel())
        with _LOCK:
            if not _started:
                _start_threads()
            set_threads(torch.get_num_threads() if n >= GRAIN else 1)
            return fn(*args)

    return wrapper


def bits_nbytes(n: int) -> int:
    """Bytes of the lean mask for n elements: one bit each."""
    return (n + 7) // 8


@_serial
def rect_fwd(x: torch.Tensor, y: torch.Tensor, bits: torch.Tensor | None, slope: float | None) -> None:
    if bits is not None:
        rect_fwd_bits(_np(x), _np(y), _np(bits), _typed(slope or 0.0, x), slope is None)
    elif slope is None:
        relu_fwd(_np(x), _np(y))
    else:
        leaky_fwd(_np(x), _np(y), _typed(slope, x))


@_serial
def rect_bwd(kept: torch.Tensor, g: torch.Tensor, gx: torch.Tensor, slope: float | None, lean: bool) -> None:
    if lean:
        bits_bwd(_np(kept), _np(g), _np(gx), _typed(slope or 0.0, g), slope is None)
    elif slope is None:
        relu_bwd(_np(kept), _np(g), _np(gx))
    else:
        leaky_bwd(_np(kept), _np(g), _np(gx), _typed(slope, g))


@_serial
def prelu_fwd(x: torch.Tensor, y: torch.Tensor, bits: torch.Tensor | None, w: torch.Tensor,
              geom: tuple[int, int, int]) -> None:
    _, c, inner = geom
    if inner == 1:
        prelu_rows_fwd(_np(x), _np(y), _np(w))
    else:
        prelu_planes_fwd(_np(x), _np(y), _np(w), c, inner)
    if bits is not None:
        positive_bits(_np(x), _np(bits))


@_serial
def prelu_bwd(x: torch.Tensor, g: torch.Tensor, gx: torch.Tensor, w: torch.Tensor,
              geom: tuple[int, int, int]) -> torch.Tensor:
    """Fills gx; returns ∂L/∂a (float64, one per channel) from the per-task partial sums."""
    outer, c, inner = geom
    if inner == 1:
        per = max(1, CHUNK // c)
        partial = np.empty(((x.numel() // c + per - 1) // per, c))
        prelu_rows_bwd(_np(x), _np(g), _np(gx), _np(w), partial)
        return torch.from_numpy(partial.sum(axis=0))
    nb = (inner + CHUNK - 1) // CHUNK
    partial = np.empty((outer * c, nb))
    prelu_planes_bwd(_np(x), _np(g), _np(gx), _np(w), c, inner, partial)
    return torch.from_numpy(partial.reshape(outer, c, nb).sum(axis=(0, 2)))


@_serial
def prelu_bits_bwd(bits: torch.Tensor, g: torch.Tensor, gx: torch.Tensor, w: torch.Tensor,
                   geom: tuple[int, int, int]) -> None:
    _, c, inner = geom
    prelu_bits_bwd_kernel(_np(bits), _np(g), _np(gx), _np(w), c, inner)


def _rrelu_args(params: tuple[int, float, float, bool], t: torch.Tensor) -> tuple:
    seed, lower, upper, divisor = params
    k0, k1 = philox.split_seed(seed)
    ty = np.float32 if t.dtype == torch.float32 else np.float64
    lo, hi = ty(lower), ty(upper)
    smin, smax = (ty(1) / hi, ty(1) / lo) if divisor else (lo, hi)
    return np.uint64(k0), np.uint64(k1), lo, hi - lo, smin, smax, divisor


@_serial
def rrelu_fwd(x: torch.Tensor, y: torch.Tensor, bits: torch.Tensor | None,
              params: tuple[int, float, float, bool]) -> None:
    lean = bits is not None
    rrelu_fwd_kernel(_np(x), _np(y), _np(bits) if lean else _NONE8, lean, *_rrelu_args(params, x))


@_serial
def rrelu_bwd(kept: torch.Tensor, g: torch.Tensor, gx: torch.Tensor, params: tuple[int, float, float, bool],
              lean: bool) -> None:
    gn = _np(g)
    y, bits = (gn[:0], _np(kept)) if lean else (_np(kept), _NONE8)
    rrelu_bwd_kernel(y, bits, lean, gn, _np(gx), *_rrelu_args(params, g))


@_serial
def rrelu_slopes_into(s: torch.Tensor, params: tuple[int, float, float, bool]) -> None:
    """The training slopes of a flat tensor's elements, written into s (for tests)."""
    rrelu_slopes(_np(s), *_rrelu_args(params, s))


@_serial
def rrelu_factors(x: torch.Tensor, f: torch.Tensor, params: tuple[int, float, float, bool]) -> None:
    rrelu_factors_kernel(_np(x), _np(f), *_rrelu_args(params, x))


@_serial
def elu_fwd(x: torch.Tensor, y: torch.Tensor, alpha: float) -> None:
    elu_fwd_kernel(_np(x), _np(y), _typed(alpha, x))


@_serial
def elu_bwd(y: torch.Tensor, g: torch.Tensor, gx: torch.Tensor, alpha: float) -> None:
    elu_bwd_kernel(_np(y), _np(g), _np(gx), _typed(alpha, g))


def _from_output(fwd_kernel: Any, bwd_kernel: Any) -> tuple[Callable[..., None], Callable[..., None]]:
    """The backend pair ``<name>_fwd(x, y)``, ``<name>_bwd(y, g, gx)`` of a function whose
    backward reads only its output (tanh, sigmoid; see actlab.fast.ops.FromOutput)."""

    @_serial
    def fwd(x: torch.Tensor, y: torch.Tensor) -> None:
        fwd_kernel(_np(x), _np(y))

    @_serial
    def bwd(y: torch.Tensor, g: torch.Tensor, gx: torch.Tensor) -> None:
        bwd_kernel(_np(y), _np(g), _np(gx))

    return fwd, bwd


tanh_fwd, tanh_bwd = _from_output(tanh_fwd_kernel, tanh_bwd_kernel)
sigmoid_fwd, sigmoid_bwd = _from_output(sigmoid_fwd_kernel, sigmoid_bwd_kernel)
