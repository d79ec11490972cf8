#!/usr/bin/env bash
# The powered CPU study (issue 15): the `study` profile (settings chosen on validation by
# benchmarks/study_validation.sh), 3 seeds, 1,000 test examples, both evaluation modes.
# Resumable: `recbench sweep` skips finished points and continues killed runs, so rerunning
# the same command after an interruption loses at most the steps since the last checkpoint.
#   THREADS=2 bash benchmarks/study_runs.sh
# is one job on both cores of a 2-core machine: on a bf16 CPU a second job on the same cores
# slowed a 2-thread job eightfold (thread contention), and one run peaks near 11 GB (13 GB for
# S-DPO, 18 GB for SimS-DPO with 19 negatives). Jobs on disjoint seeds share the grid through the
# sweep's locks; on lastfm (runs peak at 5.6-8.6 GB) two 1-thread jobs on the 2 cores got through
# 1.37 times more training and 1.1 times more evaluation per hour than one 2-thread job:
#   DATASETS=lastfm SEEDS=1 bash benchmarks/study_runs.sh &
#   DATASETS=lastfm SEEDS=2 bash benchmarks/study_runs.sh &
# SFT stages are cached in $RECBENCH_HOME, on the machine that trained them: a seed continued on
# another machine trains its stage again into another model, which the pipeline evaluates and
# records again (each loss is paired with its own stage; compare's sft_stages table shows the two
# trainings side by side). Each new stage costs its training and evaluation, so where sessions
# are shorter than the grid, give one session whole seeds (SEEDS=1, then SEEDS=2).
# Order (what to have first if time runs out): movielens SFT, S-DPO, NAPO, SimS-DPO with all
# 19 negatives, DPO; then the same on lastfm; then the NAPO ablations; the rule and sequential
# baselines take seconds to minutes and run first.
# Reports, after each run (SimS-DPO with 19 negatives as a row of its own next to its default 3):
#   recbench compare --results reports/results/DATASET-study.jsonl --out reports/DATASET-study \
#     --variant sims_dpo:n_neg=19
# and the README's copy of their paired tests:
#   python benchmarks/study_readme_table.py --write README.md
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=${THREADS:-1}
SEEDS=${SEEDS:-0,1,2}
STAGE=${STAGE:-main}
sweep() {
  local dataset=$1; shift
  .venv/bin/recbench sweep --dataset "$dataset" --profile study --seed "$SEEDS" \
    --results "reports/results/${dataset}-study.jsonl" "$@"
}
for dataset in ${DATASETS:-movielens lastfm}; do
  # minutes each (SASRec about 2 minutes on the bf16 CPU): Table 2 needs them next to the LLMs
  sweep "$dataset" --baseline random,pop,markov,cooc,order,gru4rec,caser,sasrec
  if [ "$STAGE" = main ]; then
    sweep "$dataset" --loss sdpo,napo  # each seed's SFT stage is recorded as `sft` on the way
    sweep "$dataset" --loss sims_dpo --n-neg 19
    sweep "$dataset" --loss dpo
  else
    sweep "$dataset" --loss sims_dpo,napo_no_ns,napo_no_dyn
  fi
done
