"""Implicit rewards: how each loss family turns log-probabilities into scores.

The losses differ mainly in the score s(y) they compare: the policy log-probability (SimPO
family, NAPO), the policy-to-reference log-ratio (DPO family), either optionally divided by the
response length.  Centralising it keeps "w/ Length Norm" and "S-DPO + NS" one flag away from
NAPO instead of separate code paths that could drift apart.
"""

from __future__ import annotations

from recbench.losses.batch import PreferenceBatch
from torch import Tensor


def sequence_scores(batch: PreferenceBatch, *, reference: bool, ln: bool) -> tuple[Tensor, Tensor]:
    """Scores of the chosen responses [b] and of the own negatives [b, n].

    ``reference``: use log pi - log pi_ref (DPO-style) instead of log pi.  ``ln``: divide each
    score by its own response length (for the ratio this equals dividing both log-probs).
    """
    pos, neg = batch.chosen_logps, batch.rejected_logps
    if reference:
        assert batch.ref_chosen_logps is not None and batch.ref_rejected_logps is not None
        pos = pos - batch.ref_chosen_logps
        neg = neg - batch.ref_rejected_logps
    if ln:
        assert batch.chosen_lengths is not None and batch.rejected_lengths is not None
        pos = pos / batch.chosen_lengths
        neg = neg / batch.rejected_lengths
    return pos, neg


def reference_scores(batch: PreferenceBatch, *, ln: bool) -> tuple[Tensor, Tensor]:
    """Reference-model log-probabilities of chosen [b] and own negatives [b, n] (optionally LN)."""
    assert batch.ref_chosen_logps is not None and batch.ref_rejected_logps is not None
    pos, neg = batch.ref_chosen_logps, batch.ref_rejected_logps
    if ln:
        assert batch.chosen_lengths is not None and batch.rejected_lengths is not None
        pos = pos / batch.chosen_lengths
        neg = neg / batch.rejected_lengths
    return pos, neg


def reward_metrics(
    chosen_rewards: Tensor, rejected_rewards: Tensor, mask: Tensor | None = None
) -> dict[str, Tensor]:
    """Detached TRL-style diagnostics from rewards beta*s: chosen [b], rejected [b, m].

    ``reward_accuracy`` is the fraction of examples whose chosen reward beats *every* compared
    negative (the pairwise accuracy when m = 1); masked-out pool entries are ignored.
    """
    chosen = chosen_rewards.detach()
    rejected = rejected_rewards.detach()
    if mask is not None:
        beaten = (chosen[:, None] > rejected) | ~mask
        rejected_mean = (rejected * mask).sum() / mask.sum().clamp_min(1)
    else:
        beaten = chosen[:, None] > rejected
        rejected_mean = rejected.mean()
    return {
        "rewards/chosen": chosen.mean(),
        "rewards/rejected": rejected_mean,
        "rewards/margin": chosen.mean() - rejected_mean,
        "rewards/accuracy": beaten.all(dim=1).to(chosen.dtype).mean(),
    }
