"""``catalog``: uniform from the whole catalogue, outside the user's history *and* outside the
prompt's 20 candidates, so the loss meets items the prompt never lists (seeded per example)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from recbench.data.dataset import Example
from recbench.negatives import NegativeContext, NegativeStrategy, register_negatives


@register_negatives
class Catalog(NegativeStrategy):
    key = "catalog"
    summary = "uniform from the items outside the history and outside the prompt's candidates"

    def pick(
        self, context: NegativeContext, examples: Sequence[Example], n: int
    ) -> list[tuple[int, ...]]:
        items = context.dataset.num_items
        out = []
        for ex in examples:
            excluded = set(ex.history) | set(ex.candidates)
            pool = [i for i in range(items) if i not in excluded]
            draw = random.Random(f"catalog:{context.seed}:{ex.key}")
            out.append(tuple(draw.sample(pool, n)))
        return out
