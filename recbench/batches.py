"""From examples to model inputs: preference items (prompt, chosen, negatives) and token ids.

The subset of training examples, the negatives and the prompt templates are all drawn from
generators seeded by the run seed, so two runs with the same settings see identical batches.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

from recbench.data.candidates import sample_negatives
from recbench.data.dataset import Dataset, Example
from recbench.data.prompts import choose_template, render_prompt, render_response


@dataclass(frozen=True)
class PromptItem:
    """One example rendered as text: the prompt and the response text of every candidate."""

    example: Example
    prompt: str
    chosen: str  # response text of the target
    negatives: tuple[int, ...]  # negative item ids used for preference training (may be empty)
    rejected: tuple[str, ...]  # their response texts


#: Every method is evaluated on the same seeded subset of test examples, with the same prompts.
EVAL_SEED = 0


def evaluation_examples(
    ds: Dataset, eval_rows: str, count: int | None, split: str = "test"
) -> list[Example]:
    """The examples a run is scored on: the protocol's rows (``eval_rows``) of ``split``, then
    the seeded subset of ``count`` that every method of the profile sees."""
    return pick_examples(ds.protocol_examples(split, eval_rows), count, EVAL_SEED)


def pick_examples(examples: Sequence[Example], count: int | None, seed: int) -> list[Example]:
    """A seeded subset of ``count`` examples (all of them, shuffled, when ``count`` is None)."""
    order = list(range(len(examples)))
    random.Random(f"subset:{seed}").shuffle(order)
    if count is not None:
        order = order[:count]
    return [examples[i] for i in order]


def render(
    ds: Dataset,
    example: Example,
    seed: int,
    n_neg: int = 0,
    template: int | None = None,
    history_items: int | None = None,
) -> PromptItem:
    """The prompt and responses of ``example``; ``history_items`` keeps only the last items of
    its history in the prompt (the most recent ones carry the signal a small model uses)."""
    names = ds.item_names
    chosen_template = choose_template(ds.domain, seed, example.key, template)
    history = example.history if history_items is None else example.history[-history_items:]
    prompt = render_prompt(
        chosen_template,
        [names[i] for i in history],
        [names[i] for i in example.candidates],
    )
    negatives: tuple[int, ...] = ()
    if n_neg:
        negatives = sample_negatives(example.candidates, example.target, n_neg, seed, example.key)
    return PromptItem(
        example=example,
        prompt=prompt,
        chosen=render_response(names[example.target]),
        negatives=negatives,
        rejected=tuple(render_response(names[i]) for i in negatives),
    )


def with_negatives(ds: Dataset, item: PromptItem, negatives: Sequence[int]) -> PromptItem:
    """``item`` training against ``negatives`` instead (a strategy's pick, same prompt)."""
    names = ds.item_names
    return replace(item, negatives=tuple(int(i) for i in negatives),
                   rejected=tuple(render_response(names[i]) for i in negatives))  # fmt: skip


def candidate_texts(ds: Dataset, example: Example) -> list[str]:
    """Response texts of all candidates, in candidate order (for ranking evaluation)."""
    return [render_response(ds.item_names[i]) for i in example.candidates]


def batched(items: Sequence, size: int) -> list[list]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]
