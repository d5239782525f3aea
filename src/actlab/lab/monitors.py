"""What happens inside the network while it trains: dead and saturated units, gradient norms and
PReLU slopes, per activation layer and per epoch.

Definitions (the reports print them too):

* **unit**: a channel of a feature map (axis 1 of N×C×H×W or N×C×L) or a feature of a
  fully-connected layer (axis 1 of N×D). Statistics pool a unit's inputs over the batch and the
  spatial positions.
* **dead** (the registry's rectifier family only: relu, leaky_relu, prelu, rrelu): a unit whose
  input was never > 0 over all the training batches of the epoch. For ReLU such a unit passes no
  gradient at all; for the leaky forms it still passes a·gradient, so there "dead" reads "never
  positive". The smooth activations have no such zone: reported as none (NULL).
* **saturated**: a unit at least :data:`~actlab.reference.SATURATED_UNIT_FRACTION` (99%) of
  whose inputs in the epoch lie in the activation's saturation region, |f'(x)| <
  :data:`~actlab.reference.SATURATION_RATIO` (2.5%) · max|f'| — the definition the property
  table uses (:func:`actlab.reference.saturated`). f' and max|f'| are the layer's own
  (:meth:`actlab.layers.Activation.derivative`, ``max_derivative``): for sigmoid that is
  |x| > 5.07, for tanh |x| > 2.54, for ELU (α = 1) x < −3.69, for ReLU x ≤ 0 (so a saturated
  ReLU unit is one that is almost dead), for leaky forms x ≤ 0 when a < 0.025 (the default
  leaky ReLU, a = 0.01, included). RReLU is taken at its test slope.
* **gradient norm**: the L2 norm of the loss gradient with respect to the weight of the layer
  (convolution or linear) that the activation follows, averaged over the epoch's steps. The
  layer is found by tracing one forward pass: the last module with a weight of two or more
  dimensions to run before the activation.
* **PReLU slopes**: the learned a of the layer at the end of the epoch, per channel and their
  mean.

Cost: per training batch and activation layer, a few elementwise operations and one reduction
per statistic, done under ``no_grad`` on detached tensors; :attr:`Monitor.seconds` counts the
time spent here so that training time can leave it out.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor, nn

from .. import registry
from ..reference import SATURATED_UNIT_FRACTION, saturated

__all__ = ["Monitor"]


def _weight_before(model: nn.Module, acts: list[nn.Module], example: Tensor) -> list[nn.Parameter | None]:
    """For each activation, the weight (ndim >= 2) of the last layer to run before it."""
    order: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda m, i, o: order.append(m))
             for m in model.modules() if not list(m.children())]
    was_training = model.training
    try:
        model.eval()  # no dropout draw, no batch-norm update, no RReLU noise: nothing changes
        with torch.no_grad():
            model(example)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    found: list[nn.Parameter | None] = []
    for act in acts:
        weight = None
        for m in order[: next((i for i, m in enumerate(order) if m is act), 0)]:
            w = getattr(m, "weight", None)
            if isinstance(w, nn.Parameter) and w.dim() >= 2:
                weight = w
        found.append(weight)
    return found


class _Layer:
    """Running statistics of one activation layer over one epoch."""

    def __init__(self, index: int, name: str, module: nn.Module, weight: nn.Parameter | None) -> None:
        self.index, self.name, self.module, self.weight = index, name, module, weight
        self.entry = registry.entry(module.name)
        self.rectifier = self.entry.family == "rectifier"
        self.reset()

    def reset(self) -> None:
        self.positive: Tensor | None = None  # per unit: inputs > 0 this epoch
        self.low: Tensor | None = None  # per unit: inputs with small |f'| this epoch
        self.count = 0  # inputs per unit this epoch
        self.grad_sum: Tensor | None = None  # per layer: sum over steps of the gradient norm
        self.grad_steps = 0

    def observe(self, x: Tensor) -> None:
        """Add one batch of this layer's inputs (x: N×C×…, units on axis 1)."""
        dims = tuple(d for d in range(x.dim()) if d != 1)
        per_unit = x.numel() // x.shape[1]
        positive = (x > 0).sum(dims) if self.rectifier else None
        low = saturated(self.module.derivative(x), self.module.max_derivative(x)).sum(dims)
        if self.low is None:
            self.low = torch.zeros_like(low)
            self.positive = None if positive is None else torch.zeros_like(positive)
        self.low += low
        if positive is not None:
            self.positive += positive
        self.count += per_unit

    def row(self, epoch: int) -> dict[str, Any]:
        units = 0 if self.low is None else int(self.low.numel())
        slopes = None
        if self.entry.learned:  # PReLU's slopes: the learned values of the layer
            slopes = [float(v) for p in self.entry.learned for v in getattr(self.module, p).detach().cpu().flatten()]
        return {
            "epoch": epoch,
            "layer_index": self.index,
            "layer": self.name,
            "units": units,
            "dead": int((self.positive == 0).sum()) if self.positive is not None else None,
            "saturated": (int((self.low >= SATURATED_UNIT_FRACTION * self.count).sum())
                          if self.low is not None and self.count else None),
            "grad_norm": float(self.grad_sum) / self.grad_steps if self.grad_steps else None,
            "slope_mean": sum(slopes) / len(slopes) if slopes else None,
            "slopes": slopes,
        }


class Monitor:
    """Forward hooks on the activation layers of ``model`` plus gradient norms after backward.

    ``layers``: (name, module) in forward order, as :func:`actlab.lab.models.activation_layers`
    gives them; ``example``: one input batch, used once to find the layer each activation
    follows. Collects only while :attr:`active` (training batches), so evaluation passes do not
    count. Use::

        monitor = Monitor(model, models.activation_layers(model), example=x[:2])
        with monitor:                     # hooks on
            ... loss.backward(); monitor.after_backward(); ...
            rows = monitor.end_epoch(epoch)
    """

    def __init__(self, model: nn.Module, layers: list[tuple[str, nn.Module]], *, example: Tensor) -> None:
        weights = _weight_before(model, [m for _, m in layers], example)
        self.layers = [_Layer(i, name, m, w) for i, ((name, m), w) in enumerate(zip(layers, weights))]
        self.active = False
        self.seconds = 0.0  # time spent monitoring, to leave out of training time
        self._hooks: list[Any] = []

    def __enter__(self) -> Monitor:
        for layer in self.layers:
            self._hooks.append(layer.module.register_forward_hook(self._hook(layer)))
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks.clear()

    def _hook(self, layer: _Layer) -> Any:
        def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            if self.active:
                t0 = time.perf_counter()
                with torch.no_grad():
                    layer.observe(inputs[0])
                self.seconds += time.perf_counter() - t0

        return hook

    def after_backward(self) -> None:
        """Record the gradient norms of this step (call between backward and the optimizer step)."""
        t0 = time.perf_counter()
        with_grad = [layer for layer in self.layers if layer.weight is not None and layer.weight.grad is not None]
        if with_grad:
            with torch.no_grad():
                norms = torch._foreach_norm([layer.weight.grad for layer in with_grad])  # one call, as clip_grad_norm_
                for layer, norm in zip(with_grad, norms):
                    layer.grad_sum = norm if layer.grad_sum is None else layer.grad_sum + norm
                    layer.grad_steps += 1
        self.seconds += time.perf_counter() - t0

    def end_epoch(self, epoch: int) -> list[dict[str, Any]]:
        """One row per layer for ``epoch`` (see :mod:`actlab.lab.store`), then reset the counts."""
        rows = [layer.row(epoch) for layer in self.layers]
        for layer in self.layers:
            layer.reset()
        return rows
