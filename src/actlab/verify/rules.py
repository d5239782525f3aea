"""Decision rules: measured results → **holds**, **does not hold** or **inconclusive**.

Every rule is a pure function of numbers (per-seed measurements, counts), so a test can feed it
synthetic evidence and watch the verdict turn. The building block is :func:`interval`: a claim
that says a quantity lies beyond a threshold *holds* when the whole confidence interval lies
beyond it, *does not hold* when the whole interval lies on the other side, and is
*inconclusive* when the interval straddles the threshold (or cannot be computed: too few seeds).
A claim with several parts (sigmoid *and* tanh; shared *and* channel-wise) combines them with
:func:`all_of`: it holds when every part holds, does not hold when any part does not hold, and is
inconclusive otherwise.

Intervals are two-sided 95 % t intervals over seeds (paired by seed where two activations are
compared: same data order, same initial weights), computed by :mod:`actlab.lab.stats`; counts
(dead units) get Clopper–Pearson intervals (:func:`scipy.stats.binomtest`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

from scipy import stats as _sps

from ..lab import stats

__all__ = ["HOLDS", "FAILS", "INCONCLUSIVE", "VERDICTS", "CONFIDENCE", "Verdict", "interval", "all_of",
           "mean_interval", "paired_interval", "count_interval", "ratio_interval", "claim1", "claim2", "claim3",
           "claim4", "claim5", "claim6", "claim7", "claim8", "claim9", "claim10", "SPEEDUP_THRESHOLD",
           "ORDERS_THRESHOLD", "MEAN_SHIFT_THRESHOLD", "ZIGZAG_THRESHOLD", "DEAD_GROWTH_THRESHOLD",
           "NO_DEAD_THRESHOLD"]

HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
VERDICTS = (HOLDS, FAILS, INCONCLUSIVE)
CONFIDENCE = 0.95

#: claim 1: log10(first-layer gradient norm, act / ReLU) at most −1: ten times smaller or less
ORDERS_THRESHOLD = -1.0
#: claim 2: sigmoid's mean |layer mean activation| exceeds tanh's by more than this
MEAN_SHIFT_THRESHOLD = 0.1
#: claim 2: sigmoid's next-layer gradient sign agreement exceeds tanh's by more than this
ZIGZAG_THRESHOLD = 0.05
#: claim 3: ReLU's dead share rises by more than this from the smallest to the largest lr
DEAD_GROWTH_THRESHOLD = 0.01
#: claims 3, 9: "no dead zone": the dead share stays below this (upper confidence bound)
NO_DEAD_THRESHOLD = 0.01
#: claim 4: the chapter's 6×, within a factor of two: tanh / ReLU time-to-target above 3
SPEEDUP_THRESHOLD = 3.0


@dataclass(frozen=True)
class Verdict:
    """A verdict with the evidence that decided it.

    ``estimate``, ``low`` and ``high``: the measured quantity and its interval; ``threshold`` and
    ``side`` ("above" / "below"): where the quantity must lie for the claim to hold; ``parts``:
    the sub-verdicts of a combined claim; ``note``: why, in words.
    """

    verdict: str
    quantity: str = ""
    estimate: float = math.nan
    low: float = math.nan
    high: float = math.nan
    threshold: float = math.nan
    side: str = ""
    n: int = 0
    note: str = ""
    parts: tuple[Verdict, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x

        return {"verdict": self.verdict, "quantity": self.quantity, "estimate": num(self.estimate),
                "low": num(self.low), "high": num(self.high), "threshold": num(self.threshold),
                "side": self.side, "n": self.n, "note": self.note, "parts": [p.to_dict() for p in self.parts],
                "extra": self.extra}


# --- building blocks ----------------------------------------------------------------------------


def interval(quantity: str, estimate: float, low: float, high: float, threshold: float, side: str, *,
             n: int = 0, censored: str = "") -> Verdict:
    """The interval rule. ``side="above"``: holds if low > threshold, does not hold if
    high < threshold; ``side="below"``: the mirror. NaN bounds: inconclusive.

    ``censored``: ``"low"`` when some values are lower bounds (runs that never reached a target),
    ``"high"`` when some are upper bounds, ``"both"``: a verdict that the true values, beyond
    the bounds, could overturn becomes inconclusive.
    """
    if side not in ("above", "below"):
        raise ValueError(f"side={side!r}; valid: above, below")
    rel = ">" if side == "above" else "<"
    base = dict(quantity=quantity, estimate=estimate, low=low, high=high, threshold=threshold, side=side, n=n)
    if any(not math.isfinite(v) for v in (low, high)) or math.isnan(threshold):
        return Verdict(INCONCLUSIVE, note="no interval (too few results)", **base)
    above, below = low > threshold, high < threshold
    if side == "above":
        verdict = HOLDS if above else FAILS if below else INCONCLUSIVE
    else:
        verdict = HOLDS if below else FAILS if above else INCONCLUSIVE
    # censored values are bounds: a verdict that the bounds' direction could overturn is not safe
    unsafe = {("low", "above"): FAILS, ("low", "below"): HOLDS, ("high", "above"): HOLDS, ("high", "below"): FAILS}
    if censored and (censored == "both" or verdict == unsafe[censored, side]):
        verdict = verdict if verdict == INCONCLUSIVE else INCONCLUSIVE
    note = {HOLDS: f"the whole interval is {rel} {threshold:g}",
            FAILS: f"the whole interval is on the other side of {threshold:g}",
            INCONCLUSIVE: f"the interval straddles {threshold:g}"}[verdict]
    if censored and verdict == INCONCLUSIVE and not (low <= threshold <= high):
        note = "some runs never reached the target (their times are bounds), which could overturn the interval"
    return Verdict(verdict, note=note, **base)


def all_of(quantity: str, parts: Sequence[Verdict]) -> Verdict:
    """Holds if every part holds; does not hold if any does not; else inconclusive."""
    if not parts:
        return Verdict(INCONCLUSIVE, quantity=quantity, note="nothing measured")
    kinds = [p.verdict for p in parts]
    verdict = FAILS if FAILS in kinds else HOLDS if all(k == HOLDS for k in kinds) else INCONCLUSIVE
    note = {HOLDS: "every part holds", FAILS: "a part does not hold",
            INCONCLUSIVE: "no part fails, but not every part holds"}[verdict]
    return Verdict(verdict, quantity=quantity, note=note, parts=tuple(parts))


def _finite(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def mean_interval(values: Sequence[float]) -> tuple[float, float, float, int]:
    """(mean, low, high, n): the t interval of the mean over seeds (NaN where n < 2)."""
    s = stats.summarize(_finite(values), CONFIDENCE)
    return s.mean, s.ci_low, s.ci_high, s.n


def paired_interval(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float, int]:
    """(mean of a − b, low, high, n) over the pairs where both are finite (pairs share a seed)."""
    pairs = [(float(x), float(y)) for x, y in zip(a, b)
             if x is not None and y is not None and math.isfinite(float(x)) and math.isfinite(float(y))]
    if not pairs:
        return math.nan, math.nan, math.nan, 0
    t = stats.paired_test([p[0] for p in pairs], [p[1] for p in pairs], CONFIDENCE)
    if t.n >= 2 and t.std_diff <= 1e-12 * max(1.0, abs(t.mean_diff)):  # identical differences: a point
        return t.mean_diff, t.mean_diff, t.mean_diff, t.n
    return t.mean_diff, t.ci_low, t.ci_high, t.n


def count_interval(k: int, n: int) -> tuple[float, float, float]:
    """(k/n, low, high): the Clopper–Pearson interval of a proportion."""
    if n <= 0:
        return math.nan, math.nan, math.nan
    ci = _sps.binomtest(int(k), int(n)).proportion_ci(CONFIDENCE, method="exact")
    return k / n, float(ci.low), float(ci.high)


def ratio_interval(num: Sequence[float], den: Sequence[float]) -> tuple[float, float, float, int]:
    """The geometric mean of num/den over seeds with its interval (a t interval of the log ratio)."""
    logs = [math.log(x / y) for x, y in zip(num, den)
            if x is not None and y is not None and x > 0 and y > 0 and math.isfinite(x) and math.isfinite(y)]
    m, lo, hi, n = mean_interval(logs)
    exp = lambda v: math.exp(v) if math.isfinite(v) else math.nan  # noqa: E731
    return exp(m), exp(lo), exp(hi), n


# --- the claims -----------------------------------------------------------------------------------


def claim1(log_ratio: Mapping[str, Sequence[float]]) -> Verdict:
    """Saturation: for each of sigmoid and tanh, per seed log10(‖∂L/∂W₁‖ act / ReLU) (first
    layer, first epoch, paired by seed); holds for an activation when the interval of the mean
    lies below :data:`ORDERS_THRESHOLD` (at least ten times smaller)."""
    parts = []
    for act, values in log_ratio.items():
        m, lo, hi, n = mean_interval(values)
        parts.append(interval(f"{act}: log10 first-layer gradient norm / ReLU's", m, lo, hi, ORDERS_THRESHOLD,
                              "below", n=n))
    return all_of("first-layer gradient, orders of magnitude below ReLU's", parts)


def claim2(mean_sigmoid: Sequence[float], mean_tanh: Sequence[float], agree_sigmoid: Sequence[float],
           agree_tanh: Sequence[float]) -> Verdict:
    """Not zero-centred: per seed, the mean over hidden layers of |layer mean activation| and the
    sign agreement of the next layer's weight gradients; sigmoid − tanh, paired by seed, must
    exceed :data:`MEAN_SHIFT_THRESHOLD` and :data:`ZIGZAG_THRESHOLD`."""
    m, lo, hi, n = paired_interval(mean_sigmoid, mean_tanh)
    a = interval("mean abs(layer mean activation), sigmoid − tanh", m, lo, hi, MEAN_SHIFT_THRESHOLD, "above", n=n)
    m, lo, hi, n = paired_interval(agree_sigmoid, agree_tanh)
    b = interval("gradient sign agreement (zig-zag), sigmoid − tanh", m, lo, hi, ZIGZAG_THRESHOLD, "above", n=n)
    return all_of("sigmoid's outputs off-centre, its updates zig-zag", [a, b])


def _no_dead(name: str, dead: int, units: int) -> Verdict:
    share, lo, hi = count_interval(dead, units)
    return interval(f"{name}: dead share ({dead} of {units} units)", share, lo, hi, NO_DEAD_THRESHOLD, "below",
                    n=units)


def claim3(relu_low_lr: Sequence[float], relu_high_lr: Sequence[float],
           others: Mapping[str, tuple[int, int]]) -> Verdict:
    """Dead zone: ReLU's dead share (per seed) at the largest lr minus at the smallest, paired by
    seed, above :data:`DEAD_GROWTH_THRESHOLD`; and for each other activation the dead units
    pooled over seeds (``(dead, units)``) with an upper bound below :data:`NO_DEAD_THRESHOLD`."""
    m, lo, hi, n = paired_interval(relu_high_lr, relu_low_lr)
    parts = [interval("ReLU dead share, largest lr − smallest", m, lo, hi, DEAD_GROWTH_THRESHOLD, "above", n=n)]
    parts += [_no_dead(act, dead, units) for act, (dead, units) in others.items()]
    return all_of("ReLU's dead units grow with the lr; the others have none", parts)


def claim4(tanh_times: Sequence[float], relu_times: Sequence[float], *, budget: float) -> Verdict:
    """Speed: per seed, tanh's time to the training-error target over ReLU's (each at its own
    best lr); the geometric mean's interval must lie above :data:`SPEEDUP_THRESHOLD`.

    A run that never reached the target has time ``inf`` and is counted as ``budget``: a tanh
    run's ratio is then a lower bound (it can prove the claim, not refute it), a ReLU run's an
    upper bound (it can refute, not prove); a seed where neither reached it is left out.
    """
    num, den, kinds = [], [], set()
    for t, r in zip(tanh_times, relu_times):
        t_cut, r_cut = not math.isfinite(t), not math.isfinite(r)
        if (t_cut and r_cut) or math.isnan(t) or math.isnan(r):
            continue
        if t_cut:
            kinds.add("low")
        if r_cut:
            kinds.add("high")
        num.append(budget if t_cut else t)
        den.append(budget if r_cut else r)
    censored = "both" if len(kinds) == 2 else next(iter(kinds), "")
    r, lo, hi, n = ratio_interval(num, den)
    return interval("time to target, tanh / ReLU", r, lo, hi, SPEEDUP_THRESHOLD, "above", n=n, censored=censored)


def claim5(shared_rho: Sequence[float], channel_rho: Sequence[float]) -> Verdict:
    """PReLU slopes shrink with depth: per seed, Spearman's ρ between layer depth and learned slope
    (channel-wise: the layer's mean slope); the interval of the mean ρ must lie below 0, for
    shared and for channel-wise PReLU."""
    parts = []
    for name, rho in (("shared", shared_rho), ("channel-wise", channel_rho)):
        m, lo, hi, n = mean_interval(rho)
        parts.append(interval(f"{name}: Spearman ρ(depth, slope)", m, lo, hi, 0.0, "below", n=n))
    return all_of("learned slopes fall with depth", parts)


def claim6(relu: Sequence[float], shared: Sequence[float], channel: Sequence[float]) -> Verdict:
    """Table 8.2's order: per seed test errors; shared − ReLU and channel-wise − shared, paired by
    seed, each with its interval below 0."""
    m, lo, hi, n = paired_interval(shared, relu)
    a = interval("test error, shared PReLU − ReLU", m, lo, hi, 0.0, "below", n=n)
    m, lo, hi, n = paired_interval(channel, shared)
    b = interval("test error, channel-wise − shared PReLU", m, lo, hi, 0.0, "below", n=n)
    return all_of("channel-wise PReLU < shared PReLU < ReLU in test error", [a, b])


def claim7(excess_small: Sequence[float], excess_large: Sequence[float]) -> Verdict:
    """Overfitting: per seed, PReLU's train–test gap minus ReLU's ("excess gap") on the smallest
    training set minus the same on the largest, paired by seed; holds above 0."""
    m, lo, hi, n = paired_interval(excess_small, excess_large)
    return interval("PReLU's excess gap over ReLU, smallest − largest training set", m, lo, hi, 0.0, "above", n=n)


def claim8(gap_rrelu: Sequence[float], gap_leaky: Sequence[float]) -> Verdict:
    """Regularisation: per seed train–test gaps, RReLU − Leaky ReLU at RReLU's mean slope, paired
    by seed; holds below 0."""
    m, lo, hi, n = paired_interval(gap_rrelu, gap_leaky)
    return interval("train–test gap, RReLU − Leaky ReLU (same mean slope)", m, lo, hi, 0.0, "below", n=n)


def claim9(abs_mean_relu: Sequence[float], abs_mean_elu: Sequence[float], elu_dead: tuple[int, int]) -> Verdict:
    """ELU: per seed mean over layers of |layer mean activation|, ReLU − ELU, paired, above 0; and
    ELU's dead units pooled over seeds with an upper bound below :data:`NO_DEAD_THRESHOLD`."""
    m, lo, hi, n = paired_interval(abs_mean_relu, abs_mean_elu)
    a = interval("mean abs(layer mean activation), ReLU − ELU", m, lo, hi, 0.0, "above", n=n)
    return all_of("ELU is closer to zero-mean than ReLU and has no dead units", [a, _no_dead("ELU", *elu_dead)])


def claim10(errors: Mapping[str, Mapping[str, Sequence[float]]]) -> Verdict:
    """No consistent winner: ``errors[data][act]`` = per-seed test errors.

    For each data set and each ordered pair (A, B), the paired interval of err(A) − err(B).
    A *consistent winner* is an activation significantly better (interval below 0) than every
    other on every data set. The claim **does not hold** if there is one; it **holds** if every
    activation is significantly beaten by some other on at least one data set (none can be the
    consistent winner); otherwise it is **inconclusive**. Needs at least two data sets.
    """
    datasets = list(errors)
    acts = sorted({a for d in datasets for a in errors[d]})
    beaten: dict[str, list[str]] = {a: [] for a in acts}  # where a is significantly beaten
    wins_all: dict[str, bool] = {a: True for a in acts}
    table: dict[str, dict[str, list[float]]] = {}
    for d in datasets:
        table[d] = {}
        for a in acts:
            for b in acts:
                if a == b:
                    continue
                m, lo, hi, _ = paired_interval(errors[d].get(a, []), errors[d].get(b, []))
                table[d][f"{a} − {b}"] = [m, lo, hi]
                if not hi < 0:
                    wins_all[a] = False
                if lo > 0 and d not in beaten[a]:
                    beaten[a].append(d)
    extra = {"pairs": table, "beaten_on": beaten}
    winners = [a for a in acts if wins_all[a]]
    if len(datasets) < 2 or len(acts) < 2:
        verdict, note = INCONCLUSIVE, "needs at least two data sets and two activations"
    elif winners:
        verdict, note = FAILS, f"{winners[0]} is significantly best on every data set"
    elif all(beaten[a] for a in acts):
        verdict, note = HOLDS, "every activation is significantly beaten on some data set"
    else:
        unbeaten = [a for a in acts if not beaten[a]]
        verdict, note = INCONCLUSIVE, (f"never significantly beaten: {', '.join(unbeaten)}; "
                                       "none significantly best everywhere")
    n_beaten = sum(1 for a in acts if beaten[a])
    return Verdict(verdict, quantity="activations significantly beaten on some data set", estimate=n_beaten,
                   threshold=len(acts), side="all", n=len(datasets), note=note, extra=extra)


def with_extra(v: Verdict, **extra: Any) -> Verdict:
    """``v`` with more JSON data attached (what the report shows beside the verdict)."""
    return replace(v, extra={**v.extra, **extra})
