#!/usr/bin/env python3
"""Correctness checks of the fast paths against the plain path — a script, no pytest needed.

    PYTHONPATH=src python benchmarks/fast_check.py --device cuda --dtypes float32,bfloat16,float16
    TRITON_INTERPRET=1 ACTLAB_FAST_BACKEND=triton PYTHONPATH=src python benchmarks/fast_check.py   # Triton on CPU

A harness, not part of the library: it lives beside the benchmarks and imports actlab (and
``actlab.bench``) from outside.

Every check runs even when an earlier one fails; a summary is printed and the exit status is 1
if any failed. The functions are also the building blocks of ``tests/test_fast.py`` and
``tests/test_triton.py``. The checks:

* agreement — the fast and plain paths on the same input (zeros, ±1, ±1e4, ±inf and Gaussian
  values, a size that leaves partial blocks): forward, ∂L/∂x and PReLU's ∂L/∂a, for each
  activation, PReLU shared, channel-wise, channels-last and lean, RReLU in both forms and lean;
  RReLU's fast output is compared with x·(its slopes), the slopes with the NumPy Philox stream
  (by logical position: a channels-last input takes the plain path and gets the same noise);
* memory — bytes kept for backward ≤ torch.nn's, RReLU keeps no noise, lean keeps ≈ n/8;
* RReLU statistics — slopes in range, mean and spread right, neighbours uncorrelated,
  reproducible from the seed;
* gradcheck — float64, through the fast path (where the backend serves float64).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import Tensor

import actlab
from actlab import fast as _fast
from actlab import functional as F
from actlab.fast import backend_for, lookup, philox, rrelu_slopes, status

__all__ = ["Case", "CASES", "agreement", "memory", "rrelu_statistics", "gradcheck", "fast_everywhere", "main"]


@dataclass(frozen=True)
class Case:
    """One configuration of one activation, for the checks."""

    label: str
    act: str
    hparams: dict[str, Any] = field(default_factory=dict)
    lean: bool = False
    train: bool = False
    channels_last: bool = False  # the input in torch.channels_last memory format
    frozen: bool = False  # PReLU: weight.requires_grad False


CASES: tuple[Case, ...] = (
    Case("sigmoid", "sigmoid"),
    Case("tanh", "tanh"),
    Case("relu", "relu"),
    Case("relu-lean", "relu", lean=True),
    Case("leaky_relu", "leaky_relu", {"negative_slope": 0.2}),
    Case("leaky_relu-0", "leaky_relu", {"negative_slope": 0.0}),
    Case("leaky_relu-lean", "leaky_relu", {"negative_slope": 0.2}, lean=True),
    Case("elu", "elu", {"alpha": 0.5}),
    Case("prelu-shared", "prelu", {"init": -0.3}),
    Case("prelu-channel", "prelu", {"num_parameters": 16}),
    Case("prelu-channel-axis-last", "prelu", {"num_parameters": 7, "channel_axis": -1}),
    Case("prelu-channels_last", "prelu", {"num_parameters": 16}, channels_last=True),
    Case("prelu-channel-lean", "prelu", {"num_parameters": 16}, lean=True),
    Case("prelu-channel-lean-frozen", "prelu", {"num_parameters": 16}, lean=True, frozen=True),
    Case("prelu-shared-lean-frozen", "prelu", {}, lean=True, frozen=True),
    Case("rrelu-eval", "rrelu"),
    Case("rrelu-train", "rrelu", train=True),
    Case("rrelu-train-divisor", "rrelu", {"form": "divisor"}, train=True),
    Case("rrelu-train-lean", "rrelu", train=True, lean=True),
    Case("rrelu-train-channels_last", "rrelu", train=True, channels_last=True),
)

SHAPE = (4, 16, 9, 7)  # 4032 elements: partial blocks, partial bit words, 16 channels, 7 last
#: Several CPU tasks of 16384 elements and a partial one, PReLU planes of 16899 > 16384 elements
#: (two tasks each), odd sizes everywhere: 540,864 elements.
LARGE_SHAPE = (2, 16, 129, 131)


def shape_for(case: Case, large: bool = False) -> tuple[int, ...]:
    """The check's input shape for ``case``: channels on axis 1, or last for channel_axis −1."""
    shape = LARGE_SHAPE if large else SHAPE
    if case.hparams.get("channel_axis", 1) == -1:
        return (shape[0], shape[2], shape[3], case.hparams.get("num_parameters", 1))
    return shape


def tolerance(dtype: torch.dtype) -> dict[str, float]:
    """A few units in the last place of ``dtype``, relative and absolute."""
    return {torch.float64: dict(rtol=1e-12, atol=1e-12), torch.float32: dict(rtol=1e-5, atol=2e-6),
            torch.float16: dict(rtol=2e-3, atol=2e-3), torch.bfloat16: dict(rtol=1.6e-2, atol=1.6e-2)}[dtype]


@contextlib.contextmanager
def fast_everywhere() -> Iterator[None]:
    """Let actlab's own kernels take tensors of any size (the checks use small ones): no size
    floor, and torch's NATIVE ops for none (:func:`actlab.fast.dispatch`)."""
    with _fast.dispatch(min_numel=0, native_max_bytes=-1):
        yield


def _input(case: Case, dtype: torch.dtype, device: str, seed: int = 0, large: bool = False) -> Tensor:
    shape = shape_for(case, large)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 3
    special = [0.0, -0.0, 1.0, -1.0, 1e4, -1e4, 1e-3, -1e-3]
    if case.act != "prelu":  # inf·g would sum to NaN in the slope gradient, on both paths
        special += [math.inf, -math.inf]
    x.view(-1)[: len(special)] = torch.tensor(special, dtype=torch.float64)
    x = x.to(dtype=dtype, device=device)
    return x.contiguous(memory_format=torch.channels_last) if case.channels_last else x


def _layers(case: Case, dtype: torch.dtype, device: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    extra = {"lean": True} if case.lean else {}
    fast = actlab.layer(case.act, impl="fast", **case.hparams, **extra)
    plain = actlab.layer(case.act, impl="plain", **case.hparams)
    for m in (fast, plain):
        m.to(device=device, dtype=dtype).train(case.train)
    if case.act == "prelu":
        c = case.hparams.get("num_parameters", 1)
        w = torch.linspace(-0.4, 0.6, c, dtype=torch.float64).to(device=device, dtype=dtype)
        for m in (fast, plain):
            with torch.no_grad():
                m.weight.copy_(w)
            m.weight.requires_grad_(not case.frozen)
    return fast, plain


def _close(what: str, got: Tensor, want: Tensor, tol: dict[str, float]) -> None:
    try:
        torch.testing.assert_close(got, want, equal_nan=True, **tol)
    except AssertionError as err:
        raise AssertionError(f"{what}: {str(err).splitlines()[0]} {str(err).splitlines()[-1]}") from None


def agreement(case: Case, dtype: torch.dtype = torch.float32, device: str = "cpu", large: bool = False) -> None:
    """Fast vs plain: forward, ∂L/∂x and ∂L/∂a agree to a few ulps of ``dtype``."""
    x = _input(case, dtype, device, large=large)
    served = "leaky_relu" if case.act == "rrelu" and not case.train else case.act
    logical_only = case.act == "rrelu" and case.train and case.channels_last  # the plain path, by design
    if not logical_only:
        assert lookup(served, x, lean=case.lean) is not None, f"{case.label}: no fast kernel for {dtype} on {device}"
    fast, plain = _layers(case, dtype, device)
    g = torch.randn(x.shape, generator=torch.Generator().manual_seed(1)).to(device=device, dtype=dtype)
    xf, xp = x.detach().clone().requires_grad_(True), x.detach().clone().requires_grad_(True)
    tol = tolerance(dtype)
    if case.act == "rrelu" and case.train:
        lo, up, form = fast.lower, fast.upper, fast.form
        yf = F.rrelu(xf, lo, up, True, form=form, seed=12345, impl="fast", lean=case.lean)
        slopes = _slopes_like(x, lo, up, form, 12345)
        yp = torch.where(xp > 0, xp, slopes * xp)
        _check_slopes(slopes, lo, up, form, 12345, dtype, device)
    else:
        yf, yp = fast(xf), plain(xp)
    _close(f"{case.label} forward", yf, yp, tol)
    if case.channels_last:
        assert yf.is_contiguous(memory_format=torch.channels_last), f"{case.label}: output lost channels_last"
    inputs_f = [xf] + ([fast.weight] if case.act == "prelu" and not case.frozen else [])
    inputs_p = [xp] + ([plain.weight] if case.act == "prelu" and not case.frozen else [])
    grads_f = torch.autograd.grad(yf, inputs_f, g)
    grads_p = torch.autograd.grad(yp, inputs_p, g)
    if dtype in (torch.float16, torch.bfloat16) and case.act in ("sigmoid", "tanh", "elu"):
        # from the output, a 1-ulp difference in y (1 − y² near ±1, y + α near −α) is a large
        # relative one in f'; so check the backward against f' of the fast path's own y
        y, gd = yf.detach().double(), g.double()
        want = {"sigmoid": lambda: gd * y * (1 - y), "tanh": lambda: gd * (1 - y * y),
                "elu": lambda: torch.where(y <= 0, gd * (y + fast.alpha), gd)}[case.act]()
        _close(f"{case.label} dL/dx", grads_f[0], want.to(dtype), tol)
    else:
        _close(f"{case.label} dL/dx", grads_f[0], grads_p[0], tol)
    if len(grads_f) > 1:  # the slope gradient: a sum, so compared relative to Σ|x·g|
        scale = (x.double().abs() * g.double().abs()).sum().item()
        err = (grads_f[1].double() - grads_p[1].double()).abs().max().item()
        limit = 8 * (tol["rtol"] if dtype != torch.float32 else 1e-6) * scale
        assert err <= limit, f"{case.label} dL/da: max error {err:.3g} > {limit:.3g}"


def _slopes_like(x: Tensor, lower: float, upper: float, form: str, seed: int) -> Tensor:
    """The kernels' slopes for x, element i in row-major (logical) order taking slope i."""
    s = rrelu_slopes(x.numel(), lower, upper, form, seed, dtype=torch.float32 if x.dtype != torch.float64 else x.dtype,
                     device=x.device).to(x.dtype)
    return s.view(x.shape)


def _check_slopes(s: Tensor, lower: float, upper: float, form: str, seed: int, dtype: torch.dtype, device: str) -> None:
    compute = np.float64 if dtype == torch.float64 else np.float32
    flat = s.reshape(-1).cpu().to(torch.float64).numpy().astype(compute)
    want = philox.slopes(seed, flat.size, lower, upper, form, compute)
    if dtype in (torch.float16, torch.bfloat16):
        want = torch.from_numpy(want).to(dtype).float().numpy()
    exact = device == "cpu"  # on a GPU a fused multiply-add may round the slope once less
    if exact:
        assert np.array_equal(flat, want), "rrelu: slopes differ from the NumPy Philox stream"
    else:
        np.testing.assert_allclose(flat, want, rtol=1e-6 if dtype == torch.float32 else 1e-2)


def memory(case: Case, dtype: torch.dtype = torch.float32, device: str = "cpu", n: int = 1 << 16) -> dict[str, int]:
    """Bytes kept for backward: fast ≤ torch.nn's; RReLU no noise; lean ≈ n/8. Returns both."""

    from actlab.bench import saved_bytes

    native_cls = getattr(torch.nn, actlab.registry.entry(case.act).torch_native)
    c = case.hparams.get("num_parameters", 1)
    native = (native_cls(c) if case.act == "prelu" else native_cls()).to(device=device, dtype=dtype).train(case.train)
    fast, _ = _layers(case, dtype, device)
    x = _input(case, dtype, device)
    x = torch.cat([x] * max(1, n // x.numel())).requires_grad_(True)  # keeps the memory format
    x_native = x.movedim(-1, 1) if case.hparams.get("channel_axis", 1) == -1 else x  # torch.nn: channels on 1
    try:
        kept = {"native": saved_bytes(native, x_native), "fast": saved_bytes(fast, x)}
    except NotImplementedError:  # torch.nn lacks this dtype here (RReLU in float16 on CPU)
        kept = {"native": 2 * x.numel() * x.element_size(), "fast": saved_bytes(fast, x)}
    elements = x.numel()
    assert kept["fast"] <= kept["native"], f"{case.label}: keeps {kept['fast']} B > torch.nn's {kept['native']} B"
    if case.act == "rrelu" and case.train:
        limit = elements // 8 + 64 if case.lean else elements * x.element_size()
        assert kept["fast"] <= limit, f"{case.label}: keeps {kept['fast']} B; noise would need more than {limit}"
    if case.lean and not (case.act == "prelu" and not case.frozen):
        weight = c * x.element_size() if case.act == "prelu" else 0
        assert kept["fast"] <= elements // 8 + 64 + weight, \
            f"{case.label}: lean keeps {kept['fast']} B for {elements} elements, want ≈ {elements // 8}"
    return kept


def rrelu_statistics(device: str = "cpu", n: int = 1 << 20, dtype: torch.dtype = torch.float32) -> None:
    """Slopes in range, mean and spread right, neighbours uncorrelated, reproducible."""


    for form, lo, up in (("slope", 1 / 8, 1 / 3), ("divisor", 3.0, 8.0)):
        s = rrelu_slopes(n, lo, up, form, seed=2024, dtype=dtype, device=device).double().cpu()
        smin, smax = (lo, up) if form == "slope" else (1 / up, 1 / lo)
        assert s.min() >= smin * (1 - 1e-6) and s.max() <= smax * (1 + 1e-6), f"{form}: slopes out of range"
        mean = (lo + up) / 2 if form == "slope" else math.log(up / lo) / (up - lo)  # E[a] or E[1/a]
        second = (lo * lo + lo * up + up * up) / 3 if form == "slope" else 1 / (lo * up)  # E[s²]
        sd = math.sqrt(second - mean * mean)
        assert abs(s.mean().item() - mean) < 5 * sd / math.sqrt(n), f"{form}: mean {s.mean():.6f}, want {mean:.6f}"
        assert abs(s.std().item() - sd) < 0.01 * sd, f"{form}: std {s.std():.6f}, want {sd:.6f}"
        z = (s - s.mean()) / s.std()
        for lag in (1, 2, 3, 4, 5, 8):  # within a Philox quad (1-3) and across quads (4+)
            corr = (z[:-lag] * z[lag:]).mean().item()
            assert abs(corr) < 5 / math.sqrt(n), f"{form}: lag-{lag} correlation {corr:.4f}"
        hist = torch.histc(((s - smin) / (smax - smin)).float(), bins=16, min=0, max=1) if form == "slope" else None
        if hist is not None:
            expected = n / 16
            chi2 = ((hist - expected) ** 2 / expected).sum().item()
            assert chi2 < 50, f"{form}: uniformity chi² = {chi2:.1f} over 15 degrees of freedom"
    a = rrelu_slopes(1000, 1 / 8, 1 / 3, "slope", 7, device=device)
    assert torch.equal(a, rrelu_slopes(1000, 1 / 8, 1 / 3, "slope", 7, device=device)), "not reproducible"
    assert not torch.equal(a, rrelu_slopes(1000, 1 / 8, 1 / 3, "slope", 8, device=device)), "seed ignored"
    assert not torch.equal(a, rrelu_slopes(1000, 1 / 8, 1 / 3, "slope", 7 + 2**32, device=device)), \
        "high seed bits ignored"


def gradcheck(case: Case, device: str = "cpu") -> None:
    """torch.autograd.gradcheck in float64 through the fast path (and gradgradcheck)."""
    fast, _ = _layers(case, torch.float64, device)
    shape = (2, 16, 2, 3) if case.hparams.get("channel_axis", 1) == 1 else (2, 3, 2, 7)  # gradcheck is O(n²)
    x = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3)).to(device)
    x = torch.where(x.abs() < 1e-2, x + 0.1, x)  # finite differences straddle no kink
    if case.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    if not (case.act == "rrelu" and case.train and case.channels_last):
        assert lookup(case.act, x, lean=case.lean) is not None, f"{case.label}: float64 is not served here"
    if case.act == "rrelu" and case.train:
        fn: Callable[..., Tensor] = lambda x: F.rrelu(x, fast.lower, fast.upper, True, form=fast.form, seed=5,
                                                      impl="fast", lean=case.lean)
        inputs: tuple[Tensor, ...] = (x,)
    elif case.act == "prelu" and not case.frozen:
        fn = lambda x, w: F.prelu(x, w, channel_axis=fast.channel_axis, impl="fast", lean=case.lean)
        inputs = (x, fast.weight)
    else:
        fn, inputs = fast, (x,)
    assert torch.autograd.gradcheck(fn, inputs), f"{case.label}: gradcheck"
    assert torch.autograd.gradgradcheck(fn, inputs), f"{case.label}: gradgradcheck"


# --- the script --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/fast_check.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cpu", "cuda"))
    parser.add_argument("--dtypes", default=None, help="default: float32,bfloat16,float16 on cuda; float32 on cpu")
    parser.add_argument("--stats-size", type=int, default=1 << 20, help="elements for the RReLU statistics")
    parser.add_argument("--no-gradcheck", action="store_true")
    parser.add_argument("--large", action="store_true", help=f"agreement on {LARGE_SHAPE} too (many blocks)")
    args = parser.parse_args(argv)

    dtypes = [getattr(torch, d.strip()) for d in (args.dtypes or ("float32,bfloat16,float16" if args.device == "cuda"
                                                                   else "float32")).split(",")]
    probe = torch.empty(1, device=args.device)
    backend = backend_for(probe)
    print(f"device {args.device}; backend {getattr(backend, '__name__', None)}; {status()}")
    results: list[tuple[str, str]] = []

    def run(label: str, fn: Callable[[], Any]) -> None:
        try:
            out = fn()
            results.append((label, "ok" + (f" {out}" if out else "")))
        except Exception as err:  # noqa: BLE001 - every check runs; failures are listed
            detail = "".join(traceback.format_exception_only(type(err), err)).strip().splitlines()[0]
            results.append((label, f"FAIL {detail}"))
        print(f"{results[-1][1][:4]:4s} {label}: {results[-1][1]}", flush=True)

    with fast_everywhere():
        if backend is None:
            results.append(("backend", "FAIL no fast backend for this device"))
        for dtype in dtypes:
            for case in CASES:
                name = str(dtype).replace("torch.", "")
                if backend is None or case.act not in backend.NAMES + tuple(getattr(backend, "NATIVE", ())):
                    continue
                run(f"agreement {case.label} {name}", lambda: agreement(case, dtype, args.device))
                if args.large:
                    run(f"agreement {case.label} {name} large", lambda: agreement(case, dtype, args.device, True))
                if case.act in ("sigmoid", "tanh", "elu") or case.label == "rrelu-eval" or case.label == "leaky_relu-0":
                    continue
                run(f"memory {case.label} {name}", lambda: memory(case, dtype, args.device))
        run("rrelu statistics", lambda: rrelu_statistics(args.device, args.stats_size))
        if not args.no_gradcheck and backend is not None and torch.float64 in backend.DTYPES:
            for case in CASES:
                if case.act in backend.NAMES and case.label != "rrelu-eval":
                    run(f"gradcheck {case.label}", lambda: gradcheck(case, args.device))
    failed = [r for r in results if not r[1].startswith("ok")]
    print(f"\n{len(results) - len(failed)} passed, {len(failed)} failed")
    for label, msg in failed:
        print(f"  {label}: {msg}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
