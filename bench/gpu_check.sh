#!/bin/sh
# The GPU checks in one run (a machine with a CUDA device, CuPy, PyTorch and onnxruntime): the CUDA tests on the
# device, tutorial 05, ResNet-50 against PyTorch, and matmul 4096^3 tuned against cuBLAS. Logs go to $OUT (or
# ./gpu_logs). Wheels in .whl/ (xgboost, for the xgb tuner) are installed first when present.
#     sh bench/gpu_check.sh [trials] [tuning budget in seconds]
set -u
OUT=${OUT:-gpu_logs}
mkdir -p "$OUT"
TRIALS=${1:-64}
BUDGET=${2:-150}
export PYTHONUNBUFFERED=1 PYTHONPATH=.
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=.:/tmp/site
fi
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv | tee "$OUT/gpu.txt"
python3 -c "import cupy, llvmlite, numpy; print('cupy', cupy.__version__, 'llvmlite', llvmlite.__version__, 'numpy', numpy.__version__)"
echo "== tests on the GPU"
timeout 100 python3 -m pytest -q -n 8 -p no:cacheprovider -W ignore tests/cuda/test_gpu.py tests/cuda/test_tuning.py \
    tests/cuda/test_templates.py tests/cuda/test_emulation.py \
    tests/graph/test_cuda_target.py 2>&1 | tee "$OUT/tests.txt" | tail -15
echo "== tutorial 05"
timeout 40 python3 tutorials/05_cuda_matmul.py > "$OUT/tutorial05.txt" 2>&1; echo "tutorial 05 exit $?"; tail -4 "$OUT/tutorial05.txt"
echo "== model"
timeout 120 python3 bench/gpu.py --skip-matmul 2>&1 | tee "$OUT/model.txt"
echo "== matmul"
timeout $((BUDGET + 90)) python3 bench/gpu.py --skip-model --trials "$TRIALS" --budget "$BUDGET" --records "$OUT/cuda_matmul.jsonl" 2>&1 \
    | tee "$OUT/matmul.txt"
