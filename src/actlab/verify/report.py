"""The verdict report: ``OUT/verify.md``, ``OUT/verify.html`` (figures inline), ``OUT/verify.json``
and ``OUT/figures/claimN.png``; one section per claim: the chapter's sentence, the experiment,
the measured quantity with its interval, the threshold, the verdict and a figure."""

from __future__ import annotations

import base64
import html
import json
import math
import os
from pathlib import Path
from typing import Any

from ..lab.report import json_clean as _clean
from . import figures
from .claims import CLAIMS
from .experiments import Context, Outcome
from .rules import Verdict

__all__ = ["write", "table_markdown", "MARK"]

MARK = {"holds": "holds", "does not hold": "does not hold", "inconclusive": "inconclusive"}


def _num(x: Any) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.3g}"


def _interval(v: Verdict) -> str:
    if not (math.isfinite(v.low) and math.isfinite(v.high)):
        return "–"
    return f"[{_num(v.low)}, {_num(v.high)}]"


def _cmp(v: Verdict) -> str:
    if v.side == "all":
        return f"= {_num(v.threshold)} (all)"
    rel = {"above": ">", "below": "<"}.get(v.side, "")
    return f"{rel} {_num(v.threshold)}" if rel and math.isfinite(v.threshold) else "–"


def _leaves(v: Verdict) -> list[Verdict]:
    return [v] if not v.parts or math.isfinite(v.estimate) else [p for part in v.parts for p in _leaves(part)]


def _deciding(v: Verdict) -> Verdict:
    """The part that decided a combined verdict: the first leaf with the same verdict."""
    if not v.parts or math.isfinite(v.estimate):
        return v
    return next((_deciding(p) for p in v.parts if p.verdict == v.verdict), _deciding(v.parts[0]))


def _rows(v: Verdict) -> list[list[str]]:
    rows = [[v.quantity, _num(v.estimate), _interval(v), _cmp(v), str(v.n or "–"), v.verdict]]
    for p in v.parts:
        rows += [[f"↳ {r[0]}"] + r[1:] for r in _rows(p)]
    return rows


def table_markdown(outcomes: dict[int, Outcome]) -> str:
    """The verdict table (one row per claim: the deciding quantity, interval, threshold, verdict)."""
    lines = ["| # | claim | measured (deciding) | estimate | 95% interval | holds if | verdict |",
             "|---|---|---|---|---|---|---|"]
    for c in CLAIMS:
        if c.id not in outcomes:
            continue
        v = outcomes[c.id].verdict
        lead = _deciding(v)
        more = f" (+{len(_leaves(v)) - 1} more)" if len(_leaves(v)) > 1 else ""
        lines.append(f"| {c.id} | {c.name} | {_cell(lead.quantity)}{more} | {_num(lead.estimate)} | "
                     f"{_interval(lead)} | "
                     f"{_cmp(lead)} | **{v.verdict}** |")
    return "\n".join(lines)


def _cell(s: str) -> str:
    return str(s).replace("|", "/").replace("\n", " ")


def _details(v: Verdict) -> list[str]:
    """What a verdict's ``extra`` holds that a reader wants beside the table (Markdown lines)."""
    out: list[str] = []
    for p in (v, *v.parts):
        sec, lr = p.extra.get("seconds"), p.extra.get("best_lr")
        if sec or lr:
            sec_text = (f"in training seconds {_num(sec['estimate'])} [{_num(sec['low'])}, {_num(sec['high'])}]"
                        if sec else "")
            lr_text = ", ".join(f"{a} {x:g}" for a, x in (lr or {}).items())
            out.append(f"- {p.quantity}: {sec_text}; best lr: {lr_text}")
    ranks = v.extra.get("ranks")
    if ranks:
        acts = list(next(iter(ranks.values())))
        out += ["", "Mean-error rank per data set (1 = lowest test error):", "",
                _md_table([[d] + [f"{r[a]:g}" for a in acts] for d, r in ranks.items()], ["data"] + acts)]
        beaten = v.extra.get("beaten_on", {})
        out += ["", "Significantly beaten (paired 95% interval) on: " +
                "; ".join(f"{a}: {', '.join(ds) or 'nowhere'}" for a, ds in beaten.items())]
    return out + ([""] if out else [])


def _md_table(rows: list[list[str]], head: list[str]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _atomic(path: Path, data: str | bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data if isinstance(data, bytes) else data.encode())
    os.replace(tmp, path)




def write(out: Path, ctx: Context, outcomes: dict[int, Outcome], *, seconds: float, ran: int,
          planned: int) -> dict[str, Path]:
    out = Path(out)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    st = ctx.settings
    head = ["quantity", "estimate", "95% interval", "holds if", "n", "verdict"]
    md = [f"# actlab verify: the chapter's claims, measured ({st.name})", "",
          f"{planned} runs ({ran} run now, the rest from {out / 'results.sqlite'}); {seconds:.0f} s in all. "
          f"Data: {', '.join(s.label for s in ctx.sources)}.", ""]
    md += [f"> {n}" for n in ctx.notes] + ([""] if ctx.notes else [])
    md += ["## Verdicts", "", table_markdown(outcomes), "",
           "A verdict is **holds** when the whole 95% interval lies on the claim's side of the threshold, "
           "**does not hold** when it lies wholly on the other side, **inconclusive** when it straddles the "
           "threshold (more seeds or data would decide). Parts of a claim combine: all must hold; one that does "
           "not hold decides.", ""]
    html_parts = []
    data_json: dict[str, Any] = {"mode": st.name, "seconds": seconds, "planned": planned, "ran": ran,
                                 "data": [s.__dict__ for s in ctx.sources], "notes": list(ctx.notes), "claims": {}}
    for c in CLAIMS:
        if c.id not in outcomes:
            continue
        o = outcomes[c.id]
        png = figures.draw(o.figure, f"claim {c.id}: {c.name}")
        fig_name = f"figures/claim{c.id}.png"
        if png:
            _atomic(out / fig_name, png)
        sec = [f"## {c.id}. {c.name}: **{o.verdict.verdict}**", "", f"*The chapter:* {c.sentence}", "",
               f"*Decision rule:* {c.rule}.", "",
               "*Experiment:* " + "; ".join(f"{k} = {v}" for k, v in o.experiment.items() if k != "measured"), "",
               f"*Measured:* {o.experiment.get('measured', '')}.", "",
               _md_table(_rows(o.verdict), head), "", f"Why: {o.verdict.note}.", ""] + _details(o.verdict)
        sec += [f"- {n}" for n in o.notes] + [""]
        if png:
            sec += [f"![claim {c.id}]({fig_name})", ""]
        md += sec
        data_json["claims"][str(c.id)] = {"name": c.name, "sentence": c.sentence, "rule": c.rule,
                                          "experiment": o.experiment, "verdict": o.verdict.to_dict(),
                                          "notes": o.notes, "figure": fig_name if png else None,
                                          "figure_data": o.figure}
        html_parts.append((sec, png))
    text = "\n".join(md)
    _atomic(out / "verify.md", text)
    _atomic(out / "verify.json", json.dumps(_clean(data_json), indent=1, ensure_ascii=False))
    _atomic(out / "verify.html", _html(text, out))
    return {"markdown": out / "verify.md", "html": out / "verify.html", "json": out / "verify.json"}


def _html(markdown: str, out: Path) -> str:
    """A self-contained page: the Markdown's lines as HTML, tables as tables, figures inline."""
    body: list[str] = []
    table: list[str] = []

    def inline(s: str) -> str:
        s = html.escape(s)
        import re

        s = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)
        return re.sub(r"\*(.+?)\*", r"<i>\1</i>", s)

    def flush() -> None:
        if table:
            cells = [[c.strip() for c in row.strip("|").split("|")] for row in table if not set(row) <= set("|-")]
            body.append("<table><tr>" + "".join(f"<th>{inline(c)}</th>" for c in cells[0]) + "</tr>" +
                        "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in cells[1:]) +
                        "</table>")
            table.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.startswith("## "):
            body.append(f"<h2>{inline(line[3:])}</h2>")
        elif line.startswith("# "):
            body.append(f"<h1>{inline(line[2:])}</h1>")
        elif line.startswith("!["):
            src = line[line.index("(") + 1:-1]
            data = base64.b64encode((out / src).read_bytes()).decode()
            body.append(f'<img src="data:image/png;base64,{data}">')
        elif line.startswith("> "):
            body.append(f"<blockquote>{inline(line[2:])}</blockquote>")
        elif line.startswith("- "):
            body.append(f"<li>{inline(line[2:])}</li>")
        elif line.strip():
            body.append(f"<p>{inline(line)}</p>")
    flush()
    style = ("body{font-family:sans-serif;max-width:60em;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%}img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>actlab verify</title><style>{style}</style>"
            f"</head><body>{''.join(body)}</body></html>")
