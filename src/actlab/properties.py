"""The property table: every cell measured from actlab's own implementations, none typed in.

For each activation (with any hyper-parameters) :func:`of` evaluates the NumPy reference
(:func:`actlab.get`) and the PyTorch layer (:func:`actlab.layer`) and reports what the chapter
discusses: range, mean output, saturation, dead zone, monotonicity, learned parameters, cost.
How each cell is measured:

``range`` [low, high]
    min and max of f over the grid :data:`GRID` (x in [−10, 10], step 0.01), over the tails
    ±10^k (k = 1..308), and the limits f(±∞) as the reference computes them (it is exact at
    ±inf by contract; were it NaN, a limit that still grows at the end of float64 is ±inf).
    ``range_closed``: whether each finite bound is reached by f on the grid.
``mean_output``, ``mean_grad``
    E[f(X)] and E[f'(X)] for X ~ N(0, 1) by composite Gauss–Legendre quadrature: 48 panels of
    width 0.5 on [−12, 12], 20 nodes each; panel edges sit on multiples of 0.5, so a kink at 0
    is an edge and each panel's integrand is smooth. The mass beyond ±12 is 3.6e−33.
    ``zero_centred``: |mean_output| < :data:`ZERO_MEAN_TOL`.
``saturates`` {"left", "right"}
    on that side f' is non-zero at every grid point with 1 ≤ |x| ≤ 10, never grows along
    |x| = 1, 10, 100, 1e3, 1e4, and falls by at least :data:`SATURATION_FACTOR` from |x| = 1 to
    |x| = 1e4: f' tends to 0 without being 0. ``saturation_onset``: the innermost grid x beyond
    which :func:`actlab.reference.saturated` holds: |f'| < 2.5% · max|f'| (σ: |x| > 5.07, the
    chapter's "|x| > 5"), the definition the lab's monitors use too.
``dead_zone``
    f' == 0 exactly on at least two consecutive grid points. ``dead_zone_intervals`` lists them,
    extended to ±inf where f' is also 0 at ±10..±1e4.
``monotonic``
    f' ≥ 0 everywhere on the grid and at ±10..±1e4 (or ≤ 0 everywhere).
``learned_parameters``
    the size of the reference's learned arrays (the registry's ``learned`` names): PReLU's
    ``weight`` has ``num_parameters`` entries; 0 for the others.
``relative_cost``
    :func:`relative_costs`: wall time of the torch layer's forward + backward on ``cost_elements``
    float32 elements (default 1M, CPU, one thread), median of ``cost_repeats``
    runs interleaved across activations after warm-up, divided by ReLU's; ReLU = 1.0 exactly.
``stochastic``
    the layer in training mode gives two different outputs for the same input (RReLU).
extras
    ``f_at_0``, ``grad_at_0``; ``kink`` (the first grid x where the one-sided derivatives at
    x ± 1e−9 differ by more than 1e−6, else None) and ``grad_at_kink`` (f' there: the decision
    at the kink); ``max_grad`` (max |f'|); for references with a test slope (RReLU)
    ``test_slope`` and ``train_slopes`` [low, high].

Example::

    >>> from actlab import properties
    >>> p = properties.of("leaky_relu", negative_slope=0, measure_cost=False)
    >>> p["dead_zone"], p["range"]
    (True, [0.0, inf])
"""

from __future__ import annotations

import json
import math
import statistics
import time
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from . import registry
from .factory import get, layer
from .reference import SATURATION_RATIO, saturated

__all__ = ["of", "table", "relative_costs", "to_jsonable", "render", "FORMATS", "GRID"]

#: the evaluation grid: x in [−10, 10] in steps of exactly 0.01 (0 is a grid point)
GRID: np.ndarray = np.arange(-1000, 1001) / 100
#: |x| = 10 .. 1e4: where saturation and dead zones are followed outwards
FAR: np.ndarray = 10.0 ** np.arange(1, 5)
#: |x| = 10 .. 1e308: the tails for the range
TAIL: np.ndarray = 10.0 ** np.arange(1, 309)
#: f' must fall by this factor from |x| = 1 to |x| = 1e4 to count as saturating
SATURATION_FACTOR = 1e-6
#: the saturation region: |f'| below this fraction of max|f'| (sigmoid: |x| > 5.07); the one
#: definition, :func:`actlab.reference.saturated`, kept under its old name here
SATURATION_FRACTION = SATURATION_RATIO
#: |E[f(X)]| below this counts as zero-centred (the quadrature is accurate to ~1e-15)
ZERO_MEAN_TOL = 1e-9
_KINK_DELTA = 1e-9
_KINK_JUMP = 1e-6
FORMATS = ("text", "markdown", "json")


# --- evaluating the reference on 1-D inputs ---------------------------------------------------


def _channel_layout(n: int, hp: Mapping[str, Any]) -> tuple[list[int], int, int]:
    """(shape, channel axis, data axis) for n values when PReLU has C > 1 channels.

    Every channel holds the same slope (``init``), so channel 0 stands for all of them.
    """
    c = int(hp.get("num_parameters", 1))
    ca = int(hp.get("channel_axis", 1))
    ndim = max(2, ca + 1 if ca >= 0 else -ca)
    axis = ca % ndim
    other = 1 if axis == 0 else 0
    shape = [1] * ndim
    shape[axis], shape[other] = c, n
    return shape, axis, other


def _pointwise(method: Callable[[np.ndarray], np.ndarray], hp: Mapping[str, Any]) -> Callable[[Any], np.ndarray]:
    """``method`` as a function of a 1-D float64 array, whatever channel layout the layer needs."""

    def fn(x: Any) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        if int(hp.get("num_parameters", 1)) == 1:
            return np.asarray(method(x), dtype=np.float64).reshape(-1)
        shape, axis, other = _channel_layout(x.size, hp)
        view = [1] * len(shape)
        view[other] = x.size
        y = method(np.ascontiguousarray(np.broadcast_to(x.reshape(view), shape)))
        return np.take(np.asarray(y, dtype=np.float64), 0, axis=axis).reshape(-1)

    return fn


def _functions(name: str, hp: Mapping[str, Any]) -> tuple[registry.Entry, dict[str, Any], Any, Callable, Callable]:
    e, filled = registry.resolve(name, hp)
    ref = get(e.name, **filled)
    return e, filled, ref, _pointwise(ref.forward, filled), _pointwise(ref.grad, filled)


def _num(v: Any) -> float:
    return float(v) + 0.0  # −0.0 → 0.0


# --- the measurements -------------------------------------------------------------------------


def _limit(f: Callable, sign: int) -> float:
    y = f(np.array([sign * np.inf]))[0]
    if not np.isnan(y):
        return _num(y)
    ys = f(sign * TAIL)  # the reference failed at ±inf: follow the tail instead
    last, before = abs(ys[-1]), abs(ys[-2])
    return _num(math.copysign(math.inf, ys[-1]) if last > 2 * before else ys[-1])


def _gauss_normal(fn: Callable) -> float:
    """E[fn(X)], X ~ N(0, 1): composite Gauss–Legendre, 48 panels × 20 nodes on [−12, 12]."""
    t, w = np.polynomial.legendre.leggauss(20)
    edges = np.arange(-24, 25) / 2
    mid, half = (edges[1:] + edges[:-1]) / 2, (edges[1:] - edges[:-1]) / 2
    x = (mid[:, None] + half[:, None] * t[None, :]).reshape(-1)
    weights = (half[:, None] * w[None, :]).reshape(-1)
    pdf = np.exp(-x * x / 2) / math.sqrt(2 * math.pi)
    return _num(np.sum(fn(x) * pdf * weights))


def _saturates(g: Callable, side: int) -> bool:
    moderate = side * GRID[GRID >= 1]
    if not np.all(g(moderate) != 0):
        return False
    along = np.abs(g(side * np.array([1.0, *FAR])))
    return bool(np.all(np.diff(along) <= 0) and along[-1] <= SATURATION_FACTOR * along[0])


def _saturation_onset(g: Callable, side: int, max_grad: float) -> float | None:
    pts = GRID[GRID >= 0] if side > 0 else GRID[GRID <= 0][::-1]  # from 0 outwards
    below = saturated(g(pts), max_grad)
    if not below[-1]:
        return None
    inside = np.nonzero(~below)[0]
    return _num(pts[inside[-1] + 1] if inside.size else pts[0])


def _dead_zones(g: Callable) -> list[list[float]]:
    zero = g(GRID) == 0
    out: list[list[float]] = []
    i = 0
    while i < zero.size:
        if not zero[i]:
            i += 1
            continue
        j = i
        while j + 1 < zero.size and zero[j + 1]:
            j += 1
        if j > i:
            lo, hi = _num(GRID[i]), _num(GRID[j])
            if i == 0 and np.all(g(-FAR) == 0):
                lo = -math.inf
            if j == zero.size - 1 and np.all(g(FAR) == 0):
                hi = math.inf
            out.append([lo, hi])
        i = j + 1
    return out


def _learned_count(e: registry.Entry, ref: Any) -> int:
    return int(sum(np.size(getattr(ref, p)) for p in e.learned))


def _layer_input(n: int, hp: Mapping[str, Any], values: Any = None) -> Any:
    """A float32 tensor for the layer: ``values`` (or n standard-normal draws) along a data axis,
    repeated over the C channels where PReLU has C > 1 (about n elements in all without ``values``).
    """
    import torch

    c = int(hp.get("num_parameters", 1))
    if values is None:
        per = -(-n // c)
        values = torch.randn(per, generator=torch.Generator().manual_seed(0), dtype=torch.float32)
    values = torch.as_tensor(values, dtype=torch.float32).reshape(-1)
    if c == 1:
        return values.clone()
    shape, _, data_axis = _channel_layout(values.numel(), hp)
    view = [1] * len(shape)
    view[data_axis] = -1
    return values.reshape(view).expand(shape).contiguous()


def _stochastic(name: str, hp: Mapping[str, Any]) -> bool:
    import torch

    m = layer(name, **hp).train()
    x = _layer_input(256, hp, values=np.linspace(-3, 3, 256))
    with torch.no_grad():
        return not torch.equal(m(x), m(x))


def relative_costs(specs: Mapping[str, Mapping[str, Any]], *, elements: int = 1_000_000, repeats: int = 15,
                   warmup: int = 2, threads: int | None = 1) -> dict[str, float]:
    """Forward + backward time of each torch layer relative to ReLU's (ReLU = 1.0 exactly).

    ``specs`` maps activation names (or aliases) to hyper-parameters. Each layer (training mode,
    ``impl="auto"``) runs on ``elements`` float32 values on the CPU; after ``warmup`` rounds,
    ``repeats`` rounds time every layer once each, the order rotating per round so no layer
    always runs first; each layer's median is divided by ReLU's.

    ``threads``: torch's intra-op threads while timing (restored afterwards); None keeps the
    current setting. The default, 1, measures work per element: with several threads, ops
    above torch's parallel grain size wait on every thread, and on a busy shared machine one
    descheduled thread can cost a whole time slice (seen: ELU 70× ReLU at 10k elements).
    """
    import torch

    if elements < 1 or repeats < 1 or warmup < 0 or (threads is not None and threads < 1):
        raise ValueError(f"relative_costs: elements={elements}, repeats={repeats}, warmup={warmup}, "
                         f"threads={threads}; valid: elements >= 1, repeats >= 1, warmup >= 0, threads >= 1")
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _time_layers(specs, elements, repeats, warmup)
    finally:
        torch.set_num_threads(before)


def _time_layers(specs: Mapping[str, Mapping[str, Any]], elements: int, repeats: int,
                 warmup: int) -> dict[str, float]:
    import torch

    runs: dict[str, tuple[Any, Any, Any]] = {}
    for name, hp in {"relu": {}, **{registry.canonical(k): v for k, v in specs.items()}}.items():
        e, filled = registry.resolve(name, hp)
        x = _layer_input(elements, filled).requires_grad_(True)
        runs[e.name] = (layer(e.name, **filled).train(), x, torch.ones_like(x))
    times: dict[str, list[float]] = {n: [] for n in runs}
    order = list(runs)
    for r in range(warmup + repeats):
        for k in range(len(order)):
            name = order[(k + r) % len(order)]
            m, x, up = runs[name]
            x.grad = None
            m.zero_grad(set_to_none=True)
            t0 = time.perf_counter()
            m(x).backward(up)
            dt = time.perf_counter() - t0
            if r >= warmup:
                times[name].append(dt)
    base = statistics.median(times["relu"])
    return {n: statistics.median(t) / base for n, t in times.items()}


def _measure(e: registry.Entry, hp: dict[str, Any]) -> dict[str, Any]:
    _, _, ref, f, g = _functions(e.name, hp)
    both = np.concatenate([-FAR[::-1], GRID, FAR])
    fg, gg = f(GRID), g(both)
    lo_lim, hi_lim = _limit(f, -1), _limit(f, +1)
    values = np.concatenate([fg, f(-TAIL), f(TAIL), [lo_lim, hi_lim]])
    low, high = _num(np.nanmin(values)), _num(np.nanmax(values))
    max_grad = _num(np.max(np.abs(gg)))
    mean = _gauss_normal(f)
    sat = {"left": _saturates(g, -1), "right": _saturates(g, +1)}
    zones = _dead_zones(g)
    left, right = g(GRID - _KINK_DELTA), g(GRID + _KINK_DELTA)
    kinks = GRID[np.abs(right - left) > _KINK_JUMP]
    kink = _num(kinks[0]) if kinks.size else None
    out: dict[str, Any] = {
        "name": e.name,
        "title": e.title,
        "hparams": dict(hp),
        "range": [low, high],
        "range_closed": [bool(math.isfinite(low) and np.any(fg == low)),
                         bool(math.isfinite(high) and np.any(fg == high))],
        "mean_output": mean,
        "zero_centred": abs(mean) < ZERO_MEAN_TOL,
        "saturates": sat,
        "saturation_onset": {"left": _saturation_onset(g, -1, max_grad) if sat["left"] else None,
                             "right": _saturation_onset(g, +1, max_grad) if sat["right"] else None},
        "dead_zone": bool(zones),
        "dead_zone_intervals": zones,
        "monotonic": bool(np.all(gg >= 0) or np.all(gg <= 0)),
        "learned_parameters": _learned_count(e, ref),
        "relative_cost": None,
        "stochastic": _stochastic(e.name, hp),
        "f_at_0": _num(f(np.zeros(1))[0]),
        "grad_at_0": _num(g(np.zeros(1))[0]),
        "kink": kink,
        "grad_at_kink": None if kink is None else _num(g(np.array([kink]))[0]),
        "max_grad": max_grad,
        "mean_grad": _gauss_normal(g),
    }
    if hasattr(ref, "test_slope"):
        out["test_slope"] = _num(ref.test_slope)
    if hasattr(ref, "slope_bounds"):
        out["train_slopes"] = [_num(v) for v in ref.slope_bounds()]
    return out


# --- public API -------------------------------------------------------------------------------


def of(name: str, *, measure_cost: bool = True, cost_elements: int = 1_000_000, cost_repeats: int = 15,
       **hparams: Any) -> dict[str, Any]:
    """The measured properties of one activation (canonical name or alias) with ``hparams``.

    ``relative_cost`` is measured against ReLU unless ``measure_cost=False`` (then None).
    Raises ``ValueError`` (one line) for an unknown name or an invalid hyper-parameter.
    """
    e, filled = registry.resolve(name, hparams)
    props = _measure(e, filled)
    if measure_cost:
        props["relative_cost"] = relative_costs({e.name: filled}, elements=cost_elements,
                                                repeats=cost_repeats)[e.name]
    return props


def table(hparams: Mapping[str, Mapping[str, Any]] | None = None, *, names: Iterable[str] | None = None,
          measure_cost: bool = True, cost_elements: int = 1_000_000,
          cost_repeats: int = 15) -> dict[str, dict[str, Any]]:
    """The property table: canonical name → :func:`of`'s dict, in the chapter's order.

    ``hparams`` maps names (or aliases) to hyper-parameters, e.g.
    ``{"leaky_relu": {"negative_slope": 0}}``; ``names`` picks the rows (default: the chapter's
    seven): activation names, aliases or sets (``modern``, ``every``; :func:`actlab.registry.select`). All costs are
    measured together (one interleaved run), so they share one ReLU baseline.
    """
    hp = {}
    for key, value in (hparams or {}).items():
        e, filled = registry.resolve(key, value)  # validates even rows not shown
        hp[e.name] = filled
    wanted = registry.names() if names is None else registry.select(names)
    rows = {n: _measure(registry.entry(n), hp.get(n) or registry.resolve(n)[1]) for n in wanted}
    if measure_cost:
        costs = relative_costs({n: rows[n]["hparams"] for n in wanted}, elements=cost_elements,
                               repeats=cost_repeats)
        for n in wanted:
            rows[n]["relative_cost"] = costs[n]
    return rows


def to_jsonable(obj: Any) -> Any:
    """``obj`` with ±inf as the strings "inf"/"-inf" (NaN as "nan") and tuples as lists."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    return obj


# --- rendering --------------------------------------------------------------------------------


def _g(v: float | None, digits: int = 4) -> str:
    if v is None:
        return "-"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.{digits}g}"


def _interval(lo: float, hi: float, closed: tuple[bool, bool] = (True, True)) -> str:
    left = "[" if closed[0] and math.isfinite(lo) else "("
    right = "]" if closed[1] and math.isfinite(hi) else ")"
    return f"{left}{_g(lo)}, {_g(hi)}{right}"


def _yes(b: bool) -> str:
    return "yes" if b else "no"


def _shown_hparams(p: Mapping[str, Any]) -> dict[str, Any]:
    """The hyper-parameters worth a table cell: the real-valued ones (they shape the curve) and
    any other that differs from its default."""
    e, defaults = registry.resolve(p["name"])
    kinds = {h.name: h.kind for h in e.hparams}
    return {k: v for k, v in p["hparams"].items() if kinds.get(k) is float or v != defaults.get(k)}


def _cells(p: Mapping[str, Any]) -> dict[str, str]:
    sat = [s for s in ("left", "right") if p["saturates"][s]]
    onset = [f"x {'<' if s == 'left' else '>'} {_g(p['saturation_onset'][s], 3)}" for s in sat
             if p["saturation_onset"][s] is not None]
    notes = []
    if p["stochastic"]:
        notes.append("stochastic in training")
    if "test_slope" in p:
        lo, hi = p["train_slopes"]
        notes.append(f"train slopes [{_g(lo)}, {_g(hi)}], test slope {_g(p['test_slope'])}")
    hp = ", ".join(f"{k}={_g(v) if isinstance(v, float) else v}" for k, v in _shown_hparams(p).items())
    return {
        "activation": p["name"] + (f" ({hp})" if hp else ""),
        "range": _interval(*p["range"], tuple(p["range_closed"])),
        "E[f(x)]": f"{0.0 if p['zero_centred'] else p['mean_output']:.4f}",
        "zero-centred": _yes(p["zero_centred"]),
        "saturates": ("both" if len(sat) == 2 else sat[0] if sat else "no") + (f" ({', '.join(onset)})" if onset else ""),
        "dead zone": ", ".join(_interval(lo, hi) for lo, hi in p["dead_zone_intervals"]) or "no",
        "monotonic": _yes(p["monotonic"]),
        "learned": str(p["learned_parameters"]),
        "f(0)": _g(p["f_at_0"]),
        "f'(0)": _g(p["grad_at_0"]),
        "max f'": _g(p["max_grad"]),
        "E[f'(x)]": f"{p['mean_grad']:.4f}",
        "cost": "-" if p["relative_cost"] is None else f"{p['relative_cost']:.2f}",
        "notes": "; ".join(notes),
    }


_FOOTNOTE = (
    "Measured from actlab's reference and layers (see actlab.properties). x ~ N(0, 1) for E[.] "
    "(Gauss-Legendre quadrature); saturation: f' -> 0 but never 0, onset where |f'| < 2.5% of "
    "max; dead zone: f' == 0 on an interval (grid step 0.01); cost: torch forward+backward, "
    "float32, one CPU thread, median time relative to ReLU.")


def render(rows: Mapping[str, Mapping[str, Any]], fmt: str = "text") -> str:
    """The table as ``text`` (aligned columns), ``markdown`` or ``json`` (inf as "inf")."""
    if fmt not in FORMATS:
        raise ValueError(f"invalid format {fmt!r}; valid: {', '.join(FORMATS)}")
    if fmt == "json":
        return json.dumps(to_jsonable(rows), indent=2, ensure_ascii=False)
    cells = [_cells(p) for p in rows.values()]
    if not cells:
        return ""
    heads = list(cells[0])
    if fmt == "markdown":
        lines = ["| " + " | ".join(heads) + " |", "|" + "|".join("---" for _ in heads) + "|"]
        lines += ["| " + " | ".join(c[h] for h in heads) + " |" for c in cells]
        return "\n".join(lines) + "\n\n" + _FOOTNOTE
    widths = {h: max(len(h), *(len(c[h]) for c in cells)) for h in heads}
    lines = ["  ".join(h.ljust(widths[h]) for h in heads).rstrip()]
    lines.append("  ".join("-" * widths[h] for h in heads))
    lines += ["  ".join(c[h].ljust(widths[h]) for h in heads).rstrip() for c in cells]
    return "\n".join(lines) + "\n\n" + _FOOTNOTE
