"""The report of a comparison directory, from its results database only.

:func:`write` reads ``DIR/results.sqlite`` (through :func:`actlab.lab.analysis.analyse`) and
writes::

    DIR/report.md           Markdown, figures linked from DIR/figures/
    DIR/report.html         one self-contained page, figures embedded as base64 PNG
    DIR/figures/*.png
    DIR/export/report.json  every number of the report (NaN written as null)
    DIR/export/{runs,epochs,layers,summary,paired,speed,slopes}.csv

Both pages are rendered from one list of blocks (headings, paragraphs, tables, figures), so the
Markdown and the HTML always say the same thing.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import figures
from .analysis import analyse
from .store import Store

__all__ = ["write", "build", "render_markdown", "render_html", "Doc", "one_line", "CHAPTER_TABLE_81"]

#: Table 8.1 of the chapter (He et al. 2015, ImageNet): layer → (shared a, channel-wise mean a).
CHAPTER_TABLE_81 = {
    "conv1": (0.681, 0.596), "conv2_1": (0.103, 0.321), "conv2_2": (0.099, 0.204), "conv2_3": (0.228, 0.294),
    "conv2_4": (0.561, 0.464), "conv3_1": (0.126, 0.196), "conv3_2": (0.089, 0.152), "conv3_3": (0.124, 0.145),
    "conv3_4": (0.062, 0.124), "conv3_5": (0.008, 0.134), "conv3_6": (0.210, 0.198), "fc1": (0.063, 0.074),
    "fc2": (0.031, 0.075),
}


# --- a tiny document model ------------------------------------------------------------------


@dataclass
class Doc:
    """Blocks in order: ("h", level, text), ("p", text), ("table", headers, rows),
    ("fig", name, png, caption), ("pre", text), ("ul", items)."""

    blocks: list[tuple[Any, ...]] = field(default_factory=list)

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", level, text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, headers: list[str], rows: list[list[Any]]) -> None:
        self.blocks.append(("table", headers, [[str(c) for c in r] for r in rows]))

    def fig(self, name: str, png: bytes | None, caption: str) -> None:
        if png:
            self.blocks.append(("fig", name, png, caption))

    def pre(self, text: str) -> None:
        self.blocks.append(("pre", text))

    def ul(self, items: list[str]) -> None:
        self.blocks.append(("ul", items))


def render_markdown(doc: Doc, figure_dir: str = "figures") -> str:
    out: list[str] = []
    for b in doc.blocks:
        if b[0] == "h":
            out.append("#" * b[1] + " " + b[2])
        elif b[0] == "p":
            out.append(b[1])
        elif b[0] == "table":
            cell = lambda s: s.replace("|", "\\|")  # noqa: E731
            out.append("| " + " | ".join(cell(h) for h in b[1]) + " |")
            out.append("|" + "|".join("---" for _ in b[1]) + "|")
            out.extend("| " + " | ".join(cell(c) for c in r) + " |" for r in b[2])
        elif b[0] == "fig":
            out.append(f"![{b[3]}]({figure_dir}/{b[1]}.png)\n\n*{b[3]}*")
        elif b[0] == "pre":
            out.append("```\n" + b[1] + "\n```")
        elif b[0] == "ul":
            out.append("\n".join(f"- {item}" for item in b[1]))
        out.append("")
    return "\n".join(out)


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
img { max-width: 100%; }
figcaption { font-style: italic; font-size: 0.9em; color: #555; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; }
"""


def render_html(doc: Doc, title: str) -> str:
    e = html.escape
    out = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{e(title)}</title>"
           f"<style>{_CSS}</style></head><body>"]
    for b in doc.blocks:
        if b[0] == "h":
            out.append(f"<h{b[1]}>{e(b[2])}</h{b[1]}>")
        elif b[0] == "p":
            out.append(f"<p>{e(b[1])}</p>")
        elif b[0] == "table":
            head = "".join(f"<th>{e(h)}</th>" for h in b[1])
            body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in b[2])
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif b[0] == "fig":
            data = base64.b64encode(b[2]).decode("ascii")
            out.append(f"<figure><img alt=\"{e(b[3])}\" src=\"data:image/png;base64,{data}\">"
                       f"<figcaption>{e(b[3])}</figcaption></figure>")
        elif b[0] == "pre":
            out.append(f"<pre>{e(b[1])}</pre>")
        elif b[0] == "ul":
            out.append("<ul>" + "".join(f"<li>{e(i)}</li>" for i in b[1]) + "</ul>")
    out.append("</body></html>")
    return "\n".join(out)


# --- number formatting ----------------------------------------------------------------------


def _ok(x: Any) -> bool:
    return x is not None and not (isinstance(x, float) and (math.isnan(x) or math.isinf(x)))


def _pct(x: Any, digits: int = 2) -> str:
    return f"{100 * x:.{digits}f}" if _ok(x) else "—"


def _mean_std(s: dict[str, Any], scale: float = 100, digits: int = 2) -> str:
    if not _ok(s["mean"]):
        return "—"
    m = f"{scale * s['mean']:.{digits}f}"
    return f"{m} ± {scale * s['std']:.{digits}f}" if _ok(s["std"]) else m


def _ci(s: dict[str, Any], scale: float = 100, digits: int = 2) -> str:
    if not _ok(s["ci_low"]):
        return "—"
    return f"[{scale * s['ci_low']:.{digits}f}, {scale * s['ci_high']:.{digits}f}]"


def _p(x: Any) -> str:
    return f"{x:.3g}" if _ok(x) else "—"


def _num(x: Any, fmt: str = ".3g") -> str:
    return format(x, fmt) if _ok(x) else "—"


# --- the report -----------------------------------------------------------------------------


def build(analysis: dict[str, Any]) -> Doc:
    """The report as blocks (figures drawn here)."""
    doc = Doc()
    doc.h(1, "actlab report: activation functions compared")
    doc.p(f"Generated {analysis['generated']} from {analysis['database']} (reports read only this database; "
          f"rebuild with `actlab report DIR`). Exports: export/report.json and export/*.csv.")
    groups = analysis["groups"]
    if not groups:
        doc.p("The database holds no runs yet.")
    for n, g in enumerate(groups, start=1):
        _group(doc, g, f"{n}. " if len(groups) > 1 else "", analysis)
    _definitions(doc, analysis)
    _environment(doc, analysis)
    return doc


def _group(doc: Doc, g: dict[str, Any], prefix: str, analysis: dict[str, Any]) -> None:
    s, data = g["setting"], g["data"]
    slug = g["group"][:8]
    doc.h(2, f"{prefix}Setting")
    sizes = data.get("sizes") or {}
    doc.ul([
        f"data: {data.get('name', s['data'])} — train {sizes.get('train', '?')}, val {sizes.get('val', '?')}, "
        f"test {sizes.get('test', '?')}; input {tuple(data.get('input_shape', []))}, {data.get('classes', '?')} classes"
        + (f" (subset {s['subset']})" if s.get("subset") else ""),
        f"model: {s['model']} (width {s['width']:g}, depth {s['depth'] if s['depth'] is not None else 'default'}, "
        f"batch norm {'on' if s.get('batchnorm') else 'off'}, init {s.get('init', 'kaiming')})",
        f"optimisation: {s['optimizer']}, lr {s['lr']:g} ({s['schedule']}), momentum {s['momentum']:g}, "
        f"weight decay {s['weight_decay']:g} (not on PReLU slopes), batch {s['batch_size']}, {s['epochs']} epochs",
        f"variants: {', '.join(g['variants'])}",
        f"seeds: {', '.join(map(str, g['seeds']))} — a seed fixes the data order and the initial weights of every "
        f"layer the variants share, so runs with the same seed are paired",
    ])

    doc.h(2, f"{prefix}Verdict")
    doc.p(g["summary"])

    doc.h(2, f"{prefix}Test error per activation (the chapter's Table 8.2)")
    doc.table(["activation", "runs", "diverged", "failed", "final test error % (mean ± std)", "95% CI",
               "at best val % (mean ± std)", "95% CI", "best test error % (mean ± std)", "95% CI"],
              [[t["variant"], t["runs"], t["diverged"], t["failed"], _mean_std(t["final"]), _ci(t["final"]),
                _mean_std(t["selected"]), _ci(t["selected"]), _mean_std(t["best"]), _ci(t["best"])]
               for t in g["table"]])
    doc.p("Mean, sample std and 95% t interval over the seeds whose run finished; final: after the last epoch; "
          "at best val: after the epoch with the lowest validation error (early stopping, chosen without the "
          "test set); best: the lowest over the epochs (optimistic, it is chosen on the test set).")
    doc.fig(f"errors-{slug}", figures.errors(g), "final test error per activation")

    if g["paired"]:
        doc.h(3, f"Paired differences against {g['baseline']}")
        doc.table(["activation", "n", "Δ final (pp)", "95% CI (pp)", "p", "Holm p", "Δ at best val (pp)",
                   "Holm p (best val)", "Δ best (pp)", "Holm p (best)", "verdict (final)"],
                  [[e["variant"], e["final"]["n"], _diff(e["final"]), _ci(e["final"]), _p(e["final"]["p"]),
                    _p(e["final"]["p_holm"]), _diff(e["selected"]), _p(e["selected"]["p_holm"]), _diff(e["best"]),
                    _p(e["best"]["p_holm"]), e["final"]["verdict"]] for e in g["paired"]])
        doc.p(f"Δ = activation − {g['baseline']} in percentage points (negative: fewer errors). Test: "
              f"{analysis['definitions']['paired test']}; n = number of seeds where both runs finished.")

    if g["slopes"]:
        doc.h(2, f"{prefix}Learned PReLU slopes per layer (the chapter's Table 8.1)")
        names = [sl["variant"] for sl in g["slopes"]]
        layer_names: list[str] = []
        for sl in g["slopes"]:
            layer_names += [r["layer"] for r in sl["layers"] if r["layer"] not in layer_names]
        he14 = g["setting"]["model"] == "he14"
        headers = ["layer"] + [f"{sl['variant']} ({sl['setting']}) a, mean ± std over seeds" for sl in g["slopes"]]
        if any(sl["setting"] == "channel-wise" for sl in g["slopes"]):
            headers += [f"{sl['variant']}: spread over channels (std)" for sl in g["slopes"]
                        if sl["setting"] == "channel-wise"]
        if he14:
            headers += ["He et al. shared", "He et al. channel-wise"]
        rows = []
        for layer in layer_names:
            row: list[Any] = [layer]
            for sl in g["slopes"]:
                r = next((x for x in sl["layers"] if x["layer"] == layer), None)
                row.append(_mean_std(r, 1, 3) if r else "—")
            for sl in g["slopes"]:
                if sl["setting"] == "channel-wise":
                    r = next((x for x in sl["layers"] if x["layer"] == layer), None)
                    row.append(_num(r["channel_std"], ".3f") if r else "—")
            if he14:
                row += [f"{v:.3f}" for v in CHAPTER_TABLE_81.get(layer, (math.nan, math.nan))]
            rows.append(row)
        doc.table(headers, rows)
        doc.p(f"Slopes after the last epoch ({', '.join(names)}), initialised at the PReLU init, trained without "
              f"weight decay (He et al.). The chapter reads Table 8.1 as: the first layer keeps a large a "
              f"(little non-linearity), and channel-wise a shrinks with depth.")
        doc.fig(f"slopes-{slug}", figures.slopes(g), "learned PReLU slopes per layer")

    doc.h(2, f"{prefix}Training curves")
    doc.fig(f"curves-{slug}", figures.curves(g), "training loss and error against epochs and seconds; test error")

    sp = g["speed"]
    doc.h(2, f"{prefix}Time to {100 * sp['target_error']:g}% training error")
    doc.table(["activation", "reached", "epochs (mean ± std)", "seconds (mean ± std)",
               f"× faster than {sp['reference'] or 'tanh'} (epochs)", "× faster (seconds)"],
              [[r["variant"], f"{r['reached']}/{r['runs']}", _mean_std(r["epochs"], 1, 2),
                _mean_std(r["seconds"], 1, 2), _num(r["epochs_vs_tanh"], ".2f"), _num(r["seconds_vs_tanh"], ".2f")]
               for r in sp["rows"]])
    how = ("chosen automatically: the smallest of 1, 2, 5, 10, 20, 25, 50% at or above every learning variant's "
           "mean final training error" if sp["auto"] else "as given by --target-error")
    doc.p(f"Target {100 * sp['target_error']:g}% ({how}). Time to target: {analysis['definitions']['time to target']}. "
          f"The ratio is tanh's mean over the variant's (shown only when every run of both reached the target). "
          f"The chapter quotes Krizhevsky et al. (2012): with ReLU, SGD reached 25% training error on CIFAR-10 "
          f"about 6× faster than with tanh.")

    doc.h(2, f"{prefix}Inside the network: dead and saturated units, gradient norms")
    layer_rows = g["layers"]
    if layer_rows:
        names = sorted({(r["layer_index"], r["layer"]) for r in layer_rows})
        cell = {(r["variant"], r["layer_index"]): r for r in layer_rows}
        doc.table(["layer"] + g["variants"],
                  [[f"{name} ({max((cell[v, i]['units'] for v in g['variants'] if (v, i) in cell), default=0)} units)"]
                   + [(f"{_pct(cell[v, i]['dead_last'], 1)} / {_pct(cell[v, i]['saturated_last'], 1)}"
                       if (v, i) in cell else "—") for v in g["variants"]] for i, name in names])
        doc.p("Dead % / saturated % of the layer's units in the last epoch, mean over seeds (— for dead: not a "
              "rectifier). " + analysis["definitions"]["dead"] + "; saturated: " +
              analysis["definitions"]["saturated"] + ".")
        doc.table(["layer"] + g["variants"],
                  [[name] + [(f"{_num(cell[v, i]['grad_norm_first'])} → {_num(cell[v, i]['grad_norm_last'])}"
                              if (v, i) in cell else "—") for v in g["variants"]] for i, name in names])
        doc.p("Gradient norm, first epoch → last epoch: " + analysis["definitions"]["gradient norm"] + ".")
        doc.fig(f"layers-{slug}", figures.layers(g), "dead and saturated units and gradient norms per layer")

    doc.h(2, f"{prefix}Runs")
    doc.table(["activation", "seed", "status", "epochs", "final test %", "at best val % (epoch)",
               "best test % (epoch)", "train s", "key", "note"],
              [[r["variant"], r["seed"], r["status"], r["epochs_done"], _pct(r["final_test_error"]),
                f"{_pct(r['selected_test_error'])} ({r['selected_epoch']})" if _ok(r["selected_test_error"]) else "—",
                f"{_pct(r['best_test_error'])} ({r['best_epoch']})" if _ok(r["best_test_error"]) else "—",
                _num(r["train_seconds"], ".1f"), r["key"], one_line(r["error"])] for r in g["runs"]])


def _diff(t: dict[str, Any]) -> str:
    """A paired mean difference in percentage points, signed."""
    return _num(100 * t["mean_diff"] if _ok(t["mean_diff"]) else None, "+.2f")


def one_line(text: str | None, limit: int = 300) -> str:
    """A stored message (an exception's may span lines) as one table-friendly line."""
    if not text:
        return ""
    line = " / ".join(part.strip() for part in str(text).splitlines() if part.strip())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _definitions(doc: Doc, analysis: dict[str, Any]) -> None:
    doc.h(2, "Definitions")
    doc.ul([f"{k}: {v}" for k, v in analysis["definitions"].items()])


def _environment(doc: Doc, analysis: dict[str, Any]) -> None:
    doc.h(2, "Environment and reproduction")
    env = analysis["environment"]
    doc.table(["field", "value(s)"], [[k, ", ".join(str(x) for x in v)] for k, v in env.items()])
    if analysis["invocations"]:
        doc.p("Commands that wrote this database (rerunning one resumes it: finished runs are skipped):")
        doc.pre("\n".join(f"[{i['started']}] " + " ".join(_shell_quote(a) for a in i["argv"])
                          for i in analysis["invocations"]))
    doc.p("Every run is a function of its spec (stored as JSON in the runs table, with its key): the seed fixes "
          "torch.manual_seed before the model is built, the data-order generator and RReLU's noise. On CPU a rerun "
          "reproduces the numbers exactly; on CUDA (cuDNN in deterministic mode) a few kernels still add "
          "atomically, so reruns can differ slightly.")


def _shell_quote(s: str) -> str:
    import shlex

    return shlex.quote(s)


# --- exports ----------------------------------------------------------------------------------


def _clean(x: Any) -> Any:
    """NaN and ±inf → None, recursively (JSON has neither)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
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
    rows = [_clean(r) for r in rows]
    names: list[str] = []
    for r in rows:
        names += [k for k in r if k not in names]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=names)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if v is None else json.dumps(v) if isinstance(v, (list, dict)) else v)
                        for k, v in r.items()})


def _exports(out: Path, analysis: dict[str, Any], store: Store) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(_clean(analysis), indent=1))
    runs = {r["key"]: r for r in store.runs()}
    tag = lambda row: {"variant": runs[row["run_key"]]["variant"], "seed": runs[row["run_key"]]["seed"],  # noqa: E731
                       **row}
    _csv(out / "epochs.csv", [tag(r) for r in store.epochs()])
    _csv(out / "layers.csv", [tag(r) for r in store.layers()])
    per_group = lambda key: [{"group": g["group"], **_flat("", x)} for g in analysis["groups"] for x in g[key]]  # noqa: E731
    _csv(out / "runs.csv", per_group("runs"))
    _csv(out / "summary.csv", per_group("table"))
    _csv(out / "paired.csv", per_group("paired"))
    _csv(out / "speed.csv", [{"group": g["group"], "target_error": g["speed"]["target_error"], **_flat("", r)}
                             for g in analysis["groups"] for r in g["speed"]["rows"]])
    _csv(out / "slopes.csv", [{"group": g["group"], "variant": s["variant"], "setting": s["setting"], **r}
                              for g in analysis["groups"] for s in g["slopes"] for r in s["layers"]])


def _atomic_write(path: Path, data: str | bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if isinstance(data, bytes):
        tmp.write_bytes(data)
    else:
        tmp.write_text(data, encoding="utf-8")
    os.replace(tmp, path)


def write(directory: str | os.PathLike[str], *, target_error: float | None = None) -> dict[str, Path]:
    """Write the report of ``directory`` (which must hold a results database); returns the paths."""
    directory = Path(directory)
    if target_error is not None and not (isinstance(target_error, (int, float)) and 0 < target_error < 1):
        raise ValueError(f"invalid target_error={target_error!r}; valid: a number in (0, 1)")
    with Store.open(directory) as store:
        analysis = analyse(store, target_error=target_error)
        doc = build(analysis)
        fig_dir = directory / "figures"
        fig_dir.mkdir(exist_ok=True)
        for b in doc.blocks:
            if b[0] == "fig":
                _atomic_write(fig_dir / f"{b[1]}.png", b[2])
        _exports(directory / "export", analysis, store)
    paths = {"markdown": directory / "report.md", "html": directory / "report.html",
             "json": directory / "export" / "report.json"}
    _atomic_write(paths["markdown"], render_markdown(doc))
    _atomic_write(paths["html"], render_html(doc, "actlab report"))
    return paths
