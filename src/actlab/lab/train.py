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
result, not an error. Training time (``train_seconds``) counts the training steps only: not
evaluation, not the monitors (whose time they measure themselves; on CUDA, where their kernels
run asynchronously, part of it stays in).
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
from typing import Any, Callable

import torch
from torch import Tensor, nn

import actlab

from ..swap import CHANNELWISE
from . import models
from .monitors import Monitor
from .plan import RunSpec

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
        "actlab": actlab.__version__,
        "device": str(dev),
        "torch_threads": torch.get_num_threads(),
    }
    if dev.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(dev)
        env["cuda"] = torch.version.cuda
    return env


def activation_factory(spec: RunSpec) -> models.ActFactory:
    """The spec's activation as a factory of modules, one per layer (gets the layer's width)."""
    hp = dict(spec.hparams)
    layer_index = itertools.count()

    def make(channels: int) -> nn.Module:
        kw = dict(hp)
        if spec.act == "prelu" and kw.get("num_parameters") == CHANNELWISE:
            kw["num_parameters"] = channels
        if spec.act == "rrelu":  # its own noise stream per layer, independent of the global RNG
            kw["seed"] = spec.seed * 1_000_003 + next(layer_index)
        return actlab.layer(spec.act, **kw)

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
    groups = actlab.param_groups(model, spec.weight_decay)  # PReLU slopes: no weight decay
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

    # --- data -------------------------------------------------------------------------------
    x_train, y_train = dataset.x_train.to(dev), dataset.y_train.to(dev)
    n = len(y_train)
    steps_per_epoch = max(1, n // spec.batch_size + (n % spec.batch_size > 1))  # drop a last batch of 1 (batch norm)
    order = torch.Generator().manual_seed(spec.seed)  # data order: a stream of its own

    # --- model ------------------------------------------------------------------------------
    torch.manual_seed(spec.seed)
    model = models.build(spec.model, input_shape=dataset.input_shape, num_classes=dataset.num_classes,
                         act=activation_factory(spec), width=spec.width, depth=spec.depth,
                         batchnorm=spec.batchnorm, init=spec.init).to(dev)

    # --- optimiser --------------------------------------------------------------------------
    opt = _optimizer(spec, model)
    total_steps = spec.epochs * steps_per_epoch
    if spec.schedule == "cosine":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.5 * (1 + math.cos(math.pi * t / total_steps)))
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0)
    monitor = Monitor(model, models.activation_layers(model), example=x_train[:2])
    _warm_up(model, x_train[:spec.batch_size], y_train[:spec.batch_size], dev)

    # --- train ------------------------------------------------------------------------------
    result = RunResult(spec, "done", started=started, device=str(dev), environment=environment(str(dev)))
    result.environment["flush_denormal"] = flushed
    result.environment["data"] = {"name": dataset.name, "sizes": dataset.meta.get("sizes"),
                                  "input_shape": list(dataset.input_shape), "classes": dataset.num_classes}
    log_every = max(1, steps_per_epoch // STEPS_PER_EPOCH_LOGGED)
    bar = _bar(spec, total_steps, progress)
    step = 0
    with monitor:
        for epoch in range(1, spec.epochs + 1):
            model.train()
            perm = torch.randperm(n, generator=order).to(dev)
            sums = torch.zeros(2, device=dev, dtype=torch.float64)  # summed loss, wrong: the epoch
            window = torch.zeros(2, device=dev, dtype=torch.float64)  # the same since the last log
            window_count = 0
            elapsed, mon0 = 0.0, monitor.seconds  # this epoch's training time so far, monitors in
            _sync(dev)
            t0 = time.perf_counter()
            for i in range(steps_per_epoch):
                idx = perm[i * spec.batch_size:(i + 1) * spec.batch_size]
                xb, yb = x_train[idx], y_train[idx]
                monitor.active = True
                out = model(xb)
                monitor.active = False
                loss = nn.functional.cross_entropy(out, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                monitor.after_backward()
                opt.step()
                sched.step()
                step += 1
                with torch.no_grad():  # on the device, no sync: read once per window
                    batch = torch.stack([loss.detach().double() * len(yb), (out.argmax(1) != yb).sum().double()])
                    window += batch
                    sums += batch
                window_count += len(yb)
                if (i + 1) % log_every == 0 or i + 1 == steps_per_epoch:
                    _sync(dev)
                    elapsed += time.perf_counter() - t0
                    w_loss, w_wrong = (window / window_count).tolist()
                    window.zero_()
                    window_count = 0
                    result.steps.append({
                        "step": step, "epoch": epoch - 1 + (i + 1) / steps_per_epoch,
                        "train_seconds": result.train_seconds + elapsed - (monitor.seconds - mon0),
                        "loss": w_loss, "error": w_wrong})
                    bar.update(step - bar.n)
                    bar.set_postfix(loss=f"{w_loss:.3g}", err=f"{w_wrong:.3f}")
                    if not math.isfinite(w_loss):
                        result.status = "diverged"
                        result.error = f"training loss became {w_loss} in epoch {epoch} (step {step})"
                        break
                    t0 = time.perf_counter()
            epoch_seconds = elapsed - (monitor.seconds - mon0)
            result.train_seconds += epoch_seconds
            if result.status == "diverged":
                break

            # --- evaluate -----------------------------------------------------------------
            t_eval = time.perf_counter()
            val_loss, val_error = evaluate(model, dataset.x_val, dataset.y_val, device=dev)
            test_loss, test_error = evaluate(model, dataset.x_test, dataset.y_test, device=dev)
            result.eval_seconds += time.perf_counter() - t_eval
            seen = min(n, steps_per_epoch * spec.batch_size)
            train_loss, train_wrong = sums.tolist()
            result.epochs.append({
                "epoch": epoch, "train_loss": train_loss / seen, "train_error": train_wrong / seen,
                "val_loss": val_loss, "val_error": val_error, "test_loss": test_loss, "test_error": test_error,
                "lr": opt.param_groups[0]["lr"], "seconds": epoch_seconds, "train_seconds": result.train_seconds,
            })
            result.layers.extend(monitor.end_epoch(epoch))
    bar.close()
    if after is not None and result.status == "done":
        result.probes = after(model, dataset, dev)
    result.wall_seconds = time.perf_counter() - wall0
    result.finished = _now()
    return result


def _warm_up(model: nn.Module, x: Tensor, y: Tensor, device: torch.device) -> None:
    """One forward and backward on a copy of the model: first calls allocate memory and pick
    kernels, which would otherwise be charged to whichever run a process happens to start with.
    The copy and the forked RNG leave the model, its RReLU generators and the global RNG as they were."""
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        twin = copy.deepcopy(model).train()
        nn.functional.cross_entropy(twin(x), y).backward()
    _sync(device)


def _bar(spec: RunSpec, total: int, show: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"{spec.variant} seed {spec.seed}", unit="step", leave=False,
                disable=None if show else True, dynamic_ncols=True, file=sys.stderr)
