"""What the evaluation benchmarks share: the ``study`` profile's SFT stage, and their report.

``bench_bf16_eval.py``, ``bench_fast_ranking.py`` and ``bench_generation_cache.py`` each measure
ways of evaluating one trained SFT stage on validation prompts (never test: what they decide
must not look at it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from recbench.config import RunConfig, parse_value
from recbench.pipeline import LLMRun


def study_sft_run(
    dataset: str, seed: int, settings: Sequence[str], eval_examples: int
) -> tuple[LLMRun, RunConfig]:
    """The SFT run of the ``study`` profile with ``--set KEY=VALUE`` ``settings``, scored on
    ``eval_examples`` validation examples, its stage trained (or read from the stage cache)."""
    overrides = {k: parse_value(v) for k, v in (item.split("=", 1) for item in settings)}
    overrides.update(eval_split="val", eval_examples=eval_examples, generation=False)
    config = RunConfig(
        dataset=dataset, baseline="sft", profile="study", seed=seed, overrides=overrides
    ).validate()
    run = LLMRun.from_config(config)
    run.sft()  # the cached stage when it exists
    return run, config


def emit(report: dict, json_path: str | None) -> None:
    """Print the report, and write it to ``json_path`` when given."""
    text = json.dumps(report, indent=2)
    print(text)
    if json_path:
        Path(json_path).write_text(text + "\n", encoding="utf-8")
