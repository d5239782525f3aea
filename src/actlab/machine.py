"""How busy the machine is while something is measured: load average and other processes' CPU.

A benchmark on a shared host measures the host as much as the code. :class:`LoadMeter` reads the
kernel's counters (Linux ``/proc``) around a measurement and tells how many cores the *other*
processes kept busy meanwhile, so that a result taken on a busy machine is marked as such instead
of being quoted as a speed. :func:`busy_process` starts one CPU-bound process on purpose, bounded
in time, for measurements "under load" (``actlab bench --under-load``).

Where ``/proc`` is missing (not Linux) the readings are ``None`` and nothing is marked.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, Iterator

__all__ = ["LoadMeter", "busy_process", "measuring", "loadavg", "BUSY_CORES"]

#: Other processes' average CPU use (in cores) above which a measurement is marked busy.
BUSY_CORES = 0.25


def loadavg() -> list[float] | None:
    """The 1, 5 and 15-minute load averages, or None."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) jiffies of all cores since boot, from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def _own_jiffies() -> int | None:
    """CPU jiffies used by this process and its waited-for children (utime, stime, cutime, cstime)."""
    try:
        with open("/proc/self/stat") as f:
            text = f.read()
    except OSError:
        return None
    rest = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
    return sum(int(v) for v in rest[11:15])


@dataclass
class _Reading:
    cpu: tuple[int, int] | None
    own: int | None


class LoadMeter:
    """Measure other processes' CPU use over a block: ``with LoadMeter() as m: ...; m.result()``.

    ``others_cores`` is the average number of cores that processes other than this one (and its
    waited-for children) kept busy; ``busy`` is whether that exceeded :data:`BUSY_CORES`.
    ``expected_cores`` is subtracted first: the load a measurement starts on purpose.
    """

    def __init__(self, expected_cores: float = 0.0) -> None:
        self.expected = expected_cores
        self._start: _Reading | None = None
        self._end: _Reading | None = None
        self._load_before: list[float] | None = None
        self._load_after: list[float] | None = None

    def __enter__(self) -> "LoadMeter":
        self._load_before = loadavg()
        self._start = _Reading(_cpu_jiffies(), _own_jiffies())
        return self

    def __exit__(self, *exc: Any) -> None:
        self._end = _Reading(_cpu_jiffies(), _own_jiffies())
        self._load_after = loadavg()

    def result(self) -> dict[str, Any]:
        """The readings as JSON-ready data."""
        out: dict[str, Any] = {"loadavg_before": self._load_before, "loadavg_after": self._load_after,
                               "cores": os.cpu_count(), "others_cores": None, "busy": None,
                               "busy_threshold_cores": BUSY_CORES, "expected_load_cores": self.expected}
        s, e = self._start, self._end
        if s is None or e is None or s.cpu is None or e.cpu is None or s.own is None or e.own is None:
            return out
        busy = e.cpu[0] - s.cpu[0]
        total = e.cpu[1] - s.cpu[1]
        if total <= 0:
            return out
        cores = os.cpu_count() or 1
        others = max(0.0, (busy - (e.own - s.own)) / total * cores - self.expected)
        out["others_cores"] = round(others, 3)
        out["busy"] = others > BUSY_CORES
        return out


_SPIN = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"


def busy_process(seconds: float) -> subprocess.Popen:
    """Start one CPU-bound Python process that ends by itself after ``seconds`` (the caller should
    still terminate it when done). It spins on one core, as another tenant of the machine would."""
    return subprocess.Popen([sys.executable, "-c", _SPIN.format(seconds=float(seconds))],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextlib.contextmanager
def measuring(under_load: bool = False) -> Iterator[LoadMeter]:
    """A :class:`LoadMeter` around the block; with ``under_load``, one :func:`busy_process` beside
    it for the block's duration (its core is expected, so not counted as other processes')."""
    helper = busy_process(3600) if under_load else None
    try:
        with LoadMeter(expected_cores=1.0 if under_load else 0.0) as meter:
            yield meter
    finally:
        if helper is not None:
            helper.kill()
            helper.wait()
