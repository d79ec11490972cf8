#!/usr/bin/env bash
# Issue 5's factor study: what moves HR@1 of the embedded model on a 2-core CPU.  Each run changes
# one setting of the `cpu` profile (lastfm, 1,024 training examples, SFT lr 1e-3, LoRA r=16 on all
# linear layers, bf16, prompts up to 512 tokens, 300 test examples); the reference point is the
# SFT run of benchmarks/cpu_profile_study.sh.  SFT factors are scored in ranking mode only
# (generation=false) to save time; the listwise run (SimS-DPO over all 19 negatives, from the
# cached SFT stage) and NAPO on the lr 3e-3 SFT stage (napo-lr3e-3, run on demand) are scored
# in both modes.  Store: reports/results/lastfm-cpu-factors.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
STORE=${STORE:-reports/results/lastfm-cpu-factors.jsonl}
export OMP_NUM_THREADS=${THREADS:-2}
RUN=(.venv/bin/recbench run --dataset lastfm --profile cpu --results "$STORE")
factor() { "${RUN[@]}" --baseline sft --set generation=false "$@"; }
for step in ${STEPS:-lr3e-3 listwise examples2048 lr3e-4 prompt256}; do
  case $step in
    lr3e-3) factor --set sft_learning_rate=3e-3 ;;
    lr3e-4) factor --set sft_learning_rate=3e-4 ;;
    examples2048) factor --train-examples 2048 ;;
    prompt256) factor --set max_prompt_tokens=256 ;;
    listwise) "${RUN[@]}" --loss sims_dpo --n-neg 19 ;;
    napo-lr3e-3) "${RUN[@]}" --loss napo --set sft_learning_rate=3e-3 ;;
    *) echo "unknown step $step" >&2; exit 2 ;;
  esac
done
