"""actlab.lab.stats against scipy and hand-worked values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as sps

from actlab.lab import stats


def test_summarize_matches_the_t_interval():
    x = [0.031, 0.027, 0.035, 0.029]
    s = stats.summarize(x)
    mean, sd = np.mean(x), np.std(x, ddof=1)
    half = sps.t.ppf(0.975, 3) * sd / math.sqrt(4)
    assert s.n == 4
    assert s.mean == pytest.approx(mean) and s.std == pytest.approx(sd)
    assert (s.ci_low, s.ci_high) == pytest.approx((mean - half, mean + half))


def test_summarize_small_samples_say_what_they_cannot_give():
    one = stats.summarize([0.5])
    assert one.n == 1 and one.mean == 0.5
    assert math.isnan(one.std) and math.isnan(one.ci_low) and math.isnan(one.ci_high)
    assert stats.summarize([]).n == 0 and math.isnan(stats.summarize([]).mean)


def test_summarize_refuses_nan():
    with pytest.raises(ValueError, match="NaN"):
        stats.summarize([0.1, float("nan")])


def test_paired_test_matches_scipy():
    a, b = [0.30, 0.28, 0.35, 0.31], [0.33, 0.30, 0.36, 0.35]
    t = stats.paired_test(a, b)
    ref = sps.ttest_rel(a, b)
    d = np.subtract(a, b)
    half = sps.t.ppf(0.975, 3) * d.std(ddof=1) / 2
    assert t.n == 4
    assert t.t == pytest.approx(ref.statistic) and t.p == pytest.approx(ref.pvalue)
    assert t.mean_diff == pytest.approx(d.mean())
    assert (t.ci_low, t.ci_high) == pytest.approx((d.mean() - half, d.mean() + half))


def test_paired_test_degenerate_cases():
    same = stats.paired_test([0.1, 0.2], [0.1, 0.2])
    assert same.p == 1.0 and same.mean_diff == 0
    shifted = stats.paired_test([0.2, 0.3], [0.1, 0.2])  # constant non-zero difference: t undefined
    assert math.isnan(shifted.p) and shifted.mean_diff == pytest.approx(0.1)
    single = stats.paired_test([0.1], [0.2])
    assert single.n == 1 and math.isnan(single.p)
    with pytest.raises(ValueError, match="equal lengths"):
        stats.paired_test([0.1, 0.2], [0.1])


def test_holm_by_hand():
    # sorted: 0.01·3 = 0.03; 0.03·2 = 0.06; 0.04·1 = 0.04 → max(0.06, 0.04) = 0.06
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    out = stats.holm([0.5, float("nan"), 0.01])
    assert out[0] == pytest.approx(0.5) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)
    assert stats.holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # 2·0.8 capped at 1; then monotone
    assert stats.holm([0.04, 0.3]) == pytest.approx([0.08, 0.3])
    assert stats.holm([]) == []


@given(st.lists(st.floats(0, 1), min_size=1, max_size=8))
def test_holm_properties(p):
    adj = stats.holm(p)
    assert all(a >= q - 1e-12 and a <= 1 for a, q in zip(adj, p))
    order = np.argsort(p, kind="stable")
    sorted_adj = [adj[i] for i in order]
    assert all(x <= y + 1e-12 for x, y in zip(sorted_adj, sorted_adj[1:]))  # same order as the raw p
