"""``actlab list``, ``actlab props`` and ``actlab plot``: outputs, JSON, and one-line errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from actlab import registry
from actlab.cli import main

ACTLAB = Path(sys.executable).with_name("actlab")
CHEAP = ["--cost-elements", "2000", "--cost-repeats", "2"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


# --- list ------------------------------------------------------------------------------------------


def test_list_text_shows_the_whole_registry(capsys):
    rc, out, err = run(capsys, "list")
    assert rc == 0 and err == ""
    for e in registry.entries():
        for text in (e.name, e.title, e.formula, e.derivative, e.paper, *e.aliases):
            assert text in out, text
        for h in e.hparams:
            assert h.name in out and h.valid() in out, h.name
    assert "default 0.01" in out  # leaky_relu.negative_slope
    assert "default 0.125*" in out  # rrelu.lower: derived from form


def test_list_json(capsys):
    rc, out, _ = run(capsys, "list", "--format", "json")
    data = json.loads(out)
    assert rc == 0 and list(data) == registry.names(registry.EVERY)
    for e in registry.entries():
        row = data[e.name]
        assert (row["group"], row["family"]) == (e.group, e.family)
        assert row["aliases"] == list(e.aliases) and row["formula"] == e.formula and row["paper"] == e.paper
        assert [h["name"] for h in row["hparams"]] == [h.name for h in e.hparams]
        assert [h["valid"] for h in row["hparams"]] == [h.valid() for h in e.hparams]
    assert data["elu"]["hparams"][0]["default"] == 1.0
    assert data["rrelu"]["hparams"][0] | {"doc": ""} == {
        "name": "lower", "default": 0.125, "derived_default": True, "type": "float",
        "valid": registry.entry("rrelu").hparams[0].valid(), "doc": ""}
    assert data["prelu"]["learned"] == ["weight"]


# --- props -----------------------------------------------------------------------------------------


def test_props_json_defaults(capsys):
    rc, out, err = run(capsys, "props", "--format", "json", *CHEAP)
    assert rc == 0 and err == ""
    data = json.loads(out)
    assert list(data) == registry.names()
    assert data["relu"]["relative_cost"] == 1.0
    assert all(math.isfinite(r["relative_cost"]) and r["relative_cost"] > 0 for r in data.values())
    assert data["sigmoid"]["range"] == [0.0, 1.0]
    assert data["tanh"]["range"] == [-1.0, 1.0]
    assert data["relu"]["range"] == [0.0, "inf"]
    assert data["leaky_relu"]["range"] == ["-inf", "inf"]
    assert data["elu"]["range"] == [-1.0, "inf"]
    assert data["sigmoid"]["mean_output"] == pytest.approx(0.5)
    assert data["relu"]["mean_output"] == pytest.approx(1 / math.sqrt(2 * math.pi))
    assert data["sigmoid"]["saturates"] == {"left": True, "right": True}
    assert data["elu"]["saturates"] == {"left": True, "right": False}
    assert data["relu"]["dead_zone"] is True and data["leaky_relu"]["dead_zone"] is False
    assert data["prelu"]["learned_parameters"] == 1


def test_props_param_changes_the_cells(capsys):
    rc, out, _ = run(capsys, "props", "--format", "json", "--no-cost",
                     "--param", "leaky_relu.negative_slope=0", "--param", "elu.alpha=0",
                     "--param", "rrelu.form=divisor", "--param", "prelu.num_parameters=8")
    data = json.loads(out)
    assert rc == 0
    assert data["leaky_relu"]["dead_zone"] is True and data["leaky_relu"]["range"] == [0.0, "inf"]
    assert data["elu"]["dead_zone"] is True and data["elu"]["saturates"]["left"] is False
    assert data["rrelu"]["test_slope"] == pytest.approx(1 / 5.5)
    assert data["prelu"]["learned_parameters"] == 8
    assert data["relu"]["relative_cost"] is None


def test_props_markdown_and_text(capsys):
    rc, out, _ = run(capsys, "props", "--format", "markdown", "--no-cost")
    rows = [line for line in out.splitlines() if line.startswith("|")]
    assert rc == 0 and len(rows) == 2 + len(registry.names())
    assert "| relu | [0, inf) |" in out
    rc, out, _ = run(capsys, "props", "--only", "sigmoid", "--only", "rectifier", "--no-cost")
    lines = out.splitlines()
    assert rc == 0 and lines[0].startswith("activation") and lines[2].startswith("sigmoid")
    assert lines[3].startswith("relu") and lines[4] == ""


def test_props_of_the_modern_set(capsys):
    rc, out, _ = run(capsys, "props", "--format", "json", "--no-cost", "--only", "modern",
                     "--param", "gelu.approximate=tanh")
    data = json.loads(out)
    assert rc == 0 and list(data) == registry.names("modern") == ["gelu", "silu", "selu", "mish"]
    assert data["gelu"]["hparams"] == {"approximate": "tanh"}
    assert data["selu"]["range"][0] == pytest.approx(-1.0507009873554805 * 1.6732632423543772)
    assert not data["silu"]["monotonic"] and not data["mish"]["monotonic"] and data["selu"]["monotonic"]
    assert all(not r["dead_zone"] and not r["stochastic"] for r in data.values())


# --- plot ------------------------------------------------------------------------------------------


def test_plot_prints_the_paths_it_writes(capsys, tmp_path):
    rc, out, err = run(capsys, "plot", "--out", str(tmp_path / "figs"), "--only", "relu", "--only",
                       "rectifier_family", "--param", "leaky_relu.negative_slope=0.1")
    assert rc == 0 and err == ""
    paths = [Path(p) for p in out.split()]
    assert [p.name for p in paths] == ["relu.png", "rectifier_family.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
    rc, out, _ = run(capsys, "plot", "--out", str(tmp_path / "svg"), "--format", "svg", "--only", "tanh")
    assert rc == 0 and Path(out.strip()).read_bytes().startswith(b"<?xml")


# --- errors: exit 2, one line on stderr --------------------------------------------------------------


@pytest.mark.parametrize("argv, message", [
    (["props", "--no-cost", "--param", "softsign.beta=1"], "unknown activation 'softsign'"),
    (["props", "--no-cost", "--param", "leaky_relu.slope=0.1"], "unknown hyper-parameter 'slope'"),
    (["props", "--no-cost", "--param", "leaky_relu.negative_slope=2"], "invalid negative_slope"),
    (["props", "--no-cost", "--param", "elu.alpha=abc"], "invalid alpha"),
    (["props", "--no-cost", "--param", "leaky_relu"], "expected NAME.HPARAM=VALUE"),
    (["props", "--no-cost", "--param", "rrelu.lower=0.5", "--param", "rrelu.upper=0.2"], "lower=0.5 > upper=0.2"),
    (["props", "--no-cost", "--only", "softsign"], "unknown activation 'softsign'"),
    (["props", "--cost-repeats", "0"], "repeats"),
    (["plot", "--out", "{tmp}", "--param", "relu.x=1"], "relu: unknown hyper-parameter 'x'; valid: none"),
    (["plot", "--out", "{tmp}", "--only", "softsign"], "unknown figure 'softsign'"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, argv, message):
    argv = [a.replace("{tmp}", str(tmp_path / "out")) for a in argv]
    rc, out, err = run(capsys, *argv)
    assert rc == 2 and out == ""
    assert err.endswith("\n") and err.count("\n") == 1
    assert err.startswith("actlab: error: ") and message in err
    assert not (tmp_path / "out").exists()


def test_plot_out_is_a_file(capsys, tmp_path):
    f = tmp_path / "f"
    f.write_text("")
    rc, _, err = run(capsys, "plot", "--out", str(f), "--only", "relu")
    assert rc == 2 and err.startswith("actlab: error: ") and err.count("\n") == 1


# --- the console script, for real ------------------------------------------------------------------


def test_console_script(tmp_path):
    assert ACTLAB.exists(), ACTLAB
    ok = subprocess.run([str(ACTLAB), "props", "--format", "json", "--only", "relu", "--no-cost"],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["relu"]["range"] == [0.0, "inf"]
    bad = subprocess.run([str(ACTLAB), "plot", "--out", str(tmp_path), "--param", "leaky_relu.negative_slope=-1"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("actlab: error: leaky_relu: invalid")
