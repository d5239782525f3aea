"""Across data sets: ``actlab report DIR1 DIR2 … --out DIR`` — is there a consistent winner?

Each comparison (a group of a results database: one data set, model and training setting) is one
*problem*. On each, the variants are ranked by their mean final test error at their own chosen
learning rate (:mod:`actlab.lab.analysis`; rank 1 = lowest error, ties share the average rank).
Then, as Demšar (2006) recommends for comparing several methods over several data sets:

* the average rank of each variant over the problems;
* the Friedman test (``scipy.stats.friedmanchisquare``) of "all variants rank alike", which
  needs at least 3 variants and, here, at least :data:`MIN_PROBLEMS` problems (with fewer its
  chi-square approximation means nothing, so the ranks are shown as a description only);
* the Nemenyi critical difference CD = q_α · √(k(k + 1) / (6N)), q_α the studentized range
  quantile for k groups and infinite degrees of freedom over √2 (``scipy.stats.studentized_range``):
  two variants whose average ranks differ by at least CD differ significantly (α = 0.05);
  drawn as a critical-difference diagram;
* a verdict sentence: is one variant best on every problem?

Only variants present (with finished runs) in every problem are compared; the others are listed
with where they are missing. :func:`write` renders the summary through the same typed blocks as
the per-directory report (escaped Markdown and HTML).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy import stats as sps

from . import figures
from .analysis import ALPHA, analyse
from .report import Code, Doc, _atomic_write, _csv, _fmt, json_clean, render_html, render_markdown
from .store import Store

__all__ = ["Problem", "CrossSummary", "combine", "summarize", "write", "critical_difference", "MIN_PROBLEMS"]

#: the Friedman test and the critical difference are computed from this many problems on
MIN_PROBLEMS = 3


@dataclass
class Problem:
    """One comparison: a data set with its model, and each variant's mean final test error there."""

    label: str
    directory: str
    data: str
    model: str
    lrs: dict[str, float]  # variant → its chosen learning rate
    errors: dict[str, float]  # variant → mean final test error at that rate (finished runs only)
    seeds: int


@dataclass
class CrossSummary:
    problems: list[Problem]
    variants: list[str]  # compared: present in every problem
    dropped: dict[str, list[str]]  # variant → the problems it is missing from
    ranks: list[dict[str, float]]  # per problem, variant → rank (1 = lowest error)
    average_ranks: dict[str, float]
    friedman_statistic: float | None
    friedman_p: float | None
    cd: float | None
    cliques: list[list[str]]  # groups of variants not significantly different (Nemenyi)
    winners: list[list[str]]  # per problem, the variant(s) of rank 1
    verdict: str
    notes: list[str]


def critical_difference(k: int, n: int, alpha: float = ALPHA) -> float:
    """Nemenyi's critical difference of average ranks for k methods over n problems (Demšar 2006)."""
    q = float(sps.studentized_range.ppf(1 - alpha, k, np.inf)) / math.sqrt(2)
    return q * math.sqrt(k * (k + 1) / (6 * n))


def _cliques(avg: dict[str, float], cd: float) -> list[list[str]]:
    """Maximal runs of variants (ordered by average rank) whose ranks span less than CD."""
    names = sorted(avg, key=lambda v: avg[v])
    out: list[list[str]] = []
    for i in range(len(names)):
        j = i
        while j + 1 < len(names) and avg[names[j + 1]] - avg[names[i]] < cd:
            j += 1
        if j > i and not any(set(names[i:j + 1]) <= set(c) for c in out):
            out.append(names[i:j + 1])
    return out


def summarize(problems: list[Problem]) -> CrossSummary:
    """Ranks, Friedman test, critical difference and the verdict over ``problems``."""
    notes: list[str] = []
    present = [set(p.errors) for p in problems]
    order: list[str] = []
    for p in problems:
        order += [v for v in p.errors if v not in order]
    common = [v for v in order if all(v in s for s in present)]
    dropped = {v: [p.label for p in problems if v not in p.errors] for v in order if v not in common}
    if dropped:
        notes.append("Left out, without a finished run (not run, diverged or failed) on every data set: " + "; ".join(
            f"{v} (missing on {', '.join(where)})" for v, where in dropped.items()) + ".")
    n, k = len(problems), len(common)
    ranks = [dict(zip(common, sps.rankdata([p.errors[v] for v in common]))) for p in problems] if k else []
    avg = {v: float(np.mean([r[v] for r in ranks])) for v in common} if ranks else {}
    winners = [[v for v in common if r[v] == min(r.values())] for r in ranks]
    stat = p_value = cd = None
    cliques: list[list[str]] = []
    if k < 2:
        notes.append(f"{k} variant(s) common to all data sets: nothing to rank.")
    elif n < MIN_PROBLEMS:
        notes.append(f"{n} data set(s): the ranks are a description only; the Friedman test and the critical "
                     f"difference need at least {MIN_PROBLEMS} data sets (more make them meaningful: Demšar "
                     f"suggests 10 or more).")
    else:
        cd = critical_difference(k, n)
        cliques = _cliques(avg, cd)
        if k >= 3:
            res = sps.friedmanchisquare(*[[p.errors[v] for p in problems] for v in common])
            stat, p_value = float(res.statistic), float(res.pvalue)
        else:
            notes.append("2 variants: the Friedman test needs at least 3; with 2, compare the paired tests of "
                         "each data set's report.")
    verdict = _verdict(problems, common, avg, winners, p_value, cd)
    return CrossSummary(problems, common, dropped, [{v: float(x) for v, x in r.items()} for r in ranks], avg,
                        stat, p_value, cd, cliques, winners, verdict, notes)


def _verdict(problems: list[Problem], common: list[str], avg: dict[str, float], winners: list[list[str]],
             p: float | None, cd: float | None) -> str:
    if len(common) < 2 or not problems:
        return "No verdict: fewer than 2 variants in common."
    always = [v for v in common if all(v in w for w in winners)]
    best = min(avg, key=lambda v: avg[v])
    if len(problems) == 1:
        return f"One data set only: {best} ranks first there; a winner across data sets needs several."
    if always:
        head = (f"Consistent winner: {always[0]} has the lowest mean error on all {len(problems)} data sets"
                if len(always) == 1 else f"Tied first on all {len(problems)} data sets: {', '.join(always)}")
    else:
        firsts = "; ".join(f"{'/'.join(w)} on {pr.label}" for w, pr in zip(winners, problems))
        head = f"No consistent winner: the best variant changes with the data set ({firsts})"
    if p is None:
        tail = "no test of the ranks (see the note below)"
    elif p < ALPHA:
        second = sorted(avg, key=lambda v: avg[v])[1]
        sep = (f"{best} (average rank {avg[best]:.2f}) is significantly ahead of {second} by the Nemenyi test"
               if cd is not None and avg[second] - avg[best] >= cd else
               f"but the best average rank, {best}'s ({avg[best]:.2f}), is within the critical difference "
               f"{cd:.2f} of {second}'s ({avg[second]:.2f}): no single variant stands out")
        tail = f"the average ranks differ (Friedman p = {p:.3g}); {sep}"
    else:
        tail = f"the average ranks do not differ significantly (Friedman p = {p:.3g}, alpha = {ALPHA})"
    return f"{head}; {tail}."


def combine(directories: Sequence[str | os.PathLike[str]], *, resamples: int | None = 200) -> CrossSummary:
    """Read each directory's results database and summarise its comparisons across data sets."""
    problems: list[Problem] = []
    for d in directories:
        with Store.open(d) as store:
            a = analyse(store, resamples=resamples)
        for g in a.groups:
            errors = {t.variant: t.final.mean for t in g.table if t.done and math.isfinite(t.final.mean)}
            name = str(g.data.get("name", g.setting.get("data", "?")))
            problems.append(Problem(label=f"{name} · {g.setting.get('model', '?')}", directory=str(d), data=name,
                                    model=str(g.setting.get("model", "?")), lrs=dict(g.lr.chosen), errors=errors,
                                    seeds=len(g.seeds)))
    labels = [p.label for p in problems]
    for p in problems:  # the same data and model twice (two settings, two directories): say which
        if labels.count(p.label) > 1:
            p.label = f"{p.label} ({Path(p.directory).name})"
    return summarize(problems)


def build(s: CrossSummary) -> Doc:
    doc = Doc()
    doc.h(1, "actlab summary: " + ", ".join(p.label for p in s.problems))
    doc.p(f"{len(s.problems)} comparison(s) from ", *_join([Code(p.directory) for p in s.problems]),
          ". Each variant at its own chosen learning rate on each data set; rank 1 = the lowest mean final test "
          "error there (ties share the average rank). Each directory's own report: ", Code("actlab report DIR"), ".")
    doc.h(2, "Verdict")
    doc.p(s.verdict)
    for note in s.notes:
        doc.p(note)
    if s.variants and s.ranks:
        doc.h(2, "Rank per data set")
        doc.table(["data set", "seeds"] + s.variants,
                  [[p.label, p.seeds] + [f"{_fmt(r[v], 'g')} ({_fmt(100 * p.errors[v], '.2f')}%)" for v in s.variants]
                   for p, r in zip(s.problems, s.ranks)]
                  + [["average rank", ""] + [_fmt(s.average_ranks[v], ".2f") for v in s.variants]])
        doc.p("Cells: rank (mean final test error). Chosen learning rates: " + "; ".join(
            f"{p.label}: " + ", ".join(f"{v} {p.lrs.get(v, float('nan')):g}" for v in s.variants)
            for p in s.problems) + ".")
    if s.cd is not None:
        doc.h(2, "Friedman test and critical difference (Nemenyi)")
        friedman = (f"Friedman chi-square = {s.friedman_statistic:.3g}, p = {s.friedman_p:.3g} "
                    f"(k = {len(s.variants)} variants, N = {len(s.problems)} data sets)"
                    if s.friedman_p is not None else "Friedman test: not applicable")
        doc.p(f"{friedman}. Nemenyi critical difference at alpha = {ALPHA}: CD = {s.cd:.2f}; average ranks that "
              f"differ by at least CD differ significantly. Not significantly different (joined in the diagram): "
              + ("; ".join(", ".join(c) for c in s.cliques) if s.cliques else "none") + ".")
        doc.fig("cd", figures.critical_difference(s.average_ranks, s.cd, s.cliques,
                                                  f"average rank over {len(s.problems)} data sets (1 = best)"),
                "critical-difference diagram: average ranks; thick bars join variants within CD of each other")
    doc.h(2, "Method")
    doc.p("Demšar (2006), Statistical comparisons of classifiers over multiple data sets: ranks per data set, the "
          "Friedman test of equal average ranks, the Nemenyi post-hoc critical difference. A data set counts once "
          "however many seeds it ran; the seeds' spread is in each directory's report.")
    return doc


def _join(parts: list[Any]) -> list[Any]:
    out: list[Any] = []
    for i, part in enumerate(parts):
        out += ([", "] if i else []) + [part]
    return out


def write(directories: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], *,
          resamples: int | None = 200) -> dict[str, Path]:
    """Write OUT/summary.md, OUT/summary.html, OUT/figures/cd.png and OUT/export/summary.json, ranks.csv."""
    if not directories:
        raise ValueError("no results directory given; valid: one or more directories written by actlab compare")
    s = combine(directories, resamples=resamples)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out}: exists and is not a directory")
    (out / "figures").mkdir(parents=True, exist_ok=True)
    (out / "export").mkdir(exist_ok=True)
    doc = build(s)
    for f in doc.figures():
        _atomic_write(out / "figures" / f"{f.name}.png", f.png)
    import json

    _atomic_write(out / "export" / "summary.json", json.dumps(json_clean(asdict(s)), indent=1))
    _csv(out / "export" / "ranks.csv", [{"data set": p.label, **{f"rank {v}": r[v] for v in s.variants},
                                         **{f"error {v}": p.errors[v] for v in s.variants}}
                                        for p, r in zip(s.problems, s.ranks)])
    paths = {"markdown": out / "summary.md", "html": out / "summary.html", "json": out / "export" / "summary.json"}
    _atomic_write(paths["markdown"], render_markdown(doc))
    _atomic_write(paths["html"], render_html(doc, "actlab summary: " + ", ".join(p.label for p in s.problems)))
    return paths
