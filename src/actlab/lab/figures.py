"""The report's figures, drawn from one group of :func:`actlab.lab.analysis.analyse` as PNG bytes.

Matplotlib's object API with the Agg canvas (no pyplot, no global state, no display needed).
Each variant keeps one colour across all figures.
"""

from __future__ import annotations

import io
import math
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["errors", "curves", "slopes", "layers", "colours"]

_DPI = 110


def colours(variants: list[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"] if len(variants) <= 10 else colormaps["tab20"]
    return {v: cmap(i % cmap.N) for i, v in enumerate(variants)}


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight")
    return buf.getvalue()


def _ok(x: Any) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def _legend(ax: Any, **kw: Any) -> None:
    if ax.get_legend_handles_labels()[0]:  # nothing drawn (e.g. every run failed): no empty legend
        ax.legend(**kw)


def errors(group: dict[str, Any]) -> bytes:
    """Final test error per variant: each seed as a dot, the mean with its 95% interval."""
    variants, col = group["variants"], colours(group["variants"])
    fig = Figure(figsize=(max(5.0, 0.9 * len(variants) + 1.5), 3.4))
    ax = fig.add_subplot()
    for i, v in enumerate(variants):
        runs = [r for r in group["runs"] if r["variant"] == v and _ok(r["final_test_error"])]
        ax.scatter([i] * len(runs), [100 * r["final_test_error"] for r in runs], color=col[v], alpha=0.55, s=18)
        s = next(t for t in group["table"] if t["variant"] == v)["final"]
        if _ok(s["mean"]):
            lo = s["ci_low"] if _ok(s["ci_low"]) else s["mean"]
            hi = s["ci_high"] if _ok(s["ci_high"]) else s["mean"]
            ax.errorbar([i + 0.18], [100 * s["mean"]], yerr=[[100 * (s["mean"] - lo)], [100 * (hi - s["mean"])]],
                        fmt="o", color="black", capsize=3, ms=4)
    ax.set_xticks(range(len(variants)), variants, rotation=30, ha="right")
    values = [100 * r["final_test_error"] for r in group["runs"] if _ok(r["final_test_error"])]
    if values and max(values) > 20 * max(min(values), 0.5):  # e.g. a variant stuck at chance
        from matplotlib.ticker import FuncFormatter

        ax.set_yscale("symlog", linthresh=1.0)  # linear below 1%, logarithmic above
        ax.set_ylim(0, 1.6 * max(values))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_ylabel("final test error (%)")
    ax.set_title("final test error: seeds (dots), mean and 95% CI (black)")
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def curves(group: dict[str, Any]) -> bytes:
    """Training loss and error against epochs and seconds; test error against epochs."""
    variants, col = group["variants"], colours(group["variants"])
    fig = Figure(figsize=(11, 7.5))
    axes = fig.subplots(2, 2)
    panels = [(axes[0, 0], "epoch", "train_loss", "training loss", True),
              (axes[0, 1], "epoch", "train_error", "training error (%)", False),
              (axes[1, 0], "train_seconds", "train_error", "training error (%)", False),
              (axes[1, 1], "epoch", "test_error", "test error (%)", False)]
    for ax, x, y, label, log in panels:
        for v in variants:
            pts = [(p[x], p[y]) for p in group["curves"].get(v, []) if _ok(p[x]) and _ok(p[y])]
            if not pts:
                continue
            scale = 1 if y == "train_loss" else 100
            ax.plot([a for a, _ in pts], [scale * b for _, b in pts], marker=".", color=col[v], label=v)
        ax.set_xlabel("training seconds (mean over seeds)" if x == "train_seconds" else "epoch")
        ax.set_ylabel(label)
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    target = group["speed"]["target_error"]
    axes[1, 0].axhline(100 * target, color="grey", ls="--", lw=0.8)
    axes[0, 1].axhline(100 * target, color="grey", ls="--", lw=0.8)
    _legend(axes[0, 0], fontsize=8)
    fig.suptitle("mean over seeds; dashed: the target training error of the speed table")
    fig.tight_layout()
    return _png(fig)


def slopes(group: dict[str, Any]) -> bytes | None:
    """Learned PReLU slope per layer: after the last epoch (left) and over the epochs (right)."""
    if not group["slopes"]:
        return None
    col = colours(group["variants"])
    fig = Figure(figsize=(11, 3.8))
    left, right = fig.subplots(1, 2)
    for s in group["slopes"]:
        rows = s["layers"]
        xs = range(len(rows))
        left.errorbar(xs, [r["mean"] for r in rows], yerr=[r["std"] if _ok(r["std"]) else 0 for r in rows],
                      marker="o", capsize=3, color=col[s["variant"]], label=f"{s['variant']} ({s['setting']})")
        left.set_xticks(list(xs), [r["layer"] for r in rows], rotation=30, ha="right")
        names = {str(r["layer_index"]): r["layer"] for r in rows}
        for i, (idx, hist) in enumerate(s["history"].items()):
            right.plot([h["epoch"] for h in hist], [h["mean"] for h in hist], color=col[s["variant"]],
                       alpha=0.35 + 0.65 * (i + 1) / max(1, len(s["history"])), lw=1,
                       label=f"{s['variant']} {names.get(idx, idx)}" if len(group["slopes"]) == 1 else None)
    left.set_ylabel("learned a (mean over seeds)")
    left.axhline(0, color="grey", lw=0.6)
    _legend(left, fontsize=8)
    left.grid(alpha=0.3)
    right.set_xlabel("epoch")
    right.set_ylabel("a, layer mean")
    right.set_title("slopes over training (darker: deeper layer)", fontsize=9)
    if len(group["slopes"]) == 1:
        _legend(right, fontsize=6, ncol=2)
    right.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def layers(group: dict[str, Any]) -> bytes | None:
    """Per layer after the last epoch: dead and saturated fractions; gradient norms (first/last)."""
    rows = group["layers"]
    if not rows:
        return None
    variants, col = group["variants"], colours(group["variants"])
    fig = Figure(figsize=(14, 3.8))
    ax_dead, ax_sat, ax_grad = fig.subplots(1, 3)
    for v in variants:
        rs = sorted((r for r in rows if r["variant"] == v), key=lambda r: r["layer_index"])
        if not rs:
            continue
        xs = [r["layer_index"] for r in rs]
        dead = [(x, 100 * r["dead_last"]) for x, r in zip(xs, rs) if _ok(r["dead_last"])]
        if dead:
            ax_dead.plot(*zip(*dead), marker="o", color=col[v], label=v)
        sat = [(x, 100 * r["saturated_last"]) for x, r in zip(xs, rs) if _ok(r["saturated_last"])]
        if sat:
            ax_sat.plot(*zip(*sat), marker="o", color=col[v], label=v)
        for key, style in (("grad_norm_first", ":"), ("grad_norm_last", "-")):
            g = [(x, r[key]) for x, r in zip(xs, rs) if _ok(r[key]) and r[key] > 0]
            if g:
                ax_grad.plot(*zip(*g), ls=style, marker=".", color=col[v], label=v if style == "-" else None)
    names = {r["layer_index"]: r["layer"] for r in rows}
    for ax, title in ((ax_dead, "dead units, last epoch (%)"), (ax_sat, "saturated units, last epoch (%)"),
                      (ax_grad, "gradient norm (dotted: first epoch)")):
        ax.set_xticks(sorted(names), [names[i] for i in sorted(names)], rotation=30, ha="right")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    ax_grad.set_yscale("log")
    _legend(ax_sat, fontsize=7)
    fig.tight_layout()
    return _png(fig)
