#!/usr/bin/env bash
# The n_neg benchmark on a lent GPU machine (issue 7), as it was run for
# benchmarks/results/nneg-<gpu>.csv.  That machine has PyTorch with CUDA but no network: the exact
# transformers/peft/TRL versions travel as wheels in .whl/ and the SmolLM2 tokenizer (the only
# file the random-weight models need) in .bench-assets/smollm2-tokenizer/ (copied from the
# converted embedded model, $RECBENCH_HOME/models/smollm2-135m/hf).  Usage: OUT=dir benchmarks/run_nneg_gpu.sh
source "$(dirname "$0")/gpu_setup.sh"
BENCH=(python3 benchmarks/bench_nneg.py --device cuda --precision bf16 --reps 5)
# every measurement at the cpu profile's micro-batch scale (4 examples)
"${BENCH[@]}" --batch 4 --shapes tiny,smollm2-shape,llama1b-shape --out "$OUT/nneg-gpu-b4.csv"
# a 16-example micro-batch (the paper's), where the GPU is no longer idle between kernels
"${BENCH[@]}" --batch 16 --kinds scorer,step --shapes smollm2-shape --out "$OUT/nneg-gpu-b16.csv"
