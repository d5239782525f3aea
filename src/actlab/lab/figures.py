"""The report's figures, drawn from one :class:`actlab.lab.analysis.Group` as PNG bytes.

Matplotlib's object API with the Agg canvas (no pyplot, no global state, no display needed).
Each variant keeps one colour across all figures. Error axes that span orders of magnitude (one
variant at chance, the others near 1 %) are logarithmic, so every curve is readable.
"""

from __future__ import annotations

import io
import math
from typing import Any, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["errors", "curves", "slopes", "layers", "learning_rates", "critical_difference", "colours"]

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


def errors(group: Any) -> bytes:
    """Final test error per variant (at its chosen learning rate): each seed as a dot, the mean
    with its 95% interval."""
    variants, col = group.variants, colours(group.variants)
    fig = Figure(figsize=(max(5.0, 0.9 * len(variants) + 1.5), 3.4))
    ax = fig.add_subplot()
    for i, v in enumerate(variants):
        runs = [r for r in group.chosen_runs(v) if _ok(r.final_test_error)]
        ax.scatter([i] * len(runs), [100 * r.final_test_error for r in runs], color=col[v], alpha=0.55, s=18)
        s = next(t for t in group.table if t.variant == v).final
        if _ok(s.mean):
            lo = s.ci_low if _ok(s.ci_low) else s.mean
            hi = s.ci_high if _ok(s.ci_high) else s.mean
            ax.errorbar([i + 0.18], [100 * s.mean], yerr=[[100 * (s.mean - lo)], [100 * (hi - s.mean)]],
                        fmt="o", color="black", capsize=3, ms=4)
    ax.set_xticks(range(len(variants)), variants, rotation=30, ha="right")
    values = [100 * r.final_test_error for v in variants for r in group.chosen_runs(v) if _ok(r.final_test_error)]
    if values and max(values) > 20 * max(min(values), 0.5):  # e.g. a variant stuck at chance
        from matplotlib.ticker import FuncFormatter

        ax.set_yscale("symlog", linthresh=1.0)  # linear below 1%, logarithmic above
        ax.set_ylim(0, 1.6 * max(values))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_ylabel("final test error (%)")
    ax.set_title("final test error: seeds (dots), mean and 95% CI (black)")
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def _log_errors(ax: Any, values: list[float]) -> None:
    """A logarithmic error axis (%) with plain-number ticks: symlog, linear below 0.1 % so that
    an error of exactly 0 (a training set learned by heart) still has a place, at the bottom."""
    if not values:
        return
    from matplotlib.ticker import FuncFormatter, SymmetricalLogLocator

    ax.set_yscale("symlog", linthresh=0.1, linscale=0.5)
    ax.set_ylim(0, 100 * 1.3)
    ax.yaxis.set_major_locator(SymmetricalLogLocator(base=10, linthresh=0.1, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def curves(group: Any) -> bytes:
    """Training loss and error against epochs and seconds; test error against epochs.
    Loss and error axes are logarithmic (a variant stuck at chance and the rest near 1 % both show)."""
    variants, col = group.variants, colours(group.variants)
    fig = Figure(figsize=(11, 7.5))
    axes = fig.subplots(2, 2)
    panels = [(axes[0, 0], "epoch", "train_loss", "training loss (log)"),
              (axes[0, 1], "epoch", "train_error", "training error (%, log)"),
              (axes[1, 0], "train_seconds", "train_error", "training error (%, log)"),
              (axes[1, 1], "epoch", "test_error", "test error (%, log)")]
    for ax, x, y, label in panels:
        drawn: list[float] = []
        for v in variants:
            pts = [(p[x], p[y]) for p in group.curves.get(v, []) if _ok(p[x]) and _ok(p[y])]
            if not pts:
                continue
            scale = 1 if y == "train_loss" else 100
            drawn += [scale * b for _, b in pts]
            ax.plot([a for a, _ in pts], [scale * b for _, b in pts], marker=".", color=col[v], label=v)
        ax.set_xlabel("training seconds (mean over seeds)" if x == "train_seconds" else "epoch")
        ax.set_ylabel(label)
        if y == "train_loss":
            if any(d > 0 for d in drawn):
                ax.set_yscale("log")
        else:
            _log_errors(ax, drawn)
        ax.grid(alpha=0.3, which="both")
    target = group.speed.target_error
    axes[1, 0].axhline(100 * target, color="grey", ls="--", lw=0.8)
    axes[0, 1].axhline(100 * target, color="grey", ls="--", lw=0.8)
    _legend(axes[0, 0], fontsize=8)
    fig.suptitle("mean over seeds; dashed: the target training error of the speed table")
    fig.tight_layout()
    return _png(fig)


_STYLES = ("-", "--", ":", "-.")


def slopes(group: Any) -> bytes | None:
    """Learned PReLU slope per layer: after the last epoch (left) and over the epochs (right; one
    colour per layer from a perceptually ordered map, one line style per variant)."""
    if not group.slopes:
        return None
    col = colours(group.variants)
    from matplotlib import colormaps

    fig = Figure(figsize=(11, 3.8))
    left, right = fig.subplots(1, 2)
    depth = max((len(s.history) for s in group.slopes), default=1)
    layer_cmap = colormaps["viridis"]
    for k, s in enumerate(group.slopes):
        rows = s.layers
        xs = range(len(rows))
        left.errorbar(xs, [r.mean for r in rows], yerr=[r.std if _ok(r.std) else 0 for r in rows],
                      marker="o", capsize=3, color=col[s.variant], label=f"{s.variant} ({s.setting})")
        left.set_xticks(list(xs), [r.layer for r in rows], rotation=30, ha="right")
        names = {str(r.layer_index): r.layer for r in rows}
        for i, (idx, hist) in enumerate(s.history.items()):
            right.plot([h["epoch"] for h in hist], [h["mean"] for h in hist],
                       color=layer_cmap(0.9 * i / max(1, depth - 1)), ls=_STYLES[k % len(_STYLES)], lw=1.3,
                       label=f"{names.get(idx, idx)}" + (f" ({s.variant})" if len(group.slopes) > 1 else ""))
    left.set_ylabel("learned a (mean over seeds)")
    left.axhline(0, color="grey", lw=0.6)
    _legend(left, fontsize=8)
    left.grid(alpha=0.3)
    right.set_xlabel("epoch")
    right.set_ylabel("a, layer mean")
    right.set_title("slopes over training (colour: layer, dark = first; line style: variant)", fontsize=9)
    _legend(right, fontsize=6, ncol=2 if depth * len(group.slopes) <= 16 else 3)
    right.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def layers(group: Any) -> bytes | None:
    """Per layer after the last epoch: dead and saturated fractions; gradient norms (first/last)."""
    rows = group.layers
    if not rows:
        return None
    variants, col = group.variants, colours(group.variants)
    fig = Figure(figsize=(14, 3.8))
    ax_dead, ax_sat, ax_grad = fig.subplots(1, 3)
    for v in variants:
        rs = sorted((r for r in rows if r.variant == v), key=lambda r: r.layer_index)
        if not rs:
            continue
        xs = [r.layer_index for r in rs]
        dead = [(x, 100 * r.dead_last) for x, r in zip(xs, rs) if _ok(r.dead_last)]
        if dead:
            ax_dead.plot(*zip(*dead), marker="o", color=col[v], label=v)
        sat = [(x, 100 * r.saturated_last) for x, r in zip(xs, rs) if _ok(r.saturated_last)]
        if sat:
            ax_sat.plot(*zip(*sat), marker="o", color=col[v], label=v)
        for key, style in (("grad_norm_first", ":"), ("grad_norm_last", "-")):
            g = [(x, getattr(r, key)) for x, r in zip(xs, rs) if _ok(getattr(r, key)) and getattr(r, key) > 0]
            if g:
                ax_grad.plot(*zip(*g), ls=style, marker=".", color=col[v], label=v if style == "-" else None)
    names = {r.layer_index: r.layer for r in rows}
    for ax, title in ((ax_dead, "dead units, last epoch (%)"), (ax_sat, "saturated units, last epoch (%)"),
                      (ax_grad, "gradient norm (dotted: first epoch)")):
        ax.set_xticks(sorted(names), [names[i] for i in sorted(names)], rotation=30, ha="right")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    ax_grad.set_yscale("log")
    _legend(ax_sat, fontsize=7)
    fig.tight_layout()
    return _png(fig)


def learning_rates(group: Any) -> bytes | None:
    """Final validation error against the learning rate (log x), one line per variant: the mean
    over seeds, a band from the lowest to the highest seed; the chosen rate circled."""
    points = group.lr.points
    if not group.lr.grid or not points:
        return None
    col = colours(group.variants)
    fig = Figure(figsize=(7, 4.2))
    ax = fig.add_subplot()
    drawn: list[float] = []
    for v in group.variants:
        pts = sorted((p for p in points if p.variant == v), key=lambda p: p.lr)
        per_lr = {p.lr: [r for r in group.runs if r.variant == v and r.lr == p.lr] for p in pts}
        xs, mean, lo, hi = [], [], [], []
        for p in pts:
            vals = [100 * r.final_val_error if group.lr.criterion == "validation error" else 100 * r.final_train_error
                    for r in per_lr[p.lr] if r.status == "done"]
            vals = [x for x in vals if _ok(x)]
            if not vals:
                continue
            xs.append(p.lr)
            mean.append(sum(vals) / len(vals))
            lo.append(min(vals))
            hi.append(max(vals))
        if not xs:
            continue
        drawn += lo + hi
        ax.plot(xs, mean, marker="o", color=col[v], label=v)
        ax.fill_between(xs, lo, hi, color=col[v], alpha=0.18, lw=0)
        chosen = group.lr.chosen.get(v)
        if chosen in xs:
            ax.plot([chosen], [mean[xs.index(chosen)]], marker="o", ms=12, mfc="none", mec=col[v], mew=1.5)
    ax.set_xscale("log")
    ax.set_xticks(group.lr.lrs, [f"{x:g}" for x in group.lr.lrs])
    ax.minorticks_off()
    _log_errors(ax, drawn)
    ax.set_xlabel("learning rate (log)")
    ax.set_ylabel(f"final {group.lr.criterion} (%, log)")
    ax.set_title("per activation: mean over seeds, band = min to max; circled: chosen", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    _legend(ax, fontsize=8)
    fig.tight_layout()
    return _png(fig)


def critical_difference(avg_ranks: dict[str, float], cd: float | None, cliques: Sequence[Sequence[str]],
                        title: str = "") -> bytes:
    """Demšar's critical-difference diagram: variants on an axis of average rank (1 = best, on the
    left), a bar of length CD, and thick lines joining variants whose average ranks differ by less
    than CD (not significantly different by the Nemenyi test)."""
    names = sorted(avg_ranks, key=lambda v: avg_ranks[v])
    k = len(names)
    col = colours(list(avg_ranks))
    fig = Figure(figsize=(8, 1.6 + 0.32 * k))
    ax = fig.add_subplot()
    lo, hi = 1, max(k, 2)
    ax.set_xlim(lo - 0.3, hi + 0.3)
    top = 0.0
    ax.hlines(top, lo, hi, color="black", lw=1)
    for r in range(lo, hi + 1):
        ax.vlines(r, top, top + 0.12, color="black", lw=1)
        ax.text(r, top + 0.18, str(r), ha="center", va="bottom", fontsize=9)
    half = (k + 1) // 2
    for i, v in enumerate(names):
        left = i < half
        row = (i if left else k - 1 - i) + 1
        y = top - 0.35 * row - 0.25
        x_end = lo - 0.25 if left else hi + 0.25
        ax.plot([avg_ranks[v], avg_ranks[v], x_end], [top, y, y], color=col[v], lw=1.2)
        ax.text(x_end + (-0.03 if left else 0.03), y, f"{v} ({avg_ranks[v]:.2f})", ha="right" if left else "left",
                va="center", fontsize=9)
    for j, clique in enumerate(cliques):
        xs = [avg_ranks[v] for v in clique]
        y = top - 0.12 - 0.09 * j
        ax.hlines(y, min(xs) - 0.03, max(xs) + 0.03, color="black", lw=3.5)
    if cd is not None and math.isfinite(cd):
        ax.hlines(top + 0.6, lo, lo + cd, color="black", lw=1.5)
        ax.vlines([lo, lo + cd], top + 0.55, top + 0.65, color="black", lw=1.5)
        ax.text(lo + cd / 2, top + 0.68, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=9)
    ax.set_ylim(top - 0.35 * (half + 1) - 0.3, top + 1.0)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _png(fig)
