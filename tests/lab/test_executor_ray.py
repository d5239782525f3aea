"""`--executor ray` on one local Ray (started once for the module): the serial numbers, a run
that raises recorded as failed and not retried, a killed worker retried with every run stored
once, Ctrl-C of the driver leaving a consistent store that a rerun resumes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from actlab import cli  # noqa: E402
from actlab.lab.store import DB_NAME  # noqa: E402

TINY = ["--data", "digits", "--subset", "120", "--batch-size", "32", "--device", "cpu", "--epochs", "1"]
NUMBERS = ("SELECT r.variant, r.seed, e.epoch, e.train_loss, e.train_error, e.val_loss, e.val_error, e.test_loss, "
           "e.test_error, e.lr FROM runs r JOIN epochs e ON e.run_key = r.key ORDER BY r.key, e.epoch")


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One small local Ray for every test here: starting one costs seconds."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, object_store_memory=96 * 2**20, include_dashboard=False, log_to_driver=False,
             logging_level="error")
    yield
    ray.shutdown()


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def _rows(out, sql=NUMBERS):
    with sqlite3.connect(Path(out) / DB_NAME) as db:
        return db.execute(sql).fetchall()


def test_ray_gives_the_serial_numbers(tmp_path):
    args = ["compare", *TINY, "--acts", "relu,prelu:channelwise", "--seeds", "2", "--quiet"]
    assert cli.main([*args, "--jobs", "1", "--out", "serial"]) == 0
    assert cli.main([*args, "--executor", "ray", "--out", "ray"]) == 0
    serial = _rows("serial")
    assert len(serial) == 4 and _rows("ray") == serial  # bit for bit, run by run
    envs = [json.loads(e) for (e,) in _rows("ray", "SELECT environment FROM runs")]
    assert all(e["torch_threads"] == 1 and e["ray_node"] for e in envs)
    assert ray.is_initialized()  # a Ray the caller started is left running


FAILING = '''
import os
from torch import nn

DRIVER = {pid}


def build(num_classes, input_shape):
    if os.getpid() != DRIVER:  # in a Ray worker: count the attempt, then fail as a bug would
        with open("attempts.txt", "a") as f:
            f.write(f"{{os.getpid()}}\\n")
        raise RuntimeError("boom in a worker")
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, num_classes))
'''


def test_a_run_that_raises_is_failed_and_not_retried(tmp_path, capsys):
    (tmp_path / "failing.py").write_text(FAILING.format(pid=os.getpid()))
    rc = cli.main(["compare", *TINY, "--model", "failing.py:build", "--acts", "relu,elu", "--seeds", "1",
                   "--executor", "ray", "--out", "f"])
    assert rc == 1
    assert "boom in a worker" in capsys.readouterr().err
    rows = _rows("f", "SELECT variant, status, error FROM runs ORDER BY variant")
    assert [(v, s) for v, s, _ in rows] == [("elu", "failed"), ("relu", "failed")]
    assert all("RuntimeError: model failing.py:build: the factory raised RuntimeError: boom" in e
               or "boom in a worker" in e for _, _, e in rows)
    assert len((tmp_path / "attempts.txt").read_text().split()) == 2  # one attempt per run


SLOW_ONCE = '''
import os
import time
from torch import nn

DRIVER = {pid}


def build(num_classes, input_shape):
    if os.getpid() != DRIVER and not os.path.exists("claimed"):
        os.close(os.open("claimed", os.O_CREAT | os.O_EXCL))  # the first worker run only
        with open("victim.pid", "w") as f:
            f.write(str(os.getpid()))
        time.sleep(60)  # mid-run; the test kills this process
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, num_classes))
'''


def test_a_killed_worker_is_retried_and_every_run_stored_once(tmp_path):
    (tmp_path / "slow.py").write_text(SLOW_ONCE.format(pid=os.getpid()))
    killed = []

    def killer():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                pid = int((tmp_path / "victim.pid").read_text())
            except (FileNotFoundError, ValueError):
                time.sleep(0.05)
                continue
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    t0 = time.monotonic()
    assert cli.main(["compare", *TINY, "--model", "slow.py:build", "--acts", "relu,tanh", "--seeds", "2",
                     "--executor", "ray", "--out", "k", "--quiet"]) == 0
    thread.join(5)
    assert killed and time.monotonic() - t0 < 60  # killed mid-run, not waited out
    assert _rows("k", "PRAGMA integrity_check") == [("ok",)]
    assert _rows("k", "SELECT COUNT(*), COUNT(DISTINCT key), SUM(status = 'done') FROM runs") == [(4, 4, 4)]
    pids = {json.loads(e)["ray_node"] for (e,) in _rows("k", "SELECT environment FROM runs")}
    assert pids  # every run came back from a Ray task


def test_ctrl_c_of_the_driver_keeps_the_store_consistent_and_a_rerun_resumes(tmp_path):
    out = tmp_path / "int"
    args = ["compare", *TINY, "--acts", "relu,tanh,elu", "--seeds", "4", "--epochs", "2", "--executor", "ray",
            "--out", str(out), "--quiet"]
    proc = subprocess.Popen([sys.executable, "-m", "actlab.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if _rows(out, "SELECT COUNT(*) FROM runs")[0][0] >= 1:
                break
        except sqlite3.OperationalError:
            pass
        time.sleep(0.05)
    assert proc.poll() is None, f"finished before it could be interrupted: {proc.stderr.read().decode()}"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()[-2000:]
    assert _rows(out, "PRAGMA integrity_check") == [("ok",)]
    kept = _rows(out, "SELECT key, finished FROM runs WHERE status = 'done'")
    assert 1 <= len(kept) < 12
    assert cli.main(args) == 0  # the same command resumes (on this module's Ray)
    after = _rows(out, "SELECT key, finished FROM runs WHERE status = 'done'")
    assert len(after) == 12 and set(kept) <= set(after)
    assert _rows(out, "SELECT COUNT(DISTINCT key), COUNT(*) FROM runs") == [(12, 12)]
