"""One small, purpose-built experiment per claim: the runs it needs and what it reads from them.

An :class:`Experiment` has two halves. :meth:`~Experiment.specs` lists the lab runs
(:class:`~actlab.lab.plan.RunSpec` s: data, model, activation, seed, optimisation) for a
:class:`Settings` (``--quick`` or ``--full``) and the data sets at hand; runs that several claims
need (the same spec) share one key and run once. :meth:`~Experiment.evaluate` reads the
finished runs (the store's rows plus the verify probes, :mod:`actlab.verify.probes`), computes the
measured quantities per seed and hands them to the claim's pure decision rule
(:mod:`actlab.verify.rules`). It returns an :class:`Outcome`: the verdict, the experiment in
words, and the numbers the claim's figure draws.

Why one module of ~550 lines: the ten claims' experiments side by side, each a short plan and
read-out over the same settings (QUICK, FULL) and records, so that a reader compares them at a
glance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np
from scipy import stats as _sps

from ..lab.plan import RunSpec, parse_variants
from . import rules
from .data import Source

__all__ = ["Settings", "QUICK", "FULL", "MODES", "Context", "Outcome", "Experiment", "EXPERIMENTS", "Records",
           "time_to_target", "TARGET_ERROR", "RRELU_MEAN_SLOPE"]

#: claim 4: Krizhevsky et al.'s training-error target
TARGET_ERROR = 0.25
#: RReLU's test slope in PyTorch's form, (1/8 + 1/3) / 2: Leaky ReLU's slope for claim 8
RRELU_MEAN_SLOPE = (1 / 8 + 1 / 3) / 2


@dataclass(frozen=True)
class Settings:
    """The sizes of one mode: seeds, data, widths and epochs of each experiment."""

    name: str
    seeds: int  # most experiments
    seeds_cheap: int  # the experiments on digits (cheap runs: more seeds)
    image_train: int | None  # image (non-builtin) data: training examples kept (None: all)
    image_test: int | None  # ... and test examples
    mnist1d_subset: int | None
    width: float  # the small CNNs' width multiplier
    he14_width: float
    epochs_deep: int  # claims 1-2
    epochs_dead: int  # claims 3, 9
    epochs_speed: dict[str, int]  # claim 4, by data kind
    speed_lrs: tuple[float, ...]
    epochs_he14: int  # claims 5-6
    gap_sizes: tuple[int | None, ...]  # claims 7-8: training-set sizes (None: all of digits)
    gap_steps: int  # claims 7-8: about this many SGD steps at every size
    epochs_winner: dict[str, int]  # claim 10, by data kind
    he14_images: bool = False  # claims 5-6 on the image data set (else digits, where he14 learns quickly)
    dead_lrs: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3)  # ReLU's
    dead_common_lr: float = 0.03  # the others' (and ReLU's for claim 9): from 0.1 up most of them diverge


QUICK = Settings(
    "quick", seeds=3, seeds_cheap=5, image_train=500, image_test=500, mnist1d_subset=2000, width=0.5,
    he14_width=0.125, epochs_deep=2, epochs_dead=3, epochs_speed={"image": 8, "signal": 10, "digits": 4},
    speed_lrs=(0.01, 0.05), epochs_he14=6, gap_sizes=(100, None), gap_steps=200,
    epochs_winner={"image": 6, "signal": 8, "digits": 10})
FULL = Settings(
    "full", seeds=10, seeds_cheap=10, image_train=10000, image_test=None, mnist1d_subset=None, width=1.0,
    he14_width=0.5, epochs_deep=3, epochs_dead=5, epochs_speed={"image": 30, "signal": 30, "digits": 15},
    speed_lrs=(0.003, 0.01, 0.03, 0.1), epochs_he14=30, gap_sizes=(100, 300, None), gap_steps=600,
    epochs_winner={"image": 30, "signal": 30, "digits": 20}, he14_images=True)
MODES = {"quick": QUICK, "full": FULL}


@dataclass(frozen=True)
class Context:
    """What an experiment may use: the mode's settings and the data sets found."""

    settings: Settings
    sources: tuple[Source, ...]
    notes: tuple[str, ...] = ()

    def source(self, label: str) -> Source:
        return next(s for s in self.sources if s.label == label)

    @property
    def digits(self) -> Source:
        return next(s for s in self.sources if s.spec == "digits")

    @property
    def images(self) -> Source | None:
        """The first image data set other than digits (CIFAR-10 by default), or None."""
        return next((s for s in self.sources if s.kind == "image" and s.spec != "digits"), None)


@dataclass
class Record:
    """One finished run as verify reads it."""

    spec: RunSpec
    status: str
    epochs: list[dict[str, Any]]
    layers: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    probes: dict[str, Any]


Records = dict[str, Record]  # by run key


@dataclass
class Outcome:
    """A claim's result: the verdict, the experiment in words, the numbers of its figure."""

    verdict: rules.Verdict
    experiment: dict[str, Any]
    figure: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _spec(act: str, **kw: Any) -> RunSpec:
    v = parse_variants(act)[0]
    return RunSpec(act=v.act, hparams=v.hparams, variant=v.label, **kw)


def _get(records: Records, spec: RunSpec) -> Record | None:
    r = records.get(spec.key)
    return r if r is not None and r.status == "done" else None


def _per_seed(records: Records, specs: list[RunSpec], fn: Callable[[Record], float]) -> list[float]:
    """fn of each spec's run, NaN where it did not finish (keeps seed alignment for pairing)."""
    out = []
    for s in specs:
        r = _get(records, s)
        try:
            out.append(float(fn(r)) if r is not None else math.nan)
        except (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError):
            out.append(math.nan)
    return out


def _status(records: Records, specs: list[RunSpec]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for s in specs:
        r = records.get(s.key)
        k = r.status if r is not None else "missing"
        counts[k] = counts.get(k, 0) + 1
    return counts


def _describe(spec: RunSpec, seeds: int, **more: Any) -> dict[str, Any]:
    d = {"data": spec.data, "subset": spec.subset, "model": spec.model, "width": spec.width, "depth": spec.depth,
         "epochs": spec.epochs, "optimizer": spec.optimizer, "lr": spec.lr, "momentum": spec.momentum,
         "weight_decay": spec.weight_decay, "batch_size": spec.batch_size, "schedule": spec.schedule,
         "init": spec.init, "seeds": f"0..{seeds - 1}"}
    d.update(more)
    return d


def _probe_layers(r: Record) -> list[dict[str, Any]]:
    return r.probes["layers"]


def _abs_mean(r: Record) -> float:
    return float(np.mean([abs(l["mean"]) for l in _probe_layers(r)]))


def _agreement(r: Record) -> float:
    vals = [l["sign_agreement"] for l in _probe_layers(r) if l.get("sign_agreement") is not None
            and math.isfinite(l["sign_agreement"])]
    return float(np.mean(vals))


def _dead(r: Record) -> tuple[int, int]:
    return sum(l["dead"] for l in _probe_layers(r)), sum(l["units"] for l in _probe_layers(r))


def _last(r: Record, key: str) -> float:
    return float(r.epochs[-1][key])


def _layer_rows(r: Record, epoch: int) -> list[dict[str, Any]]:
    return sorted((l for l in r.layers if l["epoch"] == epoch), key=lambda l: l["layer_index"])


def _mean_over(values: list[list[float]]) -> list[float]:
    arr = np.array(values, dtype=float)
    return [float(v) for v in np.nanmean(arr, axis=0)] if arr.size else []


def time_to_target(steps: list[dict[str, Any]], target: float, steps_per_epoch_logged: int) -> tuple[float, float]:
    """(epochs, training seconds) until the training error, averaged over the last epoch's worth
    of logged windows (a trailing mean), first falls to ``target``; (inf, inf) if it never does."""
    errors: list[float] = []
    for s in steps:
        if s.get("error") is None:
            continue
        errors.append(float(s["error"]))
        window = errors[-steps_per_epoch_logged:]
        if sum(window) / len(window) <= target:
            return float(s["epoch"]), float(s["train_seconds"])
    return math.inf, math.inf


class Experiment:
    """Base: ``claims`` it serves; ``specs`` and ``evaluate`` per claim."""

    claims: tuple[int, ...] = ()
    all_data = False  # runs on every data set (else on digits only, see needs_data)

    def needs_data(self, settings: Settings) -> bool:
        """Whether it needs data sets beyond digits under ``settings``."""
        return self.all_data

    def specs(self, ctx: Context) -> list[RunSpec]:
        raise NotImplementedError

    def evaluate(self, claim: int, ctx: Context, records: Records) -> Outcome:
        raise NotImplementedError


# --- claims 1, 2: a deep plain network with sigmoid, tanh and ReLU ------------------------------


class Deep(Experiment):
    claims = (1, 2)
    acts = ("sigmoid", "tanh", "relu")

    def _specs(self, ctx: Context) -> dict[str, list[RunSpec]]:
        st = ctx.settings
        return {a: [_spec(a, data="digits", model="mlp", depth=8, width=1.0, epochs=st.epochs_deep, seed=s)
                    for s in range(st.seeds_cheap)] for a in self.acts}

    def specs(self, ctx: Context) -> list[RunSpec]:
        return [s for v in self._specs(ctx).values() for s in v]

    def evaluate(self, claim: int, ctx: Context, records: Records) -> Outcome:
        by = self._specs(ctx)
        base = by["relu"][0]
        exp = _describe(base, ctx.settings.seeds_cheap, activations=", ".join(self.acts), depth=8)
        if claim == 1:
            g1 = {a: _per_seed(records, by[a], lambda r: _layer_rows(r, 1)[0]["grad_norm"]) for a in self.acts}
            log_ratio = {a: [math.log10(x / y) if x > 0 and y > 0 else math.nan for x, y in zip(g1[a], g1["relu"])]
                         for a in ("sigmoid", "tanh")}
            verdict = rules.claim1(log_ratio)
            per_layer = {a: _mean_over([[l["grad_norm"] for l in _layer_rows(r, 1)]
                                         for s in by[a] if (r := _get(records, s)) is not None]) for a in self.acts}
            names = [l["layer"] for l in _layer_rows(r, 1)] if (r := _get(records, base)) else []
            exp["measured"] = ("per layer, the L2 norm of ∂L/∂W of the layer each activation follows, mean over "
                               "the first epoch's steps (the lab's monitor); first layer = fc1")
            return Outcome(verdict, exp, {"kind": "grad_norms", "layers": names, "values": per_layer},
                           [f"runs: {_status(records, self.specs(ctx))}"])
        mean = {a: _per_seed(records, by[a], _abs_mean) for a in ("sigmoid", "tanh")}
        agree = {a: _per_seed(records, by[a], _agreement) for a in ("sigmoid", "tanh")}
        verdict = rules.claim2(mean["sigmoid"], mean["tanh"], agree["sigmoid"], agree["tanh"])
        layers = {a: _mean_over([[l["mean"] for l in _probe_layers(r)] for s in by[a]
                                 if (r := _get(records, s)) is not None]) for a in ("sigmoid", "tanh")}
        zig = {a: _mean_over([[l.get("sign_agreement") or math.nan for l in _probe_layers(r)] for s in by[a]
                              if (r := _get(records, s)) is not None]) for a in ("sigmoid", "tanh")}
        exp["measured"] = ("after training, over the whole training set: each hidden layer's mean activation; and the "
                           "share of each next-layer weight row's gradient components with the majority sign "
                           "(minibatches of 64; 0.5 = random signs, 1 = all one sign), mean over layers")
        return Outcome(verdict, exp, {"kind": "centring", "mean": layers, "agreement": zig})


# --- claims 3, 9: dead units against the learning rate -----------------------------------------


class Dead(Experiment):
    claims = (3, 9)
    others = ("leaky_relu", "prelu", "rrelu", "elu")

    def _spec(self, ctx: Context, act: str, lr: float, seed: int) -> RunSpec:
        return _spec(act, data="digits", model="mlp", depth=4, width=1.0, epochs=ctx.settings.epochs_dead, lr=lr,
                     seed=seed)

    def specs(self, ctx: Context) -> list[RunSpec]:
        st = ctx.settings
        out = [self._spec(ctx, "relu", lr, s) for lr in st.dead_lrs for s in range(st.seeds_cheap)]
        out += [self._spec(ctx, a, st.dead_common_lr, s) for a in self.others for s in range(st.seeds_cheap)]
        return out

    def evaluate(self, claim: int, ctx: Context, records: Records) -> Outcome:
        st = ctx.settings
        seeds = range(st.seeds_cheap)
        relu = {lr: [self._spec(ctx, "relu", lr, s) for s in seeds] for lr in st.dead_lrs}
        other = {a: [self._spec(ctx, a, st.dead_common_lr, s) for s in seeds] for a in self.others}
        share = lambda r: _dead(r)[0] / _dead(r)[1]  # noqa: E731
        exp = _describe(relu[st.dead_lrs[0]][0], st.seeds_cheap, depth=4,
                        lr=f"ReLU at {', '.join(map(str, st.dead_lrs))}; the others at {st.dead_common_lr}")
        exp["measured"] = ("after training, over the whole training set (eval mode): units whose derivative f'(x) "
                           "is 0 for every input (autograd through the activation), pooled over the 4 hidden layers")

        def pooled(specs: list[RunSpec]) -> tuple[int, int]:
            found = [_dead(r) for s in specs if (r := _get(records, s)) is not None]
            return sum(d for d, _ in found), sum(u for _, u in found)

        notes = [f"runs: {_status(records, self.specs(ctx))}"]
        if claim == 3:
            verdict = rules.claim3(_per_seed(records, relu[st.dead_lrs[0]], share),
                                   _per_seed(records, relu[st.dead_lrs[-1]], share),
                                   {a: pooled(other[a]) for a in self.others})
            fig = {"kind": "dead", "lrs": list(st.dead_lrs),
                   "relu": {str(lr): _per_seed(records, relu[lr], share) for lr in st.dead_lrs},
                   "others": {a: _per_seed(records, other[a], share) for a in self.others},
                   "common_lr": st.dead_common_lr}
            return Outcome(verdict, exp, fig, notes)
        relu_c = relu.get(st.dead_common_lr) or [self._spec(ctx, "relu", st.dead_common_lr, s) for s in seeds]
        verdict = rules.claim9(_per_seed(records, relu_c, _abs_mean), _per_seed(records, other["elu"], _abs_mean),
                               pooled(other["elu"]))
        exp["lr"] = st.dead_common_lr
        exp["measured"] = ("after training, over the whole training set: each hidden layer's mean activation, |.| "
                           "averaged over the layers; dead units as in claim 3")
        fig = {"kind": "means", "acts": {a: _mean_over([[l["mean"] for l in _probe_layers(r)] for s in specs
                                                         if (r := _get(records, s)) is not None])
                                          for a, specs in (("relu", relu_c), ("elu", other["elu"]))}}
        return Outcome(verdict, exp, fig, notes)


# --- claim 4: time to a training-error target, ReLU against tanh, each at its best lr -----------


class Speed(Experiment):
    claims = (4,)
    all_data = True
    acts = ("relu", "tanh")

    def _epochs(self, ctx: Context, src: Source) -> int:
        e = ctx.settings.epochs_speed
        return e["digits"] if src.spec == "digits" else e[src.kind] if src.kind in e else e["image"]

    def _spec(self, ctx: Context, src: Source, act: str, lr: float, seed: int) -> RunSpec:
        st = ctx.settings
        subset = st.mnist1d_subset if src.spec == "mnist1d" else src.subset
        # a small image subset: batches of 16, so that its few epochs still make a few hundred steps
        batch = 16 if src.kind == "image" and src.spec != "digits" else 64
        return _spec(act, data=src.spec, subset=subset, model=src.model, depth=1, width=st.width,
                     epochs=self._epochs(ctx, src), lr=lr, weight_decay=0.0, schedule="constant", batch_size=batch,
                     seed=seed)

    def specs(self, ctx: Context) -> list[RunSpec]:
        st = ctx.settings
        return [self._spec(ctx, src, a, lr, s) for src in ctx.sources for a in self.acts for lr in st.speed_lrs
                for s in range(st.seeds)]

    def evaluate(self, claim: int, ctx: Context, records: Records) -> Outcome:
        from ..lab.train import STEPS_PER_EPOCH_LOGGED

        st = ctx.settings
        per_data, fig = {}, {"kind": "speed", "target": TARGET_ERROR, "data": {}}
        for src in ctx.sources:
            times: dict[str, dict[float, list[tuple[float, float]]]] = {}
            for a in self.acts:
                times[a] = {}
                for lr in st.speed_lrs:
                    vals = []
                    for s in range(st.seeds):
                        r = _get(records, self._spec(ctx, src, a, lr, s))
                        vals.append(time_to_target(r.steps, TARGET_ERROR, STEPS_PER_EPOCH_LOGGED) if r
                                    else (math.nan, math.nan))
                    times[a][lr] = vals
            # each activation at its own best lr: the lowest mean epochs to target (never reached = inf)
            best = {a: min(st.speed_lrs, key=lambda lr: (float(np.mean([e for e, _ in times[a][lr]]))
                                                           if not any(math.isnan(e) for e, _ in times[a][lr])
                                                           else math.inf, lr)) for a in self.acts}
            budget = float(self._epochs(ctx, src))
            ep = rules.claim4([e for e, _ in times["tanh"][best["tanh"]]], [e for e, _ in times["relu"][best["relu"]]],
                              budget=budget)
            # seconds: a run that never reached the target is charged the shortest whole training time
            # of these runs (a bound valid for every one of them)
            total = {a: [r.epochs[-1]["train_seconds"] if (r := _get(records, self._spec(ctx, src, a, best[a], s)))
                         else math.nan for s in range(st.seeds)] for a in self.acts}
            sec_t = [t if math.isfinite(t) or math.isnan(t) else math.inf for _, t in times["tanh"][best["tanh"]]]
            sec_r = [t for _, t in times["relu"][best["relu"]]]
            sec_budget = float(np.nanmin(total["tanh"] + total["relu"])) if any(
                math.isfinite(x) for x in total["tanh"] + total["relu"]) else math.inf
            sec = rules.claim4(sec_t, sec_r, budget=sec_budget)
            ep = replace(ep, quantity=f"{src.label}: epochs to {TARGET_ERROR:.0%} training error, tanh / ReLU")
            per_data[src.label] = rules.with_extra(ep, seconds={"estimate": sec.estimate, "low": sec.low,
                                                                "high": sec.high},
                                                   best_lr=best, times={a: {str(lr): v for lr, v in times[a].items()}
                                                                        for a in self.acts})
            curves = {}
            for a in self.acts:
                rs = [r for s in range(st.seeds) if (r := _get(records, self._spec(ctx, src, a, best[a], s)))]
                curves[a] = {"epoch": [e["epoch"] for e in rs[0].epochs] if rs else [],
                             "error": _mean_over([[e["train_error"] for e in r.epochs] for r in rs])}
            fig["data"][src.label] = {"best_lr": best, "curves": curves}
        # the chapter states the 6× generally ("SGD converges about 6× faster"): every data set counts
        verdict = rules.all_of("time to target, tanh / ReLU, on every data set", list(per_data.values()))
        base = self._spec(ctx, ctx.sources[0], "relu", st.speed_lrs[0], 0)
        exp = _describe(base, st.seeds, data=", ".join(s.label for s in ctx.sources),
                        model="per data set: cnn (images) / cnn1d (mnist1d), one conv per stage",
                        lr=f"each activation at its best of {', '.join(map(str, st.speed_lrs))} (lowest mean epochs)",
                        epochs=", ".join(f"{s.label}: {self._epochs(ctx, s)}" for s in ctx.sources))
        exp["measured"] = (f"epochs (and training seconds) until the training error, a trailing mean over the last "
                           f"epoch's batches, first reaches {TARGET_ERROR:.0%}; ratio tanh / ReLU per seed, "
                           "geometric mean; a run that never reaches it counts as the whole budget (a bound)")
        return Outcome(verdict, exp, fig, [f"runs: {_status(records, self.specs(ctx))}"])


# --- claims 5, 6: He et al.'s 14-layer network, ReLU and PReLU shared / channel-wise --------------


class He14(Experiment):
    claims = (5, 6)
    acts = ("relu", "prelu:shared", "prelu:channelwise")

    def needs_data(self, settings: Settings) -> bool:
        return settings.he14_images

    def _source(self, ctx: Context) -> Source:
        # quick: digits — on a few hundred CIFAR images he14 stays at chance for many epochs
        return (ctx.images if ctx.settings.he14_images else None) or ctx.digits

    def _specs(self, ctx: Context) -> dict[str, list[RunSpec]]:
        st, src = ctx.settings, self._source(ctx)
        return {a: [_spec(a, data=src.spec, subset=src.subset, model="he14", width=st.he14_width,
                          epochs=st.epochs_he14, seed=s) for s in range(st.seeds)] for a in self.acts}

    def specs(self, ctx: Context) -> list[RunSpec]:
        return [s for v in self._specs(ctx).values() for s in v]

    def evaluate(self, claim: int, ctx: Context, records: Records) -> Outcome:
        st, by, src = ctx.settings, self._specs(ctx), self._source(ctx)
        exp = _describe(by["relu"][0], st.seeds, data=src.label, model=f"he14 (width {st.he14_width})",
                        activations="ReLU, PReLU shared, PReLU channel-wise")
        notes = [f"runs: {_status(records, self.specs(ctx))}"]
        if ctx.settings.he14_images and ctx.images is None:
            notes.append("no image data set other than digits: runs on digits")
        if claim == 5:
            def slopes(r: Record) -> list[float]:
                return [l["slope_mean"] for l in _layer_rows(r, r.epochs[-1]["epoch"])]

            def rho(r: Record) -> float:
                s = slopes(r)
                return float(_sps.spearmanr(np.arange(len(s)), s).statistic)

            verdict = rules.claim5(_per_seed(records, by["prelu:shared"], rho),
                                   _per_seed(records, by["prelu:channelwise"], rho))
            names = [l["layer"] for l in _layer_rows(r, r.epochs[-1]["epoch"])] if (
                r := _get(records, by["prelu:shared"][0])) else []
            fig = {"kind": "slopes", "layers": names,
                   "values": {a: _mean_over([slopes(r) for s in by[a] if (r := _get(records, s)) is not None])
                              for a in ("prelu:shared", "prelu:channelwise")}}
            exp["measured"] = ("learned slope a per layer after the last epoch (channel-wise: the layer's mean); "
                               "Spearman's ρ between depth (layer order) and a, per seed")
            return Outcome(verdict, exp, fig, notes)
        err = {a: _per_seed(records, by[a], lambda r: _last(r, "test_error")) for a in self.acts}
        verdict = rules.claim6(err["relu"], err["prelu:shared"], err["prelu:channelwise"])
        exp["measured"] = "test error after the last epoch, per seed; differences paired by seed"
        return Outcome(verdict, exp, {"kind": "errors", "values": err}, notes)


# --- claims 7, 8: the train–test gap as the training set shrinks -----------------------------------


class Gap(Experiment):
    claims = (7, 8)
    acts = ("relu", "prelu:channelwise", f"leaky_relu:negative_slope={RRELU_MEAN_SLOPE!r}", "rrelu")
    full_digits = 1347  # digits' training split (train + val) before the validation split

    def _spec(self, ctx: Context, act: str, size: int | None, seed: int) -> RunSpec:
        st = ctx.settings
        # batches of 16 and about gap_steps steps at every size: a small set gets many epochs, yet
        # not hundreds of evaluations (the lab evaluates after every epoch)
        n = size or self.full_digits
        steps_per_epoch = max(1, math.ceil(0.9 * n / 16))
        epochs = max(1, round(st.gap_steps / steps_per_epoch))
        return _spec(act, data="digits", subset=size, model="cnn", depth=1, width=st.width, epochs=epochs,
                     batch_size=16, seed=seed)

    def specs(self, ctx: Context) -> list[RunSpec]:
        st = ctx.settings
        return [self._spec(ctx, a, n, s) for n in st.gap_sizes for a in self.acts for s in range(st.seeds_cheap)]

    def _gaps(self, ctx: Context, records: Records, act: str, size: int | None) -> list[float]:
        specs = [self._spec(ctx, act, size, s) for s in range(ctx.settings.seeds_cheap)]
        return _per_seed(records, specs, lambda r: r.probes["test_error"] - r.probes["train_error"])

    def evaluate(self, claim: int, ctx: Context, records: Records) -> Outcome:
        st = ctx.settings
        sizes = list(st.gap_sizes)
        label = lambda n: str(n) if n else f"all ({self.full_digits})"  # noqa: E731
        acts = self.acts[:2] if claim == 7 else self.acts[2:]
        gaps = {a: {label(n): self._gaps(ctx, records, a, n) for n in sizes} for a in acts}
        exp = _describe(self._spec(ctx, "relu", sizes[0], 0), st.seeds_cheap,
                        subset=", ".join(label(n) for n in sizes) + " training examples (10% of them for validation)",
                        epochs=f"about {st.gap_steps} SGD steps at every size",
                        activations=", ".join(parse_variants(a)[0].label for a in acts))
        exp["measured"] = ("train–test gap = test error − training error, both of the final model in eval mode "
                           "over the whole split")
        notes = [f"runs: {_status(records, self.specs(ctx))}"]
        if claim == 7:
            relu, prelu = gaps[acts[0]], gaps[acts[1]]
            excess = {k: [p - r for p, r in zip(prelu[k], relu[k])] for k in relu}
            verdict = rules.claim7(excess[label(sizes[0])], excess[label(sizes[-1])])
        else:
            small = label(sizes[0])
            verdict = rules.claim8(gaps["rrelu"][small], gaps[acts[0]][small])
            verdict = replace(verdict, note=verdict.note + f" (on the smallest training set, {small} examples)")
        fig = {"kind": "gaps", "sizes": [label(n) for n in sizes],
               "values": {parse_variants(a)[0].label: v for a, v in gaps.items()}}
        return Outcome(verdict, exp, fig, notes)


# --- claim 10: no consistent winner among Leaky ReLU, PReLU, RReLU and ELU ---------------------------


class Winner(Experiment):
    claims = (10,)
    all_data = True
    acts = ("leaky_relu", "prelu", "rrelu", "elu")

    def _epochs(self, ctx: Context, src: Source) -> int:
        e = ctx.settings.epochs_winner
        return e["digits"] if src.spec == "digits" else e.get(src.kind, e["image"])

    def _spec(self, ctx: Context, src: Source, act: str, seed: int) -> RunSpec:
        st = ctx.settings
        subset = st.mnist1d_subset if src.spec == "mnist1d" else src.subset
        return _spec(act, data=src.spec, subset=subset, model=src.model, width=st.width,
                     epochs=self._epochs(ctx, src), seed=seed)

    def specs(self, ctx: Context) -> list[RunSpec]:
        return [self._spec(ctx, src, a, s) for src in ctx.sources for a in self.acts for s in range(ctx.settings.seeds)]

    def evaluate(self, claim: int, ctx: Context, records: Records) -> Outcome:
        st = ctx.settings
        errors = {src.label: {a: _per_seed(records, [self._spec(ctx, src, a, s) for s in range(st.seeds)],
                                           lambda r: _last(r, "test_error")) for a in self.acts}
                  for src in ctx.sources}
        verdict = rules.claim10(errors)
        ranks = {}
        for d, by_act in errors.items():
            means = {a: float(np.nanmean(v)) if any(math.isfinite(x) for x in v) else math.nan
                     for a, v in by_act.items()}
            order = _sps.rankdata([means[a] for a in self.acts])
            ranks[d] = {a: float(r) for a, r in zip(self.acts, order)}
        verdict = rules.with_extra(verdict, ranks=ranks)
        base = self._spec(ctx, ctx.sources[0], "elu", 0)
        exp = _describe(base, st.seeds, data=", ".join(s.label for s in ctx.sources),
                        model="per data set: cnn (images) / cnn1d (mnist1d), two convs per stage",
                        epochs=", ".join(f"{s.label}: {self._epochs(ctx, s)}" for s in ctx.sources),
                        activations=", ".join(self.acts))
        exp["measured"] = "test error after the last epoch per seed; every pair compared, paired by seed, per data set"
        return Outcome(verdict, exp, {"kind": "winner", "errors": errors, "ranks": ranks},
                       [f"runs: {_status(records, self.specs(ctx))}"])


EXPERIMENTS: dict[int, Experiment] = {}
for _e in (Deep(), Dead(), Speed(), He14(), Gap(), Winner()):
    for _c in _e.claims:
        EXPERIMENTS[_c] = _e
