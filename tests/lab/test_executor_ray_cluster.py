"""`--executor ray --ray-address ADDR` on a two-node Ray cluster on this machine
(``ray.cluster_utils.Cluster``): a small comparison runs on both nodes, in bounded time, with the
serial numbers."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest

ray = pytest.importorskip("ray")

from ray.cluster_utils import Cluster  # noqa: E402

from actlab import cli  # noqa: E402
from actlab.lab.store import DB_NAME  # noqa: E402

TINY = ["--data", "digits", "--subset", "120", "--batch-size", "32", "--device", "cpu", "--epochs", "1",
        "--acts", "relu,tanh", "--seeds", "2", "--quiet"]
NUMBERS = ("SELECT r.variant, r.seed, e.epoch, e.train_loss, e.train_error, e.val_loss, e.val_error, e.test_loss, "
           "e.test_error, e.lr FROM runs r JOIN epochs e ON e.run_key = r.key ORDER BY r.key, e.epoch")


def _rows(path, sql=NUMBERS):
    with sqlite3.connect(path / DB_NAME) as db:
        return db.execute(sql).fetchall()


def test_a_comparison_runs_across_two_nodes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if ray.is_initialized():
        ray.shutdown()
    store = 80 * 2**20
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": store,
                                                            "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1, object_store_memory=store)
        cluster.wait_for_nodes(timeout=120)
        # the driver is a separate process that joins the cluster by its address, as a user's would
        done = subprocess.run([sys.executable, "-m", "actlab.cli", "compare", *TINY, "--executor", "ray",
                               "--ray-address", cluster.address, "--out", "cluster"],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        nodes = {json.loads(e)["ray_node"] for (e,) in _rows(tmp_path / "cluster", "SELECT environment FROM runs")}
        alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]} if ray.is_initialized() else None
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
    assert len(nodes) == 2, nodes  # both nodes ran runs
    assert alive is None or nodes <= alive
    assert cli.main(["compare", *TINY, "--jobs", "1", "--out", "serial"]) == 0
    assert _rows(tmp_path / "cluster") == _rows(tmp_path / "serial")
