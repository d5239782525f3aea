"""plan.Setting: the one place where a run's settings and their defaults are written."""

from __future__ import annotations

import dataclasses

import pytest

from actlab.cli import build_parser
from actlab.lab import plan


def _compare_parser():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices["compare"]


def test_runspec_and_comparison_extend_the_setting_without_restating_it():
    setting = {f.name: f for f in dataclasses.fields(plan.Setting)}
    for cls in (plan.RunSpec, plan.Comparison):
        assert issubclass(cls, plan.Setting)
        inherited = {f.name: f for f in dataclasses.fields(cls) if f.name in setting}
        assert inherited.keys() == setting.keys()
        # the same field objects' defaults: nothing is spelled twice
        assert all(inherited[k].default == setting[k].default for k in setting)
        own = set(cls.__dataclass_fields__) - setting.keys()
        assert not own & {"data", "model", "lr", "epochs", "batch_size"}


def test_every_setting_is_a_compare_option_with_the_settings_default():
    p = _compare_parser()
    by_dest = {a.dest: a for a in p._actions}
    for name, default, meta in plan.options():
        assert name in by_dest, f"--{name.replace('_', '-')} is missing from actlab compare"
        assert meta["help"]
        if name in ("data", "model"):  # the CLI's own defaults: a spec, and "auto" (the model that fits the data)
            continue
        got = by_dest[name].default
        assert (float(got) if name == "lr" else got) == default


def test_the_cli_builds_the_comparison_from_the_options(monkeypatch, tmp_path):
    seen = {}

    def fake_compare(comparison, out, **kw):
        seen["c"] = comparison
        raise SystemExit(0)

    from actlab.lab import compare

    monkeypatch.setattr(compare, "compare", fake_compare)
    args = _compare_parser().parse_args(["--acts", "relu,elu", "--lr", "0.01,0.1", "--val-fraction", "0.2",
                                         "--batchnorm", "--batch-size", "32", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        args.func(args)
    c = seen["c"]
    assert (c.lrs, c.val_fraction, c.batchnorm, c.batch_size) == ((0.01, 0.1), 0.2, True, 32)
    assert c.width == plan.Setting().width and c.schedule == plan.Setting().schedule


@pytest.mark.parametrize("change,message", [
    ({"epochs": 0}, "invalid epochs=0; valid: an int >= 1"),
    ({"lr": -1.0}, "invalid lr=-1.0"),
    ({"init": "orthogonal"}, "invalid init='orthogonal'; valid: kaiming, xavier"),
    ({"warmup": -1.0}, "invalid warmup=-1.0"),
])
def test_one_check_for_a_setting_a_run_and_a_comparison(change, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        plan.Setting(**change).check()
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        plan.Comparison(variants=tuple(plan.parse_variants("relu")), **change).check()
