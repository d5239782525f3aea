"""actlab.lab.summary: ranks per data set, Friedman, Nemenyi CD and the verdict, against scipy and Demšar."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from actlab import cli
from actlab.lab import summary
from actlab.lab.plan import RunSpec, parse_variants
from actlab.lab.store import Store
from actlab.lab.train import RunResult


def _save(store, data, variant, seed, test):
    v = parse_variants(variant)[0]
    spec = RunSpec(act=v.act, hparams=v.hparams, variant=v.label, seed=seed, epochs=1, data=data)
    ep = {"epoch": 1, "train_loss": 1.0, "train_error": test, "val_loss": 1.0, "val_error": test, "test_loss": 1.0,
          "test_error": test, "lr": 0.02, "seconds": 1.0, "train_seconds": 1.0}
    store.save(RunResult(spec, "done", epochs=[ep], steps=[], train_seconds=1.0, device="cpu",
                         environment={"data": {"name": data, "classes": 10}}))


def _dirs(tmp_path, table):
    """table: data name -> {variant: mean error}; two seeds at mean ± 0.001."""
    out = []
    for data, errs in table.items():
        d = tmp_path / data
        with Store.open(d, create=True) as s:
            for v, e in errs.items():
                for seed, delta in enumerate((-0.001, 0.001)):
                    _save(s, data, v, seed, e + delta)
        out.append(d)
    return out


MIXED = {  # no variant is best everywhere
    "digits": {"relu": 0.10, "tanh": 0.20, "elu": 0.12, "prelu": 0.30},
    "mnist1d": {"relu": 0.30, "tanh": 0.25, "elu": 0.20},  # prelu not run here
    "cifar": {"relu": 0.40, "tanh": 0.50, "elu": 0.41, "prelu": 0.60},
    "svhn": {"relu": 0.15, "tanh": 0.16, "elu": 0.14, "prelu": 0.17},
}


def test_ranks_friedman_and_cd_match_scipy_and_demsar(tmp_path):
    s = summary.combine(_dirs(tmp_path, MIXED), resamples=20)
    assert s.variants == ["tanh", "relu", "elu"]  # registry order; prelu missing on mnist1d
    assert s.dropped == {"prelu": ["mnist1d · cnn"]}
    errors = {d: [MIXED[d][v] for v in s.variants] for d in MIXED}
    for d, r in zip(MIXED, s.ranks):
        assert [r[v] for v in s.variants] == pytest.approx(list(sps.rankdata(errors[d])))
    assert s.average_ranks["elu"] == pytest.approx(np.mean([2, 1, 2, 1]))
    ref = sps.friedmanchisquare(*[[MIXED[d][v] for d in MIXED] for v in s.variants])
    assert (s.friedman_statistic, s.friedman_p) == pytest.approx((ref.statistic, ref.pvalue))
    # Demšar (2006), Table 5(a): q_0.05 = 2.343 for k = 3
    assert s.cd == pytest.approx(2.343 * math.sqrt(3 * 4 / (6 * 4)), abs=1e-3)
    assert s.verdict.startswith("No consistent winner: the best variant changes with the data set")
    assert "Friedman p" in s.verdict


def test_a_consistent_winner_is_named(tmp_path):
    table = {f"d{i}": {"relu": 0.1 + i / 100, "tanh": 0.2 + i / 50, "elu": 0.15 + i / 40} for i in range(5)}
    s = summary.combine(_dirs(tmp_path, table), resamples=20)
    assert s.winners == [["relu"]] * 5
    assert s.verdict.startswith("Consistent winner: relu has the lowest mean error on all 5 data sets")
    assert s.friedman_p < 0.05 and s.average_ranks == {"tanh": 3.0, "relu": 1.0, "elu": 2.0}
    # 2.0 - 1.0 < CD(k=3, N=5) = 1.48: elu is not significantly behind relu; they share a clique
    assert ["relu", "elu"] in s.cliques and "within the critical difference" in s.verdict


def test_two_data_sets_are_described_not_tested(tmp_path):
    s = summary.combine(_dirs(tmp_path, {k: MIXED[k] for k in ("digits", "cifar")}), resamples=20)
    assert s.friedman_p is None and s.cd is None
    assert any("need at least 3 data sets" in n for n in s.notes)
    assert s.verdict.startswith("Consistent winner: relu")


def test_cli_summary_and_its_errors(tmp_path, capsys):
    dirs = [str(d) for d in _dirs(tmp_path, MIXED)]
    assert cli.main(["report", *dirs, "--out", str(tmp_path / "sum")]) == 0
    assert "summary:" in capsys.readouterr().out
    page = (tmp_path / "sum" / "summary.html").read_text()
    assert page.count("data:image/png;base64,") == 1 and "Friedman chi-square" in page
    assert ("Left out, without a finished run (not run, diverged or failed) on every data set: "
            "prelu (missing on mnist1d · cnn).") in page
    js = json.loads((tmp_path / "sum" / "export" / "summary.json").read_text())
    assert js["variants"] == ["tanh", "relu", "elu"] and len(js["ranks"]) == 4
    assert (tmp_path / "sum" / "figures" / "cd.png").read_bytes()[:4] == b"\x89PNG"
    assert cli.main(["report", *dirs]) == 2
    assert "give --out DIR" in capsys.readouterr().err
    assert cli.main(["report", dirs[0], str(tmp_path / "nothing"), "--out", str(tmp_path / "s2")]) == 2
    assert "no results database in" in capsys.readouterr().err
