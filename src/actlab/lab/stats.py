"""Means, confidence intervals and paired tests over seeds — the statistics of the reports.

All functions take plain sequences of floats and return small frozen dataclasses; NaN marks a
quantity that the data cannot give (a standard deviation from one value, a test from one pair).

* :func:`summarize`: n, mean, sample standard deviation (ddof = 1) and the two-sided t
  confidence interval mean ± t(1 − (1 − c)/2, n − 1) · s/√n.
* :func:`paired_test`: the two-sided paired t-test (scipy.stats.ttest_rel) of a − b, with the t
  interval of the mean difference. Pairs share a seed: same data order, same initial weights.
* :func:`holm`: Holm's step-down adjustment of p-values for testing several variants against
  one baseline (controls the family-wise error rate, no independence assumption).

The robust and effect-size statistics of Agarwal et al. (2021, "Deep RL at the edge of the
statistical precipice", the ``rliable`` library), computed with ``scipy.stats.bootstrap`` (rliable
itself is not a dependency: it pins ``arch == 5.3.0`` (with pandas and statsmodels) and
requires seaborn and absl-py, for these few lines):

* :func:`iqm`: the interquartile mean (mean of the middle 50 %, ``scipy.stats.trim_mean`` at 0.25).
* :func:`iqm_interval`: the IQM with a stratified percentile-bootstrap interval: each stratum
  (a task, a data set; one stratum for the seeds of one setting) is resampled on its own.
* :func:`prob_improvement`: P(X < Y) + ½ P(X = Y) over all pairs of runs (the Mann-Whitney U
  statistic / (n·m); lower is better, as for errors), with a stratified bootstrap interval.
* :func:`cohens_dz`: the paired effect size d_z = mean(a − b) / sd(a − b).
* :func:`min_detectable_difference`: the smallest true mean difference the two-sided paired
  t-test detects with the given power, from the observed SD of the differences (noncentral t).

Intervals of bounded quantities (error rates) take ``bounds`` and are clipped inside them.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy import stats as _sps
from scipy.integrate import quad
from scipy.optimize import brentq

__all__ = ["Summary", "PairedTest", "Estimate", "summarize", "paired_test", "holm", "iqm", "iqm_interval",
           "prob_improvement", "cohens_dz", "min_detectable_difference", "PAIRED_TEST", "BOOTSTRAP_RESAMPLES"]

PAIRED_TEST = "two-sided paired t-test over seeds"
_NAN = float("nan")
#: resamples of the bootstrap intervals (rliable's default is 2000; tests pass fewer)
BOOTSTRAP_RESAMPLES = 2000


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    std: float  # sample standard deviation (ddof = 1); NaN for n < 2
    ci_low: float  # confidence interval of the mean (t distribution); NaN for n < 2
    ci_high: float


@dataclass(frozen=True)
class PairedTest:
    n: int  # pairs
    mean_diff: float  # mean of a − b
    std_diff: float
    ci_low: float  # confidence interval of the mean difference
    ci_high: float
    t: float
    p: float  # two-sided; NaN when untestable (n < 2, or all differences equal and non-zero)
    d_z: float = _NAN  # Cohen's d_z = mean_diff / std_diff; NaN when std_diff is 0 or undefined


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a confidence interval (NaN where the data cannot give one)."""

    n: int
    value: float
    ci_low: float
    ci_high: float


def _clean(values: Sequence[float]) -> np.ndarray:
    x = np.asarray([float(v) for v in values], dtype=np.float64)
    if np.isnan(x).any():
        raise ValueError("stats: NaN in the values; leave out what was not measured")
    return x


def _interval(x: np.ndarray, confidence: float) -> tuple[float, float, float, float]:
    """(mean, std, ci_low, ci_high) of x."""
    n = len(x)
    if n == 0:
        return _NAN, _NAN, _NAN, _NAN
    mean = float(x.mean())
    if n < 2:
        return mean, _NAN, _NAN, _NAN
    std = float(x.std(ddof=1))
    half = float(_sps.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return mean, std, mean - half, mean + half


def _clip(lo: float, hi: float, bounds: tuple[float, float] | None) -> tuple[float, float]:
    if bounds is None or math.isnan(lo):
        return lo, hi
    return min(max(lo, bounds[0]), bounds[1]), min(max(hi, bounds[0]), bounds[1])


def summarize(values: Sequence[float], confidence: float = 0.95,
              bounds: tuple[float, float] | None = None) -> Summary:
    """n, mean, std and the t confidence interval of the mean of ``values``.

    ``bounds``: the range the quantity cannot leave (e.g. (0, 1) for an error rate); the
    interval is clipped inside it (a t interval knows nothing of bounds).
    """
    x = _clean(values)
    mean, std, lo, hi = _interval(x, confidence)
    return Summary(len(x), mean, std, *_clip(lo, hi, bounds))


def paired_test(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> PairedTest:
    """The paired t-test of ``a`` against ``b`` (same length, paired by position).

    With zero variance of the differences the t statistic is undefined: p = 1 when they are
    all 0 (identical results), NaN otherwise (a constant non-zero shift, untestable by t).
    """
    x, y = _clean(a), _clean(b)
    if len(x) != len(y):
        raise ValueError(f"paired_test: {len(x)} values against {len(y)}; pairs need equal lengths")
    d = x - y
    mean, std, lo, hi = _interval(d, confidence)
    n = len(d)
    if n < 2:
        return PairedTest(n, mean, std, lo, hi, _NAN, _NAN)
    if std <= 1e-12 * max(1.0, abs(mean)):  # all differences equal (up to rounding)
        zero = abs(mean) <= 1e-12
        return PairedTest(n, mean, std, lo, hi, 0.0 if zero else math.copysign(math.inf, mean), 1.0 if zero else _NAN)
    res = _sps.ttest_rel(x, y)
    return PairedTest(n, mean, std, lo, hi, float(res.statistic), float(res.pvalue), mean / std)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the input order; NaN entries stay NaN and are not counted.

    Sorted ascending p(1) ≤ … ≤ p(m): adjusted p(i) = max over j ≤ i of min(1, (m − j + 1)·p(j)).
    """
    p = [float(v) for v in pvalues]
    valid = sorted((v, i) for i, v in enumerate(p) if not math.isnan(v))
    m = len(valid)
    out = [_NAN] * len(p)
    running = 0.0
    for rank, (v, i) in enumerate(valid):
        running = max(running, min(1.0, (m - rank) * v))
        out[i] = running
    return out


def iqm(values: Sequence[float]) -> float:
    """The interquartile mean: the mean of the middle 50 % (``scipy.stats.trim_mean`` at 0.25;
    with fewer than 4 values nothing is trimmed and it is the mean). NaN for no values."""
    x = _clean(values)
    return float(_sps.trim_mean(x, 0.25)) if len(x) else _NAN


def _bootstrap(samples: tuple[np.ndarray, ...], statistic: Any, confidence: float, resamples: int,
               seed: int) -> tuple[float, float]:
    """Percentile bootstrap interval; each sample (stratum) resampled on its own."""
    if any(len(x) < 2 for x in samples):
        return _NAN, _NAN
    if all(np.ptp(x) == 0 for x in samples):  # nothing varies: the interval is the point
        v = float(statistic(*samples))
        return v, v
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on near-degenerate resamples
        res = _sps.bootstrap(samples, statistic, n_resamples=resamples, confidence_level=confidence,
                             method="percentile", vectorized=False, rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def iqm_interval(*strata: Sequence[float], confidence: float = 0.95, resamples: int | None = None,
                 seed: int = 0, bounds: tuple[float, float] | None = None) -> Estimate:
    """The IQM of all values of ``strata`` pooled, with a stratified percentile-bootstrap interval
    (rliable's method): each stratum is resampled with replacement within itself, the IQM of
    the pooled resample taken. One stratum: the plain bootstrap over its values. The interval
    is NaN when a stratum has fewer than 2 values. ``seed`` makes it reproducible."""
    xs = tuple(_clean(s) for s in strata)
    pooled = np.concatenate(xs) if xs else np.array([])
    if not len(pooled):
        return Estimate(0, _NAN, _NAN, _NAN)
    stat = lambda *s: _sps.trim_mean(np.concatenate(s), 0.25)  # noqa: E731
    lo, hi = _bootstrap(xs, stat, confidence, resamples or BOOTSTRAP_RESAMPLES, seed)
    return Estimate(len(pooled), float(stat(*xs)), *_clip(lo, hi, bounds))


def _p_less(x: np.ndarray, y: np.ndarray) -> float:
    diff = x[:, None] - y[None, :]
    return float(((diff < 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def prob_improvement(x: Sequence[float], y: Sequence[float], *, confidence: float = 0.95,
                     resamples: int | None = None, seed: int = 0) -> Estimate:
    """P(X < Y) + ½ P(X = Y) over all pairs (x_i, y_j): the probability that a run of X has a
    lower value (error) than a run of Y (rliable's probability of improvement; 0.5: neither),
    with a percentile-bootstrap interval resampling the runs of X and of Y separately."""
    a, b = _clean(x), _clean(y)
    if not (len(a) and len(b)):
        return Estimate(0, _NAN, _NAN, _NAN)
    lo, hi = _bootstrap((a, b), _p_less, confidence, resamples or BOOTSTRAP_RESAMPLES, seed)
    return Estimate(min(len(a), len(b)), _p_less(a, b), lo, hi)


def cohens_dz(a: Sequence[float], b: Sequence[float]) -> float:
    """Cohen's d_z of paired samples: mean(a − b) / sd(a − b) (ddof = 1); NaN for n < 2 or no spread."""
    d = _clean(a) - _clean(b)
    if len(d) < 2 or d.std(ddof=1) <= 1e-12 * max(1.0, abs(d.mean())):
        return _NAN
    return float(d.mean() / d.std(ddof=1))


def min_detectable_difference(std_diff: float, n: int, *, power: float = 0.8, alpha: float = 0.05) -> float:
    """The smallest true mean difference |δ| that the two-sided paired t-test at ``alpha``
    detects with probability ``power`` over ``n`` pairs whose differences have SD ``std_diff``.

    Power(δ) = P(|T| > t_crit), T noncentral t with n − 1 degrees of freedom and noncentrality
    δ·√n / sd (integrated numerically); solved for δ. NaN for n < 2 or an undefined/zero SD.
    """
    if n < 2 or not (std_diff > 0 and math.isfinite(std_diff)):
        return _NAN
    return _detectable_dz(n, power, alpha) * std_diff


@functools.lru_cache(maxsize=64)
def _detectable_dz(n: int, power: float, alpha: float) -> float:
    """The detectable difference in units of the SD of the differences (it scales with the SD)."""
    df = n - 1
    crit = float(_sps.t.ppf(1 - alpha / 2, df))
    # T = (Z + nc) / S with S = sqrt(chi2_df / df): integrate P(|T| > crit | S) over S's density
    # where scipy's nct gives NaN (df = 1 at large nc)
    s_dist = _sps.chi(df, scale=1 / math.sqrt(df))

    def by_integral(nc: float) -> float:
        def given(s: float) -> float:
            return float(_sps.norm.sf(crit * s - nc) + _sps.norm.cdf(-crit * s - nc)) * float(s_dist.pdf(s))
        return float(quad(given, 0, np.inf, limit=200)[0])

    def gap(nc: float) -> float:
        p = float(_sps.nct.sf(crit, df, nc) + _sps.nct.cdf(-crit, df, nc))
        return (p if math.isfinite(p) else by_integral(nc)) - power

    hi = 1.0
    while gap(hi) < 0:
        hi *= 2
    return float(brentq(gap, 0.0, hi, xtol=1e-8)) / math.sqrt(n)
