"""The results database → the numbers of the report, as typed results (dataclasses).

:func:`analyse` reads only the store (:class:`actlab.lab.store.Store`) and returns an
:class:`Analysis`; :mod:`actlab.lab.report` renders it (Markdown, HTML, figures, CSV) and writes
:meth:`Analysis.to_dict` as JSON, so every number a report shows is in that JSON and can be
recomputed from the database.

Runs are grouped by setting (everything but the activation, the seed and the learning rate:
data, model, optimiser, epochs); each group is one comparison with its own tables. Within a group:

* **learning rate per activation** — when the runs of a group span several learning rates
  (``actlab compare --lr 0.003,0.01,0.03``), each variant is compared at its own rate, chosen on
  the validation split, never the test set: the rate with the lowest mean final validation error
  over the seeds (a diverged run counts as 100 % error, a failed run is left out; a tie goes to the
  smaller rate). Without a validation split the final training error decides (said in the
  report). Every table below then reads, per variant, the runs at its chosen rate. One rate:
  nothing is chosen and the report is as before.
* **Table 8.2** — per variant, over the runs that finished (status ``done``): the final test error
  (after the last epoch), the test error at the best validation epoch (early stopping chosen on
  the validation split) and the best test error (the lowest over the epochs: optimistic, it peeks
  at the test set) as mean, std and 95% t interval (clipped to [0, 100] %); the interquartile mean
  of the final test error with a stratified bootstrap interval (:func:`actlab.lab.stats.iqm_interval`).
  Diverged and failed runs are counted, not averaged.
* **paired differences vs the baseline** (ReLU where it ran, else the first variant): for each
  variant, the seeds where both finished; mean difference (variant − baseline) with its 95%
  interval, the two-sided paired t-test, Holm's correction across the variants, Cohen's d_z, the
  probability of improvement P(variant's error < baseline's) with a bootstrap interval, and the
  smallest difference the seeds could detect at 80 % power. The verdict is read at α = 0.05 from
  the Holm-adjusted p.
* **Table 8.1** — PReLU variants: the learned slope per layer after the last epoch (the mean over
  channels for channel-wise PReLU), mean and std over seeds.
* **speed** — epochs until the training error, averaged over the last epoch's worth of batches,
  first falls to the target error; seconds = those epochs × the run's robust time per epoch (the
  median training seconds of its epochs after the first, which carries compilation and warm-up);
  the ratio to tanh = tanh's mean / the variant's mean (> 1: faster than tanh); a variant whose
  per-epoch times vary by more than :data:`NOISY_CV` (coefficient of variation) is flagged.
* **layers** — per layer, at the first and last epoch: dead and saturated fractions, gradient
  norms (see :mod:`actlab.lab.monitors` for the definitions).

Why one module of ~760 lines: every section of the report is computed from the same grouping of
runs (setting → variant → learning rate → seeds) and returns the typed results defined here;
split, each part would import the others' types and re-derive the grouping.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import time
from collections import OrderedDict, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from .. import registry
from . import stats
from ..reference import SATURATED_UNIT_FRACTION, SATURATION_RATIO
from .stats import Estimate, Summary
from .store import Store

__all__ = ["analyse", "auto_target", "Analysis", "Group", "Run", "VariantStats", "Paired", "PairedResult",
           "LrPoint", "LrChoice", "Slopes", "SlopeLayer", "Speed", "SpeedRow", "LayerRow", "ALPHA", "CONFIDENCE",
           "POWER", "NOISY_CV", "ERROR_BOUNDS", "DEFINITIONS", "RANDOMNESS", "SELECTION", "WHICH"]

ALPHA = 0.05
CONFIDENCE = 0.95
POWER = 0.8
#: a variant whose per-epoch training times (epochs after the first) have a larger coefficient of
#: variation than this is flagged as noisy in the speed table
NOISY_CV = 0.25
#: an error rate lives in [0, 1]: intervals are clipped inside
ERROR_BOUNDS = (0.0, 1.0)
#: the three test errors of Table 8.2: after the last epoch, at the best validation epoch, lowest
WHICH = ("final", "selected", "best")
DEFINITIONS = {
    "final test error": "test error after the last epoch",
    "test error at best val": "test error after the epoch with the lowest validation error (the earliest on a "
                              "tie): early stopping, chosen without looking at the test set",
    "best test error": "lowest test error over the epochs (optimistic: chosen on the test set)",
    "paired test": f"{stats.PAIRED_TEST}; pairs share a seed (same data order and initial weights); "
                   f"Holm's correction across the variants compared with the baseline; alpha = {ALPHA}",
    "confidence interval": f"{CONFIDENCE:.0%} two-sided, t distribution with n - 1 degrees of freedom, clipped to "
                           "[0, 100] % for error rates",
    "IQM": "interquartile mean over the seeds (the mean of the middle 50 %; with fewer than 4 seeds the mean), "
           f"with a {CONFIDENCE:.0%} stratified percentile-bootstrap interval (Agarwal et al. 2021, rliable's method)",
    "d_z": "Cohen's d_z, the paired effect size: mean difference / SD of the differences over the seeds",
    "P(better)": "probability of improvement: the chance that a run of the variant has a lower error than a run of "
                 "the baseline, P(X < Y) + P(X = Y)/2 over all pairs of runs, with a bootstrap interval; 0.5: neither",
    "detectable": f"the smallest true mean difference the paired t-test (alpha = {ALPHA}, before Holm's correction) "
                  f"detects with {POWER:.0%} power at these seeds, from the observed SD of the differences",
    "learning rate per activation": "with several learning rates, each activation's is the one with the lowest mean "
                                    "final validation error over the seeds (diverged runs count as 100 % error, "
                                    "failed runs are left out; a tie goes to the smaller rate); the test set is "
                                    "never used to choose",
    "training error": "running error over the epoch's training batches, in training mode",
    "time to target": "first point where the training error, averaged over the last epoch's worth of batches, "
                      "is at or below the target; seconds = those epochs x the run's median training seconds per "
                      "epoch over the epochs after the first (training steps only: no evaluation, no monitors)",
    "noisy timing": f"the variant's per-epoch training times (epochs after the first, all seeds) have a coefficient "
                    f"of variation above {NOISY_CV:.0%}: another load on the machine, or warm-up beyond epoch 1",
    "unit": "a channel of a feature map or a feature of a fully-connected layer",
    "dead": "rectifiers only: a unit whose input was never > 0 over the epoch's training batches",
    "saturated": f"a unit with |f'(x)| < {SATURATION_RATIO:g} x max|f'| for at least {SATURATED_UNIT_FRACTION:.0%} "
                 "of its inputs in the epoch (f' from the activation's own formula)",
    "gradient norm": "L2 norm of the loss gradient w.r.t. the weight of the layer the activation follows, "
                     "mean over the epoch's steps",
    "PReLU slope": "learned a after the epoch; channel-wise: the mean over channels",
}
#: what a seed varies (see actlab.lab.train and actlab.lab.executor)
RANDOMNESS = ("A seed varies the order of the training data, the initial weights of every layer "
              "(torch.manual_seed before the model is built; the layers the variants share start equal) and "
              "RReLU's sampled slopes. It does not vary the data split: the training subset, the validation "
              "split and the test set are fixed (data seed 0) for every run, so the intervals cover training "
              "randomness only, not the choice of data.")
#: how the reported epoch is chosen
SELECTION = ("The verdict, the paired tests and the IQM read the final test error (after the last epoch, no "
             "selection). \"At best val\" reports the test error of the epoch with the lowest validation error "
             "(early stopping without the test set); \"best\" the lowest test error over the epochs (optimistic).")


# --- the typed results ----------------------------------------------------------------------


@dataclass
class Run:
    """One run as the report shows it."""

    key: str
    variant: str
    act: str
    seed: int
    lr: float
    status: str
    error: str | None
    epochs_done: int
    final_test_error: float | None
    best_test_error: float | None
    best_epoch: int | None
    selected_test_error: float | None
    selected_epoch: int | None
    final_val_error: float | None
    final_train_error: float | None
    final_train_loss: float | None
    train_seconds: float | None
    epoch_seconds: float | None  # median training seconds of the epochs after the first (the first alone)
    wall_seconds: float | None
    device: str | None
    prelu_init: float | None


@dataclass
class VariantStats:
    """One row of Table 8.2: a variant at its chosen learning rate."""

    variant: str
    act: str
    lr: float
    runs: int
    done: int
    diverged: int
    failed: int
    seeds: list[int]
    final: Summary
    selected: Summary
    best: Summary
    iqm: Estimate  # of the final test error


@dataclass
class PairedResult:
    """One paired comparison (variant − baseline) of one of the three test errors."""

    n: int
    mean_diff: float
    std_diff: float
    ci_low: float
    ci_high: float
    t: float
    p: float
    p_holm: float = math.nan
    verdict: str = ""
    d_z: float = math.nan
    p_better: Estimate = field(default_factory=lambda: Estimate(0, math.nan, math.nan, math.nan))
    detectable: float = math.nan


@dataclass
class Paired:
    variant: str
    baseline: str
    seeds: list[int]
    final: PairedResult
    selected: PairedResult
    best: PairedResult

    def of(self, which: str) -> PairedResult:
        return {"final": self.final, "selected": self.selected, "best": self.best}[which]


@dataclass
class LrPoint:
    """A variant at one learning rate: the validation error that chooses the rate, and the test error."""

    variant: str
    lr: float
    runs: int
    done: int
    diverged: int
    score: Summary  # the selection score per seed: final validation error (diverged: 1.0)
    final_val: Summary  # over the finished runs only (the figure)
    final_test: Summary
    chosen: bool


@dataclass
class LrChoice:
    lrs: list[float]
    chosen: dict[str, float]  # variant → its learning rate
    points: list[LrPoint]
    criterion: str  # "validation error" or "training error" (no validation split)

    @property
    def grid(self) -> bool:
        return len(self.lrs) > 1


@dataclass
class SlopeLayer:
    layer_index: int
    layer: str
    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    channel_std: float | None


@dataclass
class Slopes:
    variant: str
    setting: str  # shared | channel-wise
    layers: list[SlopeLayer]
    history: dict[str, list[dict[str, float]]]  # layer index → [{epoch, mean}]


@dataclass
class SpeedRow:
    variant: str
    runs: int
    reached: int
    per_seed: dict[str, dict[str, float] | None]  # measured: {epochs, seconds (cumulative training)}
    epochs: Summary
    seconds: Summary  # epochs to target × the run's robust seconds per epoch
    epoch_seconds: Summary  # the runs' robust seconds per epoch
    epoch_cv: float  # coefficient of variation of all per-epoch times after the first
    noisy: bool
    epochs_vs_tanh: float | None = None
    seconds_vs_tanh: float | None = None


@dataclass
class Speed:
    target_error: float
    auto: bool
    reference: str | None
    rows: list[SpeedRow]


@dataclass
class LayerRow:
    variant: str
    layer_index: int
    layer: str
    units: int
    dead_first: float | None
    dead_last: float | None
    saturated_first: float | None
    saturated_last: float | None
    grad_norm_first: float | None
    grad_norm_last: float | None


@dataclass
class Group:
    """One comparison: a setting, its variants (each at its chosen learning rate), every table."""

    group: str
    setting: dict[str, Any]
    data: dict[str, Any]
    variants: list[str]
    baseline: str
    seeds: list[int]
    lr: LrChoice
    runs: list[Run]  # every run of the group, all learning rates
    table: list[VariantStats]
    paired: list[Paired]
    summary: str
    power: str
    slopes: list[Slopes]
    speed: Speed
    curves: dict[str, list[dict[str, Any]]]
    layers: list[LayerRow]

    def chosen_runs(self, variant: str) -> list[Run]:
        """The runs of ``variant`` at its chosen learning rate, by seed."""
        lr = self.lr.chosen.get(variant)
        return [r for r in self.runs if r.variant == variant and r.lr == lr]


@dataclass
class Analysis:
    generated: str
    database: str
    groups: list[Group]
    invocations: list[dict[str, Any]]
    environment: dict[str, list[Any]]
    definitions: dict[str, str]
    alpha: float
    confidence: float
    randomness: str
    selection: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (NaN stays NaN: the writer maps it to null)."""
        return asdict(self)


# --- helpers ----------------------------------------------------------------------------------


def _nan(v: Any) -> float:
    return math.nan if v is None else float(v)


def _finite(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _summary(values: list[float], bounds: tuple[float, float] | None = None) -> Summary:
    return stats.summarize(values, CONFIDENCE, bounds)


def _err_summary(values: list[float]) -> Summary:
    return _summary(values, ERROR_BOUNDS)


def _variant_order(runs: list[dict[str, Any]]) -> list[str]:
    order = {name: i for i, name in enumerate(registry.names())}
    firsts: dict[str, tuple[int, str]] = {}
    for r in runs:
        firsts.setdefault(r["variant"], (order.get(r["act"], len(order)), r["variant"]))
    return sorted(firsts, key=lambda v: firsts[v])


def setting_key(spec: dict[str, Any]) -> str:
    """The comparison a run belongs to: a hash of its spec without activation, seed and learning rate."""
    d = {k: v for k, v in spec.items() if k not in ("act", "hparams", "variant", "seed", "lr")}
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _time_to_target(steps: list[dict[str, Any]], target: float) -> tuple[float, float] | None:
    """(epochs, seconds) at which the training error, averaged over the last epoch's worth of
    logged windows, first reaches ``target``; None if it never does (or the run diverged)."""
    per_epoch = max(1, sum(1 for s in steps if s["epoch"] <= 1 + 1e-9))
    errors: list[float] = []
    for s in steps:
        if s["error"] is None:
            return None
        errors.append(s["error"])
        recent = errors[-per_epoch:]
        if sum(recent) / len(recent) <= target:
            return float(s["epoch"]), _nan(s["train_seconds"])
    return None


def epoch_times(eps: list[dict[str, Any]]) -> list[float]:
    """A run's per-epoch training seconds after the first epoch (which carries compilation and
    warm-up); the first alone when the run has one epoch."""
    times = [float(e["seconds"]) for e in eps if _finite(e.get("seconds"))]
    return times[1:] if len(times) > 1 else times


def auto_target(final_train_errors: dict[str, list[float]], num_classes: int | None) -> float:
    """The default target training error for the speed table, chosen so that it discriminates.

    The smallest of 1, 2, 5, 10, 20, 25, 50% that is at or above the mean final training error
    of every variant that learned (mean final training error below half the chance error
    1 − 1/classes); 25% (Krizhevsky et al.'s CIFAR-10 target) when none learned.
    """
    chance = 1 - 1 / num_classes if num_classes else 0.9
    means = [sum(v) / len(v) for v in final_train_errors.values() if v]
    learned = [m for m in means if m < chance / 2]
    if not learned:
        return 0.25
    worst = max(learned)
    return next((t for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5) if worst <= t), 0.5)


# --- the analysis ---------------------------------------------------------------------------


def analyse(store: Store, *, target_error: float | None = None, baseline: str = "relu",
            resamples: int | None = None) -> Analysis:
    """Everything the report shows, from ``store`` alone (see the module docstring).

    ``target_error``: for the speed table; default: the latest ``actlab compare``'s
    ``--target-error`` recorded in the store, else :func:`auto_target`. ``resamples``: of the
    bootstrap intervals (default :data:`actlab.lab.stats.BOOTSTRAP_RESAMPLES`).
    """
    invocations = store.invocations()
    if target_error is None:
        target_error = next((i["settings"].get("target_error") for i in reversed(invocations)
                             if i["settings"].get("target_error") is not None), None)
    runs = store.runs()
    epochs, layers, steps = defaultdict(list), defaultdict(list), defaultdict(list)
    for row in store.epochs():
        epochs[row["run_key"]].append(row)
    for row in store.layers():
        layers[row["run_key"]].append(row)
    for row in store.steps():
        steps[row["run_key"]].append(row)
    by_group: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
    for r in runs:
        by_group.setdefault(setting_key(r["spec"]), []).append(r)
    groups = [_group(g, rs, epochs, layers, steps, target_error, baseline, resamples)
              for g, rs in by_group.items()]
    return Analysis(
        generated=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), database=str(store.path), groups=groups,
        invocations=[{k: i[k] for k in ("id", "started", "argv", "settings")} for i in invocations],
        environment=_environment(runs, invocations), definitions=dict(DEFINITIONS), alpha=ALPHA,
        confidence=CONFIDENCE, randomness=RANDOMNESS, selection=SELECTION)


def _environment(runs: list[dict[str, Any]], invocations: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Every distinct value of every environment field over the runs and invocations."""
    seen: OrderedDict[str, list[Any]] = OrderedDict()
    for env in [i["environment"] for i in invocations] + [r["environment"] for r in runs]:
        for k, v in env.items():
            if k == "data":
                continue
            vals = seen.setdefault(k, [])
            if v not in vals:
                vals.append(v)
    return dict(seen)


def _run_row(r: dict[str, Any], eps: list[dict[str, Any]]) -> Run:
    done = bool(r["status"] == "done" and eps)
    tests = [e["test_error"] for e in eps if e["test_error"] is not None]
    best = min(range(len(eps)), key=lambda i: eps[i]["test_error"]) if done and tests else None
    vals = [i for i, e in enumerate(eps) if _finite(e["val_error"])]
    chosen = min(vals, key=lambda i: eps[i]["val_error"]) if done and vals else None
    times = epoch_times(eps)
    spec = r["spec"]
    last = eps[-1] if done else {}
    return Run(
        key=r["key"], variant=r["variant"], act=r["act"], seed=r["seed"], lr=float(spec.get("lr", math.nan)),
        status=r["status"], error=r["error"], epochs_done=r["epochs_done"],
        final_test_error=last.get("test_error"),
        best_test_error=eps[best]["test_error"] if best is not None else None,
        best_epoch=eps[best]["epoch"] if best is not None else None,
        selected_test_error=eps[chosen]["test_error"] if chosen is not None else None,
        selected_epoch=eps[chosen]["epoch"] if chosen is not None else None,
        final_val_error=last.get("val_error") if _finite(last.get("val_error")) else None,
        final_train_error=last.get("train_error"), final_train_loss=last.get("train_loss"),
        train_seconds=r["train_seconds"], epoch_seconds=statistics.median(times) if times else None,
        wall_seconds=r["wall_seconds"], device=r["device"],
        prelu_init=(spec.get("hparams") or {}).get("init"))  # only PReLU's entry has an init


def _choose_lr(variants: list[str], rows: list[Run]) -> LrChoice:
    """Each variant's learning rate, from the validation split (see the module docstring)."""
    lrs = sorted({r.lr for r in rows})
    has_val = any(r.final_val_error is not None for r in rows if r.status == "done")
    criterion = "validation error" if has_val else "training error"
    points, chosen = [], {}
    for v in variants:
        best: tuple[float, float] | None = None
        mine = []
        for lr in lrs:
            rs = [r for r in rows if r.variant == v and r.lr == lr]
            if not rs:
                continue
            done = [r for r in rs if r.status == "done"]
            score = [(r.final_val_error if has_val else r.final_train_error) for r in done]
            score = [s for s in score if s is not None] + [1.0 for r in rs if r.status == "diverged"]
            s = _err_summary(score)
            mine.append(LrPoint(v, lr, len(rs), len(done), sum(r.status == "diverged" for r in rs), s,
                                _err_summary([r.final_val_error for r in done if r.final_val_error is not None]),
                                _err_summary([r.final_test_error for r in done if r.final_test_error is not None]),
                                False))
            # lowest mean score; a tie (to rounding) keeps the smaller rate, met first
            if s.n and (best is None or s.mean < best[0] - 1e-12):
                best = (s.mean, lr)
        chosen[v] = best[1] if best is not None else (mine[0].lr if mine else lrs[0])
        for p in mine:
            p.chosen = p.lr == chosen[v]
        points += mine
    return LrChoice(lrs, chosen, points, criterion)


def _group(group: str, runs: list[dict[str, Any]], epochs: dict[str, list[dict[str, Any]]],
           layers: dict[str, list[dict[str, Any]]], steps: dict[str, list[dict[str, Any]]],
           target_error: float | None, baseline_act: str, resamples: int | None) -> Group:
    spec = runs[0]["spec"]
    setting = {k: v for k, v in spec.items() if k not in ("act", "hparams", "variant", "seed", "lr")}
    data = runs[0]["environment"].get("data", {})
    variants = _variant_order(runs)
    rows = sorted((_run_row(r, epochs[r["key"]]) for r in runs), key=lambda x: (x.lr, x.seed))
    lr = _choose_lr(variants, rows)
    by_variant: dict[str, list[Run]] = {v: [x for x in rows if x.variant == v and x.lr == lr.chosen[v]]
                                        for v in variants}
    act_of = {r["variant"]: r["act"] for r in runs}
    baseline = next((v for v in variants if v == baseline_act), None) or next(
        (v for v in variants if act_of[v] == baseline_act), variants[0])
    table = [_variant_stats(v, act_of[v], lr.chosen[v], by_variant[v], resamples) for v in variants]
    paired = _paired(variants, baseline, by_variant, resamples)
    finals = {v: [x.final_train_error for x in by_variant[v] if x.status == "done"] for v in variants}
    target = target_error if target_error is not None else auto_target(finals, data.get("classes"))
    return Group(
        group=group, setting=setting, data=data, variants=variants, baseline=baseline,
        seeds=sorted({r["seed"] for r in runs}), lr=lr, runs=rows, table=table, paired=paired,
        summary=_overall(paired, baseline, by_variant, lr), power=_power_line(paired),
        slopes=_slopes(variants, act_of, by_variant, layers),
        speed=_speed(variants, act_of, by_variant, steps, epochs, target, target_error is None),
        curves=_curves(variants, by_variant, epochs), layers=_layers(variants, by_variant, layers))


def _variant_stats(v: str, act: str, lr: float, rs: list[Run], resamples: int | None) -> VariantStats:
    done = [x for x in rs if x.status == "done"]
    finals = [x.final_test_error for x in done if x.final_test_error is not None]
    return VariantStats(
        variant=v, act=act, lr=lr, runs=len(rs), done=len(done),
        diverged=sum(x.status == "diverged" for x in rs), failed=sum(x.status == "failed" for x in rs),
        seeds=[x.seed for x in done], final=_err_summary(finals),
        selected=_err_summary([x.selected_test_error for x in done if x.selected_test_error is not None]),
        best=_err_summary([x.best_test_error for x in done if x.best_test_error is not None]),
        iqm=stats.iqm_interval(finals, confidence=CONFIDENCE, resamples=resamples, bounds=ERROR_BOUNDS))


def _paired(variants: list[str], baseline: str, by_variant: dict[str, list[Run]],
            resamples: int | None) -> list[Paired]:
    out = []
    base = {x.seed: x for x in by_variant[baseline] if x.status == "done"}
    for v in variants:
        if v == baseline:
            continue
        pairs = [(x, base[x.seed]) for x in by_variant[v] if x.status == "done" and x.seed in base]
        results = {}
        for which in WHICH:
            col = f"{which}_test_error"
            ok = [(getattr(a, col), getattr(b, col)) for a, b in pairs
                  if getattr(a, col) is not None and getattr(b, col) is not None]
            xs, ys = [a for a, _ in ok], [b for _, b in ok]
            t = stats.paired_test(xs, ys, CONFIDENCE)
            results[which] = PairedResult(
                t.n, t.mean_diff, t.std_diff, t.ci_low, t.ci_high, t.t, t.p, d_z=t.d_z,
                p_better=stats.prob_improvement(xs, ys, confidence=CONFIDENCE, resamples=resamples),
                detectable=stats.min_detectable_difference(t.std_diff, t.n, power=POWER, alpha=ALPHA))
        out.append(Paired(v, baseline, [a.seed for a, _ in pairs], **results))
    for which in WHICH:
        for entry, p in zip(out, stats.holm([e.of(which).p for e in out])):
            entry.of(which).p_holm = p
            entry.of(which).verdict = _verdict(entry, which)
    return out


def _pp(x: float) -> str:
    """Signed percentage points; what rounds to zero prints as 0.00 (no "-0.00")."""
    s = f"{100 * x:+.2f}"
    return f"{'0.00' if float(s) == 0 else s} pp"


def _verdict(entry: Paired, which: str) -> str:
    t, v, b = entry.of(which), entry.variant, entry.baseline
    if t.n < 2:
        return f"not tested: {t.n} paired seed(s); a paired test needs at least 2"
    if math.isnan(t.p):
        return f"not testable: the difference is the same ({_pp(t.mean_diff)}) on every seed"
    where = f"(mean difference {_pp(t.mean_diff)}, 95% CI {_pp(t.ci_low)} to {_pp(t.ci_high)}, " \
            f"p = {t.p:.3g}, Holm p = {t.p_holm:.3g}, n = {t.n})"
    if t.p_holm < ALPHA:
        return f"{v} has {'lower' if t.mean_diff < 0 else 'higher'} error than {b} {where}"
    return f"no significant difference from {b} {where}"


def _overall(paired: list[Paired], baseline: str, by_variant: dict[str, list[Run]], lr: LrChoice) -> str:
    """The verdict in words, on the final test error."""
    tested = [e for e in paired if e.final.n >= 2 and not math.isnan(e.final.p)]
    better = [e.variant for e in tested if e.final.p_holm < ALPHA and e.final.mean_diff < 0]
    worse = [e.variant for e in tested if e.final.p_holm < ALPHA and e.final.mean_diff > 0]
    ns = sorted({e.final.n for e in tested})
    parts = []
    if lr.grid:
        parts.append(f"Each activation at its own learning rate, chosen on the {lr.criterion} "
                     f"({', '.join(f'{v} {lr.chosen[v]:g}' for v in by_variant)}).")
    if not tested:
        parts.append(f"No variant could be tested against {baseline} (a paired test needs at least 2 seeds "
                     f"where both runs finished).")
    elif not better and not worse:
        parts.append(f"No variant differs significantly from {baseline} in final test error "
                     f"(paired t-test, Holm-corrected, alpha = {ALPHA}, n = {'/'.join(map(str, ns))} seeds). "
                     f"\"No significant difference\" is an answer, though with few seeds only large differences "
                     f"can be detected.")
    else:
        if better:
            parts.append(f"Significantly lower final test error than {baseline}: {', '.join(better)}.")
        if worse:
            parts.append(f"Significantly higher final test error than {baseline}: {', '.join(worse)}.")
        rest = [e.variant for e in tested if e.variant not in better + worse]
        if rest:
            parts.append(f"No significant difference: {', '.join(rest)}.")
        parts.append(f"(paired t-test over seeds, Holm-corrected, alpha = {ALPHA}, n = {'/'.join(map(str, ns))}.)")
    for v, rs in by_variant.items():
        k = sum(x.status != "done" for x in rs)
        if k:
            states = sorted({x.status for x in rs if x.status != "done"})
            parts.append(f"{v}: {k} of {len(rs)} runs {' or '.join(states)} (left out of the statistics).")
    return " ".join(parts)


def _power_line(paired: list[Paired]) -> str:
    """What "no significant difference" can mean at these seeds."""
    det = [(e.variant, e.final.detectable, e.final.n) for e in paired if _finite(e.final.detectable)]
    if not det:
        return ("Power: not computable (a paired comparison needs at least 2 seeds and differences that vary "
                "between seeds).")
    values = sorted(d for _, d, _ in det)
    ns = sorted({n for _, _, n in det})
    mid = statistics.median(values)
    return (f"Power: with n = {'/'.join(map(str, ns))} paired seeds, the paired t-test (alpha = {ALPHA}, before "
            f"Holm's correction) detects with {POWER:.0%} power only true differences of at least "
            f"{100 * values[0]:.2f} to {100 * values[-1]:.2f} pp (median {100 * mid:.2f} pp) in final test error, "
            f"from the observed spread of the differences; a smaller difference can hide behind "
            f"\"no significant difference\".")


def _last_epoch_rows(rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    last = max((r["epoch"] for r in rows), default=None)
    return {r["layer_index"]: r for r in rows if r["epoch"] == last}


def _slopes(variants: list[str], act_of: dict[str, str], by_variant: dict[str, list[Run]],
            layers: dict[str, list[dict[str, Any]]]) -> list[Slopes]:
    out = []
    for v in variants:
        # slopes tables: activations with learned per-channel values (PReLU); not an own model's
        if act_of[v] not in registry.names(registry.EVERY) or registry.entry(act_of[v]).per_channel is None:
            continue
        done = [x for x in by_variant[v] if x.status == "done"]
        per_layer: OrderedDict[int, dict[str, Any]] = OrderedDict()
        over_time: dict[tuple[int, int], list[float]] = defaultdict(list)
        channelwise = False
        for x in done:
            for row in layers[x.key]:
                if row["slope_mean"] is not None:
                    over_time[row["layer_index"], row["epoch"]].append(row["slope_mean"])
            for i, row in _last_epoch_rows(layers[x.key]).items():
                if row["slope_mean"] is None:
                    continue
                channelwise |= len(row["slopes"] or []) > 1
                entry = per_layer.setdefault(i, {"layer": row["layer"], "values": [], "channel_std": []})
                entry["values"].append(row["slope_mean"])
                ch = row["slopes"] or []
                if len(ch) > 1:
                    entry["channel_std"].append(statistics.stdev(ch))
        rows = []
        for i, e in per_layer.items():
            s = _summary(e["values"])
            rows.append(SlopeLayer(i, e["layer"], s.n, s.mean, s.std, s.ci_low, s.ci_high,
                                   sum(e["channel_std"]) / len(e["channel_std"]) if e["channel_std"] else None))
        init = next((float(x.prelu_init) for x in done if x.prelu_init is not None), None)
        history: defaultdict[int, list[dict[str, float]]] = defaultdict(list)
        for (i, ep), vals in sorted(over_time.items()):
            if not history[i] and init is not None:
                history[i].append({"epoch": 0, "mean": init})  # the initial slope, before training
            history[i].append({"epoch": ep, "mean": sum(vals) / len(vals)})
        out.append(Slopes(v, "channel-wise" if channelwise else "shared", rows,
                          {str(i): h for i, h in history.items()}))
    return out


def _speed(variants: list[str], act_of: dict[str, str], by_variant: dict[str, list[Run]],
           steps: dict[str, list[dict[str, Any]]], epochs: dict[str, list[dict[str, Any]]], target: float,
           auto: bool) -> Speed:
    rows = []
    for v in variants:
        rs = [x for x in by_variant[v] if x.status in ("done", "diverged")]
        hits = {x.seed: _time_to_target(steps[x.key], target) for x in rs}
        reached = [(x, hits[x.seed]) for x in rs if hits[x.seed] is not None]
        robust = [h[0] * x.epoch_seconds for x, h in reached if x.epoch_seconds is not None]  # type: ignore[index]
        pooled = [t for x in rs for t in epoch_times(epochs[x.key])]
        cv = statistics.stdev(pooled) / statistics.mean(pooled) if len(pooled) > 1 and statistics.mean(pooled) > 0 \
            else math.nan
        rows.append(SpeedRow(
            variant=v, runs=len(rs), reached=len(reached),
            per_seed={str(s): (None if h is None else {"epochs": h[0], "seconds": h[1]}) for s, h in hits.items()},
            epochs=_summary([h[0] for _, h in reached]), seconds=_summary(robust),  # type: ignore[index]
            epoch_seconds=_summary([x.epoch_seconds for x in rs if x.epoch_seconds is not None]),
            epoch_cv=cv, noisy=bool(_finite(cv) and cv > NOISY_CV)))
    tanh = next((r for r in rows if act_of[r.variant] == "tanh" and r.variant == "tanh"), None) or next(
        (r for r in rows if act_of[r.variant] == "tanh"), None)
    for r in rows:
        complete = tanh is not None and tanh.runs and r.runs and tanh.reached == tanh.runs and r.reached == r.runs
        for unit in ("epochs", "seconds"):
            mine, ref = getattr(r, unit).mean, getattr(tanh, unit).mean if tanh else math.nan
            ok = complete and _finite(mine) and mine > 0 and _finite(ref)
            setattr(r, f"{unit}_vs_tanh", ref / mine if ok else None)
    return Speed(target, auto, tanh.variant if tanh else None, rows)


def _curves(variants: list[str], by_variant: dict[str, list[Run]],
            epochs: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Per variant and epoch: means over the finished runs (diverged runs up to where they stopped)."""
    out = {}
    cols = ("train_loss", "train_error", "test_error", "test_loss", "val_error", "train_seconds")
    for v in variants:
        per_epoch: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for x in by_variant[v]:
            if x.status == "failed":
                continue
            for e in epochs[x.key]:
                per_epoch[e["epoch"]].append(e)
        out[v] = [{"epoch": ep, "n": len(es), **{c: _mean([e[c] for e in es]) for c in cols}}
                  for ep, es in sorted(per_epoch.items())]
    return out


def _mean(values: list[Any]) -> float | None:
    vals = [float(x) for x in values if x is not None]
    return sum(vals) / len(vals) if vals else None


def _layers(variants: list[str], by_variant: dict[str, list[Run]],
            layers: dict[str, list[dict[str, Any]]]) -> list[LayerRow]:
    """Per variant and layer, at the first and the last epoch: dead and saturated fractions and
    gradient norms, means over the finished runs."""
    out = []
    for v in variants:
        acc: OrderedDict[tuple[int, str], dict[str, list[float]]] = OrderedDict()
        for x in by_variant[v]:
            rows = layers[x.key] if x.status == "done" else []
            if not rows:
                continue
            first, last = min(r["epoch"] for r in rows), max(r["epoch"] for r in rows)
            for r in rows:
                for when, epoch in (("first", first), ("last", last)):
                    if r["epoch"] != epoch:
                        continue
                    a = acc.setdefault((r["layer_index"], r["layer"]), defaultdict(list))
                    a["units"].append(r["units"])
                    for name in ("dead", "saturated"):
                        if r[name] is not None and r["units"]:
                            a[f"{name}_{when}"].append(r[name] / r["units"])
                    if r["grad_norm"] is not None:
                        a[f"grad_norm_{when}"].append(r["grad_norm"])
        for (i, name), a in acc.items():
            out.append(LayerRow(v, i, name, max(a["units"], default=0),
                                **{k: _mean(a.get(k, [])) for k in ("dead_first", "dead_last", "saturated_first",
                                                                     "saturated_last", "grad_norm_first",
                                                                     "grad_norm_last")}))
    return out
