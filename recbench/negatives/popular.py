"""``popular``: the prompt's most popular non-target candidates (RosePO samples popular ones).

Popularity counts the training split's rows whose target is the item (the popularity of the
pop-bias metric and of the ``pop`` rule); ties go to the smaller id, so no seed is involved.
"""

from __future__ import annotations

from collections.abc import Sequence

from recbench.data.dataset import Example
from recbench.negatives import NegativeContext, NegativeStrategy, highest_scored, register_negatives


@register_negatives
class Popular(NegativeStrategy):
    key = "popular"
    summary = "the prompt's most popular non-target candidates (training counts; ties: id)"

    def pick(
        self, context: NegativeContext, examples: Sequence[Example], n: int
    ) -> list[tuple[int, ...]]:
        popularity = context.dataset.popularity()
        scores = [[float(popularity[c]) for c in ex.candidates] for ex in examples]
        return highest_scored(examples, scores, n)
