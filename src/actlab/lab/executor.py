"""Executors: who runs the plan's runs. An interface, so that a cluster can replace the local loop.

An executor takes :class:`~actlab.lab.plan.RunSpec` s and yields one
:class:`~actlab.lab.train.RunResult` per spec as each finishes, in any order. It never raises for
a run that fails: it yields :func:`actlab.lab.train.failed` instead, so one bad run cannot stop a
comparison (``KeyboardInterrupt`` still stops it). The caller (:func:`actlab.lab.compare.compare`)
stores each result as it arrives, in one transaction, so a killed process loses only the runs in
flight.

:func:`execute` is the unit of work, a plain function of a spec: it loads the data and trains.
A cluster executor ships it (with ``spec.to_dict()`` / ``RunResult.to_dict()`` across the wire);
the local one calls :func:`actlab.lab.train.run` directly, loading each data set once.
"""

from __future__ import annotations

import time
import traceback
from typing import Any, Iterator, Protocol, Sequence

from . import data, train
from .plan import RunSpec
from .train import RunResult

__all__ = ["Executor", "LocalExecutor", "execute"]


class Executor(Protocol):
    def map(self, specs: Sequence[RunSpec]) -> Iterator[RunResult]:
        """Run every spec; yield each one's result as it finishes (a failed run as status "failed")."""
        ...


def _load(spec: RunSpec, *, download: bool = False, cache_dir: Any = None) -> data.Dataset:
    # The split seed is fixed (0), not the run seed: every run of a comparison sees the same
    # train/val/test split, so seeds vary the data order and the initial weights only.
    return data.load(spec.data, subset=spec.subset, val_fraction=spec.val_fraction, seed=0,
                     download=download, cache_dir=cache_dir)


def _failed(spec: RunSpec, err: BaseException, device: str, t0: float) -> RunResult:
    where = traceback.extract_tb(err.__traceback__)[-1] if err.__traceback__ else None
    at = f" (at {where.filename.rsplit('/', 1)[-1]}:{where.lineno})" if where else ""
    return train.failed(spec, f"{type(err).__name__}: {err}{at}", device=device,
                        wall_seconds=time.perf_counter() - t0)


def execute(spec: RunSpec, *, device: str = "cpu", download: bool = False, cache_dir: Any = None) -> RunResult:
    """Load the spec's data and train it: the whole of one run, for a worker process or task."""
    t0 = time.perf_counter()
    try:
        return train.run(spec, _load(spec, download=download, cache_dir=cache_dir), device=device)
    except Exception as err:  # a run that fails is a result too; the comparison goes on
        return _failed(spec, err, device, t0)


class LocalExecutor:
    """Runs the specs one after another in this process, each data set loaded once."""

    def __init__(self, *, device: str = "cpu", progress: bool = False, download: bool = False,
                 cache_dir: Any = None) -> None:
        self.device, self.progress, self.download, self.cache_dir = device, progress, download, cache_dir
        self._datasets: dict[tuple[Any, ...], data.Dataset] = {}

    def dataset(self, spec: RunSpec) -> data.Dataset:
        key = (spec.data, spec.subset, spec.val_fraction)
        if key not in self._datasets:
            self._datasets[key] = _load(spec, download=self.download, cache_dir=self.cache_dir)
        return self._datasets[key]

    def map(self, specs: Sequence[RunSpec]) -> Iterator[RunResult]:
        for spec in specs:
            t0 = time.perf_counter()
            try:
                result = train.run(spec, self.dataset(spec), device=self.device, progress=self.progress)
            except Exception as err:  # a run that fails is a result too; the comparison goes on
                result = _failed(spec, err, self.device, t0)
            yield result
