"""MPPO as DynamicPO implements it (docs/losses.md): a margin of sequence probabilities.

The reward is the sequence probability p = e^l itself, not its log, so the chosen item must beat
the *sum* of the negatives' probabilities.  Because the gradient w.r.t. l is proportional to p, it
fades for multi-token titles (L -> log 2 as p -> 0); the suite keeps the code's form to measure
exactly that, and leaves the paper's "average likelihood" (UNVERIFIED definition) aside.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recbench.losses.base import BASE_FIELDS, PreferenceLoss
from recbench.losses.batch import LossOutput, PreferenceBatch
from recbench.losses.hparams import hp
from recbench.losses.registry import register_loss
from recbench.losses.rewards import reward_metrics
from recbench.losses.sources import LossSource
from recbench.losses.stable import lse_with_zero

MPPO_SOURCE = LossSource(
    "MPPO (Xie et al., COLING 2025; reward definition UNVERIFIED)",
    "xingyuHuxingyu/DynamicPO trainer/exploratory_study_trainer.py @e54f5e4 (_compute_mppo_losses)",
)


@dataclass(frozen=True)
class MPPOHParams:
    beta: float = hp(1.0, low=0.0, low_open=True, doc="scale of the probability margin")


@register_loss(
    "mppo",
    label="MPPO",
    family="listwise",
    order=110,
    compared_with=("sdpo",),
    source=MPPO_SOURCE,
    summary="MPPO: logistic loss on n * p(y+) - sum_j p(y-_j), p = exp(summed log-prob)",
    description="""
L = softplus(-beta * [n * exp(l+) - sum_j exp(l-_j)]).
Reference model: no.  Negatives: all n own (summed inside the sigmoid).  Margin: none.
Length normalisation: no (sequence probabilities from summed log-probs).
Source: DynamicPO's MPPO implementation (beta = 1 as its MPPO.sh); bounded for l <= 0.
""",
)
class MPPOLoss(PreferenceLoss):
    HParams = MPPOHParams

    @classmethod
    def required_fields(cls, hparams: Any) -> frozenset[str]:
        return BASE_FIELDS

    @classmethod
    def all_negatives(cls, hparams: Any) -> bool:
        return True

    def compute(self, batch: PreferenceBatch) -> LossOutput:
        beta = self.hparams.beta
        pos, neg = batch.chosen_logps, batch.rejected_logps
        margin = batch.num_negatives * pos.exp() - neg.exp().sum(dim=1)
        per_example = lse_with_zero(-beta * margin[:, None])
        metrics: dict = reward_metrics(beta * pos, beta * neg)
        metrics["probability_margin"] = margin.detach().mean()
        return LossOutput(per_example.mean(), per_example, metrics)
