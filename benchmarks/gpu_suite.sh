#!/usr/bin/env bash
# One-shot GPU suite for a lent GPU machine (torch with CUDA, Triton, nvcc; no vLLM, no
# network). Builds the CUDA extension, runs the kernel and Triton tests on the GPU,
# compute-sanitizer memcheck and racecheck on a small run of every op, then measures the
# device's ceilings and benchmarks our CUDA and Triton kernels against torch references.
# Full logs and CSV go to $OUT (default benchmarks/results/gpu/<card>); a short table
# is printed last. Budget: under 8 minutes on an H100.
#
#   benchmarks/gpu_suite.sh            # on the GPU machine, from the repository root
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
card=$($PY -c "import torch; print(torch.cuda.get_device_name().replace(' ', '_'))" 2>/dev/null || echo unknown)
# Our CUDA platform is opt-in until this suite has passed (platform/common.py).
export FORGE_CUDA=1
OUT=${OUT:-benchmarks/results/gpu/$card}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/python:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
status=0
step() { echo; echo "== $1 ($(date +%T))"; }

step "machine"
nvidia-smi -L; $PY -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
nvcc --version | tail -1

step "build (FORGE_TARGET_DEVICE=cuda, sm_90)"
cap=$($PY -c "import torch; print('%d.%d' % torch.cuda.get_device_capability())")
if ! FORGE_TARGET_DEVICE=cuda FORGE_CUDA_ARCHS="${FORGE_CUDA_ARCHS:-$cap}" MAX_JOBS=16 \
     FORGE_BUILD_DIR=build/gpu-suite $PY setup.py -q build_ext --inplace > "$OUT/build.log" 2>&1; then
  tail -30 "$OUT/build.log"; echo "BUILD FAILED"; exit 1
fi
$PY -m vllm_forge.info 2>/dev/null | head -3 || true

step "kernel and Triton tests on CUDA"
timeout 300 $PY -m pytest -q -x tests/kernels tests/triton -k "(cuda or triton) and not compile_for_gpus" -p no:cacheprovider \
  --junitxml="$OUT/tests.xml" > "$OUT/tests.log" 2>&1 || status=1
tail -5 "$OUT/tests.log"

step "CUDA IPC all-reduce: 2 rank processes on this GPU"
timeout 180 $PY -m pytest -q tests/distributed/test_ipc_all_reduce.py -p no:cacheprovider \
  > "$OUT/ipc.log" 2>&1 || status=1
tail -3 "$OUT/ipc.log"

for tool in memcheck racecheck; do
  step "compute-sanitizer $tool"
  timeout 120 compute-sanitizer --tool $tool --error-exitcode 9 $PY -m benchmarks.gpu.sanitize \
    > "$OUT/sanitizer-$tool.log" 2>&1 || status=1
  tail -3 "$OUT/sanitizer-$tool.log"
done

step "benchmarks"
timeout 240 $PY -m benchmarks.gpu.bench_gpu --out "$OUT" 2>&1 | tee "$OUT/bench.log" || status=1
echo; echo "gpu_suite: exit $status; results in $OUT"
exit $status
