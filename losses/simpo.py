"""SimPO (Meng et al. 2024): reference-free, length-normalised, fixed target margin."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recbench.losses.base import BASE_FIELDS, LENGTH_FIELDS, PreferenceLoss
from recbench.losses.batch import LossOutput, PreferenceBatch
from recbench.losses.hparams import hp
from recbench.losses.registry import register_loss
from recbench.losses.rewards import reward_metrics, sequence_scores
from recbench.losses.stable import lse_with_zero


@dataclass(frozen=True)
class SimPOHParams:
    beta: float = hp(1.0, low=0.0, low_open=True, doc="reward scale")
    gamma: float = hp(1.0, low=0.0, doc="target reward margin gamma0 (reward units)")
    ln: bool = hp(True, doc="divide log-probs by response length")


@register_loss(
    "simpo",
    family="pairwise",
    order=20,
    summary="SimPO: reference-free pairwise loss on length-normalised log-probs with margin",
    description="""
L = softplus(-[beta*(l+/|y+| - l-/|y-|) - gamma0]).
Reference model: no.  Negatives: the first one.  Margin: fixed gamma0 (in reward units).
Length normalisation: yes (option ln).
Source: SimPO paper / repo (gamma_beta_ratio = gamma0/beta); TRL CPO loss_type='simpo'.
Suite defaults beta = 1, gamma0 = 1 (NAPO gives none).
""",
)
class SimPOLoss(PreferenceLoss):
    HParams = SimPOHParams

    @classmethod
    def required_fields(cls, hparams: Any) -> frozenset[str]:
        return BASE_FIELDS | (LENGTH_FIELDS if hparams.ln else frozenset())

    @classmethod
    def all_negatives(cls, hparams: Any) -> bool:
        return False

    def compute(self, batch: PreferenceBatch) -> LossOutput:
        hp_ = self.hparams
        pos, neg = sequence_scores(batch, reference=False, ln=hp_.ln)
        gaps = hp_.beta * (neg - pos[:, None])
        per_example = lse_with_zero(gaps, hp_.gamma)
        metrics: dict = reward_metrics(hp_.beta * pos, hp_.beta * neg)
        metrics["margin"] = hp_.gamma
        return LossOutput(per_example.mean(), per_example, metrics)
