"""RecDPO and RecPO (HoytWen/RecPO): S-DPO-style softmax with a margin from preference intensity.

Each example carries a score of its chosen item (s+, ``chosen_scores``) and of each negative (s-,
``rejected_scores``), e.g. a rating decayed by how far in the future the interaction lies.  The
margin mu_j grows with how much more the user prefers y+ than y-_j, and is added to every gap
before the log-sum-exp over negatives (docs/losses.md, 'The field's losses'):

    z_j = s(y-_j) - s(y+) + lam * mu_j,   X = LSE_j(beta * z_j),
    mu_j = (s+/s-_j)/beta              (ratio=True)
    mu_j = log(1 + s+ - s-_j)/beta      (recdpo, ratio=False)
    mu_j = log(1 + (s+ - s-_j)/beta)/beta  (recpo, ratio=False; beta divides twice, as the code)

with s = the reference log-ratio (recdpo) or the (length-normalised) policy log-prob (recpo).
Scores that make the margin infinite or undefined are refused instead of returning inf/NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from recbench.losses.base import BASE_FIELDS, LENGTH_FIELDS, REFERENCE_FIELDS, PreferenceLoss
from recbench.losses.batch import LossOutput, PreferenceBatch
from recbench.losses.hparams import hp
from recbench.losses.registry import register_loss
from recbench.losses.rewards import reward_metrics, sequence_scores
from recbench.losses.sources import LossSource
from recbench.losses.stable import lse_with_zero
from torch import Tensor

from recbench.errors import UserError

SCORE_FIELDS = frozenset({"chosen_scores", "rejected_scores"})
_PAPER = "RecPO (paper UNVERIFIED)"
_SMOOTHING_DOC = "probability that a preference is flipped (sigmoid/simpo forms)"


@dataclass(frozen=True)
class RecDPOHParams:
    beta: float = hp(1.0, low=0.0, low_open=True, doc="inverse temperature")
    lam: float = hp(2.0, low=0.0, doc="weight lambda of the preference-intensity margin")
    ratio: bool = hp(True, doc="margin s+/s- (True) or log(1 + s+ - s-) (False)")
    label_smoothing: float = hp(0.0, low=0.0, high=0.5, high_open=True, doc=_SMOOTHING_DOC)
    loss_type: str = hp(
        "sigmoid", choices=("sigmoid", "hinge", "ipo"), doc="how X = LSE_j(beta*z_j) is scored"
    )


@dataclass(frozen=True)
class RecPOHParams:
    beta: float = hp(1.0, low=0.0, low_open=True, doc="inverse temperature")
    lam: float = hp(0.5, low=0.0, doc="weight lambda of the preference-intensity margin")
    ratio: bool = hp(False, doc="margin s+/s- (True) or log(1 + (s+ - s-)/beta) (False)")
    ln: bool = hp(True, doc="divide log-probs by response length")
    label_smoothing: float = hp(0.0, low=0.0, high=0.5, high_open=True, doc=_SMOOTHING_DOC)
    gamma: float = hp(0.0, low=0.0, doc="SimPO margin added to every beta*z_j (loss_type='simpo')")
    loss_type: str = hp(
        "sigmoid",
        choices=("sigmoid", "hinge", "ipo", "simpo"),
        doc="how X = LSE_j(beta*z_j) is scored",
    )


class _RecPOBase(PreferenceLoss):
    HParams: Any
    reference: bool = True
    #: recpo's non-ratio margin divides the score difference by beta before the log
    scale_difference: bool = False

    @classmethod
    def required_fields(cls, hparams: Any) -> frozenset[str]:
        fields = BASE_FIELDS | SCORE_FIELDS | (REFERENCE_FIELDS if cls.reference else frozenset())
        return fields | (LENGTH_FIELDS if getattr(hparams, "ln", False) else frozenset())

    @classmethod
    def all_negatives(cls, hparams: Any) -> bool:
        return True

    def margin(self, chosen: Tensor, rejected: Tensor) -> Tensor:
        """lam * beta * mu [b, n] (what is added to beta * gap), refusing undefined scores."""
        hp_ = self.hparams
        s_pos = chosen[:, None]
        if hp_.ratio:
            if bool((rejected <= 0).any()):
                raise UserError(f"loss '{self.key}': rejected_scores must be > 0 with ratio=True")
            return hp_.lam * s_pos / rejected
        inner = 1.0 + (s_pos - rejected) / (hp_.beta if self.scale_difference else 1.0)
        if bool((inner <= 0).any()):
            what = "1 + (s+ - s-)/beta" if self.scale_difference else "1 + s+ - s-"
            raise UserError(f"loss '{self.key}': {what} must be > 0 (scores give log of <= 0)")
        return hp_.lam * inner.log()

    def compute(self, batch: PreferenceBatch) -> LossOutput:
        hp_ = self.hparams
        assert batch.chosen_scores is not None and batch.rejected_scores is not None
        pos, neg = sequence_scores(batch, reference=self.reference, ln=getattr(hp_, "ln", False))
        with torch.no_grad():
            margin = self.margin(batch.chosen_scores, batch.rejected_scores)
        logits = hp_.beta * (neg - pos[:, None]) + margin
        if hp_.loss_type == "simpo":
            logits = logits + hp_.gamma
        x = torch.logsumexp(logits, dim=1)
        if hp_.loss_type == "hinge":
            per_example = torch.relu(1.0 + x)
        elif hp_.loss_type == "ipo":
            per_example = (x + 1.0 / (2.0 * hp_.beta)) ** 2
        else:  # sigmoid, simpo: softplus(X) with label smoothing
            eps = hp_.label_smoothing
            per_example = lse_with_zero(x[:, None])
            if eps > 0.0:
                per_example = (1.0 - eps) * per_example + eps * lse_with_zero(-x[:, None])
        metrics: dict = reward_metrics(hp_.beta * pos, hp_.beta * neg)
        metrics["margin"] = margin.mean()
        return LossOutput(per_example.mean(), per_example, metrics)


@register_loss(
    "recdpo",
    label="RecDPO",
    family="softmax",
    order=45,
    compared_with=("sdpo",),
    source=LossSource(_PAPER, "HoytWen/RecPO trainer/rec_dpo_trainer.py @0594d54 (redpo_loss)"),
    summary="RecDPO: S-DPO over all negatives with a margin from chosen vs negative scores",
    description="""
z_j = (l-_j - l-_j,ref) - (l+ - l+_ref) + lam*mu_j, mu_j = (s+/s-_j)/beta (ratio) or
log(1 + s+ - s-_j)/beta;  X = LSE_j(beta*z_j);  L = (1-eps)*softplus(X) + eps*softplus(-X)
(hinge: relu(1 + X); ipo: (X + 1/(2 beta))^2).  Needs chosen_scores (s+), rejected_scores (s-).
Reference model: yes.  Negatives: all n own.  Margin: per negative, from the scores, no gradient.
Length normalisation: no.  Source: rec_dpo.py defaults beta = 1, lam = 2, ratio (n = 3).
""",
)
class RecDPOLoss(_RecPOBase):
    HParams = RecDPOHParams
    reference = True


@register_loss(
    "recpo",
    label="RecPO",
    family="softmax",
    order=46,
    compared_with=("sims_dpo",),
    source=LossSource(_PAPER, "HoytWen/RecPO trainer/rec_cpo_trainer.py @0594d54 (recpo_loss)"),
    summary="RecPO: reference-free, length-normalised RecDPO (SimPO-style), score margin",
    description="""
z_j = l-_j/|y-_j| - l+/|y+| + lam*mu_j, mu_j = (s+/s-_j)/beta (ratio) or
log(1 + (s+ - s-_j)/beta)/beta;  X = LSE_j(beta*z_j) (+ gamma inside for loss_type='simpo');
L = (1-eps)*softplus(X) + eps*softplus(-X).  Needs chosen_scores (s+), rejected_scores (s-).
Reference model: no.  Negatives: all n own.  Margin: per negative, from the scores.
Length normalisation: yes (option ln).  The code's batch-level sft_weight term is not included.
Source: rec_cpo.py defaults beta = 1, lam = 0.5, ratio = False, ln = True.
""",
)
class RecPOLoss(_RecPOBase):
    HParams = RecPOHParams
    reference = False
    scale_difference = True
