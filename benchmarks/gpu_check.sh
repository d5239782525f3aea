#!/usr/bin/env bash
# One-shot check of actlab's Triton kernels on a CUDA GPU: correctness, then the benchmark.
#
#   OUT=/some/dir bash benchmarks/gpu_check.sh        # from the repository root
#
# Runs from source (PYTHONPATH=src) with python3 (override: PYTHON=...); needs torch with CUDA and
# Triton, not numba or pytest. Each step runs even if an earlier one failed, under its own time
# limit; about 4 minutes in all, most of it Triton compiling each kernel once. Writes
# $OUT/check.log, $OUT/bench.log, $OUT/gpu_bench.json, $OUT/host.log and $OUT/summary.txt (OUT defaults to
# ./gpu_check_out). Exit status 0 only if every step passed.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_check_out}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
: > "$OUT/summary.txt"
failed=0

step() {  # step NAME SECONDS LOG COMMAND...
    local name=$1 limit=$2 log=$3 start rc
    shift 3
    echo "=== $name"
    start=$(date +%s)
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    if [ "$rc" -eq 0 ]; then result=ok; else result="FAILED (exit $rc$([ "$rc" -eq 124 ] && echo ', time limit'))"; failed=1; fi
    echo "$name: $result in $(( $(date +%s) - start )) s" | tee -a "$OUT/summary.txt"
}

step "environment" 60 "$OUT/env.log" "$PY" -c "
import torch, triton, actlab.fast as f
print('torch', torch.__version__, 'triton', triton.__version__, 'cuda', torch.version.cuda)
print('device', torch.cuda.get_device_name(), 'backends', f.status())
assert torch.cuda.is_available()"

# (1) Triton kernels against the plain path on CUDA: all seven, PReLU variants, lean, RReLU
step "correctness (benchmarks/fast_check.py)" 150 "$OUT/check.log" \
    "$PY" benchmarks/fast_check.py --device cuda --dtypes float32,bfloat16,float16

# (2) the benchmark: fp32 and bf16 at 16M and 32M (= 33.5 million) elements
step "benchmark (actlab bench)" 150 "$OUT/bench.log" \
    "$PY" -m actlab.cli bench --device cuda --sizes 16M,32M --dtypes float32,bfloat16 --repeats 10 \
    --warmup 2 --json "$OUT/gpu_bench.json"

# (3) host time per call (Python, autograd, launch): what eager code pays on top of device time
step "host overhead" 60 "$OUT/host.log" "$PY" benchmarks/host_overhead.py

echo
echo "=== summary"
cat "$OUT/summary.txt"
grep -E "passed|failed" "$OUT/check.log" | tail -n 1
grep -A 40 "^goals" "$OUT/bench.log" || true
exit $failed
