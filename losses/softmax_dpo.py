"""S-DPO and SimS-DPO: one chosen item against n own negatives in a single softmax.

Both are LSE(0, gamma + d_1, ..., gamma + d_n) with d_j = beta*(s(y-_j) - s(y+)); S-DPO scores with
the reference log-ratio, SimS-DPO with the policy log-prob alone.  (The Plackett-Luce "probability"
of the S-DPO paper leaves y+ out of its denominator, but -log sigma(log p) puts it back, so this is
exactly the softmax cross-entropy of y+ against {y+} and its negatives.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recbench.losses.base import BASE_FIELDS, LENGTH_FIELDS, REFERENCE_FIELDS, PreferenceLoss
from recbench.losses.batch import LossOutput, PreferenceBatch
from recbench.losses.hparams import hp
from recbench.losses.registry import register_loss
from recbench.losses.rewards import reward_metrics, sequence_scores
from recbench.losses.stable import lse_with_zero


@dataclass(frozen=True)
class SoftmaxDPOHParams:
    beta: float = hp(1.0, low=0.0, low_open=True, doc="inverse temperature")
    gamma: float = hp(0.0, low=0.0, doc="fixed margin gamma0 (0 = none)")
    ln: bool = hp(False, doc="divide log-probs by response length")


class _SoftmaxDPOBase(PreferenceLoss):
    HParams = SoftmaxDPOHParams
    reference: bool = True

    @classmethod
    def required_fields(cls, hparams: Any) -> frozenset[str]:
        fields = BASE_FIELDS | (REFERENCE_FIELDS if cls.reference else frozenset())
        return fields | (LENGTH_FIELDS if hparams.ln else frozenset())

    @classmethod
    def all_negatives(cls, hparams: Any) -> bool:
        return True

    def compute(self, batch: PreferenceBatch) -> LossOutput:
        hp_ = self.hparams
        pos, neg = sequence_scores(batch, reference=self.reference, ln=hp_.ln)
        gaps = hp_.beta * (neg - pos[:, None])
        per_example = lse_with_zero(gaps, hp_.gamma)
        metrics: dict = reward_metrics(hp_.beta * pos, hp_.beta * neg)
        metrics["margin"] = hp_.gamma
        metrics["pool_size"] = int(neg.shape[1])
        return LossOutput(per_example.mean(), per_example, metrics)


@register_loss(
    "sdpo",
    label="S-DPO",
    ablation_row=8,
    family="softmax",
    order=30,
    summary="S-DPO: softmax DPO of the chosen item against all n own negatives",
    description="""
L = LSE(0, d_1..d_n),  d_j = beta*[(l-_j - l-_j,ref) - (l+ - l+_ref)]  (= -log sigma(-LSE_j d_j)).
Reference model: yes.  Negatives: all n own (default 3).  Margin: none (option gamma).
Length normalisation: no (option ln).  n = 1 is exactly DPO.
Source: S-DPO paper Eqs. 9-10 and repo softmax_dpo trainer (beta = 1).
""",
)
class SDPOLoss(_SoftmaxDPOBase):
    reference = True


@register_loss(
    "sims_dpo",
    label="SimS-DPO",
    ablation_row=7,
    family="softmax",
    order=40,
    summary="SimS-DPO: reference-free S-DPO on summed policy log-probs (= NAPO w/o NS & gamma)",
    description="""
L = LSE(0, d_1..d_n),  d_j = beta*(l-_j - l+).
Reference model: no.  Negatives: all n own.  Margin: none (option gamma: then it equals
NAPO w/o NS & dynamic gamma).  Length normalisation: no (option ln).
Source: NAPO paper Table 3 baseline; identical to NAPO with K = 0 and gamma = 0.
""",
)
class SimSDPOLoss(_SoftmaxDPOBase):
    reference = False
