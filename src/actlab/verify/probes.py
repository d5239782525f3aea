"""Measurements of a trained model that the lab's monitors do not take, for ``actlab verify``.

:func:`measure` is an ``after`` probe for :func:`actlab.lab.train.run`: called once with the
trained model, it walks the model's layers in order (every lab model is a flat
:class:`~actlab.lab.models.Net`) over the **whole training set** in eval mode and returns, per
activation layer (named as :func:`actlab.lab.models.activation_layers` names them):

* ``mean``: the mean of the activation's outputs over every example, unit and position;
* ``dead``: units (channels / features, axis 1) whose derivative f'(x) is exactly 0 for every
  input of the data set — they pass no gradient at all. f' is taken by autograd through the
  activation module itself (RReLU at its test slope), so the definition needs no formula;
* ``never_positive``: units whose input is never > 0 (for ReLU the same as dead; for the leaky
  forms such units still pass a·gradient);
* ``units``: the number of units;
* ``sign_agreement``: the zig-zag measure — for the weight W of the next layer (the first layer
  with a weight of two or more dimensions after the activation), the loss gradient on a
  minibatch; for each output unit j, the share of the components of ∂L/∂W[j] that carry the
  majority sign (zeros left out), averaged over the units and over :data:`ZIGZAG_BATCHES`
  minibatches of :data:`ZIGZAG_BATCH` training examples (rows whose gradient is all zero, i.e.
  dead units downstream, are left out). When the activation's outputs are all
  positive (sigmoid), every example's ∂L/∂W[j] = g_j · a has one sign, and a minibatch's sum
  leans to one sign too: SGD can only move all of W[j]'s components up or down together.

And for the whole model: ``train_error`` (eval mode, whole training set — the train–test gap
uses it, not the running training-mode error) and ``test_error``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..lab import models, train

__all__ = ["measure", "ZIGZAG_BATCHES", "ZIGZAG_BATCH", "BATCH"]

ZIGZAG_BATCHES = 4
ZIGZAG_BATCH = 64
BATCH = 512


def _layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"verify probes need a flat lab Net (nn.Sequential), got {type(model).__name__}")
    return list(model.named_children())


def _act_name(child: str) -> str | None:
    s = models.ACT_SUFFIX
    return child[: -len(s)] if child.endswith(s) and len(child) > len(s) else None


def _derivative(module: nn.Module, x: Tensor) -> Tensor:
    """f'(x) elementwise, by autograd through the (elementwise) activation module."""
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(module(xg).sum(), xg)
    return g


def _unit_any(mask: Tensor) -> Tensor:
    """Per unit (axis 1): whether ``mask`` is true anywhere in the batch and positions."""
    return mask.transpose(0, 1).reshape(mask.shape[1], -1).any(1)


@torch.no_grad()
def _activations(model: nn.Module, x_all: Tensor, device: torch.device) -> dict[str, dict[str, Any]]:
    stats: dict[str, dict[str, Any]] = {}
    for i in range(0, len(x_all), BATCH):
        x = x_all[i:i + BATCH].to(device)
        for child, layer in _layers(model):
            name = _act_name(child)
            if name is None:
                x = layer(x)
                continue
            y = layer(x)
            s = stats.setdefault(name, {"sum": 0.0, "count": 0, "units": x.shape[1],
                                        "live": torch.zeros(x.shape[1], dtype=torch.bool, device=device),
                                        "positive": torch.zeros(x.shape[1], dtype=torch.bool, device=device)})
            s["sum"] += float(y.double().sum())
            s["count"] += y.numel()
            s["live"] |= _unit_any(_derivative(layer, x) != 0)
            s["positive"] |= _unit_any(x > 0)
            x = y
    return {name: {"mean": s["sum"] / max(1, s["count"]), "units": s["units"],
                   "dead": int((~s["live"]).sum()), "never_positive": int((~s["positive"]).sum())}
            for name, s in stats.items()}


def _next_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    """For each activation layer, the weight (ndim >= 2) of the first layer after it."""
    found: dict[str, nn.Parameter] = {}
    pending: list[str] = []
    for child, layer in _layers(model):
        name = _act_name(child)
        if name is not None:
            pending.append(name)
            continue
        w = getattr(layer, "weight", None)
        if isinstance(w, nn.Parameter) and w.dim() >= 2:
            for name in pending:
                found[name] = w
            pending = []
    return found


def _sign_agreement(grad: Tensor) -> float:
    """Mean over the rows (output units) with a non-zero gradient of the majority sign's share."""
    rows = grad.reshape(grad.shape[0], -1)
    pos, neg = (rows > 0).sum(1), (rows < 0).sum(1)
    nonzero = pos + neg
    live = nonzero > 0  # a row of zeros (a dead unit downstream) has no sign to agree on
    if not bool(live.any()):
        return float("nan")
    return float((torch.maximum(pos, neg)[live] / nonzero[live]).mean())


def _zigzag(model: nn.Module, x_all: Tensor, y_all: Tensor, device: torch.device) -> dict[str, float]:
    weights = _next_weights(model)
    sums = {name: 0.0 for name in weights}
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(len(y_all), generator=gen)
    batches = 0
    for b in range(ZIGZAG_BATCHES):
        idx = order[b * ZIGZAG_BATCH:(b + 1) * ZIGZAG_BATCH]
        if len(idx) == 0:
            break
        model.zero_grad(set_to_none=True)
        with torch.enable_grad():
            loss = nn.functional.cross_entropy(model(x_all[idx].to(device)), y_all[idx].to(device))
            grads = torch.autograd.grad(loss, list(weights.values()), allow_unused=True)
        for name, g in zip(weights, grads):
            sums[name] += _sign_agreement(g) if g is not None else float("nan")
        batches += 1
    return {name: s / max(1, batches) for name, s in sums.items()}


def measure(model: nn.Module, dataset: Any, device: torch.device) -> dict[str, Any]:
    """The probes of the module docstring, as JSON data (see there for the definitions)."""
    was_training = model.training
    model.eval()
    try:
        layers = _activations(model, dataset.x_train, device)
        for name, agreement in _zigzag(model, dataset.x_train, dataset.y_train, device).items():
            layers[name]["sign_agreement"] = agreement
        _, train_error = train.evaluate(model, dataset.x_train, dataset.y_train, device=device)
        _, test_error = train.evaluate(model, dataset.x_test, dataset.y_test, device=device)
    finally:
        model.train(was_training)
    order = [name for name, _ in models.activation_layers(model)]
    return {"layers": [{"layer": name, **layers[name]} for name in order if name in layers],
            "train_error": train_error, "test_error": test_error}
