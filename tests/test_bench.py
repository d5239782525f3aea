"""actlab.bench and `actlab bench`: what is measured, not how fast (no timing is asserted)."""

from __future__ import annotations

import json
import time
import subprocess
import sys
import weakref

import pytest
import torch

import actlab
from actlab import bench


def test_sizes_use_binary_units_and_bad_ones_name_the_valid_forms():
    assert bench.parse_sizes("64K, 1M,16M") == [65536, 2**20, 2**24]
    assert bench.parse_sizes("1.5K") == [1536]
    with pytest.raises(ValueError, match="invalid size 'LOTS'; valid: e.g. 4096, 64K"):
        bench.parse_sizes("lots")
    with pytest.raises(ValueError, match="invalid dtype 'int8'; valid: float32"):
        bench.parse_dtypes("float32,int8")


def test_cases_are_chosen_by_name_alias_or_label():
    assert [c.label for c in bench.select_cases(["prelu"], False)] == ["prelu-shared", "prelu-channel"]
    assert [c.label for c in bench.select_cases(["rectifier", "rrelu-train"], False)] == ["relu", "rrelu-train"]
    assert len(bench.select_cases(None, True)) > len(bench.select_cases(None, False))
    with pytest.raises(ValueError, match="valid"):
        bench.select_cases(["softsign"], False)


@pytest.mark.parametrize("name,hp,per_element", [("relu", {}, 4.0), ("elu", {}, 4.0), ("prelu", {}, 4.0)])
def test_saved_bytes_counts_what_torch_nn_keeps(name, hp, per_element):
    native = getattr(torch.nn, actlab.registry.entry(name).torch_native)(**hp)
    x = torch.randn(64, 1024, requires_grad=True)
    assert bench.saved_bytes(native, x) / x.numel() == pytest.approx(per_element, rel=0.01)


def test_saved_bytes_shows_what_the_fast_paths_keep_less_of():
    x = torch.randn(64, 1024, requires_grad=True)
    native = torch.nn.RReLU().train()
    ours = actlab.layer("rrelu").train()
    lean = actlab.layer("relu", lean=True)
    assert bench.saved_bytes(native, x) == 8 * x.numel()  # x and a full-size noise tensor
    assert bench.saved_bytes(ours, x) == 4 * x.numel()  # y; the noise is regenerated
    assert bench.saved_bytes(lean, x) == x.numel() // 8  # one bit each


def test_saved_bytes_leaves_no_output_alive():
    """Packing an output as itself would tie it to its own grad_fn: a cycle gc cannot free."""
    refs = []
    relu = torch.nn.ReLU()  # saves its output
    relu.register_forward_hook(lambda mod, inp, out: refs.append(weakref.ref(out)))
    bench.saved_bytes(relu, torch.randn(4096, requires_grad=True))
    assert refs and refs[0]() is None


def test_a_measured_row_has_both_sides_and_ratios_of_its_own_times():
    case = bench.select_cases(["elu"], False)[0]
    row = bench.measure(case, 2**16, torch.float32, "cpu", repeats=4, warmup=1)
    assert row["fast_path"] and row["shape"] == [1, 64, 32, 32]
    for side in ("native", "actlab"):
        assert row[side]["fwd_ms"] > 0 and row[side]["fb_ms"] > 0
        assert row[side]["fwd_min_ms"] <= row[side]["fwd_ms"]
    assert row["ratio_fb"] > 0 and row["actlab"]["fwd_copy_fraction"] > 0


def test_ratios_pair_the_blocks_that_ran_side_by_side():
    """A slow spell that hits one block of one side moves the ratio of medians, not the paired one."""
    t = bench.Timings(times={}, rounds={"native": [10.0, 1.0, 1.0], "actlab": [5.0, 5.0, 0.5]})
    assert t.ratio("native", "actlab") == pytest.approx(2.0)  # rounds: 2, 0.2 (the spell), 2


def test_a_fast_call_repeats_until_its_block_lasts_block_ms():
    """A block's median of 3 calls of 0.3-0.7 ms wandered by a third; a block now lasts >= block_ms."""
    fns = {"slow": lambda: time.sleep(0.004), "fast": lambda: time.sleep(0.0005)}
    t = bench._medians(fns, repeats=18, warmup=0, device="cpu", block_ms=3.0)
    assert len(t.times["slow"]) == 18  # 6 rounds of the 3 asked for: each already over 3 ms
    assert sum(t.times["fast"]) >= 6 * 3.0  # every block lasted 3 ms: 3 calls of ~0.5 ms would not
    assert len(t.times["fast"]) <= 6 * 6  # and stopped there: 6 calls of 0.5+ ms suffice


def test_rows_carry_a_95_percent_interval_for_each_ratio_over_passes_and_rounds():
    report = bench.run(["relu"], sizes=[4096], repeats=24, warmup=0, passes=2)
    row = report["results"][0]
    for m in ("ratio_fwd", "ratio_fb"):
        lo, hi = row[f"{m}_ci95"]
        assert lo <= row[m] <= hi
    t = bench.Timings(times={}, rounds={"n": [2.0, 2.0, 4.0, 4.0], "d": [1.0] * 4})  # pass 1: 2x, pass 2: 4x
    assert bench._ratio_ci(t, "n", "d", passes=2) == [2.0, 4.0]
    assert bench._ratio_ci(bench.Timings({}, {"n": [3.0] * 4, "d": [1.0] * 4}), "n", "d", 2) == [3.0, 3.0]


def test_passes_pool_their_repeats_and_rounds():
    a = bench.Timings(times={"f": [1.0, 2.0, 9.0]}, rounds={"f": [2.0]})
    b = bench.Timings(times={"f": [3.0, 4.0, 5.0]}, rounds={"f": [4.0]})
    t = bench.Timings.merge([a, b])
    assert t.rounds == {"f": [2.0, 4.0]} and t.minimum == {"f": 1.0} and t.median == {"f": 3.5}


def test_each_rows_rounds_are_spread_over_passes_of_the_whole_list(monkeypatch):
    """Rows take turns pass by pass (A B A B, not A A B B), and each row's ratio pools every pass's rounds."""
    order: list[str] = []
    setup = bench._setup

    def logged(case, n, dtype, device):
        order.append(case.label)
        return setup(case, n, dtype, device)

    monkeypatch.setattr(bench, "_setup", logged)
    report = bench.run(["relu", "elu"], sizes=[4096], repeats=12, warmup=0, passes=3)
    assert order == ["relu", "elu"] * 3
    assert report["settings"]["passes"] == 3 and report["settings"]["rounds"] == 6
    assert [r["rounds"] for r in report["results"]] == [6, 6]
    one = bench.run(["relu"], sizes=[4096], repeats=12, warmup=0, passes=1)
    assert one["settings"]["rounds"] == 6 and one["results"][0]["rounds"] == 6
    with pytest.raises(ValueError, match="--passes 0: valid"):
        bench.run(["relu"], sizes=[4096], passes=0)


def test_a_row_that_fails_in_a_later_pass_is_reported_once_as_an_error(monkeypatch):
    calls = {"n": 0}
    time_ = bench._time

    def flaky(s, *args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("boom")
        return time_(s, *args)

    monkeypatch.setattr(bench, "_time", flaky)
    seen: list[dict] = []
    report = bench.run(["relu"], sizes=[4096], repeats=12, warmup=0, passes=3, progress=seen.append)
    assert report["results"][0]["error"] == "RuntimeError: boom"
    assert seen == report["results"] and calls["n"] == 2  # not timed again after it failed


def test_channel_wise_prelu_is_skipped_without_a_channel_axis():
    case = bench.select_cases(["prelu-channel"], False)[0]
    assert "skipped" in bench.measure(case, 1001, torch.float32, "cpu", repeats=2, warmup=0)


def test_goals_read_the_rows_against_the_issue_thresholds():
    rows = [{"case": "elu", "numel": 2**20, "dtype": "float32", "ratio_fb": 1.6},
            {"case": "leaky_relu", "numel": 2**20, "dtype": "float32", "ratio_fb": 1.2},
            {"case": "elu", "numel": 2**16, "dtype": "float32", "ratio_fb": 0.1},  # no goal at 64K
            {"case": "relu", "numel": 2**20, "dtype": "float32", "error": "boom"}]
    got = {(g["case"], g["numel"]): g["met"] for g in bench.goals(rows, "cpu")}
    # issue 10: at 1M ELU and Leaky ReLU need only be never slower (>= 0.95)
    assert got == {("elu", 2**20): True, ("leaky_relu", 2**20): True}
    rows[1]["ratio_fb"] = 0.9
    assert not {(g["case"], g["numel"]): g["met"] for g in bench.goals(rows, "cpu")}[("leaky_relu", 2**20)]
    assert bench.goals(rows, "cuda") == []


def test_under_load_the_goal_is_at_most_1_1x_torch_nn_for_every_row():
    rows = [{"case": "elu", "numel": 2**16, "dtype": "float32", "ratio_fb": 0.95},
            {"case": "tanh", "numel": 2**24, "dtype": "float32", "ratio_fb": 0.85}]
    got = {g["case"]: g["met"] for g in bench.goals(rows, "cpu", under_load=True)}
    assert got == {"elu": True, "tanh": False}


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import sys; from actlab.cli import main; sys.exit(main())",
                           "bench", *args], capture_output=True, text=True, timeout=300)


def test_the_command_writes_json_with_machine_versions_settings_and_rows(tmp_path):
    out = tmp_path / "b.json"
    r = _cli("--acts", "tanh,rrelu-train", "--sizes", "64K", "--repeats", "2", "--warmup", "0", "--quiet",
             "--json", str(out))
    assert r.returncode == 0, r.stderr
    report = json.loads(out.read_text())
    assert {"machine", "versions", "settings", "results", "goals", "cpu_pool_after"} <= set(report)
    assert report["versions"]["torch"] == torch.__version__
    assert report["settings"]["cpu_pool_max_bytes"] == actlab.fast.pool.stats()["max_bytes"]
    assert [row["case"] for row in report["results"]] == ["tanh", "rrelu-train"]
    assert "tanh" in r.stdout and "rrelu-train" in r.stdout
    assert report["load"]["expected_load_cores"] == 0.0 and "others_cores" in report["load"]


def test_under_load_starts_a_neighbour_and_records_it(tmp_path):
    out = tmp_path / "b.json"
    r = _cli("--acts", "relu", "--sizes", "64K", "--repeats", "2", "--warmup", "0", "--quiet", "--under-load",
             "--json", str(out))
    assert r.returncode == 0, r.stderr
    report = json.loads(out.read_text())
    assert report["settings"]["under_load"] is True
    assert report["load"]["expected_load_cores"] == 1.0
    assert [g["metric"] for g in report["goals"]] == ["ratio_fb (under load)"]


@pytest.mark.parametrize("args,message", [(["--sizes", "huge"], "invalid size"),
                                          (["--dtypes", "int8"], "invalid dtype"),
                                          (["--acts", "softsign"], "softsign"),
                                          (["--repeats", "0"], "--repeats 0: valid: --repeats >= 1"),
                                          (["--model", "cnn", "--repeats", "0"], "--repeats 0: valid"),
                                          (["--warmup", "-1"], "--warmup -1: valid"),
                                          (["--threads", "0"], "--threads 0: valid: an integer >= 1"),
                                          (["--model", "cnn", "--batch", "0"], "--batch 0: valid")])
def test_bad_arguments_are_one_line_with_exit_2(args, message):
    r = _cli(*args, "--quiet")
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1


def _layer_report(ratios: dict[tuple[str, int], tuple[float, float]], busy: bool = False) -> dict:
    return {"load": {"busy": busy}, "results": [
        {"case": c, "dtype": "float32", "numel": n, "ratio_fwd": fwd, "ratio_fb": fb} for (c, n), (fwd, fb) in ratios.items()]}


def test_agreement_pairs_rows_by_case_and_size_and_measures_the_spread():
    a = _layer_report({("elu", 2**20): (2.0, 3.0), ("elu", 2**24): (5.0, 6.0), ("tanh", 2**20): (1.0, 1.0)})
    b = _layer_report({("elu", 2**20): (2.2, 3.0), ("elu", 2**24): (5.0, 4.0)})
    rows = bench.agreement(a, b, tolerance=0.2)
    got = {(r["case"], r["numel"], r["metric"]): (r["spread"], r["agree"]) for r in rows}
    assert got == {("elu", 2**20, "ratio_fwd"): (0.1, True), ("elu", 2**20, "ratio_fb"): (0.0, True),
                   ("elu", 2**24, "ratio_fwd"): (0.0, True), ("elu", 2**24, "ratio_fb"): (0.5, False)}
    text = bench.agreement_summary(rows, 0.2, [False, True])
    assert "DISAGREE" in text.splitlines()[4] and text.endswith("3 of 4 ratios agree within 20%; a run was marked busy")


def test_agreement_shows_where_the_copy_yardstick_itself_moved():
    a, b = _layer_report({("elu", 2**20): (2.0, 3.0), ("elu", 2**24): (5.0, 6.0)}), \
        _layer_report({("elu", 2**20): (2.0, 2.0), ("elu", 2**24): (5.0, 4.0)})
    for rep, gbps in ((a, (160.0, 5.0)), (b, (80.0, 5.2))):  # at 1M the host's copy halved in run B
        for row, g in zip(rep["results"], gbps):
            row["copy_gbps"] = g
    rows = bench.agreement(a, b, tolerance=0.2)
    assert [r["copy_gbps"] for r in rows] == [[160.0, 80.0]] * 2 + [[5.0, 5.2]] * 2
    text = bench.agreement_summary(rows, 0.2)
    assert "160.0 →   80.0*  DISAGREE" in text and "5.0 →    5.2   DISAGREE" in text
    assert text.endswith("2 of 4 ratios agree within 20%; 1 of the 2 that do not came with the copy yardstick "
                         "itself moving more than 20% (*)")


def test_agreement_marks_disagreements_within_the_runs_own_intervals():
    a = _layer_report({("elu", 2**20): (2.0, 3.0), ("elu", 2**24): (5.0, 6.0)})
    b = _layer_report({("elu", 2**20): (2.0, 4.0), ("elu", 2**24): (5.0, 8.0)})
    for rep, cis in ((a, ([2.5, 3.6], [5.5, 6.5])), (b, ([3.4, 4.8], [7.0, 9.0]))):
        for row, ci in zip(rep["results"], cis):
            row["ratio_fb_ci95"] = ci
    rows = bench.agreement(a, b, tolerance=0.2)
    assert [r.get("overlap") for r in rows] == [None, True, None, False]  # no interval for ratio_fwd here
    text = bench.agreement_summary(rows, 0.2)
    assert "DISAGREE (95% intervals overlap)" in text.splitlines()[2] and text.splitlines()[4].endswith("DISAGREE")
    assert text.endswith("2 of 4 ratios agree within 20%; of the 2 that do not, 1 have 95% intervals that overlap "
                         "(a difference within the runs' own noise)")


def test_agreement_compares_step_reports_on_ratio_ceiling_and_floor_and_refuses_mixed_kinds():
    step = {"kind": "whole training step", "results": [{"case": "elu", "ratio": 1.0, "ceiling": 1.1, "floor": 1.0}]}
    rows = bench.agreement(step, {**step, "results": [{"case": "elu", "ratio": 1.3, "ceiling": 1.1, "floor": 1.3}]})
    assert [(r["metric"], r["agree"]) for r in rows] == [("ratio", False), ("ceiling", True), ("floor", False)]
    older = {**step, "results": [{"case": "elu", "ratio": 1.0, "ceiling": 1.1}]}  # written before the floor
    assert [r["metric"] for r in bench.agreement(step, older)] == ["ratio", "ceiling"]
    with pytest.raises(ValueError, match="one report is 'whole training step' and the other 'layers'"):
        bench.agreement(step, _layer_report({}))


def test_the_command_compares_two_runs_and_exits_1_when_they_disagree(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(_layer_report({("elu", 2**20): (2.0, 3.0)})))
    b.write_text(json.dumps(_layer_report({("elu", 2**20): (2.0, 3.3)})))
    ok = _cli("--agree", str(a), str(b))
    assert ok.returncode == 0 and "2 of 2 ratios agree within 20%" in ok.stdout
    strict = _cli("--agree", str(a), str(b), "--tolerance", "0.05")
    assert strict.returncode == 1 and "1 of 2 ratios agree within 5%" in strict.stdout
    missing = _cli("--agree", str(a), str(tmp_path / "none.json"))
    assert missing.returncode == 2 and missing.stderr.startswith("actlab: error: --agree: cannot read")
    assert len(missing.stderr.strip().splitlines()) == 1


def test_timed_repeats_come_in_short_rounds_each_function_once_a_round():
    calls: list[str] = []
    fns = {k: (lambda k=k: calls.append(k)) for k in ("native", "actlab")}
    t = bench._medians(fns, repeats=24, warmup=0, device="cpu", block_ms=0)
    # 24 repeats: 8 rounds of one untimed call and 3 timed ones per function, taking turns
    assert {k: len(v) for k, v in t.rounds.items()} == {"native": 8, "actlab": 8}
    assert calls[:8] == ["native"] * 4 + ["actlab"] * 4 and calls[8:16] == ["actlab"] * 4 + ["native"] * 4
    assert len(calls) == 2 * 8 * 4
    few = bench._medians(fns, repeats=2, warmup=0, device="cpu", block_ms=0)  # never fewer than 6 rounds
    assert len(few.rounds["native"]) == 6
