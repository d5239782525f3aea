"""actlab.lab.stepbench and `actlab bench --model`: what the whole-step benchmark measures (no
timing is asserted: ratios are benchmark output, not test results)."""

from __future__ import annotations

import json

import pytest

import torch

from actlab.cli import main
from actlab.lab import stepbench

TINY = stepbench.StepSetting(model="cnn", width=0.25, batch=4, side=8)


def test_builds_are_paired_and_differ_only_in_the_activation():
    case = next(c for c in stepbench.STEP_CASES if c.label == "prelu-channel")
    ours = stepbench._build(TINY, case.ours())
    native = stepbench._build(TINY, case.native())
    shared = [(k, v) for k, v in ours.state_dict().items() if "_act" not in k]
    assert shared and all(torch.equal(v, native.state_dict()[k]) for k, v in shared)
    acts = [m for n, m in native.named_modules() if n.endswith("_act")]
    assert acts and all(isinstance(m, torch.nn.PReLU) and m.num_parameters > 1 for m in acts)


def test_a_row_has_three_step_times_ratios_of_them_and_bytes_kept(fast_path_forced):
    rep = stepbench.run(["relu", "elu"], TINY, threads=1, repeats=2, warmup=0)
    assert [r["case"] for r in rep["results"]] == ["relu", "elu"]
    for r in rep["results"]:
        assert set(r["step_ms"]) == set(r["steps_ms"]) == {"native", "actlab", "identity"}
        lo, hi = r["ratio_ci95"]
        assert lo <= r["ratio"] <= hi
        assert r["ratio"] > 0 and r["ceiling"] > 0
        assert r["saved_bytes"]["actlab"] <= r["saved_bytes"]["native"]
    # torch.nn's ELU keeps its input x; actlab's keeps its output y, which the next layer keeps
    # anyway (a conv saves its input), so in a whole network actlab's ELU costs no bytes of its own
    elu = rep["results"][1]["saved_bytes"]
    assert elu["actlab"] < elu["native"]
    assert "actlab_lean" in rep["results"][0]["saved_bytes"]
    assert rep["setting"]["model"] == "cnn" and rep["setting"]["threads"] == 1
    assert "others_cores" in rep["load"]
    assert {g["case"] for g in rep["goals"]} == {"relu", "elu"}
    assert "goals:" in stepbench.summary(rep)


def test_goals_use_the_issue_thresholds():
    rows = [{"case": "prelu-channel", "ratio": 1.2}, {"case": "relu", "ratio": 0.99}, {"case": "elu", "ratio": 1.1}]
    got = {g["case"]: (g["threshold"], g["met"]) for g in stepbench.goals(rows)}
    assert got == {"prelu-channel": (1.25, False), "relu": (0.98, True), "elu": (1.05, True)}


def test_unknown_case_is_a_one_line_error(capsys):
    assert main(["bench", "--model", "cnn", "--acts", "swish"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("actlab: error: --acts: no step case matches swish; valid: sigmoid, tanh")


def test_cli_writes_the_step_json(tmp_path, capsys):
    out = tmp_path / "step.json"
    assert main(["bench", "--model", "cnn", "--width", "0.25", "--batch", "2", "--acts", "tanh", "--repeats", "1",
                 "--warmup", "0", "--threads", "1", "--quiet", "--json", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["kind"] == "whole training step" and rep["results"][0]["case"] == "tanh"
    assert "one SGD step of cnn" in capsys.readouterr().out


def test_paired_rounds_run_each_step_once_per_round_in_rotating_order():
    calls: list[str] = []
    fns = {k: (lambda k=k: calls.append(k)) for k in ("native", "actlab", "identity")}
    times = stepbench.paired_steps(fns, rounds=6, warmup=1)
    assert {k: len(v) for k, v in times.items()} == {"native": 6, "actlab": 6, "identity": 6}
    timed = [calls[3 + 3 * r: 6 + 3 * r] for r in range(6)]
    assert all(sorted(r) == sorted(fns) for r in timed)
    for k in fns:  # each step takes each place in the round equally often: none always follows another
        assert sorted(r.index(k) for r in timed) == [0, 0, 1, 1, 2, 2]


def test_paired_ratio_is_the_median_within_rounds_with_a_reproducible_interval():
    # a drift that hits both sides of a round alike cancels: the ratio within every round is 1.25
    den = [100.0, 200.0, 150.0, 300.0, 120.0]
    assert stepbench.paired_ratio([1.25 * d for d in den], den) == (1.25, (1.25, 1.25))
    rng = torch.Generator().manual_seed(1)
    num = (1 + 0.1 * torch.randn(40, generator=rng)).tolist()
    est, (lo, hi) = stepbench.paired_ratio(num, [1.0] * 40)
    assert lo < est < hi and hi - lo < 0.2
    assert stepbench.paired_ratio(num, [1.0] * 40) == (est, (lo, hi))
    with pytest.raises(ValueError, match="no rounds"):
        stepbench.paired_ratio([], [])


def test_a_goal_above_the_ceiling_is_marked_out_of_reach():
    row = {"case": "prelu-channel", "ratio": 1.05, "ratio_ci95": [1.03, 1.07], "ceiling": 1.12,
           "ceiling_ci95": [1.10, 1.15], "step_ms": {"actlab": 1.0, "native": 1.0}, "saved_bytes": {"native": 0, "actlab": 0}}
    near = {**row, "case": "relu", "ratio": 0.99, "ratio_ci95": [0.97, 1.01]}
    g = {x["case"]: x for x in stepbench.goals([row, near])}
    assert g["prelu-channel"]["met"] is False and g["prelu-channel"]["reachable"] is False
    assert g["prelu-channel"]["sure"] is True
    assert g["relu"]["met"] is True and g["relu"]["sure"] is False and g["relu"]["reachable"] is True
    rep = {"setting": {"model": "he14", "width": 0.5, "batch": 64, "side": 32, "threads": 2, "rounds": 5},
           "results": [row, near], "goals": list(g.values()), "load": {}}
    text = stepbench.summary(rep)
    assert "missed: prelu-channel 1.05 < 1.25 (out of reach" in text
    assert "met, within noise: relu 0.99 >= 0.98" in text
