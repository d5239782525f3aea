"""The report over a learning-rate grid, its statistics columns, robust timing, and the fixes of
issue 12 item 5 (escaping, phone width, -0.00, titles, the resolved model). Tiny synthetic
databases written straight into the store: no training here."""

from __future__ import annotations

import html
import json
import re

import pytest
from markdown_it import MarkdownIt

from actlab.lab import analysis, report
from actlab.lab.plan import RunSpec, parse_variants
from actlab.lab.store import Store
from actlab.lab.train import RunResult

RESAMPLES = 100  # bootstrap resamples in tests: the intervals' values are not what is tested here


def _run(variant, seed, lr, *, val, test, status="done", seconds=(1.0, 1.0), data="digits", model="cnn",
         data_name="digits"):
    """One run with the given final validation and test error (two epochs) and per-epoch seconds."""
    v = parse_variants(variant)[0]
    spec = RunSpec(act=v.act, hparams=v.hparams, variant=v.label, seed=seed, epochs=len(seconds), lr=lr,
                   data=data, model=model)
    eps, total = [], 0.0
    for i, sec in enumerate(seconds):
        total += sec
        last = i == len(seconds) - 1
        eps.append({"epoch": i + 1, "train_loss": 1.0, "train_error": 0.5 if not last else test,
                    "val_loss": 1.0, "val_error": val if last else 0.6, "test_loss": 1.0,
                    "test_error": test if last else 0.6, "lr": lr, "seconds": sec, "train_seconds": total})
    steps = [{"step": i + 1, "epoch": float(i + 1), "train_seconds": eps[i]["train_seconds"], "loss": 1.0,
              "error": eps[i]["train_error"]} for i in range(len(eps))]
    if status == "diverged":
        eps, steps = eps[:1], steps[:1]
    return RunResult(spec, status, error=None if status == "done" else "diverged: loss nan", epochs=eps,
                     steps=steps, train_seconds=total, device="cpu",
                     environment={"torch": "t", "data": {"name": data_name, "classes": 10}})


# relu is best at 0.1 on validation; tanh at 0.01. The TEST errors point the other way, so a
# choice that peeked at the test set would pick the other rates.
GRID = {  # (variant, lr) -> per seed (val, test)
    ("relu", 0.01): [(0.20, 0.05), (0.22, 0.06), (0.21, 0.05)],
    ("relu", 0.1): [(0.10, 0.30), (0.12, 0.31), (0.11, 0.29)],
    ("tanh", 0.01): [(0.15, 0.40), (0.16, 0.43), (0.15, 0.38)],
    ("tanh", 0.1): [(0.30, 0.02), (0.31, 0.03), (0.30, 0.02)],
}


@pytest.fixture
def grid(tmp_path):
    with Store.open(tmp_path, create=True) as s:
        for (v, lr), seeds in GRID.items():
            for seed, (val, test) in enumerate(seeds):
                s.save(_run(v, seed, lr, val=val, test=test))
    return tmp_path


def test_each_activation_is_compared_at_its_own_rate_chosen_on_validation(grid):
    a = analysis.analyse(Store.open(grid), resamples=RESAMPLES)
    [g] = a.groups  # one comparison, two rates: not two groups
    assert g.lr.grid and g.lr.lrs == [0.01, 0.1] and g.lr.criterion == "validation error"
    assert g.lr.chosen == {"tanh": 0.01, "relu": 0.1}
    t = {x.variant: x for x in g.table}
    assert t["relu"].lr == 0.1 and t["relu"].final.mean == pytest.approx(0.30)
    assert t["tanh"].lr == 0.01 and t["tanh"].final.mean == pytest.approx((0.40 + 0.43 + 0.38) / 3)
    [p] = g.paired
    assert p.final.mean_diff == pytest.approx((0.10 + 0.12 + 0.09) / 3) and p.seeds == [0, 1, 2]
    points = {(x.variant, x.lr): x for x in g.lr.points}
    assert points["relu", 0.01].score.mean == pytest.approx(0.21) and points["relu", 0.1].chosen
    assert not points["relu", 0.01].chosen
    assert "relu 0.1" in g.summary and "tanh 0.01" in g.summary

    paths = report.write(grid, resamples=RESAMPLES)
    md, page = paths["markdown"].read_text(), paths["html"].read_text()
    assert "Learning rate per activation (chosen on the validation error)" in md
    assert "Each activation at its own learning rate" in md  # the main table's caption says so
    assert "| relu | 0.1 | 3 |" in md and "| tanh | 0.01 | 3 |" in md
    assert page.count("data:image/png;base64,") == 3  # lr, errors, curves (no layer rows, no PReLU)
    assert (grid / "figures" / f"lr-{g.group[:8]}.png").is_file()
    lr_csv = (grid / "export" / "lr.csv").read_text().splitlines()
    assert len(lr_csv) == 1 + 4  # header + 2 variants x 2 rates


def test_lr_choice_penalises_divergence_and_breaks_ties_low(tmp_path):
    with Store.open(tmp_path, create=True) as s:
        for seed in range(2):
            s.save(_run("relu", seed, 0.01, val=0.2, test=0.2))
            s.save(_run("relu", seed, 0.1, val=0.2, test=0.1))  # a tie with 0.01: the smaller rate
            # elu: 0.1 is best on the seed that finished, but the other seed diverged (counts 100 %)
            s.save(_run("elu", seed, 0.01, val=0.3, test=0.3))
            s.save(_run("elu", seed, 0.1, val=0.05, test=0.05, status="diverged" if seed else "done"))
    g = analysis.analyse(Store.open(tmp_path), resamples=RESAMPLES).groups[0]
    assert g.lr.chosen == {"relu": 0.01, "elu": 0.01}
    elu = next(p for p in g.lr.points if p.variant == "elu" and p.lr == 0.1)
    assert elu.diverged == 1 and elu.score.mean == pytest.approx((0.05 + 1.0) / 2)


def test_a_single_rate_keeps_the_plain_report(tmp_path):
    with Store.open(tmp_path, create=True) as s:
        for seed in range(2):
            s.save(_run("relu", seed, 0.02, val=0.1, test=0.1))
            s.save(_run("tanh", seed, 0.02, val=0.2, test=0.2 + 0.01 * seed))
    md = report.write(tmp_path, resamples=RESAMPLES)["markdown"].read_text()
    assert "Learning rate per activation" not in md and "at its own learning rate" not in md
    assert "lr 0.02 (cosine)" in md
    assert "| relu | 2 | 0 | 0 |" in md  # no lr column


def test_statistics_columns_and_the_stated_method(grid):
    g = analysis.analyse(Store.open(grid), resamples=RESAMPLES).groups[0]
    relu = next(t for t in g.table if t.variant == "relu")
    assert relu.iqm.value == pytest.approx(0.30) and 0 <= relu.iqm.ci_low <= relu.iqm.ci_high <= 1
    [p] = g.paired
    assert p.final.p_better.value == 0.0  # tanh (0.38-0.43) never beats relu (0.29-0.31) on test error
    assert p.final.d_z == pytest.approx(p.final.mean_diff / p.final.std_diff)
    assert p.final.detectable > 0
    assert g.power.startswith("Power: with n = 3 paired seeds")
    page = html.unescape(report.write(grid, resamples=RESAMPLES)["html"].read_text())
    for words in ("IQM [95% CI]", "P(better) [95% CI]", "d_z", "detectable (pp)", "What a seed varies",
                  "initial weights", "RReLU's sampled slopes", "does not vary the data split",
                  "which epoch is reported", "read the final test error"):
        assert words in page, words


def test_speed_uses_the_median_epoch_after_the_first_and_flags_noise(tmp_path):
    with Store.open(tmp_path, create=True) as s:
        for seed in range(2):
            # relu: a 16 s first epoch (compilation), then steady 1 s epochs
            s.save(_run("relu", seed, 0.02, val=0.1, test=0.01, seconds=(16.0, 1.0, 1.1, 0.9)))
            # tanh: epochs that swing between 0.5 and 3 s (another job on the machine)
            s.save(_run("tanh", seed, 0.02, val=0.1, test=0.01, seconds=(1.0, 0.5, 3.0, 0.6)))
    g = analysis.analyse(Store.open(tmp_path), target_error=0.05, resamples=RESAMPLES).groups[0]
    rows = {r.variant: r for r in g.speed.rows}
    assert rows["relu"].epoch_seconds.mean == pytest.approx(1.0) and not rows["relu"].noisy
    assert rows["tanh"].epoch_seconds.mean == pytest.approx(0.6) and rows["tanh"].noisy
    # reached the target after 4 epochs: seconds = 4 x the robust per-epoch time, not 19 s
    assert rows["relu"].seconds.mean == pytest.approx(4.0)
    md = report.write(tmp_path, target_error=0.05, resamples=RESAMPLES)["markdown"].read_text()
    assert "Noisy here: tanh" in md and "noisy (CV" in md


# --- hostile names, phone width, formatting ----------------------------------------------------

HOSTILE = "/tmp/<img src=x onerror=alert(1)>\n```\n| a | b |"


@pytest.fixture
def hostile(tmp_path):
    with Store.open(tmp_path, create=True) as s:
        s.add_invocation(["actlab", "compare", "--data", HOSTILE, "--model", "auto", "--out", HOSTILE + "*x*"],
                         {"model": "cnn"}, {"torch": "t"})
        for seed in range(2):
            for v, test in (("relu", 0.1), ("elu", 0.1 + 1e-6 * (seed - 0.5))):  # Δ rounds to -0.00 / +0.00
                r = _run(v, seed, 0.02, val=0.1, test=test, data=HOSTILE, model="cnn", data_name=HOSTILE)
                s.save(r)
        bad = _run("tanh", 0, 0.02, val=0.1, test=0.1, status="failed", data=HOSTILE, data_name=HOSTILE)
        bad.error = "boom <script>alert(2)</script>\n```\n| x"
        s.save(bad)
    return tmp_path


def _html_text_nodes(page):
    """Every tag name in the page: script injection would add <script> or <img onerror>."""
    return re.findall(r"<\s*([a-zA-Z0-9]+)", page)


def test_hostile_names_are_escaped_in_the_markdown(hostile):
    md = report.write(hostile, resamples=RESAMPLES)["markdown"].read_text()
    rendered = MarkdownIt("commonmark").enable("table").render(md)
    assert "<img src=x" not in rendered and "<script>" not in rendered
    assert all(src.startswith("figures/") for src in re.findall(r'<img src="([^"]*)"', rendered))
    assert rendered.count("<img") == len(re.findall(r'<img src="figures/', rendered))
    # the command stays inside ONE code block, whole: its ``` line did not close the fence
    blocks = re.findall(r"<pre><code>(.*?)</code></pre>", rendered, flags=re.S)
    assert len(blocks) == 1 and "--model cnn" in blocks[0] and "*x*" in blocks[0]
    assert blocks[0].count("```") == 2  # the two hostile paths' own back-ticks, as text
    # tables keep their columns: the run with the hostile error is one row of the Runs table
    runs_table = [t for t in re.findall(r"<table>(.*?)</table>", rendered, flags=re.S) if "<th>key</th>" in t][0]
    widths = {row.count("<td") for row in re.findall(r"<tr>(.*?)</tr>", runs_table, flags=re.S) if "<td" in row}
    assert len(widths) == 1
    assert "--model auto" not in md  # the reproduction command names the resolved model


def test_hostile_names_are_escaped_in_the_html(hostile):
    page = report.write(hostile, resamples=RESAMPLES)["html"].read_text()
    assert "<img src=x" not in page and "<script>" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert set(_html_text_nodes(page)) <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p",
                                           "ul", "li", "div", "table", "thead", "tbody", "tr", "th", "td", "figure",
                                           "img", "figcaption", "pre", "code"}
    assert page.count("<img") == page.count('src="data:image/png;base64,')  # only our figures


def test_title_names_data_and_model_and_no_negative_zero(hostile):
    paths = report.write(hostile, resamples=RESAMPLES)
    page, md = paths["html"].read_text(), paths["markdown"].read_text()
    title = re.search(r"<title>(.*?)</title>", page).group(1)
    assert title.startswith("actlab report: ") and "cnn" in title and "&lt;img" in title
    assert "-0.00" not in md and "+0.00" not in md and "-0.00" not in page
    assert report._fmt(-0.0001, "+.2f") == "0.00" and report._fmt(-0.004, ".2f") == "0.00"
    assert report._fmt(-0.006, ".2f") == "-0.01" and report._fmt(0.5, "+.2f") == "+0.50"


def test_the_page_fits_a_phone(hostile):
    """Structural: the viewport is declared, every table scrolls in its own container, long words wrap,
    figures and code shrink to the width (see test_report_browser for the measured width)."""
    page = report.write(hostile, resamples=RESAMPLES)["html"].read_text()
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert page.count("<table>") == page.count('<div class="scroll"><table>') > 0
    css = re.search(r"<style>(.*?)</style>", page, flags=re.S).group(1)
    rules = dict(re.findall(r"([^{}]+)\{([^}]*)\}", css))
    rule = lambda sel: next(v for k, v in rules.items() if sel in [s.strip() for s in k.split(",")])  # noqa: E731
    assert "overflow-x: auto" in rule(".scroll") and "overflow-x: auto" in rule("pre")
    assert "max-width: 100%" in rule("img") and "overflow-wrap: anywhere" in rule("p")


def test_markdown_code_is_code_in_the_html(grid):
    page = report.write(grid, resamples=RESAMPLES)["html"].read_text()
    assert "<code>actlab report DIR</code>" in page and "`" not in page.split("<pre>")[0]


def test_md_escape_inline_markup():
    md = MarkdownIt("commonmark")
    for text in ("*bold* _it_ [link](http://x) <b>x</b> &amp; `code` ~~s~~ # h", "- item", "1. item", "+ x", "==="):
        para = report.Doc()
        para.p(text)
        html = md.render(report.render_markdown(para))
        assert html.startswith("<p>") and html.count("<p>") == 1, (text, html)
        for tag in ("<em>", "<strong>", "<a ", "<b>", "<code>", "<h1>", "<li>"):
            assert tag not in html, (text, tag)
    assert report.md_escape("leaky_relu") == "leaky_relu"  # intraword underscores stay readable


def test_report_json_is_the_typed_analysis(grid):
    js = json.loads(report.write(grid, resamples=RESAMPLES)["json"].read_text())
    g = js["groups"][0]
    assert g["lr"]["chosen"] == {"tanh": 0.01, "relu": 0.1}
    assert {"value", "ci_low", "ci_high", "n"} <= set(g["table"][0]["iqm"])
    assert {"d_z", "p_better", "detectable", "p_holm", "verdict"} <= set(g["paired"][0]["final"])
    assert js["randomness"].startswith("A seed varies")


def _chromium():
    import shutil

    return next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)


@pytest.mark.skipif(_chromium() is None,
                    reason="no headless Chromium on this machine (Debian: apt-get install chromium)")
def test_the_page_fits_a_phone_in_a_browser(hostile, tmp_path):
    """Measured: headless Chromium at its narrowest window (500 CSS px; it will not go to 390) lays
    the report out without horizontal overflow of the page; wide tables scroll in their containers."""
    import subprocess

    page = report.write(hostile, resamples=RESAMPLES)["html"].read_text()
    probe = ("<script>addEventListener('load', () => { document.title = 'W' + document.documentElement.scrollWidth "
             "+ 'x' + innerWidth + 'x' + Math.max(...[...document.querySelectorAll('.scroll')].map(e => "
             "e.scrollWidth)); });</script></body>")
    path = tmp_path / "probe.html"
    path.write_text(page.replace("</body>", probe))
    out = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--window-size=390,844",
                          "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120).stdout
    page_width, viewport, widest_table = map(int, re.search(r"<title>W(\d+)x(\d+)x(\d+)</title>", out).groups())
    assert viewport <= 500
    assert page_width <= viewport, f"the page is {page_width} px wide in a {viewport} px window"
    assert widest_table > viewport  # the tables are wider than the phone: they scroll, the page does not
