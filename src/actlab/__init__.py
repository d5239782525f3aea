"""actlab — the activation functions of the chapter, exact, fast, and compared on your data.

Entry points::

    actlab.names()                       # the canonical names, in the chapter's order
    actlab.get(name, **hparams)          # NumPy reference: .forward, .grad, .param_grads
    actlab.layer(name, **hparams)        # a torch.nn.Module, drop-in for torch.nn's
    actlab.swap(model, name, **hparams)  # replace every activation module of a model, in place
    actlab.param_groups(model, wd)       # optimizer groups: PReLU slopes without weight decay

Unknown names and invalid hyper-parameters raise ``ValueError`` naming the problem and the
valid choices.
"""

from __future__ import annotations

from typing import Any

from . import layers, reference, registry
from .optim import param_groups
from .swap import swap

__all__ = ["names", "get", "layer", "swap", "param_groups", "registry", "reference", "layers"]
__version__ = "0.1.0"

_SUBMODULES = ("functional", "properties", "plotting", "bench", "lab", "fast")


def __getattr__(name: str) -> Any:
    """Import the heavier submodules on first use: ``actlab.properties.table()`` just works."""
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'actlab' has no attribute {name!r}")


def names() -> list[str]:
    """The canonical activation names: sigmoid, tanh, relu, leaky_relu, prelu, rrelu, elu."""
    return registry.names()


def get(name: str, **hparams: Any) -> reference.Reference:
    """The NumPy reference for ``name`` (canonical or alias) with ``hparams`` checked."""
    entry, hp = registry.resolve(name, hparams)
    return getattr(reference, entry.reference)(**hp)


def layer(name: str, *, impl: str = "auto", **hparams: Any) -> layers.Activation:
    """A ``torch.nn.Module`` for ``name`` with ``hparams`` checked.

    ``impl`` picks the implementation (``"auto"``: the fast kernels where they serve the
    tensor). Layer-only options (``inplace``, ``lean``, and RReLU's ``seed``/``generator``,
    PReLU's ``device``/``dtype``) pass through.
    """
    entry = registry.entry(name)
    known = {h.name for h in entry.hparams}
    extra = {k: hparams.pop(k) for k in list(hparams) if k not in known}
    _, hp = registry.resolve(name, hparams)
    cls = getattr(layers, entry.layer)
    try:
        return cls(**hp, **extra, impl=impl)
    except TypeError:
        import inspect

        params = inspect.signature(cls).parameters
        bad = sorted(k for k in extra if k not in params)
        valid = ", ".join(p for p in params if p != "impl")
        raise ValueError(f"{entry.name}: unknown option {bad[0] if bad else extra!r}; valid: {valid}") from None
