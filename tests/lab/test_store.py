"""actlab.lab.store: schema, one transaction per run, resume keys, and what a bad file gives."""

from __future__ import annotations

import math
import sqlite3

import pytest

from actlab.lab.plan import RunSpec
from actlab.lab.store import DB_NAME, Store
from actlab.lab.train import RunResult


def result(seed=0, status="done", act="relu", epochs=2, test_error=0.1):
    spec = RunSpec(act=act, variant=act, seed=seed, epochs=3)  # ``epochs``: rows written (< 3: stopped early)
    return RunResult(
        spec, status, error=None if status == "done" else "boom",
        epochs=[{"epoch": e, "train_loss": 1.0 / e, "train_error": 0.5 / e, "val_loss": math.nan, "val_error": math.nan,
                 "test_loss": 0.3, "test_error": test_error, "lr": 0.01, "seconds": 0.5, "train_seconds": 0.5 * e}
                for e in range(1, epochs + 1)],
        layers=[{"epoch": e, "layer_index": 0, "layer": "fc1", "units": 4, "dead": 1, "saturated": 2, "grad_norm": 0.5,
                 "slope_mean": 0.25, "slopes": [0.25, 0.25]} for e in range(1, epochs + 1)],
        steps=[{"step": 1, "epoch": 0.5, "train_seconds": 0.2, "loss": 2.0, "error": 0.7}],
        train_seconds=1.0, eval_seconds=0.1, wall_seconds=1.2, started="s", finished="f", device="cpu",
        environment={"torch": "x"})


def test_open_requires_a_database_unless_creating(tmp_path):
    with pytest.raises(FileNotFoundError, match="no results database in"):
        Store.open(tmp_path)
    with Store.open(tmp_path / "new", create=True) as s:
        assert s.journal_mode == "wal" and s.integrity() == "ok"
    assert (tmp_path / "new" / DB_NAME).is_file()


def test_a_file_that_is_not_a_database_is_one_line(tmp_path):
    (tmp_path / DB_NAME).write_text("not sqlite " * 100)
    with pytest.raises(ValueError, match="not a usable results database") as e:
        Store.open(tmp_path)
    assert "\n" not in str(e.value)


def test_out_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError):
        Store.open(tmp_path / "f", create=True)


def test_save_and_read_back(tmp_path):
    r = result()
    with Store.open(tmp_path, create=True) as s:
        s.save(r)
        [run] = s.runs()
        assert run["key"] == r.key and run["status"] == "done" and run["spec"] == r.spec.to_dict()
        assert run["environment"] == {"torch": "x"} and run["epochs_done"] == 2 and run["grp"] == r.spec.group
        eps = s.epochs()
        assert [e["epoch"] for e in eps] == [1, 2]
        assert eps[0]["val_error"] is None  # NaN is stored as NULL
        assert s.layers()[0]["slopes"] == [0.25, 0.25]
        assert s.steps()[0]["error"] == 0.7
        assert s.finished() == {r.key}


def test_resave_replaces_and_failed_runs_are_not_finished(tmp_path):
    with Store.open(tmp_path, create=True) as s:
        s.save(result(seed=1, status="failed", epochs=0))
        s.save(result(seed=2, status="diverged", epochs=1))
        assert s.finished() == {result(seed=2).key}
        s.save(result(seed=1, epochs=3))  # the retry replaces the failed attempt, rows and all
        assert {r["seed"]: r["status"] for r in s.runs()} == {1: "done", 2: "diverged"}
        assert len([e for e in s.epochs() if e["run_key"] == result(seed=1).key]) == 3


def test_a_run_is_one_transaction(tmp_path):
    bad = result(seed=5)
    bad.layers.append({"epoch": 1, "layer_index": 0, "layer": "fc1", "units": 4})  # duplicate primary key
    with Store.open(tmp_path, create=True) as s:
        s.save(result(seed=4))
        with pytest.raises(sqlite3.IntegrityError):
            s.save(bad)
        assert [r["seed"] for r in s.runs()] == [4]  # nothing of the bad run was kept
        assert {e["run_key"] for e in s.epochs()} == {result(seed=4).key}
        assert s.integrity() == "ok"


def test_invocations_are_recorded(tmp_path):
    with Store.open(tmp_path, create=True) as s:
        s.add_invocation(["actlab", "compare"], {"seeds": 3}, {"python": "3"})
        [inv] = s.invocations()
        assert inv["argv"] == ["actlab", "compare"] and inv["settings"] == {"seeds": 3}


def test_status_is_checked_by_the_schema(tmp_path):
    with Store.open(tmp_path, create=True) as s:
        with pytest.raises(sqlite3.IntegrityError):
            s.save(result(status="running"))
        assert s.runs() == []


def test_schema_version_mismatch(tmp_path):
    Store.open(tmp_path, create=True).close()
    db = sqlite3.connect(tmp_path / DB_NAME)
    db.execute("UPDATE meta SET value = '99' WHERE name = 'schema'")
    db.commit()
    db.close()
    with pytest.raises(ValueError, match="schema 99"):
        Store.open(tmp_path)
