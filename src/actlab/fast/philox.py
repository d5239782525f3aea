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

__all__ = ["ROUNDS", "KEY_A", "KEY_B", "ROUND_A", "ROUND_B", "split_seed", "philox4x32", "uniforms"]

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
