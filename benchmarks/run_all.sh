#!/usr/bin/env bash
# Every CPU benchmark whose figures the README quotes, one after another, on a quiet machine.
# The layer and whole-step benchmarks run twice (two processes: a figure counts if both agree
# within 20 %); each JSON records the load average and the other processes' CPU meanwhile.
#
#     bash benchmarks/run_all.sh [PYTHON]      # ~95 minutes on 2 cores
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
R=benchmarks/results
export PYTHONPATH=$PWD/src
uptime
for i in 1 2; do
  $PY -m actlab.cli bench --sizes 1M,16M --repeats 48 --threads 2 --quiet --json $R/cpu-layers-$i.json
  $PY -m actlab.cli bench --model he14 --threads 2 --repeats 60 --quiet --json $R/cpu-step-he14-$i.json
done
# the layers again with twice the rounds: at 1M the working set lives in the host's shared caches and at
# 16M torch's outputs page-fault, so a ratio's interval is wide; more rounds narrow it
for i in 1 2 3 4; do
  $PY -m actlab.cli bench --sizes 1M,16M --repeats 96 --threads 2 --quiet --json $R/cpu-layers-long-$i.json
done
# the two step goals next to their bounds (RReLU 1.4, ELU 1.05), with twice the rounds: tighter intervals
for i in 1 2; do
  $PY -m actlab.cli bench --model he14 --acts elu,rrelu-train --threads 2 --repeats 120 --quiet --json $R/cpu-step-he14-long-$i.json
done
$PY -m actlab.cli bench --agree $R/cpu-step-he14-long-1.json $R/cpu-step-he14-long-2.json || true
# ELU's goal (1.05) against its floors in two more runs, then every he14 run pooled: a sign test per bound
for i in 1 2; do
  $PY -m actlab.cli bench --model he14 --acts elu --threads 2 --repeats 120 --quiet --json $R/cpu-step-he14-elu-kept-$i.json
done
$PY -m actlab.cli bench --bounds $R/cpu-step-he14-*.json
# small tensors (an MLP's 8K-element activations; layers at 2K-64K): where torch's own ops serve
for i in 1 2; do
  $PY -m actlab.cli bench --model mlp --threads 2 --repeats 60 --quiet --json $R/cpu-step-mlp-$i.json
  $PY -m actlab.cli bench --sizes 2K,16K,64K --repeats 48 --threads 2 --quiet --json $R/cpu-layers-small-$i.json
done
$PY -m actlab.cli bench --agree $R/cpu-step-mlp-1.json $R/cpu-step-mlp-2.json || true
$PY -m actlab.cli bench --agree $R/cpu-layers-small-1.json $R/cpu-layers-small-2.json || true
# do the two runs agree? (exit status 1 if a ratio differs by more than 20 %; reported, not fatal)
$PY -m actlab.cli bench --agree $R/cpu-layers-1.json $R/cpu-layers-2.json || true
$PY -m actlab.cli bench --agree $R/cpu-layers-long-1.json $R/cpu-layers-long-2.json || true
$PY -m actlab.cli bench --agree $R/cpu-layers-long-3.json $R/cpu-layers-long-4.json || true
$PY -m actlab.cli bench --agree $R/cpu-step-he14-1.json $R/cpu-step-he14-2.json || true
for i in 1 2; do
  $PY -m actlab.cli bench --under-load --sizes 1M,16M --repeats 48 --threads 2 --quiet --json $R/cpu-layers-under-load-$i.json
done
$PY benchmarks/bench_compiled.py --json $R/compiled-cpu.json
$PY benchmarks/bench_jobs.py --json $R/jobs-cpu.json
uptime
