"""The lab's networks, each taking the activation as a parameter.

``build(name, input_shape=…, num_classes=…, act=…)`` returns a :class:`Net`: a flat
``nn.Sequential`` of named layers in forward order. Every activation module is the child
``<layer>_act`` right after the layer it follows (after its ``<layer>_bn`` when batch norm is on),
so :func:`activation_layers` can name it for that layer — ``conv1``, ``conv2_1``, …, ``fc2`` for
``he14`` — and monitors can hook it.

``act`` is an :data:`ActFactory`: called once per activation position with the number of
channels (axis 1 of an N×C×… tensor) or features of the layer it follows, so a channel-wise PReLU
is ``lambda c: nn.PReLU(num_parameters=c)`` and a shared one ``lambda c: nn.PReLU()``.

Paired design. Comparing activations is only fair when everything else is equal, so with the same
``torch.manual_seed(s)`` before :func:`build` every shared (non-activation) parameter comes out
identical whatever ``act`` is, and the global RNG is left in the same state afterwards (the
trainer's batch order is then the same too). :func:`build` draws one seed from the global
generator, builds the layers inside ``torch.random.fork_rng`` (so a factory that draws random
numbers changes nothing outside), then initialises every shared parameter from a private
``torch.Generator`` seeded with that draw.

Initialisation (``init="kaiming"``, the default): He et al. 2015's normal init, std = √(2 / fan_in),
for every conv / linear layer that an activation follows — the init the rectifiers of the chapter
need (its advice: "start with ReLU, minding the weight initialisation"); the final classifier gets
std = √(1 / fan_in) as no activation follows it. ``init="xavier"`` (Glorot normal, gain 1) suits
sigmoid / tanh better. One init is used for every activation of a comparison, by design: it is part
of the shared network, and how each activation copes with it is part of what is measured. Biases
start at 0, batch-norm scales at 1.

Batch norm is off by default (``batchnorm=False``): normalising every pre-activation to zero mean
and unit variance hides much of what separates the activations (sigmoid's non-zero mean output,
saturation, dead ReLUs, the drift that ELU counters). Turn it on to ask the other question —
whether the differences survive batch norm.

Why one module of ~700 lines: the built-in networks and the own-model loader share the contract
the rest of the lab relies on — :func:`build` returns a model whose activation modules the
monitors and :func:`actlab.swap` can find and replace, whatever its origin; the own-model part
(the ``# own models`` section) is the candidate to move out if it grows.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

__all__ = [
    "ActFactory", "ACT_SUFFIX", "Net", "SpatialPyramidPool", "names", "default_for", "build",
    "activation_layers", "HE14_SPP_LEVELS", "is_builtin", "check_spec", "load_factory", "activation_modules",
    "describe_activations", "OWN_SPEC_HELP",
]

ActFactory = Callable[[int], nn.Module]
"""Makes one activation module; receives the channel / feature count of the layer it follows."""

ACT_SUFFIX = "_act"
HE14_SPP_LEVELS = (6, 3, 2, 1)

_NAMES = ("cnn", "he14", "mlp", "cnn1d")
_INITS = ("kaiming", "xavier")
_DEFAULT_DEPTH = {"cnn": 2, "cnn1d": 2, "mlp": 8}  # he14's depth is fixed by Table 8.1
# he14 keeps the original ImageNet stem (conv1 7×7/2, pool1 3×3/3) from this input side up.
_HE14_LARGE_INPUT = 96
_HE14_MIN_INPUT = 4


class Net(nn.Sequential):
    """A flat sequence of named layers; activations are the children named ``<layer>_act``.

    ``arch`` is the model name and ``config`` the arguments it was built with (JSON-serialisable),
    for run records.
    """

    def __init__(
        self, layers: Sequence[tuple[str, nn.Module]] | OrderedDict[str, nn.Module], *, arch: str = "",
        config: dict[str, Any] | None = None,
    ) -> None:
        # arch / config default so that nn.Sequential's slicing (which calls the class with
        # the layers alone) still works: net[:-3] is a Net without a record of its own.
        super().__init__(OrderedDict(layers))
        self.arch = arch
        self.config = dict(config or {})


class SpatialPyramidPool(nn.Module):
    """Spatial pyramid pooling (He et al. 2014): max-pool to n×n bins for each level, concatenated.

    The output length is C · Σ n², whatever the input size — which is what lets he14 keep
    Table 8.1's fc1 on inputs from 8×8 to 224×224. A map smaller than a level's n×n is pooled
    with overlapping (repeated) bins, as adaptive pooling does.

    Shape: (N, C, H, W) → (N, C · Σ n²), level by level, each level channel-major.
    """

    def __init__(self, levels: Sequence[int] = HE14_SPP_LEVELS) -> None:
        super().__init__()
        self.levels = tuple(int(n) for n in levels)
        self.pools = nn.ModuleList(nn.AdaptiveMaxPool2d(n) for n in self.levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([pool(x).flatten(1) for pool in self.pools], dim=1)

    def extra_repr(self) -> str:
        return f"levels={self.levels}"


# ---------------------------------------------------------------------------------------------
# own models: a factory of the user's, torchvision's or timm's, its activations swapped
# ---------------------------------------------------------------------------------------------

OWN_SPEC_HELP = (
    "an own model: FILE.py:FN or package.module:FN, a factory called as FN(num_classes=K, "
    "input_shape=(C, H, W)) that returns an nn.Module mapping N×C×H×W (or the data's shape) to N×K "
    "logits; torchvision:NAME or timm:NAME where those packages are installed"
)
_OWN_FORMS = "FILE.py:FN, package.module:FN, torchvision:NAME, timm:NAME"
_EXTRAS = {"torchvision": "torchvision", "timm": "timm"}
_REGISTERED: dict[str, Callable[..., nn.Module]] = {}
_LOADED: dict[tuple[str, float], Any] = {}

Factory = Callable[..., nn.Module]
"""An own model's factory: ``fn(num_classes: int, input_shape: tuple[int, ...]) -> nn.Module``."""


def is_builtin(name: str) -> bool:
    """Whether ``name`` is one of the lab's own networks (:func:`names`), not an own model's spec."""
    return name in _NAMES


def _parse(spec: str) -> tuple[str, str, str]:
    """``spec`` → (kind, where, name): file | module | torchvision | timm | registered."""
    where, colon, fn = str(spec).rpartition(":")
    if not colon or not where or not fn:
        raise ValueError(f"unknown model {spec!r}; valid: {', '.join(_NAMES)}, or {_OWN_FORMS}")
    if where in _EXTRAS:
        return where, where, fn
    if where == "python":
        return "registered", where, fn
    if where.endswith(".py"):
        return "file", where, fn
    if all(part.isidentifier() for part in where.split(".")):
        return "module", where, fn
    raise ValueError(f"unknown model {spec!r}; valid: {', '.join(_NAMES)}, or {_OWN_FORMS}")


def register(fn: Factory) -> str:
    """The spec of a factory given as a Python callable (``actlab.lab.compare(model=fn)``).

    A function importable as ``module:qualname`` (defined at a module's top level, not in
    ``__main__``) is named that way, so worker processes and Ray tasks can import it too. Anything
    else (a lambda, a local function, a function of ``__main__``) is kept in this process under
    ``python:NAME`` and runs here only (``jobs=1``, the local executor).
    """
    if not callable(fn):
        raise ValueError(f"model must be a name, a spec ({_OWN_FORMS}) or a factory callable, "
                         f"got {type(fn).__name__}")
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if module and module != "__main__" and "<" not in qualname:
        try:
            import importlib

            obj: Any = importlib.import_module(module)
            for part in qualname.split("."):
                obj = getattr(obj, part)
            if obj is fn:
                return f"{module}:{qualname}"
        except (ImportError, AttributeError):
            pass
    spec = f"python:{qualname or type(fn).__name__}"
    if _REGISTERED.get(spec, fn) is not fn:
        spec = f"python:{qualname or type(fn).__name__}@{id(fn):x}"
    _REGISTERED[spec] = fn
    return spec


def is_local_only(spec: str) -> bool:
    """Whether ``spec`` names a callable that exists in this process only (see :func:`register`)."""
    return not is_builtin(spec) and str(spec).startswith("python:")


def _import_file(path: Path) -> Any:
    import importlib.util

    stamp = path.stat().st_mtime
    if (str(path), stamp) in _LOADED:
        return _LOADED[str(path), stamp]
    name = "actlab_own_model_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ValueError(f"model file {path}: not a Python file")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    try:
        module_spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[name]
        raise ValueError(f"model file {path}: importing it raised {type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''}") from None
    _LOADED[str(path), stamp] = module
    return module


def _missing_extra(kind: str, spec: str) -> ValueError:
    return ValueError(f"--model {spec}: needs the {kind} package, which is not installed; install it with "
                      f"pip install 'actlab[{_EXTRAS[kind]}]'")


def load_factory(spec: str) -> Factory:
    """The factory an own model's ``spec`` names, checked; ``ValueError`` (one line) if it cannot be.

    Forms:

    * ``FILE.py:FN`` — function ``FN`` of a Python file (a path relative to the working
      directory; with Ray on a cluster, every node must be able to read it);
    * ``package.module:FN`` — function ``FN`` of an importable module (the working directory is
      searched too);
    * ``torchvision:NAME`` — ``torchvision.models.get_model(NAME, weights=None, num_classes=K)``
      (extra ``actlab[torchvision]``); ``timm:NAME`` — ``timm.create_model(NAME,
      pretrained=False, num_classes=K, in_chans=C)`` (extra ``actlab[timm]``). No weights are
      downloaded: the lab trains from scratch.

    The factory is called as ``FN(num_classes=K, input_shape=shape)`` with ``shape`` one
    example's shape without the batch axis, e.g. ``(1, 28, 28)``, and returns an ``nn.Module``
    that maps a batch to N×K logits and registers its activations as modules (``nn.ReLU()``
    etc., which :func:`actlab.swap` replaces).
    """
    kind, where, fn_name = _parse(spec)
    if kind == "registered":
        if spec not in _REGISTERED:
            raise ValueError(f"--model {spec}: a Python callable of another process; valid here: pass it to "
                             f"actlab.lab.compare(model=...) in this process, or name it as module:FN")
        return _REGISTERED[spec]
    if kind in _EXTRAS:
        import importlib

        try:
            package = importlib.import_module(kind)
        except ImportError:
            raise _missing_extra(kind, spec) from None
        return _package_factory(kind, package, fn_name, spec)
    if kind == "file":
        path = Path(where).expanduser()
        if not path.is_file():
            raise ValueError(f"--model {spec}: model file {where} not found (relative paths are read from "
                             f"{Path.cwd()})")
        module = _import_file(path.resolve())
    else:
        import importlib

        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.append(os.getcwd())
        try:
            module = importlib.import_module(where)
        except ImportError as err:
            raise ValueError(f"--model {spec}: cannot import module {where!r} ({err})") from None
        except Exception as err:
            raise ValueError(f"--model {spec}: importing {where!r} raised {type(err).__name__}: {err}") from None
    fn = getattr(module, fn_name, None)
    if fn is None or not callable(fn):
        found = sorted(n for n, v in vars(module).items()
                       if callable(v) and not n.startswith("_") and getattr(v, "__module__", None) == module.__name__)
        raise ValueError(f"--model {spec}: {where} has no function {fn_name!r}; valid: "
                         f"{', '.join(found) or 'none defined there'}")
    _check_signature(fn, spec)
    return fn


def _check_signature(fn: Any, spec: str) -> None:
    import inspect

    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without a signature: find out when called
        return
    try:
        signature.bind(num_classes=10, input_shape=(1, 8, 8))
    except TypeError:
        raise ValueError(f"--model {spec}: {getattr(fn, '__name__', fn)}{signature} does not fit; the factory "
                         f"is called as FN(num_classes=K, input_shape=(C, H, W))") from None


def _package_factory(kind: str, package: Any, name: str, spec: str) -> Factory:
    if kind == "torchvision":
        known = list(package.models.list_models())
        if name not in known:
            raise ValueError(f"--model {spec}: torchvision has no model {name!r}; valid: "
                             f"{', '.join(sorted(known)[:12])}, ... (torchvision.models.list_models())")

        def tv(num_classes: int, input_shape: Sequence[int]) -> nn.Module:
            return package.models.get_model(name, weights=None, num_classes=num_classes)

        return tv
    if not package.is_model(name):
        raise ValueError(f"--model {spec}: timm has no model {name!r}; valid: a name from timm.list_models()")

    def tm(num_classes: int, input_shape: Sequence[int]) -> nn.Module:
        return package.create_model(name, pretrained=False, num_classes=num_classes, in_chans=int(input_shape[0]))

    return tm


def check_spec(spec: str) -> None:
    """Raise a one-line ``ValueError`` unless ``spec`` is a built-in name or a loadable own model."""
    if not is_builtin(spec):
        load_factory(spec)


def activation_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The modules :func:`actlab.swap` replaces in ``model`` (qualified name, module)."""
    from ..layers import Activation
    from ..swap import ACTIVATION_TYPES

    return [(n, m) for n, m in model.named_modules() if n and isinstance(m, (Activation, *ACTIVATION_TYPES))]


def describe_activations(model: nn.Module) -> str:
    """``"5 activation modules (ReLU ×4, GELU)"``: what an own model's variants replace."""
    from collections import Counter

    counts = Counter(type(m).__name__ for _, m in activation_modules(model))
    parts = [f"{k} ×{v}" if v > 1 else k for k, v in counts.items()]
    total = sum(counts.values())
    return f"{total} activation module{'s' * (total != 1)} ({', '.join(parts)})"


def _build_own(spec: str, *, input_shape: Sequence[int], num_classes: int, act: Any, width: float,
               depth: int | None, batchnorm: bool) -> nn.Module:
    """An own model from its factory, every activation module swapped for ``act``'s variant.

    Paired design as for the built-in networks: one draw from the global generator seeds the
    factory (on a forked RNG), so with the same ``torch.manual_seed`` every variant starts from
    the same weights and the caller's RNG moves the same whatever the factory draws. The factory's
    own initialisation is kept (``init`` does not apply).
    """
    if width != 1.0 or depth is not None or batchnorm:
        raise ValueError(f"model {spec}: width, depth and batchnorm apply to the built-in models "
                         f"({', '.join(_NAMES)}) only; valid: leave them at their defaults")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"invalid num_classes={num_classes!r}; valid: an int >= 1")
    factory = load_factory(spec)
    variant = getattr(act, "variant", None)
    if not (isinstance(variant, tuple) and len(variant) == 3):
        raise TypeError("an own model's act must come from actlab.lab.train.activation_factory(spec) "
                        "(it names the activation that actlab.swap puts in)")
    name, hparams, seed = variant
    shape = tuple(int(s) for s in input_shape)
    init_seed = int(torch.randint(0, 2**62, (1,)).item())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        try:
            model = factory(num_classes=num_classes, input_shape=shape)
        except Exception as err:
            raise ValueError(f"model {spec}: the factory raised {type(err).__name__}: "
                             f"{str(err).splitlines()[0] if str(err) else ''}") from None
        if not isinstance(model, nn.Module):
            raise ValueError(f"model {spec}: the factory returned {type(model).__name__}; an nn.Module is needed")
        found = activation_modules(model)
        if not found:
            raise ValueError(f"model {spec}: no activation modules to swap (nn.ReLU, nn.GELU, ... or actlab's); "
                             f"activations called as functions in forward (F.relu) cannot be swapped; valid: "
                             f"a model that registers its activations as modules")
        if name != "model":
            _swap_in(model, name, dict(hparams), seed, shape)
    model.arch = spec  # type: ignore[assignment]
    model.swapped = len(found)  # type: ignore[assignment]
    return model


def _swap_in(model: nn.Module, name: str, hparams: dict[str, Any], seed: int, shape: tuple[int, ...]) -> None:
    """:func:`actlab.swap` with RReLU's noise seeded per layer, as the built-in networks do."""
    from ..swap import CHANNELWISE, swap

    example = torch.zeros(2, *shape) if hparams.get("num_parameters") == CHANNELWISE else None
    if name == "rrelu":
        hparams = {**hparams, "seed": seed * 1_000_003}
    swap(model, name, example_input=example, **hparams)
    if name == "rrelu":  # swap gave every layer the same seed: one noise stream per layer instead
        for index, (_, m) in enumerate(activation_modules(model)):
            if hasattr(m, "generator"):
                m.seed = seed * 1_000_003 + index
                m.generator = torch.Generator().manual_seed(m.seed)


def names() -> list[str]:
    """The model names: cnn, he14, mlp, cnn1d."""
    return list(_NAMES)


def default_for(input_shape: Sequence[int]) -> str:
    """The model that fits ``input_shape``: cnn for (C,H,W), cnn1d for (C,L), mlp for (D,)."""
    by_rank = {3: "cnn", 2: "cnn1d", 1: "mlp"}
    try:
        return by_rank[len(input_shape)]
    except KeyError:
        raise ValueError(
            f"no default model for input shape {tuple(input_shape)}; valid: (C,H,W), (C,L) or (D,)"
        ) from None


def activation_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The activation modules of ``model`` in forward order, named for the layer they follow.

    Works on any model whose activations are registered as ``<layer>_act`` (every :class:`Net`,
    also when wrapped in another module); a module reused at several positions is listed at each.
    A model without such names (an own model, see :func:`load_factory`) lists its actlab
    activation modules by qualified name (``layer1.0.relu``); torch.nn's own modules (the
    ``model`` variant) are not listed, as the monitors know actlab's activations only.
    """
    found = []
    if not any(p.rsplit(".", 1)[-1].endswith(ACT_SUFFIX) for p, _ in model.named_modules()):
        from ..layers import Activation

        return [(p, m) for p, m in model.named_modules(remove_duplicate=False) if p and isinstance(m, Activation)]
    for path, module in model.named_modules(remove_duplicate=False):
        leaf = path.rsplit(".", 1)[-1]
        if leaf.endswith(ACT_SUFFIX) and len(leaf) > len(ACT_SUFFIX):
            found.append((leaf[: -len(ACT_SUFFIX)], module))
    return found


def build(
    name: str,
    *,
    input_shape: Sequence[int],
    num_classes: int,
    act: ActFactory,
    width: float = 1.0,
    depth: int | None = None,
    batchnorm: bool = False,
    init: str = "kaiming",
) -> Net:
    """Build model ``name`` for ``input_shape`` (without batch) with ``act`` at every activation.

    ``name`` may also be an own model's spec (``FILE.py:FN``, ``module:FN``, ``torchvision:NAME``,
    ``timm:NAME``; see :func:`load_factory`): then ``act`` must come from
    :func:`actlab.lab.train.activation_factory` and says which activation :func:`actlab.swap`
    puts in every activation module of the factory's model (or, for the ``model`` variant, none);
    width, depth and batchnorm must keep their defaults and init is the model's own.

    Args:
        name: ``cnn``, ``he14``, ``mlp`` or ``cnn1d`` (see each ``_build_*`` for the layers).
        input_shape: (C, H, W) for cnn / he14, (C, L) for cnn1d, anything for mlp (flattened).
        num_classes: size of the output layer (logits).
        act: the activation factory, called with the channel / feature count.
        width: multiplies every channel count and hidden size (rounded, at least 1).
        depth: cnn / cnn1d: convs per stage (default 2); mlp: hidden layers (default 8);
            he14: must be None (Table 8.1 fixes it).
        batchnorm: a BatchNorm after every conv / hidden linear, before the activation.
        init: ``kaiming`` (default) or ``xavier``; see the module docstring.

    Raises:
        ValueError: unknown name or init, bad width / depth / num_classes, an input shape the
            model cannot take (he14 names its minimum input size).
        TypeError: ``act`` is not callable or returns something that is not an ``nn.Module``.
    """
    if not is_builtin(name):
        return _build_own(name, input_shape=input_shape, num_classes=num_classes, act=act, width=width,
                          depth=depth, batchnorm=batchnorm)
    if init not in _INITS:
        raise ValueError(f"invalid init={init!r}; valid: {', '.join(_INITS)}")
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not (math.isfinite(width) and width > 0):
        raise ValueError(f"invalid width={width!r}; valid: a finite number > 0")
    if name == "he14":
        if depth is not None:
            raise ValueError(f"invalid depth={depth!r} for he14; valid: None (Table 8.1 fixes its 14 layers)")
    elif depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 1):
        raise ValueError(f"invalid depth={depth!r}; valid: None or an int >= 1")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"invalid num_classes={num_classes!r}; valid: an int >= 1")
    shape = tuple(int(s) for s in input_shape)
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"invalid input_shape={tuple(input_shape)}; valid: positive sizes, without the batch axis")
    if isinstance(act, nn.Module) or not callable(act):
        # a module instance is callable too, but calling it with a channel count is a mistake
        raise TypeError(
            f"act must be a factory: channels -> nn.Module (e.g. lambda c: nn.PReLU(c)), got {type(act).__name__}"
        )

    def make_act(channels: int) -> nn.Module:
        module = act(channels)
        if not isinstance(module, nn.Module):
            raise TypeError(f"act({channels}) returned {type(module).__name__}; an nn.Module is needed")
        return module

    depth = depth if depth is not None else _DEFAULT_DEPTH.get(name)
    # One draw from the global generator, the same for every factory; everything after it runs
    # on a forked RNG so that the factory cannot shift what the caller draws next.
    init_seed = int(torch.randint(0, 2**62, (1,)).item())
    with torch.random.fork_rng(devices=[]):
        builder = {"cnn": _build_cnn, "he14": _build_he14, "mlp": _build_mlp, "cnn1d": _build_cnn1d}[name]
        layers = builder(shape, num_classes, make_act, width, depth, batchnorm)
    config = {
        "name": name, "input_shape": list(shape), "num_classes": num_classes, "width": float(width),
        "depth": depth, "batchnorm": bool(batchnorm), "init": init,
    }
    net = Net(layers, arch=name, config=config)
    _init_shared(net, torch.Generator().manual_seed(init_seed), init)
    return net


# ---------------------------------------------------------------------------------------------
# architectures: each returns [(name, module), ...] in forward order
# ---------------------------------------------------------------------------------------------

Layers = list[tuple[str, nn.Module]]


def _scaled(base: int, width: float) -> int:
    return max(1, round(base * width))


def _conv_block(
    layers: Layers, name: str, conv: nn.Module, out_channels: int, make_act: ActFactory, batchnorm: bool, bn: type
) -> None:
    layers.append((name, conv))
    if batchnorm:
        layers.append((f"{name}_bn", bn(out_channels)))
    layers.append((f"{name}{ACT_SUFFIX}", make_act(out_channels)))


def _stage_plan(side: int) -> tuple[int, int]:
    """(stages, pools) for a side length: a 2× pool per stage while the map stays ≥ 2, at most 3.

    8 → 2 stages (8→4→2), 28 → 3 (→3), 32 → 3 (→4), 40 → 3 (→5); tiny inputs get one stage, no pool.
    """
    pools = min(3, max(0, int(math.log2(side)) - 1))
    return max(1, pools), pools


def _conv_stages(
    shape: tuple[int, ...], num_classes: int, make_act: ActFactory, width: float, depth: int,
    batchnorm: bool, kernel: int,
) -> Layers:
    """The body both small CNNs share, for (C, H, W) images or (C, L) signals.

    Stages of ``depth`` convs (``kernel``, same padding; 32, 64, 128 channels × width), each stage
    ending in a 2× max-pool while the map stays ≥ 2 (:func:`_stage_plan`), then flatten → fc1
    (128 × width) → activation → fc2 (logits).
    """
    conv, pool, bn = {3: (nn.Conv2d, nn.MaxPool2d, nn.BatchNorm2d), 2: (nn.Conv1d, nn.MaxPool1d, nn.BatchNorm1d)}[len(shape)]
    c, *sides = shape
    stages, pools = _stage_plan(min(sides))
    layers: Layers = []
    for i in range(1, stages + 1):
        out = _scaled(32 * 2 ** (i - 1), width)
        for j in range(1, depth + 1):
            layer = conv(c, out, kernel, padding=kernel // 2, bias=not batchnorm)
            _conv_block(layers, f"conv{i}_{j}", layer, out, make_act, batchnorm, bn)
            c = out
        if i <= pools:
            layers.append((f"pool{i}", pool(2)))
            sides = [side // 2 for side in sides]
    hidden = _scaled(128, width)
    layers.append(("flatten", nn.Flatten()))
    _fc_block(layers, "fc1", c * math.prod(sides), hidden, make_act, batchnorm)
    layers.append(("fc2", nn.Linear(hidden, num_classes)))
    return layers


def _build_cnn(
    shape: tuple[int, ...], num_classes: int, make_act: ActFactory, width: float, depth: int | None,
    batchnorm: bool,
) -> Layers:
    """Small VGG-style CNN sized to the input, for digits (8×8) to CIFAR (32×32).

    Stages of ``depth`` 3×3 convs (padding 1; 32, 64, 128 channels × width), each stage ending in
    a 2×2 max-pool (2 stages for 8×8, 3 from 16×16 up), then flatten → fc1 (128 × width) →
    activation → fc2 (logits). On 8×8 digits it reaches ~97 % test accuracy in a few seconds.
    """
    if len(shape) != 3:
        raise ValueError(f"cnn needs (C, H, W) images, got input shape {shape}; for (C, L) use cnn1d, for (D,) mlp")
    return _conv_stages(shape, num_classes, make_act, width, depth, batchnorm, kernel=3)


def _build_cnn1d(
    shape: tuple[int, ...], num_classes: int, make_act: ActFactory, width: float, depth: int | None,
    batchnorm: bool,
) -> Layers:
    """1-D CNN for (C, L) signals such as mnist1d (1×40).

    As :func:`_build_cnn` with 1-D layers: stages of ``depth`` convs of kernel 5 (padding 2; a
    wider kernel than 2-D's 3 because a 1-D signal has fewer neighbours per position), 32, 64, 128
    channels × width, 2× max-pool per stage (40 → 20 → 10 → 5), flatten → fc1 (128 × width) → fc2.
    """
    if len(shape) != 2:
        raise ValueError(f"cnn1d needs (C, L) signals, got input shape {shape}; for (C, H, W) use cnn, for (D,) mlp")
    return _conv_stages(shape, num_classes, make_act, width, depth, batchnorm, kernel=5)


def _build_mlp(
    shape: tuple[int, ...], num_classes: int, make_act: ActFactory, width: float, depth: int | None,
    batchnorm: bool,
) -> Layers:
    """Deep MLP: flatten → ``depth`` hidden layers fc1..fc{depth} of 256 × width → fc{depth+1}.

    Deep and narrow on purpose (8 hidden layers by default, no batch norm): the depth where
    sigmoid's and tanh's saturation starve the first layers of gradient, as the chapter warns.
    """
    features = math.prod(shape)
    hidden = _scaled(256, width)
    layers: Layers = [("flatten", nn.Flatten())]
    for i in range(1, depth + 1):
        _fc_block(layers, f"fc{i}", features, hidden, make_act, batchnorm)
        features = hidden
    layers.append((f"fc{depth + 1}", nn.Linear(features, num_classes)))
    return layers


def _fc_block(layers: Layers, name: str, n_in: int, n_out: int, make_act: ActFactory, batchnorm: bool) -> None:
    _conv_block(layers, name, nn.Linear(n_in, n_out, bias=not batchnorm), n_out, make_act, batchnorm, nn.BatchNorm1d)


def _build_he14(
    shape: tuple[int, ...], num_classes: int, make_act: ActFactory, width: float, depth: int | None,
    batchnorm: bool,
) -> Layers:
    """He et al. 2015's 14-layer network of Table 8.1 (the PReLU paper's Table 1 model).

    ====== ========================= ============================
    layer  Table 8.1 (≥ 96×96 input) small inputs (< 96×96)
    ====== ========================= ============================
    conv1  7×7, stride 2, d=64       3×3, stride 1, padding 1
    pool1  3×3, stride 3             2×2, stride 2
    conv2  4 × (2×2, stride 1, d=128)
    pool2  2×2, stride 2
    conv3  6 × (2×2, stride 1, d=256)
    spp    {6, 3, 2, 1} max-pool bins → 50 · 256 features
    fc1    4096, fc2 4096, fc3 num_classes
    ====== ========================= ============================

    An activation follows every conv and fc1, fc2 (13 in all), named conv1, conv2_1..conv2_4,
    conv3_1..conv3_6, fc1, fc2 as in the table. ``width`` multiplies every d and the fc sizes.

    Adaptations, all forced by running the ImageNet net on small images and kept minimal:
    * small-input stem: on a 32×32 CIFAR image the original stem (7×7/2 then 3×3/3 pool) would
      leave a 5×5 map after pool1 and 2×2 after pool2; a 3×3/1 conv1 and a 2×2/2 pool1 keep
      32 → 16 → 8, so the 2×2 stages still see spatial structure. The original stem is used
      from 96×96 up (224 → 112 → 37 → 18, as in the paper).
    * 2×2 convs are padded by one row / column at the bottom and right (``conv*_pad``), so each
      stage keeps its map size instead of losing one pixel per conv.
    * the paper's dropout on fc1/fc2 is left out (it is not part of Table 8.1; it would blur
      the activation comparison with a second regulariser).
    The smallest input is 4×4 (8×8 digits gives a 2×2 map at the SPP, pooled to overlapping bins).
    """
    if len(shape) != 3:
        raise ValueError(f"he14 needs (C, H, W) images, got input shape {shape}")
    c, h, w = shape
    side = min(h, w)
    if side < _HE14_MIN_INPUT:
        raise ValueError(f"he14 needs inputs of at least {_HE14_MIN_INPUT}x{_HE14_MIN_INPUT}, got {h}x{w}")
    d1, d2, d3, f = (_scaled(n, width) for n in (64, 128, 256, 4096))
    bn = nn.BatchNorm2d
    layers: Layers = []
    if side >= _HE14_LARGE_INPUT:  # Table 8.1's stem
        conv1, pool1 = nn.Conv2d(c, d1, 7, stride=2, padding=3, bias=not batchnorm), nn.MaxPool2d(3, stride=3)
    else:  # the small-input stem
        conv1, pool1 = nn.Conv2d(c, d1, 3, stride=1, padding=1, bias=not batchnorm), nn.MaxPool2d(2, stride=2)
    _conv_block(layers, "conv1", conv1, d1, make_act, batchnorm, bn)
    layers.append(("pool1", pool1))
    c = d1
    for stage, (n_convs, d) in enumerate(((4, d2), (6, d3)), start=2):
        for j in range(1, n_convs + 1):
            name = f"conv{stage}_{j}"
            layers.append((f"{name}_pad", nn.ZeroPad2d((0, 1, 0, 1))))  # (left, right, top, bottom)
            _conv_block(layers, name, nn.Conv2d(c, d, 2, stride=1, bias=not batchnorm), d, make_act, batchnorm, bn)
            c = d
        if stage == 2:
            layers.append(("pool2", nn.MaxPool2d(2, stride=2)))
    layers.append(("spp", SpatialPyramidPool(HE14_SPP_LEVELS)))
    bins = sum(n * n for n in HE14_SPP_LEVELS)
    _fc_block(layers, "fc1", c * bins, f, make_act, batchnorm)
    _fc_block(layers, "fc2", f, f, make_act, batchnorm)
    layers.append(("fc3", nn.Linear(f, num_classes)))
    return layers


# ---------------------------------------------------------------------------------------------
# initialisation of the shared parameters
# ---------------------------------------------------------------------------------------------


def _init_shared(net: Net, generator: torch.Generator, init: str) -> None:
    """Initialise every non-activation parameter from ``generator``, in layer order.

    Activation modules keep what their factory gave them (e.g. PReLU's a = 0.25).
    """
    weighted = [
        m for name, child in net.named_children() if not name.endswith(ACT_SUFFIX)
        for m in child.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))
    ]
    with torch.no_grad():
        for k, m in enumerate(weighted):
            is_classifier = k == len(weighted) - 1  # no activation follows the last layer
            if init == "kaiming":
                nonlinearity = "linear" if is_classifier else "relu"
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity=nonlinearity, generator=generator)
            else:
                nn.init.xavier_normal_(m.weight, gain=1.0, generator=generator)
            if m.bias is not None:
                m.bias.zero_()
        for name, child in net.named_children():
            if not name.endswith(ACT_SUFFIX):
                for m in child.modules():
                    if isinstance(m, nn.modules.batchnorm._BatchNorm):
                        m.reset_parameters()  # deterministic: scale 1, shift 0, fresh running stats
