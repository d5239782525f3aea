"""Executors: who runs the plan's runs — this process, worker processes, or a Ray cluster.

An executor takes :class:`~actlab.lab.plan.RunSpec` s and yields one
:class:`~actlab.lab.train.RunResult` per spec as each finishes, in any order. It never raises for
a run that fails: it yields :func:`actlab.lab.train.failed` instead, so one bad run cannot stop a
comparison (``KeyboardInterrupt`` still stops it). The caller (:func:`actlab.lab.compare.compare`)
alone writes the results database, each result in one transaction as it arrives, so a killed
process loses only the runs in flight, and the executor never changes what is stored.

* :class:`LocalExecutor` — one run after another in this process (``--jobs 1``);
* :class:`ProcessExecutor` — ``--jobs N`` worker processes on this machine, each loading a data
  set once and running one run at a time on ``threads`` intra-op threads (N × threads ≤ cores);
* :class:`RayExecutor` — ``--executor ray``: every run a Ray task declaring its CPUs (and a GPU
  where the cluster has them); a task whose worker dies is retried, a run that raises is a
  failed result (not retried).

Identical results. A run is a pure function of its spec *and of the number of intra-op threads*:
on this machine a CNN trained on 1 and on 2 threads agreed only to ~1e-7 (the convolutions'
sums are split differently). So every executor runs every run on the same fixed ``threads``
(default 1, :data:`DEFAULT_THREADS`), set right before the run: serial, ``--jobs N`` and Ray give
the same numbers bit for bit, and the count is recorded in the run's environment
(``torch_threads``). Parallelism comes from running runs side by side, not from threads.

:func:`execute` is the unit of work, a plain function of a spec: it loads the data and trains.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

import torch

from . import data, train
from .plan import RunSpec
from .train import RunResult

__all__ = ["Executor", "LocalExecutor", "ProcessExecutor", "RayExecutor", "execute", "default_jobs",
           "cores", "DEFAULT_THREADS", "EXECUTORS", "ray_available"]

#: Intra-op threads per run, whatever the executor (see the module docstring).
DEFAULT_THREADS = 1
EXECUTORS = ("local", "ray")


class Executor(Protocol):
    def map(self, specs: Sequence[RunSpec]) -> Iterator[RunResult]:
        """Run every spec; yield each one's result as it finishes (a failed run as status "failed")."""
        ...


def cores() -> int:
    """The CPU cores this process may use (its affinity mask, else ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_jobs(device: str, threads: int = DEFAULT_THREADS) -> int:
    """``--jobs`` when not given: one run per GPU on CUDA, else ``cores() // threads``.

    Why: the lab's runs are small (digits, mnist1d, CIFAR with small CNNs), and such a run keeps
    one core busy far better than two threads share one run (on 2 cores, 1 thread per run and
    2 runs at once trained the main job ~1.8× faster than 2 threads per run, one run at a time).
    One run per GPU keeps each run's timings its own (time-to-target is a measured result).
    Each worker holds its own copy of the data set: for large data sets and many cores, pass a
    smaller ``--jobs``.
    """
    if torch.device(device).type == "cuda":
        return max(1, torch.cuda.device_count())
    return max(1, cores() // max(1, threads))


def _load(spec: RunSpec, *, download: bool = False, cache_dir: Any = None) -> data.Dataset:
    # The split seed is fixed (0), not the run seed: every run of a comparison sees the same
    # train/val/test split, so seeds vary the data order and the initial weights only.
    return data.load(spec.data, subset=spec.subset, val_fraction=spec.val_fraction, seed=0,
                     download=download, cache_dir=cache_dir)


def _data_key(spec: RunSpec) -> tuple[Any, ...]:
    return spec.data, spec.subset, spec.val_fraction


def _failed(spec: RunSpec, err: BaseException, device: str, t0: float) -> RunResult:
    where = traceback.extract_tb(err.__traceback__)[-1] if err.__traceback__ else None
    at = f" (at {where.filename.rsplit('/', 1)[-1]}:{where.lineno})" if where else ""
    return train.failed(spec, f"{type(err).__name__}: {err}{at}", device=device,
                        wall_seconds=time.perf_counter() - t0)


def _with_threads(threads: int | None, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call ``fn`` with torch on ``threads`` intra-op threads (None: as it is), then put it back."""
    if threads is None:
        return fn(*args, **kwargs)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return fn(*args, **kwargs)
    finally:
        torch.set_num_threads(before)


def execute(spec: RunSpec, *, device: str = "cpu", download: bool = False, cache_dir: Any = None,
            dataset: data.Dataset | None = None, threads: int | None = None,
            after: train.Probe | None = None) -> RunResult:
    """Load the spec's data (unless given) and train it: the whole of one run, for a worker.
    ``after`` measures the trained model (see :func:`actlab.lab.train.run`)."""
    t0 = time.perf_counter()
    try:
        ds = dataset if dataset is not None else _load(spec, download=download, cache_dir=cache_dir)
        return _with_threads(threads, train.run, spec, ds, device=device, after=after)
    except Exception as err:  # a run that fails is a result too; the comparison goes on
        return _failed(spec, err, device, t0)


class LocalExecutor:
    """Runs the specs one after another in this process, each data set loaded once; ``after``
    (a probe of the trained model, as ``actlab verify`` uses) runs after each run."""

    def __init__(self, *, device: str = "cpu", progress: bool = False, download: bool = False,
                 cache_dir: Any = None, threads: int | None = None, after: train.Probe | None = None) -> None:
        self.device, self.progress, self.download, self.cache_dir = device, progress, download, cache_dir
        self.threads, self.after = threads, after
        self._datasets: dict[tuple[Any, ...], data.Dataset] = {}

    def dataset(self, spec: RunSpec) -> data.Dataset:
        key = _data_key(spec)
        if key not in self._datasets:
            self._datasets[key] = _load(spec, download=self.download, cache_dir=self.cache_dir)
        return self._datasets[key]

    def map(self, specs: Sequence[RunSpec]) -> Iterator[RunResult]:
        for spec in specs:
            t0 = time.perf_counter()
            try:
                result = _with_threads(self.threads, train.run, spec, self.dataset(spec), device=self.device,
                                       progress=self.progress, after=self.after)
            except Exception as err:  # a run that fails is a result too; the comparison goes on
                result = _failed(spec, err, self.device, t0)
            yield result


# --- worker processes (--jobs N) ---------------------------------------------------------------

_WORKER: dict[str, Any] = {}  # per worker process: its device, threads, options and loaded data sets


def _worker_init(devices: Any, threads: int, download: bool, cache_dir: Any, cwd: str,
                 after: train.Probe | None = None) -> None:
    os.chdir(cwd)
    torch.set_num_threads(threads)
    _WORKER.update(device=devices.get(), threads=threads, download=download, cache_dir=cache_dir, data={},
                   after=after)


def _worker_run(spec_dict: dict[str, Any]) -> dict[str, Any]:
    spec = RunSpec.from_dict(spec_dict)
    device, t0 = _WORKER["device"], time.perf_counter()
    try:
        key = _data_key(spec)
        if key not in _WORKER["data"]:  # each data set once per worker
            _WORKER["data"][key] = _load(spec, download=_WORKER["download"], cache_dir=_WORKER["cache_dir"])
        result = execute(spec, device=device, dataset=_WORKER["data"][key], threads=_WORKER["threads"],
                         after=_WORKER["after"])
    except Exception as err:
        result = _failed(spec, err, device, t0)
    return result.to_dict()


class ProcessExecutor:
    """``jobs`` worker processes on this machine, each running one run at a time.

    Workers are started with ``spawn`` (a fresh interpreter: no forked torch or OpenMP state)
    and each runs torch on ``threads`` intra-op threads, so ``jobs × threads`` should not exceed
    :func:`cores` (the caller checks). On CUDA, worker ``i`` uses GPU ``i mod count`` (one run
    per GPU when ``jobs`` is the GPU count). A worker process that dies (out of memory, killed)
    breaks the pool: the runs it had not finished come back as failed ("worker process died"),
    which a rerun retries.
    """

    def __init__(self, jobs: int, *, device: str = "cpu", threads: int = DEFAULT_THREADS, download: bool = False,
                 cache_dir: Any = None, after: train.Probe | None = None) -> None:
        self.jobs, self.device, self.threads, self.download, self.cache_dir = jobs, device, threads, download, cache_dir
        self.after = after  # a module-level function: it travels to the workers by name

    def _devices(self, ctx: Any) -> Any:
        queue = ctx.Queue()
        dev = torch.device(self.device)
        count = torch.cuda.device_count() if dev.type == "cuda" and dev.index is None else 0
        for i in range(self.jobs):
            queue.put(f"cuda:{i % count}" if count else self.device)
        return queue

    def map(self, specs: Sequence[RunSpec]) -> Iterator[RunResult]:
        ctx = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=self.jobs, mp_context=ctx, initializer=_worker_init,
                                   initargs=(self._devices(ctx), self.threads, self.download, self.cache_dir,
                                             os.getcwd(), self.after))
        pending: dict[Future[Any], RunSpec] = {}
        clean = False
        try:
            pending = {pool.submit(_worker_run, s.to_dict()): s for s in specs}
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    spec = pending.pop(future)
                    try:
                        yield RunResult.from_dict(future.result())
                    except BrokenProcessPool:
                        yield train.failed(spec, "worker process died (killed, or out of memory?); rerun to retry",
                                           device=self.device)
            clean = True
        finally:
            if not clean:  # Ctrl-C, or the consumer stopped: drop what is queued, stop the workers
                for future in pending:
                    future.cancel()
                for proc in list(getattr(pool, "_processes", {}).values()):
                    proc.terminate()
            pool.shutdown(wait=True, cancel_futures=True)


# --- Ray (--executor ray) -----------------------------------------------------------------------

#: Ray's own retries of a task whose worker process died; a run that raises is not retried.
RAY_MAX_RETRIES = 3


def ray_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ValueError("--executor ray needs the ray package, which is not installed; install it with "
                         "pip install 'actlab[ray]'") from None
    return ray


def _ray_task(spec_dict: dict[str, Any], dataset: data.Dataset | None, device: str, threads: int,
              cwd: str) -> dict[str, Any]:
    """One run as a Ray task: ``dataset`` comes from the object store, or is loaded here (folders)."""
    import ray

    if cwd and os.path.isdir(cwd) and os.getcwd() != cwd:
        os.chdir(cwd)  # relative data and model paths mean what they meant to the driver
    spec = RunSpec.from_dict(spec_dict)
    if dataset is None:
        key = _data_key(spec)
        cache = _WORKER.setdefault("data", {})
        if key not in cache:
            try:
                cache[key] = _load(spec)
            except Exception as err:
                return _failed(spec, err, device, time.perf_counter()).to_dict()
        dataset = cache[key]
    result = execute(spec, device=device, dataset=dataset, threads=threads)
    ctx = ray.get_runtime_context()
    result.environment["ray_node"] = ctx.get_node_id()
    return result.to_dict()


def _travels(spec_data: str) -> bool:
    """Whether a data set goes through Ray's object store (built-in and ``.npz``) rather than
    being read by each worker from its path (image folders: too large to copy around)."""
    text = str(spec_data)
    if text.lower().endswith(".npz"):
        return True
    return not (os.sep in text or "=" in text or Path(text).is_dir())


class RayExecutor:
    """Every run a Ray task; results stream back as they finish.

    ``address``: None starts a local Ray for this call (all cores, an object store capped at
    ``object_store_mb``, no dashboard) and stops it afterwards; ``"auto"`` joins the cluster
    this machine belongs to; ``HOST:PORT`` or ``ray://…`` joins that one. A Ray already
    initialised in this process (e.g. by the caller) is used as it is.

    Each task declares ``threads`` CPUs and, where the cluster has GPUs and ``device`` allows
    (``auto`` or ``cuda``), one GPU: one run per GPU, so that a run's training time is its own
    (the lab reports times). ``dataset``: the driver's copy of the data set, put into the object
    store once and shared by every task of built-in and ``.npz`` data; image folders are read by
    each worker from their path, which every node must be able to read. A worker process that dies
    mid-run is retried up to :data:`RAY_MAX_RETRIES` times; after that, or when the run itself
    raises, the run is a failed result.
    """

    def __init__(self, *, address: str | None = None, device: str = "auto", threads: int = DEFAULT_THREADS,
                 object_store_mb: int = 256, max_retries: int = RAY_MAX_RETRIES,
                 datasets: dict[tuple[Any, ...], data.Dataset] | None = None) -> None:
        self.ray = _import_ray()
        self.address, self.threads, self.max_retries = address, threads, max_retries
        self.object_store_mb, self.datasets = object_store_mb, dict(datasets or {})
        self._started = False
        self._connect()
        gpus = float(self.ray.cluster_resources().get("GPU", 0))
        if device in ("auto", "cuda") or device.startswith("cuda"):
            if gpus == 0 and device != "auto":
                self.close()
                raise ValueError(f"device {device!r}: the Ray cluster has no GPU; valid: auto, cpu")
            self.device = "cuda" if gpus > 0 else "cpu"
        else:
            self.device = "cpu"
        self.gpus_per_run = 1 if self.device == "cuda" else 0

    def _connect(self) -> None:
        ray = self.ray
        if ray.is_initialized():
            return
        try:
            if self.address is None:
                ray.init(address="local", num_cpus=cores(), object_store_memory=self.object_store_mb * 2**20,
                         include_dashboard=False, log_to_driver=False, configure_logging=True,
                         logging_level="error")
            else:
                ray.init(address=self.address, log_to_driver=False, logging_level="error")
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise ValueError(f"--ray-address {self.address or '(local)'}: cannot start or join Ray "
                             f"({str(err).splitlines()[0]}); valid: no address (a local Ray), auto, "
                             f"HOST:PORT") from None
        self._started = True

    def close(self) -> None:
        """Stop the local Ray this executor started (or disconnect from a cluster it joined)."""
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()
        self._started = False

    def map(self, specs: Sequence[RunSpec]) -> Iterator[RunResult]:
        ray = self.ray
        task = ray.remote(_ray_task).options(num_cpus=self.threads, num_gpus=self.gpus_per_run,
                                             max_retries=self.max_retries, retry_exceptions=False,
                                             name="actlab_run")
        refs: dict[tuple[Any, ...], Any] = {}  # data key -> object ref, one put per data set
        pending: dict[Any, RunSpec] = {}
        cwd = os.getcwd()
        try:
            for spec in specs:
                key = _data_key(spec)
                if key not in refs and key in self.datasets and _travels(spec.data):
                    refs[key] = ray.put(self.datasets[key])
                pending[task.remote(spec.to_dict(), refs.get(key), self.device, self.threads, cwd)] = spec
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    spec = pending.pop(ref)
                    try:
                        yield RunResult.from_dict(ray.get(ref))
                    except ray.exceptions.RayError as err:  # retries spent, or the task was lost
                        message = str(err).strip().splitlines()[0] if str(err).strip() else ""
                        yield train.failed(spec, f"Ray: {type(err).__name__}: {message}", device=self.device)
        finally:  # Ctrl-C or an early stop: nothing keeps running for nobody
            if pending and not self._started:
                # a Ray session the caller owns stays up: cancel what is still running in it. Where
                # this executor started Ray (or joined a cluster), close() ends the job instead and
                # Ray stops its workers: cancelling there raced with tasks finishing at that moment
                # and crashed the driver in Ray's C++ ("Check failed: ... Tried to fail task that
                # was not pending", ray-project/ray#54846; 1 in 4 interrupted runs here)
                _, running = ray.wait(list(pending), num_returns=len(pending), timeout=0)
                for ref in running:
                    try:
                        ray.cancel(ref, force=True)
                    except Exception:  # noqa: BLE001 - finished or gone meanwhile
                        pass
            self.close()

