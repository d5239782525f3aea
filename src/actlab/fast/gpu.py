"""Triton kernels for the fast paths on CUDA tensors (float32, bfloat16, float16).

One pass over memory per forward and per backward, computing in float32 whatever the storage
type. What backward reads is decided in :mod:`actlab.fast.ops` (y for the rectifiers, ELU,
sigmoid and tanh; x for PReLU; one bit per element in lean mode). Triton kernels do every
forward, PReLU's and RReLU's backward and the lean backwards; the backwards that read y are
torch's own one-pass kernels (the same work; a cheaper launch), and relu outside lean mode is
torch.relu. RReLU's slopes are drawn from the Philox stream of :mod:`actlab.fast.philox` (the
same bits as the CPU kernels) and drawn again in backward. PReLU's slope gradient is reduced per
program into a small float32 buffer and then summed by torch — deterministic, unlike atomics.

Measured on an H200 (``benchmarks/gpu_check.sh``, device time at 16M and 32M elements): every
forward at 0.96-1.02 of copy bandwidth except tanh in bfloat16 (0.90-0.93) and RReLU in
training (float32 0.92, bfloat16 0.86-0.88: ten Philox rounds per eight elements).

Only plain ``tl`` operations are used (no libdevice, no ``tl.rand``), so the kernels run on
Triton 3.6 and 3.9 alike and, with ``TRITON_INTERPRET=1`` set before Triton is imported, on CPU
tensors — how the tests check them without a GPU. Importing this module needs Triton, not a GPU.

Lean masks: 32-bit words, bit j of word w is element 32·w + j (x > 0; relu: not x ≤ 0).
"""

from __future__ import annotations

import struct

import torch
import triton
import triton.language as tl

from . import philox

__all__ = ["KIND", "DTYPES", "NAMES", "bits_nbytes"]

KIND = "gpu"
DTYPES = (torch.float32, torch.bfloat16, torch.float16)
NAMES = ("sigmoid", "tanh", "relu", "leaky_relu", "prelu", "rrelu", "elu")
#: relu outside lean mode is torch.relu: one pass, keeps y, the plain path's semantics (g passes at
#: NaN) and no Python in its backward — nothing a kernel of ours could improve on.
NATIVE = {"relu": torch.relu}
#: The GPU takes every size (the policy's ``min_numel`` is 0); raised, it sends smaller tensors to
#: the plain path: no torch op stands in, no kernel ignores it.
SMALL: dict = {}
#: No forward-only stand-ins: ours run at copy bandwidth.
INFERENCE: dict = {}

# op codes of the elementwise kernels (constexpr: each compiles to its own kernel); kernels may
# read module globals only if they are tl.constexpr objects, the host passes their .value
SIGMOID, TANH, RELU, LEAKY, ELU, PRELU1 = (tl.constexpr(i) for i in range(6))

_WARPS = 8  # warps per program of the tiled kernels (lean masks, PReLU rows, RReLU in float32)
#: (elements per program, warps) of the elementwise kernels, by element size; measured on an H200
#: at 32M elements (benchmarks/triton_blocks.py): float32 1024/8 reached 0.99 of copy bandwidth
#: for relu and tanh (2048/8: 0.96); 16-bit 2048/4 reached 1.00 (relu) and 0.92 (tanh).
_CONFIG = {4: (1024, 8), 2: (2048, 4)}


def _block(t: torch.Tensor) -> int:
    return _CONFIG[t.element_size()][0]


def _ew_warps(t: torch.Tensor) -> int:
    return _CONFIG[t.element_size()][1]


def _warps(block: int, t: torch.Tensor) -> int:
    """Warps for a program of ``block`` elements: at least 16 bytes per thread per load."""
    return max(1, min(_WARPS, block * t.element_size() // (16 * 32)))


# --- device functions ----------------------------------------------------------------------------------


@triton.jit
def _expm1_neg(x):
    """eˣ − 1 for x ≤ 0 (or NaN), float32: as actlab.fast.cpu._expm1_neg_f32."""
    x = tl.where(x < -87.0, -87.0, x)  # where, not maximum: NaN must stay NaN
    k = tl.floor(x * 1.4426950408889634 + 0.5)
    r = (x - k * 0.693145751953125) - k * 1.428606765330187e-06
    q = r * (1.0 + r * (0.5 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120 + r * (1.0 / 720 + r * (1.0 / 5040)))))))
    s = ((k.to(tl.int32) + 127) << 23).to(tl.float32, bitcast=True)
    return s * q + (s - 1.0)


@triton.jit
def _tanh(x):
    """tanh in float32 with few instructions (it must keep up with bfloat16 bandwidth):
    |x| < 0.55: x·(1 − x²/3 + 2x⁴/15 − …), the Taylor series to x¹⁵ (error < 5·10⁻⁸ relative);
    else 1 − 2/(e^(2|x|) + 1), no cancellation there (tanh > 0.5); ±1 beyond, NaN stays NaN."""
    ax = tl.abs(x)
    z = x * x
    p = -929569.0 / 638512875.0
    p = 21844.0 / 6081075.0 + z * p
    p = -1382.0 / 155925.0 + z * p
    p = 62.0 / 2835.0 + z * p
    p = -17.0 / 315.0 + z * p
    p = 2.0 / 15.0 + z * p
    p = -1.0 / 3.0 + z * p
    small = x * (1.0 + z * p)  # x·(…) keeps the sign of ±0
    big = 1.0 - 2.0 / (tl.exp(2.0 * ax) + 1.0)
    big = tl.where(x < 0, -big, big)
    return tl.where(ax < 0.55, small, big)


@triton.jit
def _forward(x, slope, alpha, OP: tl.constexpr):
    """f(x) in float32 for the elementwise ops."""
    if OP == SIGMOID:
        z = tl.exp(-tl.abs(x))
        y = tl.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))
    elif OP == TANH:
        y = _tanh(x)
    elif OP == RELU:
        y = tl.where(x <= 0, 0.0, x)  # NaN stays NaN
    elif OP == ELU:
        y = tl.where(x > 0, x, alpha * _expm1_neg(x))
    else:  # LEAKY, PRELU1
        y = tl.where(x > 0, x, slope * x)
    return y


@triton.jit
def _philox(q, k0, k1):
    """Philox4x32-10 of counters (q, 0, 0, 0) (q < 2³²) and key (k0, k1), as actlab.fast.philox."""
    c0 = q
    c1 = q * 0
    c2 = q * 0
    c3 = q * 0
    for _ in tl.static_range(10):
        _c0 = c0
        _c2 = c2
        c0 = tl.umulhi(0xCD9E8D57, _c2) ^ c1 ^ k0
        c2 = tl.umulhi(0xD2511F53, _c0) ^ c3 ^ k1
        c1 = _c2 * 0xCD9E8D57
        c3 = _c0 * 0xD2511F53
        k0 = k0 + 0x9E3779B9
        k1 = k1 + 0xBB67AE85
    return c0, c1, c2, c3


@triton.jit
def _slope_of(h, lo, span, smin, smax, DIVISOR: tl.constexpr):
    """The slope for a 16-bit draw h (see actlab.fast.philox). u = (h + ½)/2¹⁶ exactly, built
    from the bits of 1 + h/2¹⁶ rather than an integer-to-float conversion (a quarter-rate op)."""
    u = ((h << 7) | 0x3F800000).to(tl.float32, bitcast=True) - (1.0 - 0.5 / 65536)
    a = lo + span * u
    if DIVISOR:
        a = 1.0 / a
    return tl.minimum(tl.maximum(a, smin), smax)


# --- elementwise kernels ---------------------------------------------------------------------------------


@triton.jit
def _fwd_kernel(x_ptr, y_ptr, w_ptr, n, slope, alpha, OP: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask).to(tl.float32)
    if OP == PRELU1:
        slope = tl.load(w_ptr).to(tl.float32)
    tl.store(y_ptr + offs, _forward(x, slope, alpha, OP), mask=mask)


@triton.jit
def _rect_fwd_bits_kernel(x_ptr, y_ptr, bits_ptr, n, slope, RELU_: tl.constexpr, ROWS: tl.constexpr):
    """y and the lean mask: a tile of ROWS words × 32 elements."""
    row = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    col = tl.arange(0, 32)
    offs = row[:, None] * 32 + col[None, :]
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask).to(tl.float32)
    if RELU_:
        keep = (x <= 0) == 0
        y = tl.where(keep, x, 0.0)
    else:
        keep = x > 0
        y = tl.where(keep, x, slope * x)
    tl.store(y_ptr + offs, y, mask=mask)
    word = tl.sum(tl.where(keep & mask, 1 << col[None, :], 0), axis=1)
    tl.store(bits_ptr + row, word, mask=row * 32 < n)


@triton.jit
def _rect_bwd_bits_kernel(bits_ptr, g_ptr, gx_ptr, n, slope, RELU_: tl.constexpr, ROWS: tl.constexpr):
    row = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    col = tl.arange(0, 32)
    offs = row[:, None] * 32 + col[None, :]
    mask = offs < n
    word = tl.load(bits_ptr + row, mask=row * 32 < n, other=0)
    keep = ((word[:, None] >> col[None, :]) & 1) != 0
    g = tl.load(g_ptr + offs, mask=mask).to(tl.float32)
    if RELU_:
        gx = tl.where(keep, g, 0.0)
    else:
        gx = tl.where(keep, g, slope * g)
    tl.store(gx_ptr + offs, gx, mask=mask)


# --- RReLU: tiles of W words × 4 Philox calls × 8 elements ---------------------------------------------


@triton.jit
def _rrelu_offsets(W: tl.constexpr):
    """This program's elements as (W words, 4 Philox calls, 8 elements), their call index and
    their bit in the word."""
    r = tl.arange(0, W)[:, None, None]
    a = tl.arange(0, 4)[None, :, None]
    e = tl.arange(0, 8)[None, None, :]
    row0 = tl.program_id(0) * W
    return (row0 + r) * 32 + a * 8 + e, (row0 + r) * 4 + a, a * 8 + e


@triton.jit
def _rrelu_slopes(q, k0_arg, k1_arg, lo, span, smin, smax, DIVISOR: tl.constexpr):
    """The slopes of the (W, 4, 8) tile whose Philox calls are q (W, 4, 1)."""
    k0 = (tl.zeros([1, 1, 1], tl.int32) + k0_arg).to(tl.uint32, bitcast=True)
    k1 = (tl.zeros([1, 1, 1], tl.int32) + k1_arg).to(tl.uint32, bitcast=True)
    c0, c1, c2, c3 = _philox(q.to(tl.uint32), k0, k1)
    e = tl.arange(0, 8)[None, None, :]
    word = e >> 1
    w = tl.where(word == 0, c0, tl.where(word == 1, c1, tl.where(word == 2, c2, c3)))
    h = tl.where((e & 1) == 1, w >> 16, w & 0xFFFF)
    return _slope_of(h, lo, span, smin, smax, DIVISOR)


@triton.jit(do_not_specialize=["k0", "k1"])
def _rrelu_fwd_kernel(x_ptr, y_ptr, bits_ptr, n, k0, k1, lo, span, smin, smax, DIVISOR: tl.constexpr,
                      MODE: tl.constexpr, W: tl.constexpr):
    """MODE 0: y; 1: y and the lean mask; 2: the slopes themselves (for tests). The load is
    issued before the Philox rounds, so memory latency hides behind them."""
    offs, q, bit = _rrelu_offsets(W)
    mask = offs < n
    if MODE == 2:
        tl.store(y_ptr + offs, _rrelu_slopes(q, k0, k1, lo, span, smin, smax, DIVISOR), mask=mask)
    else:
        x = tl.load(x_ptr + offs, mask=mask).to(tl.float32)
        s = _rrelu_slopes(q, k0, k1, lo, span, smin, smax, DIVISOR)
        pos = x > 0
        tl.store(y_ptr + offs, tl.where(pos, x, s * x), mask=mask)
        if MODE == 1:
            word = tl.sum(tl.sum(tl.where(pos & mask, 1 << bit, 0), axis=2), axis=1)
            row = tl.program_id(0) * W + tl.arange(0, W)
            tl.store(bits_ptr + row, word, mask=row * 32 < n)


@triton.jit(do_not_specialize=["k0", "k1"])
def _rrelu_bwd_kernel(k_ptr, g_ptr, gx_ptr, n, k0, k1, lo, span, smin, smax, DIVISOR: tl.constexpr,
                      LEAN: tl.constexpr, W: tl.constexpr):
    offs, q, bit = _rrelu_offsets(W)
    mask = offs < n
    g = tl.load(g_ptr + offs, mask=mask).to(tl.float32)
    if LEAN:
        row = tl.program_id(0) * W + tl.arange(0, W)
        word = tl.load(k_ptr + row, mask=row * 32 < n, other=0)[:, None, None]
        pos = ((word >> bit) & 1) != 0
    else:
        pos = tl.load(k_ptr + offs, mask=mask).to(tl.float32) > 0
    s = _rrelu_slopes(q, k0, k1, lo, span, smin, smax, DIVISOR)
    tl.store(gx_ptr + offs, tl.where(pos, g, s * g), mask=mask)


# --- PReLU: x as (outer, C, inner) in memory order -------------------------------------------------------


@triton.jit
def _plane_block(w_ptr, inner, C, nblk, BLOCK: tl.constexpr):
    """inner > 1: program (plane, block) → its slope, element offsets and mask (one slope per program)."""
    pid = tl.program_id(0)
    plane = pid // nblk
    idx = (pid % nblk) * BLOCK + tl.arange(0, BLOCK)
    a = tl.load(w_ptr + plane % C).to(tl.float32)
    return a, plane.to(tl.int64) * inner + idx, idx < inner


@triton.jit
def _prelu_planes_fwd_kernel(x_ptr, y_ptr, w_ptr, inner, C, nblk, BLOCK: tl.constexpr):
    a, offs, mask = _plane_block(w_ptr, inner, C, nblk, BLOCK)
    x = tl.load(x_ptr + offs, mask=mask).to(tl.float32)
    tl.store(y_ptr + offs, tl.where(x > 0, x, a * x), mask=mask)


@triton.jit
def _prelu_planes_bwd_kernel(x_ptr, g_ptr, gx_ptr, w_ptr, part_ptr, inner, C, nblk, BLOCK: tl.constexpr):
    """gx, and part[program] = Σ x·g over its x ≤ 0 (float32)."""
    a, offs, mask = _plane_block(w_ptr, inner, C, nblk, BLOCK)
    x = tl.load(x_ptr + offs, mask=mask).to(tl.float32)
    g = tl.load(g_ptr + offs, mask=mask).to(tl.float32)
    pos = x > 0
    tl.store(gx_ptr + offs, tl.where(pos, g, a * g), mask=mask)
    tl.store(part_ptr + tl.program_id(0), tl.sum(tl.where(pos | (mask == 0), 0.0, x * g), axis=0))


@triton.jit
def _prelu_rows_fwd_kernel(x_ptr, y_ptr, w_ptr, rows, C, ROWS: tl.constexpr, BLOCK_C: tl.constexpr):
    """inner == 1 (channels last): a tile of ROWS rows × BLOCK_C channels."""
    r = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    cmask = c < C
    mask = (r[:, None] < rows) & cmask[None, :]
    offs = r[:, None].to(tl.int64) * C + c[None, :]
    a = tl.load(w_ptr + c, mask=cmask, other=0.0).to(tl.float32)[None, :]
    x = tl.load(x_ptr + offs, mask=mask).to(tl.float32)
    tl.store(y_ptr + offs, tl.where(x > 0, x, a * x), mask=mask)


@triton.jit
def _prelu_rows_bwd_kernel(x_ptr, g_ptr, gx_ptr, w_ptr, part_ptr, rows, C, ROWS: tl.constexpr,
                           BLOCK_C: tl.constexpr):
    """gx, and part[row tile, c] = Σ x·g over the tile's x ≤ 0 (float32)."""
    r = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    cmask = c < C
    mask = (r[:, None] < rows) & cmask[None, :]
    offs = r[:, None].to(tl.int64) * C + c[None, :]
    a = tl.load(w_ptr + c, mask=cmask, other=0.0).to(tl.float32)[None, :]
    x = tl.load(x_ptr + offs, mask=mask).to(tl.float32)
    g = tl.load(g_ptr + offs, mask=mask).to(tl.float32)
    pos = x > 0
    tl.store(gx_ptr + offs, tl.where(pos, g, a * g), mask=mask)
    part = tl.sum(tl.where(pos | (mask == 0), 0.0, x * g), axis=0)
    tl.store(part_ptr + tl.program_id(0) * C + c, part, mask=cmask)


@triton.jit
def _positive_bits_kernel(x_ptr, bits_ptr, n, ROWS: tl.constexpr):
    row = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    col = tl.arange(0, 32)
    offs = row[:, None] * 32 + col[None, :]
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    word = tl.sum(tl.where(x > 0, 1 << col[None, :], 0), axis=1)
    tl.store(bits_ptr + row, word, mask=row * 32 < n)


@triton.jit
def _prelu_bits_bwd_kernel(bits_ptr, g_ptr, gx_ptr, w_ptr, n, inner, C, ROWS: tl.constexpr):
    """Lean PReLU with a frozen slope: the channel of each element from its index."""
    row = tl.program_id(0) * ROWS + tl.arange(0, ROWS)
    col = tl.arange(0, 32)
    offs = row[:, None] * 32 + col[None, :]
    mask = offs < n
    word = tl.load(bits_ptr + row, mask=row * 32 < n, other=0)
    keep = ((word[:, None] >> col[None, :]) & 1) != 0
    a = tl.load(w_ptr + (offs // inner) % C, mask=mask, other=0.0).to(tl.float32)
    g = tl.load(g_ptr + offs, mask=mask).to(tl.float32)
    tl.store(gx_ptr + offs, tl.where(keep, g, a * g), mask=mask)


# --- the backend interface: flat tensors in memory order, outputs preallocated ---------------------------

_ROWS = 64  # words (of 32 elements) per program in the lean kernels: 2048 elements


def bits_nbytes(n: int) -> int:
    """Bytes of the lean mask for n elements: whole 32-bit words."""
    return 4 * triton.cdiv(n, 32)


def _grid(n: int, block: int) -> tuple[int]:
    return (triton.cdiv(n, block),)


def _words(bits: torch.Tensor) -> torch.Tensor:
    return bits.view(torch.int32)


def rect_fwd(x: torch.Tensor, y: torch.Tensor, bits: torch.Tensor | None, slope: float | None) -> None:
    n = x.numel()
    if bits is not None:
        _rect_fwd_bits_kernel[_grid(n, 32 * _ROWS)](x, y, _words(bits), n, float(slope or 0.0), slope is None,
                                                    ROWS=_ROWS, num_warps=_WARPS)
        return
    op = RELU if slope is None else LEAKY
    _fwd_kernel[_grid(n, _block(x))](x, y, x, n, float(slope or 0.0), 0.0, OP=op.value, BLOCK=_block(x),
                                     num_warps=_ew_warps(x))


def rect_bwd(kept: torch.Tensor, g: torch.Tensor, gx: torch.Tensor, slope: float | None, lean: bool) -> None:
    n = g.numel()
    if lean:
        _rect_bwd_bits_kernel[_grid(n, 32 * _ROWS)](_words(kept), g, gx, n, float(slope or 0.0), slope is None,
                                                    ROWS=_ROWS, num_warps=_WARPS)
        return
    if slope is None:
        torch.ops.aten.threshold_backward.grad_input(g, kept, 0, grad_input=gx)
    else:  # torch's kernel, reading y (self_is_result): the slope is ≥ 0, so y > 0 ⇔ x > 0
        torch.ops.aten.leaky_relu_backward.grad_input(g, kept, slope, True, grad_input=gx)


def _unary_fwd(op: tl.constexpr, x: torch.Tensor, y: torch.Tensor, alpha: float = 0.0) -> None:
    n = x.numel()
    _fwd_kernel[_grid(n, _block(x))](x, y, x, n, 0.0, float(alpha), OP=op.value, BLOCK=_block(x),
                                     num_warps=_ew_warps(x))


# The backwards from the output are torch's own one-pass kernels, which a Triton kernel only ties
# (measured: 1.00 of torch's relu backward at 32M on an H200), while a Triton launch costs the host
# 3x a torch op's: in eager code at these sizes the host's time per call is what shows.


def sigmoid_fwd(x: torch.Tensor, y: torch.Tensor) -> None:
    _unary_fwd(SIGMOID, x, y)


def sigmoid_bwd(y: torch.Tensor, g: torch.Tensor, gx: torch.Tensor) -> None:
    torch.ops.aten.sigmoid_backward.grad_input(g, y, grad_input=gx)


def tanh_fwd(x: torch.Tensor, y: torch.Tensor) -> None:
    _unary_fwd(TANH, x, y)


def tanh_bwd(y: torch.Tensor, g: torch.Tensor, gx: torch.Tensor) -> None:
    torch.ops.aten.tanh_backward.grad_input(g, y, grad_input=gx)


def elu_fwd(x: torch.Tensor, y: torch.Tensor, alpha: float) -> None:
    _unary_fwd(ELU, x, y, alpha)


def elu_bwd(y: torch.Tensor, g: torch.Tensor, gx: torch.Tensor, alpha: float) -> None:
    torch.ops.aten.elu_backward.grad_input(g, alpha, 1, 1, True, y, grad_input=gx)  # f' = y + α for y ≤ 0


def _prelu_rows_shape(c: int) -> tuple[int, int]:
    block_c = min(triton.next_power_of_2(c), 256)
    return max(1, 2048 // block_c), block_c


def prelu_fwd(x: torch.Tensor, y: torch.Tensor, bits: torch.Tensor | None, w: torch.Tensor,
              geom: tuple[int, int, int]) -> None:
    outer, c, inner = geom
    n = x.numel()
    if c == 1:
        _fwd_kernel[_grid(n, _block(x))](x, y, w, n, 0.0, 0.0, OP=PRELU1.value, BLOCK=_block(x),
                                         num_warps=_ew_warps(x))
    elif inner == 1:
        rows_tile, block_c = _prelu_rows_shape(c)
        grid = (triton.cdiv(outer, rows_tile), triton.cdiv(c, block_c))
        _prelu_rows_fwd_kernel[grid](x, y, w, outer, c, ROWS=rows_tile, BLOCK_C=block_c, num_warps=_WARPS)
    else:
        block = min(_block(x), triton.next_power_of_2(inner))
        nblk = triton.cdiv(inner, block)
        _prelu_planes_fwd_kernel[(outer * c * nblk,)](x, y, w, inner, c, nblk, BLOCK=block,
                                                      num_warps=_warps(block, x))
    if bits is not None:
        _positive_bits_kernel[_grid(n, 32 * _ROWS)](x, _words(bits), n, ROWS=_ROWS, num_warps=_WARPS)


def prelu_bwd(x: torch.Tensor, g: torch.Tensor, gx: torch.Tensor, w: torch.Tensor,
              geom: tuple[int, int, int]) -> torch.Tensor:
    """Fills gx; returns ∂L/∂a (float32, one per channel) from per-program partial sums."""
    outer, c, inner = geom
    if inner == 1 and c > 1:
        rows_tile, block_c = _prelu_rows_shape(c)
        grid = (triton.cdiv(outer, rows_tile), triton.cdiv(c, block_c))
        part = torch.empty(grid[0], c, dtype=torch.float32, device=x.device)
        _prelu_rows_bwd_kernel[grid](x, g, gx, w, part, outer, c, ROWS=rows_tile, BLOCK_C=block_c,
                                     num_warps=_WARPS)
        return part.sum(dim=0)
    block = min(_block(x), triton.next_power_of_2(inner))
    nblk = triton.cdiv(inner, block)
    part = torch.empty(outer * c * nblk, dtype=torch.float32, device=x.device)
    _prelu_planes_bwd_kernel[(outer * c * nblk,)](x, g, gx, w, part, inner, c, nblk, BLOCK=block,
                                                  num_warps=_warps(block, x))
    return part.view(outer, c, nblk).sum(dim=(0, 2))


def prelu_bits_bwd(bits: torch.Tensor, g: torch.Tensor, gx: torch.Tensor, w: torch.Tensor,
                   geom: tuple[int, int, int]) -> None:
    _, c, inner = geom
    n = g.numel()
    _prelu_bits_bwd_kernel[_grid(n, 32 * _ROWS)](_words(bits), g, gx, w, n, inner, c, ROWS=_ROWS, num_warps=_WARPS)


def _rrelu_args(params: tuple[int, float, float, bool]) -> tuple:
    """Key words as signed int32 (how Triton passes them) and the float32 slope constants."""
    seed, lower, upper, divisor = params
    k0, k1 = philox.split_seed(seed)
    lo, hi = _f32(lower), _f32(upper)
    smin, smax = (_f32(1 / hi), _f32(1 / lo)) if divisor else (lo, hi)
    signed = [k - 2**32 if k >= 2**31 else k for k in (k0, k1)]
    return (*signed, lo, _f32(hi - lo), smin, smax)


def _f32(v: float) -> float:
    """v rounded to float32 (the kernels' compute type), as a Python float."""
    return struct.unpack("f", struct.pack("f", v))[0]


_W = 64  # 32-element words per RReLU program: 2048 elements, on _WARPS (8) warps — measured on an
# H200 in bfloat16: 0.86-0.88 of copy bandwidth; 4 warps (two Philox calls per thread) 0.76


def rrelu_fwd(x: torch.Tensor, y: torch.Tensor, bits: torch.Tensor | None,
              params: tuple[int, float, float, bool]) -> None:
    n = x.numel()
    _rrelu_fwd_kernel[_grid(n, 32 * _W)](x, y, _words(bits) if bits is not None else y, n, *_rrelu_args(params),
                                         DIVISOR=params[3], MODE=1 if bits is not None else 0, W=_W,
                                         num_warps=_WARPS)


def rrelu_bwd(kept: torch.Tensor, g: torch.Tensor, gx: torch.Tensor, params: tuple[int, float, float, bool],
              lean: bool) -> None:
    n = g.numel()
    _rrelu_bwd_kernel[_grid(n, 32 * _W)](_words(kept) if lean else kept, g, gx, n, *_rrelu_args(params),
                                         DIVISOR=params[3], LEAN=lean, W=_W, num_warps=_WARPS)


def rrelu_slopes_into(s: torch.Tensor, params: tuple[int, float, float, bool]) -> None:
    """The training slopes of a flat tensor's elements, written into s (for tests)."""
    n = s.numel()
    _rrelu_fwd_kernel[_grid(n, 32 * _W)](s, s, s, n, *_rrelu_args(params), DIVISOR=params[3], MODE=2, W=_W,
                                         num_warps=_WARPS)
