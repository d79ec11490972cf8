"""``hard``: the non-target candidates the auxiliary SASRec scores highest.

The negatives a sequential recommender finds most plausible for the user, as DynamicPO's
boundary negatives are chosen by a model's scores; the SASRec is the run's auxiliary one
(``--aux-checkpoint``), frozen, so the choice is fixed before the preference stage starts.
"""

from __future__ import annotations

from collections.abc import Sequence

from recbench.data.dataset import Example
from recbench.negatives import NegativeContext, NegativeStrategy, highest_scored, register_negatives


@register_negatives
class Hard(NegativeStrategy):
    key = "hard"
    summary = "the non-target candidates the auxiliary SASRec scores highest (ties: id)"
    needs = "sasrec"

    def pick(
        self, context: NegativeContext, examples: Sequence[Example], n: int
    ) -> list[tuple[int, ...]]:
        if context.sasrec_scores is None:
            raise RuntimeError("negatives 'hard' need the auxiliary SASRec's scores")
        return highest_scored(examples, context.sasrec_scores(examples), n)
