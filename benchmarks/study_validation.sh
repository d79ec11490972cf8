#!/usr/bin/env bash
# Choosing the `study` profile's settings on VALIDATION, never test (issue 15, item 3).
# SFT-only runs on movielens, seed 0, scored by ranking HR@1 on 500 validation examples
# (--set eval_split=val); the pop rule on the same examples is the bar to clear.
#   JOB=a bash benchmarks/study_validation.sh   # SFT lr 1e-3 (h5), then history 10 (lr 3e-3)
#   JOB=b bash benchmarks/study_validation.sh   # SFT lr 3e-3 (h5), then 2,048 SFT examples
# Two jobs of one thread each share a 2-core machine; both append to one store (locked).
# Every variant differs from its neighbour in one setting; the table the choice was made from:
#   python benchmarks/study_validation_table.py --out reports/movielens-study-validation
# Done (reports/movielens-study-validation/validation.md): rules; JOB=b on an AVX2 CPU (fp32,
# precision auto) for 1,024 examples, then on a bf16 CPU (Xeon with AMX, bf16) both items, one
# 2-thread job: `THREADS=2 JOB=b bash benchmarks/study_validation.sh`. JOB=a was not finished.
set -euo pipefail
cd "$(dirname "$0")/.."
STORE=${STORE:-reports/results/movielens-study-validation.jsonl}
export OMP_NUM_THREADS=${THREADS:-1}
VAL=(--dataset movielens --profile study --seed 0 --results "$STORE"
     --set eval_split=val --set eval_examples=500 --set generation=false)
sft() { .venv/bin/recbench run --baseline sft "${VAL[@]}" "$@"; }
case "${JOB:-a}" in
  rules)
    for rule in pop markov cooc; do .venv/bin/recbench run --baseline "$rule" "${VAL[@]}"; done ;;
  a)
    sft --set sft_learning_rate=1e-3 --set history_items=5 --set sft_examples=1024
    sft --set sft_learning_rate=3e-3 --set history_items=10 --set sft_examples=1024 ;;
  b)
    sft --set sft_learning_rate=3e-3 --set history_items=5 --set sft_examples=1024
    sft --set sft_learning_rate=3e-3 --set history_items=5 --set sft_examples=2048 ;;
  *) echo "JOB must be a, b or rules" >&2; exit 2 ;;
esac
