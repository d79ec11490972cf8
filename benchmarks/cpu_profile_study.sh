#!/usr/bin/env bash
# The `cpu` profile study of issue 5 on lastfm: zero-shot, SFT, then preference losses from the
# same cached SFT stage, all evaluated on the same 300 test examples (ranking and generation).
# Results go to reports/results/lastfm-cpu.jsonl; tables: recbench compare (see reports/README.md).
# THREADS=1 lets it share a 2-core machine with another job without OpenMP thread thrashing.
set -euo pipefail
cd "$(dirname "$0")/.."
STORE=${STORE:-reports/results/lastfm-cpu.jsonl}
export OMP_NUM_THREADS=${THREADS:-2}
RUN=(.venv/bin/recbench run --dataset lastfm --profile cpu --results "$STORE")
"${RUN[@]}" --baseline zero_shot
"${RUN[@]}" --baseline sft
for loss in ${LOSSES:-napo sdpo dpo}; do
  "${RUN[@]}" --loss "$loss"
done
