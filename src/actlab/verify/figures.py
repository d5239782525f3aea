"""One figure per claim, drawn from the numbers an experiment returns (``Outcome.figure``)."""

from __future__ import annotations

import io
import math
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["draw"]

# Table 8.1 (He et al.'s learned PReLU slopes, conv1 … fc2), for comparison in claim 5's figure
TABLE_8_1 = {"prelu:shared": [0.681, 0.103, 0.099, 0.228, 0.561, 0.126, 0.089, 0.124, 0.062, 0.008, 0.210, 0.063,
                              0.031],
             "prelu:channelwise": [0.596, 0.321, 0.204, 0.294, 0.464, 0.196, 0.152, 0.145, 0.124, 0.134, 0.198, 0.074,
                                   0.075]}


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def _legend(ax: Any, **kw: Any) -> None:
    """A legend only where something is labelled (an empty one warns)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kw)


def _finite(v: list[float]) -> list[float]:
    return [x for x in v if x is not None and math.isfinite(x)]


def draw(fig_data: dict[str, Any], title: str) -> bytes | None:
    """The PNG of one claim's figure, or None when there is nothing to draw."""
    kind = fig_data.get("kind")
    fn = globals().get(f"_{kind}")
    if fn is None:
        return None
    fig = fn(fig_data)
    if fig is None:
        return None
    fig.suptitle(title, fontsize=10)
    return _png(fig)


def _grad_norms(d: dict[str, Any]) -> Any:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for act, vals in d["values"].items():
        if vals:
            ax.semilogy(range(1, len(vals) + 1), vals, "o-", label=act)
    ax.set_xlabel("layer (1 = first)")
    ax.set_ylabel("‖∂L/∂W‖, first epoch")
    _legend(ax)
    return fig


def _centring(d: dict[str, Any]) -> Any:
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.5))
    for act in d["mean"]:
        a.plot(range(1, len(d["mean"][act]) + 1), d["mean"][act], "o-", label=act)
        b.plot(range(1, len(d["agreement"][act]) + 1), d["agreement"][act], "o-", label=act)
    a.axhline(0, color="grey", lw=0.5)
    a.set_xlabel("hidden layer")
    a.set_ylabel("mean activation")
    b.axhline(0.5, color="grey", lw=0.5)
    b.set_xlabel("hidden layer")
    b.set_ylabel("next layer: gradient sign agreement")
    _legend(a)
    return fig


def _dead(d: dict[str, Any]) -> Any:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    lrs = d["lrs"]
    means = []
    for lr in lrs:
        vals = _finite(d["relu"][str(lr)])
        ax.plot([lr] * len(vals), vals, "o", color="C0", alpha=0.5)
        means.append(np.mean(vals) if vals else math.nan)
    ax.plot(lrs, means, "-", color="C0", label="relu")
    for i, (act, vals) in enumerate(d["others"].items()):
        v = _finite(vals)
        ax.plot([d["common_lr"] * (1 + 0.08 * (i + 1))] * len(v), v, "s", color=f"C{i + 1}", label=act)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("dead share of units")
    _legend(ax, fontsize=8)
    return fig


def _means(d: dict[str, Any]) -> Any:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for act, vals in d["acts"].items():
        ax.plot(range(1, len(vals) + 1), vals, "o-", label=act)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("hidden layer")
    ax.set_ylabel("mean activation")
    _legend(ax)
    return fig


def _speed(d: dict[str, Any]) -> Any:
    n = len(d["data"])
    if not n:
        return None
    fig, axes = plt.subplots(1, n, figsize=(3.3 * n, 3.3), squeeze=False)
    for ax, (label, v) in zip(axes[0], d["data"].items()):
        for act, c in v["curves"].items():
            if c["epoch"]:
                ax.plot(c["epoch"], c["error"], "o-", ms=3, label=f"{act} (lr {v['best_lr'][act]:g})")
        ax.axhline(d["target"], color="grey", ls="--", lw=0.8)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("training error")
        _legend(ax, fontsize=7)
    return fig


def _slopes(d: dict[str, Any]) -> Any:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for i, (act, vals) in enumerate(d["values"].items()):
        if vals:
            ax.plot(range(1, len(vals) + 1), vals, "o-", color=f"C{i}", label=f"{act} (measured)")
        book = TABLE_8_1.get(act)
        if book:
            ax.plot(range(1, len(book) + 1), book, ":", color=f"C{i}", label=f"{act} (Table 8.1)")
    if d["layers"]:
        ax.set_xticks(range(1, len(d["layers"]) + 1), d["layers"], rotation=45, fontsize=7)
    ax.set_ylabel("learned slope a")
    _legend(ax, fontsize=7)
    return fig


def _errors(d: dict[str, Any]) -> Any:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for i, (act, vals) in enumerate(d["values"].items()):
        v = _finite(vals)
        ax.plot([i] * len(v), [100 * x for x in v], "o", alpha=0.6)
        if v:
            ax.plot([i - 0.2, i + 0.2], [100 * np.mean(v)] * 2, "k-")
    ax.set_xticks(range(len(d["values"])), list(d["values"]), fontsize=8)
    ax.set_ylabel("test error (%)")
    return fig


def _gaps(d: dict[str, Any]) -> Any:
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    x = np.arange(len(d["sizes"]))
    for i, (act, by_size) in enumerate(d["values"].items()):
        means = [np.mean(_finite(by_size[s])) if _finite(by_size[s]) else math.nan for s in d["sizes"]]
        for j, s in enumerate(d["sizes"]):
            v = _finite(by_size[s])
            ax.plot([j + 0.1 * i] * len(v), [100 * g for g in v], "o", color=f"C{i}", alpha=0.4)
        ax.plot(x + 0.1 * i, [100 * m for m in means], "-", color=f"C{i}", label=act)
    ax.set_xticks(x, d["sizes"])
    ax.set_xlabel("training examples")
    ax.set_ylabel("train–test gap (pp)")
    _legend(ax, fontsize=8)
    return fig


def _winner(d: dict[str, Any]) -> Any:
    datasets = list(d["errors"])
    if not datasets:
        return None
    acts = list(d["errors"][datasets[0]])
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / max(1, len(acts))
    for i, act in enumerate(acts):
        means = [np.mean(_finite(d["errors"][ds][act])) if _finite(d["errors"][ds][act]) else math.nan
                 for ds in datasets]
        ax.bar(np.arange(len(datasets)) + i * width, [100 * m for m in means], width, label=act)
    ax.set_xticks(np.arange(len(datasets)) + width * (len(acts) - 1) / 2, datasets, fontsize=8)
    ax.set_ylabel("test error (%)")
    _legend(ax, fontsize=8)
    return fig
