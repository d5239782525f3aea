"""actlab.lab.analysis / report: every number shown is the database's, recomputed here from raw rows."""

from __future__ import annotations

import base64
import csv
import json
import math
import sqlite3
from collections import defaultdict

import numpy as np
import pytest
from scipy import stats as sps

from actlab.lab import analysis, report
from actlab.lab.compare import compare
from actlab.lab.plan import Comparison, RunSpec, parse_variants
from actlab.lab.store import DB_NAME, Store
from actlab.lab.train import RunResult


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A real, tiny comparison: 4 variants × 3 seeds, 2 epochs on 120 digits."""
    out = tmp_path_factory.mktemp("lab")
    c = Comparison(variants=tuple(parse_variants("relu,tanh,prelu,prelu:channelwise")), seeds=3, epochs=2,
                   subset=120, batch_size=36, lr=0.05)
    outcome = compare(c, out, device="cpu", quiet=True, argv=["actlab", "compare", "(test)"])
    assert outcome.done == 12
    return out


def _raw(path):
    """The numbers the report should show, from the database's rows, without actlab's code."""
    db = sqlite3.connect(path / DB_NAME)
    runs = db.execute("SELECT key, variant, act, seed, status FROM runs").fetchall()
    final, best, selected = {}, {}, {}
    for key, *_ in runs:
        rows = db.execute("SELECT test_error, val_error FROM epochs WHERE run_key = ? ORDER BY epoch",
                          (key,)).fetchall()
        if rows:
            errs = [t for t, _ in rows]
            final[key], best[key] = errs[-1], min(errs)
            first_best_val = min(range(len(rows)), key=lambda i: (rows[i][1], i))
            selected[key] = errs[first_best_val]
    by_variant = defaultdict(dict)
    for key, variant, act, seed, status in runs:
        if status == "done":
            by_variant[variant][seed] = key
    slopes = defaultdict(lambda: defaultdict(list))
    for key, variant, act, seed, status in runs:
        if act == "prelu" and status == "done":
            last = db.execute("SELECT MAX(epoch) FROM layers WHERE run_key = ?", (key,)).fetchone()[0]
            for layer, mean in db.execute("SELECT layer, slope_mean FROM layers WHERE run_key = ? AND epoch = ?",
                                          (key, last)):
                slopes[variant][layer].append(mean)
    db.close()
    return by_variant, final, best, selected, slopes


def _ci(values, bounds=(0.0, 1.0)):
    """Mean, std and the 95% t interval, clipped to ``bounds`` (an error rate stays in [0, 1])."""
    x = np.asarray(values)
    half = sps.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    lo, hi = np.clip([x.mean() - half, x.mean() + half], *bounds) if bounds else (x.mean() - half, x.mean() + half)
    return x.mean(), x.std(ddof=1), lo, hi


def _holm(p):
    order = sorted(range(len(p)), key=lambda i: p[i])
    out, running = [0.0] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        out[i] = running
    return out


def test_report_numbers_equal_the_database(lab):
    by_variant, final, best, selected, slopes = _raw(lab)
    js = json.loads((lab / "export" / "report.json").read_text())
    [g] = js["groups"]
    md = (lab / "report.md").read_text()
    table = {t["variant"]: t for t in g["table"]}
    assert set(table) == set(by_variant) == {"relu", "tanh", "prelu", "prelu(channel)"}
    for v, seeds in by_variant.items():
        for which, source in (("final", final), ("selected", selected), ("best", best)):
            mean, std, lo, hi = _ci([source[k] for k in seeds.values()])
            got = table[v][which]
            assert got["n"] == 3
            assert (got["mean"], got["std"], got["ci_low"], got["ci_high"]) == pytest.approx((mean, std, lo, hi))
            assert f"{100 * mean:.2f} ± {100 * std:.2f}" in md
    # paired tests against relu, Holm across the three others
    paired = {e["variant"]: e for e in g["paired"]}
    others = [v for v in table if v != "relu"]
    raw_p = []
    for v in others:
        seeds = sorted(set(by_variant[v]) & set(by_variant["relu"]))
        a = [final[by_variant[v][s]] for s in seeds]
        b = [final[by_variant["relu"][s]] for s in seeds]
        d = np.subtract(a, b)
        assert paired[v]["final"]["n"] == len(seeds) == 3
        assert paired[v]["final"]["mean_diff"] == pytest.approx(d.mean())
        p = sps.ttest_rel(a, b).pvalue if d.std() > 1e-12 else (1.0 if abs(d.mean()) < 1e-12 else math.nan)
        raw_p.append(p)
        assert paired[v]["final"]["p"] == pytest.approx(p, nan_ok=True)
        sel = np.subtract([selected[by_variant[v][s]] for s in seeds], [selected[by_variant["relu"][s]] for s in seeds])
        assert paired[v]["selected"]["mean_diff"] == pytest.approx(sel.mean())
    for v, p in zip(others, _holm([p for p in raw_p])):
        if not math.isnan(p):
            assert paired[v]["final"]["p_holm"] == pytest.approx(p)
    # Table 8.1: learned slopes per layer
    sl = {s["variant"]: s for s in g["slopes"]}
    assert sl["prelu"]["setting"] == "shared" and sl["prelu(channel)"]["setting"] == "channel-wise"
    for v, layers in slopes.items():
        for row in sl[v]["layers"]:
            assert row["mean"] == pytest.approx(np.mean(layers[row["layer"]]))
            assert f"{row['mean']:.3f} ± {row['std']:.3f}" in md
    # the CSV export says the same
    with open(lab / "export" / "summary.csv") as f:
        rows = {r["variant"]: r for r in csv.DictReader(f)}
    for v, t in table.items():
        assert float(rows[v]["final_mean"]) == pytest.approx(t["final"]["mean"])
        assert float(rows[v]["selected_mean"]) == pytest.approx(t["selected"]["mean"])


def test_speed_table_from_the_steps(lab):
    js = json.loads((lab / "export" / "report.json").read_text())
    [g] = js["groups"]
    target = g["speed"]["target_error"]
    db = sqlite3.connect(lab / DB_NAME)
    for row in g["speed"]["rows"]:
        for seed, hit in row["per_seed"].items():
            [(key,)] = db.execute("SELECT key FROM runs WHERE variant = ? AND seed = ?", (row["variant"], int(seed)))
            steps = db.execute("SELECT epoch, train_seconds, error FROM steps WHERE run_key = ? ORDER BY step",
                               (key,)).fetchall()
            per_epoch = sum(1 for e, _, _ in steps if e <= 1 + 1e-9)
            expect = None
            for i, (epoch, seconds, _) in enumerate(steps):
                window = [err for _, _, err in steps[max(0, i + 1 - per_epoch):i + 1]]
                if sum(window) / len(window) <= target:
                    expect = {"epochs": epoch, "seconds": seconds}
                    break
            assert hit == (pytest.approx(expect) if expect else None)
    tanh = next(r for r in g["speed"]["rows"] if r["variant"] == "tanh")
    for r in g["speed"]["rows"]:
        if r["epochs_vs_tanh"] is not None:
            assert r["epochs_vs_tanh"] == pytest.approx(tanh["epochs"]["mean"] / r["epochs"]["mean"])


def test_html_is_one_self_contained_page(lab):
    page = (lab / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 4  # errors, slopes, curves, layers
    assert 'src="http' not in page and 'src="figures' not in page
    png = page.split("data:image/png;base64,", 1)[1].split('"', 1)[0]
    assert base64.b64decode(png)[:8] == b"\x89PNG\r\n\x1a\n"
    for section in ("Table 8.2", "Table 8.1", "Paired differences against relu", "Training curves",
                    "training error", "dead and saturated", "Environment", "Definitions"):
        assert section in page
    md = (lab / "report.md").read_text()
    for name in ("errors", "slopes", "curves", "layers"):
        [fig] = list((lab / "figures").glob(f"{name}-*.png"))
        assert f"figures/{fig.name}" in md
    assert "(test)" in md  # the command line is in the environment section


def test_report_can_be_rebuilt_with_another_target(lab):
    paths = report.write(lab, target_error=0.5, resamples=100)
    assert "Time to 50% training error" in paths["markdown"].read_text()
    js = json.loads(paths["json"].read_text())
    assert js["groups"][0]["speed"]["target_error"] == 0.5 and js["groups"][0]["speed"]["auto"] is False
    with pytest.raises(ValueError, match="invalid target_error"):
        report.write(lab, target_error=1.5)


# --- synthetic databases: exact numbers, diverged and failed runs ------------------------------


def _result(variant, seed, status, errors, act=None):
    act = act or variant
    v = parse_variants(act)[0]
    spec = RunSpec(act=v.act, hparams=v.hparams, variant=v.label, seed=seed, epochs=len(errors))
    eps = [{"epoch": i + 1, "train_loss": 1.0, "train_error": e, "val_loss": None, "val_error": None,
            "test_loss": 1.0, "test_error": e, "lr": 0.01, "seconds": 1.0, "train_seconds": i + 1.0}
           for i, e in enumerate(errors)]
    steps = [{"step": i + 1, "epoch": i + 1.0, "train_seconds": i + 1.0, "loss": 1.0, "error": e}
             for i, e in enumerate(errors)]
    if status == "diverged":
        eps, steps = eps[:1], steps[:1] + [{"step": 9, "epoch": 1.5, "train_seconds": 2.0, "loss": None, "error": 0.9}]
    return RunResult(spec, status, error=None if status == "done" else f"{status}: test", epochs=eps if status != "failed"
                     else [], steps=steps if status != "failed" else [], train_seconds=1.0, device="cpu",
                     environment={"torch": "t", "data": {"name": "digits", "classes": 10}})


@pytest.fixture
def synthetic(tmp_path):
    finals = {"relu": [0.10, 0.12, 0.11], "tanh": [0.20, 0.22, 0.21], "elu": [0.101, 0.119, 0.111]}
    with Store.open(tmp_path, create=True) as s:
        for v, errs in finals.items():
            for seed, e in enumerate(errs):
                status = "diverged" if (v, seed) == ("elu", 2) else "failed" if (v, seed) == ("tanh", 1) else "done"
                s.save(_result(v, seed, status, [0.5, e]))
    return tmp_path


def test_diverged_and_failed_runs_are_counted_not_averaged(synthetic):
    paths = report.write(synthetic, resamples=100)
    g = json.loads(paths["json"].read_text())["groups"][0]
    t = {x["variant"]: x for x in g["table"]}
    assert (t["elu"]["done"], t["elu"]["diverged"], t["tanh"]["failed"]) == (2, 1, 1)
    assert t["elu"]["final"]["mean"] == pytest.approx(0.11) and t["tanh"]["final"]["mean"] == pytest.approx(0.205)
    p = {x["variant"]: x for x in g["paired"]}
    assert p["tanh"]["final"]["n"] == 2 and p["tanh"]["final"]["mean_diff"] == pytest.approx(0.1)
    assert p["elu"]["seeds"] == [0, 1]
    md = paths["markdown"].read_text()
    assert "elu: 1 of 3 runs diverged" in md and "tanh: 1 of 3 runs failed" in md
    assert "| elu | 2 | diverged |" in md and "diverged: test" in md


def test_a_multi_line_error_stays_in_its_table_row(tmp_path):
    with Store.open(tmp_path, create=True) as s:
        r = _result("relu", 0, "failed", [0.1])
        r.error = "CompilationError: at 5:13:\n    if OP == X:\n| NameError('X')"
        s.save(r)
    md = report.write(tmp_path, resamples=100)["markdown"].read_text()
    [row] = [line for line in md.splitlines() if line.startswith("| relu | 0 | failed")]
    assert row.endswith("CompilationError: at 5:13: / if OP == X: / \\| NameError('X') |")


def test_verdicts_in_words(tmp_path):
    with Store.open(tmp_path, create=True) as s:
        for seed, (a, b) in enumerate([(0.10, 0.30), (0.12, 0.33), (0.11, 0.29), (0.10, 0.31)]):
            s.save(_result("relu", seed, "done", [a]))
            s.save(_result("sigmoid", seed, "done", [b]))
            s.save(_result("elu", seed, "done", [a + (0.01 if seed % 2 else -0.01)]))
    g = analysis.analyse(Store.open(tmp_path), resamples=50).groups[0]
    p = {x.variant: x.final for x in g.paired}
    assert p["sigmoid"].verdict.startswith("sigmoid has higher error than relu")
    assert p["elu"].verdict.startswith("no significant difference from relu")
    assert "Significantly higher final test error than relu: sigmoid." in g.summary
    assert "No significant difference: elu." in g.summary


def test_one_seed_is_reported_as_untestable(tmp_path):
    with Store.open(tmp_path, create=True) as s:
        s.save(_result("relu", 0, "done", [0.1]))
        s.save(_result("tanh", 0, "done", [0.2]))
    g = analysis.analyse(Store.open(tmp_path), resamples=50).groups[0]
    assert g.paired[0].final.verdict.startswith("not tested: 1 paired seed")
    assert "No variant could be tested" in g.summary
    report.write(tmp_path, resamples=100)  # renders without a std, CI or p-value


def test_runs_of_different_settings_are_reported_apart(tmp_path):
    with Store.open(tmp_path, create=True) as s:
        s.save(_result("relu", 0, "done", [0.3, 0.1]))
        s.save(_result("relu", 0, "done", [0.1]))  # one epoch: another setting
    js = json.loads(report.write(tmp_path, resamples=100)["json"].read_text())
    assert len(js["groups"]) == 2
    assert "## 2. Setting" in (tmp_path / "report.md").read_text()


def test_empty_database_and_missing_database(tmp_path):
    Store.open(tmp_path / "empty", create=True).close()
    assert "holds no runs yet" in report.write(tmp_path / "empty")["markdown"].read_text()
    with pytest.raises(FileNotFoundError, match="no results database"):
        report.write(tmp_path / "nothing")


def test_auto_target():
    assert analysis.auto_target({"a": [0.004, 0.006], "b": [0.03]}, 10) == 0.05
    assert analysis.auto_target({"a": [0.9], "b": [0.0]}, 10) == 0.01  # sigmoid at chance is left out
    assert analysis.auto_target({"a": [0.9]}, 10) == 0.25


def test_test_error_at_best_validation_takes_the_earliest_lowest_val_epoch():
    from actlab.lab.analysis import _run_row

    run = {"key": "k", "variant": "relu", "act": "relu", "seed": 0, "status": "done", "error": None,
           "epochs_done": 4, "train_seconds": 1.0, "wall_seconds": 1.0, "device": "cpu", "spec": {}}
    eps = [{"epoch": i + 1, "test_error": t, "val_error": v, "train_error": 0.1, "train_loss": 0.1}
           for i, (t, v) in enumerate([(0.5, 0.3), (0.4, 0.2), (0.35, 0.2), (0.3, 0.25)])]
    row = _run_row(run, eps)
    assert (row.selected_test_error, row.selected_epoch) == (0.4, 2)  # val ties at 2 and 3: the earlier
    assert (row.best_test_error, row.best_epoch, row.final_test_error) == (0.3, 4, 0.3)
    no_val = [dict(e, val_error=float("nan")) for e in eps]  # no validation split
    assert _run_row(run, no_val).selected_test_error is None
