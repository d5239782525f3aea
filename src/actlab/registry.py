"""The one table of activations: name → hyper-parameters, reference class, layer class, capabilities.

Everything else in actlab reads this table: the factories (:func:`actlab.get`,
:func:`actlab.layer`), the CLI's choices, the property table, the figures, the lab, the monitors
and the test matrices. An :class:`Entry` holds the objects themselves (the reference class, the
layer class, the ``torch.nn`` twin) and what the rest of the library asks of an activation
(its family, its per-channel parameter, whether it is stochastic, its test slope), so nothing
outside this table compares an activation's name to a literal.

This module sits at the bottom of the package (it imports nothing of actlab): the entries of
the built-in activations are declared in :mod:`actlab.catalog`, which registers them on import.
Adding an activation is a reference class, a layer class and one :func:`register` call — from
anywhere, a test included (:func:`registered` undoes it on exit)::

    with registry.registered(Entry(name="softsign", ..., reference=Softsign, layer=SoftsignLayer)):
        actlab.layer("softsign")  # and ``actlab list``, ``props``, ``plot``, the lab, swap

Groups: the chapter's seven (``"chapter"``), today's defaults beside them (``"modern"``: GELU,
SiLU, SELU, Mish), and any other group name a plug-in chooses. :func:`names` with no argument
is the chapter's seven — what ``all`` means on the command line; ``every`` is all of them.
"""

from __future__ import annotations

import math
import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping

__all__ = ["HParam", "Entry", "register", "unregister", "registered", "entries", "names", "entry", "resolve",
           "canonical", "groups", "select", "is_set", "ALL", "CHAPTER", "MODERN", "EVERY", "FAMILIES"]

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


#: the group of the chapter's seven activations: the default set ("all" on the command line)
CHAPTER = "chapter"
#: the group of today's defaults beside them: GELU, SiLU, SELU, Mish
MODERN = "modern"
#: not a group: every registered activation
EVERY = "every"
#: "rectifier": the identity for x > 0 and a line through 0 (slope a ≥ 0) for x ≤ 0, so "dead"
#: (never positive) means something; "smooth": anything else
FAMILIES = ("rectifier", "smooth")


@dataclass(frozen=True)
class Entry:
    """One activation: everything actlab knows about it, in one place.

    ``reference`` is a subclass of :class:`actlab.reference.Reference` and ``layer`` of
    :class:`actlab.layers.Activation`, both with ``name`` equal to the entry's; ``torch_twin`` is
    the ``torch.nn`` class the layer equals (called with the same hyper-parameters where they
    exist there) or None.
    """

    name: str
    title: str  # how the chapter and the papers write it
    formula: str  # f(x), one line
    derivative: str  # f'(x), one line, with the choice at the kink
    paper: str
    reference: type
    layer: type
    torch_twin: type | None = None
    family: str = "smooth"  # one of FAMILIES
    group: str = CHAPTER  # CHAPTER, MODERN or a plug-in's own word
    hparams: tuple[HParam, ...] = ()
    aliases: tuple[str, ...] = ()
    learned: tuple[str, ...] = ()  # names of learned parameters (tensor attributes of the layer)
    #: the hyper-parameter that sets one learned value per channel (PReLU's ``num_parameters``);
    #: the lab and :func:`actlab.swap` size it to each layer when given as "channel"
    per_channel: str | None = None
    stochastic: bool = False  # training draws noise (RReLU); the layer takes ``seed``
    #: the slope the eval function has for x ≤ 0, from the resolved hyper-parameters (RReLU)
    test_slope: Callable[[Mapping[str, Any]], float] | None = None
    #: cross-parameter rules and form-dependent defaults: filled -> filled, or ValueError
    finish: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"{self.name}: invalid family={self.family!r}; valid: {', '.join(FAMILIES)}")
        if self.group == EVERY:
            raise ValueError(f"{self.name}: group {EVERY!r} means all of them; valid: any other word")
        for role, cls in (("reference", self.reference), ("layer", self.layer)):
            if getattr(cls, "name", None) != self.name:
                raise ValueError(f"{self.name}: the {role} class {cls.__name__} has name "
                                 f"{getattr(cls, 'name', None)!r}; valid: {self.name!r}")
        if self.per_channel is not None and self.per_channel not in {h.name for h in self.hparams}:
            raise ValueError(f"{self.name}: per_channel={self.per_channel!r} is not a hyper-parameter")

    @property
    def torch_native(self) -> str:
        """The twin's class name in ``torch.nn`` ("" if none)."""
        return "" if self.torch_twin is None else self.torch_twin.__name__

    def defaults(self) -> dict[str, Any]:
        return {h.name: h.default for h in self.hparams}


_BY_NAME: dict[str, Entry] = {}  # in registration order: the chapter's, then the modern ones
_ALIASES: dict[str, str] = {}


def _key(name: str) -> str:
    return str(name).strip().lower().replace("-", "_")


def register(e: Entry) -> Entry:
    """Add ``e`` to the table; its name and aliases must be new. Returns ``e``."""
    keys = [_key(k) for k in (e.name, *e.aliases)]
    taken = [k for k in keys if k in _ALIASES or k in (EVERY, ALL) or k in groups()]
    if taken or len(set(keys)) != len(keys):
        raise ValueError(f"{e.name}: the name {(taken or keys)[0]!r} is taken; valid: a name not in "
                         f"{', '.join(sorted(_ALIASES))}")
    _BY_NAME[e.name] = e
    _ALIASES.update({k: e.name for k in keys})
    return e


def unregister(name: str) -> Entry:
    """Remove the activation ``name`` (or alias) from the table; return its entry."""
    e = entry(name)
    del _BY_NAME[e.name]
    for k in [k for k, v in _ALIASES.items() if v == e.name]:
        del _ALIASES[k]
    return e


@contextlib.contextmanager
def registered(e: Entry) -> Iterator[Entry]:
    """``register(e)`` for the duration of a ``with`` block (a test's plug-in activation)."""
    register(e)
    try:
        yield e
    finally:
        unregister(e.name)


def groups() -> list[str]:
    """The group names in registration order, then ``every``."""
    return [*dict.fromkeys(e.group for e in _BY_NAME.values()), EVERY]


def entries(group: str = EVERY) -> list[Entry]:
    """The entries of ``group`` (``every``: all), in registration order."""
    if group == EVERY:
        return list(_BY_NAME.values())
    if group not in groups():
        raise ValueError(f"unknown group {group!r}; valid: {', '.join(groups())}")
    return [e for e in _BY_NAME.values() if e.group == group]


def names(group: str = CHAPTER) -> list[str]:
    """The canonical names of ``group``: by default the chapter's seven, in its order."""
    return [e.name for e in entries(group)]


#: the word for the default set on the command line: the chapter's seven
ALL = "all"


def is_set(word: str) -> bool:
    """Whether ``word`` names a set of activations (``all``, a group, ``every``), not one."""
    return _key(word) in (ALL, *groups())


def select(items: Iterable[str]) -> list[str]:
    """Canonical names for ``items``, each a name, an alias or a set (``all``: the chapter's
    seven; ``modern``; ``every``; any group), in order, without repeats."""
    out: list[str] = []
    for item in items:
        key = _key(item)
        if is_set(key):
            out += names(CHAPTER if key == ALL else key)
        else:
            out.append(canonical(item))
    return list(dict.fromkeys(out))


def canonical(name: str) -> str:
    """The canonical name for ``name`` or one of its aliases (case and '-' insensitive)."""
    key = _key(name)
    if key not in _ALIASES:
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(names(EVERY))} (or a set: "
                         f"{', '.join([ALL, *groups()])})")
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
