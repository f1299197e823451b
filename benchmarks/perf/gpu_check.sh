#!/usr/bin/env bash
# A GPU check in one go (≤ 5 minutes on one H200; no network needed):
#   benchmarks/perf/gpu_check.sh [--cpu-smoke]
# Steps, each under its own time limit so that one slow step cannot eat the others' time:
#   env (devices, free memory, eNTK budget) · gram (Myrtle-5 eNTK at n = 2048, float32 and
#   tf32, against neural-tangents) · train (vmapped training throughput) · cholesky (host vs
#   device, n = 4096 and 16384) · slice (a paper-tier MNIST-1D C1 case end to end, shrunk).
# Numbers are on lines starting "RESULT"; each step ends with "=== STEP: rc=…, … s ===".
# The log goes to $OUT/gpu_check.log if $OUT is set, else /tmp/gpu_check.log.
# --cpu-smoke: tiny sizes, so that every step can be checked on a CPU.
# GPU_CHECK_SLICE_SETS overrides the slice's --ntkbench-set values (space-separated KEY=VALUE).
set -u
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
SMOKE=""
[ "${1:-}" = "--cpu-smoke" ] && SMOKE="--cpu-smoke"
LOG="${OUT:-/tmp}/gpu_check.log"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-/tmp/ntkbench-gpu-check-jax-cache}
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=1

if [ -n "$SMOKE" ]; then
  SETS=${GPU_CHECK_SLICE_SETS:-"n_grid=(32,64,128,256) seeds=(0,1) n_val=64 n_test=64 max_steps=300 eval_every=10 patience=50 patience_epochs=0.0 mlp.width=16"}
else
  SETS=${GPU_CHECK_SLICE_SETS:-"n_grid=(512,1024,2048,4096) seeds=(0,1)"}
fi
SET_ARGS=()
for kv in $SETS; do SET_ARGS+=(--ntkbench-set "$kv"); done

step() {  # step NAME LIMIT_SECONDS COMMAND...
  local name=$1 limit=$2 start rc
  shift 2
  echo "=== $name (limit ${limit} s): $* ==="
  start=$(date +%s)
  timeout --kill-after=10 "$limit" "$@"
  rc=$?
  [ $rc -eq 124 ] && echo "RESULT $name: TIMED OUT after ${limit} s"
  echo "=== $name: rc=$rc, $(( $(date +%s) - start )) s ==="
}

{
  echo "gpu_check $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD 2>/dev/null) ${SMOKE:-(full)}"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv
  step env 30 "$PY" benchmarks/perf/gpu_check.py env $SMOKE
  step gram 90 "$PY" benchmarks/perf/gpu_check.py gram $SMOKE
  step train 45 "$PY" benchmarks/perf/gpu_check.py train $SMOKE
  step cholesky 45 "$PY" benchmarks/perf/gpu_check.py cholesky $SMOKE
  step slice 80 "$PY" -m pytest -p no:cacheprovider -q benchmarks/test_c1_entk_init.py \
    --ntkbench-tier=paper --ntkbench-arch=mlp -k "mnist1d and test_mse" "${SET_ARGS[@]}" \
    --ntkbench-cache-dir="$WORK/cache" --ntkbench-plots=none --ntkbench-fail-on=none \
    --ntkbench-report="${OUT:-$WORK}/slice-report"
} 2>&1 | tee "$LOG"
rm -rf "$WORK"
echo "log: $LOG"
