"""Warm output buffers for the CPU fast path: no page fault per call for a freshly allocated output.

Why: torch allocates CPU tensors with the C library's ``malloc``. glibc serves a block of more
than its mmap threshold (128 KiB at start, raised as blocks are freed, at most 32 MiB) either
from fresh pages or from its heap, whose top it gives back to the kernel once more than twice
that threshold lies free. Which one happens depends on the history of the process: on the 2-core
machine these figures come from, a loop of forward+backward on 1M float32 elements settled at
zero page faults in one process and at 2,016 per call (both 4 MiB outputs, every call) in the
next — 3 ms a call instead of 0.3. At 16M elements every block is above the threshold's cap and
faults every time. The work is the kernel's zeroing and mapping of each 4 KiB page, about 1.5 µs
each, which is more than the arithmetic of an activation.

What: the outputs of actlab's CPU kernels (y in forward, the input gradient in backward) come
from storages this pool keeps mapped. A storage is reused once nothing else can reach it: in C++,
``torch._C._storage_Use_Count`` is 1 (the pool's own reference, so no tensor — the output, a
view of it, autograd's saved copy — still uses it); and in Python, nobody but the pool holds
the storage object, which ``y.untyped_storage()`` hands out — the same object as the pool's,
so its C++ count stays 1 while the caller holds it (:func:`_idle`). Such a storage is never
handed out twice. Outputs are
ordinary tensors, not views, so in-place operations on them behave as on any other.

Bounds: the pool holds at most ``max_bytes`` (default 256 MiB; environment variable
``ACTLAB_CPU_POOL_MB``, 0 turns it off), counting storages in use and idle alike. A request that
does not fit evicts idle storages of other sizes first, and otherwise gets a plain
``torch.empty``. Outputs below :data:`MIN_BYTES` (what glibc serves from its heap without
faults) are never pooled. :func:`release` drops the idle storages, as
``torch.cuda.empty_cache`` does for the GPU's caching allocator; :func:`stats` reports the pool.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Sequence

import torch
from torch import Tensor

__all__ = ["empty_strided", "configure", "release", "stats", "MIN_BYTES"]

#: Outputs smaller than this are not pooled: glibc's initial mmap threshold, below which blocks
#: come from its heap's free lists without page faults.
MIN_BYTES = 128 * 1024

_use_count = torch._C._storage_Use_Count


def _idle(s: torch.UntypedStorage) -> bool:
    """Nothing but the pool reaches s: no tensor (C++ count 1), and no Python reference beyond
    the pool's list and the caller's loop variable (the count :data:`_IDLE_REFS` measured)."""
    return _use_count(s._cdata) == 1 and sys.getrefcount(s) <= _IDLE_REFS


def _probe_refs() -> int:
    """Python's reference count of a pooled storage seen from :func:`_idle`, when only the pool
    holds it (measured once, as callers call it: from a loop over the pool's list)."""
    entries = [torch.UntypedStorage(8)]
    for s in entries:
        return _refs(s)
    raise AssertionError


def _refs(s: torch.UntypedStorage) -> int:
    return sys.getrefcount(s)


_IDLE_REFS = _probe_refs()


def _default_max_bytes() -> int:
    text = os.environ.get("ACTLAB_CPU_POOL_MB", "256").strip()
    try:
        mb = float(text)
    except ValueError:
        raise ValueError(f"ACTLAB_CPU_POOL_MB={text!r} is not a number; valid: megabytes >= 0, "
                         f"0 turns the pool off") from None
    if mb < 0:
        raise ValueError(f"ACTLAB_CPU_POOL_MB={text!r} is negative; valid: megabytes >= 0, 0 turns the pool off")
    return int(mb * 2**20)


class _Pool:
    def __init__(self) -> None:
        self._max_bytes: int | None = None  # read from the environment at first use
        self.lock = threading.Lock()
        self.by_size: dict[int, list[torch.UntypedStorage]] = {}
        self.held = 0  # bytes of all storages the pool holds, in use or idle
        self.hits = self.misses = self.fallbacks = 0

    @property
    def max_bytes(self) -> int:
        if self._max_bytes is None:  # here, not at import: a bad value is a one-line error of the call
            self._max_bytes = _default_max_bytes()
        return self._max_bytes

    @max_bytes.setter
    def max_bytes(self, value: int) -> None:
        self._max_bytes = value

    def _take(self, nbytes: int) -> torch.UntypedStorage | None:
        """An idle storage of exactly nbytes, a new one, or None when the cap forbids it."""
        entries = self.by_size.get(nbytes)
        if entries:
            for i in range(len(entries)):  # not enumerate: its tuple would hold s too
                s = entries[i]
                if _idle(s):
                    if s.nbytes() == nbytes:
                        self.hits += 1
                        return s
                    del entries[i]  # resized by its last user (Tensor.resize_): forget it
                    self.held -= nbytes
                    break
        if self.held + nbytes > self.max_bytes:
            self._evict(self.held + nbytes - self.max_bytes, keep=nbytes)
            if self.held + nbytes > self.max_bytes:
                self.fallbacks += 1
                return None
        s = torch.empty(nbytes, dtype=torch.uint8).untyped_storage()
        self.by_size.setdefault(nbytes, []).append(s)
        self.held += nbytes
        self.misses += 1
        return s

    def _evict(self, need: int, keep: int = -1) -> None:
        """Drop idle storages (other sizes than ``keep`` first) until ``need`` bytes are freed."""
        for size in sorted(self.by_size, key=lambda k: (k == keep, -k)):
            entries = self.by_size[size]
            for s in [s for s in entries if _idle(s)]:
                if need <= 0:
                    return
                entries.remove(s)
                self.held -= size
                need -= size
            if not entries:
                del self.by_size[size]


_POOL = _Pool()


def empty_strided(shape: Sequence[int], stride: Sequence[int], dtype: torch.dtype) -> Tensor:
    """An uninitialised dense CPU tensor with this shape and stride, from the pool when it fits."""
    n = 1
    for s in shape:
        n *= s
    nbytes = n * dtype.itemsize
    if nbytes >= MIN_BYTES and _POOL.max_bytes >= nbytes:
        with _POOL.lock:  # the tensor takes its reference before another thread can look
            storage = _POOL._take(nbytes)
            if storage is not None:
                return torch.empty(0, dtype=dtype).set_(storage, 0, shape, stride)
    return torch.empty_strided(shape, stride, dtype=dtype)


def configure(max_bytes: int) -> None:
    """Set the pool's cap in bytes (0 turns it off); idle storages beyond it are dropped."""
    if max_bytes < 0:
        raise ValueError(f"max_bytes={max_bytes} is negative; valid: bytes >= 0, 0 turns the pool off")
    with _POOL.lock:
        _POOL.max_bytes = int(max_bytes)
        if _POOL.held > _POOL.max_bytes:
            _POOL._evict(_POOL.held - _POOL.max_bytes)


def release() -> int:
    """Drop every idle storage (their memory goes back to the C library); returns bytes dropped."""
    with _POOL.lock:
        before = _POOL.held
        _POOL._evict(before)
        return before - _POOL.held


def stats() -> dict[str, int]:
    """``max_bytes``, ``held_bytes``, ``idle_bytes``, and the counts of ``hits`` (reused),
    ``misses`` (new storages) and ``fallbacks`` (plain allocations, the cap being reached)."""
    with _POOL.lock:
        idle = sum(k for k, v in _POOL.by_size.items() for s in v if _idle(s))
        return {"max_bytes": _POOL.max_bytes, "held_bytes": _POOL.held, "idle_bytes": idle,
                "hits": _POOL.hits, "misses": _POOL.misses, "fallbacks": _POOL.fallbacks}
