"""Two measurements behind the `study` profile's settings (docs/study.md, "Design and status").

1. Prompt length: median and maximum tokens of 200 seeded training prompts, with the last 5
   history items and with the whole history, on movielens and lastfm.
2. Precision: wall time of one LoRA training step (forward + backward) of the embedded model on
   8 random prompts of 250 tokens, on one thread, in fp32 and under bf16 autocast.  A step that
   has not finished within ``--step-timeout`` seconds is reported as "more than" that.

    RECBENCH_HOME=... python benchmarks/bench_cpu_costs.py            # both (a few minutes)
    RECBENCH_HOME=... python benchmarks/bench_cpu_costs.py --only tokens

Run it on an otherwise idle machine; the times depend on it.  movielens needs
`recbench data build movielens`.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time

import torch

from recbench import models
from recbench.batches import pick_examples, render
from recbench.data import load_dataset
from recbench.results import cpu_has_bf16, hardware
from recbench.trainer import add_lora


def prompt_tokens() -> None:
    _, tokenizer = models.load("smollm2-135m")
    for name in ("movielens", "lastfm"):
        ds = load_dataset(name)
        examples = pick_examples(ds.examples("train"), 200, 0)
        for history in (5, None):
            lengths = [
                len(tokenizer(render(ds, ex, 0, history_items=history).prompt).input_ids)
                for ex in examples
            ]
            print(f"{name:<10} history_items={history!s:<5} median {statistics.median(lengths):.0f}"
                  f" max {max(lengths)} tokens")  # fmt: skip


def _step(precision: str, queue) -> None:
    torch.set_num_threads(1)
    model, _ = models.load("smollm2-135m")
    model = add_lora(model, 16, 32, 0)
    ids = torch.randint(0, 40_000, (8, 250), generator=torch.Generator().manual_seed(0))
    started = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        loss = model(input_ids=ids).logits.float().logsumexp(-1).mean()
    loss.backward()
    queue.put(time.perf_counter() - started)


def step_times(timeout: float) -> None:
    print(f"cpu_has_bf16={cpu_has_bf16()} hardware={hardware()}")
    for precision in ("fp32", "bf16"):
        queue = multiprocessing.Queue()
        worker = multiprocessing.Process(target=_step, args=(precision, queue))
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            worker.terminate()
            print(f"{precision}: one step took more than {timeout:.0f} s (model load included)")
        else:
            print(f"{precision}: one step {queue.get():.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("tokens", "steps"))
    parser.add_argument("--step-timeout", type=float, default=240.0)
    args = parser.parse_args()
    if args.only in (None, "tokens"):
        prompt_tokens()
    if args.only in (None, "steps"):
        step_times(args.step_timeout)


if __name__ == "__main__":
    main()
