"""actlab.lab.plan: variant syntax, run specs, keys, and the checks of a comparison."""

from __future__ import annotations

import json

import pytest

from actlab import registry
from actlab.lab import plan
from actlab.lab.plan import Comparison, RunSpec, parse_variants


def labels(text):
    return [v.label for v in parse_variants(text)]


def test_all_is_the_seven_in_the_chapters_order():
    assert labels("all") == registry.names()
    assert labels("relu, all ,relu") == ["relu"] + [n for n in registry.names() if n != "relu"]
    assert labels("modern") == registry.names("modern") and len(labels("every")) == len(registry.names("every"))


def test_variant_labels_name_what_differs_from_the_defaults():
    assert labels("leaky_relu:negative_slope=0.1") == ["leaky_relu(negative_slope=0.1)"]
    assert labels("leaky_relu:negative_slope=0.01") == ["leaky_relu"]  # the default is no variant
    assert labels("rrelu:form=divisor") == ["rrelu(form=divisor)"]
    assert labels("prelu:num_parameters=channel") == ["prelu(channel)"]
    assert labels("prelu:channelwise:init=0.1") == ["prelu(channel, init=0.1)"]
    assert labels("elu:alpha=0.5") == ["elu(alpha=0.5)"]


def test_spellings_of_one_variant_collapse_to_one():
    vs = parse_variants("rrelu:form=divisor,rrelu:form=divisor:lower=3:upper=8,lrelu,leaky_relu,"
                        "prelu:channelwise,prelu:num_parameters=channel,prelu:shared,prelu")
    assert [v.label for v in vs] == ["rrelu(form=divisor)", "leaky_relu", "prelu(channel)", "prelu"]
    divisor = vs[0].hp
    assert (divisor["lower"], divisor["upper"], divisor["form"]) == (3.0, 8.0, "divisor")
    assert vs[2].hp["num_parameters"] == "channel"


def test_several_leaky_slopes_and_both_rrelu_forms():
    vs = parse_variants("leaky_relu:negative_slope=0.01,leaky_relu:negative_slope=0.1,leaky_relu:negative_slope=0.3,"
                        "rrelu,rrelu:form=divisor")
    assert len({v.hparams for v in vs}) == 5


@pytest.mark.parametrize("text, match", [
    ("softsign", "unknown activation 'softsign'"),
    ("relu:alpha=1", "unknown hyper-parameter 'alpha'"),
    ("leaky_relu:negative_slope=2", "invalid negative_slope"),
    ("leaky_relu:negative_slope=abc", "invalid negative_slope"),
    ("rrelu:form=other", "invalid form"),
    ("rrelu:lower=0.5:upper=0.1", "lower=0.5 > upper=0.1"),
    ("relu:channelwise", "expected NAME"),
    ("prelu:num_parameters=0", "invalid num_parameters"),
    (",,", "no activation given"),
])
def test_bad_variants_raise_one_line(text, match):
    with pytest.raises(ValueError, match=match) as e:
        parse_variants(text)
    assert "\n" not in str(e.value)


def test_key_identifies_the_config_not_the_label():
    v = parse_variants("prelu:channelwise")[0]
    a = RunSpec(act=v.act, hparams=v.hparams, variant=v.label, seed=1)
    assert a.key == RunSpec(act=v.act, hparams=v.hparams, variant="renamed", seed=1).key
    assert a.key != RunSpec(act=v.act, hparams=v.hparams, variant=v.label, seed=2).key
    assert a.key != RunSpec(act=v.act, hparams=v.hparams, variant=v.label, seed=1, lr=0.1).key
    assert a.group == RunSpec(act="relu", seed=7).group
    assert a.group != RunSpec(act="relu", seed=7, epochs=3).group


def test_spec_round_trips_through_json():
    v = parse_variants("rrelu:form=divisor")[0]
    a = RunSpec(data="mnist1d", subset=100, model="cnn1d", depth=3, act=v.act, hparams=v.hparams,
                variant=v.label, seed=4, optimizer="adam")
    b = RunSpec.from_dict(json.loads(a.to_json()))
    assert b == a and b.key == a.key


def test_key_is_stable_across_versions():
    # Resume depends on this value: a change here silently re-runs every stored comparison.
    # Change it only together with plan.PROTOCOL, on purpose.
    assert RunSpec().key == "3c4a170be3db0029"


def test_plan_is_seed_major_and_complete():
    c = Comparison(variants=tuple(parse_variants("relu,tanh,prelu:channelwise")), seeds=3, epochs=2)
    specs = plan.plan(c)
    assert [(s.seed, s.variant) for s in specs[:4]] == [(0, "relu"), (0, "tanh"), (0, "prelu(channel)"), (1, "relu")]
    assert len(specs) == 9 and len({s.key for s in specs}) == 9
    assert len({s.group for s in specs}) == 1
    assert all(s.epochs == 2 for s in specs)


def test_plan_refuses_an_unresolved_model():
    with pytest.raises(ValueError, match="auto"):
        plan.plan(Comparison(variants=tuple(parse_variants("relu")), model="auto"))


@pytest.mark.parametrize("field, value, match", [
    ("seeds", 0, "invalid seeds=0"),
    ("epochs", 0, "invalid epochs=0"),
    ("optimizer", "rmsprop", "invalid optimizer='rmsprop'; valid: sgd, adam"),
    ("schedule", "step", "invalid schedule"),
    ("lr", 0.0, "invalid lr"),
    ("lr", float("nan"), "invalid lr"),
    ("warmup", -1, "invalid warmup=-1; valid: a number of epochs >= 0"),
    ("momentum", 1.0, "invalid momentum"),
    ("weight_decay", -1.0, "invalid weight_decay"),
    ("batch_size", 0, "invalid batch_size"),
    ("subset", 0, "invalid subset"),
    ("val_fraction", 1.0, "invalid val_fraction"),
    ("width", 0.0, "invalid width"),
    ("depth", 0, "invalid depth"),
    ("init", "orthogonal", "invalid init"),
    ("model", "resnet", "unknown model 'resnet'; valid: cnn, he14, mlp, cnn1d"),
])
def test_bad_settings_raise_one_line(field, value, match):
    c = Comparison(variants=tuple(parse_variants("relu")), **{field: value})
    with pytest.raises(ValueError, match=match.replace("(", r"\(").replace("[", r"\[")) as e:
        c.check()
    assert "\n" not in str(e.value)


def test_an_lr_grid_runs_every_variant_at_every_rate_with_the_single_rate_keys():
    variants = tuple(parse_variants("relu,tanh"))
    grid = plan.plan(Comparison(variants=variants, seeds=2, lr=(0.01, 0.1)))
    assert [(s.seed, s.lr, s.variant) for s in grid[:5]] == [
        (0, 0.01, "relu"), (0, 0.01, "tanh"), (0, 0.1, "relu"), (0, 0.1, "tanh"), (1, 0.01, "relu")]
    assert len(grid) == 8 and len({s.key for s in grid}) == 8
    # each rate's runs are exactly the runs (same keys) of the comparison at that one rate:
    # a grid resumes a single-rate store, and a single rate is today's plan
    for lr in (0.01, 0.1):
        single = plan.plan(Comparison(variants=variants, seeds=2, lr=lr))
        assert [s.key for s in single] == [s.key for s in grid if s.lr == lr]
        assert [s.key for s in plan.plan(Comparison(variants=variants, seeds=2, lr=[lr]))] == [s.key for s in single]
    assert Comparison(variants=variants, lr=[0.1, 0.3]).lrs == (0.1, 0.3)
    assert Comparison(variants=variants, lr=[0.1]).lr == 0.1
    assert Comparison(variants=variants, lr=[0.1, 0.3]).settings()["lr"] == [0.1, 0.3]
    assert Comparison(variants=variants).settings()["lr"] == 0.02
    json.dumps(Comparison(variants=variants, lr=(0.1, 0.3)).settings())


@pytest.mark.parametrize("text, expected", [("0.02", 0.02), (" 0.003, 0.01,1e-1 ", (0.003, 0.01, 0.1))])
def test_parse_lrs(text, expected):
    assert plan.parse_lrs(text) == expected


@pytest.mark.parametrize("text, match", [
    ("", "invalid lr ''"), ("0.1,", "invalid lr ''"), ("0.1,fast", "invalid lr 'fast'"), ("-1", "invalid lr '-1'"),
    ("0,0.1", "invalid lr '0'"), ("inf", "invalid lr 'inf'"), ("0.1,0.10", "0.10 is given twice"),
])
def test_bad_lr_lists_raise_one_line(text, match):
    with pytest.raises(ValueError, match=match) as e:
        plan.parse_lrs(text)
    assert "\n" not in str(e.value) and "0.003,0.01,0.03,0.1" in str(e.value)


@pytest.mark.parametrize("lr, match", [((), "invalid lr=()"), ((0.1, -0.1), "invalid lr"),
                                       ((0.1, 0.1), "one is given twice")])
def test_bad_lr_grids_in_the_api(lr, match):
    with pytest.raises(ValueError, match=match.replace("(", r"\(").replace(")", r"\)")):
        Comparison(variants=tuple(parse_variants("relu")), lr=lr).check()


def test_a_protocol_1_spec_reads_back_without_warm_up():
    old = {k: v for k, v in RunSpec().to_dict().items() if k != "warmup"}
    assert RunSpec.from_dict({**old, "protocol": 1}).warmup == 0.0
    assert RunSpec.from_dict(old).warmup == RunSpec().warmup == 1.0


def test_the_recipe_states_the_defaults():
    text = Comparison(variants=tuple(parse_variants("relu"))).settings()["recipe"]
    for words in ("SGD", "peak lr 0.02", "rising linearly from 0 over the first 1 epoch", "cosine", "momentum 0.9",
                  "weight decay 0.0005", "batch 64", "Kaiming", "batch norm off", f"protocol {plan.PROTOCOL}"):
        assert words in text
    grid = plan.recipe({**Comparison(variants=()).settings(), "lr": [0.01, 0.1], "warmup": 0, "batchnorm": True})
    assert "chosen per activation from 0.01, 0.1" in grid and "rising" not in grid and "batch norm on" in grid
