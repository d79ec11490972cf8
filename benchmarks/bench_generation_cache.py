"""Generation from the ranking pass's prompt cache: its time and its answers  (issue 36, item 3)

In generation mode a greedy answer is a title of a few tokens after a prompt of about 300, so
encoding the prompt is nearly all of generation's cost, and ranking has just encoded it.
``generation_from_ranking=true`` (:mod:`recbench.decoding`) decodes from the ranking pass's
keys and values instead.  This script takes the study profile's SFT stage (trained, or read from
``$RECBENCH_HOME/stages``) and, on movielens validation prompts in the protocol's seeded order,
block by block (both ways on each block, so both carry the same load):

* **separate**: ranking (``rank_candidates``) then generation (``generate_answers``), as every
  profile evaluates;
* **shared**: ``rank_and_generate``, ranking and answers in one pass.

It reports seconds per example of each, their ratio, and how many answers and generation
verdicts (valid, hit) are the same, and whether the ranking scores agree.

    RECBENCH_HOME=... OMP_NUM_THREADS=1 python benchmarks/bench_generation_cache.py \\
        --examples 200 --block 25 --set sft_examples=256 \\
        --json benchmarks/results/generation-cache-movielens-val.json

Validation examples only (no choice here looks at test).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from bench_fast_ranking import load_run
from study_sft import emit

from recbench import metrics
from recbench.evaluation import generate_answers, rank_and_generate, rank_candidates
from recbench.results import hardware


def measure(run, items, block: int) -> dict:
    s = run.settings
    common = {"max_prompt_tokens": s.max_prompt_tokens, "progress": False}
    seconds = {"separate_ranking": 0.0, "separate_generation": 0.0, "shared": 0.0,
               "shared_decoding": 0.0}  # fmt: skip
    separate_answers, shared_answers, diffs = [], [], []
    for start in range(0, len(items), block):
        chunk = items[start : start + block]
        began = time.perf_counter()
        values, _ = rank_candidates(run.model, run.tokenizer, run.ds, chunk,
                                    batch_size=max(1, s.batch_size // 2), **common)  # fmt: skip
        ranked = time.perf_counter()
        answers = generate_answers(run.model, run.tokenizer, chunk, batch_size=s.batch_size,
                                   max_new_tokens=s.max_new_tokens, **common)  # fmt: skip
        generated = time.perf_counter()
        both = rank_and_generate(run.model, run.tokenizer, run.ds, chunk,
                                 batch_size=max(1, s.batch_size // 2),
                                 max_new_tokens=s.max_new_tokens, **common)  # fmt: skip
        done = time.perf_counter()
        seconds["separate_ranking"] += ranked - began
        seconds["separate_generation"] += generated - ranked
        seconds["shared"] += done - generated
        seconds["shared_decoding"] += both.decode_seconds
        separate_answers += answers
        shared_answers += both.answers
        diffs.append(float(np.abs(both.values - values).max()))
        print(f"{start + len(chunk)}/{len(items)}: {json.dumps(seconds)}", flush=True)
    n = len(items)

    def verdicts(answers):
        return [
            metrics.judge_generation(
                text, it.example.candidates,
                [run.ds.item_names[i] for i in it.example.candidates], it.example.target,
            )
            for it, text in zip(items, answers, strict=True)
        ]  # fmt: skip

    a, b = verdicts(separate_answers), verdicts(shared_answers)
    separate = seconds["separate_ranking"] + seconds["separate_generation"]
    return {
        "examples": n,
        "seconds_per_example": {k: v / n for k, v in seconds.items()},
        "time_ratio_shared_over_separate": seconds["shared"] / separate,
        "generation_ratio_shared_decoding_over_separate": seconds["shared_decoding"]
        / seconds["separate_generation"],
        "same_answer_text": sum(x == y for x, y in zip(separate_answers, shared_answers)),
        "same_verdict": sum(x == y for x, y in zip(a, b, strict=True)),
        "hr@1": {"separate": sum(x.hit for x in a) / n, "shared": sum(x.hit for x in b) / n},
        "valid_ratio": {
            "separate": sum(x.valid for x in a) / n,
            "shared": sum(x.valid for x in b) / n,
        },
        "max_abs_diff_ranking_scores": max(diffs),
        "differing_answers": [
            {"example": it.example.key, "separate": x, "shared": y}
            for it, x, y in zip(items, separate_answers, shared_answers, strict=True)
            if x != y
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="movielens")
    parser.add_argument("--examples", type=int, default=200, help="validation examples")
    parser.add_argument("--block", type=int, default=25, help="examples per measured block")
    parser.add_argument("--seed", type=int, default=0, help="the SFT stage's seed")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="study profile fields of the SFT stage (e.g. sft_examples=256)")  # fmt: skip
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()
    run, items = load_run(argparse.Namespace(**vars(args), calibrate=0))
    report = {"hardware": hardware(), "sft_stage": run.sft_key, "settings": vars(args),
              "measured": measure(run, items, args.block)}  # fmt: skip
    emit(report, args.json)


if __name__ == "__main__":
    main()
