"""`--jobs N` worker processes: the same numbers as serially, the thread count fixed per run,
one-line errors for impossible settings, a dead worker recorded as failed, Ctrl-C resumable."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import torch

from actlab import cli
from actlab.lab import executor
from actlab.lab.store import DB_NAME
from cli_errors import one_line_error as _one_line_error

TINY = ["--data", "digits", "--subset", "120", "--batch-size", "32", "--device", "cpu", "--epochs", "1"]
# every stored number of a run but its timings
NUMBERS = ("SELECT r.variant, r.seed, e.epoch, e.train_loss, e.train_error, e.val_loss, e.val_error, e.test_loss, "
           "e.test_error, e.lr FROM runs r JOIN epochs e ON e.run_key = r.key ORDER BY r.key, e.epoch")


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def _rows(out, sql=NUMBERS):
    with sqlite3.connect(out / DB_NAME) as db:
        return db.execute(sql).fetchall()


def _threads(out):
    import json

    return {json.loads(env)["torch_threads"] for (env,) in _rows(out, "SELECT environment FROM runs")}


def test_jobs_2_gives_the_serial_numbers_on_a_fixed_thread_count(tmp_path, capsys):
    args = ["compare", *TINY, "--acts", "relu,tanh", "--seeds", "2", "--quiet"]
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the caller's setting must not leak into the runs
    try:
        assert cli.main([*args, "--jobs", "1", "--out", "serial"]) == 0
        assert torch.get_num_threads() == 2  # and is put back afterwards
    finally:
        torch.set_num_threads(before)
    assert cli.main([*args, "--jobs", "2", "--out", "parallel"]) == 0
    serial, parallel = _rows(tmp_path / "serial"), _rows(tmp_path / "parallel")
    assert len(serial) == 4 and serial == parallel  # bit for bit, run by run
    assert _threads(tmp_path / "serial") == _threads(tmp_path / "parallel") == {1}
    with sqlite3.connect(tmp_path / "parallel" / DB_NAME) as db:
        env = db.execute("SELECT environment FROM invocations").fetchone()[0]
    assert "2 worker processes" in env


def test_threads_option_is_the_runs_thread_count(tmp_path):
    if executor.cores() < 2:
        pytest.skip("needs 2 cores")
    assert cli.main(["compare", *TINY, "--acts", "relu", "--seeds", "1", "--jobs", "1", "--threads", "2",
                     "--out", "t2", "--quiet"]) == 0
    assert _threads(tmp_path / "t2") == {2}


@pytest.mark.parametrize("extra, match", [
    (["--jobs", str(executor.cores() + 1)], f"threads > {executor.cores()} cores here; valid: jobs × threads ≤"),
    (["--jobs", "1", "--threads", str(executor.cores() + 1)], "valid: jobs × threads ≤"),
    (["--jobs", "0"], "invalid jobs=0"),
    (["--threads", "0"], "invalid threads=0"),
    (["--ray-address", "auto"], "--ray-address: applies to --executor ray only"),
    (["--executor", "ray", "--jobs", "2"], "--jobs 2: applies to --executor local"),
])
def test_bad_execution_options_are_one_line(tmp_path, capsys, extra, match):
    line = _one_line_error(capsys, ["compare", *TINY, "--seeds", "1", "--acts", "relu", "--out", "o", *extra])
    assert match in line


def test_default_jobs():
    assert executor.default_jobs("cpu", 1) == executor.cores()
    assert executor.default_jobs("cpu", executor.cores() * 2) == 1


DYING = '''
import os
from torch import nn

DRIVER = {pid}


def build(num_classes, input_shape):
    if os.getpid() != DRIVER:  # in a worker process: die as an out-of-memory kill would
        os._exit(1)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, num_classes))
'''


class _Bar:
    """Records what compare does with its one progress bar."""

    made: list = []

    def __init__(self, total, desc, **kwargs):
        self.total, self.desc, self.n, self.postfix = total, desc, 0, {}
        _Bar.made.append(self)

    def update(self, n):
        self.n += n

    def set_postfix(self, refresh=True, **kwargs):
        self.postfix = kwargs

    def write(self, line, file=None):
        print(line, file=file)

    def close(self):
        pass


def test_a_dead_worker_process_is_a_failed_run_that_a_rerun_retries(tmp_path, capsys, monkeypatch):
    import tqdm.auto

    monkeypatch.setattr(tqdm.auto, "tqdm", _Bar)
    _Bar.made = []
    (tmp_path / "dying.py").write_text(DYING.format(pid=os.getpid()))
    args = ["compare", *TINY, "--model", "dying.py:build", "--acts", "relu,elu", "--seeds", "1", "--jobs", "2",
            "--out", "d"]
    assert cli.main(args) == 1  # failed runs: exit status 1, the report written
    assert "worker process died" in capsys.readouterr().err
    [bar] = _Bar.made  # one bar for the comparison, across the workers
    assert (bar.desc, bar.total, bar.n, bar.postfix) == ("runs", 2, 2, {"done": 0, "failed": 2})
    assert _rows(tmp_path / "d", "SELECT variant, status FROM runs ORDER BY variant") == [("elu", "failed"),
                                                                                          ("relu", "failed")]
    assert cli.main([*args[:-4], "--jobs", "1", "--out", "d", "--quiet"]) == 0  # a rerun retries them
    assert _rows(tmp_path / "d", "SELECT variant, status FROM runs ORDER BY variant") == [("elu", "done"),
                                                                                          ("relu", "done")]


def test_ctrl_c_with_workers_keeps_the_store_consistent_and_a_rerun_resumes(tmp_path):
    out = tmp_path / "int"
    args = ["compare", *TINY, "--acts", "relu,tanh,elu", "--seeds", "4", "--epochs", "2", "--jobs", "2",
            "--out", str(out), "--quiet"]
    proc = subprocess.Popen([sys.executable, "-m", "actlab.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if len(_rows(out, "SELECT key FROM runs")) >= 2:
                break
        except sqlite3.OperationalError:
            pass
        time.sleep(0.05)
    assert proc.poll() is None, f"finished before it could be interrupted: {proc.stderr.read().decode()}"
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the driver and its workers, as in a terminal
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    assert "interrupted; completed results are kept" in err.decode()
    assert _rows(out, "PRAGMA integrity_check") == [("ok",)]
    kept = _rows(out, "SELECT key, finished FROM runs WHERE status = 'done'")
    assert 2 <= len(kept) < 12
    assert cli.main([*args[:-5], "--jobs", "1", *args[-3:]]) == 0  # resumes (in this process: cheaper)
    after = _rows(out, "SELECT key, finished FROM runs WHERE status = 'done'")
    assert len(after) == 12 and set(kept) <= set(after)  # kept, not redone
    assert _rows(out, "SELECT COUNT(DISTINCT key), COUNT(*) FROM runs") == [(12, 12)]
