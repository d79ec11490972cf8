"""DMPO (multi-negative DPO for recommendation) in its two released forms (docs/losses.md).

The two differ in where the mean over negatives sits and in the reference model, and they give
different numbers, so both are keys:

* ``dmpo``: the form DynamicPO implements (and its README states): one logistic term on the
  chosen log-ratio minus the *mean* of the negatives' log-ratios.
* ``dmpo_code``: what the original DMPO repository computes.  It passes the reference's chosen
  log-prob in both reference slots of TRL's DPO loss, so the reference cancels and each negative
  is its own reference-free DPO pair; an SFT term (mean token NLL of the chosen response) is
  added per row, and the batch loss averages the rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recbench.losses.base import BASE_FIELDS, LENGTH_FIELDS, REFERENCE_FIELDS, PreferenceLoss
from recbench.losses.batch import LossOutput, PreferenceBatch
from recbench.losses.hparams import hp
from recbench.losses.registry import register_loss
from recbench.losses.rewards import reward_metrics, sequence_scores
from recbench.losses.sources import LossSource
from recbench.losses.stable import lse_with_zero

_DMPO_PAPER = "DMPO, arXiv 2405.16127 (CIKM'24 per the DynamicPO README; paper body UNVERIFIED)"


@dataclass(frozen=True)
class DMPOHParams:
    beta: float = hp(1.0, low=0.0, low_open=True, doc="inverse temperature")


@register_loss(
    "dmpo",
    label="DMPO",
    family="listwise",
    order=100,
    compared_with=("sdpo",),
    source=LossSource(
        _DMPO_PAPER,
        "xingyuHuxingyu/DynamicPO trainer/dynamicpo_trainer.py @e54f5e4 (filter_mode='DMPO')",
    ),
    summary="DMPO: one logistic term, chosen log-ratio vs the mean of all n negatives' log-ratios",
    description="""
L = softplus(-[beta*(l+ - l+_ref) - (beta/n) * sum_j (l-_j - l-_j,ref)]).
Reference model: yes.  Negatives: all n own (mean inside the sigmoid).  Margin: none.
Length normalisation: no.  Source: DynamicPO's implementation of DMPO (beta = 1 as its DMPO.sh).
""",
)
class DMPOLoss(PreferenceLoss):
    HParams = DMPOHParams

    @classmethod
    def required_fields(cls, hparams: Any) -> frozenset[str]:
        return BASE_FIELDS | REFERENCE_FIELDS

    @classmethod
    def all_negatives(cls, hparams: Any) -> bool:
        return True

    def compute(self, batch: PreferenceBatch) -> LossOutput:
        beta = self.hparams.beta
        pos, neg = sequence_scores(batch, reference=True, ln=False)
        gap = beta * (neg.mean(dim=1) - pos)  # the logistic term is softplus of this
        per_example = lse_with_zero(gap[:, None])
        metrics: dict = reward_metrics(beta * pos, beta * neg)
        return LossOutput(per_example.mean(), per_example, metrics)


@dataclass(frozen=True)
class DMPOCodeHParams:
    beta: float = hp(0.1, low=0.0, low_open=True, doc="inverse temperature")
    ftx: float = hp(
        1.0, low=0.0, doc="weight of the SFT term (mean token NLL of the chosen response)"
    )


@register_loss(
    "dmpo_code",
    label="DMPO (released code)",
    family="listwise",
    order=101,
    compared_with=("dmpo",),
    source=LossSource(_DMPO_PAPER, "BZX667/DMPO trainer.py L149-160 @fe6ecb5"),
    summary="DMPO as released: reference-free DPO pair per negative, averaged, plus ftx * SFT",
    description="""
Per example: L = (1/n) * sum_j [softplus(-beta*(l+ - l-_j)) - ftx * l+/|y+|].
Reference model: no (the released code passes the reference chosen log-prob in both slots, so it
cancels).  Negatives: all n own, one pair each, mean outside the sigmoid.  Margin: none.
Length normalisation: only in the SFT term (needs lengths when ftx > 0).
Source: BZX667/DMPO (trl 0.8 dpo_loss, sigmoid, no label smoothing); beta = 0.1, ftx = 1.
""",
)
class DMPOCodeLoss(PreferenceLoss):
    HParams = DMPOCodeHParams

    @classmethod
    def required_fields(cls, hparams: Any) -> frozenset[str]:
        # Only |y+| is read; the base class checks both length fields together.
        return BASE_FIELDS | (LENGTH_FIELDS if hparams.ftx > 0.0 else frozenset())

    @classmethod
    def all_negatives(cls, hparams: Any) -> bool:
        return True

    def compute(self, batch: PreferenceBatch) -> LossOutput:
        hp_ = self.hparams
        pos, neg = sequence_scores(batch, reference=False, ln=False)
        per_pair = lse_with_zero(hp_.beta * (neg - pos[:, None])[..., None])  # [b, n]
        per_example = per_pair.mean(dim=1)
        metrics: dict = reward_metrics(hp_.beta * pos, hp_.beta * neg)
        if hp_.ftx > 0.0:
            assert batch.chosen_lengths is not None
            sft = -pos / batch.chosen_lengths
            per_example = per_example + hp_.ftx * sft
            metrics["sft_loss"] = sft.detach().mean()
        return LossOutput(per_example.mean(), per_example, metrics)
