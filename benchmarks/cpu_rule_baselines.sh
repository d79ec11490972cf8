#!/usr/bin/env bash
# The rule baselines (random, pop, markov, cooc, order) with the `cpu` profile on lastfm, next to
# the LLM runs of benchmarks/cpu_profile_study.sh: same store, the same 300 test examples.
# Seconds each; RULES and STORE override the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
STORE=${STORE:-reports/results/lastfm-cpu.jsonl}
export OMP_NUM_THREADS=${THREADS:-1}
for rule in ${RULES:-random pop markov cooc order}; do
  .venv/bin/recbench run --dataset lastfm --profile cpu --results "$STORE" --baseline "$rule"
done
