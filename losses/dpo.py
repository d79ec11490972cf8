"""DPO (Rafailov et al. 2023), optionally with label smoothing (cDPO / constant-epsilon RosePO)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recbench.losses.base import BASE_FIELDS, REFERENCE_FIELDS, PreferenceLoss
from recbench.losses.batch import LossOutput, PreferenceBatch
from recbench.losses.hparams import hp
from recbench.losses.registry import register_loss
from recbench.losses.rewards import reward_metrics, sequence_scores
from recbench.losses.stable import lse_with_zero


@dataclass(frozen=True)
class DPOHParams:
    beta: float = hp(1.0, low=0.0, low_open=True, doc="inverse temperature")
    label_smoothing: float = hp(
        0.0, low=0.0, high=0.5, high_open=True, doc="probability that a preference is flipped"
    )
    dpo_pairs: str = hp(
        "first",
        choices=("first", "expand"),
        doc="'first': pair (y+, y-_1); 'expand': average over the n pairs (y+, y-_j)",
    )


@register_loss(
    "dpo",
    family="pairwise",
    order=10,
    summary="DPO: logistic loss on the policy-vs-reference log-ratio gap of one pair",
    description="""
L = (1-eps)*softplus(-h) + eps*softplus(h),  h = beta*[(l+ - l+_ref) - (l- - l-_ref)].
Reference model: yes.  Negatives: the first one (dpo_pairs='expand': mean over all n pairs, as the
S-DPO repo's dpo.py).  Margin: none.  Length normalisation: no.
Source: DPO paper; TRL 'sigmoid' loss (label smoothing as TRL <= 0.11 / cDPO); beta = 1 as the
S-DPO repo's DPO baseline.
""",
)
class DPOLoss(PreferenceLoss):
    """Pairwise DPO through the stable primitive (softplus(x) = LSE(0, x))."""

    HParams = DPOHParams

    @classmethod
    def required_fields(cls, hparams: Any) -> frozenset[str]:
        return BASE_FIELDS | REFERENCE_FIELDS

    @classmethod
    def all_negatives(cls, hparams: Any) -> bool:
        return hparams.dpo_pairs == "expand"

    def compute(self, batch: PreferenceBatch) -> LossOutput:
        hp_ = self.hparams
        pos, neg = sequence_scores(batch, reference=True, ln=False)
        gaps = hp_.beta * (neg - pos[:, None])  # [b, n']: one pair per column
        eps = hp_.label_smoothing
        per_pair = lse_with_zero(gaps[..., None])
        if eps > 0.0:
            per_pair = (1.0 - eps) * per_pair + eps * lse_with_zero(-gaps[..., None])
        per_example = per_pair.mean(dim=1)
        metrics: dict = reward_metrics(hp_.beta * pos, hp_.beta * neg)
        return LossOutput(per_example.mean(), per_example, metrics)
