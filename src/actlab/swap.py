"""Put an actlab activation in every activation slot of an existing torch model."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from . import registry
from .factory import layer
from .layers import Activation

__all__ = ["swap", "ACTIVATION_TYPES", "CHANNELWISE"]

#: torch.nn's elementwise activation modules that :func:`swap` replaces (plus actlab's own).
ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.Sigmoid, nn.Tanh, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.CELU, nn.SELU,
    nn.GELU, nn.SiLU, nn.Mish, nn.Hardtanh, nn.Hardsigmoid, nn.Hardswish, nn.Softplus, nn.Softsign,
    nn.LogSigmoid, nn.Tanhshrink, nn.Softshrink, nn.Hardshrink, nn.Threshold,
)

#: The value of an entry's ``per_channel`` hyper-parameter (PReLU's ``num_parameters``) that asks
#: for one learned value per channel, sized to each layer.
CHANNELWISE = "channel"


def _is_activation(m: nn.Module) -> bool:
    return isinstance(m, (Activation, *ACTIVATION_TYPES))


def _channels_before(model: nn.Module) -> dict[str, tuple[int, int] | None]:
    """For each activation module (by qualified name): (channels, channel_axis) of the nearest
    earlier layer with a known output width, in registration order, or None."""
    found: dict[str, tuple[int, int] | None] = {}
    last: tuple[int, int] | None = None
    for name, m in model.named_modules():
        if _is_activation(m):
            found[name] = last
        elif isinstance(m, nn.modules.conv._ConvNd):
            last = (m.out_channels, 1)
        elif isinstance(m, nn.modules.batchnorm._NormBase):
            last = (m.num_features, 1)
        elif isinstance(m, nn.GroupNorm):
            last = (m.num_channels, 1)
        elif isinstance(m, nn.Linear):
            last = (m.out_features, -1)
        elif isinstance(m, nn.LayerNorm):
            last = (m.normalized_shape[-1], -1)
    return found


def _channels_traced(model: nn.Module, targets: list[str], example: Any) -> dict[str, tuple[int, int]]:
    """Channel counts measured by running ``example`` through the model: the input's axis 1."""
    seen: dict[str, tuple[int, int]] = {}
    modules = dict(model.named_modules())

    def record(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            x = inputs[0]
            seen.setdefault(name, (x.shape[1] if x.dim() > 1 else 1, 1))
        return hook

    hooks = [modules[n].register_forward_hook(record(n)) for n in targets]
    try:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            model(*example) if isinstance(example, tuple) else model(example)
        model.train(was_training)
    finally:
        for h in hooks:
            h.remove()
    return seen


def swap(model: nn.Module, name: str, *, example_input: Any = None, impl: str = "auto", **hparams: Any) -> nn.Module:
    """Replace every activation module of ``model`` by actlab's ``name``, in place; return ``model``.

    Replaced are torch.nn's elementwise activations (:data:`ACTIVATION_TYPES`) and actlab's own,
    wherever they sit (attributes, ``Sequential``, ``ModuleList``/``ModuleDict``). Activations
    called as functions inside ``forward`` (``F.relu(x)``) are not modules and cannot be swapped.

    ``num_parameters="channel"`` makes each PReLU channel-wise, sized to its layer: measured on
    ``example_input`` when given (the size of the activation's input on axis 1), else taken from
    the nearest earlier Conv/BatchNorm/GroupNorm (channel_axis 1) or Linear/LayerNorm
    (channel_axis −1). Where neither can tell, ``ValueError`` names the module.

    Example::

        model = torchvision_like_resnet()
        actlab.swap(model, "prelu", num_parameters="channel")
        actlab.swap(model, "rrelu", form="divisor")
    """
    entry = registry.entry(name)
    canonical, per_channel = entry.name, entry.per_channel
    channelwise = CHANNELWISE in [v for k, v in hparams.items()]
    if channelwise and (per_channel is None or hparams.get(per_channel) != CHANNELWISE):
        having = [e.name for e in registry.entries() if e.per_channel]
        raise ValueError(f"{canonical}: {CHANNELWISE!r} is for a per-channel hyper-parameter; valid: "
                         f"{', '.join(f'{e}.{registry.entry(e).per_channel}' for e in having)}")
    targets = [n for n, m in model.named_modules() if n and _is_activation(m)]
    if not targets:
        raise ValueError("swap: the model has no activation modules (functional calls such as "
                         "F.relu in forward cannot be swapped); valid: models built with nn.ReLU etc.")
    widths: dict[str, Any] = {}
    if channelwise:
        widths = _channels_traced(model, targets, example_input) if example_input is not None \
            else _channels_before(model)
    like = next((p for p in model.parameters() if p.is_floating_point()), None)
    for qualified in targets:
        hp = dict(hparams)
        if channelwise:
            width = widths.get(qualified)
            if width is None:
                raise ValueError(f"swap: cannot infer the channel count of {qualified!r} (no Conv, Linear "
                                 f"or norm layer before it); valid: pass example_input=..., or an integer "
                                 f"num_parameters")
            hp[per_channel], axis = width
            if "channel_axis" in {h.name for h in entry.hparams}:
                hp.setdefault("channel_axis", axis)
        parent_name, _, child = qualified.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        new = layer(canonical, impl=impl, **hp)
        if like is not None:  # learned slopes live on the model's device, in its dtype
            new.to(device=like.device, dtype=like.dtype)
        setattr(parent, child, new)
    return model
