"""The report of a comparison directory, from its results database only.

:func:`write` reads ``DIR/results.sqlite`` (through :func:`actlab.lab.analysis.analyse`) and
writes::

    DIR/report.md           Markdown, figures linked from DIR/figures/
    DIR/report.html         one self-contained page, figures embedded as base64 PNG
    DIR/figures/*.png
    DIR/export/report.json  every number of the report (NaN written as null)
    DIR/export/{runs,epochs,layers,summary,paired,speed,slopes,lr}.csv

Both pages are rendered from one list of typed blocks (:class:`Heading`, :class:`Para`,
:class:`Table`, :class:`Figure`, :class:`Pre`, :class:`Bullets`), built by one function per
section, so the Markdown and the HTML always say the same thing. Every string is escaped where it
is rendered (user-supplied paths, labels and commands included): in Markdown, the characters
that CommonMark would read as markup are backslash-escaped and code is fenced with more
back-ticks than it contains; in HTML everything goes through :func:`html.escape`. Inline code
(:class:`Code`) is `` `code` `` in Markdown and ``<code>`` in HTML.

Why one module of ~650 lines: the typed blocks, their two renderings (Markdown, HTML) and one
function per report section, which fill those blocks; the sections are short, the renderers must
escape every block the sections can make, and the tests read both through :func:`write`.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, Union

from . import figures
from .analysis import Analysis, Group, analyse
from .plan import recipe
from .store import Store

__all__ = ["write", "build", "render_markdown", "render_html", "Doc", "Code", "Heading", "Para", "Table", "Figure",
           "Pre", "Bullets", "one_line", "md_escape", "title_of", "CHAPTER_TABLE_81"]

#: Table 8.1 of the chapter (He et al. 2015, ImageNet): layer → (shared a, channel-wise mean a).
CHAPTER_TABLE_81 = {
    "conv1": (0.681, 0.596), "conv2_1": (0.103, 0.321), "conv2_2": (0.099, 0.204), "conv2_3": (0.228, 0.294),
    "conv2_4": (0.561, 0.464), "conv3_1": (0.126, 0.196), "conv3_2": (0.089, 0.152), "conv3_3": (0.124, 0.145),
    "conv3_4": (0.062, 0.124), "conv3_5": (0.008, 0.134), "conv3_6": (0.210, 0.198), "fc1": (0.063, 0.074),
    "fc2": (0.031, 0.075),
}


# --- a tiny document model ------------------------------------------------------------------


@dataclass(frozen=True)
class Code:
    """Inline code: `` `text` `` in Markdown, ``<code>`` in HTML."""

    text: str


Inline = Union[str, Code]


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Para:
    parts: tuple[Inline, ...]


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Figure:
    name: str  # file stem under figures/
    png: bytes
    caption: str


@dataclass(frozen=True)
class Pre:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[tuple[Inline, ...], ...]


Block = Union[Heading, Para, Table, Figure, Pre, Bullets]


def _parts(item: Inline | Sequence[Inline]) -> tuple[Inline, ...]:
    return (item,) if isinstance(item, (str, Code)) else tuple(item)


@dataclass
class Doc:
    """Blocks in order; the methods append one block each."""

    blocks: list[Block] = field(default_factory=list)

    def h(self, level: int, text: str) -> None:
        self.blocks.append(Heading(level, text))

    def p(self, *parts: Inline) -> None:
        self.blocks.append(Para(tuple(parts)))

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.blocks.append(Table(tuple(headers), tuple(tuple(str(c) for c in r) for r in rows)))

    def fig(self, name: str, png: bytes | None, caption: str) -> None:
        if png:
            self.blocks.append(Figure(name, png, caption))

    def pre(self, text: str) -> None:
        self.blocks.append(Pre(text))

    def ul(self, items: Sequence[Inline | Sequence[Inline]]) -> None:
        self.blocks.append(Bullets(tuple(_parts(i) for i in items)))

    def figures(self) -> list[Figure]:
        return [b for b in self.blocks if isinstance(b, Figure)]


# --- Markdown ---------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*\[\]<>&|~#!])")
_MD_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")  # intraword _ is never emphasis


def md_escape(text: str, *, block_start: bool = False) -> str:
    """Plain text for CommonMark: one line, no character read as markup or raw HTML.

    ``block_start``: the text opens a paragraph or list item, where a leading ``-``, ``+``,
    ``=`` or ``1.`` would start a list or underline a heading; those are escaped too.
    """
    line = " ".join(str(text).splitlines())
    line = _MD_SPECIAL.sub(r"\\\1", line)
    line = _MD_UNDERSCORE.sub(r"\\_", line)
    if not block_start:
        return line
    line = line.lstrip()
    if line[:1] in ("-", "+", "="):  # would start a list item or underline a heading
        line = "\\" + line
    return re.sub(r"^(\d+)([.)])", r"\1\\\2", line)  # would start an ordered list


def _fence(text: str, minimum: int) -> str:
    """A back-tick run longer than any inside ``text`` (CommonMark closes a fence only with as many)."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(minimum, longest + 1)


def _md_inline(parts: Sequence[Inline]) -> str:
    out: list[str] = []
    for part in parts:
        if isinstance(part, Code):
            text = " ".join(part.text.splitlines())
            f = _fence(text, 1)
            pad = " " if text.startswith("`") or text.endswith("`") else ""
            out.append(f"{f}{pad}{text}{pad}{f}")
        else:
            out.append(md_escape(part, block_start=not out))
    return "".join(out)


def render_markdown(doc: Doc, figure_dir: str = "figures") -> str:
    out: list[str] = []
    for b in doc.blocks:
        if isinstance(b, Heading):
            out.append("#" * b.level + " " + md_escape(b.text))
        elif isinstance(b, Para):
            out.append(_md_inline(b.parts))
        elif isinstance(b, Table):
            out.append("| " + " | ".join(md_escape(h) for h in b.headers) + " |")
            out.append("|" + "|".join("---" for _ in b.headers) + "|")
            out.extend("| " + " | ".join(md_escape(c) for c in r) + " |" for r in b.rows)
        elif isinstance(b, Figure):
            out.append(f"![{md_escape(b.caption)}]({figure_dir}/{b.name}.png)\n\n*{md_escape(b.caption)}*")
        elif isinstance(b, Pre):
            f = _fence(b.text, 3)
            out.append(f"{f}\n{b.text}\n{f}")
        elif isinstance(b, Bullets):
            out.append("\n".join(f"- {_md_inline(item)}" for item in b.items))
        out.append("")
    return "\n".join(out)


# --- HTML -------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
p, li, figcaption, h1, h2, h3 { overflow-wrap: anywhere; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
img { max-width: 100%; height: auto; }
figure { margin: 1em 0; }
figcaption { font-style: italic; font-size: 0.9em; color: #555; }
code { background: #f3f3f3; padding: 0 0.2em; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; max-width: 100%; }
@media (max-width: 600px) { body { margin: 0.5em auto; padding: 0 0.5em; } table { font-size: 0.8em; } }
"""


def _html_inline(parts: Sequence[Inline]) -> str:
    return "".join(f"<code>{html.escape(p.text)}</code>" if isinstance(p, Code) else html.escape(p) for p in parts)


def render_html(doc: Doc, title: str) -> str:
    e = html.escape
    out = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
           f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{e(title)}</title>"
           f"<style>{_CSS}</style></head><body>"]
    for b in doc.blocks:
        if isinstance(b, Heading):
            out.append(f"<h{b.level}>{e(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            out.append(f"<p>{_html_inline(b.parts)}</p>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{e(h)}</th>" for h in b.headers)
            body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in b.rows)
            out.append(f"<div class=\"scroll\"><table><thead><tr>{head}</tr></thead>"
                       f"<tbody>{body}</tbody></table></div>")
        elif isinstance(b, Figure):
            data = base64.b64encode(b.png).decode("ascii")
            out.append(f"<figure><img alt=\"{e(b.caption)}\" src=\"data:image/png;base64,{data}\">"
                       f"<figcaption>{e(b.caption)}</figcaption></figure>")
        elif isinstance(b, Pre):
            out.append(f"<pre>{e(b.text)}</pre>")
        elif isinstance(b, Bullets):
            out.append("<ul>" + "".join(f"<li>{_html_inline(i)}</li>" for i in b.items) + "</ul>")
    out.append("</body></html>")
    return "\n".join(out)


# --- number formatting ----------------------------------------------------------------------


def _ok(x: Any) -> bool:
    return x is not None and not (isinstance(x, float) and (math.isnan(x) or math.isinf(x)))


def _fmt(x: float, spec: str) -> str:
    """``format`` without a negative zero: what rounds to 0 prints as 0 (no "-0.00", no "+0.00")."""
    s = format(x, spec)
    if re.fullmatch(r"[+-]?0(\.0*)?(e[+-]?\d+)?%?", s.strip()):
        return format(0.0, spec.replace("+", ""))
    return s


def _pct(x: Any, digits: int = 2) -> str:
    return _fmt(100 * x, f".{digits}f") if _ok(x) else "—"


def _mean_std(s: Any, scale: float = 100, digits: int = 2) -> str:
    if s is None or not _ok(s.mean):
        return "—"
    m = _fmt(scale * s.mean, f".{digits}f")
    return f"{m} ± {_fmt(scale * s.std, f'.{digits}f')}" if _ok(s.std) else m


def _ci(s: Any, scale: float = 100, digits: int = 2) -> str:
    if s is None or not _ok(s.ci_low):
        return "—"
    return f"[{_fmt(scale * s.ci_low, f'.{digits}f')}, {_fmt(scale * s.ci_high, f'.{digits}f')}]"


def _est(e: Any, scale: float = 100, digits: int = 2) -> str:
    """An estimate with its interval: ``value [low, high]``."""
    if not _ok(e.value):
        return "—"
    v = _fmt(scale * e.value, f".{digits}f")
    return f"{v} [{_fmt(scale * e.ci_low, f'.{digits}f')}, {_fmt(scale * e.ci_high, f'.{digits}f')}]" \
        if _ok(e.ci_low) else v


def _p(x: Any) -> str:
    return _fmt(x, ".3g") if _ok(x) else "—"


def _num(x: Any, fmt: str = ".3g") -> str:
    return _fmt(x, fmt) if _ok(x) else "—"


def _diff(t: Any) -> str:
    """A paired mean difference in percentage points, signed."""
    return _num(100 * t.mean_diff if _ok(t.mean_diff) else None, "+.2f")


def one_line(text: str | None, limit: int = 300) -> str:
    """A stored message (an exception's may span lines) as one table-friendly line."""
    if not text:
        return ""
    line = " / ".join(part.strip() for part in str(text).splitlines() if part.strip())
    return line if len(line) <= limit else line[: limit - 1] + "…"


# --- the report, one function per section -----------------------------------------------------


def title_of(analysis: Analysis) -> str:
    """``actlab report: <data> · <model>`` (every data set and model of the database)."""
    seen: list[str] = []
    for g in analysis.groups:
        name = " ".join(f"{g.data.get('name', g.setting.get('data', '?'))} · {g.setting.get('model', '?')}".split())
        if name not in seen:
            seen.append(name)
    return "actlab report: " + ("; ".join(seen) if seen else "no runs yet")


def build(analysis: Analysis) -> Doc:
    """The report as blocks (figures drawn here)."""
    doc = Doc()
    doc.h(1, title_of(analysis))
    doc.p(f"Generated {analysis.generated} from {analysis.database} (reports read only this database; rebuild "
          f"with ", Code("actlab report DIR"), "). Exports: ", Code("export/report.json"), " and ",
          Code("export/*.csv"), ".")
    groups = analysis.groups
    if not groups:
        doc.p("The database holds no runs yet.")
    for n, g in enumerate(groups, start=1):
        prefix = f"{n}. " if len(groups) > 1 else ""
        slug = g.group[:8]
        _setting(doc, g, prefix)
        _verdict(doc, g, prefix)
        _learning_rates(doc, g, prefix, slug)
        _table_82(doc, g, prefix, slug)
        _paired(doc, g, analysis)
        _slopes(doc, g, prefix, slug)
        _curves(doc, g, prefix, slug)
        _speed(doc, g, prefix, analysis)
        _inside(doc, g, prefix, slug, analysis)
        _runs(doc, g, prefix)
    _method(doc, analysis)
    _definitions(doc, analysis)
    _environment(doc, analysis)
    return doc


def _setting(doc: Doc, g: Group, prefix: str) -> None:
    s, data = g.setting, g.data
    sizes = data.get("sizes") or {}
    lr = (f"lr {', '.join(f'{x:g}' for x in g.lr.lrs)} (each activation at its own, chosen on the "
          f"{g.lr.criterion})" if g.lr.grid else f"lr {g.lr.lrs[0]:g}")
    doc.h(2, f"{prefix}Setting")
    doc.ul([
        f"data: {data.get('name', s['data'])} — train {sizes.get('train', '?')}, val {sizes.get('val', '?')}, "
        f"test {sizes.get('test', '?')}; input {tuple(data.get('input_shape', []))}, {data.get('classes', '?')} classes"
        + (f" (subset {s['subset']})" if s.get("subset") else ""),
        f"model: {s['model']} (width {s['width']:g}, depth {s['depth'] if s['depth'] is not None else 'default'}, "
        f"batch norm {'on' if s.get('batchnorm') else 'off'}, init {s.get('init', 'kaiming')})",
        f"optimisation: {s['optimizer']}, {lr} ({s['schedule']}), momentum {s['momentum']:g}, "
        f"weight decay {s['weight_decay']:g} (not on PReLU slopes), batch {s['batch_size']}, {s['epochs']} epochs",
        f"training procedure: {recipe({**s, 'lr': list(g.lr.lrs) if g.lr.grid else g.lr.lrs[0]})}",
        f"variants: {', '.join(g.variants)}",
        f"seeds: {', '.join(map(str, g.seeds))} — a seed fixes the data order and the initial weights of every "
        f"layer the variants share, so runs with the same seed are paired",
    ])


def _verdict(doc: Doc, g: Group, prefix: str) -> None:
    doc.h(2, f"{prefix}Verdict")
    doc.p(g.summary)
    doc.p(g.power)


def _learning_rates(doc: Doc, g: Group, prefix: str, slug: str) -> None:
    if not g.lr.grid:
        return
    doc.h(2, f"{prefix}Learning rate per activation (chosen on the {g.lr.criterion})")
    rows = []
    for v in g.variants:
        pts = {p.lr: p for p in g.lr.points if p.variant == v}
        rows.append([v] + [(f"{_mean_std(pts[lr].score)}{' ◀' if pts[lr].chosen else ''}"
                            + (f" ({pts[lr].diverged} diverged)" if pts[lr].diverged else "")) if lr in pts else "—"
                           for lr in g.lr.lrs] + [f"{g.lr.chosen[v]:g}"])
    doc.table(["activation"] + [f"lr {lr:g}: final {g.lr.criterion} % (mean ± std)" for lr in g.lr.lrs]
              + ["chosen lr"], rows)
    doc.p(f"◀ marks each activation's chosen learning rate: the lowest mean final {g.lr.criterion} over the "
          f"seeds; a diverged run counts as 100 % error, a failed run is left out, a tie goes to the smaller rate. "
          f"The test set is not used to choose. All tables below compare the activations at their own chosen rate.")
    doc.fig(f"lr-{slug}", figures.learning_rates(g), f"final {g.lr.criterion} against the learning rate: mean "
            f"over seeds, band min to max; circled: the chosen rate")


def _table_82(doc: Doc, g: Group, prefix: str, slug: str) -> None:
    doc.h(2, f"{prefix}Test error per activation (the chapter's Table 8.2)")
    doc.table((["activation"] + (["lr"] if g.lr.grid else []) +
               ["runs", "diverged", "failed", "final test error % (mean ± std)", "95% CI", "IQM [95% CI]",
                "at best val % (mean ± std)", "95% CI", "best test error % (mean ± std)", "95% CI"]),
              [[t.variant] + ([f"{t.lr:g}"] if g.lr.grid else []) +
               [t.runs, t.diverged, t.failed, _mean_std(t.final), _ci(t.final), _est(t.iqm),
                _mean_std(t.selected), _ci(t.selected), _mean_std(t.best), _ci(t.best)] for t in g.table])
    doc.p(("Each activation at its own learning rate (the lr column, chosen on the validation split). "
           if g.lr.grid else "") +
          "Mean, sample std and 95% t interval (clipped to [0, 100] %) over the seeds whose run finished; IQM: the "
          "interquartile mean of the final test error with a stratified bootstrap 95% interval; final: after the "
          "last epoch; at best val: after the epoch with the lowest validation error (early stopping, chosen without "
          "the test set); best: the lowest over the epochs (optimistic, it is chosen on the test set).")
    doc.fig(f"errors-{slug}", figures.errors(g), "final test error per activation")


def _paired(doc: Doc, g: Group, analysis: Analysis) -> None:
    if not g.paired:
        return
    doc.h(3, f"Paired differences against {g.baseline}")
    doc.table(["activation", "n", "Δ final (pp)", "95% CI (pp)", "p", "Holm p", "d_z", "P(better) [95% CI]",
               "detectable (pp)", "Δ at best val (pp)", "Holm p (best val)", "Δ best (pp)", "Holm p (best)",
               "verdict (final)"],
              [[e.variant, e.final.n, _diff(e.final), _ci(e.final), _p(e.final.p), _p(e.final.p_holm),
                _num(e.final.d_z, ".2f"), _est(e.final.p_better, 1, 2), _num(100 * e.final.detectable, ".2f")
                if _ok(e.final.detectable) else "—", _diff(e.selected), _p(e.selected.p_holm), _diff(e.best),
                _p(e.best.p_holm), e.final.verdict] for e in g.paired])
    d = analysis.definitions
    doc.p(f"Δ = activation − {g.baseline} in percentage points (negative: fewer errors). Test: {d['paired test']}; "
          f"n = number of seeds where both runs finished. d_z: {d['d_z']}. P(better): {d['P(better)']}. "
          f"Detectable: {d['detectable']}.")


def _slopes(doc: Doc, g: Group, prefix: str, slug: str) -> None:
    if not g.slopes:
        return
    doc.h(2, f"{prefix}Learned PReLU slopes per layer (the chapter's Table 8.1)")
    names = [sl.variant for sl in g.slopes]
    layer_names: list[str] = []
    for sl in g.slopes:
        layer_names += [r.layer for r in sl.layers if r.layer not in layer_names]
    he14 = g.setting["model"] == "he14"
    channelwise = [sl for sl in g.slopes if sl.setting == "channel-wise"]
    headers = ["layer"] + [f"{sl.variant} ({sl.setting}) a, mean ± std over seeds" for sl in g.slopes]
    headers += [f"{sl.variant}: spread over channels (std)" for sl in channelwise]
    if he14:
        headers += ["He et al. shared", "He et al. channel-wise"]
    rows = []
    for layer in layer_names:
        row: list[Any] = [layer]
        for sl in g.slopes:
            r = next((x for x in sl.layers if x.layer == layer), None)
            row.append(_mean_std(r, 1, 3) if r else "—")
        for sl in channelwise:
            r = next((x for x in sl.layers if x.layer == layer), None)
            row.append(_num(r.channel_std, ".3f") if r else "—")
        if he14:
            row += [f"{v:.3f}" for v in CHAPTER_TABLE_81.get(layer, (math.nan, math.nan))]
        rows.append(row)
    doc.table(headers, rows)
    doc.p(f"Slopes after the last epoch ({', '.join(names)}), initialised at the PReLU init, trained without "
          f"weight decay (He et al.). The chapter reads Table 8.1 as: the first layer keeps a large a "
          f"(little non-linearity), and channel-wise a shrinks with depth.")
    doc.fig(f"slopes-{slug}", figures.slopes(g), "learned PReLU slopes per layer")


def _curves(doc: Doc, g: Group, prefix: str, slug: str) -> None:
    doc.h(2, f"{prefix}Training curves")
    doc.fig(f"curves-{slug}", figures.curves(g), "training loss and error against epochs and seconds; test error "
            "(error axes logarithmic)")


def _speed(doc: Doc, g: Group, prefix: str, analysis: Analysis) -> None:
    sp = g.speed
    ref = sp.reference or "tanh"
    doc.h(2, f"{prefix}Time to {_fmt(100 * sp.target_error, 'g')}% training error")
    doc.table(["activation", "reached", "epochs (mean ± std)", "s / epoch (median of epochs ≥ 2)",
               "seconds (mean ± std)", f"× faster than {ref} (epochs)", "× faster (seconds)", "timing"],
              [[r.variant, f"{r.reached}/{r.runs}", _mean_std(r.epochs, 1, 2), _mean_std(r.epoch_seconds, 1, 3),
                _mean_std(r.seconds, 1, 2), _num(r.epochs_vs_tanh, ".2f"), _num(r.seconds_vs_tanh, ".2f"),
                f"noisy (CV {_fmt(100 * r.epoch_cv, '.0f')}%)" if r.noisy else
                (f"CV {_fmt(100 * r.epoch_cv, '.0f')}%" if _ok(r.epoch_cv) else "—")] for r in sp.rows])
    how = ("chosen automatically: the smallest of 1, 2, 5, 10, 20, 25, 50% at or above every learning variant's "
           "mean final training error" if sp.auto else "as given by --target-error")
    noisy = [r.variant for r in sp.rows if r.noisy]
    doc.p(f"Target {_fmt(100 * sp.target_error, 'g')}% ({how}). Time to target: "
          f"{analysis.definitions['time to target']}. The ratio is {ref}'s mean over the variant's (shown only when "
          f"every run of both reached the target). Timing: the coefficient of variation of the per-epoch times; "
          f"{analysis.definitions['noisy timing']}." + (f" Noisy here: {', '.join(noisy)} — read their seconds "
                                                        f"with care." if noisy else "") +
          " The chapter quotes Krizhevsky et al. (2012): with ReLU, SGD reached 25% training error on CIFAR-10 about "
          "6× faster than with tanh.")


def _inside(doc: Doc, g: Group, prefix: str, slug: str, analysis: Analysis) -> None:
    doc.h(2, f"{prefix}Inside the network: dead and saturated units, gradient norms")
    if not g.layers:
        return
    names = sorted({(r.layer_index, r.layer) for r in g.layers})
    cell = {(r.variant, r.layer_index): r for r in g.layers}
    d = analysis.definitions
    doc.table(["layer"] + g.variants,
              [[f"{name} ({max((cell[v, i].units for v in g.variants if (v, i) in cell), default=0)} units)"]
               + [(f"{_pct(cell[v, i].dead_last, 1)} / {_pct(cell[v, i].saturated_last, 1)}"
                   if (v, i) in cell else "—") for v in g.variants] for i, name in names])
    doc.p(f"Dead % / saturated % of the layer's units in the last epoch, mean over seeds (— for dead: not a "
          f"rectifier). {d['dead']}; saturated: {d['saturated']}.")
    doc.table(["layer"] + g.variants,
              [[name] + [(f"{_num(cell[v, i].grad_norm_first)} → {_num(cell[v, i].grad_norm_last)}"
                          if (v, i) in cell else "—") for v in g.variants] for i, name in names])
    doc.p(f"Gradient norm, first epoch → last epoch: {d['gradient norm']}.")
    doc.fig(f"layers-{slug}", figures.layers(g), "dead and saturated units and gradient norms per layer")


def _runs(doc: Doc, g: Group, prefix: str) -> None:
    doc.h(2, f"{prefix}Runs")
    doc.table(["activation", "seed"] + (["lr"] if g.lr.grid else []) +
              ["status", "epochs", "final test %", "at best val % (epoch)", "best test % (epoch)", "train s",
               "s / epoch", "key", "note"],
              [[r.variant, r.seed] + ([f"{r.lr:g}"] if g.lr.grid else []) +
               [r.status, r.epochs_done, _pct(r.final_test_error),
                f"{_pct(r.selected_test_error)} ({r.selected_epoch})" if _ok(r.selected_test_error) else "—",
                f"{_pct(r.best_test_error)} ({r.best_epoch})" if _ok(r.best_test_error) else "—",
                _num(r.train_seconds, ".1f"), _num(r.epoch_seconds, ".3g"), r.key, one_line(r.error)]
               for r in g.runs])


def _method(doc: Doc, analysis: Analysis) -> None:
    doc.h(2, "What a seed varies, and which epoch is reported")
    doc.p(analysis.randomness)
    doc.p(analysis.selection)


def _definitions(doc: Doc, analysis: Analysis) -> None:
    doc.h(2, "Definitions")
    doc.ul([f"{k}: {v}" for k, v in analysis.definitions.items()])


def resolved_argv(argv: Sequence[str], settings: dict[str, Any]) -> list[str]:
    """The stored command with ``--model auto`` replaced by the model it resolved to (compare
    records the resolved settings), so that the command reproduces the runs if the default changes."""
    model = settings.get("model")
    out = list(argv)
    if not model or model == "auto":
        return out
    for i, word in enumerate(out):
        if word == "--model" and i + 1 < len(out) and out[i + 1] == "auto":
            out[i + 1] = model
        elif word == "--model=auto":
            out[i] = f"--model={model}"
    return out


def _environment(doc: Doc, analysis: Analysis) -> None:
    doc.h(2, "Environment and reproduction")
    env = analysis.environment
    doc.table(["field", "value(s)"], [[k, ", ".join(str(x) for x in v)] for k, v in env.items()])
    if analysis.invocations:
        doc.p("Commands that wrote this database (rerunning one resumes it: finished runs are skipped):")
        doc.pre("\n".join(f"[{i['started']}] " + " ".join(shlex.quote(a) for a in resolved_argv(i["argv"],
                                                                                                 i["settings"]))
                          for i in analysis.invocations))
    doc.p("Every run is a function of its spec (stored as JSON in the runs table, with its key): the seed fixes "
          "torch.manual_seed before the model is built, the data-order generator and RReLU's noise. On CPU a rerun "
          "reproduces the numbers exactly; on CUDA (cuDNN in deterministic mode) a few kernels still add "
          "atomically, so reruns can differ slightly.")


# --- exports ----------------------------------------------------------------------------------


def json_clean(x: Any) -> Any:
    """NaN and ±inf → None, recursively (JSON has neither)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): json_clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_clean(v) for v in x]
    return x


def _flat(prefix: str, d: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(f"{prefix}{k}_", v))
        elif not isinstance(v, list):
            out[f"{prefix}{k}"] = v
    return out


def _csv(path: Path, rows: list[dict[str, Any]]) -> None:
    rows = [json_clean(r) for r in rows]
    names: list[str] = []
    for r in rows:
        names += [k for k in r if k not in names]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=names)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if v is None else json.dumps(v) if isinstance(v, (list, dict)) else v)
                        for k, v in r.items()})


def _exports(out: Path, data: dict[str, Any], store: Store) -> None:
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write(out / "report.json", json.dumps(json_clean(data), indent=1))
    runs = {r["key"]: r for r in store.runs()}
    tag = lambda row: {"variant": runs[row["run_key"]]["variant"], "seed": runs[row["run_key"]]["seed"],  # noqa: E731
                       **row}
    _csv(out / "epochs.csv", [tag(r) for r in store.epochs()])
    _csv(out / "layers.csv", [tag(r) for r in store.layers()])

    def per_group(key: str) -> list[dict[str, Any]]:
        return [{"group": g["group"], **_flat("", x)} for g in data["groups"] for x in g[key]]

    _csv(out / "runs.csv", per_group("runs"))
    _csv(out / "summary.csv", per_group("table"))
    _csv(out / "paired.csv", per_group("paired"))
    _csv(out / "speed.csv", [{"group": g["group"], "target_error": g["speed"]["target_error"], **_flat("", r)}
                             for g in data["groups"] for r in g["speed"]["rows"]])
    _csv(out / "slopes.csv", [{"group": g["group"], "variant": s["variant"], "setting": s["setting"], **r}
                              for g in data["groups"] for s in g["slopes"] for r in s["layers"]])
    _csv(out / "lr.csv", [{"group": g["group"], **_flat("", p)} for g in data["groups"] for p in g["lr"]["points"]])


def _atomic_write(path: Path, data: str | bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if isinstance(data, bytes):
        tmp.write_bytes(data)
    else:
        tmp.write_text(data, encoding="utf-8")
    os.replace(tmp, path)


def write(directory: str | os.PathLike[str], *, target_error: float | None = None,
          resamples: int | None = None) -> dict[str, Path]:
    """Write the report of ``directory`` (which must hold a results database); returns the paths.

    ``resamples``: of the bootstrap intervals (default: :data:`actlab.lab.stats.BOOTSTRAP_RESAMPLES`).
    """
    directory = Path(directory)
    if target_error is not None and not (isinstance(target_error, (int, float)) and 0 < target_error < 1):
        raise ValueError(f"invalid target_error={target_error!r}; valid: a number in (0, 1)")
    with Store.open(directory) as store:
        analysis = analyse(store, target_error=target_error, resamples=resamples)
        doc = build(analysis)
        fig_dir = directory / "figures"
        fig_dir.mkdir(exist_ok=True)
        for f in doc.figures():
            _atomic_write(fig_dir / f"{f.name}.png", f.png)
        _exports(directory / "export", analysis.to_dict(), store)
    paths = {"markdown": directory / "report.md", "html": directory / "report.html",
             "json": directory / "export" / "report.json"}
    _atomic_write(paths["markdown"], render_markdown(doc))
    _atomic_write(paths["html"], render_html(doc, title_of(analysis)))
    return paths
