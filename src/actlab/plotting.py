"""The chapter's figures, drawn from actlab's own implementations.

* :func:`figure` — one activation: f beside f' (the chapter's Fig. 8.2, 8.3 and ELU's figure);
* :func:`rectifier_family` — ReLU, Leaky ReLU, PReLU and RReLU side by side, RReLU's training
  slopes drawn as a band (Fig. 8.4), with their derivatives below;
* :func:`overview` — all seven, f above f';
* :func:`write_all` — all of them to files (what ``actlab plot`` runs).

Curves come from the NumPy reference (:func:`actlab.get`). The shaded regions come from
:mod:`actlab.properties`, never from a per-name list: a dead zone where f' == 0 on an interval,
saturation beyond the point where |f'| falls under 2.5 % of its maximum on a side that
saturates. The kink is drawn as the decision it is: f' is broken there, with a filled dot at
the value actlab uses and an open one at the other side's limit.

Headless by construction: figures are :class:`matplotlib.figure.Figure` objects built without
``pyplot``, so no display or interactive backend is involved; PNG is rendered by Agg. In a
notebook a returned figure displays itself.

Example::

    >>> from actlab import plotting
    >>> fig = plotting.figure("elu", alpha=0.5)
    >>> paths = plotting.write_all("figs", "png", {"leaky_relu": {"negative_slope": 0.1}})
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Iterable, Mapping

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from . import properties, registry

__all__ = ["figure", "rectifier_family", "overview", "write_all", "FORMATS", "FAMILY", "FIGURES"]

FORMATS = ("png", "svg", "pdf")
#: the rectifier family of the chapter's Fig. 8.4, in its order: the registry's rectifiers among the seven
FAMILY = tuple(e.name for e in registry.entries(registry.CHAPTER) if e.family == "rectifier")
#: the figures beyond the one-per-activation ones, as :func:`write_all` names their files
FIGURES = ("rectifier_family", "overview")
XLIM = (-6.0, 6.0)

_DEAD = "#d62728"
_SAT = "#ff7f0e"
_BAND = "#9467bd"
_SHADE_ALPHA = 0.13
_DEAD_LABEL = "dead zone: f′ = 0"
_SAT_LABEL = f"saturation: |f′| < {properties.SATURATION_FRACTION:.1%} of max"


# --- data ---------------------------------------------------------------------------------------


class _Curve:
    """One activation on one x grid: values, derivative, measured properties, reference."""

    def __init__(self, name: str, hp: Mapping[str, Any] | None, xlim: tuple[float, float]) -> None:
        e, filled, ref, f, g = properties._functions(name, dict(hp or {}))
        self.entry, self.hp, self.ref, self.f, self.g = e, filled, ref, f, g
        self.props = properties.of(e.name, measure_cost=False, **filled)
        lo, hi = float(xlim[0]), float(xlim[1])
        if not lo < hi:
            raise ValueError(f"xlim={xlim!r}; valid: (low, high) with low < high")
        self.xlim = (lo, hi)
        pts = [lo, hi, 0.0] + ([self.props["kink"]] if self.props["kink"] is not None else [])
        self.x = np.unique(np.concatenate([np.linspace(lo, hi, 1201), [p for p in pts if lo <= p <= hi]]))
        self.y, self.dy = f(self.x), g(self.x)
        self.color = f"C{registry.names(registry.EVERY).index(e.name)}"

    def label(self) -> str:
        """The title and the hyper-parameters that shape the curve."""
        hp = properties._shown_hparams(self.props)
        args = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in hp.items())
        return f"{self.entry.title}" + (f" ({args})" if args else "")


# --- drawing --------------------------------------------------------------------------------------


def _frame(ax: Axes, xlim: tuple[float, float], ylabel: str) -> None:
    ax.axhline(0, color="0.55", lw=0.6, zorder=0)
    ax.axvline(0, color="0.55", lw=0.6, zorder=0)
    ax.grid(True, alpha=0.25, lw=0.5)
    ax.set_xlim(*xlim)
    ax.set_xlabel("x")
    ax.set_ylabel(ylabel)


def _shade(ax: Axes, c: _Curve) -> list[Patch]:
    """Shade the dead zones and saturation regions the properties report; return legend handles."""
    lo, hi = c.xlim
    handles: list[Patch] = []
    for a, b in c.props["dead_zone_intervals"]:
        a, b = max(a, lo), min(b, hi)
        if a < b:
            ax.axvspan(a, b, color=_DEAD, alpha=_SHADE_ALPHA, lw=0, gid="dead_zone")
            if not handles:
                handles.append(Patch(color=_DEAD, alpha=0.3, label=_DEAD_LABEL))
    sat = False
    for side, onset in c.props["saturation_onset"].items():
        if onset is None:
            continue
        a, b = (lo, min(onset, hi)) if side == "left" else (max(onset, lo), hi)
        if a < b:
            ax.axvspan(a, b, color=_SAT, alpha=_SHADE_ALPHA, lw=0, gid="saturation")
            sat = True
    if sat:
        handles.append(Patch(color=_SAT, alpha=0.3, label=_SAT_LABEL))
    return handles


def _band(ax: Axes, c: _Curve, derivative: bool) -> list[Patch]:
    """RReLU: the band of slopes training can draw, between the lowest and the highest."""
    if "train_slopes" not in c.props or not hasattr(c.ref, "forward_train"):
        return []
    s_lo, s_hi = c.props["train_slopes"]
    x = c.x[c.x <= 0]
    fn = c.ref.grad_train if derivative else c.ref.forward_train
    ax.fill_between(x, fn(x, s_lo), fn(x, s_hi), color=_BAND, alpha=0.25, lw=0, gid="train_band")
    return [Patch(color=_BAND, alpha=0.35, label=f"training: slope ∈ [{s_lo:.3g}, {s_hi:.3g}]")]


def _draw_f(ax: Axes, c: _Curve, *, label: str = "f(x)") -> list[Any]:
    handles = _shade(ax, c) + _band(ax, c, derivative=False)
    if "test_slope" in c.props:
        label = f"{label}, test slope {c.props['test_slope']:.3g}"
    (line,) = ax.plot(c.x, c.y, color=c.color, lw=2, label=label)
    _frame(ax, c.xlim, "f(x)")
    return [line, *handles]


def _draw_g(ax: Axes, c: _Curve, *, label: str = "f′(x)") -> list[Any]:
    handles = _shade(ax, c) + _band(ax, c, derivative=True)
    kink = c.props["kink"]
    lines = []
    if kink is None or not c.xlim[0] <= kink <= c.xlim[1]:
        lines += ax.plot(c.x, c.dy, color=c.color, lw=2, label=label)
    else:  # broken at the kink: no vertical segment that f' does not have
        for part in (c.x < kink, c.x > kink):
            lines += ax.plot(c.x[part], c.dy[part], color=c.color, lw=2, label=label if not lines else None)
        at = c.props["grad_at_kink"]
        sides = c.g(np.array([kink - 1e-9, kink + 1e-9]))
        for s in sides:
            if s != at:
                ax.plot([kink], [s], "o", mfc="white", mec=c.color, ms=5, zorder=3)
        lines += ax.plot([kink], [at], "o", color=c.color, ms=5, zorder=4,
                         label=f"f′({kink:g}) = {at:.3g} (the choice at the kink)")
    _frame(ax, c.xlim, "f′(x)")
    return [h for h in lines if not h.get_label().startswith("_")] + handles


def _new(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _wrap(text: str, width: int = 58) -> str:
    return textwrap.fill(text, width)


# --- the figures ------------------------------------------------------------------------------------


def figure(name: str, *, xlim: tuple[float, float] = XLIM, **hparams: Any) -> Figure:
    """One activation (name or alias): f on the left, f' on the right, regions shaded."""
    c = _Curve(name, hparams, xlim)
    fig = _new(10.5, 4.2)
    ax_f, ax_g = fig.subplots(1, 2)
    ax_f.legend(handles=_draw_f(ax_f, c), loc="upper left", fontsize=8, framealpha=0.9)
    ax_g.legend(handles=_draw_g(ax_g, c), loc="best", fontsize=8, framealpha=0.9)
    ax_f.set_title(_wrap(c.entry.formula), fontsize=9)
    ax_g.set_title(_wrap(c.entry.derivative), fontsize=9)
    fig.suptitle(c.label(), fontsize=12)
    return fig


def rectifier_family(hparams: Mapping[str, Mapping[str, Any]] | None = None, *,
                     xlim: tuple[float, float] = (-4.0, 4.0)) -> Figure:
    """ReLU, Leaky ReLU, PReLU and RReLU side by side (f above, f' below), as the chapter's
    Fig. 8.4; RReLU's training slopes as a band. ``hparams``: name → hyper-parameters."""
    hp = _by_name(hparams)
    curves = [_Curve(n, hp.get(n), xlim) for n in FAMILY]
    fig = _new(13, 6)
    axes = fig.subplots(2, len(curves), sharex=True, sharey="row")
    for col, c in enumerate(curves):
        learned = "\na learned by SGD; drawn at its init" if c.props["learned_parameters"] else ""
        axes[0, col].set_title(_wrap(c.label(), 34) + learned, fontsize=10)
        axes[0, col].legend(handles=_draw_f(axes[0, col], c), loc="upper left", fontsize=7, framealpha=0.9)
        axes[1, col].legend(handles=_draw_g(axes[1, col], c), loc="center left", fontsize=7, framealpha=0.9)
        if col:
            axes[0, col].set_ylabel("")
            axes[1, col].set_ylabel("")
    fig.suptitle("The rectifier family: the negative side is what differs", fontsize=12)
    return fig


def overview(hparams: Mapping[str, Mapping[str, Any]] | None = None, *,
             xlim: tuple[float, float] = XLIM) -> Figure:
    """All seven activations: f in the top row, f' below, shared shading legend."""
    hp = _by_name(hparams)
    curves = [_Curve(n, hp.get(n), xlim) for n in registry.names()]
    fig = _new(2.45 * len(curves), 5.0)
    axes = fig.subplots(2, len(curves), sharex=True)
    handles: dict[str, Any] = {}
    for col, c in enumerate(curves):
        axes[0, col].set_title(_wrap(c.label(), 24), fontsize=9)
        for h in _draw_f(axes[0, col], c)[1:] + _draw_g(axes[1, col], c)[1:]:
            if isinstance(h, Patch):
                handles.setdefault(h.get_label().split(":")[0], h)
        for ax in axes[:, col]:
            ax.tick_params(labelsize=7)
            ax.xaxis.label.set_fontsize(8)
            ax.yaxis.label.set_fontsize(8)
            if col:
                ax.set_ylabel("")
    band = [h for k, h in handles.items() if k.startswith("training")]
    for h in band:
        h.set_label("RReLU " + h.get_label())
    fig.legend(handles=list(handles.values()), loc="outside lower center", ncol=len(handles), fontsize=8,
               frameon=False)
    fig.suptitle("The seven activations of the chapter: f (top) and f′ (bottom)", fontsize=12)
    return fig


def _by_name(hparams: Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """Canonical name → checked hyper-parameters; raises ValueError for anything unknown."""
    out: dict[str, dict[str, Any]] = {}
    for key, hp in (hparams or {}).items():
        e, filled = registry.resolve(key, hp)
        out[e.name] = filled
    return out


def _save(fig: Figure, path: Path, fmt: str, dpi: int) -> None:
    # no dates in SVG/PDF and a fixed SVG id salt: the same inputs give the same bytes
    metadata = {"svg": {"Date": None}, "pdf": {"CreationDate": None}}.get(fmt)
    with matplotlib.rc_context({"svg.hashsalt": "actlab", "svg.fonttype": "path"}):
        fig.savefig(path, format=fmt, dpi=dpi, metadata=metadata)


def write_all(out_dir: str | Path, fmt: str = "png", hparams: Mapping[str, Mapping[str, Any]] | None = None, *,
              only: Iterable[str] | None = None, dpi: int = 100) -> list[Path]:
    """Write the figures to ``out_dir`` (created if need be) and return their paths.

    One file per activation (``<name>.<fmt>``, f beside f'), ``rectifier_family.<fmt>`` and
    ``overview.<fmt>``. ``only`` restricts them to some activation names (aliases too) and/or
    figure names (``rectifier_family``, ``overview``) and/or sets (``modern``, ``every``:
    :func:`actlab.registry.select`); without it, the chapter's seven and both figures. ``hparams``: name → hyper-parameters.
    Every name and hyper-parameter is checked before anything is written.
    """
    if fmt not in FORMATS:
        raise ValueError(f"invalid format {fmt!r}; valid: {', '.join(FORMATS)}")
    if int(dpi) != dpi or not 20 <= dpi <= 600:
        raise ValueError(f"invalid dpi {dpi!r}; valid: an integer in [20, 600]")
    hp = _by_name(hparams)
    wanted = [*registry.names(), *FIGURES]
    if only is not None:
        picked = []
        for item in only:
            key = str(item).strip().lower().replace("-", "_")
            if key in FIGURES:
                picked.append(key)
                continue
            try:
                picked += registry.select([item])
            except ValueError:
                raise ValueError(f"unknown figure {item!r}; valid: {', '.join(wanted)}, another activation of "
                                 f"{', '.join(registry.names(registry.EVERY))} or a set "
                                 f"({', '.join([registry.ALL, *registry.groups()])})") from None
        wanted = [w for w in [*registry.names(registry.EVERY), *FIGURES] if w in picked]
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for what in wanted:
        if what == "rectifier_family":
            fig = rectifier_family(hp)
        elif what == "overview":
            fig = overview(hp)
        else:
            fig = figure(what, **hp.get(what, {}))
        path = out / f"{what}.{fmt}"
        _save(fig, path, fmt, int(dpi))
        paths.append(path)
    return paths
