"""Benchmark actlab's activation layers against torch.nn's and write the results as JSON.

    python benchmarks/bench_layers.py                          # CPU, 2 threads, 1M and 16M, float32
    python benchmarks/bench_layers.py --device cuda --sizes 16M,32M --dtypes float32,bfloat16

The same measurement as ``actlab bench`` (see actlab/bench.py for what is timed and how), with
this file's defaults and a results file named for the device and the date. For each activation
(PReLU shared and channel-wise, RReLU in training): forward and forward+backward time of both
layers, their ratio, the fraction of copy bandwidth, and the bytes kept for backward.
"""

import argparse
import datetime
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from actlab import bench  # noqa: E402

# --- settings (units in comments) -------------------------------------------------------------------
SIZES = "1M,16M"  # elements per input; binary units (1M = 1,048,576)
DTYPES = "float32"
THREADS = 2  # CPU threads for torch and numba
REPEATS = 20  # timed repeats; medians count
WARMUP = 3  # untimed repeats first
OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

# --- arguments -----------------------------------------------------------------------------------------
parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
parser.add_argument("--sizes", default=SIZES)
parser.add_argument("--dtypes", default=DTYPES)
parser.add_argument("--acts", default=None, help="comma-separated names or case labels (default: all)")
parser.add_argument("--threads", type=int, default=THREADS)
parser.add_argument("--repeats", type=int, default=REPEATS)
parser.add_argument("--warmup", type=int, default=WARMUP)
parser.add_argument("--lean", action="store_true", help="also the lean variants")
parser.add_argument("--retain-freed-memory", action="store_true", help="see actlab.fast.retain_freed_memory")
parser.add_argument("--json", default=None, help="output path (default: benchmarks/results/<device>-<date>.json)")
args = parser.parse_args()

# --- measure -------------------------------------------------------------------------------------------
report = bench.run(args.acts.split(",") if args.acts else None, bench.parse_sizes(args.sizes),
                   bench.parse_dtypes(args.dtypes), args.device, args.threads if args.device == "cpu" else None,
                   args.repeats, args.warmup, lean=args.lean, retain_memory=args.retain_freed_memory,
                   progress=bench.print_row)

# --- store and report ----------------------------------------------------------------------------------
path = args.json or os.path.join(OUT_DIR, f"{args.device}-{datetime.date.today().isoformat()}.json")
bench.write_json(report, path)
print(bench.summary(report))
print(f"wrote {path}")
