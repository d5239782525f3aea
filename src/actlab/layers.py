"""PyTorch modules for the seven activations, drop-in for ``torch.nn``.

Names, argument names and defaults are PyTorch's (``negative_slope=0.01``, ``num_parameters=1``,
``init=0.25``, ``lower=1/8``, ``upper=1/3``, ``alpha=1.0``, ``inplace``). Beyond them:

* :class:`PReLU` takes ``channel_axis`` (1 for NCHW, −1 for channels-last) and checks the
  channel count;
* :class:`RReLU` offers both published forms (``form="slope"`` as PyTorch, ``form="divisor"`` as
  Xu et al.) and is reproducible from ``seed`` or ``generator``;
* every module takes ``impl`` (``"auto"``, ``"plain"``, ``"fast"``; see
  :mod:`actlab.functional`), and the piecewise-linear ones ``lean`` (1 bit per element kept for
  backward on the fast path).

Hyper-parameters are checked against :mod:`actlab.registry`: a bad value raises ``ValueError``
naming it and the valid range. Each ``forward`` calls one function of :mod:`actlab.functional`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from . import functional as F

__all__ = ["Activation", "Sigmoid", "Tanh", "ReLU", "LeakyReLU", "PReLU", "RReLU", "ELU"]


def _check(name: str, **hparams: Any) -> dict[str, Any]:
    from .registry import resolve  # the registry names these classes, so import it lazily

    return resolve(name, hparams)[1]


def _check_impl(name: str, impl: str) -> str:
    if impl not in F.IMPLS:
        raise ValueError(f"{name}: invalid impl={impl!r}; valid: {', '.join(F.IMPLS)}")
    return impl


class Activation(nn.Module):
    """Base of actlab's activation modules: the registry name and the implementation choice."""

    name: str = ""

    def __init__(self, *, impl: str = "auto") -> None:
        super().__init__()
        self.impl = _check_impl(self.name, impl)

    def hparams(self) -> dict[str, Any]:
        """The registry hyper-parameters of this module (for :func:`actlab.swap`, reports)."""
        return {}


class Sigmoid(Activation):
    r"""Logistic sigmoid.

    .. math:: \sigma(x) = \frac{1}{1 + e^{-x}}, \qquad \sigma'(x) = \sigma(x)(1 - \sigma(x))

    Output in (0, 1), not zero-centred; saturates on both sides (|x| > 5: σ' < 0.007).

    Shape: any; output has the input's shape and dtype.

    Example::

        >>> Sigmoid()(torch.zeros(2))
        tensor([0.5000, 0.5000])
    """

    name = "sigmoid"

    def forward(self, x: Tensor) -> Tensor:
        return F.sigmoid(x, impl=self.impl)


class Tanh(Activation):
    r"""Hyperbolic tangent.

    .. math:: \tanh(x) = 2\sigma(2x) - 1, \qquad \tanh'(x) = 1 - \tanh^2(x)

    Output in (−1, 1), zero-centred; saturates on both sides.

    Shape: any; output has the input's shape and dtype.
    """

    name = "tanh"

    def forward(self, x: Tensor) -> Tensor:
        return F.tanh(x, impl=self.impl)


class ReLU(Activation):
    r"""Rectified linear unit (Nair & Hinton 2010).

    .. math:: f(x) = \max(0, x), \qquad f'(x) = \begin{cases} 1 & x > 0 \\ 0 & x \le 0 \end{cases}

    No saturation for x > 0; the dead zone: f' = 0 for x < 0.

    Args:
        inplace: overwrite the input (as ``torch.nn.ReLU``). Default: False.
        lean: keep 1 bit per element for backward on the fast path. Default: False.

    Shape: any; output has the input's shape and dtype.
    """

    name = "relu"

    def __init__(self, inplace: bool = False, *, impl: str = "auto", lean: bool = False) -> None:
        super().__init__(impl=impl)
        self.inplace, self.lean = inplace, lean

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x, inplace=self.inplace, impl=self.impl, lean=self.lean)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Activation):
    r"""Leaky ReLU (Maas et al. 2013).

    .. math:: f(x) = \begin{cases} x & x > 0 \\ a x & x \le 0 \end{cases}, \qquad
              f'(x) = \begin{cases} 1 & x > 0 \\ a & x \le 0 \end{cases}

    Args:
        negative_slope: a, in [0, 1]. Default: 0.01 (the chapter: 0.01 or 0.001).
        inplace: overwrite the input. Default: False.
        lean: keep 1 bit per element for backward on the fast path. Default: False.

    Example::

        >>> LeakyReLU(0.1)(torch.tensor([-1.0, 2.0]))
        tensor([-0.1000,  2.0000])
    """

    name = "leaky_relu"

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False, *, impl: str = "auto",
                 lean: bool = False) -> None:
        super().__init__(impl=impl)
        self.negative_slope = _check(self.name, negative_slope=negative_slope)["negative_slope"]
        self.inplace, self.lean = inplace, lean

    def hparams(self) -> dict[str, Any]:
        return {"negative_slope": self.negative_slope}

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope, inplace=self.inplace, impl=self.impl, lean=self.lean)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class PReLU(Activation):
    r"""Parametric ReLU (He et al. 2015): a leaky ReLU whose slope a is learned.

    .. math:: f(x) = \begin{cases} x & x > 0 \\ a x & x \le 0 \end{cases}, \qquad
              \frac{\partial f}{\partial a} = \begin{cases} 0 & x > 0 \\ x & x \le 0 \end{cases}

    Args:
        num_parameters: 1 (one a shared by the layer) or C (one a per channel). Default: 1.
        init: initial a. Default: 0.25 (He et al.).
        channel_axis: the axis holding the C channels: 1 for (N, C, ...), −1 for channels-last.
            Default: 1.
        lean: keep 1 bit per element for backward on the fast path. Default: False.

    He et al. train a without weight decay (decay pulls a to 0, i.e. back to ReLU):
    :func:`actlab.param_groups` builds optimizer groups that do so.

    Shape: any with at least 2 dims when C > 1, and size C on ``channel_axis``.
    Attributes: ``weight``, shape (num_parameters,).
    """

    name = "prelu"

    def __init__(self, num_parameters: int = 1, init: float = 0.25, device: Any = None, dtype: Any = None, *,
                 channel_axis: int = 1, impl: str = "auto", lean: bool = False) -> None:
        super().__init__(impl=impl)
        hp = _check(self.name, num_parameters=num_parameters, init=init, channel_axis=channel_axis)
        self.num_parameters, self.init, self.channel_axis = hp["num_parameters"], hp["init"], hp["channel_axis"]
        self.lean = lean
        self.weight = nn.Parameter(torch.empty(self.num_parameters, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.constant_(self.weight, self.init)

    def hparams(self) -> dict[str, Any]:
        return {"num_parameters": self.num_parameters, "init": self.init, "channel_axis": self.channel_axis}

    def forward(self, x: Tensor) -> Tensor:
        return F.prelu(x, self.weight, channel_axis=self.channel_axis, impl=self.impl, lean=self.lean)

    def extra_repr(self) -> str:
        axis = f", channel_axis={self.channel_axis}" if self.channel_axis != 1 else ""
        return f"num_parameters={self.num_parameters}{axis}"


class RReLU(Activation):
    r"""Randomized leaky ReLU (Xu et al. 2015), in both published parametrisations.

    ``form="slope"`` (PyTorch's; default): for x ≤ 0, y = a·x with a ~ U(lower, upper) drawn per
    element in training; in eval y = x·(lower + upper)/2. Defaults lower = 1/8, upper = 1/3.

    ``form="divisor"`` (Xu et al.'s): for x ≤ 0, y = x / a with a ~ U(lower, upper) in training
    and y = x / ((lower + upper)/2) in eval. Defaults lower = 3, upper = 8 (the paper's).

    .. math:: f'(x) = 1 \text{ for } x > 0, \text{ else the slope used in the forward}

    Args:
        lower, upper: the range of a (see above). lower ≤ upper.
        form: ``"slope"`` or ``"divisor"``.
        seed: makes the training noise reproducible (a private generator seeded with it).
        generator: a ``torch.Generator`` to draw each step's seed from (instead of ``seed``).
        inplace, lean: as :class:`LeakyReLU`.

    Each training forward draws one 63-bit step seed from the generator (or, with neither
    given, from the global RNG, so ``torch.manual_seed`` makes runs reproducible); the noise is
    a function of that seed, so the fast path regenerates it in backward instead of storing it.
    """

    name = "rrelu"

    def __init__(self, lower: float | None = None, upper: float | None = None, inplace: bool = False, *,
                 form: str = "slope", seed: int | None = None, generator: torch.Generator | None = None,
                 impl: str = "auto", lean: bool = False) -> None:
        super().__init__(impl=impl)
        hp = _check(self.name, lower=lower, upper=upper, form=form)
        self.lower, self.upper, self.form = hp["lower"], hp["upper"], hp["form"]
        self.inplace, self.lean, self.seed = inplace, lean, seed
        if generator is None and seed is not None:
            generator = torch.Generator().manual_seed(int(seed))
        self.generator = generator

    @property
    def test_slope(self) -> float:
        mean = (self.lower + self.upper) / 2
        return mean if self.form == "slope" else 1 / mean

    def hparams(self) -> dict[str, Any]:
        return {"lower": self.lower, "upper": self.upper, "form": self.form}

    def forward(self, x: Tensor) -> Tensor:
        seed = F.rrelu_step_seed(self.generator, x) if self.training else None
        return F.rrelu(x, self.lower, self.upper, self.training, form=self.form, seed=seed,
                       inplace=self.inplace, impl=self.impl, lean=self.lean)

    def extra_repr(self) -> str:
        return f"lower={self.lower:g}, upper={self.upper:g}, form={self.form!r}" + (
            ", inplace=True" if self.inplace else "")


class ELU(Activation):
    r"""Exponential linear unit (Clevert et al. 2016).

    .. math:: f(x) = \begin{cases} x & x > 0 \\ \alpha (e^x - 1) & x \le 0 \end{cases}, \qquad
              f'(x) = \begin{cases} 1 & x > 0 \\ \alpha e^x = f(x) + \alpha & x \le 0 \end{cases}

    No dead zone; saturates to −α on the left.

    Args:
        alpha: α ≥ 0. Default: 1.0.
        inplace: overwrite the input. Default: False.
    """

    name = "elu"

    def __init__(self, alpha: float = 1.0, inplace: bool = False, *, impl: str = "auto") -> None:
        super().__init__(impl=impl)
        self.alpha = _check(self.name, alpha=alpha)["alpha"]
        self.inplace = inplace

    def hparams(self) -> dict[str, Any]:
        return {"alpha": self.alpha}

    def forward(self, x: Tensor) -> Tensor:
        return F.elu(x, self.alpha, inplace=self.inplace, impl=self.impl)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")
