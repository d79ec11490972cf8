"""DynamicPO on top of DMPO, MPPO and S-DPO (docs/losses.md).

Each loss keeps only the boundary negatives B of :mod:`recbench.losses.boundary` and weighs each
with its own beta_j; the rest of the negatives get no gradient.  Selection and beta_j always come
from the policy's log-probs; the loss itself uses the reference log-ratios Delta = l - l_ref
where the base loss does (DMPO, S-DPO) and plain sequence probabilities for MPPO.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from recbench.losses.base import BASE_FIELDS, REFERENCE_FIELDS, PreferenceLoss
from recbench.losses.batch import LossOutput, PreferenceBatch
from recbench.losses.boundary import KMEANS_RULES, boundary_selection
from recbench.losses.hparams import hp
from recbench.losses.registry import register_loss
from recbench.losses.rewards import reward_metrics, sequence_scores
from recbench.losses.sources import LossSource
from recbench.losses.stable import lse_with_zero
from torch import Tensor

_PAPER = "DynamicPO (paper equations UNVERIFIED; margin M = 6 as the code)"
_TRAINER = "xingyuHuxingyu/DynamicPO trainer/dynamicpo_trainer.py @e54f5e4"
_EXPLORATORY = "xingyuHuxingyu/DynamicPO trainer/exploratory_study_trainer.py @e54f5e4"
_SELECTION = """
B = violators {j : l-_j >= l+} (policy log-probs), else the top k-means cluster of the l-_j;
beta_j = beta*(1 + tanh((a_j - b_j - M)/(|a_j| + |b_j|))/2), a_j = l+ - l-_j, b_j = l-_j - mean
of the other negatives; no gradient through B or beta_j; negatives outside B get none either.
"""


@dataclass(frozen=True)
class DynamicPOHParams:
    beta: float = hp(1.0, low=0.0, low_open=True, doc="base inverse temperature")
    margin: float = hp(6.0, low=0.0, doc="margin M of the dynamic beta (log-prob units)")
    kmeans: str = hp(
        "sklearn",
        choices=KMEANS_RULES,
        doc="fallback clustering: 'sklearn' (released call, needs scikit-learn) or 'exact'",
    )


@dataclass(frozen=True)
class DynamicSDPOHParams(DynamicPOHParams):
    eps: float = hp(1e-8, low=0.0, doc="constant inside the log: L >= log(1 + eps)")


class _DynamicPOBase(PreferenceLoss):
    HParams: Any = DynamicPOHParams
    reference: bool = True

    @classmethod
    def required_fields(cls, hparams: Any) -> frozenset[str]:
        return BASE_FIELDS | (REFERENCE_FIELDS if cls.reference else frozenset())

    @classmethod
    def all_negatives(cls, hparams: Any) -> bool:
        return True

    def per_example(self, batch: PreferenceBatch, mask: Tensor, betas: Tensor) -> Tensor:
        raise NotImplementedError

    def compute(self, batch: PreferenceBatch) -> LossOutput:
        hp_ = self.hparams
        mask, betas = boundary_selection(
            batch.chosen_logps,
            batch.rejected_logps,
            beta=hp_.beta,
            margin=hp_.margin,
            kmeans=hp_.kmeans,
        )
        per_example = self.per_example(batch, mask, betas)
        pos, neg = sequence_scores(batch, reference=self.reference, ln=False)
        metrics: dict = reward_metrics(hp_.beta * pos, hp_.beta * neg)
        sizes = mask.sum(dim=1).to(betas.dtype)
        metrics["boundary_size"] = sizes.mean()
        metrics["beta_mean"] = betas.sum() / sizes.sum()
        return LossOutput(per_example.mean(), per_example, metrics)


@register_loss(
    "dynamicpo_dmpo",
    label="DynamicPO (DMPO)",
    family="listwise",
    order=120,
    compared_with=("dmpo",),
    source=LossSource(_PAPER, f"{_TRAINER} L201-253 (filter_mode='DynamicPO_DMPO')"),
    summary="DynamicPO-DMPO: DMPO over the boundary negatives, each with its own dynamic beta",
    description=_SELECTION
    + """L = softplus(-(1/|B|) * sum_{j in B} beta_j * [(l+ - l+_ref) - (l-_j - l-_j,ref)]).
Reference model: yes.  Negatives: the boundary subset B of the n own.  Margin: M inside beta_j.
Length normalisation: no.
""",
)
class DynamicDMPOLoss(_DynamicPOBase):
    def per_example(self, batch: PreferenceBatch, mask: Tensor, betas: Tensor) -> Tensor:
        pos, neg = sequence_scores(batch, reference=True, ln=False)
        terms = torch.where(mask, betas * (pos[:, None] - neg), torch.zeros_like(neg))
        return lse_with_zero(-(terms.sum(dim=1) / mask.sum(dim=1))[:, None])


@register_loss(
    "dynamicpo_mppo",
    label="DynamicPO (MPPO)",
    family="listwise",
    order=121,
    compared_with=("mppo",),
    source=LossSource(_PAPER, f"{_EXPLORATORY} L124-146 (filter_mode='DynamicPO_MPPO')"),
    summary="DynamicPO-MPPO: MPPO's probability margin over the boundary negatives, dynamic beta",
    description=_SELECTION
    + """L = softplus(-sum_{j in B} beta_j * (exp(l+) - exp(l-_j)))  (no 1/|B|).
Reference model: no.  Negatives: the boundary subset B.  Margin: M inside beta_j.
Length normalisation: no.
""",
)
class DynamicMPPOLoss(_DynamicPOBase):
    reference = False

    def per_example(self, batch: PreferenceBatch, mask: Tensor, betas: Tensor) -> Tensor:
        pos, neg = batch.chosen_logps, batch.rejected_logps
        terms = torch.where(mask, betas * (pos.exp()[:, None] - neg.exp()), torch.zeros_like(neg))
        return lse_with_zero(-terms.sum(dim=1)[:, None])


@register_loss(
    "dynamicpo_sdpo",
    label="DynamicPO (S-DPO)",
    family="listwise",
    order=122,
    compared_with=("sdpo",),
    source=LossSource(_PAPER, f"{_EXPLORATORY} L152-174 (filter_mode='DynamicPO_SDPO')"),
    summary="DynamicPO-S-DPO: S-DPO softmax over the boundary negatives, dynamic beta, + eps",
    description=_SELECTION
    + """L = log(1 + eps + sum_{j in B} exp(beta_j * [(l-_j - l-_j,ref) - (l+ - l+_ref)])), eps = 1e-8,
computed as a max-shifted log-sum-exp (the released exp-sum overflows).
Reference model: yes.  Negatives: the boundary subset B.  Margin: M inside beta_j.
Length normalisation: no.
""",
)
class DynamicSDPOLoss(_DynamicPOBase):
    HParams = DynamicSDPOHParams

    def per_example(self, batch: PreferenceBatch, mask: Tensor, betas: Tensor) -> Tensor:
        pos, neg = sequence_scores(batch, reference=True, ln=False)
        floor = math.log1p(self.hparams.eps)  # log(e^floor + sum e^x) = floor + LSE(0, x - floor)
        return floor + lse_with_zero(betas * (neg - pos[:, None]) - floor, mask=mask)
