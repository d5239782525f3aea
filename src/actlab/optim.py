"""Optimizer parameter groups that follow He et al. (2015): no weight decay on PReLU slopes."""

from __future__ import annotations

from typing import Any

from torch import nn

from . import registry
from .layers import Activation

__all__ = ["param_groups", "is_slope"]


def is_slope(model: nn.Module) -> set[int]:
    """The ``id`` of every learned activation parameter in ``model``: the registry's ``learned``
    of each actlab activation (PReLU's slopes), and torch.nn.PReLU's weight."""
    found: set[int] = set()
    for m in model.modules():
        if isinstance(m, Activation):
            found.update(id(getattr(m, p)) for p in registry.entry(m.name).learned)
        elif isinstance(m, nn.PReLU):
            found.add(id(m.weight))
    return found


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Parameter groups for a ``torch.optim`` optimizer.

    PReLU slopes get ``weight_decay=0``: decay pulls a toward 0, i.e. back to ReLU, which He et
    al. avoid. Every other trainable parameter gets ``weight_decay``. Empty groups are left
    out; each group carries a ``"name"`` ("decay" or "prelu_slopes") for logging.

    Example::

        opt = torch.optim.SGD(actlab.param_groups(model, 5e-4), lr=0.1, momentum=0.9)
    """
    if not weight_decay >= 0:
        raise ValueError(f"param_groups: invalid weight_decay={weight_decay!r}; valid: a number >= 0")
    slopes = is_slope(model)
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in slopes]
    prelu = [p for p in model.parameters() if p.requires_grad and id(p) in slopes]
    groups = [{"name": "decay", "params": rest, "weight_decay": float(weight_decay)},
              {"name": "prelu_slopes", "params": prelu, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]
