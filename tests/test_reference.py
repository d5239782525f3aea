"""The NumPy reference: exact values, the kink, numerical safety, dtypes, invariants.

The test matrix reads the registry, so a new activation is tested without editing this file.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import actlab
from actlab import registry

NAMES = registry.names(registry.EVERY)
E = math.e
LAM, ALPHA = 1.0507009873554804934193349852946, 1.6732632423543772848170429916717  # Klambauer et al.


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def Phi(x: float) -> float:
    return (1 + math.erf(x / math.sqrt(2))) / 2


def phi(x: float) -> float:
    return math.exp(-x * x / 2) / math.sqrt(2 * math.pi)


def sp(x: float) -> float:
    return math.log1p(math.exp(x))


def mish(x: float) -> float:
    return x * math.tanh(sp(x))


def dmish(x: float) -> float:
    return math.tanh(sp(x)) + x * (1 - math.tanh(sp(x)) ** 2) * sig(x)


# f and f' at −1, 0, 1 written from the chapter's formulas with the math module, defaults
EXACT = {
    "sigmoid": ([sig(-1), 0.5, sig(1)], [sig(-1) * (1 - sig(-1)), 0.25, sig(1) * (1 - sig(1))]),
    "tanh": ([-math.tanh(1), 0.0, math.tanh(1)], [1 - math.tanh(1) ** 2, 1.0, 1 - math.tanh(1) ** 2]),
    "relu": ([0.0, 0.0, 1.0], [0.0, 0.0, 1.0]),
    "leaky_relu": ([-0.01, 0.0, 1.0], [0.01, 0.01, 1.0]),
    "prelu": ([-0.25, 0.0, 1.0], [0.25, 0.25, 1.0]),
    "rrelu": ([-(1 / 8 + 1 / 3) / 2, 0.0, 1.0], [(1 / 8 + 1 / 3) / 2, (1 / 8 + 1 / 3) / 2, 1.0]),
    "elu": ([1 / E - 1, 0.0, 1.0], [1 / E, 1.0, 1.0]),
    "gelu": ([-Phi(-1), 0.0, Phi(1)], [Phi(-1) - phi(-1), 0.5, Phi(1) + phi(1)]),
    "silu": ([-sig(-1), 0.0, sig(1)], [sig(-1) * (1 - (1 - sig(-1))), 0.5, sig(1) * (1 + (1 - sig(1)))]),
    "selu": ([LAM * ALPHA * (1 / E - 1), 0.0, LAM], [LAM * ALPHA / E, LAM * ALPHA, LAM]),
    "mish": ([mish(-1), 0.0, mish(1)], [dmish(-1), dmish(0), dmish(1)]),
}


def test_gelu_tanh_form_values_and_derivative():
    k, c = math.sqrt(2 / math.pi), 0.044715

    def f(x):
        return x / 2 * (1 + math.tanh(k * (x + c * x ** 3)))

    def df(x):
        t = math.tanh(k * (x + c * x ** 3))
        return (1 + t) / 2 + x / 2 * (1 - t * t) * k * (1 + 3 * c * x * x)

    ref = actlab.get("gelu", approximate="tanh")
    x = np.array([-3.0, -1.0, 0.0, 0.5, 1.0, 3.0])
    np.testing.assert_allclose(ref.forward(x), [f(v) for v in x], rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(ref.grad(x), [df(v) for v in x], rtol=1e-13, atol=1e-300)
    # the far left tail is kept (1 + tanh u rounds to 0 there, which would fake a dead zone)
    assert 0 < -ref.forward(np.array([-10.0]))[0] < 1e-30 and 0 < -ref.grad(np.array([-10.0]))[0] < 1e-30
    h = 1e-6
    np.testing.assert_allclose(ref.grad(x), (ref.forward(x + h) - ref.forward(x - h)) / (2 * h), rtol=1e-7)
    # the tanh form is an approximation: within 5e-4 of the exact GELU on [-6, 6] (Hendrycks & Gimpel)
    xs = np.linspace(-6, 6, 1201)
    assert np.max(np.abs(ref.forward(xs) - actlab.get("gelu").forward(xs))) < 5e-4


def test_limits_of_the_modern_four_at_infinity():
    inf = np.array([-np.inf, np.inf])
    for name, hp in (("gelu", {}), ("gelu", {"approximate": "tanh"}), ("silu", {}), ("mish", {})):
        np.testing.assert_array_equal(actlab.get(name, **hp).forward(inf), [0, np.inf])
        np.testing.assert_array_equal(actlab.get(name, **hp).grad(inf), [0, 1])
    np.testing.assert_allclose(actlab.get("selu").forward(inf), [-LAM * ALPHA, np.inf], rtol=1e-15)
    np.testing.assert_allclose(actlab.get("selu").grad(inf), [0, LAM], rtol=1e-15)


def test_exact_table_names_registered_activations():
    # every built-in has hand-written values today; a new entry gets the generic checks below
    # (dtype, ±inf, NaN, central differences) without a test edit, and earns a row here
    assert set(EXACT) <= set(NAMES) and len(EXACT) == 11


@pytest.mark.parametrize("name", sorted(EXACT))
def test_exact_values_and_derivatives_at_minus_one_zero_one(name):
    ref = actlab.get(name)
    x = np.array([-1.0, 0.0, 1.0])
    f, df = EXACT[name]
    np.testing.assert_allclose(ref.forward(x), f, rtol=1e-15, atol=0)
    np.testing.assert_allclose(ref.grad(x), df, rtol=1e-15, atol=0)


def test_the_kink_is_the_left_derivative():
    zero = np.array([0.0])
    assert actlab.get("relu").grad(zero)[0] == 0.0
    assert actlab.get("leaky_relu", negative_slope=0.2).grad(zero)[0] == 0.2
    assert actlab.get("prelu", init=0.3).grad(zero)[0] == 0.3
    assert actlab.get("prelu").param_grads(zero)["weight"][0] == 0.0
    rr = actlab.get("rrelu", form="divisor")
    assert rr.grad(zero)[0] == 1 / 5.5
    assert actlab.get("elu", alpha=0.5).grad(zero)[0] == 0.5


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_dtype_in_equals_dtype_out(name, dtype):
    ref = actlab.get(name)
    x = np.linspace(-3, 3, 13).astype(dtype)
    assert ref.forward(x).dtype == dtype
    assert ref.grad(x).dtype == dtype
    for g in ref.param_grads(x).values():
        assert g.dtype == dtype


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_huge_and_infinite_inputs_are_safe(name, dtype):
    ref = actlab.get(name)
    x = np.array([-np.inf, -1e4, -100, -10, 10, 100, 1e4, np.inf]).astype(dtype)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        warnings.simplefilter("error")
        y, dy = ref.forward(x), ref.grad(x)
        grads = ref.param_grads(x)
    assert not np.isnan(y).any() and not np.isnan(dy).any()
    assert all(not np.isnan(g).any() for g in grads.values())


def test_limits_at_infinity():
    inf = np.array([-np.inf, np.inf])
    np.testing.assert_array_equal(actlab.get("sigmoid").forward(inf), [0, 1])
    np.testing.assert_array_equal(actlab.get("tanh").forward(inf), [-1, 1])
    np.testing.assert_array_equal(actlab.get("relu").forward(inf), [0, np.inf])
    np.testing.assert_array_equal(actlab.get("leaky_relu", negative_slope=0).forward(inf), [0, np.inf])
    np.testing.assert_array_equal(actlab.get("elu", alpha=2).forward(inf), [-2, np.inf])
    np.testing.assert_array_equal(actlab.get("sigmoid").grad(inf), [0, 0])


@pytest.mark.parametrize("name", NAMES)
def test_nan_in_nan_out(name):
    ref = actlab.get(name)
    x = np.array([np.nan, 1.0, -1.0])
    assert np.isnan(ref.forward(x)[0]) and np.isnan(ref.grad(x)[0])
    assert not np.isnan(ref.forward(x)[1:]).any()


@pytest.mark.parametrize("name", NAMES)
def test_grad_matches_central_differences(name):
    ref = actlab.get(name)
    rng = np.random.default_rng(0)
    x = rng.uniform(-4, 4, 200)
    x = x[np.abs(x) > 1e-3]  # away from the kink
    h = 1e-6
    numeric = (ref.forward(x + h) - ref.forward(x - h)) / (2 * h)
    np.testing.assert_allclose(ref.grad(x), numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("num_parameters", [1, 3])
def test_prelu_weight_grad_matches_central_differences(num_parameters):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 3, 5))
    upstream = rng.normal(size=x.shape)
    w = rng.uniform(0.1, 0.5, num_parameters)
    ref = actlab.get("prelu", num_parameters=num_parameters)
    ref.weight = w.copy()
    analytic = ref.weight_grad(x, upstream)
    numeric = np.zeros(num_parameters)
    for i in range(num_parameters):
        for sign in (1, -1):
            ref.weight = w.copy()
            ref.weight[i] += sign * 1e-6
            numeric[i] += sign * (ref.forward(x) * upstream).sum() / 2e-6
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6)


def test_prelu_channels_last_and_mismatch():
    ref = actlab.get("prelu", num_parameters=3, channel_axis=-1)
    ref.weight = np.array([0.1, 0.2, 0.3])
    x = -np.ones((2, 4, 3))
    np.testing.assert_allclose(ref.forward(x)[0, 0], [-0.1, -0.2, -0.3])
    with pytest.raises(ValueError, match="channels on axis -1 but num_parameters=3"):
        ref.forward(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match="need an input with a channel axis"):
        ref.forward(np.ones(3))


# --- invariants (hypothesis) -------------------------------------------------------------------

finite = st.floats(-1e4, 1e4, allow_nan=False)
moderate = st.floats(-30, 30, allow_nan=False)
slopes = st.floats(0, 1, allow_nan=False)


@given(st.lists(moderate, min_size=1, max_size=20))
def test_sigmoid_strictly_inside_zero_one(xs):
    y = actlab.get("sigmoid").forward(np.array(xs))
    assert ((y > 0) & (y < 1)).all()


@given(st.lists(finite, min_size=1, max_size=20))
def test_tanh_is_two_sigmoid_of_two_x_minus_one_and_odd(xs):
    x = np.array(xs)
    t = actlab.get("tanh").forward(x)
    np.testing.assert_allclose(t, 2 * actlab.get("sigmoid").forward(2 * x) - 1, atol=1e-15)
    np.testing.assert_array_equal(actlab.get("tanh").forward(-x), -t)


@given(st.lists(st.floats(allow_nan=False), min_size=1, max_size=20))
def test_leaky_relu_with_slope_zero_is_relu(xs):
    x = np.array(xs)
    np.testing.assert_array_equal(actlab.get("leaky_relu", negative_slope=0).forward(x), actlab.get("relu").forward(x))
    np.testing.assert_array_equal(actlab.get("leaky_relu", negative_slope=0).grad(x), actlab.get("relu").grad(x))


@given(st.lists(finite, min_size=1, max_size=20), slopes)
def test_prelu_at_a_is_leaky_relu_at_a(xs, a):
    x = np.array(xs)
    prelu = actlab.get("prelu", init=a)
    leaky = actlab.get("leaky_relu", negative_slope=a)
    np.testing.assert_array_equal(prelu.forward(x), leaky.forward(x))
    np.testing.assert_array_equal(prelu.grad(x), leaky.grad(x))


@given(st.floats(0, 10, allow_nan=False), st.floats(1e-12, 1e-6))
def test_elu_continuous_at_zero(alpha, eps):
    elu = actlab.get("elu", alpha=alpha)
    left, mid, right = elu.forward(np.array([-eps, 0.0, eps]))
    assert mid == 0 and abs(left) <= alpha * eps * 1.0001 and right == eps


@given(st.lists(finite, min_size=1, max_size=20), st.sampled_from(["slope", "divisor"]))
def test_rrelu_eval_is_leaky_relu_at_its_test_slope(xs, form):
    x = np.array(xs)
    rr = actlab.get("rrelu", form=form)
    mean = (rr.lower + rr.upper) / 2
    expected_slope = mean if form == "slope" else 1 / mean
    assert rr.test_slope == pytest.approx(expected_slope)
    leaky = actlab.get("leaky_relu", negative_slope=expected_slope)
    np.testing.assert_allclose(rr.forward(x), leaky.forward(x), rtol=1e-15)


@pytest.mark.parametrize("form,lo,hi", [("slope", 1 / 8, 1 / 3), ("divisor", 1 / 8, 1 / 3)])
def test_rrelu_training_slopes_in_range_with_the_right_mean(form, lo, hi):
    rr = actlab.get("rrelu", form=form)
    slopes_ = rr.sample_slopes((200_000,), np.random.default_rng(0))
    assert rr.slope_bounds() == pytest.approx((lo, hi))
    assert slopes_.min() >= lo and slopes_.max() <= hi
    a = np.random.default_rng(1).uniform(rr.lower, rr.upper, 200_000)
    expected_mean = a.mean() if form == "slope" else (1 / a).mean()  # E[1/a] ≠ 1/E[a]
    assert slopes_.mean() == pytest.approx(expected_mean, rel=5e-3)
    x = -np.ones(5)
    np.testing.assert_array_equal(rr.forward_train(x, slopes_[:5]), -slopes_[:5])
