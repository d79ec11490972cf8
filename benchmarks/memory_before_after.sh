#!/usr/bin/env bash
# Issue 36's before/after: one short study-profile run as it ran before the memory work (glibc's
# allocator, no gradient checkpointing: RECBENCH_ALLOCATOR=system and
# --set gradient_checkpointing=false restore exactly that code path) and as it runs now, side by
# side (one thread each, started together, so that both see the same load), each in a fresh
# RECBENCH_HOME so that each trains its own SFT stage.  Prints /usr/bin/time's peak and wall
# time, and each stage's resident memory per optimizer step (the stage logs' rss_mb).
#   LOSS=sims_dpo NNEG=19 bash benchmarks/memory_before_after.sh
#   LOSS=napo NNEG=3 bash benchmarks/memory_before_after.sh
# Needs movielens built and the model fetched in $RECBENCH_HOME (copied into the scratch homes).
set -euo pipefail
cd "$(dirname "$0")/.."
LOSS=${LOSS:-sims_dpo}
NNEG=${NNEG:-19}
SOURCE=${RECBENCH_HOME:?set RECBENCH_HOME to a home with movielens built and the model fetched}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
one() {  # one NAME [extra run options...]
  local name=$1; shift
  mkdir -p "$WORK/$name"
  cp -r "$SOURCE/datasets" "$WORK/$name/"
  ln -s "$SOURCE/models" "$WORK/$name/models"
  RECBENCH_HOME="$WORK/$name" OMP_NUM_THREADS=1 /usr/bin/time -v .venv/bin/recbench run \
    --loss "$LOSS" --n-neg "$NNEG" --dataset movielens --profile study \
    --set sft_examples=64 --train-examples 32 --eval-examples 16 \
    --results "$WORK/$name.jsonl" "$@" > "$WORK/$name.out" 2> "$WORK/$name.err"
}
RECBENCH_ALLOCATOR=system one before --set gradient_checkpointing=false &
one after &
wait
for name in before after; do
  echo "== $name"
  grep -E "Maximum resident|Elapsed" "$WORK/$name.err"
  for log in $(find "$WORK/$name" -name metrics.jsonl | sort); do
    python3 -c "import json, sys; print('  ', sys.argv[1].split('/')[-2], 'rss_mb per step:',
      [round(json.loads(l)['rss_mb']) for l in open(sys.argv[1])])" "$log"
  done
  python3 -c "import json, sys; print('  ', {r['method'] + ' ' + r['mode'] + ' ' + r['metric']:
    round(r['value'], 4) for r in map(json.loads, open(sys.argv[1]))
    if r['metric'] in ('hr@1', 'ndcg@10')})" "$WORK/$name.jsonl"
done
