#!/usr/bin/env bash
# Issue 6's LLM baselines with the `cpu` profile on lastfm, next to the loss runs of
# benchmarks/cpu_profile_study.sh (same store, same 300 test examples, same cached SFT stage).
# THREADS=1 lets it share a 2-core machine with another job without OpenMP thread thrashing.
set -euo pipefail
cd "$(dirname "$0")/.."
STORE=${STORE:-reports/results/lastfm-cpu.jsonl}
export OMP_NUM_THREADS=${THREADS:-2}
for baseline in ${BASELINES:-tallrec chatrec morec llara}; do
  .venv/bin/recbench run --dataset lastfm --profile cpu --results "$STORE" --baseline "$baseline"
done
