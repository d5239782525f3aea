"""The property table against the known maths, for default and non-default hyper-parameters.

Closed forms used below (X ~ N(0, 1), φ the standard normal density, Φ its CDF):
E[max(0, X)] = φ(0) = 1/√(2π); E[leaky_a(X)] = (1 − a)φ(0); E[elu_α(X)] = φ(0) + α(e^½ Φ(−1) − ½).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import actlab
from actlab import properties, registry

PHI0 = 1 / math.sqrt(2 * math.pi)
INF = math.inf


def props(name: str, **hp):
    return properties.of(name, measure_cost=False, **hp)


def elu_mean(alpha: float) -> float:
    big_phi_minus_1 = 0.5 * math.erfc(1 / math.sqrt(2))
    return PHI0 + alpha * (math.exp(0.5) * big_phi_minus_1 - 0.5)


@pytest.fixture(scope="module")
def default_table():
    # small timing run: the numbers are noise here, only their contract is tested
    return properties.table(cost_elements=20_000, cost_repeats=3)


# --- the table as a whole -------------------------------------------------------------------------


def test_table_has_every_registered_activation_in_order(default_table):
    assert list(default_table) == registry.names()
    for name, row in default_table.items():
        assert row["name"] == name
        for key in ("range", "mean_output", "zero_centred", "saturates", "dead_zone", "monotonic",
                    "learned_parameters", "relative_cost", "f_at_0", "grad_at_0", "max_grad", "stochastic"):
            assert key in row, (name, key)
        assert set(row["saturates"]) == {"left", "right"}


def test_relative_cost_relu_is_exactly_one_and_all_positive_finite(default_table):
    assert default_table["relu"]["relative_cost"] == 1.0
    for name, row in default_table.items():
        c = row["relative_cost"]
        assert isinstance(c, float) and math.isfinite(c) and c > 0, (name, c)


def test_relative_costs_restores_torch_threads():
    before = torch.get_num_threads()
    costs = properties.relative_costs({"elu": {"alpha": 0.5}}, elements=1000, repeats=2, threads=1)
    assert set(costs) == {"relu", "elu"} and costs["relu"] == 1.0
    assert torch.get_num_threads() == before


def test_relative_costs_rejects_nonsense():
    with pytest.raises(ValueError, match="repeats"):
        properties.relative_costs({}, elements=10, repeats=0)


def test_of_measures_cost_against_relu():
    p = properties.of("tanh", cost_elements=2000, cost_repeats=2)
    assert math.isfinite(p["relative_cost"]) and p["relative_cost"] > 0
    assert props("tanh")["relative_cost"] is None


# --- ranges -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, hp, expected, closed", [
    ("sigmoid", {}, [0.0, 1.0], [False, False]),
    ("tanh", {}, [-1.0, 1.0], [False, False]),
    ("relu", {}, [0.0, INF], [True, False]),
    ("leaky_relu", {}, [-INF, INF], [False, False]),
    ("leaky_relu", {"negative_slope": 0.0}, [0.0, INF], [True, False]),
    ("prelu", {}, [-INF, INF], [False, False]),
    ("prelu", {"init": -0.5}, [0.0, INF], [True, False]),
    ("rrelu", {}, [-INF, INF], [False, False]),
    ("elu", {}, [-1.0, INF], [False, False]),
    ("elu", {"alpha": 0.5}, [-0.5, INF], [False, False]),
    ("elu", {"alpha": 2.0}, [-2.0, INF], [False, False]),
    ("elu", {"alpha": 0.0}, [0.0, INF], [True, False]),
])
def test_range(name, hp, expected, closed):
    p = props(name, **hp)
    assert p["range"] == expected
    assert p["range_closed"] == closed


# --- mean output ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name, hp, mean", [
    ("sigmoid", {}, 0.5),
    ("tanh", {}, 0.0),
    ("relu", {}, PHI0),
    ("leaky_relu", {}, 0.99 * PHI0),
    ("leaky_relu", {"negative_slope": 0.3}, 0.7 * PHI0),
    ("prelu", {}, 0.75 * PHI0),
    ("rrelu", {}, (1 - (1 / 8 + 1 / 3) / 2) * PHI0),
    ("rrelu", {"form": "divisor"}, (1 - 1 / 5.5) * PHI0),
    ("elu", {}, elu_mean(1.0)),
    ("elu", {"alpha": 0.5}, elu_mean(0.5)),
])
def test_mean_output_matches_closed_form(name, hp, mean):
    p = props(name, **hp)
    assert p["mean_output"] == pytest.approx(mean, abs=1e-12)
    assert p["zero_centred"] is (abs(mean) < 1e-9)


def test_zero_centred_only_for_tanh_by_default():
    assert [n for n in registry.names() if props(n)["zero_centred"]] == ["tanh"]
    assert props("leaky_relu", negative_slope=1.0)["zero_centred"]  # the identity


def test_mean_grad():
    assert props("relu")["mean_grad"] == pytest.approx(0.5, abs=1e-12)
    assert props("leaky_relu", negative_slope=0.2)["mean_grad"] == pytest.approx(0.6, abs=1e-12)


# --- saturation, dead zone, monotonicity -------------------------------------------------------------


@pytest.mark.parametrize("name, hp, left, right", [
    ("sigmoid", {}, True, True),
    ("tanh", {}, True, True),
    ("relu", {}, False, False),
    ("leaky_relu", {}, False, False),
    ("leaky_relu", {"negative_slope": 0.0}, False, False),
    ("prelu", {}, False, False),
    ("rrelu", {}, False, False),
    ("elu", {}, True, False),
    ("elu", {"alpha": 3.0}, True, False),
    ("elu", {"alpha": 0.0}, False, False),  # f' = 0 on the left: a dead zone, not saturation
])
def test_saturates(name, hp, left, right):
    assert props(name, **hp)["saturates"] == {"left": left, "right": right}


@pytest.mark.parametrize("name, hp, dead", [
    ("sigmoid", {}, False),
    ("tanh", {}, False),
    ("relu", {}, True),
    ("leaky_relu", {}, False),
    ("leaky_relu", {"negative_slope": 0.0}, True),
    ("prelu", {}, False),
    ("prelu", {"init": 0.0}, True),
    ("rrelu", {}, False),
    ("rrelu", {"lower": 0.0, "upper": 0.0}, True),
    ("elu", {}, False),
    ("elu", {"alpha": 0.0}, True),
])
def test_dead_zone(name, hp, dead):
    p = props(name, **hp)
    assert p["dead_zone"] is dead
    assert p["dead_zone_intervals"] == ([[-INF, 0.0]] if dead else [])


def test_saturation_onset_where_the_gradient_falls_under_the_fraction():
    frac = properties.SATURATION_FRACTION
    # sigmoid: σ(1 − σ) = frac · 1/4  →  x = logit((1 + √(1 − frac)) / 2)
    s = (1 + math.sqrt(1 - frac)) / 2
    x_sig = math.log(s / (1 - s))
    onset = props("sigmoid")["saturation_onset"]
    assert x_sig <= onset["right"] <= x_sig + 0.01 and -x_sig - 0.01 <= onset["left"] <= -x_sig
    assert 5.0 < x_sig < 5.1  # the chapter's "|x| > 5"
    x_tanh = math.atanh(math.sqrt(1 - frac))
    assert x_tanh <= props("tanh")["saturation_onset"]["right"] <= x_tanh + 0.01
    for alpha in (0.5, 1.0, 2.0):
        x_elu = math.log(frac * max(1.0, alpha) / alpha)
        got = props("elu", alpha=alpha)["saturation_onset"]
        assert x_elu - 0.01 <= got["left"] <= x_elu and got["right"] is None


def test_monotonic():
    for name in registry.names():
        assert props(name)["monotonic"], name
    assert not props("prelu", init=-0.5)["monotonic"]


# --- learned parameters, stochasticity, extras ---------------------------------------------------------


@pytest.mark.parametrize("name, hp, n", [
    ("sigmoid", {}, 0), ("relu", {}, 0), ("leaky_relu", {}, 0), ("rrelu", {}, 0), ("elu", {}, 0),
    ("prelu", {}, 1), ("prelu", {"num_parameters": 3}, 3), ("prelu", {"num_parameters": 5, "channel_axis": -1}, 5),
])
def test_learned_parameters(name, hp, n):
    assert props(name, **hp)["learned_parameters"] == n


def test_per_channel_prelu_has_the_shared_curve():
    shared, channels = props("prelu", init=0.1), props("prelu", init=0.1, num_parameters=4, channel_axis=2)
    for key in ("range", "mean_output", "dead_zone", "grad_at_kink", "max_grad"):
        assert shared[key] == channels[key], key


def test_rrelu_slopes_and_stochasticity():
    p = props("rrelu")
    assert p["test_slope"] == pytest.approx((1 / 8 + 1 / 3) / 2)
    assert p["train_slopes"] == pytest.approx([1 / 8, 1 / 3])
    assert p["stochastic"] is True
    d = props("rrelu", form="divisor")
    assert d["test_slope"] == pytest.approx(1 / 5.5)
    assert d["train_slopes"] == pytest.approx([1 / 8, 1 / 3])
    assert d["grad_at_0"] == pytest.approx(1 / 5.5)
    assert props("rrelu", lower=0.2, upper=0.2)["stochastic"] is False
    for e in registry.entries():  # the measured property is the registry's declared capability
        assert props(e.name)["stochastic"] is e.stochastic, e.name


@pytest.mark.parametrize("name, hp, f0, g0, kink, gk, gmax", [
    ("sigmoid", {}, 0.5, 0.25, None, None, 0.25),
    ("tanh", {}, 0.0, 1.0, None, None, 1.0),
    ("relu", {}, 0.0, 0.0, 0.0, 0.0, 1.0),
    ("leaky_relu", {"negative_slope": 0.1}, 0.0, 0.1, 0.0, 0.1, 1.0),
    ("leaky_relu", {"negative_slope": 1.0}, 0.0, 1.0, None, None, 1.0),
    ("prelu", {}, 0.0, 0.25, 0.0, 0.25, 1.0),
    ("elu", {}, 0.0, 1.0, None, None, 1.0),  # α = 1: f is C¹, no kink in f'
    ("elu", {"alpha": 0.5}, 0.0, 0.5, 0.0, 0.5, 1.0),
    ("elu", {"alpha": 2.0}, 0.0, 2.0, 0.0, 2.0, 2.0),
])
def test_values_at_zero_and_the_kink(name, hp, f0, g0, kink, gk, gmax):
    p = props(name, **hp)
    assert (p["f_at_0"], p["kink"], p["max_grad"]) == (f0, kink, pytest.approx(gmax))
    assert p["grad_at_0"] == pytest.approx(g0)
    assert p["grad_at_kink"] == (None if gk is None else pytest.approx(gk))


# --- invariants over hyper-parameters -------------------------------------------------------------


@settings(max_examples=25)
@given(st.one_of(st.just(0.0), st.floats(0.0, 0.999)))
def test_leaky_relu_over_its_slope(a):
    p = props("leaky_relu", negative_slope=a)
    assert p["dead_zone"] is (a == 0)
    assert p["range"] == [0.0 if a == 0 else -INF, INF]
    assert p["mean_output"] == pytest.approx((1 - a) * PHI0, abs=1e-12)
    assert p["saturates"] == {"left": False, "right": False} and p["monotonic"]
    assert p["kink"] == 0.0 and p["grad_at_kink"] == pytest.approx(a)


@settings(max_examples=25)
@given(st.one_of(st.just(0.0), st.floats(1e-3, 10.0)))
def test_elu_over_alpha(alpha):
    p = props("elu", alpha=alpha)
    assert p["range"][0] == pytest.approx(-alpha) and p["range"][1] == INF
    assert p["saturates"] == {"left": alpha > 0, "right": False}
    assert p["dead_zone"] is (alpha == 0)
    assert p["mean_output"] == pytest.approx(elu_mean(alpha), abs=1e-12)


# --- names, errors, JSON, rendering ------------------------------------------------------------------


def test_aliases_and_string_values_from_the_command_line():
    assert props("logistic")["name"] == "sigmoid"
    assert props("leaky", negative_slope="0")["dead_zone"] is True


def test_errors_are_one_line_value_errors():
    with pytest.raises(ValueError, match="valid: sigmoid"):
        props("softsign")
    with pytest.raises(ValueError, match="negative_slope"):
        props("leaky_relu", negative_slope=2)
    with pytest.raises(ValueError, match="unknown hyper-parameter"):
        properties.table({"elu": {"beta": 1}}, measure_cost=False)
    with pytest.raises(ValueError, match="valid: sigmoid"):
        properties.table(names=["nope"], measure_cost=False)


def test_table_takes_hparams_by_alias_and_restricts_rows():
    rows = properties.table({"leaky": {"negative_slope": 0}}, names=["leaky", "relu"], measure_cost=False)
    assert list(rows) == ["leaky_relu", "relu"]
    assert rows["leaky_relu"]["dead_zone"] is True


def test_json_has_inf_as_strings(default_table):
    text = properties.render(default_table, "json")
    data = json.loads(text)
    json.dumps(data, allow_nan=False)  # no bare Infinity/NaN anywhere
    assert data["relu"]["range"] == [0.0, "inf"]
    assert data["leaky_relu"]["range"] == ["-inf", "inf"]
    assert data["sigmoid"]["range"] == [0.0, 1.0]
    assert data["relu"]["dead_zone_intervals"] == [["-inf", 0.0]]
    assert properties.to_jsonable({"a": (np.float32(-np.inf), np.nan, np.int64(3), np.bool_(True))}) == \
        {"a": ["-inf", "nan", 3, True]}


def test_render_markdown_and_text(default_table):
    md = properties.render(default_table, "markdown").splitlines()
    rows = [line for line in md if line.startswith("|")]
    assert len(rows) == 2 + len(registry.names())
    assert len({line.count("|") for line in rows}) == 1
    assert rows[1].startswith("|---")
    text = properties.render(default_table, "text")
    for name in registry.names():
        assert name in text
    with pytest.raises(ValueError, match="valid: text, markdown, json"):
        properties.render(default_table, "html")


def test_the_reference_is_what_is_measured():
    # the range and f(0) move with the reference itself, not with a typed-in table
    ref = actlab.get("elu", alpha=0.7)
    p = props("elu", alpha=0.7)
    assert p["range"][0] == float(ref.forward(np.array([-np.inf]))[0])
    assert p["grad_at_0"] == float(ref.grad(np.array([0.0]))[0])
