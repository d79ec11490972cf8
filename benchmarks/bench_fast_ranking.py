"""Screened ranking: bf16's cost with fp32's decisions?  (issue 36, item 3)

Ranking evaluation in fp32 is compute-bound; bf16 is cheaper (3x on an AMX Xeon) but changed the top
candidate on a few percent of examples (``bench_bf16_eval.py``).  ``eval_precision=screened``
(:func:`recbench.evaluation.screened_rank`) scores every example in bf16 on a merged copy of
the model and scores again in fp32 only the examples whose top two candidates are closer than
:data:`recbench.evaluation.SCREEN_MARGIN`.  This script takes one trained SFT stage (the study
profile's, trained or read from ``$RECBENCH_HOME/stages``) and, on movielens validation prompts:

1. **calibrates** (``--calibrate K``) on K validation examples *after* the measured ones in the
   protocol's seeded order: fp32 and bf16 scores of each, the bf16 error on the gap between the
   bf16 top candidate and every other one, the margin it suggests (see
   :data:`recbench.evaluation.SCREEN_MARGIN`; ``--margin auto`` measures with it), and for a
   grid of margins the share re-scored and the top-1 agreement with fp32 on those K examples;
2. **times** (``--timing-examples T``) the first T measured examples in fp32, today's bf16
   (autocast on the LoRA model), bf16 on the merged copy with fp32 weights and with bf16 weights:
   whether merging pays;
3. **measures** (``--examples N``) fp32 and screened on the same examples, block by block
   (``--block``; fp32 then screened on each block, so both carry the same load), until N
   examples or ``--minutes`` run out: seconds per example, the share re-scored, top-1 agreement
   of screened and of its bf16 pass with fp32, HR@1 of each.  Each block makes its own merged
   copy (about a second), which a run makes once.

    RECBENCH_HOME=... OMP_NUM_THREADS=1 python benchmarks/bench_fast_ranking.py \\
        --examples 1000 --calibrate 150 --timing-examples 24 --block 50 \\
        --margin auto --set sft_examples=256 \\
        --json benchmarks/results/fast-ranking-movielens-val.json

Validation examples only: the margin decides how the study evaluates, so neither its choice nor
its check looks at test.  On a CPU without bf16 instructions the script says so and stops.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from study_sft import emit, study_sft_run

from recbench.batches import PromptItem
from recbench.batches import evaluation_examples as protocol_examples
from recbench.evaluation import (
    SCREEN_MARGIN,
    bf16_scoring_copy,
    rank_candidates,
    screened_rank,
)
from recbench.pipeline import LLMRun
from recbench.results import cpu_has_bf16, hardware

MARGIN_GRID = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0)


def _ranker(run: LLMRun) -> Callable[..., np.ndarray]:
    """``rank(model, items)``: the scores the pipeline's ranking gives, with its batch size."""
    s = run.settings

    def rank(model, items: Sequence[PromptItem]) -> np.ndarray:
        values, _ = rank_candidates(
            model, run.tokenizer, run.ds, items, batch_size=max(1, s.batch_size // 2),
            max_prompt_tokens=s.max_prompt_tokens, progress=False,
        )  # fmt: skip
        return values

    return rank


def timed(fn: Callable[[], np.ndarray]) -> tuple[np.ndarray, float]:
    started = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - started


def fp32(rank, model, items) -> np.ndarray:
    with torch.autocast("cpu", enabled=False):
        return rank(model, items)


def bf16_autocast(rank, model, items) -> np.ndarray:
    """Today's ``eval_precision=bf16``: autocast on the LoRA model as it is."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return rank(model, items)


def bf16_merged(rank, model, items, weights: str) -> np.ndarray:
    """bf16 autocast on a merged copy, its linear weights kept in fp32 or stored in bf16 (the
    screen's model); the copy is made inside the timing, as the screen makes it."""
    if weights == "bf16":
        fast = bf16_scoring_copy(model)
    else:
        fast = copy.deepcopy(model).merge_and_unload().eval()
    return bf16_autocast(rank, fast, items)


def pair_errors(screen: np.ndarray, exact: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every candidate j, its bf16 gap to the bf16 top candidate t, bf16[t] - bf16[j], and
    the bf16 error on that gap, (bf16[t] - bf16[j]) - (fp32[t] - fp32[j]), each ``[N, 20]``
    (NaN where j is t or padding).  A pick can change only where an error exceeds its gap."""
    top = screen.argmax(1)[:, None]
    rows = np.arange(len(screen))[:, None]
    gap = screen[rows, top] - screen
    error = gap - (exact[rows, top] - exact)
    valid = np.isfinite(gap) & np.isfinite(error) & (np.arange(screen.shape[1]) != top)
    return np.where(valid, gap, np.nan), np.where(valid, error, np.nan)


def gaps(scores: np.ndarray) -> np.ndarray:
    top2 = -np.sort(-scores, axis=1)[:, :2]
    return top2[:, 0] - top2[:, 1]


def suggested_margin(gap: np.ndarray, error: np.ndarray) -> dict:
    """2x the largest bf16 error on a gap between the top candidate and one within ``window``
    nats of it, rounded up to 0.05.  The window is the largest error seen on any pair (rounded
    up to a nat): a candidate further from the top than every error seen cannot swap with it,
    and far, improbable titles carry the largest errors without mattering to the pick."""
    window = float(np.ceil(np.nanmax(error)))
    near = gap < window
    largest = float(np.nanmax(np.where(near, error, np.nan)))
    return {
        "window": window,
        "pairs_in_window": int(near.sum()),
        "largest_error_in_window": largest,
        "margin": round(float(np.ceil(2 * largest / 0.05)) * 0.05, 2),
    }


def calibrate(rank, model, items) -> dict:
    """The bf16 error on these examples, the margin it suggests, and the trade-off of each
    margin of :data:`MARGIN_GRID` on them."""
    exact = fp32(rank, model, items)
    screen = bf16_merged(rank, model, items, "bf16")
    gap, error = pair_errors(screen, exact)
    top_gap = gaps(screen)
    flips = screen.argmax(1) != exact.argmax(1)
    grid = {}
    for margin in MARGIN_GRID:
        rescored = top_gap < margin
        picks = np.where(rescored, exact.argmax(1), screen.argmax(1))
        grid[str(margin)] = {
            "rescored": float(rescored.mean()),
            "agreement": float(np.mean(picks == exact.argmax(1))),
        }
    worst = np.nanmax(error, axis=1)
    return {
        "examples": len(items),
        "bf16_agreement": float(np.mean(~flips)),
        "error_max_any_pair": float(np.nanmax(error)),
        "per_example_max_error_quantiles": {
            q: float(np.quantile(worst, float(q))) for q in ("0.5", "0.9", "0.99")
        },
        "largest_top_gap_of_a_changed_pick": float(top_gap[flips].max()) if flips.any() else None,
        "suggested": suggested_margin(gap, error),
        "margins": grid,
    }


def timing(rank, model, items) -> dict:
    """Seconds per example of each way to score, on the same items in one process."""
    ways = {
        "fp32": lambda: fp32(rank, model, items),
        "bf16_autocast_lora": lambda: bf16_autocast(rank, model, items),
        "bf16_merged_fp32_weights": lambda: bf16_merged(rank, model, items, "fp32"),
        "bf16_merged_bf16_weights": lambda: bf16_merged(rank, model, items, "bf16"),
    }
    return {name: timed(fn)[1] / len(items) for name, fn in ways.items()}


def measure(run: LLMRun, rank, items, margin: float, block: int, deadline: float) -> dict:
    """fp32 and screened on the same examples, block by block (fp32 then screened on each
    block, so both see the same load), until the examples or the time (``deadline``, a
    ``time.monotonic()`` value) run out: time, agreement and the share re-scored."""
    s = run.settings
    parts: dict[str, list] = {"fp32": [], "screened": [], "bf16": [], "rescored": []}
    seconds = dict.fromkeys(("fp32", "screened", "screened_bf16_pass", "screened_fp32_pass"), 0.0)
    done = 0
    while done < len(items) and time.monotonic() < deadline:
        chunk = items[done : done + block]
        exact, took = timed(lambda chunk=chunk: fp32(rank, run.model, chunk))
        seconds["fp32"] += took
        started = time.perf_counter()
        screened = screened_rank(
            run.model, run.tokenizer, run.ds, chunk, margin=margin,
            batch_size=max(1, s.batch_size // 2), max_prompt_tokens=s.max_prompt_tokens,
            progress=False,
        )  # fmt: skip
        seconds["screened"] += time.perf_counter() - started
        seconds["screened_bf16_pass"] += screened.seconds["screen"]
        seconds["screened_fp32_pass"] += screened.seconds["rescore"]
        rows = screened.rescored
        diff = float(np.abs(screened.values - exact)[rows].max(initial=0.0))
        parts["fp32"].append(exact.argmax(1))
        parts["screened"].append(screened.values.argmax(1))
        parts["bf16"].append(screened.screen_values.argmax(1))
        parts["rescored"].append(rows)
        parts.setdefault("max_abs_diff", []).append(diff)
        done += len(chunk)
        print(f"{done} examples: {seconds}", flush=True)
    picks = {k: np.concatenate(parts[k]) for k in ("fp32", "screened", "bf16")}
    targets = np.array([it.example.target_position for it in items[:done]])
    return {
        "examples": done,
        "margin": margin,
        "block": block,
        "seconds_per_example": {k: v / done for k, v in seconds.items()},
        "time_ratio_screened_over_fp32": seconds["screened"] / seconds["fp32"],
        "time_ratio_bf16_pass_over_fp32": seconds["screened_bf16_pass"] / seconds["fp32"],
        "rescored_fraction": float(np.concatenate(parts["rescored"]).mean()),
        "agreement_with_fp32": {
            k: float(np.mean(picks[k] == picks["fp32"])) for k in ("screened", "bf16")
        },
        "disagreements": {k: int(np.sum(picks[k] != picks["fp32"])) for k in ("screened", "bf16")},
        "hr1": {k: float(np.mean(v == targets)) for k, v in picks.items()},
        "max_abs_diff_rescored_vs_fp32": max(parts["max_abs_diff"]),
    }


def load_run(args: argparse.Namespace) -> tuple[LLMRun, list[PromptItem]]:
    """The SFT stage (cached, or trained now) and every validation prompt in the protocol's
    seeded order: the first ``--examples`` are measured, the next ``--calibrate`` calibrate."""
    run, config = study_sft_run(args.dataset, args.seed, args.set, max(1, args.examples))
    s = config.settings
    ordered = protocol_examples(run.ds, s.eval_rows, None, "val")
    needed = args.examples + args.calibrate
    if len(ordered) < needed:
        raise SystemExit(f"{len(ordered)} validation examples, {needed} asked for")
    return run, run.eval_items(ordered[:needed])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="movielens")
    parser.add_argument("--examples", type=int, default=1000, help="measured validation examples")
    parser.add_argument("--calibrate", type=int, default=0,
                        help="validation examples after the measured ones to calibrate on")  # fmt: skip
    parser.add_argument("--timing-examples", type=int, default=0,
                        help="measured examples to time every way of scoring on")  # fmt: skip
    parser.add_argument("--margin", default=str(SCREEN_MARGIN),
                        help="a number, or 'auto': the calibration's suggestion")  # fmt: skip
    parser.add_argument("--block", type=int, default=100, help="examples per measured block")
    parser.add_argument("--minutes", type=float, default=math.inf,
                        help="stop measuring after the block that passes this many minutes")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="the SFT stage's seed")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="study profile fields of the SFT stage (e.g. sft_examples=256)",
    )  # fmt: skip
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()
    if not cpu_has_bf16():
        raise SystemExit("this CPU has no bf16 instructions: bf16 would be emulated; nothing to do")
    started = time.monotonic()
    run, items = load_run(args)
    measured, held_out = items[: args.examples], items[args.examples :]
    rank = _ranker(run)
    report: dict = {"hardware": hardware(), "sft_stage": run.sft_key, "settings": vars(args)}
    if held_out:
        report["calibration"] = calibrate(rank, run.model, held_out)
        print(json.dumps(report["calibration"], indent=2), flush=True)
    if args.timing_examples:
        report["timing_seconds_per_example"] = timing(
            rank, run.model, measured[: args.timing_examples]
        )
        print(json.dumps(report["timing_seconds_per_example"], indent=2), flush=True)
    if args.margin == "auto":
        if not held_out:
            raise SystemExit("--margin auto needs --calibrate")
        margin = report["calibration"]["suggested"]["margin"]
    else:
        margin = float(args.margin)
    deadline = started + 60 * args.minutes
    report["measured"] = measure(run, rank, measured, margin, args.block, deadline)
    emit(report, args.json)


if __name__ == "__main__":
    main()
