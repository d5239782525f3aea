"""Host (CPU) time per call of actlab's fast paths and of torch.nn, on small CUDA tensors.

    PYTHONPATH=src python3 benchmarks/host_overhead.py [--profile]

At 1M elements a memory-bound kernel takes a few microseconds on the GPU, so the time per call
in a loop is what the host needs to issue it: Python, autograd, the kernel launch. This is what
eager code pays per activation on top of the device time ``actlab bench`` reports. With
``--profile``, cProfile's top entries for one actlab forward+backward.
"""

import argparse
import cProfile
import os
import pstats
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

import torch  # noqa: E402

import actlab  # noqa: E402
from actlab.fast import gpu, ops  # noqa: E402

CALLS = 300  # calls per measurement
N = 1 << 20  # elements

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--profile", action="store_true")
parser.add_argument("--dtype", default="bfloat16")
args = parser.parse_args()

dtype = getattr(torch, args.dtype)
x = torch.randn(N // 4096, 64, 8, 8, device="cuda", dtype=dtype)
y = torch.empty_like(x)
g = torch.randn_like(x)
xg = x.clone().requires_grad_(True)


def per_call_us(fn):
    for _ in range(20):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(CALLS):
        fn()
    host = (time.perf_counter() - t0) / CALLS * 1e6
    torch.cuda.synchronize()
    return host


class Doubler(torch.autograd.Function):  # the floor: a Python Function doing one torch op each way
    @staticmethod
    def forward(ctx, t):
        return t * 2

    @staticmethod
    def backward(ctx, grad):
        return grad * 2


rows = {
    "torch.relu": lambda: torch.relu(x),
    "x * 2": lambda: x * 2,
    "Doubler fwd (Python Function)": lambda: Doubler.apply(x),
    "Doubler fwd+bwd": lambda: torch.autograd.grad(Doubler.apply(xg), [xg], g),
    "x * 2 fwd+bwd (native)": lambda: torch.autograd.grad(xg * 2, [xg], g),
    "triton launch (_fwd_kernel)": lambda: gpu.rect_fwd(x.view(-1), y.view(-1), 0.01, None),
    "ops.Rectifier.apply": lambda: ops.Rectifier.apply(x, 0.01, False, gpu),
}
for name in ("leaky_relu", "prelu", "rrelu"):
    hp = {"num_parameters": 64} if name == "prelu" else {}
    ours = actlab.layer(name, **hp).to("cuda", dtype).train()
    native = getattr(torch.nn, actlab.registry.entry(name).torch_native)(*([64] if name == "prelu" else [])).to(
        "cuda", dtype).train()
    rows[f"{name} actlab fwd"] = lambda m=ours: m(x)
    rows[f"{name} torch.nn fwd"] = lambda m=native: m(x)
    rows[f"{name} actlab fwd+bwd"] = lambda m=ours: torch.autograd.grad(m(xg), [xg, *m.parameters()], g)
    rows[f"{name} torch.nn fwd+bwd"] = lambda m=native: torch.autograd.grad(m(xg), [xg, *m.parameters()], g)

print(f"host µs per call, {N} elements {args.dtype} on {torch.cuda.get_device_name()}")
for name, fn in rows.items():
    print(f"  {name:32s} {per_call_us(fn):8.1f}")

if args.profile:
    prelu = actlab.layer("prelu", num_parameters=64).to("cuda", dtype)
    step = lambda: torch.autograd.grad(prelu(xg), [xg, prelu.weight], g)  # noqa: E731
    per_call_us(step)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(200):
        step()
    profiler.disable()
    torch.cuda.synchronize()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
