"""One run: data → model → optimiser → train (with the monitors) → evaluate → a record.

:func:`run` is a pure function of a :class:`~actlab.lab.plan.RunSpec` and a
:class:`~actlab.lab.data.Dataset`: it touches no database and no global state beyond torch's
RNG, so a local loop and a cluster task execute it the same way. It returns a
:class:`RunResult`, which the store writes in one transaction.

What makes runs with the same seed a matched pair across activations:

* ``torch.manual_seed(seed)`` right before ``models.build``: the layers every variant shares
  get the same initial weights (activation modules draw nothing at construction: PReLU's
  slopes start at a constant);
* a dedicated ``torch.Generator`` seeded with ``seed`` draws the data order;
* RReLU draws its noise from its own generator (seeded from ``seed`` and the layer index),
  so it does not shift the global RNG that dropout, if any, uses.

Divergence (a non-finite training loss) ends the run early with status ``"diverged"``; it is a
result, not an error. Training time (``train_seconds``, and each epoch's ``seconds``) counts the
training steps only: not evaluation, not the monitors (whose time they measure themselves; on
CUDA, where their kernels run asynchronously, part of it stays in), and not compilation: an
untimed warm-up step on a copy of the model runs first (:func:`_warm_up`).

The loop in :func:`_run` reads as the recipe: batches → forward → loss → backward → step, the
bookkeeping kept in three helpers: :class:`_Batches` (the data order), :class:`_Clock` (training
seconds less the monitors') and :class:`_Log` (loss and error per window of steps, divergence).
"""

from __future__ import annotations

import copy
import itertools
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from torch import Tensor, nn

from .. import registry
from ..factory import layer
from ..optim import param_groups
from ..swap import CHANNELWISE
from ..version import __version__
from . import models
from .monitors import Monitor
from .plan import MODEL_VARIANT, RunSpec

__all__ = ["run", "RunResult", "Probe", "failed", "activation_factory", "environment", "evaluate", "pick_device",
           "STEPS_PER_EPOCH_LOGGED", "EVAL_BATCH"]

STEPS_PER_EPOCH_LOGGED = 5  # training loss/error windows recorded per epoch (the "steps" table)
EVAL_BATCH = 1024


@dataclass
class RunResult:
    """One run's record: what the store writes (see :mod:`actlab.lab.store` for the columns)."""

    spec: RunSpec
    status: str  # done | diverged | failed
    error: str | None = None  # why it diverged or failed
    epochs: list[dict[str, Any]] = field(default_factory=list)
    layers: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    wall_seconds: float = 0.0
    started: str = ""
    finished: str = ""
    device: str = ""
    environment: dict[str, Any] = field(default_factory=dict)
    probes: dict[str, Any] = field(default_factory=dict)  # what ``run(after=…)`` measured; not stored by Store

    @property
    def key(self) -> str:
        return self.spec.key

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (to ship a result from a worker process or a cluster task)."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["spec"] = self.spec.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunResult:
        return cls(**{**d, "spec": RunSpec.from_dict(d["spec"])})


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def failed(spec: RunSpec, error: str, *, device: str = "", wall_seconds: float = 0.0) -> RunResult:
    """The record of a run that raised (not divergence): kept so the report can show it."""
    return RunResult(spec, "failed", error=error, wall_seconds=wall_seconds, started=_now(), finished=_now(),
                     device=device, environment=environment(device or "cpu"))


def pick_device(device: str = "auto") -> str:
    """``auto`` → ``cuda`` where a GPU is available, else ``cpu``; others are checked."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"invalid device {device!r}; valid: auto, cpu, cuda, cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: no CUDA GPU available here; valid: auto, cpu")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"invalid device {device!r}; valid: auto, cpu, cuda, cuda:N")
    return str(dev)


def environment(device: str) -> dict[str, Any]:
    """Versions and hardware: what one needs to reproduce a number."""
    import numpy
    import scipy

    dev = torch.device(device)
    env = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "actlab": __version__,
        "device": str(dev),
        "torch_threads": torch.get_num_threads(),
    }
    if dev.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(dev)
        env["cuda"] = torch.version.cuda
    return env


def activation_factory(spec: RunSpec) -> models.ActFactory:
    """The spec's activation as a factory of modules, one per layer (gets the layer's width).

    Its attribute ``variant`` = (act, hparams, seed) tells an own model (see
    :func:`actlab.lab.models.load_factory`) what :func:`actlab.swap` puts in; act ``model`` keeps
    the own model's activations and has no modules to make for a built-in network.
    """
    hp = dict(spec.hparams)
    entry = None if spec.act == MODEL_VARIANT else registry.entry(spec.act)
    layer_index = itertools.count()

    def make(channels: int) -> nn.Module:
        if entry is None:
            raise ValueError("the 'model' variant keeps an own model's activations; valid with --model "
                             "FILE.py:FN, module:FN, torchvision:NAME or timm:NAME only")
        kw = dict(hp)
        if entry.per_channel and kw.get(entry.per_channel) == CHANNELWISE:  # PReLU: one slope per channel
            kw[entry.per_channel] = channels
        if entry.stochastic:  # RReLU: its own noise stream per layer, independent of the global RNG
            kw["seed"] = spec.seed * 1_000_003 + next(layer_index)
        return layer(spec.act, **kw)

    make.variant = (spec.act, spec.hparams, spec.seed)  # type: ignore[attr-defined]
    return make


@torch.no_grad()
def evaluate(model: nn.Module, x: Tensor, y: Tensor, *, device: torch.device) -> tuple[float, float]:
    """(mean cross-entropy, error rate) of ``model`` in eval mode; NaN, NaN on an empty split."""
    if len(y) == 0:
        return math.nan, math.nan
    model.eval()
    loss = torch.zeros((), device=device, dtype=torch.float64)
    wrong = torch.zeros((), device=device, dtype=torch.int64)
    for i in range(0, len(y), EVAL_BATCH):
        xb, yb = x[i:i + EVAL_BATCH].to(device), y[i:i + EVAL_BATCH].to(device)
        out = model(xb)
        loss += nn.functional.cross_entropy(out.float(), yb, reduction="sum").double()
        wrong += (out.argmax(1) != yb).sum()
    return float(loss) / len(y), int(wrong) / len(y)


def _optimizer(spec: RunSpec, model: nn.Module) -> torch.optim.Optimizer:
    groups = param_groups(model, spec.weight_decay)  # PReLU slopes: no weight decay
    if spec.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=spec.lr, momentum=spec.momentum)
    if spec.optimizer == "adam":
        return torch.optim.Adam(groups, lr=spec.lr, betas=(spec.momentum, 0.999))
    raise ValueError(f"unknown optimizer {spec.optimizer!r}; valid: sgd, adam")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


Probe = Callable[[nn.Module, Any, torch.device], dict[str, Any]]
"""``after(model, dataset, device) -> dict``: a measurement of the trained model (JSON data)."""


def run(spec: RunSpec, dataset: Any, *, device: str = "cpu", progress: bool = False,
        after: Probe | None = None) -> RunResult:
    """Train ``spec`` on ``dataset`` and return its record (see the module docstring).

    ``after``, if given, is called once with the trained model when the run ends as ``done``;
    what it returns becomes :attr:`RunResult.probes` (``actlab verify`` measures with it what the
    monitors do not: mean activations, dead units over the whole training set, ...). Its time
    counts in ``wall_seconds`` only.

    On CPU, denormal floats are flushed to zero while it runs (``torch.set_flush_denormal``):
    the vanishing gradients of a saturated sigmoid network are denormal, and computing with them
    is 5× slower on x86, which would charge the activation for an artefact of the arithmetic.
    On CUDA, cuDNN runs in deterministic mode (no autotuning), so that a rerun repeats a run as
    far as the GPU allows (some backward kernels, e.g. max-pooling's, still add atomically).
    """
    cuda = torch.device(device).type == "cuda"
    flushed = not cuda and torch.set_flush_denormal(True)
    cudnn = torch.backends.cudnn
    saved = cudnn.deterministic, cudnn.benchmark
    if cuda:
        cudnn.deterministic, cudnn.benchmark = True, False
    try:
        return _run(spec, dataset, device=device, progress=progress, flushed=flushed, after=after)
    finally:
        if flushed:
            torch.set_flush_denormal(False)
        cudnn.deterministic, cudnn.benchmark = saved


def _run(spec: RunSpec, dataset: Any, *, device: str, progress: bool, flushed: bool,
         after: Probe | None = None) -> RunResult:
    started, wall0 = _now(), time.perf_counter()
    dev = torch.device(device)
    batches = _Batches(dataset.x_train.to(dev), dataset.y_train.to(dev), spec.batch_size, seed=spec.seed)
    torch.manual_seed(spec.seed)  # the shared layers' initial weights (see the module docstring)
    model = models.build(spec.model, input_shape=dataset.input_shape, num_classes=dataset.num_classes,
                         act=activation_factory(spec), width=spec.width, depth=spec.depth,
                         batchnorm=spec.batchnorm, init=spec.init).to(dev)
    opt = _optimizer(spec, model)
    sched = _schedule(spec, opt, len(batches))
    monitor = Monitor(model, models.activation_layers(model), example=batches.x[:2])
    _warm_up(model, batches.x[:spec.batch_size], batches.y[:spec.batch_size], dev)

    result = RunResult(spec, "done", started=started, device=str(dev), environment=environment(str(dev)))
    result.environment["flush_denormal"] = flushed
    result.environment["data"] = {"name": dataset.name, "sizes": dataset.meta.get("sizes"),
                                  "input_shape": list(dataset.input_shape), "classes": dataset.num_classes}
    clock = _Clock(dev, monitor)
    log = _Log(result, len(batches), clock, _bar(spec, spec.epochs * len(batches), progress))
    with monitor:
        for epoch in range(1, spec.epochs + 1):
            model.train()
            clock.start()
            for xb, yb in batches.epoch():
                monitor.active = True
                out = model(xb)
                monitor.active = False
                loss = nn.functional.cross_entropy(out, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                monitor.after_backward()
                opt.step()
                sched.step()
                if log.step(epoch, loss, out, yb) == "diverged":
                    break
            epoch_seconds = clock.stop()
            if result.status == "diverged":
                break

            t_eval = time.perf_counter()
            val_loss, val_error = evaluate(model, dataset.x_val, dataset.y_val, device=dev)
            test_loss, test_error = evaluate(model, dataset.x_test, dataset.y_test, device=dev)
            result.eval_seconds += time.perf_counter() - t_eval
            train_loss, train_error = log.epoch_means()
            result.epochs.append({
                "epoch": epoch, "train_loss": train_loss, "train_error": train_error,
                "val_loss": val_loss, "val_error": val_error, "test_loss": test_loss, "test_error": test_error,
                "lr": opt.param_groups[0]["lr"], "seconds": epoch_seconds, "train_seconds": clock.seconds,
            })
            result.layers.extend(monitor.end_epoch(epoch))
    log.close()
    result.train_seconds = clock.seconds
    if after is not None and result.status == "done":
        result.probes = after(model, dataset, dev)
    result.wall_seconds = time.perf_counter() - wall0
    result.finished = _now()
    return result


def _schedule(spec: RunSpec, opt: torch.optim.Optimizer, steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler:
    """The learning rate per step, as a factor of the peak ``spec.lr``.

    Warm-up: it rises linearly from lr/W to lr over the first W steps, W = ``spec.warmup``
    epochs' worth (at most half the run; 0: none), as Goyal et al. (2017) do. Without it, the
    default setting diverged on 28×28 digits with PReLU and ELU: at the Kaiming initialisation a
    larger image gives larger gradients (a conv weight's gradient sums over every position), and
    the first full-rate steps moved the classifier by more than its own norm. Then ``cosine``
    decays to 0 at the last step; ``constant`` stays at the peak.
    """
    total = spec.epochs * steps_per_epoch
    warm = 0 if spec.warmup <= 0 else max(1, round(min(spec.warmup * steps_per_epoch, total / 2)))
    rest = max(1, total - warm)

    def factor(t: int) -> float:
        if t < warm:
            return (t + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * (t - warm) / rest)) if spec.schedule == "cosine" else 1.0

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


class _Batches:
    """The training set in shuffled mini-batches, a new order each epoch from a generator of its
    own (seeded with the run's seed, so the data order is the same for every activation). A last
    batch of one example is dropped (batch norm cannot train on it)."""

    def __init__(self, x: Tensor, y: Tensor, batch_size: int, *, seed: int) -> None:
        self.x, self.y, self.batch_size = x, y, batch_size
        n = len(y)
        self.steps = max(1, n // batch_size + (n % batch_size > 1))
        self.seen = min(n, self.steps * batch_size)  # examples one epoch trains on
        self._order = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.steps

    def epoch(self) -> Iterator[tuple[Tensor, Tensor]]:
        perm = torch.randperm(len(self.y), generator=self._order).to(self.x.device)
        for i in range(self.steps):
            idx = perm[i * self.batch_size:(i + 1) * self.batch_size]
            yield self.x[idx], self.y[idx]


class _Clock:
    """Training seconds: the time between :meth:`start` and :meth:`stop`, less the time the
    monitors spent in it (they keep their own clock, ``Monitor.seconds``). Synchronises a CUDA
    device at both ends, so that queued kernels count where they run."""

    def __init__(self, device: torch.device, monitor: Monitor) -> None:
        self.device, self.monitor = device, monitor
        self.seconds = 0.0  # training seconds so far
        self._lap = 0.0  # this lap's training seconds so far
        self._t0 = self._m0 = 0.0
        self._running = False

    def start(self) -> None:
        """Start a lap (an epoch)."""
        self._lap = 0.0
        self.resume()

    def resume(self) -> None:
        _sync(self.device)
        self._t0, self._m0 = time.perf_counter(), self.monitor.seconds
        self._running = True

    def pause(self) -> float:
        """Stop counting (e.g. while a log line is written); the training seconds so far."""
        if self._running:
            _sync(self.device)
            lap = (time.perf_counter() - self._t0) - (self.monitor.seconds - self._m0)
            self._lap += lap
            self.seconds += lap
            self._running = False
        return self.seconds

    def stop(self) -> float:
        """End the lap; its training seconds."""
        self.pause()
        return self._lap


def _advice(spec: RunSpec) -> str:
    """What to try after a divergence, for the run's record and the console line."""
    lower = ",".join(f"{spec.lr * f:g}" for f in (0.1, 0.3, 1))
    return (f"try a lower --lr (this run: {spec.lr:g}) or a grid such as --lr {lower}, a longer --warmup "
            f"(this run: {spec.warmup:g} epoch{'' if spec.warmup == 1 else 's'})" + ("" if spec.batchnorm else ", or --batchnorm"))


class _Log:
    """The training loss and error as the steps go: summed on the device, read (one sync) once per
    window of a few steps into ``result.steps``, and over the epoch for its row. A non-finite
    window loss marks the run diverged, with what to try next."""

    def __init__(self, result: RunResult, steps_per_epoch: int, clock: _Clock, bar: Any) -> None:
        self.result, self.steps_per_epoch, self.clock, self.bar = result, steps_per_epoch, clock, bar
        self.every = max(1, steps_per_epoch // STEPS_PER_EPOCH_LOGGED)
        self.step_count = 0
        self._i = 0  # step within the epoch
        self._epoch = self._window = None
        self._epoch_n = self._window_n = 0

    def step(self, epoch: int, loss: Tensor, out: Tensor, y: Tensor) -> str:
        """Count one training step; at the end of a window, log it. Returns the run's status."""
        if self._i == 0:  # a new epoch
            self._epoch = torch.zeros(2, device=loss.device, dtype=torch.float64)  # summed loss, wrong
            self._window = torch.zeros(2, device=loss.device, dtype=torch.float64)
            self._epoch_n = self._window_n = 0
        with torch.no_grad():  # on the device, no sync
            batch = torch.stack([loss.detach().double() * len(y), (out.argmax(1) != y).sum().double()])
            self._window += batch
            self._epoch += batch
        self._window_n += len(y)
        self._epoch_n += len(y)
        self.step_count += 1
        self._i += 1
        if self._i % self.every == 0 or self._i == self.steps_per_epoch:
            self._write(epoch)
        if self._i == self.steps_per_epoch or self.result.status == "diverged":
            self._i = 0
        return self.result.status

    def _write(self, epoch: int) -> None:
        train_seconds = self.clock.pause()
        loss, wrong = (self._window / self._window_n).tolist()
        self._window.zero_()
        self._window_n = 0
        self.result.steps.append({"step": self.step_count, "epoch": epoch - 1 + self._i / self.steps_per_epoch,
                                  "train_seconds": train_seconds, "loss": loss, "error": wrong})
        self.bar.update(self.step_count - self.bar.n)
        self.bar.set_postfix(loss=f"{loss:.3g}", err=f"{wrong:.3f}")
        if not math.isfinite(loss):
            self.result.status = "diverged"
            self.result.error = f"training loss became {loss} in epoch {epoch} (step {self.step_count}); " + _advice(self.result.spec)
        elif self._i < self.steps_per_epoch:
            self.clock.resume()

    def epoch_means(self) -> tuple[float, float]:
        """The epoch's mean training loss and error (over the examples its steps saw)."""
        loss, wrong = self._epoch.tolist()
        return loss / self._epoch_n, wrong / self._epoch_n

    def close(self) -> None:
        self.bar.close()


def _warm_up(model: nn.Module, x: Tensor, y: Tensor, device: torch.device) -> None:
    """One training step's forward and backward, and one evaluation forward, on a copy of the
    model, untimed: the first calls compile kernels (numba's, ~1 min on a cold cache; Triton's),
    allocate memory and pick algorithms, which would otherwise be charged to the first epoch of
    whichever run a process happens to start with. The copy and the forked RNG leave the model,
    its RReLU generators and the global RNG as they were."""
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        twin = copy.deepcopy(model).train()
        nn.functional.cross_entropy(twin(x), y).backward()
        with torch.no_grad():
            twin.eval()(x)
    _sync(device)


def _bar(spec: RunSpec, total: int, show: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"{spec.variant} seed {spec.seed}", unit="step", leave=False,
                disable=None if show else True, dynamic_ncols=True, file=sys.stderr)
