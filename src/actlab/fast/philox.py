"""The counter-based random numbers of RReLU's fast paths: Philox4x32-10, in NumPy.

RReLU's training noise is a pure function of (step seed, element index), so backward
regenerates it instead of keeping a tensor of slopes (torch.nn keeps 4 bytes per element).
The stream is defined here once; the numba kernels (:mod:`actlab.fast.cpu`) and the Triton
kernels (:mod:`actlab.fast.gpu`) compute the same bits, so a seed gives the same uniforms on
CPU and GPU.

Definition, for a tensor's elements in memory order i = 0, 1, ...:

* key (k0, k1) = the low and high 32 bits of the 63-bit step seed;
* counter = (q mod 2³², q div 2³², 0, 0) with q = i div 8;
* w = word (i div 2) mod 4 of Philox4x32 with 10 rounds (Salmon et al., SC 2011; the generator
  behind ``tl.rand``, cuRAND's and JAX's);
* h = the low 16 bits of w for even i, the high 16 bits for odd i;
* u = (h + ½) / 2¹⁶, one of 65536 evenly spaced values in (0, 1), with mean exactly ½;
* slope form: a = lower + (upper − lower)·u; divisor form: a = 1 / (lower + (upper − lower)·u);
  computed in the tensor's compute type (float32 for 16- and 32-bit floats) and clamped to the
  interval's rounded ends.

16 bits per element, so one Philox call serves eight consecutive elements: that is what makes
the noise cheap enough to draw again in backward (on an H200, 32 bits per element left the
kernel compute-bound at under half the copy bandwidth). The slope then takes one of 65536
evenly spaced values in its interval: finer than bfloat16 resolves and far finer than the
regularising noise needs; the tests check range, mean, spread, uniformity and independence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ROUNDS", "KEY_A", "KEY_B", "ROUND_A", "ROUND_B", "split_seed", "philox4x32", "uniforms", "slopes",
           "torch_uniforms", "torch_slopes"]

ROUNDS = 10
KEY_A, KEY_B = 0x9E3779B9, 0xBB67AE85  # the Weyl sequence that bumps the key each round
ROUND_A, ROUND_B = 0xD2511F53, 0xCD9E8D57  # the two multipliers
_MASK = 0xFFFFFFFF


def split_seed(seed: int) -> tuple[int, int]:
    """The Philox key (k0, k1): low and high 32 bits of a non-negative seed below 2⁶⁴."""
    seed = int(seed)
    if not 0 <= seed < 2**64:
        raise ValueError(f"rrelu: invalid seed={seed}; valid: int in [0, 2**64)")
    return seed & 0xFFFFFFFF, seed >> 32


def philox4x32(c0: np.ndarray, c1: np.ndarray, c2: np.ndarray, c3: np.ndarray, k0: int, k1: int,
               rounds: int = ROUNDS) -> tuple[np.ndarray, ...]:
    """Philox4x32 on arrays of 32-bit counters (as uint64 holding 32-bit values)."""
    import numpy as np

    mask = np.uint64(_MASK)
    c0, c1, c2, c3 = (np.asarray(c, np.uint64) & mask for c in (c0, c1, c2, c3))
    k0, k1 = np.uint64(k0), np.uint64(k1)
    a, b = np.uint64(ROUND_A), np.uint64(ROUND_B)
    for _ in range(rounds):
        pa, pb = a * c0, b * c2  # exact: both factors < 2**32
        c0, c1, c2, c3 = ((pb >> np.uint64(32)) ^ c1 ^ k0, pb & mask,
                          (pa >> np.uint64(32)) ^ c3 ^ k1, pa & mask)
        k0, k1 = (k0 + np.uint64(KEY_A)) & mask, (k1 + np.uint64(KEY_B)) & mask
    return c0, c1, c2, c3


def uniforms(seed: int, n: int, start: int = 0) -> np.ndarray:
    """u for elements start … start+n−1 of the stream of ``seed`` (float32 in (0, 1))."""
    import numpy as np

    k0, k1 = split_seed(seed)
    i = np.arange(start, start + n, dtype=np.uint64)
    q = i >> np.uint64(3)
    words = np.stack(philox4x32(q & np.uint64(_MASK), q >> np.uint64(32), np.zeros_like(q), np.zeros_like(q), k0, k1))
    w = words[((i >> np.uint64(1)) & np.uint64(3)).astype(np.intp), np.arange(n)]
    h = (w >> (np.uint64(16) * (i & np.uint64(1)))) & np.uint64(0xFFFF)
    return (h.astype(np.float32) * np.float32(2.0**-16) + np.float32(2.0**-17)).astype(np.float32)


def slopes(seed: int, n: int, lower: float, upper: float, form: str, dtype: Any = "float32") -> np.ndarray:
    """The training slopes of n elements, as the kernels compute them (``dtype``: compute type)."""
    import numpy as np

    dtype = np.dtype(dtype)
    u = uniforms(seed, n).astype(dtype)
    lo, span = dtype.type(lower), dtype.type(upper) - dtype.type(lower)
    a = lo + span * u
    if form == "slope":
        return np.clip(a, lo, dtype.type(upper))
    s = dtype.type(1) / a
    return np.clip(s, dtype.type(1) / dtype.type(upper), dtype.type(1) / dtype.type(lower))


# --- the same stream in plain torch operations: the plain path, and what compilers trace --------------


def _split_torch(seed: Any) -> tuple[Any, Any]:
    """(k0, k1) of a step seed given as an int or as a 0-d int64 tensor (traced code)."""
    if isinstance(seed, int):
        return split_seed(seed)
    return seed & _MASK, (seed >> 32) & _MASK


def torch_uniforms(seed: Any, n: Any, device: Any = "cpu") -> Any:
    """u of elements 0 … n−1 of the stream of ``seed``, as a float32 torch tensor.

    Plain torch integer operations (int64 holding 32-bit words; the products of two 32-bit
    words wrap in int64 and their high word is recovered exactly by shift and mask), so
    ``torch.compile``, ``torch.export``, ``jit.trace`` and ONNX see ordinary operators. Bit for
    bit the kernels' stream: the tests compare it with :func:`uniforms`.
    """
    import torch

    k0, k1 = _split_torch(seed)
    m = (n + 7) // 8
    c0 = torch.arange(m, dtype=torch.int64, device=device)  # q < 2**28: its high word is 0
    c1 = torch.zeros_like(c0)
    c2 = torch.zeros_like(c0)
    c3 = torch.zeros_like(c0)
    for _ in range(ROUNDS):
        pa, pb = c0 * ROUND_A, c2 * ROUND_B
        c0, c1, c2, c3 = (((pb >> 32) & _MASK) ^ c1 ^ k0, pb & _MASK,
                          ((pa >> 32) & _MASK) ^ c3 ^ k1, pa & _MASK)
        k0, k1 = (k0 + KEY_A) & _MASK, (k1 + KEY_B) & _MASK
    w = torch.stack([c0, c1, c2, c3], dim=-1)  # word (i div 2) mod 4 of counter i div 8
    h = torch.stack([w & 0xFFFF, (w >> 16) & 0xFFFF], dim=-1).reshape(-1)[:n]  # low half for even i
    return h.to(torch.float32) * 2.0**-16 + 2.0**-17


def torch_slopes(seed: Any, shape: Any, lower: float, upper: float, form: str, dtype: Any, device: Any = "cpu") -> Any:
    """RReLU's training slopes for a tensor of ``shape``, element i being the i-th in row-major
    (logical) order — the kernels' slopes for a contiguous tensor of that shape — in ``dtype``.
    Computed in the kernels' compute type (float64 for float64, float32 otherwise) and
    clamped to the interval's rounded ends, as they do."""
    import torch

    n = 1
    for s in shape:
        n = n * s
    import numpy as np

    compute = torch.float64 if dtype == torch.float64 else torch.float32
    ty = np.float64 if compute == torch.float64 else np.float32  # Python floats rounded to it
    lo, hi = ty(lower), ty(upper)
    u = torch_uniforms(seed, n, device).to(compute)
    a = u * float(hi - lo) + float(lo)  # lo + span·u, rounded as the kernels round it
    if form == "slope":
        s = a.clamp(float(lo), float(hi))
    else:
        s = a.reciprocal().clamp(float(ty(1) / hi), float(ty(1) / lo))
    return s.reshape(shape).to(dtype)
