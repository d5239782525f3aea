"""The one table of activations: name → hyper-parameters, NumPy reference, PyTorch layer.

Everything else in actlab reads this table: the factories (:func:`actlab.get`,
:func:`actlab.layer`), the CLI's choices, the property table, the figures, the lab and the test
matrices. Adding an activation means writing its maths in :mod:`actlab.reference`, its module in
:mod:`actlab.layers`, and one :class:`Entry` in :data:`ENTRIES` below; no test, CLI or doc file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

__all__ = ["HParam", "Entry", "ENTRIES", "names", "entry", "resolve", "canonical"]

_INF = math.inf


@dataclass(frozen=True)
class HParam:
    """One hyper-parameter: its default, its type and the interval (or choices) it may take."""

    name: str
    default: Any
    doc: str
    kind: type = float
    low: float = -_INF
    high: float = _INF
    low_open: bool = False  # True: value must be > low (else >= low)
    choices: tuple[Any, ...] | None = None
    rule: str | None = None  # the valid values in words, where they depend on other parameters

    def valid(self) -> str:
        """The valid values, in words, for error messages and ``actlab list``."""
        if self.rule is not None:
            return self.rule
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        lo = "(" if self.low_open or not math.isfinite(self.low) else "["
        hi = "]" if math.isfinite(self.high) else ")"
        return f"{self.kind.__name__} in {lo}{self.low:g}, {self.high:g}{hi}"

    def check(self, act: str, value: Any) -> Any:
        """Return ``value`` converted to this parameter's type, or raise a one-line ValueError."""
        bad = f"{act}: invalid {self.name}={value!r}; valid: {self.valid()}"
        if self.choices is not None:
            if value not in self.choices:
                raise ValueError(bad)
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            try:  # strings from the command line: "0.1", "64"
                value = self.kind(str(value))
            except (TypeError, ValueError):
                raise ValueError(bad) from None
        if self.kind is int and float(value) != int(value):
            raise ValueError(bad)
        value = self.kind(value)
        if not math.isfinite(value):
            raise ValueError(bad)
        below = value <= self.low if self.low_open else value < self.low
        if below or value > self.high:
            raise ValueError(bad)
        return value


@dataclass(frozen=True)
class Entry:
    """One activation: everything actlab knows about it, in one place."""

    name: str
    title: str  # how the chapter and the papers write it
    formula: str  # f(x), one line
    derivative: str  # f'(x), one line, with the choice at the kink
    paper: str
    hparams: tuple[HParam, ...] = ()
    aliases: tuple[str, ...] = ()
    learned: tuple[str, ...] = ()  # names of learned parameters (tensor attributes of the layer)
    #: cross-parameter rules and form-dependent defaults: (act, filled) -> filled, or ValueError
    finish: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    reference: str = ""  # class name in actlab.reference
    layer: str = ""  # class name in actlab.layers
    torch_native: str = ""  # the torch.nn class this one replaces (for swap and benchmarks)

    def defaults(self) -> dict[str, Any]:
        return {h.name: h.default for h in self.hparams}


def _rrelu_finish(hp: dict[str, Any]) -> dict[str, Any]:
    # The two published parametrisations take different ranges, so their defaults differ:
    # slope form (PyTorch): a ~ U(1/8, 1/3); divisor form (Xu et al. 2015): y = x/a, a ~ U(3, 8).
    if hp["form"] == "slope":
        lo = 1 / 8 if hp["lower"] is None else hp["lower"]
        hi = 1 / 3 if hp["upper"] is None else hp["upper"]
        lo = HParam("lower", None, "", low=0.0, high=1.0).check("rrelu", lo)
        hi = HParam("upper", None, "", low=0.0, high=1.0).check("rrelu", hi)
    else:
        lo = 3.0 if hp["lower"] is None else hp["lower"]
        hi = 8.0 if hp["upper"] is None else hp["upper"]
        lo = HParam("lower", None, "", low=1.0).check("rrelu", lo)
        hi = HParam("upper", None, "", low=1.0).check("rrelu", hi)
    if lo > hi:
        raise ValueError(f"rrelu: lower={lo:g} > upper={hi:g}; valid: lower <= upper")
    return {**hp, "lower": lo, "upper": hi}


_RRELU_RULE = "float in [0, 1] (form='slope') or [1, inf) (form='divisor'), lower <= upper"
_SLOPE = HParam("negative_slope", 0.01, "slope a for x < 0 (the chapter: 0.01 or 0.001)", low=0.0, high=1.0)

#: The seven activations of the chapter, in its order.
ENTRIES: tuple[Entry, ...] = (
    Entry(
        name="sigmoid",
        title="Sigmoid",
        formula="σ(x) = 1 / (1 + exp(−x))",
        derivative="σ'(x) = σ(x)(1 − σ(x))",
        paper="logistic function (chapter eq. 8.1)",
        aliases=("logistic",),
        reference="Sigmoid",
        layer="Sigmoid",
        torch_native="Sigmoid",
    ),
    Entry(
        name="tanh",
        title="tanh",
        formula="tanh(x) = 2σ(2x) − 1",
        derivative="tanh'(x) = 1 − tanh²(x)",
        paper="hyperbolic tangent (chapter eq. 8.2)",
        reference="Tanh",
        layer="Tanh",
        torch_native="Tanh",
    ),
    Entry(
        name="relu",
        title="ReLU",
        formula="max(0, x)",
        derivative="1 if x > 0, else 0 (so relu'(0) = 0)",
        paper="Nair & Hinton, ICML 2010",
        aliases=("rectifier",),
        reference="ReLU",
        layer="ReLU",
        torch_native="ReLU",
    ),
    Entry(
        name="leaky_relu",
        title="Leaky ReLU",
        formula="x if x > 0, else a·x",
        derivative="1 if x > 0, else a (so f'(0) = a)",
        paper="Maas, Hannun & Ng, ICML 2013",
        hparams=(_SLOPE,),
        aliases=("leaky", "lrelu", "leakyrelu"),
        reference="LeakyReLU",
        layer="LeakyReLU",
        torch_native="LeakyReLU",
    ),
    Entry(
        name="prelu",
        title="Parametric ReLU",
        formula="x if x > 0, else a·x, a learned (one per layer or per channel)",
        derivative="∂f/∂x = 1 if x > 0, else a; ∂f/∂a = 0 if x > 0, else x",
        paper="He, Zhang, Ren & Sun, ICCV 2015",
        hparams=(
            HParam("num_parameters", 1, "1: one a shared by the layer; C: one a per channel", kind=int, low=1),
            HParam("init", 0.25, "initial value of a", low=-_INF),
            HParam("channel_axis", 1, "axis of the channels (1 for NCHW, -1 for channels-last)", kind=int),
        ),
        aliases=("parametric_relu",),
        learned=("weight",),
        reference="PReLU",
        layer="PReLU",
        torch_native="PReLU",
    ),
    Entry(
        name="rrelu",
        title="Randomized ReLU",
        formula="slope form: x if x ≥ 0, else a·x, a ~ U(lower, upper); divisor form: x/a",
        derivative="1 if x > 0, else the slope drawn (training) or its test value (eval)",
        paper="Xu, Wang, Chen & Li, arXiv:1505.00853, 2015",
        hparams=(
            HParam("lower", None, "lower bound of a (default 1/8 slope form, 3 divisor form)", low=0.0,
                   rule=_RRELU_RULE),
            HParam("upper", None, "upper bound of a (default 1/3 slope form, 8 divisor form)", low=0.0,
                   rule=_RRELU_RULE),
            HParam("form", "slope", "'slope': a is the slope (PyTorch); 'divisor': y = x/a (Xu et al.)",
                   kind=str, choices=("slope", "divisor")),
        ),
        aliases=("randomized_relu",),
        finish=_rrelu_finish,
        reference="RReLU",
        layer="RReLU",
        torch_native="RReLU",
    ),
    Entry(
        name="elu",
        title="ELU",
        formula="x if x > 0, else α(exp(x) − 1)",
        derivative="1 if x > 0, else α·exp(x) = f(x) + α (so f'(0) = α)",
        paper="Clevert, Unterthiner & Hochreiter, ICLR 2016",
        hparams=(HParam("alpha", 1.0, "α, the value f tends to for x → −∞ is −α", low=0.0),),
        reference="ELU",
        layer="ELU",
        torch_native="ELU",
    ),
)

_BY_NAME: dict[str, Entry] = {e.name: e for e in ENTRIES}
_ALIASES: dict[str, str] = {a: e.name for e in ENTRIES for a in (e.name, *e.aliases)}


def names() -> list[str]:
    """The canonical names, in the chapter's order."""
    return [e.name for e in ENTRIES]


def canonical(name: str) -> str:
    """The canonical name for ``name`` or one of its aliases (case and '-' insensitive)."""
    key = str(name).strip().lower().replace("-", "_")
    if key not in _ALIASES:
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(names())}")
    return _ALIASES[key]


def entry(name: str) -> Entry:
    """The registry entry for ``name`` (canonical or alias)."""
    return _BY_NAME[canonical(name)]


def resolve(name: str, hparams: Mapping[str, Any] | None = None) -> tuple[Entry, dict[str, Any]]:
    """Check ``hparams`` against the entry and fill in defaults.

    Returns the entry and a complete, validated dict of hyper-parameters. Raises ``ValueError``
    with one line naming the bad value and the valid choices.
    """
    e = entry(name)
    hparams = dict(hparams or {})
    known = {h.name: h for h in e.hparams}
    unknown = sorted(set(hparams) - set(known))
    if unknown:
        valid = ", ".join(known) or "none"
        raise ValueError(f"{e.name}: unknown hyper-parameter {unknown[0]!r}; valid: {valid}")
    filled: dict[str, Any] = {}
    for h in e.hparams:
        value = hparams.get(h.name, h.default)
        filled[h.name] = value if value is None else h.check(e.name, value)
    return e, (e.finish(filled) if e.finish else filled)
