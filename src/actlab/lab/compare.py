"""``actlab compare``: plan → run what the database lacks → store each result → report.

Rerunning the same comparison into the same directory resumes it: the plan's runs whose key the
database already holds (status done or diverged) are skipped; failed runs are retried. Each
result is stored in one transaction as soon as it arrives, by this process alone (worker
processes and Ray tasks only compute), so killing it loses only the runs in flight.

Who runs the runs (:mod:`actlab.lab.executor`): this process (``jobs=1``), ``jobs`` worker
processes, or Ray (``executor="ray"``) — with the same numbers, as every run uses the same fixed
number of intra-op threads. One progress bar counts the runs done and failed, with an ETA.

The Python API is this module called as a function (:func:`run`)::

    import actlab.lab
    outcome = actlab.lab.compare(model=my_factory, data="digits", acts="model,relu,prelu", seeds=2,
                                 epochs=3, out="runs/mine", jobs=2)
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from . import executor as executors
from . import models, report, train
from .executor import DEFAULT_THREADS, Executor, LocalExecutor
from .plan import MODEL_VARIANT, Comparison, RunSpec, plan
from .store import DB_NAME, Store

__all__ = ["compare", "run", "Outcome", "default_out"]


@dataclass
class Outcome:
    """What a compare call did."""

    directory: Path
    planned: int
    skipped: int  # already in the database
    ran: int
    done: int
    diverged: int
    failed: int
    seconds: float
    report: dict[str, Path]


def default_out(data_spec: str) -> Path:
    """``runs/<data name>``: ``digits`` → ``runs/digits``, ``path/to/imgs/`` → ``runs/imgs``."""
    name = Path(str(data_spec).split("=", 1)[-1].rstrip("/\\")).stem or "data"
    return Path("runs") / name


def _build(spec: RunSpec, dataset: Any, act: str | None = None) -> torch.nn.Module:
    if act is not None:
        spec = dataclasses.replace(spec, act=act, hparams=(), variant=act)
    return models.build(spec.model, input_shape=dataset.input_shape, num_classes=dataset.num_classes,
                        act=train.activation_factory(spec), width=spec.width, depth=spec.depth,
                        batchnorm=spec.batchnorm, init=spec.init)


def _check_builds(specs: Sequence[RunSpec], dataset: Any, device: str) -> None:
    """Build each variant's model once and push two examples through it, so that a variant that
    cannot run on this model and data fails now, in one line, rather than in every run."""
    seen = set()
    example = dataset.x_train[:2]
    for spec in specs:
        if spec.act_key in seen:
            continue
        seen.add(spec.act_key)
        with torch.random.fork_rng(devices=[]):
            try:
                model = _build(spec, dataset)
                model.eval()
                with torch.no_grad():
                    out = model(example)
                if not models.is_builtin(spec.model) and tuple(getattr(out, "shape", ())) != (2, dataset.num_classes):
                    raise ValueError(f"the model maps a batch of 2 to {tuple(getattr(out, 'shape', ()))}, expected "
                                     f"logits of shape (2, {dataset.num_classes})")
            except (ValueError, RuntimeError, TypeError) as err:
                raise ValueError(f"{spec.variant} on model {spec.model}: {str(err).splitlines()[0]}") from None


def _own_model(spec: RunSpec, dataset: Any) -> str:
    """Check an own model's activations can be swapped and matter; describe them in one line.

    Raises ``ValueError`` (one line) when the model has no activation module (swap count 0), or
    when its outputs stay the same with every module ReLU and with every module sigmoid — the
    common sign that ``forward`` calls its activations as functions (``F.relu``), which no swap
    can reach.
    """
    example = dataset.x_train[:2]
    outputs = []
    with torch.random.fork_rng(devices=[]):
        for act in (MODEL_VARIANT, "relu", "sigmoid"):
            torch.manual_seed(0)
            try:
                model = _build(spec, dataset, act).eval()
                with torch.no_grad():
                    outputs.append(model(example))
            except (RuntimeError, TypeError) as err:
                raise ValueError(f"model {spec.model}: {str(err).splitlines()[0]}") from None
            if act == MODEL_VARIANT:
                described = models.describe_activations(model)
    if torch.equal(outputs[1], outputs[2]):
        raise ValueError(f"model {spec.model}: its outputs stay the same when every activation module "
                         f"({described}) is swapped (relu vs sigmoid), so the activations it applies are "
                         f"functional calls (F.relu in "
                         f"forward), which cannot be swapped; valid: register them as modules "
                         f"(self.act = nn.ReLU()) and call those")
    return described


def _executor(kind: str, jobs: int | None, threads: int, device: str, todo: int, *, model: str, quiet: bool,
              download: bool, ray_address: str | None, datasets: dict[Any, Any], local: LocalExecutor
              ) -> tuple[Executor, str]:
    """The executor the options ask for, and a phrase for the log line."""
    if kind == "ray":
        if jobs is not None:
            raise ValueError(f"--jobs {jobs}: applies to --executor local; with Ray, runs go to every free CPU "
                             f"(or GPU) of the cluster")
        nbytes = sum(t.numel() * t.element_size() for ds in datasets.values()
                     for t in (ds.x_train, ds.y_train, ds.x_val, ds.y_val, ds.x_test, ds.y_test))
        store_mb = min(4096, max(128, math.ceil(2 * nbytes / 2**20) + 64))
        ray = executors.RayExecutor(address=ray_address, device=device, threads=threads, object_store_mb=store_mb,
                                    datasets=datasets)
        where = "a local Ray" if ray_address is None else f"Ray at {ray_address}"
        return ray, f"{where} ({threads} CPU{'s' * (threads > 1)} per run{', 1 GPU' if ray.gpus_per_run else ''})"
    if ray_address is not None:
        raise ValueError("--ray-address: applies to --executor ray only")
    if jobs is None:
        jobs = 1 if models.is_local_only(model) else executors.default_jobs(device, threads)
    jobs = max(1, min(jobs, todo))
    if jobs == 1:
        return local, "this process"
    return (executors.ProcessExecutor(jobs, device=device, threads=threads, download=download),
            f"{jobs} worker processes × {threads} thread{'s' * (threads > 1)}")


def _check_execution(executor: Any, jobs: Any, threads: Any, ray_address: Any, device: str, model: str) -> None:
    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if isinstance(executor, str) and executor not in executors.EXECUTORS:
        raise ValueError(f"invalid executor={executor!r}; valid: {', '.join(executors.EXECUTORS)}")
    if jobs is not None and not (is_int(jobs) and jobs >= 1):
        raise ValueError(f"invalid jobs={jobs!r}; valid: an int >= 1 (default: one per core, or per GPU)")
    if not (is_int(threads) and threads >= 1):
        raise ValueError(f"invalid threads={threads!r}; valid: an int >= 1")
    if models.is_local_only(model) and (executor == "ray" or (jobs or 1) > 1):
        raise ValueError(f"model {model}: a Python callable defined here (a lambda, a local function or one "
                         f"of __main__) runs in this process only; valid: jobs=1, or a factory importable as "
                         f"module:FN or FILE.py:FN")
    n = executors.cores()
    if executor == "local" and torch.device(device).type == "cpu" and (jobs or 1) * threads > n:
        raise ValueError(f"--jobs {jobs or 1} × --threads {threads} = {(jobs or 1) * threads} threads > {n} cores "
                         f"here; valid: jobs × threads ≤ {n}")


def compare(comparison: Comparison, out: str | Path, *, device: str = "auto", quiet: bool = False,
            download: bool = False, target_error: float | None = None, argv: Sequence[str] | None = None,
            executor: Executor | str | None = "local", jobs: int | None = None, threads: int = DEFAULT_THREADS,
            ray_address: str | None = None) -> Outcome:
    """Run ``comparison`` into directory ``out`` (resuming what it holds) and write the report.

    ``comparison.model`` may be ``"auto"``: the model that fits the data's shape; or an own
    model's spec (see :func:`actlab.lab.models.load_factory`), whose activation modules every
    variant replaces (the ``model`` variant keeps them).

    Execution (none of it changes a run's key or its numbers): ``executor`` is ``"local"`` —
    ``jobs`` runs at once in worker processes (None: one per core, or per GPU; 1: in this
    process) — or ``"ray"`` with ``ray_address`` (None: a local Ray for this call; ``"auto"``: the
    cluster this machine belongs to); or an :class:`~actlab.lab.executor.Executor` object.
    ``threads``: intra-op threads of every run (default 1; jobs × threads ≤ cores).
    """
    t0 = time.perf_counter()
    say = (lambda msg: None) if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    if target_error is not None and not (0 < target_error < 1):
        raise ValueError(f"invalid target_error={target_error!r}; valid: a number in (0, 1)")
    comparison.check()
    executor = "local" if executor is None else executor
    kind = executor if isinstance(executor, str) else "custom"
    ray_device = device
    if kind == "ray":  # the cluster's GPUs count, not this machine's: the executor resolves auto
        if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
            train.pick_device(device)  # the one-line error for an invalid name
        device = "cpu"  # the driver's own checks run here, on the CPU
    else:
        device = train.pick_device(device)
    _check_execution(kind, jobs, threads, ray_address, device, comparison.model)
    local = LocalExecutor(device=device, progress=not quiet, download=download, threads=threads)
    dataset = local.dataset(RunSpec(data=comparison.data, subset=comparison.subset,
                                    val_fraction=comparison.val_fraction))
    if comparison.model == "auto":
        comparison = dataclasses.replace(comparison, model=models.default_for(dataset.input_shape))
    specs = plan(comparison)
    own = "" if models.is_builtin(comparison.model) else _own_model(specs[0], dataset)
    _check_builds(specs, dataset, device)

    out = Path(out)
    finished: set[str] = set()
    if (out / DB_NAME).is_file():  # read what is there; nothing is written before the executor stands
        with Store.open(out) as store:
            finished = store.finished()
    todo = [s for s in specs if s.key not in finished]
    if kind == "custom":
        runner, where = executor, type(executor).__name__  # type: ignore[assignment]
    else:
        datasets = {(comparison.data, comparison.subset, comparison.val_fraction): dataset}
        runner, where = _executor(kind, jobs, threads, device if kind != "ray" else ray_device, len(todo),
                                  model=comparison.model, quiet=quiet, download=download,
                                  ray_address=ray_address, datasets=datasets, local=local)
        if kind == "ray":
            device = runner.device  # type: ignore[attr-defined]
    try:
        counts = _run_into(out, runner, todo, specs, comparison, dataset, device, where, threads, own, quiet,
                           target_error, argv, say)
    finally:
        close = getattr(runner, "close", None)
        if callable(close):  # a local Ray this call started stops here, however the call ends
            close()
    paths = report.write(out, target_error=target_error)
    return Outcome(out, len(specs), len(specs) - len(todo), len(todo), counts["done"], counts["diverged"],
                   counts["failed"], time.perf_counter() - t0, paths)


def _run_into(out: Path, runner: Any, todo: list[RunSpec], specs: list[RunSpec], comparison: Comparison,
              dataset: Any, device: str, where: str, threads: int, own: str, quiet: bool,
              target_error: float | None, argv: Sequence[str] | None, say: Callable[[str], None]) -> dict[str, int]:
    """Record the invocation, then store each result as it arrives (one transaction each)."""
    with Store.open(out, create=True) as store:
        if todo:  # a rerun that runs nothing leaves the command list and the environment table as they were
            settings = {**comparison.settings(), "target_error": target_error, "device": device}
            env = {**train.environment(device), "executor": where, "torch_threads": threads}
            store.add_invocation(list(argv) if argv is not None else sys.argv, settings, env)
        if own:
            keeps = any(v.act == MODEL_VARIANT for v in comparison.variants)
            say(f"actlab compare: model {comparison.model}: {own}; each variant replaces them"
                f"{' (the model variant keeps them)' if keeps else ''}")
        grid = f" × {len(comparison.lrs)} learning rates" if len(comparison.lrs) > 1 else ""
        say(f"actlab compare: {len(specs)} runs ({len(comparison.variants)} variants{grid} × {comparison.seeds} seeds, "
            f"{comparison.model} on {dataset!r}) → {out / DB_NAME}; {len(specs) - len(todo)} already there, "
            f"running {len(todo)} on {device} in {where}")
        counts = {"done": 0, "diverged": 0, "failed": 0}
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="runs", unit="run", disable=True if quiet else None, file=sys.stderr,
                   dynamic_ncols=True)
        try:
            for result in runner.map(todo):
                store.save(result)  # one transaction: a kill between two results loses neither
                counts[result.status] += 1
                bar.update(1)
                bar.set_postfix(done=counts["done"] + counts["diverged"], failed=counts["failed"], refresh=False)
                if not quiet:
                    last = result.epochs[-1] if result.epochs else {}
                    err = last.get("test_error")
                    note = (f"test error {100 * err:.2f}%" if err is not None and result.status == "done"
                            else report.one_line(result.error, 320))
                    at = f" lr {result.spec.lr:g}" if len(comparison.lrs) > 1 else ""
                    bar.write(f"  {result.spec.variant:<28} seed {result.spec.seed}{at}: {result.status:<8} {note}  "
                              f"({result.train_seconds:.1f} s training)", file=sys.stderr)
        finally:
            bar.close()
    return counts


_SETTINGS = tuple(f.name for f in dataclasses.fields(Comparison)
                  if f.name not in ("variants", "data", "model", "seeds"))


def run(*, model: str | Callable[..., torch.nn.Module] = "auto", data: str = "digits",
        acts: str | Sequence[str] = "all",
        seeds: int = 3, out: str | Path | None = None, device: str = "auto", quiet: bool = True,
        download: bool = False, target_error: float | None = None, executor: Executor | str = "local",
        jobs: int | None = None, threads: int = DEFAULT_THREADS, ray_address: str | None = None,
        **settings: Any) -> Outcome:
    """``actlab compare`` from Python; also reachable as ``actlab.lab.compare(...)``.

    ``model``: a built-in name, an own model's spec (``"my_model.py:build"``), or the factory
    itself — a callable ``fn(num_classes, input_shape) -> nn.Module`` (one importable as
    ``module:FN`` also runs in worker processes and on Ray; a lambda or local function runs in
    this process only). ``acts``: ``"model,relu,prelu:channelwise"`` or a list of such items.
    ``settings``: the other fields of :class:`~actlab.lab.plan.Comparison` (``epochs``, ``lr``,
    ``subset``, ``batch_size``, ...). ``out`` defaults to ``runs/<data name>``. Returns the
    :class:`Outcome`; the report is at ``outcome.report["html"]``.
    """
    from .plan import parse_variants

    unknown = sorted(set(settings) - set(_SETTINGS))
    if unknown:
        raise ValueError(f"unknown setting {unknown[0]!r}; valid: {', '.join(_SETTINGS)}")
    spec = model if isinstance(model, str) else models.register(model)
    text = acts if isinstance(acts, str) else ",".join(acts)
    comparison = Comparison(variants=tuple(parse_variants(text)), seeds=seeds, data=data, model=spec, **settings)
    return compare(comparison, out if out is not None else default_out(data), device=device, quiet=quiet,
                   download=download, target_error=target_error, executor=executor, jobs=jobs, threads=threads,
                   ray_address=ray_address, argv=["actlab.lab.compare", f"model={spec}"])


class _CallableModule(types.ModuleType):
    """This module, callable: ``actlab.lab.compare(model=..., ...)`` is :func:`run`."""

    def __call__(self, **kwargs: Any) -> Outcome:
        return run(**kwargs)


sys.modules[__name__].__class__ = _CallableModule
