"""The factories: an activation's NumPy reference or its ``torch.nn`` layer, from a name.

Both read the registry only: :func:`get` builds the entry's reference class, :func:`layer` its
layer class, with the hyper-parameters checked (one-line ``ValueError`` naming the valid
values). Importing this module imports :mod:`actlab.catalog`, so the built-in entries are there.
"""

from __future__ import annotations

import inspect
from typing import Any

from . import catalog  # noqa: F401  (registers the built-in activations)
from . import registry
from .layers import Activation
from .reference import Reference

__all__ = ["names", "get", "layer"]


def names(group: str = registry.CHAPTER) -> list[str]:
    """The canonical activation names of ``group``: by default the chapter's seven (sigmoid,
    tanh, relu, leaky_relu, prelu, rrelu, elu); ``"modern"`` GELU, SiLU, SELU, Mish; ``"every"`` all."""
    return registry.names(group)


def get(name: str, **hparams: Any) -> Reference:
    """The NumPy reference for ``name`` (canonical or alias) with ``hparams`` checked."""
    entry, hp = registry.resolve(name, hparams)
    return entry.reference(**hp)


def layer(name: str, *, impl: str = "auto", **hparams: Any) -> Activation:
    """A ``torch.nn.Module`` for ``name`` with ``hparams`` checked.

    ``impl`` picks the implementation (``"auto"``: the fast kernels where they serve the
    tensor). Layer-only options (``inplace``, ``lean``, and RReLU's ``seed``/``generator``,
    PReLU's ``device``/``dtype``) pass through; an option the layer does not take is a
    ``ValueError`` naming the ones it does.
    """
    entry = registry.entry(name)
    known = {h.name for h in entry.hparams}
    extra = {k: hparams.pop(k) for k in list(hparams) if k not in known}
    _, hp = registry.resolve(name, hparams)
    params = inspect.signature(entry.layer).parameters
    bad = sorted(k for k in extra if k not in params)
    if bad:
        valid = ", ".join(p for p in params if p != "impl")
        raise ValueError(f"{entry.name}: unknown option {bad[0]!r}; valid: {valid}")
    return entry.layer(**hp, **extra, impl=impl)
