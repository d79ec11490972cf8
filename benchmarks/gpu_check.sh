#!/usr/bin/env bash
# The prepared GPU check (issue 36): one command, under 10 minutes on one H100/H200.
#   OUT=dir bash benchmarks/gpu_check.sh
# 1. The paper profile's preference step at Llama 1B and 8B shapes (random weights, bf16 base,
#    bf16 autocast, micro-batch 16), n_neg 1, 3, 15 and 19: the packed scorer next to the plain
#    one, every loss family's step, with and without recbench's gradient checkpointing, and
#    TRL's DPOTrainer step next to recbench's; then the 8B step on a 4-bit (nf4) base.
#    Cases that run out of memory are recorded as failed and the grid goes on.
# 2. The n_neg report's tables and figure from that CSV (tokens/s, fraction of the GPU's
#    dense bf16 peak, peak memory).
# 3. The memory model's 7B/8B predictions, fitted at small shapes on a CPU (committed CSV),
#    printed next to what the GPU measured.
# 4. Several processes train as one: tests/test_distributed_training.py, NAPO for two steps
#    with 1 and 2 processes (gloo on the host's cores: one GPU cannot hold two NCCL ranks).
# Like run_nneg_gpu.sh, the machine has no network: wheels travel in .whl/ and the SmolLM2
# tokenizer in .bench-assets/smollm2-tokenizer/.
source "$(dirname "$0")/gpu_setup.sh"
BENCH=(timeout 420 python3 benchmarks/bench_nneg.py --device cuda --precision bf16 --reps 2
       --batch 16 --n-neg 1,3,15,19 --base-dtype bf16)
"${BENCH[@]}" --kinds scorer,step,trl --checkpointing --shapes llama1b-shape,llama8b-shape \
  --out "$OUT/gpu-check.csv" || echo "gpu_check: the bf16 grid stopped early (see above)"
if python3 -c "import bitsandbytes" 2>/dev/null; then
  timeout 120 python3 benchmarks/bench_nneg.py --device cuda --precision bf16 --reps 2 \
    --batch 16 --n-neg 3,19 --base-dtype nf4 --kinds step --checkpointing \
    --shapes llama8b-shape --out "$OUT/gpu-check-nf4.csv" || echo "gpu_check: nf4 stopped early"
else
  echo "gpu_check: bitsandbytes is not installed: no 4-bit case"
fi
python3 benchmarks/nneg_report.py "$OUT"/gpu-check*.csv --out "$OUT/report"
python3 benchmarks/bench_nneg.py --memory-report benchmarks/results/memory-model-cpu.csv
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_distributed_training.py
