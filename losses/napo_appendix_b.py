"""NAPO-1 and NAPO-2 (NAPO paper, Appendix B): sharing combined with alpha-DPO's margin.

The paper describes them only in prose; the suite's definition (docs/losses.md): n = 1 (each
example's first negative, own and shared), the pool of NAPO, and a per-example margin

    gamma_aDPO,u = gamma0 + alpha_a * beta * M*_u,
    g_u = (l+_u - l-_u1) - (l+_u,ref - l-_u1,ref)   (sums; own negative only),

with M* the alpha-DPO z-score (own EMA state mu, sigma).  NAPO-1 uses it alone; NAPO-2 averages it
with NAPO's batch-level gamma computed on the n = 1 pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recbench.losses.base import REFERENCE_FIELDS, stateful_buffer
from recbench.losses.batch import PreferenceBatch
from recbench.losses.hparams import hp
from recbench.losses.margins import zscore_margin_stats
from recbench.losses.napo import _DETACH, NAPOBase
from recbench.losses.registry import register_loss
from recbench.losses.rewards import reference_scores, sequence_scores
from recbench.losses.sharing import Neighbours
from torch import Tensor


@dataclass(frozen=True)
class NAPO1HParams:
    beta: float = hp(1.0, low=0.0, low_open=True, doc="inverse temperature")
    gamma: float = hp(1.0, low=0.0, doc="base margin gamma0")
    alpha: float = hp(0.2, low=0.0, doc="alpha-DPO margin weight alpha_a (value not in paper)")
    rho: float = hp(0.7, low=0.0, high=1.0, doc="sharing ratio: K = floor((b-1)*rho)")
    momentum: float = hp(0.9, low=0.0, high=1.0, high_open=True, doc="EMA factor of mu, sigma")
    ln: bool = hp(False, doc="length-normalise scores and the margin gap")
    detach_negatives: str = hp("none", choices=_DETACH, doc="negatives without gradient")
    k_floor: str = hp("robust", choices=("robust", "int"), doc="K rounding")
    mask_shared_equal_to_positive: bool = hp(False, doc="drop shared copies of the chosen item")
    update_stats_in_eval: bool = hp(False, doc="also move mu, sigma in eval mode")
    sasrec_state: str = hp("last", choices=("last", "padded_last"), doc="data-pipeline flag")


@dataclass(frozen=True)
class NAPO2HParams:
    beta: float = hp(1.0, low=0.0, low_open=True, doc="inverse temperature")
    gamma: float = hp(1.0, low=0.0, doc="base margin gamma0 (both halves)")
    alpha: float = hp(0.3, low=0.0, doc="NAPO margin sensitivity")
    alpha_a: float = hp(0.2, low=0.0, doc="alpha-DPO margin weight (value not in paper)")
    rho: float = hp(0.7, low=0.0, high=1.0, doc="sharing ratio: K = floor((b-1)*rho)")
    momentum: float = hp(0.9, low=0.0, high=1.0, high_open=True, doc="EMA factor of M_run / R0")
    momentum_a: float = hp(0.9, low=0.0, high=1.0, high_open=True, doc="EMA factor of mu, sigma")
    ln: bool = hp(False, doc="length-normalise scores and the alpha-DPO gap")
    margin_mode: str = hp("official", choices=("official", "paper"), doc="NAPO margin form")
    ema_order: str = hp(
        "update_then_use", choices=("update_then_use", "use_then_update"), doc="NAPO EMA order"
    )
    detach_negatives: str = hp("none", choices=_DETACH, doc="negatives without gradient")
    k_floor: str = hp("robust", choices=("robust", "int"), doc="K rounding")
    mask_shared_equal_to_positive: bool = hp(False, doc="drop shared copies of the chosen item")
    update_stats_in_eval: bool = hp(False, doc="also move the running state in eval mode")
    sasrec_state: str = hp("last", choices=("last", "padded_last"), doc="data-pipeline flag")


class _AlphaMarginMixin(NAPOBase):
    """The alpha-DPO per-example margin over the own (first) negative."""

    def __init__(self, hparams: Any, key: str | None = None) -> None:
        super().__init__(hparams, key)
        stateful_buffer(self, "mu", 0.0)
        stateful_buffer(self, "sigma", 0.0)

    @classmethod
    def all_negatives(cls, hparams: Any) -> bool:
        return False

    def alpha_margin(self, batch: PreferenceBatch, alpha: float, momentum: float) -> Tensor:
        hp_ = self.hparams
        pos, neg = sequence_scores(batch, reference=False, ln=hp_.ln)
        ref_pos, ref_neg = reference_scores(batch, ln=hp_.ln)
        gaps = (pos - neg[:, 0]) - (ref_pos - ref_neg[:, 0])
        z = zscore_margin_stats(gaps, self.mu, self.sigma, momentum, self.should_update_state())
        return hp_.gamma + alpha * hp_.beta * z


@register_loss(
    "napo1",
    family="napo",
    order=80,
    summary="NAPO-1: shared n=1 pool with alpha-DPO's per-example z-scored margin",
    description="""
L_u = LSE(0, gamma_u + beta*(l-_k - l+_u) for k in P_u), P_u = own first negative + first
negatives of the K = floor((b-1)*rho) nearest examples; gamma_u = gamma0 + alpha*beta*M*_u with M*
the z-score of g_u = (l+ - l-_1) - (l+_ref - l-_1,ref) (sums, own negative) under EMA mu, sigma.
Reference model: yes (margin only).  Here 'alpha' is the alpha-DPO weight alpha_a.
Source: NAPO paper App. B prose; suite definition in docs/losses.md (no released code).
""",
)
class NAPO1Loss(_AlphaMarginMixin):
    HParams = NAPO1HParams
    napo_margin_state = False

    @classmethod
    def margin_fields(cls, hparams: Any) -> frozenset[str]:
        return REFERENCE_FIELDS

    def margin(
        self, batch: PreferenceBatch, neighbours: Neighbours, mask: Tensor
    ) -> tuple[Tensor, dict[str, Any]]:
        hp_ = self.hparams
        gamma = self.alpha_margin(batch, hp_.alpha, hp_.momentum)
        return gamma, {"gamma": gamma.mean(), "gamma_min": gamma.min(), "gamma_max": gamma.max()}


@register_loss(
    "napo2",
    family="napo",
    order=81,
    summary="NAPO-2: shared n=1 pool, margin = mean of NAPO's gamma and alpha-DPO's margin",
    description="""
As 'napo1' but gamma_u = (gamma_NAPO + gamma0 + alpha_a*beta*M*_u)/2, where gamma_NAPO is NAPO's
batch-level margin (official or paper form, state M_run / R0) on the n = 1 pool.
Reference model: yes (margin only).  State: M_run, R0 and mu, sigma.
Source: NAPO paper App. B prose; suite definition in docs/losses.md (no released code).
""",
)
class NAPO2Loss(_AlphaMarginMixin):
    HParams = NAPO2HParams

    @classmethod
    def margin_fields(cls, hparams: Any) -> frozenset[str]:
        return REFERENCE_FIELDS | cls.napo_margin_fields(hparams)

    def margin(
        self, batch: PreferenceBatch, neighbours: Neighbours, mask: Tensor
    ) -> tuple[Tensor, dict[str, Any]]:
        hp_ = self.hparams
        gamma_napo, metrics = self.napo_margin(batch, neighbours, mask)
        gamma_alpha = self.alpha_margin(batch, hp_.alpha_a, hp_.momentum_a)
        gamma = (gamma_napo + gamma_alpha) / 2.0
        metrics = {f"napo_{name}": value for name, value in metrics.items()}
        metrics.update({"gamma": gamma.mean(), "gamma_min": gamma.min(), "gamma_max": gamma.max()})
        return gamma, metrics
