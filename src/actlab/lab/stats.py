"""Means, confidence intervals and paired tests over seeds — the statistics of the reports.

All functions take plain sequences of floats and return small frozen dataclasses; NaN marks a
quantity that the data cannot give (a standard deviation from one value, a test from one pair).

* :func:`summarize`: n, mean, sample standard deviation (ddof = 1) and the two-sided t
  confidence interval mean ± t(1 − (1 − c)/2, n − 1) · s/√n.
* :func:`paired_test`: the two-sided paired t-test (scipy.stats.ttest_rel) of a − b, with the t
  interval of the mean difference. Pairs share a seed: same data order, same initial weights.
* :func:`holm`: Holm's step-down adjustment of p-values for testing several variants against
  one baseline (controls the family-wise error rate, no independence assumption).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as _sps

__all__ = ["Summary", "PairedTest", "summarize", "paired_test", "holm", "PAIRED_TEST"]

PAIRED_TEST = "two-sided paired t-test over seeds"
_NAN = float("nan")


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


def summarize(values: Sequence[float], confidence: float = 0.95) -> Summary:
    """n, mean, std and the t confidence interval of the mean of ``values``."""
    x = _clean(values)
    return Summary(len(x), *_interval(x, confidence))


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
    return PairedTest(n, mean, std, lo, hi, float(res.statistic), float(res.pvalue))


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
