# Sourced by the GPU scripts (run_nneg_gpu.sh, gpu_check.sh): the lent GPU machine has PyTorch
# with CUDA but no network, so the exact transformers/peft/TRL versions travel as wheels in .whl/
# and the SmolLM2 tokenizer (the only file the random-weight models need) in
# .bench-assets/smollm2-tokenizer/.  Leaves the shell in the repository root with $OUT created.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export RECBENCH_BENCH_TOKENIZER=${RECBENCH_BENCH_TOKENIZER:-$PWD/.bench-assets/smollm2-tokenizer}
export TRANSFORMERS_VERBOSITY=error PYTHONUNBUFFERED=1 TQDM_DISABLE=1
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
