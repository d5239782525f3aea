"""A whole training step with actlab's layers against the same step with torch.nn's.

Layer benchmarks (:mod:`actlab.bench`) time one activation on one tensor; a user meets the layers
inside a network, where convolutions dominate and the activation's share is what is left to win.
This module times one SGD step — forward, loss, backward, update — of a lab model (``he14`` at
width 0.5 by default, batch 64, 32×32 inputs, 10 classes) from the same seed: with every
activation an actlab layer, with its torch.nn twin, with no activation at all (``nn.Identity``:
the *ceiling*, the step time if the activation cost nothing), and with a layer that only copies
its input forward and its gradient backward into outputs from actlab's pool (the *floor* of an
out-of-place layer: the bytes any drop-in activation must write, and nothing else). For the smooth
activations (sigmoid, tanh, ELU) a fifth step bounds tighter: their derivative takes a continuum of
values, so backward must read a full-precision tensor kept from forward as well (a rectifier's is
1 or its slope, which one bit per element decides). The *kept floor*'s layer copies forward, keeps
its output, and backward writes gradient × kept output: the least any drop-in smooth activation
reads and writes. On tensors below the size where actlab's layers hand over to torch's own ops
(``actlab.fast.Policy.min_numel``, an MLP's activations) both floors are torch ops moving the same
bytes (``x * 1.0``; ``torch.relu``, which keeps its output): there a Python autograd.Function
costs more than the bytes, and a floor with that cost would bound nothing.

Timing: the steps take turns one step at a time, in rounds (each round runs each step once, the
order rotating), so the steps compared ran within a second of each other. A step takes a quarter
of a second here and single steps scatter ±15 % with the host (a shared 2-core VM), but
neighbours share the host's state, so each ratio is the median over rounds of the ratio *within*
a round. Blocks of many steps per function, as :mod:`actlab.bench` times single layers, would
let a drift of the host land on one side.

Builds: two builds of the very same model, weights equal, step at steadily different speeds in
one process — measured 2–4 % apart, the same in both halves of a run (where their parameters,
optimiser state and outputs happen to lie in memory). One build per side would hand that bias
to the ratio, and a bootstrap over rounds would not see it. So each variant is built ``builds``
times (default 4), round r runs build r mod ``builds`` of each (every build meeting every order
of the steps), and the 95 % interval resamples builds, then rounds within each (a cluster
bootstrap): it is as wide as the builds disagree.

It also counts the bytes the forward keeps for backward across the whole step (activations,
convolutions and all), for actlab's layers, torch.nn's, and actlab's ``lean`` variants.

Ratios are torch.nn time / actlab time (above 1: actlab faster); ``ceiling`` is torch.nn time /
no-activation time, the most any activation implementation could gain; ``floor`` is torch.nn
time / copy-layer time, the most an out-of-place one could (a drop-in layer writes a fresh output
and a fresh input gradient, as torch.nn's do); ``floor_kept`` (smooth activations only) is torch.nn
time / kept-floor time, the most a drop-in smooth one could.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from scipy import stats as sps
from torch import nn

from .. import bench, fast
from ..fast import pool
from ..machine import measuring
from . import models

__all__ = ["StepCase", "StepSetting", "STEP_CASES", "run", "summary", "goals", "named_goal", "print_row",
           "paired_steps", "bounds", "bounds_summary"]


@dataclass(frozen=True)
class StepCase:
    """One activation in the step: actlab's factory and torch.nn's, per channel count."""

    label: str
    act: str
    hparams: dict[str, Any] = field(default_factory=dict)
    channelwise: bool = False
    train: bool = True
    lean_ok: bool = False  # has a lean variant (one bit per element kept)

    @property
    def reads_kept(self) -> bool:
        """Backward must read a full-precision tensor kept from forward: the registry's "smooth"
        family, whose derivative takes a continuum of values (a rectifier's is 1 or its slope:
        a sign bit decides it, with RReLU's noise drawn again from its seed)."""
        from .. import registry

        return registry.entry(self.act).family == "smooth"

    def ours(self, lean: bool = False) -> models.ActFactory:
        from ..factory import layer

        extra = {"lean": True} if lean else {}

        def make(c: int) -> nn.Module:
            hp = {**self.hparams, **({"num_parameters": c} if self.channelwise else {})}
            return layer(self.act, **hp, **extra)
        return make

    def native(self) -> models.ActFactory:
        from .. import registry

        twin = registry.entry(self.act).torch_twin

        def make(c: int) -> nn.Module:
            return twin(c) if self.channelwise else twin(**self.hparams)
        return make


STEP_CASES: tuple[StepCase, ...] = (
    StepCase("sigmoid", "sigmoid"),
    StepCase("tanh", "tanh"),
    StepCase("relu", "relu", lean_ok=True),
    StepCase("leaky_relu", "leaky_relu", lean_ok=True),
    StepCase("prelu-shared", "prelu"),
    StepCase("prelu-channel", "prelu", channelwise=True, lean_ok=True),
    StepCase("rrelu-train", "rrelu", lean_ok=True),
    StepCase("elu", "elu"),
)

#: The issue's goals for the whole step of he14: torch.nn step time / actlab step time.
STEP_GOALS = {"prelu-channel": 1.25, "rrelu-train": 1.4, "elu": 1.05}
NEVER_SLOWER = 0.98


def named_goal(case: str, model: str) -> float | None:
    """The named goal of ``case`` (:data:`STEP_GOALS`), which was set on he14 only; else None."""
    return STEP_GOALS.get(case) if model == "he14" else None


@dataclass(frozen=True)
class StepSetting:
    model: str = "he14"
    width: float = 0.5
    batch: int = 64
    side: int = 32
    channels: int = 3
    classes: int = 10
    lr: float = 0.01


class _Copy(torch.autograd.Function):
    """y = x, ∂L/∂x = g, each written into a fresh output from actlab's CPU pool: the least work
    of an out-of-place layer under autograd (it keeps nothing for backward)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return pool.empty_strided(x.shape, x.stride(), x.dtype).copy_(x)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        return pool.empty_strided(g.shape, g.stride(), g.dtype).copy_(g)


def _small(x: torch.Tensor) -> bool:
    """Below the size where actlab's layers leave torch's own ops (``actlab.fast.Policy``): there a
    Python autograd.Function's ~20 µs a call outweighs the bytes, so the floors are torch ops too."""
    return x.numel() < fast.policy().min_numel_for("cpu")


class CopyLayer(nn.Module):
    """The floor's activation: :class:`_Copy` (see the module's docstring); on small tensors
    ``x * 1.0``, the same bytes each way (a fresh output, a fresh gradient g·1) without Python."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 1.0 if _small(x) else _Copy.apply(x)


class _CopyKept(torch.autograd.Function):
    """y = x kept for backward, ∂L/∂x = g · y, each written into a fresh output from actlab's CPU
    pool: the least work of an out-of-place layer whose backward reads a full-size kept tensor
    (ELU's, sigmoid's and tanh's read their output; the product stands for any function of it)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        y = pool.empty_strided(x.shape, x.stride(), x.dtype).copy_(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        return torch.mul(g, y, out=pool.empty_strided(g.shape, g.stride(), g.dtype))


class CopyKeptLayer(nn.Module):
    """The kept floor's activation: :class:`_CopyKept` (see the module's docstring); on small
    tensors ``torch.relu``, the same bytes each way (y from x; g and the kept y to a fresh
    gradient) without Python."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x) if _small(x) else _CopyKept.apply(x)


def _build(setting: StepSetting, act: models.ActFactory, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return models.build(setting.model, input_shape=(setting.channels, setting.side, setting.side),
                        num_classes=setting.classes, act=act, width=setting.width)


def _stepper(model: nn.Module, x: torch.Tensor, y: torch.Tensor, lr: float, train: bool) -> Callable[[], Any]:
    model.train(train)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    return step


def paired_steps(fns: dict[str, Sequence[Callable[[], Any]]], rounds: int,
                 warmup: int) -> dict[str, list[float]]:
    """ms of each step in each round: ``fns`` maps each variant to its builds (as many for each);
    round r runs build b = r mod builds of every variant once, back to back, in an order that
    rotates by one and reverses every len(fns) rotations — counted per build (j = r div builds),
    so that every build meets every order and no step always follows the same one. ``warmup``
    untimed steps of every build first."""
    for _ in range(warmup):
        for builds in fns.values():
            for fn in builds:
                fn()
    keys = list(fns)
    n_builds = len(next(iter(fns.values())))
    times: dict[str, list[float]] = {k: [] for k in keys}
    for r in range(rounds):
        b, j = r % n_builds, r // n_builds
        i = j % len(keys)
        seq = keys[i:] + keys[:i]
        for k in seq if (j // len(keys)) % 2 == 0 else seq[::-1]:
            fn = fns[k][b]
            t0 = time.perf_counter()
            fn()
            times[k].append((time.perf_counter() - t0) * 1e3)
    return times


#: The variants of each case's step: torch.nn's layer, actlab's, none (ceiling), a copy (floor),
#: and for the smooth activations a copy that keeps its output for backward (kept floor).
VARIANTS = ("native", "actlab", "identity", "copy", "kept")
#: Each ratio of a row, torch.nn's step time over the time of this variant's.
_RATIOS = {"ratio": "actlab", "ceiling": "identity", "floor": "copy", "floor_kept": "kept"}


def measure(case: StepCase, setting: StepSetting, rounds: int, warmup: int, builds: int = 4) -> dict[str, Any]:
    """One case: step times of torch.nn / actlab / no activation / copy layer (and, for a smooth
    activation, the kept floor's layer), ``builds`` builds each; ratios with their intervals; bytes kept."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(setting.batch, setting.channels, setting.side, setting.side, generator=gen)
    y = torch.randint(0, setting.classes, (setting.batch,), generator=gen)
    factories = dict(zip(VARIANTS, (case.native(), case.ours(), lambda c: nn.Identity(), lambda c: CopyLayer(),
                                    lambda c: CopyKeptLayer())))
    if not case.reads_kept:
        del factories["kept"]
    nets = {k: [_build(setting, f) for _ in range(builds)] for k, f in factories.items()}
    fns = {k: [_stepper(m, x, y, setting.lr, case.train) for m in ms] for k, ms in nets.items()}
    t = paired_steps(fns, rounds, warmup)
    b = min(builds, rounds)
    kept = {k: bench.saved_bytes(nets[k][0], x) for k in ("native", "actlab")}
    if case.lean_ok:
        lean = _build(setting, case.ours(lean=True)).train(case.train)
        kept["actlab_lean"] = bench.saved_bytes(lean, x)
    row: dict[str, Any] = {"case": case.label, "step_ms": {k: round(statistics.median(v), 3) for k, v in t.items()}}
    for key, variant in _RATIOS.items():  # torch.nn's step time over each variant's
        if variant in t:
            est, ci = bench.paired_ratio(t["native"], t[variant], b)
            row[key], row[f"{key}_ci95"] = round(est, 4), [round(v, 4) for v in ci]
    return {**row, "steps_ms": {k: [round(v, 3) for v in r] for k, r in t.items()}, "saved_bytes": kept}


def run(acts: Sequence[str] | None = None, setting: StepSetting = StepSetting(), threads: int | None = 2,
        repeats: int = 20, warmup: int = 2, under_load: bool = False,
        progress: Callable[[dict[str, Any]], None] | None = None, builds: int = 4) -> dict[str, Any]:
    """Time the step for each case (``repeats`` paired rounds after ``warmup`` untimed steps of
    each of the ``builds`` builds); the JSON-ready report (environment, setting, load, rows, goals)."""
    if builds < 1:
        raise ValueError(f"--builds {builds}: valid: an integer >= 1 (builds of each model, default 4)")
    if threads is not None:
        torch.set_num_threads(threads)
    cases = [c for c in STEP_CASES if not acts or c.label in acts or c.act in acts]
    if acts and not cases:
        raise ValueError(f"--acts: no step case matches {','.join(acts)}; valid: "
                         f"{', '.join(c.label for c in STEP_CASES)}")
    report = bench.environment("cpu")
    report["kind"] = "whole training step"
    report["setting"] = {**setting.__dict__, "threads": torch.get_num_threads(), "rounds": repeats,
                         "builds": builds, "warmup": warmup, "optimizer": "SGD momentum 0.9", "under_load": under_load}
    rows = []
    t0 = time.perf_counter()
    with measuring(under_load) as meter:
        for case in cases:
            row = measure(case, setting, repeats, warmup, builds)
            rows.append(row)
            if progress:
                progress(row)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    report["load"] = meter.result()
    report["results"] = rows
    report["goals"] = goals(rows, setting.model)
    return report


def goals(rows: Sequence[dict[str, Any]], model: str = "he14") -> list[dict[str, Any]]:
    """Each row against its goal: the named ones (issue 10's, set on he14: :data:`STEP_GOALS`), and
    never slower (≥ 0.98) for the rest — and for every row on another model.

    ``met``: the median ratio reaches the threshold; ``sure``: its 95 % interval lies wholly on
    that side; ``reachable``: the ceiling (no activation at all) reaches it — where even the
    interval's top of the ceiling falls short, no implementation of the activation can meet it;
    ``reachable_out_of_place``: the floor (a layer that only copies) reaches it — where it falls
    short, no drop-in layer that writes a fresh output and gradient, as torch.nn's do, can; for a
    smooth activation the kept floor decides (its backward must also read a kept tensor)."""
    out = []
    for r in rows:
        threshold = named_goal(r["case"], model) or NEVER_SLOWER
        met = r["ratio"] >= threshold
        g = {"case": r["case"], "metric": "step ratio", "threshold": threshold, "value": r["ratio"], "met": met}
        if "ratio_ci95" in r:
            lo, hi = r["ratio_ci95"]
            g["sure"] = lo >= threshold if met else hi < threshold
            g["reachable"] = r["ceiling_ci95"][1] >= threshold
            for key in ("floor_kept_ci95", "floor_ci95"):  # the tighter bound where there is one
                if key in r:
                    g["reachable_out_of_place"] = r[key][1] >= threshold
                    g["bound"] = key.removesuffix("_ci95")
                    break
        out.append(g)
    return out


def summary(report: dict[str, Any]) -> str:
    s = report["setting"]
    builds = f", {s['builds']} builds each" if "builds" in s else ""
    lines = [f"one SGD step of {s['model']} (width {s['width']}), batch {s['batch']}, {s['side']}x{s['side']}, "
             f"{s['threads']} threads, {s['rounds']} paired rounds{builds}"
             + (", under load" if s.get("under_load") else ""),
             f"{'case':16s} {'actlab ms':>10s} {'nn ms':>8s} {'ratio [95% CI]':>20s} {'floor':>6s} {'kept':>6s} "
             f"{'ceiling':>8s} │ "
             f"{'kept MB nn → actlab (lean)':>28s}"]
    for r in report["results"]:
        kept = r["saved_bytes"]
        lean = f" ({kept['actlab_lean'] / 1e6:.1f})" if "actlab_lean" in kept else ""
        lo, hi = r["ratio_ci95"]
        lines.append(f"{r['case']:16s} {r['step_ms']['actlab']:10.2f} {r['step_ms']['native']:8.2f} "
                     f"{r['ratio']:5.3f} [{lo:.3f}, {hi:.3f}] {r.get('floor', float('nan')):6.3f} "
                     f"{_cell(r.get('floor_kept'))} {r['ceiling']:7.3f} │ {kept['native'] / 1e6:10.1f} → "
                     f"{kept['actlab'] / 1e6:.1f}{lean}")
    load = report.get("load", {})
    if load.get("others_cores") is not None:
        lines.append(f"other processes: {load['others_cores']:.2f} cores on average"
                     + ("  (BUSY: these ratios are not a quiet-machine measurement)" if load["busy"] else ""))
    met = sum(g["met"] for g in report["goals"])
    lines.append(f"goals: {met} met, {len(report['goals']) - met} missed")
    for g in report["goals"]:
        if not g["met"]:
            if not g.get("reachable", True):
                why = " (out of reach: the step without any activation is not that fast)"
            elif not g.get("reachable_out_of_place", True):
                what = ("copies forward and multiplies by its kept output backward" if g.get("bound") == "floor_kept"
                        else "only copies")
                why = f" (out of reach for a drop-in layer: the step with a layer that {what} is not that fast)"
            elif not g.get("sure", True):
                why = " (95% CI reaches above)"
            else:
                why = ""
            noise = ", within noise" if not g.get("sure", True) else ""
            lines.append(f"  missed{noise}: {g['case']} {g['value']} < {g['threshold']}{why}")
        elif not g.get("sure", True):
            lines.append(f"  met, within noise: {g['case']} {g['value']} >= {g['threshold']} (95% CI reaches below)")
    return "\n".join(lines)


#: What ``bounds`` pools, in the order printed: actlab's ratio, then the bounds (tightest first).
_POOLED = ("ratio", "floor_kept", "floor", "ceiling")


def bounds(reports: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Several runs of the step benchmark pooled, for each case with a named goal (on he14).

    For each of actlab's ratio, the floors and the ceiling: every run's median, how many fall
    below the goal, and a one-sided sign test. Runs are separate processes, so if the true value
    were at the goal or above, each run's median would fall below it with probability at most ½
    (independently): ``k`` of ``n`` below has p = P(Binomial(n, ½) ≥ k) (``scipy.stats.binomtest``)
    — 2⁻ⁿ when all do. That is
    how a bound whose interval reaches the goal in some runs is shown below it all the same."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for rep in reports:
        if rep.get("kind") != "whole training step":
            raise ValueError(f"--bounds: a {rep.get('kind', 'layers')!r} report; valid: JSON files of "
                             f"actlab bench --model he14")
        model = rep.get("setting", {}).get("model", "")
        for r in rep["results"]:
            if named_goal(r["case"], model) is not None:
                runs.setdefault(r["case"], []).append(r)
    out = []
    for case, rows in runs.items():
        threshold = STEP_GOALS[case]
        for metric in _POOLED:
            values = [r[metric] for r in rows if metric in r]
            if not values:
                continue
            n, k = len(values), sum(v < threshold for v in values)
            p = float(sps.binomtest(k, n, 0.5, alternative="greater").pvalue)
            out.append({"case": case, "metric": metric, "threshold": threshold, "values": values, "runs": n,
                        "below": k, "p_below": p})
    return out


def bounds_summary(rows: Sequence[dict[str, Any]], alpha: float = 0.05) -> str:
    """The pooled runs as a table; a bound below its goal at ``alpha`` is called out of reach."""
    lines = [f"{'case':14s} {'metric':11s} {'goal':>5s} {'runs':>4s} {'below':>5s} {'sign p':>8s}  medians"]
    for r in rows:
        lines.append(f"{r['case']:14s} {r['metric']:11s} {r['threshold']:5.2f} {r['runs']:4d} {r['below']:5d} "
                     f"{r['p_below']:8.4f}  {', '.join(f'{v:.3f}' for v in r['values'])}")
    for r in rows:
        if r["metric"] != "ratio" and r["p_below"] < alpha:
            what = {"ceiling": "any implementation", "floor": "a drop-in layer",
                    "floor_kept": "a drop-in layer that reads a kept tensor in backward"}[r["metric"]]
            lines.append(f"out of reach for {what}: {r['case']} {r['threshold']} ({r['metric']} below it in "
                         f"{r['below']} of {r['runs']} runs, sign test p = {r['p_below']:.4f})")
    if not rows:
        lines.append("no he14 runs with a named goal among these reports")
    return "\n".join(lines)


def _cell(v: float | None) -> str:
    return f"{v:6.3f}" if v is not None else f"{'—':>6s}"


def print_row(row: dict[str, Any]) -> None:
    """Progress: one short line per case, to stderr."""
    import sys

    kept = f", kept floor {row['floor_kept']:.2f}x" if "floor_kept" in row else ""
    print(f"  {row['case']}: step {row['ratio']:.2f}x torch.nn (floor {row['floor']:.2f}x{kept}, "
          f"ceiling {row['ceiling']:.2f}x)", file=sys.stderr)
