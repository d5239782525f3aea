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


# --- robust statistics, effect sizes, power --------------------------------------------------


def test_iqm_is_the_mean_of_the_middle_half():
    x = [5.0, 1.0, 2.0, 3.0, 4.0, 100.0, 0.0, 6.0]  # 8 values: drop 2 lowest (0, 1) and 2 highest (6, 100)
    assert stats.iqm(x) == pytest.approx(np.mean([2.0, 3.0, 4.0, 5.0]))
    assert stats.iqm([0.3, 0.1, 0.2]) == pytest.approx(0.2)  # fewer than 4: nothing trimmed
    assert math.isnan(stats.iqm([]))


def test_iqm_interval_is_a_percentile_bootstrap_and_stays_in_bounds():
    x = [0.02, 0.03, 0.025, 0.9, 0.028, 0.031]
    est = stats.iqm_interval(x, resamples=300, seed=1, bounds=(0.0, 1.0))
    assert est.n == 6 and est.value == pytest.approx(sps.trim_mean(x, 0.25))
    # the same resampling by hand: numpy's generator drawn as scipy.stats.bootstrap draws it
    ref = sps.bootstrap((np.array(x),), lambda a: sps.trim_mean(a, 0.25), n_resamples=300, method="percentile",
                        vectorized=False, rng=np.random.default_rng(1))
    assert (est.ci_low, est.ci_high) == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high))
    assert 0.0 <= est.ci_low <= est.value <= est.ci_high <= 1.0
    near_zero = stats.iqm_interval([0.0, 0.0, 0.001, 0.0], resamples=200, bounds=(0.0, 1.0))
    assert near_zero.ci_low >= 0.0
    assert math.isnan(stats.iqm_interval([0.1], resamples=50).ci_low)
    flat = stats.iqm_interval([0.1, 0.1, 0.1], resamples=50)
    assert flat.ci_low == flat.ci_high == pytest.approx(0.1)


def test_iqm_interval_resamples_each_stratum_within_itself():
    # two strata with very different levels: every resample keeps 3 values of each, so the pooled
    # IQM cannot move as far as an unstratified bootstrap would let it
    a, b = [0.01, 0.02, 0.03], [0.5, 0.6, 0.7]
    strat = stats.iqm_interval(a, b, resamples=400, seed=0)
    assert strat.n == 6 and strat.value == pytest.approx(sps.trim_mean(a + b, 0.25))
    plain = stats.iqm_interval(a + b, resamples=400, seed=0)
    assert strat.ci_high - strat.ci_low < plain.ci_high - plain.ci_low


def test_t_interval_of_an_error_rate_is_clipped():
    s = stats.summarize([0.0, 0.0, 0.3], bounds=(0.0, 1.0))
    raw = stats.summarize([0.0, 0.0, 0.3])
    assert raw.ci_low < 0 and s.ci_low == 0.0 and s.ci_high == pytest.approx(raw.ci_high)


def test_probability_of_improvement_counts_pairs():
    x, y = [0.1, 0.2, 0.3], [0.2, 0.4, 0.5]
    # pairs (x < y): 0.1<all 3, 0.2<0.4,0.5 and ties 0.2=0.2 (½), 0.3<0.4,0.5 → (3 + 2.5 + 2) / 9
    est = stats.prob_improvement(x, y, resamples=300)
    assert est.value == pytest.approx(7.5 / 9)
    u = sps.mannwhitneyu(y, x, alternative="two-sided").statistic  # U counts y > x (+ ½ ties)
    assert est.value == pytest.approx(u / 9)
    assert 0.0 <= est.ci_low <= est.value <= est.ci_high <= 1.0
    assert stats.prob_improvement(y, x, resamples=50).value == pytest.approx(1 - est.value)


def test_cohens_dz_and_the_paired_test_carry_it():
    a, b = [0.30, 0.28, 0.35, 0.31], [0.33, 0.30, 0.36, 0.35]
    d = np.subtract(a, b)
    assert stats.cohens_dz(a, b) == pytest.approx(d.mean() / d.std(ddof=1))
    assert stats.paired_test(a, b).d_z == pytest.approx(stats.cohens_dz(a, b))
    assert math.isnan(stats.cohens_dz([0.1, 0.2], [0.0, 0.1]))  # a constant shift has no spread


@pytest.mark.parametrize("n", [2, 5])  # n = 2: scipy's nct gives NaN there; the integral takes over
def test_min_detectable_difference_has_the_requested_power(n):
    sd = 0.004
    delta = stats.min_detectable_difference(sd, n)
    # simulate paired t-tests with true difference delta: the rejection rate is the power
    rng = np.random.default_rng(0)
    d = rng.normal(delta, sd, size=(20000, n))
    t = d.mean(1) / (d.std(1, ddof=1) / math.sqrt(n))
    power = np.mean(np.abs(t) > sps.t.ppf(0.975, n - 1))
    assert power == pytest.approx(0.8, abs=0.015)
    assert stats.min_detectable_difference(sd, 20) < delta  # more seeds, smaller detectable difference
    assert stats.min_detectable_difference(2 * sd, n) == pytest.approx(2 * delta)
    assert math.isnan(stats.min_detectable_difference(sd, 1)) and math.isnan(stats.min_detectable_difference(0.0, 5))
