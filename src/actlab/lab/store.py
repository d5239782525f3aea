"""The results database: one SQLite file per comparison directory (``DIR/results.sqlite``).

Every finished run is written in ONE transaction (its ``runs`` row with all its ``epochs``,
``layers`` and ``steps`` rows), in WAL mode with ``synchronous=FULL``. A process killed at any
moment therefore leaves the database holding exactly the runs committed before it: the run in
flight is lost, nothing else, and nothing is half-written. Resume is a set difference: the plan's
keys minus :meth:`Store.finished`.

Schema (``meta.schema`` = :data:`SCHEMA_VERSION`)::

    meta(name PK, value)                   schema version, creation time
    invocations(id PK, started, argv, settings, environment)
                                           one row per `actlab compare`; JSON columns
    runs(key PK, grp, variant, act, seed, spec, status, error, epochs_done,
         train_seconds, eval_seconds, wall_seconds, started, finished, device, environment)
                                           status: done | diverged | failed; spec, environment: JSON
    epochs(run_key, epoch, train_loss, train_error, val_loss, val_error, test_loss, test_error,
           lr, seconds, train_seconds)      PK (run_key, epoch); epoch counts from 1
    layers(run_key, epoch, layer_index, layer, units, dead, saturated, grad_norm,
           slope_mean, slopes)              PK (run_key, epoch, layer_index); slopes: JSON list
    steps(run_key, step, epoch, train_seconds, loss, error)
                                           training loss/error over windows of a few batches

Times are seconds; ``train_seconds`` counts the training steps only (not evaluation, not the
monitors). Errors are fractions in [0, 1]. A NaN is stored as NULL (SQLite has no NaN).
The reports (:mod:`actlab.lab.analysis`, :mod:`actlab.lab.report`) read only this file.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable

__all__ = ["Store", "DB_NAME", "SCHEMA_VERSION", "FINISHED"]

DB_NAME = "results.sqlite"
SCHEMA_VERSION = "1"
#: Statuses a rerun skips. A failed run (an exception, not divergence) is retried.
FINISHED = ("done", "diverged")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS invocations (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    started     TEXT NOT NULL,
    argv        TEXT NOT NULL,
    settings    TEXT NOT NULL,
    environment TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    key           TEXT PRIMARY KEY,
    grp           TEXT NOT NULL,
    variant       TEXT NOT NULL,
    act           TEXT NOT NULL,
    seed          INTEGER NOT NULL,
    spec          TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('done', 'diverged', 'failed')),
    error         TEXT,
    epochs_done   INTEGER NOT NULL,
    train_seconds REAL,
    eval_seconds  REAL,
    wall_seconds  REAL,
    started       TEXT,
    finished      TEXT,
    device        TEXT,
    environment   TEXT
);
CREATE TABLE IF NOT EXISTS epochs (
    run_key       TEXT NOT NULL REFERENCES runs(key) ON DELETE CASCADE,
    epoch         INTEGER NOT NULL,
    train_loss    REAL,
    train_error   REAL,
    val_loss      REAL,
    val_error     REAL,
    test_loss     REAL,
    test_error    REAL,
    lr            REAL,
    seconds       REAL,
    train_seconds REAL,
    PRIMARY KEY (run_key, epoch)
);
CREATE TABLE IF NOT EXISTS layers (
    run_key     TEXT NOT NULL REFERENCES runs(key) ON DELETE CASCADE,
    epoch       INTEGER NOT NULL,
    layer_index INTEGER NOT NULL,
    layer       TEXT NOT NULL,
    units       INTEGER NOT NULL,
    dead        INTEGER,
    saturated   INTEGER,
    grad_norm   REAL,
    slope_mean  REAL,
    slopes      TEXT,
    PRIMARY KEY (run_key, epoch, layer_index)
);
CREATE TABLE IF NOT EXISTS steps (
    run_key       TEXT NOT NULL REFERENCES runs(key) ON DELETE CASCADE,
    step          INTEGER NOT NULL,
    epoch         REAL NOT NULL,
    train_seconds REAL,
    loss          REAL,
    error         REAL,
    PRIMARY KEY (run_key, step)
);
"""

_EPOCH_COLS = ("epoch", "train_loss", "train_error", "val_loss", "val_error", "test_loss", "test_error",
               "lr", "seconds", "train_seconds")
_LAYER_COLS = ("epoch", "layer_index", "layer", "units", "dead", "saturated", "grad_norm", "slope_mean", "slopes")
_STEP_COLS = ("step", "epoch", "train_seconds", "loss", "error")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _num(v: Any) -> Any:
    """NaN → None (SQLite would store NULL anyway; this makes it explicit and portable)."""
    return None if isinstance(v, float) and math.isnan(v) else v


def _layer_value(row: dict[str, Any], column: str) -> Any:
    value = row.get(column)
    if column == "slopes":
        return None if value is None else json.dumps([float(v) for v in value])
    return _num(value)


class Store:
    """A results database. Open with :meth:`open`; use as a context manager or :meth:`close`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.execute("PRAGMA busy_timeout = 60000")
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.executescript(_SCHEMA)
            version = self._db.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone()
            if version is None:
                with self._transaction():
                    self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?), ('created', ?)",
                                     (SCHEMA_VERSION, _now()))
            elif version[0] != SCHEMA_VERSION:
                raise ValueError(f"{self.path}: results database schema {version[0]}; this actlab reads "
                                 f"schema {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as e:
            raise ValueError(f"{self.path}: not a usable results database ({e})") from None
        self.journal_mode = mode

    @classmethod
    def open(cls, directory: str | os.PathLike[str], *, create: bool = False) -> Store:
        """The store of a comparison directory; ``create`` makes the directory and file if absent."""
        directory = Path(directory)
        path = directory / DB_NAME
        if not create and not path.is_file():
            raise FileNotFoundError(f"no results database in {directory} (expected {path}); "
                                    f"run `actlab compare --out {directory}` first")
        if create:
            if directory.exists() and not directory.is_dir():
                raise NotADirectoryError(f"--out {directory}: exists and is not a directory")
            directory.mkdir(parents=True, exist_ok=True)
        return cls(path)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _transaction(self) -> Any:
        db = self._db

        class _Tx:
            def __enter__(self) -> None:
                db.execute("BEGIN IMMEDIATE")

            def __exit__(self, kind: Any, *rest: Any) -> None:
                db.execute("COMMIT" if kind is None else "ROLLBACK")

        return _Tx()

    # --- writing ------------------------------------------------------------------------------

    def add_invocation(self, argv: list[str], settings: dict[str, Any], environment: dict[str, Any]) -> int:
        """Record one ``actlab compare`` call (its command line, settings and environment)."""
        with self._transaction():
            cur = self._db.execute(
                "INSERT INTO invocations (started, argv, settings, environment) VALUES (?, ?, ?, ?)",
                (_now(), json.dumps(list(argv)), json.dumps(settings, sort_keys=True), json.dumps(environment)))
        return int(cur.lastrowid)

    def save(self, result: Any) -> None:
        """Write one run's result (a :class:`actlab.lab.train.RunResult`) in one transaction.

        A run already stored under the same key (a failed attempt, or a rerun) is replaced.
        """
        r = result
        spec = r.spec
        with self._transaction():
            self._db.execute("DELETE FROM runs WHERE key = ?", (r.key,))  # cascades to its rows
            self._db.execute(
                "INSERT INTO runs (key, grp, variant, act, seed, spec, status, error, epochs_done, train_seconds,"
                " eval_seconds, wall_seconds, started, finished, device, environment)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (r.key, spec.group, spec.variant, spec.act, spec.seed, spec.to_json(), r.status, r.error,
                 len(r.epochs), _num(r.train_seconds), _num(r.eval_seconds), _num(r.wall_seconds), r.started,
                 r.finished, r.device, json.dumps(r.environment)))
            self._db.executemany(
                f"INSERT INTO epochs (run_key, {', '.join(_EPOCH_COLS)}) VALUES (?{', ?' * len(_EPOCH_COLS)})",
                [(r.key, *(_num(e.get(c)) for c in _EPOCH_COLS)) for e in r.epochs])
            self._db.executemany(
                f"INSERT INTO layers (run_key, {', '.join(_LAYER_COLS)}) VALUES (?{', ?' * len(_LAYER_COLS)})",
                [(r.key, *(_layer_value(row, c) for c in _LAYER_COLS)) for row in r.layers])
            self._db.executemany(
                f"INSERT INTO steps (run_key, {', '.join(_STEP_COLS)}) VALUES (?{', ?' * len(_STEP_COLS)})",
                [(r.key, *(_num(s.get(c)) for c in _STEP_COLS)) for s in r.steps])

    # --- reading ------------------------------------------------------------------------------

    def _rows(self, sql: str, args: Iterable[Any] = ()) -> list[dict[str, Any]]:
        cur = self._db.execute(sql, tuple(args))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]

    def finished(self) -> set[str]:
        """Keys of the runs a rerun skips (status done or diverged)."""
        marks = ", ".join("?" * len(FINISHED))
        return {r["key"] for r in self._rows(f"SELECT key FROM runs WHERE status IN ({marks})", FINISHED)}

    def runs(self, status: str | None = None) -> list[dict[str, Any]]:
        """Run rows, oldest first, with ``spec`` and ``environment`` decoded from JSON."""
        where, args = ("WHERE status = ?", (status,)) if status else ("", ())
        rows = self._rows(f"SELECT * FROM runs {where} ORDER BY rowid", args)
        for r in rows:
            r["spec"] = json.loads(r["spec"])
            r["environment"] = json.loads(r["environment"]) if r["environment"] else {}
        return rows

    def epochs(self) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM epochs ORDER BY run_key, epoch")

    def layers(self) -> list[dict[str, Any]]:
        rows = self._rows("SELECT * FROM layers ORDER BY run_key, epoch, layer_index")
        for r in rows:
            r["slopes"] = json.loads(r["slopes"]) if r["slopes"] else None
        return rows

    def steps(self) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM steps ORDER BY run_key, step")

    def invocations(self) -> list[dict[str, Any]]:
        rows = self._rows("SELECT * FROM invocations ORDER BY id")
        for r in rows:
            for k in ("argv", "settings", "environment"):
                r[k] = json.loads(r[k])
        return rows

    def integrity(self) -> str:
        """SQLite's ``PRAGMA integrity_check``: ``"ok"`` for a sound file."""
        return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])
