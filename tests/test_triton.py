"""The Triton kernels, run on the CPU by Triton's interpreter (TRITON_INTERPRET=1).

The interpreter must be switched on before Triton is imported, so each test runs a fresh Python
in a subprocess with TRITON_INTERPRET=1 and ACTLAB_FAST_BACKEND=triton (which sends CPU tensors
to actlab.fast.gpu): the checks of benchmarks/fast_check.py — the same ones benchmarks/gpu_check.sh runs
on a GPU — in float32 and bfloat16, and a few multi-block cases.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("triton")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(args: list[str], timeout: int = 480) -> subprocess.CompletedProcess:
    env = {**os.environ, "TRITON_INTERPRET": "1", "ACTLAB_FAST_BACKEND": "triton",
           "PYTHONPATH": os.pathsep.join([os.path.join(ROOT, "src"), os.path.join(ROOT, "benchmarks"),
                                          os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_gpu_module_imports_without_a_gpu():
    from actlab.fast import gpu

    assert {"sigmoid", "tanh", "relu", "leaky_relu", "prelu", "rrelu", "elu"} == set(gpu.NAMES)


def test_triton_kernels_pass_the_checks_in_the_interpreter():
    out = _run([os.path.join(ROOT, "benchmarks", "fast_check.py"), "--device", "cpu", "--dtypes", "float32,bfloat16",
                "--stats-size", "65536", "--no-gradcheck"])
    summary = [line for line in out.stdout.splitlines() if "passed" in line or line.startswith("FAIL")]
    assert out.returncode == 0, "\n".join(summary) + out.stderr[-2000:]
    assert "backend actlab.fast.gpu" in out.stdout  # the Triton kernels ran, not the numba ones


SCRIPT = textwrap.dedent("""
    import numpy as np, torch
    import actlab
    from actlab import fast, functional as F
    import fast_check as check
    from actlab.fast import gpu, philox

    with check.fast_everywhere():
        # PReLU planes of 1500 elements: two programs per plane, partial sums of both reduced
        x = torch.randn(3, 4, 1500, requires_grad=True)
        for impl in ("fast", "plain"):
            m = actlab.layer("prelu", num_parameters=4, impl=impl)
            y = m(x)
            y.backward(torch.ones_like(y))
            if impl == "fast":
                assert type(y.grad_fn).__name__ == "PReLUBackward"
                yf, gf, wf = y.detach(), x.grad.clone(), m.weight.grad.clone()
                x.grad = None
        torch.testing.assert_close(yf, y.detach())
        torch.testing.assert_close(gf, x.grad)
        torch.testing.assert_close(wf, m.weight.grad, rtol=1e-5, atol=1e-4)
        # the Triton Philox stream is the NumPy one, bit for bit, and so the CPU kernels'
        for form, lo, up in (("slope", 1 / 8, 1 / 3), ("divisor", 3.0, 8.0)):
            s = fast.rrelu_slopes(5000, lo, up, form, seed=2**62 + 3)
            assert np.array_equal(s.numpy(), philox.slopes(2**62 + 3, 5000, lo, up, form))
        # lean masks across many 32-bit words and a partial one; relu's bit is set for NaN
        x = torch.randn(10_007)
        x[5] = float("nan")
        x.requires_grad_(True)
        for name in ("relu", "leaky_relu"):
            got = torch.autograd.grad(actlab.layer(name, lean=True, impl="fast")(x), x, torch.ones_like(x))[0]
            want = torch.autograd.grad(actlab.layer(name, impl="plain")(x), x, torch.ones_like(x))[0]
            torch.testing.assert_close(got, want)
    print("extras ok")
""")


def test_triton_multi_block_cases_in_the_interpreter():
    out = _run(["-c", SCRIPT])
    assert out.returncode == 0 and "extras ok" in out.stdout, out.stderr[-3000:]


TOOLS_SCRIPT = textwrap.dedent("""
    import warnings
    import torch, torch.autograd.forward_ad as fwAD
    from torch.func import grad, jvp
    from actlab import fast, layers
    from actlab.fast import gpu

    def prelu(c):
        m = layers.PReLU(c)
        with torch.no_grad():
            m.weight.copy_(torch.linspace(-0.4, 0.6, c))
        return m

    LAYERS = {"sigmoid": layers.Sigmoid(), "tanh": layers.Tanh(), "relu": layers.ReLU(),
              "leaky_relu": layers.LeakyReLU(0.2), "prelu": prelu(8), "rrelu-eval": layers.RReLU().eval(),
              "rrelu-train": layers.RReLU().train(), "elu": layers.ELU(0.7)}
    OURS = ("FromOutputBackward", "RectifierBackward", "PReLUBackward", "ELUBackward")
    x0 = torch.randn(4, 8, 6, 5, generator=torch.Generator().manual_seed(0)) * 2
    v = torch.linspace(-1, 1, x0.numel()).reshape(x0.shape)
    close = lambda a, b: torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    with fast.dispatch(min_numel=0, native_max_bytes=-1):
        assert fast.backend_for(x0) is gpu
        for name, m in LAYERS.items():
            x = x0.clone().requires_grad_(True)
            torch.manual_seed(3)
            y = m(x)
            assert type(y.grad_fn).__name__ in OURS, (name, y.grad_fn)  # eager ran the Triton kernels
            (gx,) = torch.autograd.grad(y, x, v)
            torch._dynamo.reset()
            xc = x0.clone().requires_grad_(True)
            torch.manual_seed(3)
            yc = torch.compile(m, backend="aot_eager", fullgraph=True)(xc)
            close(yc, y.detach())
            close(torch.autograd.grad(yc, xc, v)[0], gx)
            if name == "rrelu-train":
                continue  # the step seed is drawn per call; the rest needs a fixed function
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                traced = torch.jit.trace(m, x0)
            close(traced(x0), y.detach())
            with fwAD.dual_level():
                t = fwAD.unpack_dual(m(fwAD.make_dual(x0, v))).tangent
            close(t, gx)
            close(jvp(m, (x0,), (v,))[1], gx)
            close(grad(lambda x: (m(x) * v).sum())(x0), gx)
            # backward under vmap (gradcheck's batched gradients): the plain formulas
            gs = torch.stack([v, 2 * v])
            xb = x0.clone().requires_grad_(True)
            yb = m(xb)
            (gb,) = torch.autograd.grad(yb, xb, gs, is_grads_batched=True)
            close(gb[0], gx)
            close(gb[1], 2 * gx)
            print("ok", name)
    print("tools ok")
""")


def test_triton_kernels_under_compile_trace_forward_ad_and_torch_func_in_the_interpreter():
    """The tools of tests/test_torch_integration.py with the Triton backend: eager runs the Triton
    kernels, each tool the plain path, and they agree."""
    out = _run(["-c", TOOLS_SCRIPT])
    assert out.returncode == 0 and "tools ok" in out.stdout, out.stdout[-2000:] + out.stderr[-3000:]
