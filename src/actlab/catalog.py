"""The built-in activations as registry entries: the chapter's seven, then GELU, SiLU, SELU, Mish.

Importing this module registers them (:func:`actlab.registry.register`); the package imports
it, so ``import actlab`` (or any ``actlab.*`` module) finds the table full. Each entry joins a
reference class of :mod:`actlab.reference`, a layer class of :mod:`actlab.layers` and the
``torch.nn`` class the layer equals, with the hyper-parameters (their defaults written here
once) and what the library asks of the activation (family, per-channel parameter,
stochasticity, test slope).
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from . import layers, reference
from .registry import MODERN, Entry, HParam, register

__all__ = ["CHAPTER_ENTRIES", "MODERN_ENTRIES"]


def _rrelu_finish(hp: dict[str, Any]) -> dict[str, Any]:
    # The two published parametrisations take different ranges, so their defaults differ:
    # slope form (PyTorch): a ~ U(1/8, 1/3); divisor form (Xu et al. 2015): y = x/a, a ~ U(3, 8).
    if hp["form"] == "slope":
        lo = 1 / 8 if hp["lower"] is None else hp["lower"]
        hi = 1 / 3 if hp["upper"] is None else hp["upper"]
        lo = HParam("lower", None, "", low=0.0, high=1.0).check("rrelu", lo)
        hi = HParam("upper", None, "", low=0.0, high=1.0).check("rrelu", hi)
    else:
        lo = 3.0 if hp["lower"] is None else hp["lower"]
        hi = 8.0 if hp["upper"] is None else hp["upper"]
        lo = HParam("lower", None, "", low=1.0).check("rrelu", lo)
        hi = HParam("upper", None, "", low=1.0).check("rrelu", hi)
    if lo > hi:
        raise ValueError(f"rrelu: lower={lo:g} > upper={hi:g}; valid: lower <= upper")
    return {**hp, "lower": lo, "upper": hi}


_RRELU_RULE = "float in [0, 1] (form='slope') or [1, inf) (form='divisor'), lower <= upper"
_SLOPE = HParam("negative_slope", 0.01, "slope a for x < 0 (the chapter: 0.01 or 0.001)", low=0.0, high=1.0)

#: The seven activations of the chapter, in its order.
CHAPTER_ENTRIES: tuple[Entry, ...] = (
    Entry(
        name="sigmoid",
        title="Sigmoid",
        formula="σ(x) = 1 / (1 + exp(−x))",
        derivative="σ'(x) = σ(x)(1 − σ(x))",
        paper="logistic function (chapter eq. 8.1)",
        aliases=("logistic",),
        reference=reference.Sigmoid,
        layer=layers.Sigmoid,
        torch_twin=nn.Sigmoid,
    ),
    Entry(
        name="tanh",
        title="tanh",
        formula="tanh(x) = 2σ(2x) − 1",
        derivative="tanh'(x) = 1 − tanh²(x)",
        paper="hyperbolic tangent (chapter eq. 8.2)",
        reference=reference.Tanh,
        layer=layers.Tanh,
        torch_twin=nn.Tanh,
    ),
    Entry(
        name="relu",
        title="ReLU",
        formula="max(0, x)",
        derivative="1 if x > 0, else 0 (so relu'(0) = 0)",
        paper="Nair & Hinton, ICML 2010",
        aliases=("rectifier",),
        family="rectifier",
        reference=reference.ReLU,
        layer=layers.ReLU,
        torch_twin=nn.ReLU,
    ),
    Entry(
        name="leaky_relu",
        title="Leaky ReLU",
        formula="x if x > 0, else a·x",
        derivative="1 if x > 0, else a (so f'(0) = a)",
        paper="Maas, Hannun & Ng, ICML 2013",
        hparams=(_SLOPE,),
        aliases=("leaky", "lrelu", "leakyrelu"),
        family="rectifier",
        reference=reference.LeakyReLU,
        layer=layers.LeakyReLU,
        torch_twin=nn.LeakyReLU,
    ),
    Entry(
        name="prelu",
        title="Parametric ReLU",
        formula="x if x > 0, else a·x, a learned (one per layer or per channel)",
        derivative="∂f/∂x = 1 if x > 0, else a; ∂f/∂a = 0 if x > 0, else x",
        paper="He, Zhang, Ren & Sun, ICCV 2015",
        hparams=(
            HParam("num_parameters", 1, "1: one a shared by the layer; C: one a per channel", kind=int, low=1),
            HParam("init", 0.25, "initial value of a", low=-math.inf),
            HParam("channel_axis", 1, "axis of the channels (1 for NCHW, -1 for channels-last)", kind=int),
        ),
        aliases=("parametric_relu",),
        learned=("weight",),
        per_channel="num_parameters",
        family="rectifier",
        reference=reference.PReLU,
        layer=layers.PReLU,
        torch_twin=nn.PReLU,
    ),
    Entry(
        name="rrelu",
        title="Randomized ReLU",
        formula="slope form: x if x ≥ 0, else a·x, a ~ U(lower, upper); divisor form: x/a",
        derivative="1 if x > 0, else the slope drawn (training) or its test value (eval)",
        paper="Xu, Wang, Chen & Li, arXiv:1505.00853, 2015",
        hparams=(
            HParam("lower", None, "lower bound of a (default 1/8 slope form, 3 divisor form)", low=0.0,
                   rule=_RRELU_RULE),
            HParam("upper", None, "upper bound of a (default 1/3 slope form, 8 divisor form)", low=0.0,
                   rule=_RRELU_RULE),
            HParam("form", "slope", "'slope': a is the slope (PyTorch); 'divisor': y = x/a (Xu et al.)",
                   kind=str, choices=("slope", "divisor")),
        ),
        aliases=("randomized_relu",),
        finish=_rrelu_finish,
        family="rectifier",
        stochastic=True,
        test_slope=lambda hp: reference.rrelu_test_slope(hp["lower"], hp["upper"], hp["form"]),
        reference=reference.RReLU,
        layer=layers.RReLU,
        torch_twin=nn.RReLU,
    ),
    Entry(
        name="elu",
        title="ELU",
        formula="x if x > 0, else α(exp(x) − 1)",
        derivative="1 if x > 0, else α·exp(x) = f(x) + α (so f'(0) = α)",
        paper="Clevert, Unterthiner & Hochreiter, ICLR 2016",
        hparams=(HParam("alpha", 1.0, "α, the value f tends to for x → −∞ is −α", low=0.0),),
        reference=reference.ELU,
        layer=layers.ELU,
        torch_twin=nn.ELU,
    ),
)

#: Today's defaults beside the chapter's seven: smooth, no fast kernels (torch's own operations).
MODERN_ENTRIES: tuple[Entry, ...] = (
    Entry(
        name="gelu",
        title="GELU",
        formula="x·Φ(x), Φ the standard normal CDF (tanh form: x/2·(1 + tanh(√(2/π)(x + 0.044715x³))))",
        derivative="Φ(x) + x·φ(x), φ the standard normal density",
        paper="Hendrycks & Gimpel, arXiv:1606.08415, 2016",
        hparams=(HParam("approximate", "none", "'none': exact, with erf; 'tanh': the tanh approximation",
                        kind=str, choices=("none", "tanh")),),
        group=MODERN,
        reference=reference.GELU,
        layer=layers.GELU,
        torch_twin=nn.GELU,
    ),
    Entry(
        name="silu",
        title="SiLU (Swish)",
        formula="x·σ(x)",
        derivative="σ(x)(1 + x(1 − σ(x)))",
        paper="Elfwing, Uchibe & Doya, Neural Networks 2018; Ramachandran, Zoph & Le, arXiv:1710.05941",
        aliases=("swish",),
        group=MODERN,
        reference=reference.SiLU,
        layer=layers.SiLU,
        torch_twin=nn.SiLU,
    ),
    Entry(
        name="selu",
        title="SELU",
        formula="λx if x > 0, else λα(exp(x) − 1); λ ≈ 1.0507, α ≈ 1.6733",
        derivative="λ if x > 0, else λα·exp(x) (so f'(0) = λα)",
        paper="Klambauer, Unterthiner, Mayr & Hochreiter, NeurIPS 2017",
        group=MODERN,
        reference=reference.SELU,
        layer=layers.SELU,
        torch_twin=nn.SELU,
    ),
    Entry(
        name="mish",
        title="Mish",
        formula="x·tanh(softplus(x)), softplus(x) = ln(1 + exp(x))",
        derivative="tanh(s) + x(1 − tanh²(s))σ(x), s = softplus(x)",
        paper="Misra, BMVC 2020 (arXiv:1908.08681)",
        group=MODERN,
        reference=reference.Mish,
        layer=layers.Mish,
        torch_twin=nn.Mish,
    ),
)

for _e in (*CHAPTER_ENTRIES, *MODERN_ENTRIES):
    register(_e)
