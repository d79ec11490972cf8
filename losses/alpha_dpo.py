"""alpha-DPO (Wu et al.): SimPO-style reward with an adaptive, reference-derived margin."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recbench.losses.base import (
    BASE_FIELDS,
    LENGTH_FIELDS,
    REFERENCE_FIELDS,
    PreferenceLoss,
    stateful_buffer,
)
from recbench.losses.batch import LossOutput, PreferenceBatch
from recbench.losses.hparams import hp
from recbench.losses.margins import zscore_margin_stats
from recbench.losses.registry import register_loss
from recbench.losses.rewards import reference_scores, reward_metrics, sequence_scores
from recbench.losses.stable import lse_with_zero


@dataclass(frozen=True)
class AlphaDPOHParams:
    beta: float = hp(1.0, low=0.0, low_open=True, doc="reward scale")
    gamma: float = hp(1.0, low=0.0, doc="base margin gamma0 (reward units)")
    alpha: float = hp(0.2, low=0.0, doc="weight of the normalised gap M* in the margin")
    momentum: float = hp(0.9, low=0.0, high=1.0, high_open=True, doc="EMA factor of mu, sigma")
    ln: bool = hp(True, doc="length-normalise policy and reference log-probs")
    update_stats_in_eval: bool = hp(False, doc="also move mu, sigma in eval mode (official code)")


@register_loss(
    "alpha_dpo",
    family="pairwise",
    order=50,
    summary="alpha-DPO: SimPO reward with a per-example margin from the z-scored ref-policy gap",
    description="""
g = (l+/|y+| - l-/|y-|) - (l+_ref/|y+| - l-_ref/|y-|);  mu, sigma <- EMA(mean g, std g) (m = 0.9,
updated before use, zero init);  M* = (g - mu)/sigma;
L = softplus(-[beta*(l+/|y+| - l-/|y-|) - sg(gamma0 + alpha*beta*M*)]).
Reference model: yes (margin only).  Negatives: the first one.  Margin: per example, adaptive,
no gradient.  State: buffers mu, sigma (updated in training mode only by default).
Source: alpha-DPO repo scripts/dpo_trainer.py (loss_type='alpha-dpo'); suite guards: M* = 0 for
a batch of one or sigma < 1e-12.
""",
)
class AlphaDPOLoss(PreferenceLoss):
    HParams = AlphaDPOHParams

    def __init__(self, hparams: Any, key: str | None = None) -> None:
        super().__init__(hparams, key)
        stateful_buffer(self, "mu", 0.0)
        stateful_buffer(self, "sigma", 0.0)

    @classmethod
    def required_fields(cls, hparams: Any) -> frozenset[str]:
        return BASE_FIELDS | REFERENCE_FIELDS | (LENGTH_FIELDS if hparams.ln else frozenset())

    @classmethod
    def all_negatives(cls, hparams: Any) -> bool:
        return False

    def compute(self, batch: PreferenceBatch) -> LossOutput:
        hp_ = self.hparams
        pos, neg = sequence_scores(batch, reference=False, ln=hp_.ln)
        ref_pos, ref_neg = reference_scores(batch, ln=hp_.ln)
        policy_gap = pos - neg[:, 0]
        gaps = policy_gap - (ref_pos - ref_neg[:, 0])
        z = zscore_margin_stats(
            gaps, self.mu, self.sigma, hp_.momentum, update=self.should_update_state()
        )
        margin = hp_.gamma + hp_.alpha * hp_.beta * z  # [b], detached
        per_example = lse_with_zero(-hp_.beta * policy_gap[:, None], margin[:, None])
        metrics: dict = reward_metrics(hp_.beta * pos, hp_.beta * neg)
        metrics.update(
            {
                "margin": margin.mean(),
                "zscore": z.mean(),
                "mu": self.mu.detach().clone(),
                "sigma": self.sigma.detach().clone(),
            }
        )
        return LossOutput(per_example.mean(), per_example, metrics)
