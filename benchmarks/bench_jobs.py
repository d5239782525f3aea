"""The main job (``make run``: digits, the seven activations × 3 seeds, 10 epochs) three ways:
``--jobs 1``, ``--jobs 2`` and ``--executor ray`` (a local Ray started by the call), each a fresh
``actlab compare`` process into its own temporary directory, timed wall-clock from start to exit.

Checks that every run's numbers (losses, errors, learning rate, per epoch) are identical across
the three, and writes JSON: wall times, the ratios (goals: jobs 1 / jobs 2 ≥ 1.6, Ray within 15 %
of jobs 2), the load average before and after each (``os.getloadavg``: other work on the machine
makes the numbers noisy; rerun on a quiet machine), the machine and the versions.

    python benchmarks/bench_jobs.py [--json benchmarks/results/jobs-cpu.json] [--quick]

``--quick`` (a 200-example subset, 1 epoch) checks the script itself in seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NUMBERS = ("SELECT r.key, r.variant, r.seed, e.epoch, e.train_loss, e.train_error, e.val_loss, e.val_error, "
           "e.test_loss, e.test_error, e.lr FROM runs r JOIN epochs e ON e.run_key = r.key ORDER BY r.key, e.epoch")
MODES = {"jobs1": ["--jobs", "1"], "jobs2": ["--jobs", "2"], "ray": ["--executor", "ray"]}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _versions() -> dict[str, str]:
    import torch

    import actlab

    out = {"python": platform.python_version(), "torch": torch.__version__, "actlab": actlab.__version__}
    try:
        import ray

        out["ray"] = ray.__version__
    except ImportError:
        out["ray"] = "not installed"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", default="benchmarks/results/jobs-cpu.json", help="output file")
    parser.add_argument("--quick", action="store_true", help="a 200-example subset, 1 epoch (a smoke test)")
    args = parser.parse_args(argv)
    job = ["--data", "digits", "--acts", "all", "--seeds", "3", "--epochs", "10", "--device", "cpu", "--quiet"]
    if args.quick:
        job += ["--subset", "200", "--epochs", "1"]
    results: dict[str, dict[str, object]] = {}
    numbers = {}
    with tempfile.TemporaryDirectory(prefix="actlab-bench-jobs-") as tmp:
        for mode, extra in MODES.items():
            out = Path(tmp) / mode
            load_before = os.getloadavg()
            t0 = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "actlab.cli", "compare", *job, *extra, "--out", str(out)],
                                  capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if done.returncode != 0:
                print(done.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"bench_jobs: {mode} failed (exit {done.returncode})")
            with sqlite3.connect(out / "results.sqlite") as db:
                numbers[mode] = db.execute(NUMBERS).fetchall()
                runs = db.execute("SELECT COUNT(*), SUM(train_seconds) FROM runs").fetchone()
            results[mode] = {"wall_seconds": round(wall, 2), "runs": runs[0], "train_seconds_sum": round(runs[1], 2),
                             "loadavg_before": [round(x, 2) for x in load_before],
                             "loadavg_after": [round(x, 2) for x in os.getloadavg()], "args": [*job, *extra]}
            print(f"{mode}: {wall:.1f} s wall, {runs[0]} runs, load {load_before[0]:.2f} → {os.getloadavg()[0]:.2f}",
                  file=sys.stderr)
    identical = numbers["jobs1"] == numbers["jobs2"] == numbers["ray"] and len(numbers["jobs1"]) > 0
    speedup = results["jobs1"]["wall_seconds"] / results["jobs2"]["wall_seconds"]
    ray_ratio = results["ray"]["wall_seconds"] / results["jobs2"]["wall_seconds"]
    report = {
        "benchmark": "actlab compare main job: --jobs 1 vs --jobs 2 vs --executor ray",
        "quick": args.quick,
        "modes": results,
        "speedup_jobs2_vs_jobs1": round(speedup, 3),
        "ray_wall_vs_jobs2": round(ray_ratio, 3),
        "identical_results": identical,
        "goals": {"jobs2_speedup_at_least_1.6": speedup >= 1.6, "ray_within_15pct_of_jobs2": ray_ratio <= 1.15,
                  "identical_results": identical},
        "machine": {"platform": platform.platform(), "cpu": _cpu_model(), "cpu_count": os.cpu_count(),
                    "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None},
        "versions": _versions(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("speedup_jobs2_vs_jobs1", "ray_wall_vs_jobs2", "identical_results")}))
    print(f"wrote {args.json}", file=sys.stderr)
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
