#!/usr/bin/env python3
"""A small CNN compiled with torch.compile (inductor): actlab's layers vs torch.nn's, one training
step (forward + backward + SGD) per call, in paired rounds in one process.

    PYTHONPATH=src python benchmarks/bench_compiled.py --json benchmarks/results/compiled-cpu.json

Under torch.compile actlab's layers run their plain path (a few torch operations, see
actlab.fast.eager), which inductor fuses into the neighbouring kernels exactly as it fuses
torch.nn's; this measures that the result is not slower. Each round times both models back to
back, in alternating order, and the ratio is the median over rounds of (actlab / torch.nn), so a
machine whose load drifts affects both sides of each pair alike. The JSON records the machine,
the versions and the load average before and after (other work on the machine shows there).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch
from torch import nn

import actlab
from actlab import layers

#: activation → (actlab layer, torch.nn layer), channel count C
PAIRS = {
    "relu": (lambda c: layers.ReLU(), lambda c: nn.ReLU()),
    "leaky_relu": (lambda c: layers.LeakyReLU(0.1), lambda c: nn.LeakyReLU(0.1)),
    "prelu": (lambda c: layers.PReLU(c), lambda c: nn.PReLU(c)),
    "elu": (lambda c: layers.ELU(), lambda c: nn.ELU()),
    "tanh": (lambda c: layers.Tanh(), lambda c: nn.Tanh()),
    "sigmoid": (lambda c: layers.Sigmoid(), lambda c: nn.Sigmoid()),
    "rrelu": (lambda c: layers.RReLU(), lambda c: nn.RReLU()),
}


def model(act, channels: int = 32, classes: int = 10) -> nn.Module:
    """conv → BN → act, three times (the middle one strided), pooling and a linear head."""
    c = channels
    return nn.Sequential(
        nn.Conv2d(3, c, 3, padding=1), nn.BatchNorm2d(c), act(c),
        nn.Conv2d(c, c, 3, padding=1, stride=2), nn.BatchNorm2d(c), act(c),
        nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), act(c),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes))


def step_fn(net: nn.Module):
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    compiled = torch.compile(net, backend="inductor")
    loss_fn = nn.CrossEntropyLoss()

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(compiled(x), y).backward()
        opt.step()

    return step


def time_calls(step, x, y, calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        step(x, y)
    return (time.perf_counter() - t0) / calls


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--acts", default="relu,prelu,elu", help=f"comma-separated, from {', '.join(PAIRS)}")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=32, help="image side (3 channels)")
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--calls", type=int, default=5, help="training steps timed per model per round")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    acts = [a.strip() for a in args.acts.split(",") if a.strip()]
    bad = [a for a in acts if a not in PAIRS]
    if bad:
        p.error(f"unknown activation {bad[0]!r}; valid: {', '.join(PAIRS)}")
    load_before = os.getloadavg()
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, args.size, args.size)
    y = torch.randint(0, 10, (args.batch,))
    results = {}
    for act in acts:
        ours_layer, theirs_layer = PAIRS[act]
        torch.manual_seed(1)
        ours = model(ours_layer, args.channels)
        torch.manual_seed(1)
        theirs = model(theirs_layer, args.channels)
        steps = {"actlab": step_fn(ours), "torch.nn": step_fn(theirs)}
        t0 = time.perf_counter()
        for s in steps.values():  # compile and warm up
            for _ in range(2):
                s(x, y)
        compile_s = time.perf_counter() - t0
        times: dict[str, list[float]] = {k: [] for k in steps}
        for r in range(args.rounds):
            order = list(steps) if r % 2 == 0 else list(reversed(steps))
            for k in order:
                times[k].append(time_calls(steps[k], x, y, args.calls))
        ratios = [a / b for a, b in zip(times["actlab"], times["torch.nn"])]
        results[act] = {"ratio_median": statistics.median(ratios), "ratios": ratios,
                        "actlab_ms_median": 1e3 * statistics.median(times["actlab"]),
                        "torch_nn_ms_median": 1e3 * statistics.median(times["torch.nn"]),
                        "compile_and_warmup_s": compile_s}
        print(f"{act:10s} actlab/torch.nn = {results[act]['ratio_median']:.3f}  "
              f"({results[act]['actlab_ms_median']:.2f} ms vs {results[act]['torch_nn_ms_median']:.2f} ms a step)",
              flush=True)
        torch._dynamo.reset()
    out = {
        "benchmark": "compiled CNN training step, actlab vs torch.nn (torch.compile, inductor)",
        "ratio": "actlab time / torch.nn time per training step, median over paired rounds (below 1: actlab faster)",
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "config": vars(args) | {"acts": acts},
        "results": results,
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "torch_threads": torch.get_num_threads()},
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "actlab": getattr(actlab, "__version__", "source")},
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
    }
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
