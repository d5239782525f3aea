"""PyTorch modules for the activations, drop-in for ``torch.nn``.

Names, argument names and defaults are PyTorch's (``negative_slope=0.01``, ``num_parameters=1``,
``init=0.25``, ``lower=1/8``, ``upper=1/3``, ``alpha=1.0``, ``approximate="none"``, ``inplace``);
a test holds each default equal to the registry's. Beyond them:

* :class:`PReLU` takes ``channel_axis`` (1 for NCHW, −1 for channels-last) and checks the
  channel count;
* :class:`RReLU` offers both published forms (``form="slope"`` as PyTorch, ``form="divisor"`` as
  Xu et al.) and is reproducible from ``seed`` or ``generator``;
* every module takes ``impl`` (``"auto"``, ``"plain"``, ``"fast"``; see
  :mod:`actlab.functional`), and the piecewise-linear ones ``lean`` (1 bit per element kept for
  backward on the fast path). GELU, SiLU, SELU and Mish have no fast kernels: they run torch's
  own operations, and ``impl="fast"`` is an error;
* every module has its derivative beside its forward: :meth:`Activation.derivative` (f'(x),
  elementwise, the left derivative at a kink, RReLU at its test slope) and
  :meth:`Activation.max_derivative` (max|f'|), which the lab's monitors use.

Hyper-parameters are checked against :mod:`actlab.registry`: a bad value raises ``ValueError``
naming it and the valid range. Each docstring follows one template, PyTorch's: summary,
``.. math::`` with f and f', ``Args:`` with defaults, ``Shape:``, ``Examples::``, the paper.

Why one file of ~580 lines: two thirds of it are those docstrings, each complete on its own as
PyTorch's are (``help(actlab.layers.GELU)`` shows everything); the code is ~10 lines a class.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as TF

from . import functional as F
from . import reference, registry

__all__ = ["Activation", "Sigmoid", "Tanh", "ReLU", "LeakyReLU", "PReLU", "RReLU", "ELU", "GELU", "SiLU", "SELU",
           "Mish"]

#: where :meth:`Activation.max_derivative` looks for max|f'| (the property table's grid)
_GRID = torch.arange(-1000, 1001, dtype=torch.float64) / 100


def _check(name: str, **hparams: Any) -> dict[str, Any]:
    return registry.resolve(name, hparams)[1]


class Activation(nn.Module):
    """Base of actlab's activation modules: the registry name, the implementation choice and
    the derivative beside the forward."""

    name: str = ""
    #: the implementations this module has; ``"fast"`` only where :mod:`actlab.fast` has kernels
    impls: tuple[str, ...] = F.IMPLS

    def __init__(self, *, impl: str = "auto") -> None:
        super().__init__()
        if impl not in self.impls:
            raise ValueError(f"{self.name}: invalid impl={impl!r}; valid: {', '.join(self.impls)}")
        self.impl = impl

    def derivative(self, x: Tensor) -> Tensor:
        """f'(x) elementwise, without autograd: the left derivative at a kink, the eval function
        (RReLU: its test slope)."""
        raise NotImplementedError(f"{type(self).__name__}.derivative")

    def max_derivative(self, x: Tensor) -> Tensor | float:
        """max|f'| over x (PReLU: per channel, shaped to broadcast against x).

        By default the maximum of :meth:`derivative` over x in [−10, 10], step 0.01: the
        activations here take it there (at 0, at a kink's right side, or near |x| = 2).
        """
        return float(self.derivative(_GRID.to(x.device)).abs().max())


class _PlainOnly(Activation):
    """An activation without fast kernels: torch's own operations on every path."""

    impls = ("auto", "plain")


class _PlainInplace(_PlainOnly):
    """A plain-only activation that takes torch.nn's ``inplace`` (SiLU, SELU, Mish)."""

    def __init__(self, inplace: bool = False, *, impl: str = "auto") -> None:
        super().__init__(impl=impl)
        self.inplace = inplace

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


def _rectifier_derivative(x: Tensor, a: Tensor | float) -> Tensor:
    """1 where x > 0, a elsewhere (the left derivative at 0)."""
    return torch.where(x > 0, torch.ones_like(x), torch.as_tensor(a, dtype=x.dtype, device=x.device))


class Sigmoid(Activation):
    r"""Logistic sigmoid, elementwise.

    Output in (0, 1), not zero-centred; saturates on both sides (|x| > 5: σ' < 0.007).

    .. math::
        \sigma(x) = \frac{1}{1 + e^{-x}}, \qquad \sigma'(x) = \sigma(x)\,(1 - \sigma(x))

    Args:
        impl: ``"auto"``, ``"plain"`` or ``"fast"`` (see :mod:`actlab.functional`). Default: ``"auto"``.

    Shape:
        - Input: :math:`(*)`, any number of dimensions.
        - Output: :math:`(*)`, the input's shape and dtype.

    Examples::

        >>> Sigmoid()(torch.zeros(2))
        tensor([0.5000, 0.5000])

    Paper: the logistic function (the chapter's eq. 8.1).
    """

    name = "sigmoid"

    def forward(self, x: Tensor) -> Tensor:
        return F.sigmoid(x, impl=self.impl)

    def derivative(self, x: Tensor) -> Tensor:
        s = torch.sigmoid(x)
        return s * (1 - s)


class Tanh(Activation):
    r"""Hyperbolic tangent, elementwise.

    Output in (−1, 1), zero-centred; saturates on both sides.

    .. math::
        \tanh(x) = 2\sigma(2x) - 1, \qquad \tanh'(x) = 1 - \tanh^2(x)

    Args:
        impl: ``"auto"``, ``"plain"`` or ``"fast"``. Default: ``"auto"``.

    Shape:
        - Input: :math:`(*)`, any number of dimensions.
        - Output: :math:`(*)`, the input's shape and dtype.

    Examples::

        >>> Tanh()(torch.tensor([0.0, 1.0]))
        tensor([0.0000, 0.7616])

    Paper: the hyperbolic tangent (the chapter's eq. 8.2).
    """

    name = "tanh"

    def forward(self, x: Tensor) -> Tensor:
        return F.tanh(x, impl=self.impl)

    def derivative(self, x: Tensor) -> Tensor:
        t = torch.tanh(x)
        return 1 - t * t


class ReLU(Activation):
    r"""Rectified linear unit, elementwise.

    No saturation for x > 0; the dead zone: f' = 0 for x ≤ 0.

    .. math::
        f(x) = \max(0, x), \qquad f'(x) = \begin{cases} 1 & x > 0 \\ 0 & x \le 0 \end{cases}

    Args:
        inplace: overwrite the input (as ``torch.nn.ReLU``). Default: ``False``.
        impl: ``"auto"``, ``"plain"`` or ``"fast"``. Default: ``"auto"``.
        lean: keep 1 bit per element for backward on the fast path. Default: ``False``.

    Shape:
        - Input: :math:`(*)`, any number of dimensions.
        - Output: :math:`(*)`, the input's shape and dtype.

    Examples::

        >>> ReLU()(torch.tensor([-1.0, 0.0, 2.0]))
        tensor([0., 0., 2.])

    Paper: Nair & Hinton, "Rectified Linear Units Improve Restricted Boltzmann Machines", ICML 2010.
    """

    name = "relu"

    def __init__(self, inplace: bool = False, *, impl: str = "auto", lean: bool = False) -> None:
        super().__init__(impl=impl)
        self.inplace, self.lean = inplace, lean

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x, inplace=self.inplace, impl=self.impl, lean=self.lean)

    def derivative(self, x: Tensor) -> Tensor:
        return _rectifier_derivative(x, 0.0)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Activation):
    r"""Leaky ReLU, elementwise: a small slope a instead of ReLU's dead zone.

    .. math::
        f(x) = \begin{cases} x & x > 0 \\ a x & x \le 0 \end{cases}, \qquad
        f'(x) = \begin{cases} 1 & x > 0 \\ a & x \le 0 \end{cases}

    Args:
        negative_slope: a, in [0, 1]. Default: ``0.01`` (the chapter: 0.01 or 0.001).
        inplace: overwrite the input. Default: ``False``.
        impl: ``"auto"``, ``"plain"`` or ``"fast"``. Default: ``"auto"``.
        lean: keep 1 bit per element for backward on the fast path. Default: ``False``.

    Shape:
        - Input: :math:`(*)`, any number of dimensions.
        - Output: :math:`(*)`, the input's shape and dtype.

    Examples::

        >>> LeakyReLU(0.1)(torch.tensor([-1.0, 2.0]))
        tensor([-0.1000,  2.0000])

    Paper: Maas, Hannun & Ng, "Rectifier Nonlinearities Improve Neural Network Acoustic Models",
    ICML 2013.
    """

    name = "leaky_relu"

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False, *, impl: str = "auto",
                 lean: bool = False) -> None:
        super().__init__(impl=impl)
        self.negative_slope = _check(self.name, negative_slope=negative_slope)["negative_slope"]
        self.inplace, self.lean = inplace, lean

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope, inplace=self.inplace, impl=self.impl, lean=self.lean)

    def derivative(self, x: Tensor) -> Tensor:
        return _rectifier_derivative(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class PReLU(Activation):
    r"""Parametric ReLU: a leaky ReLU whose slope a is learned, one per layer or per channel.

    He et al. train a without weight decay (decay pulls a to 0, i.e. back to ReLU):
    :func:`actlab.param_groups` builds optimizer groups that do so.

    .. math::
        f(x) = \begin{cases} x & x > 0 \\ a x & x \le 0 \end{cases}, \qquad
        f'(x) = \begin{cases} 1 & x > 0 \\ a & x \le 0 \end{cases}, \qquad
        \frac{\partial f}{\partial a} = \begin{cases} 0 & x > 0 \\ x & x \le 0 \end{cases}

    Args:
        num_parameters: 1 (one a shared by the layer) or C (one a per channel). Default: ``1``.
        init: initial a. Default: ``0.25`` (He et al.).
        device, dtype: of ``weight``. Default: ``None`` (torch's defaults).
        channel_axis: the axis holding the C channels: 1 for (N, C, ...), −1 for channels-last.
            Default: ``1``.
        impl: ``"auto"``, ``"plain"`` or ``"fast"``. Default: ``"auto"``.
        lean: keep 1 bit per element for backward on the fast path. Default: ``False``.

    Shape:
        - Input: :math:`(*)`; with C > 1 at least 2 dimensions, size C on ``channel_axis``.
        - Output: :math:`(*)`, the input's shape and dtype.

    Attributes:
        weight: the learned a, shape (num_parameters,).

    Examples::

        >>> PReLU()(torch.tensor([-2.0, 3.0])).tolist()
        [-0.5, 3.0]

    Paper: He, Zhang, Ren & Sun, "Delving Deep into Rectifiers", ICCV 2015.
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

    def forward(self, x: Tensor) -> Tensor:
        return F.prelu(x, self.weight, channel_axis=self.channel_axis, impl=self.impl, lean=self.lean)

    def _slopes(self, x: Tensor) -> Tensor:
        return F.prelu_slopes(x, self.weight.detach(), self.channel_axis).to(x.dtype)

    def derivative(self, x: Tensor) -> Tensor:
        return _rectifier_derivative(x, self._slopes(x))

    def max_derivative(self, x: Tensor) -> Tensor:
        return self._slopes(x).abs().clamp(min=1.0)

    def extra_repr(self) -> str:
        axis = f", channel_axis={self.channel_axis}" if self.channel_axis != 1 else ""
        return f"num_parameters={self.num_parameters}{axis}"


class RReLU(Activation):
    r"""Randomized leaky ReLU, in both published parametrisations.

    ``form="slope"`` (PyTorch's; default): for x ≤ 0, y = a·x with a ~ U(lower, upper) drawn per
    element in training; in eval y = x·(lower + upper)/2. Defaults lower = 1/8, upper = 1/3.
    ``form="divisor"`` (Xu et al.'s): for x ≤ 0, y = x / a with a ~ U(lower, upper) in training
    and y = x / ((lower + upper)/2) in eval. Defaults lower = 3, upper = 8 (the paper's).

    Each training forward draws one 63-bit step seed from the generator (or, with neither
    given, from the global RNG, so ``torch.manual_seed`` makes runs reproducible); the noise is
    a function of that seed, so the fast path regenerates it in backward instead of storing it.

    .. math::
        f(x) = \begin{cases} x & x > 0 \\ a x & x \le 0 \end{cases}, \qquad
        f'(x) = \begin{cases} 1 & x > 0 \\ a & x \le 0 \end{cases},
        \quad a \text{ drawn (training) or the test slope (eval)}

    Args:
        lower: the lower bound of a. Default: ``None`` (1/8 in slope form, 3 in divisor form).
        upper: the upper bound of a, ≥ lower. Default: ``None`` (1/3 in slope form, 8 in divisor form).
        inplace: overwrite the input. Default: ``False``.
        form: ``"slope"`` or ``"divisor"``. Default: ``"slope"``.
        seed: makes the training noise reproducible (a private generator seeded with it). Default: ``None``.
        generator: a ``torch.Generator`` to draw each step's seed from (instead of ``seed``). Default: ``None``.
        impl: ``"auto"``, ``"plain"`` or ``"fast"``. Default: ``"auto"``.
        lean: keep 1 bit per element for backward on the fast path. Default: ``False``.

    Shape:
        - Input: :math:`(*)`, any number of dimensions.
        - Output: :math:`(*)`, the input's shape and dtype.

    Examples::

        >>> RReLU().eval()(torch.tensor([-1.0, 2.0]))
        tensor([-0.2292,  2.0000])

    Paper: Xu, Wang, Chen & Li, "Empirical Evaluation of Rectified Activations in Convolutional
    Network", arXiv:1505.00853, 2015.
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
        """The slope for x ≤ 0 in eval (:func:`actlab.reference.rrelu_test_slope`)."""
        return reference.rrelu_test_slope(self.lower, self.upper, self.form)

    def forward(self, x: Tensor) -> Tensor:
        seed = F.rrelu_step_seed(self.generator, x) if self.training else None
        return F.rrelu(x, self.lower, self.upper, self.training, form=self.form, seed=seed,
                       inplace=self.inplace, impl=self.impl, lean=self.lean)

    def derivative(self, x: Tensor) -> Tensor:
        return _rectifier_derivative(x, self.test_slope)

    def extra_repr(self) -> str:
        return f"lower={self.lower:g}, upper={self.upper:g}, form={self.form!r}" + (
            ", inplace=True" if self.inplace else "")


class ELU(Activation):
    r"""Exponential linear unit, elementwise.

    No dead zone; saturates to −α on the left, which pushes the mean output towards 0.

    .. math::
        f(x) = \begin{cases} x & x > 0 \\ \alpha (e^x - 1) & x \le 0 \end{cases}, \qquad
        f'(x) = \begin{cases} 1 & x > 0 \\ \alpha e^x = f(x) + \alpha & x \le 0 \end{cases}

    Args:
        alpha: α ≥ 0. Default: ``1.0``.
        inplace: overwrite the input. Default: ``False``.
        impl: ``"auto"``, ``"plain"`` or ``"fast"``. Default: ``"auto"``.

    Shape:
        - Input: :math:`(*)`, any number of dimensions.
        - Output: :math:`(*)`, the input's shape and dtype.

    Examples::

        >>> ELU()(torch.tensor([-1.0, 2.0]))
        tensor([-0.6321,  2.0000])

    Paper: Clevert, Unterthiner & Hochreiter, "Fast and Accurate Deep Network Learning by
    Exponential Linear Units (ELUs)", ICLR 2016.
    """

    name = "elu"

    def __init__(self, alpha: float = 1.0, inplace: bool = False, *, impl: str = "auto") -> None:
        super().__init__(impl=impl)
        self.alpha = _check(self.name, alpha=alpha)["alpha"]
        self.inplace = inplace

    def forward(self, x: Tensor) -> Tensor:
        return F.elu(x, self.alpha, inplace=self.inplace, impl=self.impl)

    def derivative(self, x: Tensor) -> Tensor:
        return torch.where(x > 0, torch.ones_like(x), self.alpha * torch.exp(x.clamp(max=0)))

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


# --- today's defaults beside the chapter's seven: torch's own operations, no fast kernels --------


class GELU(_PlainOnly):
    r"""Gaussian error linear unit, elementwise.

    x weighted by Φ(x), the probability that a standard normal variable is below x.

    .. math::
        f(x) = x\,\Phi(x), \qquad f'(x) = \Phi(x) + x\,\varphi(x)

    With ``approximate="tanh"``, :math:`u = \sqrt{2/\pi}\,(x + 0.044715 x^3)`:

    .. math::
        f(x) = \tfrac{x}{2}(1 + \tanh u), \qquad
        f'(x) = \tfrac12 (1 + \tanh u) + \tfrac{x}{2}(1 - \tanh^2 u)\sqrt{2/\pi}\,(1 + 3 \cdot 0.044715 x^2)

    Args:
        approximate: ``"none"`` (exact, with erf) or ``"tanh"``. Default: ``"none"``.
        impl: ``"auto"`` or ``"plain"`` (no fast kernels). Default: ``"auto"``.

    Shape:
        - Input: :math:`(*)`, any number of dimensions.
        - Output: :math:`(*)`, the input's shape and dtype.

    Examples::

        >>> GELU()(torch.tensor([-1.0, 0.0, 1.0]))
        tensor([-0.1587,  0.0000,  0.8413])

    Paper: Hendrycks & Gimpel, "Gaussian Error Linear Units (GELUs)", arXiv:1606.08415, 2016.
    """

    name = "gelu"

    def __init__(self, approximate: str = "none", *, impl: str = "auto") -> None:
        super().__init__(impl=impl)
        self.approximate = _check(self.name, approximate=approximate)["approximate"]

    def forward(self, x: Tensor) -> Tensor:
        return TF.gelu(x, approximate=self.approximate)

    def derivative(self, x: Tensor) -> Tensor:
        if self.approximate == "tanh":
            c, k = reference.GELU._C, reference.GELU._K
            t = torch.tanh(k * (x + c * x ** 3))
            return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * c * x * x)
        return 0.5 * torch.special.erfc(-x / math.sqrt(2)) + x * torch.exp(-x * x / 2) / math.sqrt(2 * math.pi)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class SiLU(_PlainInplace):
    r"""Sigmoid linear unit (Swish with β = 1), elementwise: x gated by its own sigmoid.

    .. math::
        f(x) = x\,\sigma(x), \qquad f'(x) = \sigma(x)\,(1 + x\,(1 - \sigma(x)))

    Args:
        inplace: overwrite the input. Default: ``False``.
        impl: ``"auto"`` or ``"plain"`` (no fast kernels). Default: ``"auto"``.

    Shape:
        - Input: :math:`(*)`, any number of dimensions.
        - Output: :math:`(*)`, the input's shape and dtype.

    Examples::

        >>> SiLU()(torch.tensor([-1.0, 0.0, 1.0]))
        tensor([-0.2689,  0.0000,  0.7311])

    Paper: Elfwing, Uchibe & Doya, "Sigmoid-Weighted Linear Units for Neural Network Function
    Approximation in Reinforcement Learning", Neural Networks 2018; Ramachandran, Zoph & Le,
    "Searching for Activation Functions", arXiv:1710.05941, 2017.
    """

    name = "silu"

    def forward(self, x: Tensor) -> Tensor:
        return TF.silu(x, inplace=self.inplace)

    def derivative(self, x: Tensor) -> Tensor:
        s = torch.sigmoid(x)
        return s * (1 + x * (1 - s))


class SELU(_PlainInplace):
    r"""Scaled exponential linear unit, elementwise: ELU with the self-normalising λ and α.

    .. math::
        f(x) = \lambda \begin{cases} x & x > 0 \\ \alpha (e^x - 1) & x \le 0 \end{cases}, \qquad
        f'(x) = \lambda \begin{cases} 1 & x > 0 \\ \alpha e^x & x \le 0 \end{cases}

    with λ ≈ 1.0507 and α ≈ 1.6733 (:attr:`actlab.reference.SELU.SCALE`, ``ALPHA``).

    Args:
        inplace: overwrite the input. Default: ``False``.
        impl: ``"auto"`` or ``"plain"`` (no fast kernels). Default: ``"auto"``.

    Shape:
        - Input: :math:`(*)`, any number of dimensions.
        - Output: :math:`(*)`, the input's shape and dtype.

    Examples::

        >>> SELU()(torch.tensor([-1.0, 0.0, 1.0]))
        tensor([-1.1113,  0.0000,  1.0507])

    Paper: Klambauer, Unterthiner, Mayr & Hochreiter, "Self-Normalizing Neural Networks",
    NeurIPS 2017.
    """

    name = "selu"

    def forward(self, x: Tensor) -> Tensor:
        return TF.selu(x, inplace=self.inplace)

    def derivative(self, x: Tensor) -> Tensor:
        lam, alpha = reference.SELU.SCALE, reference.SELU.ALPHA
        return torch.where(x > 0, torch.full_like(x, lam), lam * alpha * torch.exp(x.clamp(max=0)))


class Mish(_PlainInplace):
    r"""Mish, elementwise: x gated by the tanh of its softplus.

    .. math::
        f(x) = x \tanh(\operatorname{softplus}(x)), \qquad
        f'(x) = \tanh(s) + x\,(1 - \tanh^2 s)\,\sigma(x), \quad s = \operatorname{softplus}(x) = \ln(1 + e^x)

    Args:
        inplace: overwrite the input. Default: ``False``.
        impl: ``"auto"`` or ``"plain"`` (no fast kernels). Default: ``"auto"``.

    Shape:
        - Input: :math:`(*)`, any number of dimensions.
        - Output: :math:`(*)`, the input's shape and dtype.

    Examples::

        >>> Mish()(torch.tensor([-1.0, 0.0, 1.0]))
        tensor([-0.3034,  0.0000,  0.8651])

    Paper: Misra, "Mish: A Self Regularized Non-Monotonic Activation Function", BMVC 2020
    (arXiv:1908.08681).
    """

    name = "mish"

    def forward(self, x: Tensor) -> Tensor:
        return TF.mish(x, inplace=self.inplace)

    def derivative(self, x: Tensor) -> Tensor:
        t = torch.tanh(TF.softplus(x))
        return t + x * (1 - t * t) * torch.sigmoid(x)
