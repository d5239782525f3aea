"""``actlab verify`` end to end on tiny settings, its probes on hand-built models, its data subsets."""

from __future__ import annotations

import dataclasses
import json
import types

import numpy as np
import pytest
import torch
from torch import nn

import actlab
from actlab import cli
from actlab.lab import models
from actlab.lab.store import DB_NAME, Store
from actlab.verify import data as vdata
from actlab.verify import experiments, probes, rules
from actlab.verify.run import verify

TINY = dataclasses.replace(experiments.QUICK, name="tiny", seeds_cheap=2, epochs_deep=1)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("ACTLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(vdata.CIFAR_ENV, str(tmp_path / "no-cifar-here"))
    torch.set_num_threads(1)


def test_verify_end_to_end_resumes_and_reports(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(experiments.MODES, "quick", TINY)
    out = tmp_path / "v"
    assert cli.main(["verify", "--only", "saturation,2", "--out", str(out), "--quiet"]) == 0
    report = json.loads((out / "verify.json").read_text())
    assert set(report["claims"]) == {"1", "2"}
    for c in report["claims"].values():
        assert c["verdict"]["verdict"] in rules.VERDICTS
        assert c["figure"] and (out / c["figure"]).stat().st_size > 1000
        assert c["experiment"]["model"] == "mlp" and c["experiment"]["seeds"] == "0..1"
    # the zig-zag and mean-activation probes are in the database beside the lab's own tables
    with Store.open(out) as store:
        assert len(store.runs("done")) == 6
    html = (out / "verify.html").read_text()
    assert html.count("data:image/png;base64") == 2 and "holds" in html
    md = (out / "verify.md").read_text()
    assert "| 1 | saturation |" in md and "| 2 | zero-centred |" in md
    # a rerun into the same directory trains nothing and decides the same
    again = verify(out, only=[1, 2], settings=TINY, quiet=True)
    assert again.ran == 0 and again.planned == 6
    assert again.verdicts == {int(k): v["verdict"]["verdict"] for k, v in report["claims"].items()}


def test_verify_bad_claim_is_one_line(tmp_path, capsys):
    assert cli.main(["verify", "--only", "11", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("actlab: error: --only '11': unknown claim; valid: 1-10 or saturation") and "\n" not in err
    assert not (tmp_path / "x").exists()


def _net(act: nn.Module, bias: float, hidden: int = 2) -> models.Net:
    torch.manual_seed(0)
    fc1 = nn.Linear(3, hidden)
    with torch.no_grad():
        fc1.bias[0], fc1.bias[1:] = bias, 0.0
        fc1.weight[0] = 0.0  # unit 0's input is exactly its bias, for every example
    return models.Net([("flatten", nn.Flatten()), ("fc1", fc1), ("fc1_act", act), ("fc2", nn.Linear(hidden, 2))])


def _data(n: int = 40) -> types.SimpleNamespace:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 3, generator=g)
    y = (x[:, 1] > 0).long()
    return types.SimpleNamespace(x_train=x, y_train=y, x_test=x[:10], y_test=y[:10])


def test_probes_count_dead_units_by_their_derivative():
    ds = _data()
    relu = probes.measure(_net(actlab.layer("relu"), -1.0), ds, torch.device("cpu"))["layers"][0]
    assert (relu["dead"], relu["never_positive"], relu["units"]) == (1, 1, 2)
    leaky = probes.measure(_net(actlab.layer("leaky_relu"), -1.0), ds, torch.device("cpu"))["layers"][0]
    assert (leaky["dead"], leaky["never_positive"]) == (0, 1)  # never positive, yet passes 0.01·gradient
    alive = probes.measure(_net(actlab.layer("relu"), 1.0), ds, torch.device("cpu"))["layers"][0]
    assert alive["dead"] == 0


def test_probes_mean_activation_and_zigzag():
    ds = _data(128)
    sig = probes.measure(_net(actlab.layer("sigmoid"), 0.0, hidden=32), ds, torch.device("cpu"))
    tanh = probes.measure(_net(actlab.layer("tanh"), 0.0, hidden=32), ds, torch.device("cpu"))
    s, t = sig["layers"][0], tanh["layers"][0]
    assert 0.3 < s["mean"] < 0.7 and abs(t["mean"]) < 0.2
    # sigmoid's outputs are all positive: the next layer's gradient rows lean to one sign
    assert s["sign_agreement"] > t["sign_agreement"] + 0.1
    assert 0 <= sig["train_error"] <= 1 and 0 <= sig["test_error"] <= 1


def test_derived_subset_is_stratified_and_exact(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(60, 4, 4, 3), dtype=np.uint8)
    y = np.repeat(np.arange(3), 20)
    src = tmp_path / "imgs.npz"
    np.savez(src, x_train=x, y_train=y, x_test=x[:30], y_test=np.tile(np.arange(3), 10))
    from actlab.lab import data

    ds = data.load(str(src), subset=30, val_fraction=0.0)
    path = vdata._derived(ds, 9, tmp_path / "d" / "imgs-train30-test9.npz")
    with np.load(path) as z:
        assert z["x_train"].dtype == np.uint8 and len(z["y_train"]) == 30
        assert sorted(np.bincount(z["y_test"])) == [3, 3, 3]
        # the images come back exactly: every derived training image is one of the originals
        originals = {bytes(img) for img in x.transpose(0, 3, 1, 2).reshape(60, -1)}
        assert all(bytes(img) in originals for img in z["x_train"].reshape(30, -1))
