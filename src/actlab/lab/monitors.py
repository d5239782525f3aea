"""What happens inside the network while it trains: dead and saturated units, gradient norms and
PReLU slopes, per activation layer and per epoch.

Definitions (the reports print them too):

* **unit**: a channel of a feature map (axis 1 of N×C×H×W or N×C×L) or a feature of a
  fully-connected layer (axis 1 of N×D). Statistics pool a unit's inputs over the batch and the
  spatial positions.
* **dead** (rectifier family only: relu, leaky_relu, prelu, rrelu): a unit whose input was never
  > 0 over all the training batches of the epoch. For ReLU such a unit passes no gradient at all;
  for the leaky forms it still passes a·gradient, so there "dead" reads "never positive".
  Sigmoid, tanh and ELU have no such zone: reported as none (NULL).
* **saturated**: a unit whose derivative is small, |f'(x)| < 0.01 · max|f'|, for at least 99% of
  its inputs in the epoch. f' is the activation's own derivative (the formulas of
  :mod:`actlab.reference`, evaluated in torch; :func:`derivative`): for sigmoid that is
  |x| > 5.99, for tanh |x| > 2.99, for ELU (α = 1) x < −4.6, for ReLU x ≤ 0 (so a saturated
  ReLU unit is one that is almost dead), for leaky forms only when a < 0.01. RReLU is taken at
  its test slope.
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

import math
import time
from typing import Any

import torch
from torch import Tensor, nn

from .. import functional as F

__all__ = ["Monitor", "derivative", "max_derivative", "RECTIFIERS", "SATURATION_FRACTION",
           "SATURATION_RATIO"]

RECTIFIERS = ("relu", "leaky_relu", "prelu", "rrelu")
SATURATION_RATIO = 0.01  # |f'| below this fraction of max|f'| counts as saturated
SATURATION_FRACTION = 0.99  # ... for at least this fraction of a unit's inputs


def _slope(module: nn.Module, x: Tensor) -> Tensor | float:
    """The left slope a of a rectifier, broadcast against x (PReLU: per channel)."""
    name = module.name
    if name == "relu":
        return 0.0
    if name == "leaky_relu":
        return float(module.negative_slope)
    if name == "rrelu":
        return float(module.test_slope)
    return F.prelu_slopes(x, module.weight.detach(), module.channel_axis).to(x.dtype)


def derivative(module: nn.Module, x: Tensor) -> Tensor:
    """f'(x) of an actlab activation module, elementwise (the left derivative at kinks)."""
    name = module.name
    if name == "sigmoid":
        s = torch.sigmoid(x)
        return s * (1 - s)
    if name == "tanh":
        t = torch.tanh(x)
        return 1 - t * t
    if name == "elu":
        return torch.where(x > 0, torch.ones_like(x), module.alpha * torch.exp(x.clamp(max=0)))
    if name in RECTIFIERS:
        a = _slope(module, x)
        return torch.where(x > 0, torch.ones_like(x), a if isinstance(a, Tensor) else torch.full_like(x, a))
    raise ValueError(f"monitors: no derivative for activation module {type(module).__name__}")


def max_derivative(module: nn.Module, x: Tensor) -> Tensor | float:
    """max over x of |f'(x)| (PReLU: per channel, broadcast against x)."""
    name = module.name
    if name == "sigmoid":
        return 0.25
    if name == "tanh":
        return 1.0
    if name == "elu":
        return max(1.0, float(module.alpha))
    a = _slope(module, x)
    return a.abs().clamp(min=1.0) if isinstance(a, Tensor) else max(1.0, abs(a))


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


def _region(module: nn.Module) -> tuple[str, float]:
    """The set {x : |f'(x)| < ratio · max|f'|} in closed form, where it has one.

    ``("nonpositive", 0)``: x ≤ 0 (a rectifier whose left slope is below the ratio);
    ``("never", 0)``: empty (a leaky form with a ≥ 0.01); ``("outside", t)``: |x| > t (sigmoid,
    tanh); ``("below", t)``: x < t (ELU); ``("slopes", 0)``: PReLU, decided per channel from the
    current slopes; ``("derivative", 0)``: no closed form, evaluate :func:`derivative`.
    The closed forms are checked against :func:`derivative` in the tests.
    """
    r, name = SATURATION_RATIO, module.name
    if name == "sigmoid":  # σ(1 − σ) < r/4  ⇔  σ < s or σ > 1 − s, s = (1 − √(1 − r))/2
        s = (1 - math.sqrt(1 - r)) / 2
        return "outside", math.log((1 - s) / s)
    if name == "tanh":  # 1 − tanh² < r  ⇔  |tanh x| > √(1 − r)
        return "outside", math.atanh(math.sqrt(1 - r))
    if name == "elu" and r < module.alpha < 1 / r:  # α·eˣ < r·max(1, α) on the left only
        return "below", math.log(r * max(1.0, module.alpha) / module.alpha)
    if name == "prelu":
        return "slopes", 0.0
    if name in ("relu", "leaky_relu", "rrelu"):
        a = abs(float(_slope(module, torch.zeros(1))))
        return ("nonpositive" if a < r * max(1.0, a) else "never"), 0.0
    return "derivative", 0.0


class _Layer:
    """Running statistics of one activation layer over one epoch."""

    def __init__(self, index: int, name: str, module: nn.Module, weight: nn.Parameter | None) -> None:
        self.index, self.name, self.module, self.weight = index, name, module, weight
        self.rectifier = module.name in RECTIFIERS
        self.region, self.threshold = _region(module)
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
        region = self.region
        if region == "nonpositive":
            low = per_unit - positive
        elif region == "never":
            low = torch.zeros(x.shape[1], dtype=torch.int64, device=x.device)
        elif region == "outside":
            low = (x.abs() > self.threshold).sum(dims)
        elif region == "below":
            low = (x < self.threshold).sum(dims)
        elif region == "slopes":
            a = self.module.weight.detach().abs()
            saturating = (a < SATURATION_RATIO * a.clamp(min=1.0)).expand(x.shape[1])
            low = torch.where(saturating, per_unit - positive, 0)
        else:
            low = (derivative(self.module, x).abs() < SATURATION_RATIO * max_derivative(self.module, x)).sum(dims)
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
        if self.module.name == "prelu":
            slopes = [float(v) for v in self.module.weight.detach().cpu().flatten()]
        return {
            "epoch": epoch,
            "layer_index": self.index,
            "layer": self.name,
            "units": units,
            "dead": int((self.positive == 0).sum()) if self.positive is not None else None,
            "saturated": (int((self.low >= SATURATION_FRACTION * self.count).sum())
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
