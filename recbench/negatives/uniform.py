"""``random``: ``n`` of the prompt's 19 non-target candidates, uniformly (today's rule)."""

from __future__ import annotations

from collections.abc import Sequence

from recbench.data.candidates import sample_negatives
from recbench.data.dataset import Example
from recbench.negatives import NegativeContext, NegativeStrategy, register_negatives


@register_negatives
class Uniform(NegativeStrategy):
    key = "random"
    summary = "n of the prompt's non-target candidates, uniformly at random (seeded per example)"

    def pick(
        self, context: NegativeContext, examples: Sequence[Example], n: int
    ) -> list[tuple[int, ...]]:
        return [
            sample_negatives(ex.candidates, ex.target, n, context.seed, ex.key) for ex in examples
        ]
