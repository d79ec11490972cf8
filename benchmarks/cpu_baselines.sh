#!/usr/bin/env bash
# Every baseline that needs no LLM, with the `cpu` profile: the rule baselines (seconds) and the
# recbench-trained sequential models (GRU4Rec, Caser, SASRec: minutes each on one thread), all
# ranking the profile's 300 test examples, the ones every LLM method of the profile sees.
#   DATASET=movielens bash benchmarks/cpu_baselines.sh   # reports/results/movielens-cpu.jsonl
#   DATASET=lastfm BASELINES="gru4rec caser sasrec" bash benchmarks/cpu_baselines.sh
# movielens must be built first (`recbench data build movielens`).
set -euo pipefail
cd "$(dirname "$0")/.."
DATASET=${DATASET:-movielens}
STORE=${STORE:-reports/results/${DATASET}-cpu.jsonl}
export OMP_NUM_THREADS=${THREADS:-1}
for baseline in ${BASELINES:-random pop markov cooc order gru4rec caser sasrec}; do
  .venv/bin/recbench run --dataset "$DATASET" --profile cpu --results "$STORE" --baseline "$baseline"
done
