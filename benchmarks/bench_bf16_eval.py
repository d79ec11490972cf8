"""Does bf16 evaluation pick the same answers as fp32?  (issue 15, item 5)

Evaluation runs in fp32 whatever a run's training precision.  bf16 autocast would make it
cheaper on a CPU with bf16 instructions, and is acceptable only if it changes no decision: the
same recommendation as fp32 on at least 99% of examples.  This script takes one trained SFT
stage (the study profile's, trained or read from $RECBENCH_HOME/stages), scores the same
validation examples in both precisions and prints, per mode, how often the recommendation is
the same, how often the hit is the same, both HR@1 and the time ratio bf16 / fp32 (measured in
one process, one after the other, so the ratio carries the same load).

    RECBENCH_HOME=... python benchmarks/bench_bf16_eval.py --examples 300 [--generation]

Validation examples only: the answer decides how the study evaluates, so it must not look at
test.  On a CPU without bf16 instructions bf16 is emulated; the script says so and stops.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from study_sft import emit, study_sft_run

from recbench.evaluation import generate_answers, generation_report, rank_candidates
from recbench.outcomes import Outcomes
from recbench.pipeline import LLMRun
from recbench.results import cpu_has_bf16, hardware
from recbench.runner import evaluation_examples
from recbench.trainer import autocast


def measure(run: LLMRun, items: list, precision: str, generation: bool) -> dict:
    s = run.settings
    out: dict = {}
    with autocast(precision, "cpu"):
        started = time.perf_counter()
        scores, _ = rank_candidates(
            run.model, run.tokenizer, run.ds, items, batch_size=max(1, s.batch_size // 2),
            max_prompt_tokens=s.max_prompt_tokens,
        )  # fmt: skip
        out["ranking_seconds"] = time.perf_counter() - started
        out["picks"] = scores.argmax(1)
        if generation:
            started = time.perf_counter()
            out["answers"] = generate_answers(
                run.model, run.tokenizer, items, batch_size=s.batch_size,
                max_new_tokens=s.max_new_tokens, max_prompt_tokens=s.max_prompt_tokens,
            )  # fmt: skip
            out["generation_seconds"] = time.perf_counter() - started
            judged = Outcomes()  # the protocol's judge, as a run applies it
            generation_report(run.ds, items, out["answers"], judged)
            out["hits"] = list(judged.hits("generation").values())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="movielens")
    parser.add_argument("--examples", type=int, default=300, help="validation examples")
    parser.add_argument("--seed", type=int, default=0, help="the SFT stage's seed")
    parser.add_argument("--generation", action="store_true", help="also compare generation")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="study profile fields of the SFT stage (e.g. sft_examples=2048)",
    )  # fmt: skip
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()
    if not cpu_has_bf16():
        raise SystemExit("this CPU has no bf16 instructions: bf16 would be emulated; nothing to do")
    run, config = study_sft_run(args.dataset, args.seed, args.set, args.examples)
    items = run.eval_items(evaluation_examples(config, run.ds))  # what a run is scored on
    fp32 = measure(run, items, "fp32", args.generation)
    bf16 = measure(run, items, "bf16", args.generation)
    targets = np.array([it.example.target_position for it in items])
    report = {
        "hardware": hardware(),
        "examples": len(items),
        "sft_stage": run.sft_key,
        "ranking_same_pick": float(np.mean(fp32["picks"] == bf16["picks"])),
        "ranking_hr1_fp32": float(np.mean(fp32["picks"] == targets)),
        "ranking_hr1_bf16": float(np.mean(bf16["picks"] == targets)),
        "ranking_time_ratio_bf16_over_fp32": bf16["ranking_seconds"] / fp32["ranking_seconds"],
    }
    if args.generation:
        hits = {"fp32": fp32["hits"], "bf16": bf16["hits"]}
        same = [
            a.strip() == b.strip() for a, b in zip(fp32["answers"], bf16["answers"], strict=True)
        ]
        report.update(
            generation_same_answer=float(np.mean(same)),
            generation_same_hit=float(np.mean(np.equal(hits["fp32"], hits["bf16"]))),
            generation_hr1_fp32=float(np.mean(hits["fp32"])),
            generation_hr1_bf16=float(np.mean(hits["bf16"])),
            generation_time_ratio_bf16_over_fp32=bf16["generation_seconds"]
            / fp32["generation_seconds"],
        )
    emit(report, args.json)


if __name__ == "__main__":
    main()
