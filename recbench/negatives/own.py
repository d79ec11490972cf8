"""``self``: the non-target candidates the policy itself ranks highest when the preference
stage starts (the SFT model's summed log-probabilities, the ranking-mode score).

A self-play choice in the spirit of SPRec, made once: the scores are computed with the packed
scorer before the first preference step and cached beside the SFT stage, so a resumed run reads
the very negatives an uninterrupted one trained on.
"""

from __future__ import annotations

from collections.abc import Sequence

from recbench.data.dataset import Example
from recbench.negatives import NegativeContext, NegativeStrategy, highest_scored, register_negatives


@register_negatives
class Own(NegativeStrategy):
    key = "self"
    summary = "the non-target candidates the policy ranks highest at the start of preference"
    needs = "policy"

    def pick(
        self, context: NegativeContext, examples: Sequence[Example], n: int
    ) -> list[tuple[int, ...]]:
        if context.policy_scores is None:
            raise RuntimeError("negatives 'self' need the policy's candidate scores")
        return highest_scored(examples, context.policy_scores(examples), n)
