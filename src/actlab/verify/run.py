"""``actlab verify``: claims → the union of their runs → the lab (resuming) → rules → report.

The runs of every chosen claim are planned (:mod:`actlab.verify.experiments`), merged by key
(claims that need the same run share it), and the ones the results database (``OUT/results.sqlite``,
the lab's :class:`~actlab.lab.store.Store`) does not hold yet are trained by an executor with the
verify probes (:mod:`actlab.verify.probes`) attached. Each result is stored as it arrives: the
run in the lab's tables (one transaction), then its probes in the table ``verify_probes`` of the
same file. A run counts as finished for verify when both are there, so a process killed between
the two only reruns that run: ``actlab verify`` with the same ``--out`` resumes.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from ..lab import train
from ..lab.executor import LocalExecutor, ProcessExecutor
from ..lab.executor import execute as lab_execute
from ..lab.plan import RunSpec
from ..lab.store import DB_NAME, Store
from . import claims as claims_mod
from . import data as vdata
from . import probes
from .experiments import EXPERIMENTS, MODES, Context, Record, Records, Settings

__all__ = ["verify", "VerifyOutcome", "ProbingExecutor", "execute", "ProbeTable"]


def _failed(spec: RunSpec, err: BaseException, device: str, t0: float) -> train.RunResult:
    """The record of a run that raised: kept (status failed) so the report shows it; retried on rerun."""
    return train.failed(spec, f"{type(err).__name__}: {err}", device=device, wall_seconds=time.perf_counter() - t0)


def execute(spec: RunSpec, *, device: str = "cpu") -> train.RunResult:
    """One verify run in a worker (a process pool, a cluster task): load, train, probe."""
    return lab_execute(spec, device=device, after=probes.measure)


class ProbingExecutor(LocalExecutor):
    """The lab's local executor, with :func:`actlab.verify.probes.measure` run after each run."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw, after=probes.measure)


def _executor(jobs: int, device: str, threads: int | None) -> Any:
    """``jobs`` worker processes (the lab's :class:`ProcessExecutor`, probing in each) or this process."""
    if jobs > 1:
        return ProcessExecutor(jobs, device=device, threads=threads or 1, after=probes.measure)
    return ProbingExecutor(device=device)


class ProbeTable:
    """The probes of each run, JSON, in table ``verify_probes`` of the results database."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, timeout=60, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout = 60000")
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS verify_probes (run_key TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def save(self, key: str, value: dict[str, Any]) -> None:
        self._db.execute("INSERT OR REPLACE INTO verify_probes VALUES (?, ?)", (key, json.dumps(value)))

    def load(self) -> dict[str, dict[str, Any]]:
        return {k: json.loads(v) for k, v in self._db.execute("SELECT run_key, value FROM verify_probes")}

    def close(self) -> None:
        self._db.close()


def records(store: Store, table: ProbeTable) -> Records:
    """Every run of the store with its epochs, layers, steps and probes."""
    by: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for name, rows in (("epochs", store.epochs()), ("layers", store.layers()), ("steps", store.steps())):
        for row in rows:
            by.setdefault(row["run_key"], {}).setdefault(name, []).append(row)
    pr = table.load()
    out: Records = {}
    for r in store.runs():
        k = r["key"]
        got = by.get(k, {})
        out[k] = Record(RunSpec.from_dict(r["spec"]), r["status"], got.get("epochs", []), got.get("layers", []),
                        got.get("steps", []), pr.get(k, {}))
    return out


@dataclass
class VerifyOutcome:
    directory: Path
    planned: int
    ran: int
    seconds: float
    verdicts: dict[int, str]
    report: dict[str, Path]


def verify(out: str | Path, *, mode: str = "quick", only: Sequence[int] | None = None, extra_data: Sequence[str] = (),
           device: str = "cpu", threads: int | None = 1, jobs: int = 1, quiet: bool = False,
           include_cifar: bool = True,
           argv: Sequence[str] | None = None, settings: Settings | None = None) -> VerifyOutcome:
    """Run the chosen claims' experiments into ``out`` (resuming) and write the verdict report.

    ``mode`` picks the sizes (:data:`~actlab.verify.experiments.QUICK` or ``FULL``); ``settings``
    replaces them outright (smaller for a test, larger for a cluster).
    """
    from . import report

    t0 = time.perf_counter()
    say = (lambda m: None) if quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
    if threads is not None:
        if threads < 1:
            raise ValueError(f"invalid threads={threads!r}; valid: an int >= 1")
        torch.set_num_threads(threads)
    chosen = list(only) if only else claims_mod.ids()
    device = train.pick_device(device)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out}: exists and is not a directory")
    settings = settings or MODES[mode]
    sources, notes = vdata.resolve(list(extra_data), image_train=settings.image_train, image_test=settings.image_test,
                                   directory=out / "data", include_cifar=include_cifar,
                                   digits_only=not any(EXPERIMENTS[c].needs_data(settings) for c in chosen))
    ctx = Context(settings, tuple(sources), tuple(notes))
    for n in notes:
        say(f"actlab verify: {n}")
    specs: dict[str, RunSpec] = {}
    for c in chosen:
        for s in EXPERIMENTS[c].specs(ctx):
            specs.setdefault(s.key, s)
    with Store.open(out, create=True) as store:
        table = ProbeTable(out / DB_NAME)
        try:
            store.add_invocation(list(argv) if argv is not None else sys.argv,
                                 {"verify": mode, "claims": chosen, "data": [s.label for s in sources],
                                  "threads": threads, "device": device}, train.environment(device))
            finished, probed = store.finished(), set(table.load())
            diverged = {r["key"] for r in store.runs("diverged")}  # nothing to probe; finished all the same
            todo = [s for k, s in specs.items() if not (k in finished and (k in probed or k in diverged))]
            say(f"actlab verify ({mode}): claims {', '.join(map(str, chosen))}; {len(specs)} runs, "
                f"{len(specs) - len(todo)} already in {out / DB_NAME}, running {len(todo)} on {device}")
            executor = _executor(jobs, device, threads)
            for i, result in enumerate(executor.map(todo), 1):
                store.save(result)
                if result.probes:
                    table.save(result.key, result.probes)
                say(f"  [{i}/{len(todo)}] {result.spec.variant:<32} {Path(result.spec.data).stem:<22} "
                    f"seed {result.spec.seed} lr {result.spec.lr:g}: {result.status} ({result.wall_seconds:.1f} s)")
            recs = records(store, table)
        finally:
            table.close()
    outcomes = {c: EXPERIMENTS[c].evaluate(c, ctx, recs) for c in chosen}
    seconds = time.perf_counter() - t0
    paths = report.write(out, ctx, outcomes, seconds=seconds, ran=len(todo), planned=len(specs))
    verdicts = {c: o.verdict.verdict for c, o in outcomes.items()}
    return VerifyOutcome(out, len(specs), len(todo), seconds, verdicts, paths)
