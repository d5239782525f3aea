"""``actlab compare`` / ``actlab report`` end to end: resume after SIGKILL, divergence, bad input."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from actlab import cli
from actlab.lab.compare import default_out
from actlab.lab.store import DB_NAME
from cli_errors import one_line_error as _one_line_error

# --jobs 1: in this process (worker processes cost a torch import each; tests/lab/test_executor.py has them)
TINY = ["--data", "digits", "--subset", "100", "--batch-size", "32", "--device", "cpu", "--jobs", "1"]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default --out (runs/<data>) must not land in the repository


def _db(path):
    return sqlite3.connect(path / DB_NAME)


def _done_runs(path):
    try:
        with _db(path) as db:
            return db.execute("SELECT key, started, finished FROM runs WHERE status = 'done' ORDER BY key").fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []


def test_resume_after_sigkill(tmp_path, capsys):
    out = tmp_path / "killed"
    args = ["compare", *TINY, "--acts", "relu,tanh,elu", "--seeds", "3", "--epochs", "3", "--out", str(out), "--quiet"]
    proc = subprocess.Popen([sys.executable, "-m", "actlab.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 120
    while len(_done_runs(out)) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, f"finished before it could be killed: {proc.stderr.read().decode()}"
    os.kill(proc.pid, signal.SIGKILL)  # mid-run: 7 runs still to go
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    with _db(out) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    before = _done_runs(out)
    assert 2 <= len(before) < 9

    assert cli.main([a for a in args if a != "--quiet"]) == 0  # the same command resumes
    err = capsys.readouterr().err
    assert f"{len(before)} already there, running {9 - len(before)}" in err
    after = _done_runs(out)
    assert len(after) == 9
    assert set(before) <= set(after)  # the finished runs were kept, not redone (same start/finish times)
    with _db(out) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT COUNT(*) FROM invocations").fetchone()[0] == 2
        keys = [k for (k,) in db.execute("SELECT key FROM runs")]
        assert len(keys) == len(set(keys)) == 9

    report_before = (out / "report.md").read_text()
    assert cli.main(args) == 0  # a third time: nothing left to run
    assert _done_runs(out) == after
    with _db(out) as db:  # ... and nothing recorded: the command list and environment stay as they were
        assert db.execute("SELECT COUNT(*) FROM invocations").fetchone()[0] == 2
    strip = lambda md: [line for line in md.splitlines() if not line.startswith("Generated ")]  # noqa: E731
    assert strip((out / "report.md").read_text()) == strip(report_before)


def test_divergence_is_recorded_and_reported(tmp_path, capsys):
    out = tmp_path / "diverge"
    rc = cli.main(["compare", *TINY, "--acts", "relu,tanh", "--seeds", "1", "--epochs", "2", "--lr", "1e6",
                   "--momentum", "0", "--schedule", "constant", "--warmup", "0", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr()
    assert printed.out.strip() == f"report: {out / 'report.html'}  (also {out / 'report.md'})"
    # the console line and the record say what to try next
    line = next(x for x in printed.err.splitlines() if "relu" in x and "diverged" in x)
    assert "try a lower --lr (this run: 1e+06) or a grid such as --lr 100000,300000,1e+06" in line
    assert "--warmup (this run: 0 epochs), or --batchnorm" in line
    with _db(out) as db:
        assert dict(db.execute("SELECT variant, status FROM runs"))["relu"] == "diverged"
        assert "try a lower --lr" in dict(db.execute("SELECT variant, error FROM runs"))["relu"]
    md = (out / "report.md").read_text()
    assert "| relu | 0 | diverged |" in md and "relu: 1 of 1 runs diverged" in md


def test_an_lr_grid_resumes_a_single_rate_store_and_keeps_every_run(tmp_path, capsys):
    out = tmp_path / "grid"
    args = ["compare", *TINY, "--acts", "relu,tanh", "--seeds", "1", "--epochs", "1", "--out", str(out)]
    assert cli.main([*args, "--lr", "0.05"]) == 0
    first = _done_runs(out)
    assert len(first) == 2
    capsys.readouterr()
    assert cli.main([*args, "--lr", "0.02,0.05"]) == 0
    err = capsys.readouterr().err
    assert "4 runs (2 variants × 2 learning rates × 1 seeds" in err and "2 already there, running 2" in err
    assert "relu" in err and "seed 0 lr 0.02: done" in err
    assert set(first) <= set(_done_runs(out)) and len(_done_runs(out)) == 4
    with _db(out) as db:
        rates = sorted(json.loads(spec)["lr"] for (spec,) in db.execute("SELECT spec FROM runs"))
    assert rates == [0.02, 0.02, 0.05, 0.05]
    assert cli.main([*args, "--lr", "0.05,0.02", "--quiet"]) == 0  # the same grid in another order: nothing to run
    assert len(_done_runs(out)) == 4


@pytest.mark.parametrize("extra, match", [
    (["--acts", "softsign"], "unknown activation 'softsign'"),
    (["--acts", "relu:alpha=1"], "unknown hyper-parameter 'alpha'"),
    (["--acts", "leaky_relu:negative_slope=5"], "invalid negative_slope='5'; valid: float in [0, 1]"),
    (["--acts", "relu:x"], "expected NAME"),
    (["--model", "resnet"], "unknown model 'resnet'"),
    (["--data", "no_such_data_set"], "no_such_data_set"),
    (["--optimizer", "rmsprop"], "invalid optimizer='rmsprop'"),
    (["--schedule", "step"], "invalid schedule"),
    (["--seeds", "0"], "invalid seeds=0"),
    (["--epochs", "0"], "invalid epochs=0"),
    (["--lr", "-1"], "invalid lr"),
    (["--lr", "0.01,fast"], "invalid lr 'fast' in --lr '0.01,fast'"),
    (["--lr", "0.01,0.01"], "0.01 is given twice"),
    (["--warmup", "-1"], "invalid warmup=-1.0"),
    (["--batch-size", "0"], "invalid batch_size"),
    (["--subset", "0"], "invalid subset"),
    (["--val-fraction", "1"], "invalid val_fraction"),
    (["--device", "tpu"], "invalid device 'tpu'"),
    (["--target-error", "2"], "invalid target_error"),
    (["--model", "he14", "--depth", "3"], "invalid depth"),
    (["--model", "cnn1d"], "cnn1d needs (C, L)"),
    (["--acts", "prelu:num_parameters=7"], "prelu(num_parameters=7) on model cnn: prelu: input has 32 channels"),
])
def test_bad_compare_input_is_one_line(tmp_path, capsys, extra, match):
    line = _one_line_error(capsys, ["compare", *TINY, "--epochs", "1", "--seeds", "1", "--out", str(tmp_path / "o"),
                                    *extra])
    assert match in line
    assert not (tmp_path / "o").exists()  # nothing written before the input is known to be good


def test_out_is_a_file(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert "not a directory" in _one_line_error(capsys, ["compare", *TINY, "--acts", "relu", "--seeds", "1",
                                                         "--epochs", "1", "--out", str(tmp_path / "file")])


def test_report_without_a_database_is_one_line(tmp_path, capsys):
    assert "no results database in" in _one_line_error(capsys, ["report", str(tmp_path)])
    (tmp_path / DB_NAME).write_bytes(b"\0garbage" * 64)
    assert "not a usable results database" in _one_line_error(capsys, ["report", str(tmp_path)])


def test_report_command_rebuilds(tmp_path, capsys):
    out = tmp_path / "r"
    assert cli.main(["compare", *TINY, "--acts", "relu,prelu:channelwise", "--seeds", "1", "--epochs", "1",
                     "--out", str(out), "--quiet"]) == 0
    (out / "report.md").unlink()
    capsys.readouterr()
    assert cli.main(["report", str(out), "--target-error", "0.5"]) == 0
    assert "report:" in capsys.readouterr().out
    assert "Time to 50% training error" in (out / "report.md").read_text()


def test_the_readme_defaults():
    args = cli.build_parser().parse_args(["compare"])
    assert (args.data, args.acts, args.seeds, args.model, args.device) == ("digits", "all", 3, "auto", "auto")
    assert args.epochs == 10 and args.out is None
    assert args.lr == "0.02" and args.warmup == 1.0  # as the README's Training bullet states
    assert default_out("digits") == default_out("./digits/") == default_out("digits=x/digits")
    assert str(default_out("digits")) == os.path.join("runs", "digits")
