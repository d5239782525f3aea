"""Sweep the elementwise Triton kernels' block size and warps on a CUDA GPU (device time).

    PYTHONPATH=src python3 benchmarks/triton_blocks.py

Prints, for float32 and bfloat16 at 32M elements, the fraction of copy bandwidth of the relu
and tanh forwards and the relu backward for each (elements per program, warps), timed as CUDA
graphs; actlab.fast.gpu's _BLOCK and _WARPS are set from it.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

import torch  # noqa: E402

from actlab.fast import gpu  # noqa: E402

N = 1 << 25
CALLS = 20


def device_ms(fn):
    fn()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(CALLS):
            fn()
    times = []
    for _ in range(5):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / CALLS)
    return sorted(times)[2]


for dtype in (torch.float32, torch.bfloat16):
    x = torch.randn(N, device="cuda", dtype=dtype)
    y, g, gx = torch.empty_like(x), torch.randn_like(x), torch.empty_like(x)
    copy = device_ms(lambda: y.copy_(x))
    bwd_ref = device_ms(lambda: torch.ops.aten.threshold_backward(g, y, 0))
    print(f"{dtype}: copy {copy * 1e3:.1f} µs, torch threshold_backward {bwd_ref * 1e3:.1f} µs")
    size = x.element_size()
    for block in (1024, 2048, 4096, 8192):
        for warps in (4, 8, 16):
            gpu._BLOCK[size], gpu._WARPS = block, warps
            relu = device_ms(lambda: gpu.rect_fwd(x, y, None, None))
            tanh = device_ms(lambda: gpu.tanh_fwd(x, y))
            back = device_ms(lambda: gpu.rect_bwd(y, g, gx, None, False))
            print(f"  block {block:5d} warps {warps:2d}: relu fwd {copy / relu:.3f}  tanh fwd {copy / tanh:.3f}  "
                  f"relu bwd {bwd_ref / back:.3f} of torch's")
