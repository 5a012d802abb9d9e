#!/bin/sh
# Every GPU check in one run, for a machine with a CUDA device, CuPy, PyTorch, torchvision, transformers and
# onnxruntime (the device machine): the CUDA tests on the GPU, then the model table (bench/gpu.py: eleven models
# exported by PyTorch, compiled by tcomp, checked and timed against PyTorch as CUDA graphs), then matmul against
# cuBLAS (bench/gpu_matmul.py). Each part has a time limit, so the whole run ends within about 8 minutes even if a
# part hangs; progress lines carry the seconds since the start. Wheels in .whl/ (xgboost-cpu, for the xgb tuner)
# are installed first when present. What comes back goes to $OUT (default ./gpu_logs), seven files:
#   summary.txt (this script's output), tests.txt, models.txt (the table), models.jsonl (one result per model),
#   model_logs.txt (each model's log), matmul.txt, matmul_records.tar.gz (the tuning records)
#
#     sh bench/gpu_check.sh
#
# Time limits and sizes (environment variables): TESTS_LIMIT=150 MODELS_LIMIT=240 MODEL_TIMEOUT=200 WORKERS=8
# MODELS (default: all of bench/gpu_models.py) MATMUL_LIMIT=100 MATMUL_PRECISIONS=fp32,fp16 TRIALS=48 BUDGET=30
# (tuning seconds per precision) SIZE=4096.
set -u
OUT=${OUT:-gpu_logs}
mkdir -p "$OUT"
TESTS_LIMIT=${TESTS_LIMIT:-150}
MODELS_LIMIT=${MODELS_LIMIT:-240}
MODEL_TIMEOUT=${MODEL_TIMEOUT:-200}
WORKERS=${WORKERS:-8}
MATMUL_LIMIT=${MATMUL_LIMIT:-100}
MATMUL_PRECISIONS=${MATMUL_PRECISIONS:-fp32,fp16}
TRIALS=${TRIALS:-48}
BUDGET=${BUDGET:-30}
SIZE=${SIZE:-4096}
WORK=${TMPDIR:-/tmp}/tcomp_gpu_check
START=$(date +%s)
say() { echo "[$(( $(date +%s) - START )) s] $*"; }
part() {  # part NAME LIMIT LOG COMMAND...: run COMMAND with a time limit, its output to LOG and to the summary
    name=$1 limit=$2 log=$3
    shift 3
    say "== $name (limit ${limit} s)"
    timeout -k 10 "$limit" "$@" > "$log" 2>&1
    status=$?
    tail -n 40 "$log"
    [ "$status" -eq 124 ] || [ "$status" -eq 137 ] && say "$name: stopped at its time limit"
    say "$name: exit $status"
}

main() {
    export PYTHONUNBUFFERED=1 PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}
    if ls .whl/*.whl >/dev/null 2>&1; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
            && export PYTHONPATH=/tmp/site:$PYTHONPATH
    fi
    say "machine"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv
    python3 -c "import cupy, llvmlite, numpy, torch; print('cupy', cupy.__version__, 'llvmlite', llvmlite.__version__,
    'numpy', numpy.__version__, 'torch', torch.__version__); import xgboost; print('xgboost', xgboost.__version__)"
    python3 -m tcomp.cli target cuda 2>&1 | head -6
    rm -rf "$WORK" && mkdir -p "$WORK/models" "$WORK/records"

    per_test=""  # a test that hangs fails alone (pytest-timeout), the others still report
    python3 -c "import pytest_timeout" 2>/dev/null && per_test="--timeout=60"
    part "tests on the GPU" "$TESTS_LIMIT" "$OUT/tests.txt" \
        python3 -m pytest -q -rfE -n 12 -p no:cacheprovider -W ignore $per_test tests/cuda \
        tests/graph/test_cuda_target.py tests/graph/test_cuda_precision.py tests/graph/test_hf_models_cuda.py

    part "models against PyTorch" "$MODELS_LIMIT" "$OUT/models.txt" \
        env OMP_NUM_THREADS=2 python3 bench/gpu.py --skip-matmul --workers "$WORKERS" --model-timeout "$MODEL_TIMEOUT" \
        --export-dir "$WORK/models" ${MODELS:+--models $MODELS}
    cp "$WORK/models/results.jsonl" "$OUT/models.jsonl" 2>/dev/null
    for log in "$WORK"/models/*.log; do [ -f "$log" ] && { echo "==== $log"; tail -n 60 "$log"; }; done \
        > "$OUT/model_logs.txt"

    part "matmul against cuBLAS" "$MATMUL_LIMIT" "$OUT/matmul.txt" \
        python3 bench/gpu_matmul.py --size "$SIZE" --precisions "$MATMUL_PRECISIONS" --trials "$TRIALS" \
        --budget "$BUDGET" --rounds 10 --records-dir "$WORK/records"
    tar -czf "$OUT/matmul_records.tar.gz" -C "$WORK" records 2>/dev/null
    say "done"
}

main < /dev/null 2>&1 | tee "$OUT/summary.txt"
