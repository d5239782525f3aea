"""A comparison as a list of independent runs: activation variant × learning rate × seed.

A :class:`Comparison` is what ``actlab compare`` was asked (data, model, variants, seeds,
optimisation, one learning rate or a grid of them). :func:`plan` turns it into :class:`RunSpec` s, each a complete, JSON-serialisable
description of one training run with a stable :attr:`RunSpec.key`. A run is a pure function of its
spec (see :func:`actlab.lab.train.run`), so a local loop and a cluster task execute the same unit,
and the key lets a rerun skip what the results database already holds.

Variants are written ``NAME[:HP=V[:HP=V]]``, comma-separated::

    relu,leaky_relu:negative_slope=0.1,rrelu:form=divisor,prelu:num_parameters=channel
    all,prelu:channelwise            # the seven at their defaults, plus channel-wise PReLU

Values are strings here; :func:`actlab.registry.resolve` converts and checks them. PReLU's
``num_parameters`` also takes ``channel`` (one slope per channel of the layer it follows, the
count read from the model); ``prelu:channelwise`` and ``prelu:shared`` are shorthands.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .. import registry
from ..swap import CHANNELWISE

__all__ = ["Variant", "Setting", "RunSpec", "Comparison", "options", "parse_variants", "parse_lrs", "plan", "OPTIMIZERS", "SCHEDULES",
           "INITS", "PROTOCOL", "MODEL_VARIANT", "recipe"]

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("cosine", "constant")
INITS = ("kaiming", "xavier")

#: Version of the training procedure in :mod:`actlab.lab.train`. It is part of every run's key:
#: bump it when a change to training would change results, so old and new runs never mix.
#: 1: cosine from the first step. 2: a linear learning-rate warm-up (``warmup``, one epoch by
#: default) before the cosine, so the default setting trains every activation on 28×28 and 32×32
#: images too (protocol 1 diverged there with PReLU and ELU).
PROTOCOL = 2

#: The variant that keeps an own model's activations (``--acts model,relu,prelu``).
MODEL_VARIANT = "model"

#: shorthands for an entry's per-channel hyper-parameter (PReLU's num_parameters): token -> value
_PER_CHANNEL_SHORTHANDS = {"channelwise": CHANNELWISE, "channel": CHANNELWISE, "shared": "1"}


# --- variants ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One activation with its hyper-parameters, complete and checked.

    ``hparams`` holds every registry hyper-parameter of ``act``, sorted by name, with defaults
    filled in (PReLU's ``num_parameters`` may be ``"channel"``); ``label`` names the variant in
    reports: the activation, plus the hyper-parameters that differ from their defaults.
    """

    act: str
    hparams: tuple[tuple[str, Any], ...]
    label: str

    @property
    def hp(self) -> dict[str, Any]:
        return dict(self.hparams)


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _resolve(act: str, given: dict[str, Any]) -> dict[str, Any]:
    """``registry.resolve`` that also accepts ``channel`` for a per-channel hyper-parameter
    (PReLU's ``num_parameters=channel``)."""
    key = registry.entry(act).per_channel
    channel = key is not None and str(given.get(key, "")).strip().lower() in (CHANNELWISE, "channelwise")
    if channel:
        given = {**given, key: 1}
    _, hp = registry.resolve(act, given)
    return {**hp, key: CHANNELWISE} if channel else hp


def _variant(act: str, given: dict[str, Any]) -> Variant:
    act = registry.canonical(act)
    hp = _resolve(act, given)
    # The label shows a given value only where it changes something: ``rrelu:form=divisor:lower=3``
    # is ``rrelu(form=divisor)``, since 3 is the divisor form's default lower bound.
    shown = [k for k in given if _matters(act, given, k, hp)]
    key = registry.entry(act).per_channel
    if key is not None and hp[key] == CHANNELWISE:
        parts = [CHANNELWISE] + [f"{k}={_fmt(hp[k])}" for k in shown if k != key]
    else:
        parts = [f"{k}={_fmt(hp[k])}" for k in shown]
    label = f"{act}({', '.join(parts)})" if parts else act
    return Variant(act, tuple(sorted(hp.items())), label)


def _matters(act: str, given: dict[str, Any], key: str, resolved: dict[str, Any]) -> bool:
    """Whether leaving ``key`` out of ``given`` would change the resolved hyper-parameters."""
    try:
        return _resolve(act, {k: v for k, v in given.items() if k != key})[key] != resolved[key]
    except ValueError:  # invalid without it (e.g. rrelu divisor bounds without form=divisor)
        return True


def parse_variants(text: str) -> list[Variant]:
    """``"relu,prelu:channelwise,leaky_relu:negative_slope=0.1"`` → variants, duplicates removed.

    ``all`` stands for the chapter's seven activations at their defaults, ``modern`` for GELU,
    SiLU, SELU and Mish, ``every`` for all registered ones (any registry group name works);
    ``model`` for an own model's activations as they are (see :mod:`actlab.lab.models`), the
    baseline for "should I change it?". Raises ``ValueError`` (one line) for an unknown activation
    or hyper-parameter, an invalid value, or a malformed item.
    """
    out: dict[tuple[str, tuple[tuple[str, Any], ...]], Variant] = {}
    items = [s.strip() for s in str(text).split(",") if s.strip()]
    if not items:
        raise ValueError(f"--acts {text!r}: no activation given; valid: {registry.ALL}, "
                         f"{', '.join(registry.groups())} or names from {', '.join(registry.names(registry.EVERY))}")
    for item in items:
        if registry.is_set(item):
            found = [_variant(name, {}) for name in registry.select([item])]
        elif item.lower() == MODEL_VARIANT:  # an own model's activations, unswapped (the baseline)
            found = [Variant(MODEL_VARIANT, (), MODEL_VARIANT)]
        else:
            name, *tokens = [t.strip() for t in item.split(":")]
            act = registry.canonical(name)
            given: dict[str, Any] = {}
            for token in tokens:
                hp, eq, value = token.partition("=")
                per_channel = registry.entry(act).per_channel
                if per_channel and token.lower() in _PER_CHANNEL_SHORTHANDS:
                    hp, value = per_channel, _PER_CHANNEL_SHORTHANDS[token.lower()]
                elif not (eq and hp and value):
                    raise ValueError(f"--acts item {item!r}: expected NAME[:HP=VALUE[:HP=VALUE]], "
                                     f"e.g. leaky_relu:negative_slope=0.1 or prelu:channelwise")
                given[hp.strip()] = value.strip()
            found = [_variant(act, given)]
        for v in found:
            out.setdefault((v.act, v.hparams), v)
    return list(out.values())


# --- the setting: data, model, optimisation ---------------------------------------------------


def _opt(group: str, help: str, parse: Any = str, metavar: str | None = None) -> dict[str, Any]:
    """A setting field's command-line face: its option group, help, parser and metavar
    (``actlab compare`` builds its options from these; see :func:`options`)."""
    return {"group": group, "help": help, "parse": parse, "metavar": metavar}


_DATA, _MODEL, _OPTIM = "data and model", "data and model", "optimisation"


@dataclass(frozen=True, kw_only=True)
class Setting:
    """Everything the runs of one comparison share: data, model and optimisation.

    The one place where these settings and their defaults are written: :class:`RunSpec` (one run)
    and :class:`Comparison` (what ``actlab compare`` was asked) extend it, and ``actlab compare``'s
    options are built from its fields (:func:`options`). :meth:`check` validates it.
    """

    # data
    data: str = field(default="digits", metadata=_opt(_DATA, "a --data spec (see actlab.lab.data)",
                                                      metavar="SPEC"))
    subset: int | None = field(default=None, metadata=_opt(
        _DATA, "use N training examples (default: all)", int, "N"))
    val_fraction: float = field(default=0.1, metadata=_opt(
        _DATA, "of the training set, held out for validation (default: %(default)s)", float))
    # model
    model: str = field(default="cnn", metadata=_opt(_MODEL, "a built-in model or an own model's spec",
                                                    metavar="NAME"))
    width: float = field(default=1.0, metadata=_opt(_MODEL, "channel / feature multiplier (default: %(default)s)",
                                                    float))
    depth: int | None = field(default=None, metadata=_opt(
        _MODEL, "convs per stage / hidden layers (default: the model's)", int))
    batchnorm: bool = field(default=False, metadata=_opt(_MODEL, "batch norm before every activation", bool))
    init: str = field(default="kaiming", metadata=_opt(
        _MODEL, f"initial weights of the shared layers: {' | '.join(INITS)} (default: %(default)s)", metavar="NAME"))
    # optimisation
    epochs: int = field(default=10, metadata=_opt(_OPTIM, "(default: %(default)s)", int, "N"))
    optimizer: str = field(default="sgd", metadata=_opt(
        _OPTIM, f"{' | '.join(OPTIMIZERS)} (SGD with momentum) (default: %(default)s)", metavar="NAME"))
    lr: float = field(default=0.02, metadata=_opt(
        _OPTIM, "peak learning rate, or a comma-separated grid such as 0.003,0.01,0.03,0.1: every variant runs at "
                "every rate and seed, and the report compares each variant at its own rate, the one with the "
                "lowest mean validation error over the seeds (never the test set); resuming adds only the "
                "missing runs (default: %(default)s)", "lrs", "LR[,LR...]"))
    warmup: float = field(default=1.0, metadata=_opt(
        _OPTIM, "the learning rate rises linearly from 0 to its peak over this many epochs (at most half the "
                "run), then follows --schedule; 0: no warm-up (default: %(default)g)", float, "EPOCHS"))
    momentum: float = field(default=0.9, metadata=_opt(_OPTIM, "SGD momentum, Adam's beta1 (default: %(default)s)",
                                                       float))
    weight_decay: float = field(default=5e-4, metadata=_opt(
        _OPTIM, "L2, never on PReLU slopes (actlab.param_groups) (default: %(default)s)", float))
    batch_size: int = field(default=64, metadata=_opt(_OPTIM, "(default: %(default)s)", int))
    schedule: str = field(default="cosine", metadata=_opt(
        _OPTIM, f"{' | '.join(SCHEDULES)}: after the warm-up, decay to 0 by a cosine (per step) or stay at the "
                f"peak (default: %(default)s)", metavar="NAME"))

    @property
    def lrs(self) -> tuple[float, ...]:
        """The learning rates: ``(lr,)`` for one rate, the grid for a :class:`Comparison` over several."""
        return self.lr if isinstance(self.lr, tuple) else (self.lr,)

    def check(self) -> None:
        """Raise a one-line ``ValueError`` for the first invalid setting."""
        def bad(name: str, valid: str) -> ValueError:
            return ValueError(f"invalid {name}={getattr(self, name)!r}; valid: {valid}")

        if not (_is_int(self.epochs) and self.epochs >= 1):
            raise bad("epochs", "an int >= 1")
        if self.subset is not None and not (_is_int(self.subset) and self.subset >= 1):
            raise bad("subset", "an int >= 1")
        if not (_is_num(self.val_fraction) and 0 <= self.val_fraction < 1):
            raise bad("val_fraction", "a number in [0, 1)")
        if not (_is_num(self.width) and self.width > 0):
            raise bad("width", "a number > 0")
        if self.depth is not None and not (_is_int(self.depth) and self.depth >= 1):
            raise bad("depth", "an int >= 1")
        if not isinstance(self.batchnorm, bool):
            raise bad("batchnorm", "True or False")
        if self.init not in INITS:
            raise bad("init", ", ".join(INITS))
        if self.optimizer not in OPTIMIZERS:
            raise bad("optimizer", ", ".join(OPTIMIZERS))
        if not self.lrs or not all(_is_num(lr) and lr > 0 for lr in self.lrs):
            raise bad("lr", "a number > 0, or a tuple of such numbers (a grid)")
        if len(set(self.lrs)) < len(self.lrs):
            raise bad("lr", "distinct rates (one is given twice)")
        if not (_is_num(self.warmup) and self.warmup >= 0):
            raise bad("warmup", "a number of epochs >= 0 (0: no warm-up)")
        if not (_is_num(self.momentum) and 0 <= self.momentum < 1):
            raise bad("momentum", "a number in [0, 1)")
        if not (_is_num(self.weight_decay) and self.weight_decay >= 0):
            raise bad("weight_decay", "a number >= 0")
        if not (_is_int(self.batch_size) and self.batch_size >= 1):
            raise bad("batch_size", "an int >= 1")
        if self.schedule not in SCHEDULES:
            raise bad("schedule", ", ".join(SCHEDULES))
        from . import models  # the model list is models.py's; imported late to keep plan light

        if self.model != "auto":
            models.check_spec(self.model)  # a built-in name or an own model's loadable spec

    def shared(self) -> dict[str, Any]:
        """The setting's own fields (those of :class:`Setting`, not of a subclass) as a dict."""
        return {f.name: getattr(self, f.name) for f in fields(Setting)}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def options() -> list[tuple[str, Any, dict[str, Any]]]:
    """``(name, default, metadata)`` for each setting field, in order: what ``actlab compare``
    turns into its options (``--val-fraction`` for ``val_fraction``)."""
    return [(f.name, f.default, dict(f.metadata)) for f in fields(Setting)]


# --- one run ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RunSpec(Setting):
    """Everything that determines one training run: its :class:`Setting`, its activation variant
    and its seed (at one learning rate). JSON-serialisable; :attr:`key` identifies it.

    The seed fixes the data order (a dedicated generator), the initial weights of the layers all
    variants share (``torch.manual_seed(seed)`` right before the model is built) and RReLU's
    noise, so runs with the same seed and different activations form a matched pair.
    """

    # activation
    act: str = "relu"  # canonical registry name
    hparams: tuple[tuple[str, Any], ...] = ()  # complete, checked, sorted by name (see Variant)
    variant: str = "relu"  # the label in reports; not part of the key
    seed: int = 0
    protocol: int = PROTOCOL

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hparams"] = dict(self.hparams)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        if d.get("protocol", PROTOCOL) < 2:
            d.setdefault("warmup", 0.0)  # protocol 1 had no warm-up
        d["hparams"] = tuple(sorted(dict(d.get("hparams") or {}).items()))
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @property
    def key(self) -> str:
        """A hash of everything that affects the result (not the label): the resume key."""
        d = self.to_dict()
        del d["variant"]
        return _digest(d)

    @property
    def group(self) -> str:
        """A hash of the setting shared by the runs of one comparison at one learning rate (all but
        act and seed; stored as ``runs.grp``). A comparison over an ``lr`` grid has one group per
        rate: the analysis groups its runs by the setting without ``lr``."""
        d = self.to_dict()
        for k in ("variant", "act", "hparams", "seed"):
            del d[k]
        return _digest(d)

    @property
    def act_key(self) -> tuple[str, tuple[tuple[str, Any], ...]]:
        """The activation variant, as a hashable value."""
        return self.act, self.hparams

    @property
    def activation(self) -> Variant:
        return Variant(self.act, self.hparams, self.variant)


def _digest(d: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


# --- a comparison -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Comparison(Setting):
    """What ``actlab compare`` was asked: one :class:`Setting`, several variants, several seeds.

    ``lr`` is one peak learning rate or a grid of them (a tuple; a list is taken as one): every
    variant runs at every rate and seed, and the analysis compares each variant at the rate of
    its lowest mean validation error. :attr:`lrs` is the grid either way. ``model`` may be
    ``"auto"`` here: :func:`actlab.lab.compare.compare` resolves it from the data's shape.
    """

    variants: tuple[Variant, ...]
    seeds: int = 3  # seeds 0 .. seeds-1

    def __post_init__(self) -> None:
        # A list or tuple of rates is a grid; a grid of one rate is that rate (the same runs and keys).
        if isinstance(self.lr, (list, tuple)):
            grid = tuple(self.lr)
            object.__setattr__(self, "lr", grid[0] if len(grid) == 1 else grid)

    def check(self) -> None:
        """Raise a one-line ``ValueError`` for the first invalid setting, variant list or seed count."""
        if not self.variants:
            raise ValueError("no activation variant given")
        if not (_is_int(self.seeds) and self.seeds >= 1):
            raise ValueError(f"invalid seeds={self.seeds!r}; valid: an int >= 1")
        super().check()
        from . import models

        own = self.model != "auto" and not models.is_builtin(self.model)
        if any(v.act == MODEL_VARIANT for v in self.variants) and not own:
            raise ValueError(f"--acts model: keeps an own model's activations; valid with --model FILE.py:FN, "
                             f"module:FN, torchvision:NAME or timm:NAME, not {self.model!r}")

    def settings(self) -> dict[str, Any]:
        """The comparison as plain JSON data (variants as labels), for the results database."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "variants"}
        d["variants"] = [v.label for v in self.variants]
        d["lr"] = list(self.lr) if isinstance(self.lr, tuple) else self.lr  # a float, or the grid as a list
        d["protocol"] = PROTOCOL
        d["recipe"] = recipe(d)  # the training procedure in words, for reports
        return d


def plan(comparison: Comparison) -> list[RunSpec]:
    """The runs of ``comparison``, seed-major: for seed 0 every variant at every learning rate
    (rate by rate, in the order given), then seed 1, ...

    Seed-major order makes an interrupted comparison leave complete matched sets behind. Each run
    has one learning rate (:attr:`RunSpec.lr`), so a run of a grid has the key that the same
    comparison with that single ``lr`` gives it: a grid resumes a single-rate store and adds the
    other rates, and widening a grid runs only the new rates.
    """
    comparison.check()
    if comparison.model == "auto":
        raise ValueError("plan: resolve model 'auto' first (actlab.lab.models.default_for)")
    shared = {k: v for k, v in comparison.shared().items() if k != "lr"}
    return [RunSpec(**shared, act=v.act, hparams=v.hparams, variant=v.label, seed=seed, lr=lr)
            for seed in range(comparison.seeds) for lr in comparison.lrs for v in comparison.variants]


def parse_lrs(text: str) -> float | tuple[float, ...]:
    """``"0.02"`` → 0.02; ``"0.003,0.01,0.03"`` → (0.003, 0.01, 0.03): ``--lr`` as a rate or a grid.

    Raises a one-line ``ValueError`` for an empty item, a word that is not a number, a rate that
    is not > 0 or a rate given twice.
    """
    items = [t.strip() for t in str(text).split(",")]
    valid = "valid: a number > 0, or a comma-separated grid such as 0.003,0.01,0.03,0.1"
    rates = []
    for item in items:
        try:
            rate = float(item)
        except ValueError:
            raise ValueError(f"invalid lr {item!r} in --lr {text!r}; {valid}") from None
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"invalid lr {item!r} in --lr {text!r}; {valid}")
        if rate in rates:
            raise ValueError(f"invalid --lr {text!r}: {item} is given twice; {valid}")
        rates.append(rate)
    return rates[0] if len(rates) == 1 else tuple(rates)


def recipe(setting: dict[str, Any]) -> str:
    """The training procedure of a setting (a :class:`RunSpec` 's dict, or ``Comparison.settings()``)
    in one sentence, for reports: optimiser, learning rate with warm-up and schedule, regularisation,
    batch, initialisation, batch norm, and the protocol version."""
    get = setting.get
    protocol = get("protocol", PROTOCOL)
    lr = get("lr")
    if isinstance(lr, (list, tuple)):
        peak = f"peak lr chosen per activation from {', '.join(f'{x:g}' for x in lr)} (lowest mean validation error)"
    else:
        peak = f"peak lr {lr:g}" if lr is not None else "peak lr chosen per activation"
    warmup = float(get("warmup", 1.0 if protocol >= 2 else 0.0))
    rise = (f"rising linearly from 0 over the first {warmup:g} epoch{'' if warmup == 1 else 's'} (at most half the run), "
            f"then " if warmup > 0 else "")
    decay = "decaying to 0 by a cosine, per step" if get("schedule", "cosine") == "cosine" else "constant"
    sgd = get("optimizer", "sgd") == "sgd"
    init = {"kaiming": "Kaiming (He) normal init, std √(2/fan_in)", "xavier": "Xavier (Glorot) normal init"}.get(
        get("init", "kaiming"), f"{get('init')} init")
    return (f"{'SGD' if sgd else 'Adam'}, {peak}, {rise}{decay}; {'momentum' if sgd else 'beta1'} "
            f"{get('momentum', 0.9):g}, weight decay {get('weight_decay', 5e-4):g} (not on PReLU slopes), batch "
            f"{get('batch_size', 64)}; {init} for every activation; batch norm {'on' if get('batchnorm') else 'off'}; "
            f"no gradient clipping; training protocol {protocol}")
