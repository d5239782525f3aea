"""The decision rules of ``actlab verify``: each claim's verdict turns when the evidence does.

Synthetic per-seed results stand in for measurements; one test per claim feeds evidence for,
against and in between, and checks the verdict each time.
"""

from __future__ import annotations

import math

import pytest

from actlab.verify import rules
from actlab.verify.rules import FAILS, HOLDS, INCONCLUSIVE


def around(centre: float, spread: float = 0.01, n: int = 5) -> list[float]:
    """n values with mean ``centre`` and a small, fixed spread (a tight interval)."""
    offsets = [(i - (n - 1) / 2) * spread for i in range(n)]
    return [centre + o for o in offsets]


# --- the building blocks --------------------------------------------------------------------------


def test_interval_turns_at_the_threshold():
    assert rules.interval("q", 2.0, 1.5, 2.5, 1.0, "above").verdict == HOLDS
    assert rules.interval("q", 0.0, -0.5, 0.5, 1.0, "above").verdict == FAILS
    assert rules.interval("q", 1.0, 0.5, 1.5, 1.0, "above").verdict == INCONCLUSIVE
    assert rules.interval("q", 0.0, -0.5, 0.5, 1.0, "below").verdict == HOLDS
    assert rules.interval("q", 2.0, 1.5, 2.5, 1.0, "below").verdict == FAILS
    assert rules.interval("q", 2.0, math.nan, math.nan, 1.0, "above").verdict == INCONCLUSIVE
    with pytest.raises(ValueError, match="valid: above, below"):
        rules.interval("q", 0, 0, 0, 0, "sideways")


def test_censored_lower_bounds_can_prove_but_not_refute():
    assert rules.interval("q", 5, 4, 6, 3, "above", censored="low").verdict == HOLDS
    assert rules.interval("q", 1, 0.5, 2, 3, "above", censored="low").verdict == INCONCLUSIVE
    assert rules.interval("q", 1, 0.5, 2, 3, "above").verdict == FAILS
    assert rules.interval("q", 1, 0.5, 2, 3, "above", censored="high").verdict == FAILS
    assert rules.interval("q", 5, 4, 6, 3, "above", censored="high").verdict == INCONCLUSIVE
    assert rules.interval("q", 5, 4, 6, 3, "above", censored="both").verdict == INCONCLUSIVE


def test_all_of_combines_parts():
    h, f, i = (rules.Verdict(v) for v in (HOLDS, FAILS, INCONCLUSIVE))
    assert rules.all_of("x", [h, h]).verdict == HOLDS
    assert rules.all_of("x", [h, i]).verdict == INCONCLUSIVE
    assert rules.all_of("x", [i, f, h]).verdict == FAILS
    assert rules.all_of("x", []).verdict == INCONCLUSIVE


def test_paired_interval_pairs_by_position_and_skips_missing():
    m, lo, hi, n = rules.paired_interval([1.0, 2.0, math.nan, 4.0], [0.0, 1.0, 5.0, 3.0])
    assert (m, lo, hi, n) == (1.0, 1.0, 1.0, 3)  # identical differences: a point, not an undefined t
    m, lo, hi, n = rules.paired_interval([1.0, 2.5, 4.0], [0.0, 1.0, 3.0])
    assert n == 3 and lo < m < hi


def test_count_interval_is_clopper_pearson():
    share, lo, hi = rules.count_interval(0, 1000)
    assert share == 0 and lo == 0 and 0.003 < hi < 0.004  # the "rule of three": about 3/n
    assert rules.count_interval(5, 0)[0] != rules.count_interval(5, 0)[0]  # NaN without units


# --- one test per claim -----------------------------------------------------------------------------


def test_claim1_saturation():
    far, near = around(-3.0), around(-0.2)
    assert rules.claim1({"sigmoid": far, "tanh": far}).verdict == HOLDS
    assert rules.claim1({"sigmoid": far, "tanh": near}).verdict == FAILS
    assert rules.claim1({"sigmoid": far, "tanh": around(-1.0, spread=0.5)}).verdict == INCONCLUSIVE


def test_claim2_zero_centred():
    tanh_mean, tanh_agree = around(0.02), around(0.52)
    assert rules.claim2(around(0.45), tanh_mean, around(0.8), tanh_agree).verdict == HOLDS
    assert rules.claim2(around(0.03), tanh_mean, around(0.8), tanh_agree).verdict == FAILS  # centred after all
    assert rules.claim2(around(0.45), tanh_mean, around(0.53), tanh_agree).verdict == FAILS  # no zig-zag
    assert rules.claim2(around(0.45), tanh_mean, [0.5, 0.6, 0.55, 0.7, 0.5], tanh_agree).verdict == INCONCLUSIVE


def test_claim3_dead_zone():
    low, high = around(0.02), around(0.3)
    none = {"leaky_relu": (0, 5000), "elu": (0, 5000)}
    assert rules.claim3(low, high, none).verdict == HOLDS
    assert rules.claim3(low, low, none).verdict == FAILS  # no growth with the lr
    assert rules.claim3(low, high, {**none, "elu": (500, 5000)}).verdict == FAILS  # ELU with dead units
    assert rules.claim3(low, high, {**none, "elu": (0, 100)}).verdict == INCONCLUSIVE  # too few units to tell


def test_claim4_speed():
    relu = [2.0, 2.2, 1.8, 2.0]
    assert rules.claim4([12.0, 13.0, 11.0, 12.5], relu, budget=20).verdict == HOLDS
    assert rules.claim4([2.5, 2.4, 2.2, 2.6], relu, budget=20).verdict == FAILS
    assert rules.claim4([3.0, 12.0, 4.0, 9.0], relu, budget=20).verdict == INCONCLUSIVE
    # tanh never reached the target: a lower bound can prove the claim, never refute it
    assert rules.claim4([math.inf] * 4, relu, budget=20).verdict == HOLDS
    assert rules.claim4([math.inf] * 4, relu, budget=4).verdict == INCONCLUSIVE
    # ReLU never got there while tanh did: an upper bound, which refutes
    assert rules.claim4([12.0] * 4, [math.inf] * 4, budget=20).verdict == FAILS
    assert rules.claim4([12.0] * 4, [math.inf] * 4, budget=2).verdict == INCONCLUSIVE
    assert rules.claim4([math.inf] * 4, [math.inf] * 4, budget=20).verdict == INCONCLUSIVE  # neither: no ratio


def test_claim5_prelu_slopes():
    falling, rising, mixed = around(-0.6, 0.05), around(0.5, 0.05), [-0.5, 0.4, -0.2, 0.3, 0.0]
    assert rules.claim5(falling, falling).verdict == HOLDS
    assert rules.claim5(falling, rising).verdict == FAILS
    assert rules.claim5(falling, mixed).verdict == INCONCLUSIVE


def test_claim6_prelu_order():
    relu = around(0.30)
    assert rules.claim6(relu, [x - 0.02 for x in relu], [x - 0.03 for x in relu]).verdict == HOLDS
    assert rules.claim6(relu, [x + 0.02 for x in relu], [x - 0.03 for x in relu]).verdict == FAILS
    shared = [x - 0.02 for x in relu]
    channel = [x + d for x, d in zip(shared, [0.01, -0.02, 0.015, -0.01, 0.0])]  # no better than shared
    assert rules.claim6(relu, shared, channel).verdict == INCONCLUSIVE


def test_claim7_prelu_overfits():
    large = around(0.0, 0.002)
    assert rules.claim7(around(0.05), large).verdict == HOLDS
    assert rules.claim7(around(-0.05), large).verdict == FAILS
    assert rules.claim7([0.05, -0.04, 0.03, -0.02, 0.0], large).verdict == INCONCLUSIVE


def test_claim8_rrelu_regularises():
    leaky = around(0.10)
    assert rules.claim8([g - 0.03 for g in leaky], leaky).verdict == HOLDS
    assert rules.claim8([g + 0.03 for g in leaky], leaky).verdict == FAILS
    assert rules.claim8([g + d for g, d in zip(leaky, [0.02, -0.03, 0.01, -0.01, 0.0])], leaky).verdict == INCONCLUSIVE


def test_claim9_elu():
    relu = around(0.5)
    assert rules.claim9(relu, around(0.1), (0, 5000)).verdict == HOLDS
    assert rules.claim9(relu, around(0.7), (0, 5000)).verdict == FAILS  # ELU further from zero
    assert rules.claim9(relu, around(0.1), (400, 5000)).verdict == FAILS  # ELU with dead units
    assert rules.claim9(relu, [0.1, 0.9, 0.4, 0.8, 0.3], (0, 5000)).verdict == INCONCLUSIVE


def test_claim10_no_consistent_winner():
    def data(best: str) -> dict[str, list[float]]:
        return {a: around(0.05 if a == best else 0.10) for a in ("leaky_relu", "prelu", "rrelu", "elu")}

    # a different significant winner on each data set: every activation is beaten somewhere
    v = rules.claim10({"d1": data("elu"), "d2": data("prelu"), "d3": data("rrelu")})
    assert v.verdict == HOLDS
    # ELU significantly best everywhere: a consistent winner
    v = rules.claim10({"d1": data("elu"), "d2": data("elu"), "d3": data("elu")})
    assert v.verdict == FAILS and "elu" in v.note
    # all equal within noise: nothing significant either way
    noisy = {a: [0.1 + d for d in (0.02, -0.01, 0.03, -0.02, 0.0)][::(1 if i % 2 else -1)]
             for i, a in enumerate(("leaky_relu", "prelu", "rrelu", "elu"))}
    assert rules.claim10({"d1": noisy, "d2": noisy, "d3": noisy}).verdict == INCONCLUSIVE
    assert rules.claim10({"d1": data("elu")}).verdict == INCONCLUSIVE  # one data set cannot show it
