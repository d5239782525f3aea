"""Measure actlab's layers against torch.nn's: time, copy bandwidth and memory kept for backward.

For each activation (PReLU shared and channel-wise; RReLU in training), dtype and size:

* ``fwd_ms`` — the forward under ``torch.no_grad()`` (inference: no graph, nothing kept);
* ``fb_ms`` — forward + backward (``torch.autograd.grad`` of the input and any learned slope,
  so no gradient accumulates between repeats);
* ``saved_bytes`` — what the forward keeps for backward, counted with
  ``torch.autograd.graph.saved_tensors_hooks`` as the unique storages' sizes;
* ``copy_ms`` — ``x.clone()`` of the same tensor in the same run; an out-of-place forward reads
  and writes what a copy does, so ``copy_ms / fwd_ms`` is the fraction of copy bandwidth reached
  (allocation included on both sides).

Each function is timed in blocks of consecutive repeats (timeit-style: its data and allocations
in their steady state), torch.nn, actlab and the copy taking turns block by block so that load
drifts on a shared machine hit all alike; the medians of the repeats, after warm-up, are
reported (and the minima, in the JSON). The ratios (torch.nn time / actlab time, above 1 is
faster) are what matter: each is the median over rounds of the ratio of two blocks that ran back
to back (:meth:`Timings.ratio`), a paired comparison that a slow spell on the host cannot tilt.
A row's rounds are spread over several passes of the whole list of rows (``--passes``, default
4), so that each ratio samples the host's state across the run rather than one stretch of it;
on the CPU a block lasts at least 5 ms (:data:`BLOCK_MS`), fast calls repeating. Each ratio
comes with a 95 % bootstrap interval over passes and rounds (``ratio_fb_ci95``).
On CUDA the main timings replay a CUDA graph of 10 calls (device time: at 16M elements a memory-bound kernel takes tens of
microseconds, less than the host needs to launch it from Python), and the eager timings (events
around 10 calls as the host issues them) are reported beside them. Used by ``actlab bench`` and
``benchmarks/bench_layers.py``.

On the CPU, actlab's outputs come from its warm pool (:mod:`actlab.fast.pool`) and torch.nn's
from the C library's heap, which page-faults on fresh blocks or not depending on the process's
history: part of what the default run measures. ``--retain-freed-memory`` keeps torch's freed
blocks mapped too, so that the ratios compare the kernels alone; ``ACTLAB_CPU_POOL_MB=0`` turns
the pool off. The JSON records both settings.

Why one module of ~750 lines: the cases, the paired timer and its bootstrap interval (shared with
:mod:`actlab.lab.stepbench`), the memory count, the environment record, the goals and the
agreement of two runs form one measurement whose JSON layout the README and the tests read.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from . import fast, registry
from .factory import layer
from .machine import measuring
from .version import __version__

__all__ = ["Case", "CASES", "paired_ratio", "parse_sizes", "parse_dtypes", "run", "environment", "summary", "goals",
           "CHANNELS",
           "agreement", "agreement_summary"]

CHANNELS = 64  # channels of the benchmark input (N, 64, 32, 32); PReLU channel-wise has 64 slopes


@dataclass(frozen=True)
class Case:
    """One benchmarked layer: actlab's and torch.nn's, built the same way."""

    label: str
    act: str
    hparams: dict[str, Any] = field(default_factory=dict)
    native: str = ""
    native_args: tuple[Any, ...] = ()
    train: bool = False
    lean: bool = False

    def build(self, device: str, dtype: torch.dtype) -> tuple[nn.Module, nn.Module]:
        extra = {"lean": True} if self.lean else {}
        ours = layer(self.act, **self.hparams, **extra)
        native = getattr(nn, self.native)(*self.native_args)
        for m in (ours, native):
            m.to(device=device, dtype=dtype)
            m.train(self.train)
        return ours, native


CASES: tuple[Case, ...] = (
    Case("sigmoid", "sigmoid", native="Sigmoid"),
    Case("tanh", "tanh", native="Tanh"),
    Case("relu", "relu", native="ReLU"),
    Case("leaky_relu", "leaky_relu", native="LeakyReLU"),
    Case("prelu-shared", "prelu", native="PReLU"),
    Case("prelu-channel", "prelu", {"num_parameters": CHANNELS}, native="PReLU", native_args=(CHANNELS,)),
    Case("rrelu-train", "rrelu", native="RReLU", train=True),
    Case("elu", "elu", native="ELU"),
)
LEAN_CASES: tuple[Case, ...] = (
    Case("relu-lean", "relu", native="ReLU", lean=True),
    Case("leaky_relu-lean", "leaky_relu", native="LeakyReLU", lean=True),
    Case("prelu-channel-lean", "prelu", {"num_parameters": CHANNELS}, native="PReLU", native_args=(CHANNELS,),
         lean=True),
    Case("rrelu-train-lean", "rrelu", native="RReLU", train=True, lean=True),
)

_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}
_DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16,
           "float16": torch.float16, "fp32": torch.float32, "fp64": torch.float64, "bf16": torch.bfloat16,
           "fp16": torch.float16}


def parse_sizes(text: str) -> list[int]:
    """"1M,16M" → [1048576, 16777216]: K, M, G are binary (32M = 33,554,432 elements)."""
    out = []
    for item in text.split(","):
        item = item.strip().upper()
        if not item:
            continue
        unit = item[-1] if item[-1] in _UNITS else ""
        try:
            n = int(float(item[: len(item) - len(unit)]) * _UNITS[unit])
        except ValueError:
            raise ValueError(f"--sizes: invalid size {item!r}; valid: e.g. 4096, 64K, 1M, 16M") from None
        if n < 1:
            raise ValueError(f"--sizes: invalid size {item!r}; valid: at least 1 element")
        out.append(n)
    return out


def parse_dtypes(text: str) -> list[torch.dtype]:
    out = []
    for item in text.split(","):
        item = item.strip().lower()
        if item not in _DTYPES:
            raise ValueError(f"--dtypes: invalid dtype {item!r}; valid: float32, bfloat16, float16, float64")
        out.append(_DTYPES[item])
    return out


def select_cases(acts: Sequence[str] | None, lean: bool) -> list[Case]:
    """The cases for ``acts`` (activation names, aliases or case labels; None: all)."""
    cases = list(CASES) + (list(LEAN_CASES) if lean else [])
    if not acts:
        return cases
    chosen = []
    for a in acts:
        a = a.strip()
        match = [c for c in cases if c.label == a]
        if not match:
            name = registry.canonical(a)  # raises with the valid names
            match = [c for c in cases if c.act == name]
        chosen += [c for c in match if c not in chosen]
    return chosen


def input_shape(n: int) -> tuple[int, ...]:
    """(N, 64, 32, 32) when n allows it, else (n/64, 64), else (n,) (then no channel-wise PReLU)."""
    if n % (CHANNELS * 1024) == 0:
        return n // (CHANNELS * 1024), CHANNELS, 32, 32
    if n % CHANNELS == 0:
        return n // CHANNELS, CHANNELS
    return (n,)


# --- timing ---------------------------------------------------------------------------------------------


_CUDA_CALLS = 10  # calls per CUDA timing: the host runs ahead, the events see the device's time


def _timer(device: str) -> Callable[[Callable[[], Any]], float]:
    """A function that times fn and returns ms per call (CUDA: events around a burst of calls)."""
    if device == "cuda":
        def timed(fn: Callable[[], Any]) -> float:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(_CUDA_CALLS):
                fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / _CUDA_CALLS
    else:
        def timed(fn: Callable[[], Any]) -> float:
            t0 = time.perf_counter()
            fn()
            return (time.perf_counter() - t0) * 1e3
    return timed


PASSES = 4  # sweeps over all rows that share each row's rounds (see run)
_ROUNDS = 6  # at least this many blocks of repeats per function, the functions taking turns
BLOCK_MS = 5.0  # CPU: a block lasts at least this long (ms), fast calls repeating (see _medians)
_MAX_BLOCK = 200
_BLOCK = 3  # timed repeats per block: as many rounds as that allows, each ratio's median over more of them


@dataclass
class Timings:
    """ms per call of each timed function: every timed repeat, and each round's median in time
    order (a round: one block of each function, back to back)."""

    times: dict[str, list[float]]
    rounds: dict[str, list[float]]

    @property
    def median(self) -> dict[str, float]:
        return {k: statistics.median(v) for k, v in self.times.items()}

    @property
    def minimum(self) -> dict[str, float]:
        return {k: min(v) for k, v in self.times.items()}

    @classmethod
    def merge(cls, parts: Sequence[Timings]) -> Timings:
        """The timings of several passes over the same functions as one: repeats and rounds pooled."""
        keys = parts[0].times
        return cls({k: [t for p in parts for t in p.times[k]] for k in keys},
                   {k: [r for p in parts for r in p.rounds[k]] for k in keys})

    def ratio(self, num: str, den: str) -> float:
        """num's time / den's, as the median of the ratios within each round: blocks that ran
        side by side share the machine's state at the time, so load that drifts across the run
        (other tenants of a shared host) cancels out of each ratio instead of landing on
        whichever function ran while it lasted."""
        return statistics.median(a / b for a, b in zip(self.rounds[num], self.rounds[den]))


def paired_ratio(num: Sequence[float], den: Sequence[float], builds: int = 1, resamples: int = 2000,
                 seed: int = 0) -> tuple[float, tuple[float, float]]:
    """The median over rounds of num/den within each round, and its 95 % bootstrap interval.

    Round r ran build r mod ``builds`` (a whole-step benchmark's build; a layer benchmark's
    pass). The interval resamples builds with replacement, then each drawn build's rounds with
    replacement (with one build: rounds alone), so a bias of one build widens it. The seed is fixed: a report's interval is reproducible."""
    r = np.asarray(num, dtype=float) / np.asarray(den, dtype=float)
    if r.size == 0:
        raise ValueError("paired_ratio: no rounds; valid: at least one")
    if not 1 <= builds <= r.size:
        raise ValueError(f"paired_ratio: builds={builds} for {r.size} rounds; valid: 1 to the number of rounds")
    rng = np.random.default_rng(seed)
    groups = [r[b::builds] for b in range(builds)]
    medians = np.empty(resamples)
    for i in range(resamples):
        drawn = rng.integers(0, builds, builds) if builds > 1 else [0]
        medians[i] = np.median(np.concatenate([rng.choice(groups[b], groups[b].size) for b in drawn]))
    lo, hi = np.percentile(medians, [2.5, 97.5])
    return float(np.median(r)), (float(lo), float(hi))


def _rounds(repeats: int) -> int:
    """How many rounds :func:`_medians` times ``repeats`` repeats in: blocks of _BLOCK, at least _ROUNDS."""
    return max(_ROUNDS, -(-repeats // _BLOCK))


def _medians(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int, device: str,
             n_rounds: int | None = None, block_ms: float | None = None) -> Timings:
    """Each fn runs in blocks of consecutive repeats (after one untimed call), as a timeit loop
    would, so its data and allocations are in their steady state rather than left cold by the
    function before; the functions take turns over rounds of one block each, so load drifts on a
    shared machine hit all of them alike, in an order that reverses every round, so that none
    always follows the same one. Blocks of _BLOCK repeats (at least _ROUNDS rounds): at 16M
    elements one call's time wanders by half from one second to the next here, so a ratio is
    the median of many short rounds' ratios — two runs of 6 rounds of 4 disagreed by 24-41 %;
    and three, not two, so that a block's median shrugs off one call that lost its time slice
    (under load, rounds of 2 missed the goal on a layer that runs torch's own op on both sides).
    ``n_rounds`` overrides that count (one pass of several: see :func:`run`).

    On the CPU a block also lasts at least ``block_ms`` (default :data:`BLOCK_MS`): a fast call
    repeats until it does, up to :data:`_MAX_BLOCK` calls. At 1M elements one forward+backward of
    actlab's PReLU took 0.33-0.66 ms (min to 90th percentile, 15,539 calls in 8 s on a quiet
    machine: the host's caches, shared with other tenants), so a block's median of 3 calls wandered
    by a third and moved the round's ratio with it; of 10-20 calls it does not."""
    timed = _timer(device)
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    if device == "cuda":
        torch.cuda.synchronize()
    times: dict[str, list[float]] = {k: [] for k in fns}
    rounds: dict[str, list[float]] = {k: [] for k in fns}
    n_rounds = n_rounds or _rounds(repeats)
    per_block = max(1, -(-repeats // n_rounds))
    least_ms = (BLOCK_MS if block_ms is None else block_ms) if device == "cpu" else 0.0
    order = list(fns.items())
    for r in range(n_rounds):
        for k, fn in order if r % 2 == 0 else order[::-1]:  # who goes first alternates
            fn()
            block = [timed(fn) for _ in range(per_block)]
            while sum(block) < least_ms and len(block) < _MAX_BLOCK:
                block.append(timed(fn))
            times[k] += block
            rounds[k].append(statistics.median(block))
    return Timings(times, rounds)


def _graphed(fns: dict[str, Callable[[], Any]]) -> dict[str, Callable[[], Any]]:
    """Each fn captured _CUDA_CALLS times in a CUDA graph: replaying it costs the device's time
    only, without the host's per-call overhead (Python, autograd, kernel launch), which at 16M
    elements and above can exceed a memory-bound kernel's few tens of microseconds."""
    out = {}
    for k, fn in fns.items():
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                fn()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for _ in range(_CUDA_CALLS):
                fn()
        out[k] = graph.replay
    return out


def _graph_medians(fns: dict[str, Callable[[], Any]], repeats: int) -> Timings:
    graphs = _graphed(fns)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, replay in graphs.items():
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            replay()
            end.record()
            end.synchronize()
            times[k].append(start.elapsed_time(end) / _CUDA_CALLS)
    return Timings(times, times)  # each repeat is a round: the graphs take turns call by call


def saved_bytes(module: nn.Module, x: Tensor) -> int:
    """Bytes the forward of ``module`` on ``x`` keeps for backward (unique storages)."""
    storages: dict[tuple[int, str], int] = {}

    def pack(t: Tensor) -> Tensor:
        s = t.untyped_storage()
        storages[(s.data_ptr(), str(t.device))] = s.nbytes()
        # not t itself: an output packed as itself refers to its own grad_fn, a cycle through
        # C++ that Python's gc cannot free (it kept each case's output alive, and its memory)
        return t.detach()

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = module(x)
    del y
    return sum(storages.values())


def _grad_inputs(module: nn.Module, x: Tensor) -> tuple[Tensor, ...]:
    return (x, *[p for p in module.parameters() if p.requires_grad])


@dataclass
class _Setup:
    """One row's inputs, layers and timed functions, built afresh for each pass."""

    case: Case
    n: int
    dtype: torch.dtype
    device: str
    x: Tensor
    xg: Tensor
    ours: nn.Module
    native: nn.Module
    fns: dict[str, Callable[[], Any]]


def _setup(case: Case, n: int, dtype: torch.dtype, device: str) -> _Setup | dict[str, Any]:
    """The row's setup, or the row itself when the case does not apply to this size (skipped)."""
    shape = input_shape(n)
    if case.hparams.get("num_parameters", 1) > 1 and len(shape) < 2:
        return {"case": case.label, "numel": n, "skipped": f"no channel axis in shape {shape}"}
    gen = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(shape, generator=gen, dtype=torch.float32).to(device=device, dtype=dtype)
    g = torch.randn(shape, generator=gen, dtype=torch.float32).to(device=device, dtype=dtype)
    xg = x.detach().clone().requires_grad_(True)
    ours, native = case.build(device, dtype)

    def fb(m: nn.Module) -> Callable[[], Any]:
        inputs = _grad_inputs(m, xg)
        return lambda: torch.autograd.grad(m(xg), inputs, g)

    def fwd(m: nn.Module) -> Callable[[], Any]:
        def call() -> Any:
            with torch.no_grad():
                return m(x)
        return call

    fns = {"copy": lambda: x.clone(), "native_fwd": fwd(native), "actlab_fwd": fwd(ours),
           "native_fb": fb(native), "actlab_fb": fb(ours)}
    return _Setup(case, n, dtype, device, x, xg, ours, native, fns)


def _time(s: _Setup, repeats: int, warmup: int, rounds: int | None = None) -> tuple[Timings, Timings, str]:
    """(the timings the ratios come from, the eager ones, how they were taken): on CUDA the first
    are a CUDA graph's replays when capture works."""
    t = eager = _medians(s.fns, repeats, warmup, s.device, rounds)
    timing = "wall clock" if s.device == "cpu" else f"CUDA events around {_CUDA_CALLS} calls"
    if s.device == "cuda":
        try:
            t, timing = _graph_medians(s.fns, repeats), f"CUDA graph of {_CUDA_CALLS} calls"
        except Exception as err:  # noqa: BLE001 - capture can fail; the eager timings stand
            timing += f" (CUDA graph capture failed: {type(err).__name__}: {err})"
    return t, eager, timing


def _ratio_ci(t: Timings, num: str, den: str, passes: int) -> list[float]:
    """95 % bootstrap interval of :meth:`Timings.ratio`, resampling passes, then rounds within each
    (a pass's rounds are consecutive in ``t``; a host state that lasted a pass widens it)."""
    a, b = t.rounds[num], t.rounds[den]
    if len(a) % passes:
        passes = 1
    n = len(a) // passes
    order = [p * n + j for j in range(n) for p in range(passes)]  # round r: pass r mod passes
    _, (lo, hi) = paired_ratio([a[i] for i in order], [b[i] for i in order], passes)
    return [round(lo, 4), round(hi, 4)]


def _row(s: _Setup, t: Timings, eager: Timings, timing: str, passes: int = 1) -> dict[str, Any]:
    """The JSON row: medians, minima and paired ratios of ``t`` (with their 95 % intervals over
    ``passes``), and the bytes each layer keeps."""
    case, n, x, xg = s.case, s.n, s.x, s.xg
    kept = {"native": saved_bytes(s.native, xg), "actlab": saved_bytes(s.ours, xg)}
    fast_path = fast.lookup(case.act, x, lean=case.lean) is not None
    row: dict[str, Any] = {
        "case": case.label, "act": case.act, "lean": case.lean, "dtype": str(s.dtype).replace("torch.", ""),
        "device": s.device, "numel": n, "shape": list(x.shape), "fast_path": fast_path, "timing": timing,
        "rounds": len(t.rounds["copy"]),
        "copy_ms": t.median["copy"], "copy_gbps": 2 * x.numel() * x.element_size() / t.median["copy"] / 1e6,
    }
    separate = timing.startswith("CUDA graph")
    for side in ("native", "actlab"):
        row[side] = {"fwd_ms": t.median[f"{side}_fwd"], "fb_ms": t.median[f"{side}_fb"], "saved_bytes": kept[side],
                     "saved_bytes_per_element": kept[side] / n,
                     "fwd_copy_fraction": t.ratio("copy", f"{side}_fwd"),
                     "fwd_min_ms": t.minimum[f"{side}_fwd"], "fb_min_ms": t.minimum[f"{side}_fb"]}
        if separate:  # CUDA: the host-bound timings too, for what eager code sees
            row[side].update(fwd_eager_ms=eager.median[f"{side}_fwd"], fb_eager_ms=eager.median[f"{side}_fb"])
    row["ratio_fwd"] = t.ratio("native_fwd", "actlab_fwd")
    row["ratio_fb"] = t.ratio("native_fb", "actlab_fb")
    row["ratio_fwd_ci95"] = _ratio_ci(t, "native_fwd", "actlab_fwd", passes)
    row["ratio_fb_ci95"] = _ratio_ci(t, "native_fb", "actlab_fb", passes)
    row["ratio_fb_of_minima"] = t.minimum["native_fb"] / t.minimum["actlab_fb"]
    if separate:
        row["copy_eager_ms"] = eager.median["copy"]
        row["ratio_fb_eager"] = eager.ratio("native_fb", "actlab_fb")
    return row


def measure(case: Case, n: int, dtype: torch.dtype, device: str, repeats: int, warmup: int) -> dict[str, Any]:
    """One row of the benchmark, in one pass: both layers on one input, and the copy."""
    s = _setup(case, n, dtype, device)
    return s if isinstance(s, dict) else _row(s, *_time(s, repeats, warmup))


# --- environment and allocation remedy --------------------------------------------------------------------


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except Exception:  # noqa: BLE001 - absent or broken: recorded as None
        return None


def environment(device: str) -> dict[str, Any]:
    """Machine, versions, settings: enough to tell where and how a JSON file was measured."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    env: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "platform": platform.platform()},
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": _version("numpy"),
                     "numba": _version("numba"), "triton": _version("triton"), "actlab": __version__},
        "fast_backends": fast.status(),
    }
    if device == "cuda" and torch.cuda.is_available():
        env["machine"]["gpu"] = torch.cuda.get_device_name()
    try:
        import numba

        torch_threads = torch.get_num_threads()
        env["machine"]["numba_threads"] = numba.get_num_threads()  # starts numba's pool if it was not
        env["machine"]["numba_threading_layer"] = numba.config.THREADING_LAYER
        torch.set_num_threads(torch_threads)  # which resets this thread's OpenMP count: put torch's back
    except ImportError:
        pass
    return env


def run(acts: Sequence[str] | None = None, sizes: Sequence[int] = (2**20, 2**24),
        dtypes: Sequence[torch.dtype] = (torch.float32,), device: str = "cpu", threads: int | None = None,
        repeats: int = 20, warmup: int = 3, lean: bool = False, retain_memory: bool = False,
        under_load: bool = False, progress: Callable[[dict[str, Any]], None] | None = None,
        passes: int = PASSES) -> dict[str, Any]:
    """Benchmark every selected case; returns the JSON-ready report (environment + rows).

    The rounds of each row are spread over ``passes`` sweeps of the whole list of rows (each
    sweep builds the row's tensors and layers afresh): on a shared host the caches and memory
    bandwidth that other tenants leave this VM change over tens of seconds, and a row timed in one
    stretch gets one such state while its neighbour gets another. In one pass, two runs disagreed
    by up to 79 % at 1M elements, where a memory-bound kernel meets a compute-bound one, with the
    plain copy's own bandwidth moving 2x between neighbouring rows. Over several passes each
    row's ratio is the median of rounds drawn across the whole run.

    ``under_load`` starts one CPU-bound process beside the benchmark for its duration (see
    :func:`actlab.machine.busy_process`). Either way the report's ``load`` says how many cores other
    processes kept busy meanwhile, and ``load.busy`` marks a measurement a quiet machine did not make.
    """
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device here; valid: cpu")
    if passes < 1:
        raise ValueError(f"--passes {passes}: valid: an integer >= 1")
    if threads is not None:
        torch.set_num_threads(threads)
    retained = fast.retain_freed_memory() if retain_memory else False
    cases = select_cases(acts, lean)
    report = environment(device)
    total = _rounds(repeats)
    passes = min(passes, total)
    per_pass = -(-total // passes)
    per_block = -(-repeats // total)
    report["settings"] = {"device": device, "sizes": list(sizes),
                          "dtypes": [str(d).replace("torch.", "") for d in dtypes],
                          "repeats": repeats, "warmup": warmup, "threads": torch.get_num_threads(),
                          "retain_freed_memory": retained, "min_numel": dict(fast.policy().min_numel),
                          "native_max_bytes": dict(fast.policy().native_max_bytes),
                          "cpu_pool_max_bytes": fast.pool.stats()["max_bytes"],
                          "cases": [c.label for c in cases]}
    report["settings"]["under_load"] = under_load
    report["settings"]["passes"] = passes
    report["settings"]["rounds"] = per_pass * passes
    plan = [(case, n, dtype) for dtype in dtypes for n in sizes for case in cases]
    parts: list[list[tuple[Timings, Timings, str]]] = [[] for _ in plan]
    done: dict[int, dict[str, Any]] = {}
    reported: set[int] = set()
    t0 = time.perf_counter()
    with measuring(under_load) as meter:
        for p in range(passes):
            for i, (case, n, dtype) in enumerate(plan):
                if i in done:  # skipped, or failed in an earlier pass
                    continue
                try:
                    s = _setup(case, n, dtype, device)
                    if isinstance(s, dict):
                        done[i] = s
                    else:
                        parts[i].append(_time(s, per_pass * per_block, warmup, per_pass))
                        if p == passes - 1:
                            main, eager = (Timings.merge([x[k] for x in parts[i]]) for k in (0, 1))
                            timing = " / ".join(dict.fromkeys(x[2] for x in parts[i]))
                            done[i] = _row(s, main, eager, timing, passes)
                    del s
                except Exception as err:  # noqa: BLE001 - one failing case must not stop the rest
                    done[i] = {"case": case.label, "numel": n, "dtype": str(dtype).replace("torch.", ""),
                               "error": f"{type(err).__name__}: {err}"}
                if progress and i in done and i not in reported:
                    reported.add(i)
                    progress(done[i])
    rows = [done[i] for i in range(len(plan))]
    report["seconds"] = round(time.perf_counter() - t0, 1)
    report["load"] = meter.result()
    report["cpu_pool_after"] = fast.pool.stats()
    report["results"] = rows
    report["goals"] = goals(rows, device, under_load)
    return report


# --- goals and summary ------------------------------------------------------------------------------------

#: The issue's targets: (device, case label, min size, what, threshold) — ratios vs torch.nn in
#: the same run; "never slower" is read as ≥ 0.95 to leave room for timing noise.
_NEVER_SLOWER = 0.95
_GOALS = [
    *[("cpu", c, 2**20, 2**20, "ratio_fb", 5.0) for c in ("prelu-shared", "prelu-channel", "rrelu-train")],
    *[("cpu", c, 2**20, 2**20, "ratio_fb", _NEVER_SLOWER) for c in ("sigmoid", "tanh", "relu", "leaky_relu", "elu")],
    *[("cpu", c, 2**24, 2**24, "ratio_fb", 2.0) for c in ("prelu-shared", "prelu-channel", "rrelu-train")],
    *[("cpu", c, 2**24, 2**24, "ratio_fb", _NEVER_SLOWER) for c in ("sigmoid", "tanh", "relu", "leaky_relu", "elu")],
    *[("cuda", c.label, 2**24, 2**40, "actlab.fwd_copy_fraction", 0.9) for c in CASES],
    *[("cuda", c.label, 2**24, 2**40, "ratio_fb", 1.0) for c in CASES],
    *[("cuda", c, 2**24, 2**40, "ratio_fb", 1.5) for c in ("prelu-shared", "prelu-channel", "rrelu-train")],
]
#: Under load (``--under-load``: one CPU-bound process beside the benchmark), actlab's
#: forward+backward may take at most 1.1x torch.nn's: ratio_fb >= 1/1.1, every case and size.
_UNDER_LOAD = 1 / 1.1


def _get(row: dict[str, Any], path: str) -> float:
    v: Any = row
    for k in path.split("."):
        v = v[k]
    return float(v)


def goals(rows: Sequence[dict[str, Any]], device: str, under_load: bool = False) -> list[dict[str, Any]]:
    """Each applicable goal of the issue, with the measured value and whether it holds. Under load
    the only goal is that no case is more than 1.1x slower than torch.nn's."""
    if under_load:
        return [{"case": r["case"], "numel": r["numel"], "dtype": r["dtype"], "metric": "ratio_fb (under load)",
                 "threshold": round(_UNDER_LOAD, 3), "value": round(r["ratio_fb"], 3),
                 "met": r["ratio_fb"] >= _UNDER_LOAD} for r in rows if "error" not in r and "skipped" not in r]
    out = []
    for dev, label, lo, hi, what, threshold in _GOALS:
        if dev != device:
            continue
        for row in rows:
            if row.get("case") != label or "error" in row or "skipped" in row or not lo <= row["numel"] <= hi:
                continue
            if dev == "cpu" and row["dtype"] != "float32":
                continue
            value = _get(row, what)
            out.append({"case": label, "numel": row["numel"], "dtype": row["dtype"], "metric": what,
                        "threshold": threshold, "value": round(value, 3), "met": value >= threshold})
    return out


def _fmt_n(n: int) -> str:
    for unit, size in (("G", 2**30), ("M", 2**20), ("K", 2**10)):
        if n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


def summary(report: dict[str, Any]) -> str:
    """The report as a text table: one line per row, then the goals."""
    lines = [f"{'case':20s} {'dtype':8s} {'n':>5s} {'fast':>4s} │ {'fwd ms':>8s} {'ratio':>6s} {'copy%':>11s} │ "
             f"{'fwd+bwd ms':>10s} {'ratio':>6s} {'95% CI':>14s} │ {'kept B/elem':>11s}",
             f"{'':20s} {'':8s} {'':>5s} {'':>4s} │ {'actlab':>8s} {'':>6s} {'nn → actlab':>11s} │ "
             f"{'actlab':>10s} {'':>6s} {'':>14s} │ {'nn → actlab':>11s}"]
    for r in report["results"]:
        head = f"{r['case']:20s} {r.get('dtype', ''):8s} {_fmt_n(r['numel']):>5s}"
        if "error" in r or "skipped" in r:
            lines.append(f"{head}      {r.get('error') or r.get('skipped')}")
            continue
        a, nat = r["actlab"], r["native"]
        ci = "[{:5.2f}, {:5.2f}]".format(*r["ratio_fb_ci95"]) if "ratio_fb_ci95" in r else ""
        lines.append(
            f"{head} {'yes' if r['fast_path'] else 'no':>4s} │ {a['fwd_ms']:8.3f} {r['ratio_fwd']:5.2f}x "
            f"{100 * nat['fwd_copy_fraction']:4.0f} →{100 * a['fwd_copy_fraction']:4.0f} │ {a['fb_ms']:10.3f} "
            f"{r['ratio_fb']:5.2f}x {ci:>14s} │ {nat['saved_bytes_per_element']:4.2f} → "
            f"{a['saved_bytes_per_element']:4.2f}")
    load = report.get("load") or {}
    if load.get("others_cores") is not None:
        lines.append(f"other processes: {load['others_cores']:.2f} cores on average"
                     + ("  (BUSY: not a quiet-machine measurement)" if load["busy"] else ""))
    met = [g for g in report.get("goals", []) if g["met"]]
    missed = [g for g in report.get("goals", []) if not g["met"]]
    lines.append(f"goals: {len(met)} met, {len(missed)} missed"
                 + "".join(f"\n  missed: {g['case']} {g['dtype']} {_fmt_n(g['numel'])} {g['metric']} = "
                           f"{g['value']} < {g['threshold']}" for g in missed))
    return "\n".join(lines)


#: The ratios two runs of a benchmark are compared on: layer reports, then whole-step reports.
_AGREE_KEYS = {"layers": ("ratio_fwd", "ratio_fb"), "whole training step": ("ratio", "ceiling", "floor", "floor_kept")}


def _rows_by_key(report: dict[str, Any]) -> dict[tuple[Any, ...], dict[str, Any]]:
    step = report.get("kind") == "whole training step"
    return {(r["case"],) if step else (r["case"], r.get("dtype"), r.get("numel")): r for r in report["results"]
            if "error" not in r and "skipped" not in r}


def agreement(a: dict[str, Any], b: dict[str, Any], tolerance: float = 0.2) -> list[dict[str, Any]]:
    """Each ratio of report ``a`` beside the same ratio of report ``b`` (same kind of benchmark,
    rows matched by case, dtype and size): ``spread`` = larger / smaller − 1, ``agree`` when it is
    at most ``tolerance``. Rows, and ratios, present in only one report are left out (a step report
    written before the floor existed has no ``floor``)."""
    kinds = [r.get("kind", "layers") for r in (a, b)]
    if kinds[0] != kinds[1]:
        raise ValueError(f"--agree: one report is {kinds[0]!r} and the other {kinds[1]!r}; valid: two reports "
                         f"of the same benchmark")
    rows_a, rows_b = _rows_by_key(a), _rows_by_key(b)
    out = []
    for key, ra in rows_a.items():
        rb = rows_b.get(key)
        if rb is None:
            continue
        for metric in _AGREE_KEYS[kinds[0]]:
            if metric not in ra or metric not in rb:
                continue
            va, vb = ra[metric], rb[metric]
            spread = max(va, vb) / min(va, vb) - 1
            row = {"case": ra["case"], "numel": ra.get("numel"), "metric": metric, "a": va, "b": vb,
                   "spread": round(spread, 4), "agree": spread <= tolerance}
            if ra.get("copy_gbps") and rb.get("copy_gbps"):  # the yardstick measured beside this row, each run
                row["copy_gbps"] = [ra["copy_gbps"], rb["copy_gbps"]]
            ci = f"{metric}_ci95"
            if ci in ra and ci in rb:  # do the runs differ by more than their own noise?
                row["overlap"] = max(ra[ci][0], rb[ci][0]) <= min(ra[ci][1], rb[ci][1])
            out.append(row)
    return out


def agreement_summary(rows: Sequence[dict[str, Any]], tolerance: float, busy: Sequence[bool] = ()) -> str:
    """The comparison as a table, and a last line counting the ratios that agree.

    Layer rows also show the plain copy's bandwidth that each run measured beside them: where that
    yardstick itself moved by more than ``tolerance`` between the runs, the host (another tenant's
    share of the caches and memory) differed, which a ratio of a memory-bound kernel to a
    compute-bound one follows; the last line counts those disagreements apart. Where both runs
    carry a 95 % interval for a ratio, a disagreement whose intervals overlap is marked: each run's
    own noise spans the difference."""
    copy = any("copy_gbps" in r for r in rows)
    lines = [f"{'case':16s} {'size':>5s} {'metric':10s} {'run A':>8s} {'run B':>8s} {'spread':>7s}"
             + (f" {'copy GB/s A → B':>16s}" if copy else "")]
    moved = 0
    for r in rows:
        size = _fmt_n(r["numel"]) if r["numel"] else "step"
        line = (f"{r['case']:16s} {size:>5s} {r['metric']:10s} {r['a']:8.3f} {r['b']:8.3f} {r['spread']:6.1%}")
        host = False
        if "copy_gbps" in r:
            ca, cb = r["copy_gbps"]
            host = max(ca, cb) / min(ca, cb) - 1 > tolerance
            line += f" {ca:7.1f} → {cb:6.1f}" + ("*" if host else " ")
        if not r["agree"]:
            line += "  DISAGREE" + (" (95% intervals overlap)" if r.get("overlap") else "")
            moved += host
        lines.append(line)
    ok = sum(r["agree"] for r in rows)
    within = sum(not r["agree"] and r.get("overlap", False) for r in rows)
    lines.append(f"{ok} of {len(rows)} ratios agree within {tolerance:.0%}"
                 + ("; a run was marked busy" if any(busy) else "")
                 + (f"; {moved} of the {len(rows) - ok} that do not came with the copy yardstick itself moving more "
                    f"than {tolerance:.0%} (*)" if copy and ok < len(rows) else "")
                 + (f"; of the {len(rows) - ok} that do not, {within} have 95% intervals that overlap (a "
                    f"difference within the runs' own noise)"
                    if ok < len(rows) and any("overlap" in r for r in rows) else ""))
    return "\n".join(lines)


def write_json(report: dict[str, Any], path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")


def print_row(row: dict[str, Any]) -> None:
    """Progress: one short line per measured row, to stderr."""
    if "error" in row or "skipped" in row:
        print(f"  {row['case']} {_fmt_n(row['numel'])}: {row.get('error') or row.get('skipped')}", file=sys.stderr)
    else:
        print(f"  {row['case']} {row['dtype']} {_fmt_n(row['numel'])}: fwd {row['ratio_fwd']:.2f}x "
              f"fwd+bwd {row['ratio_fb']:.2f}x", file=sys.stderr)
