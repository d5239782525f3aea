"""actlab — the activation functions of the chapter, exact, fast, and compared on your data.

Entry points::

    actlab.names()                       # the chapter's seven canonical names, in its order
    actlab.names("every")                # ... and GELU, SiLU, SELU, Mish (and any registered)
    actlab.get(name, **hparams)          # NumPy reference: .forward, .grad, .param_grads
    actlab.layer(name, **hparams)        # a torch.nn.Module, drop-in for torch.nn's
    actlab.swap(model, name, **hparams)  # replace every activation module of a model, in place
    actlab.param_groups(model, wd)       # optimizer groups: PReLU slopes without weight decay

Unknown names and invalid hyper-parameters raise ``ValueError`` naming the problem and the
valid choices. This file only re-exports; the modules below never import it (see the layering
rule in the README).
"""

from __future__ import annotations

from typing import Any

from . import layers, reference, registry
from .factory import get, layer, names
from .optim import param_groups
from .swap import swap
from .version import __version__

__all__ = ["names", "get", "layer", "swap", "param_groups", "registry", "reference", "layers", "__version__"]

_SUBMODULES = ("functional", "properties", "plotting", "bench", "lab", "fast")


def __getattr__(name: str) -> Any:
    """Import the heavier submodules on first use: ``actlab.properties.table()`` just works."""
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'actlab' has no attribute {name!r}")
