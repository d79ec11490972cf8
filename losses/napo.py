"""NAPO (negative-aware preference optimisation), its presets and its Table-3 ablations.

Per example u, the pool P_u holds u's n own negatives plus all n negatives of each of its K nearest
neighbours (:mod:`recbench.losses.sharing`); with gaps d = beta*(s(neg) - s(y+_u)),

    L_u = LSE(0, gamma + d_k for k in P_u)        (= -log sigma(log p_u - gamma), paper Eq. 12)

where gamma is one batch-level, gradient-free margin (:mod:`recbench.losses.margins`).  Shared values are
the log-probs the neighbour computed under its *own* prompt; nothing is re-decoded.

The ablations are the same class with some hyper-parameters pinned (see the registrations below),
so "NAPO w/o NS" is literally NAPO with rho = 0, not a re-implementation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from recbench.losses.base import (
    BASE_FIELDS,
    LENGTH_FIELDS,
    REFERENCE_FIELDS,
    PreferenceLoss,
    stateful_buffer,
)
from recbench.losses.batch import LossOutput, PreferenceBatch
from recbench.losses.hparams import hp
from recbench.losses.margins import napo_batch_margin
from recbench.losses.registry import register_loss
from recbench.losses.rewards import reward_metrics, sequence_scores
from recbench.losses.sharing import Neighbours, find_neighbours, num_shared_neighbours
from recbench.losses.stable import lse_with_zero, masked_mean
from torch import Tensor

from recbench.errors import UserError

_DETACH = ("none", "shared", "all")


@dataclass(frozen=True)
class NAPOHParams:
    beta: float = hp(1.0, low=0.0, low_open=True, doc="inverse temperature")
    gamma: float = hp(1.0, low=0.0, doc="base margin gamma0 (reward units; 0 = no margin)")
    alpha: float = hp(0.3, low=0.0, doc="sensitivity of gamma to the batch statistic (0 = fixed)")
    rho: float = hp(0.7, low=0.0, high=1.0, doc="sharing ratio: K = floor((b-1)*rho)")
    momentum: float = hp(0.9, low=0.0, high=1.0, high_open=True, doc="EMA factor of M_run / R0")
    reward: str = hp(
        "policy", choices=("policy", "ref_ratio"), doc="score: log pi, or log pi - log pi_ref"
    )
    ln: bool = hp(False, doc="divide every score by its own response length")
    margin_mode: str = hp(
        "official",
        choices=("official", "paper"),
        doc="official: raw owner scores, M_run; paper: confidence of receiver scores, R0",
    )
    ema_order: str = hp(
        "update_then_use",
        choices=("update_then_use", "use_then_update"),
        doc="compare the batch statistic with the running level after or before its update",
    )
    detach_negatives: str = hp(
        "none", choices=_DETACH, doc="which negatives get no gradient: none, shared, all (official)"
    )
    k_floor: str = hp(
        "robust", choices=("robust", "int"), doc="K rounding: floor(x + 1e-9) or int(x) (official)"
    )
    mask_shared_equal_to_positive: bool = hp(
        False, doc="drop shared negatives whose item is u's chosen item (needs item ids)"
    )
    update_stats_in_eval: bool = hp(False, doc="also move the running state in eval mode")
    sasrec_state: str = hp(
        "last",
        choices=("last", "padded_last"),
        doc="data-pipeline flag for the trainer: SASRec state at len_seq-1 or at the padded end",
    )


class NAPOBase(PreferenceLoss):
    """Pooled-softmax machinery shared by NAPO, its ablations and the Appendix-B variants.

    Subclasses define the margin (:meth:`margin`, a 0-d or [b] tensor without gradient) and
    which score the pool compares (:meth:`reference_reward`).
    """

    HParams: Any
    #: False for losses without NAPO's batch margin (no M_run / R0 buffers then).
    napo_margin_state: bool = True

    def __init__(self, hparams: Any, key: str | None = None) -> None:
        super().__init__(hparams, key)
        if self.napo_margin_state:
            stateful_buffer(self, "M_run", 0.0)
            stateful_buffer(self, "R0", float("nan"))

    # -- subclass hooks ------------------------------------------------------------------------
    @classmethod
    def reference_reward(cls, hparams: Any) -> bool:
        return False

    @classmethod
    def margin_fields(cls, hparams: Any) -> frozenset[str]:
        return frozenset()

    def margin(
        self, batch: PreferenceBatch, neighbours: Neighbours, mask: Tensor
    ) -> tuple[Tensor, dict[str, Any]]:
        raise NotImplementedError

    # -- shared --------------------------------------------------------------------------------
    @classmethod
    def required_fields(cls, hparams: Any) -> frozenset[str]:
        fields = set(BASE_FIELDS)
        if cls.reference_reward(hparams):
            fields |= REFERENCE_FIELDS
        if hparams.ln:
            fields |= LENGTH_FIELDS
        if hparams.rho > 0.0:
            fields.add("seq_embeddings")
            if hparams.mask_shared_equal_to_positive:
                fields |= {"chosen_item_ids", "rejected_item_ids"}
        return frozenset(fields) | cls.margin_fields(hparams)

    @classmethod
    def all_negatives(cls, hparams: Any) -> bool:
        return True

    def neighbours(self, batch: PreferenceBatch) -> Neighbours:
        """The sharing table of this batch (K = 0 without sharing or for b = 1)."""
        hp_ = self.hparams
        k = num_shared_neighbours(batch.batch_size, hp_.rho, hp_.k_floor)
        if k == 0:
            return Neighbours.none(batch.batch_size, batch.chosen_logps.device)
        assert batch.seq_embeddings is not None
        return find_neighbours(batch.seq_embeddings, k, batch.example_ids)

    def compute(self, batch: PreferenceBatch) -> LossOutput:
        hp_ = self.hparams
        n = batch.num_negatives
        pos, neg = sequence_scores(batch, reference=self.reference_reward(hp_), ln=hp_.ln)
        nbrs = self.neighbours(batch)
        own = neg.detach() if hp_.detach_negatives == "all" else neg
        shared_from = neg.detach() if hp_.detach_negatives in ("shared", "all") else neg
        pooled = nbrs.pool(own, shared_from)  # [b, n(1+K)]
        mask = nbrs.pool_mask(n)
        if hp_.mask_shared_equal_to_positive and nbrs.k > 0:
            same = nbrs.shared(batch.rejected_item_ids) == batch.chosen_item_ids[:, None]
            own_ok = torch.ones_like(mask[:, :n])
            mask = mask & torch.cat([own_ok, ~same], dim=1)
        gamma, metrics = self.margin(batch, nbrs, mask)
        if gamma.dim() == 1:
            gamma = gamma[:, None]
        gaps = hp_.beta * (pooled - pos[:, None])
        per_example = lse_with_zero(gaps, gamma.to(gaps.dtype), mask)
        metrics.update(reward_metrics(hp_.beta * pos, hp_.beta * pooled, mask))
        pool_sizes = mask.sum(dim=1)
        metrics.update(
            {
                "K": nbrs.k,
                "pool_size": pool_sizes.to(pooled.dtype).mean(),
                "pool_size_min": pool_sizes.min(),
            }
        )
        return LossOutput(per_example.mean(), per_example, metrics)

    # -- NAPO's own batch-level margin (also used by NAPO-2) -----------------------------------
    @staticmethod
    def napo_margin_is_dynamic(hparams: Any) -> bool:
        return hparams.alpha > 0.0 and hparams.gamma > 0.0

    @classmethod
    def napo_margin_fields(cls, hparams: Any) -> frozenset[str]:
        if not cls.napo_margin_is_dynamic(hparams):
            return frozenset()
        if hparams.margin_mode == "paper":
            return frozenset({"receiver_scores"})
        return frozenset({"rejected_scores"})

    def napo_margin(
        self, batch: PreferenceBatch, nbrs: Neighbours, mask: Tensor
    ) -> tuple[Tensor, dict[str, Any]]:
        """Batch-level gamma (0-d) from the pooled negatives' relevance; see margins.py."""
        hp_ = self.hparams
        dtype, device = batch.chosen_logps.dtype, batch.chosen_logps.device
        if not self.napo_margin_is_dynamic(hp_):
            return torch.tensor(hp_.gamma, dtype=dtype, device=device), {"gamma": hp_.gamma}
        with torch.no_grad():
            if hp_.margin_mode == "paper":
                receiver = nbrs.pool_receiver(batch.receiver_scores)
                if bool((receiver.abs() > 1.0 + 1e-6).any()):
                    raise UserError(
                        f"loss '{self.key}': receiver_scores must lie in [-1, 1] for the "
                        "paper margin (e.g. cosine similarities)"
                    )
                statistic = masked_mean((1.0 - receiver) / 2.0, mask)
                state, name = self.R0, "R0"
            else:
                statistic = masked_mean(nbrs.pool(batch.rejected_scores), mask)
                state, name = self.M_run, "M_run"
            gamma, level = napo_batch_margin(
                statistic,
                mode=hp_.margin_mode,
                state=state,
                gamma0=hp_.gamma,
                alpha=hp_.alpha,
                momentum=hp_.momentum,
                ema_order=hp_.ema_order,
                update=self.should_update_state(),
            )
        return gamma, {"gamma": gamma, "margin_statistic": statistic, f"{name}_used": level}


class NAPOLoss(NAPOBase):
    """NAPO and its Table-3 ablations (one class, presets differ only in hyper-parameters)."""

    HParams = NAPOHParams

    @classmethod
    def reference_reward(cls, hparams: Any) -> bool:
        return hparams.reward == "ref_ratio"

    @classmethod
    def margin_fields(cls, hparams: Any) -> frozenset[str]:
        return cls.napo_margin_fields(hparams)

    def margin(
        self, batch: PreferenceBatch, neighbours: Neighbours, mask: Tensor
    ) -> tuple[Tensor, dict[str, Any]]:
        return self.napo_margin(batch, neighbours, mask)


_NAPO_TEXT = """
L_u = LSE(0, gamma + beta*(l-_k - l+_u) for k in P_u),  P_u = u's n negatives + the n negatives of
each of its K = floor((b-1)*rho) most similar other examples (inner product of seq_embeddings,
stable ties; each shared log-prob is the owner's, under the owner's prompt).
Reference model: no.  Length normalisation: no.
"""

register_loss(
    "napo",
    label="NAPO",
    compared_with=("sdpo",),
    ablation_row=0,
    family="napo",
    order=60,
    summary="NAPO: softmax over own + neighbours' negatives with a batch-level dynamic margin",
    description=_NAPO_TEXT
    + """Margin (official form): S_B = mean owner score over all pools;
M_run <- m*M_run + (1-m)*S_B;
gamma = gamma0*(1 - alpha*(S_B - M_run)), no gradient; state buffer M_run (training mode only).
Gradients reach the chosen and every pooled negative.  Source: NAPO paper Eqs. 11-17 and official
code (margin semantics), suite fixes for gradients, ties, floor and distributed batches.
""",
)(NAPOLoss)

register_loss(
    "napo_official",
    family="napo",
    order=61,
    summary="NAPO as the released code runs it: no gradient through negatives, int() K",
    description=_NAPO_TEXT
    + """Preset of 'napo' with detach_negatives='all' (only the chosen log-prob gets gradient),
k_floor='int', sasrec_state='padded_last' (data pipeline), update_stats_in_eval=True.
The official multi-GPU own-negative indexing bug and per-process gamma are not reproduced:
gamma is computed once on the global micro-batch.
""",
    defaults={
        "detach_negatives": "all",
        "k_floor": "int",
        "sasrec_state": "padded_last",
        "update_stats_in_eval": True,
    },
)(NAPOLoss)

register_loss(
    "napo_paper",
    family="napo",
    order=62,
    summary="NAPO with the paper's margin: receiver-paired confidences, use-then-update R0",
    description=_NAPO_TEXT
    + """Margin (paper Eqs. 15-17): conf = (1 - S~(s_u, y))/2 with receiver_scores in [-1, 1];
C_B = mean conf over all pools; gamma = gamma0*(1 + alpha*(C_B - R0)), then R0 <- m*R0 + (1-m)*C_B;
R0 starts at the first batch's C_B.  Full gradients.  State buffer R0 (NaN until set).
""",
    defaults={"margin_mode": "paper", "ema_order": "use_then_update"},
)(NAPOLoss)

register_loss(
    "sdpo_ns",
    label="S-DPO + NS",
    compared_with=("napo",),
    ablation_row=1,
    family="ablation",
    order=70,
    summary="S-DPO + NS: S-DPO (reference log-ratios) over NAPO's shared negative pool, no margin",
    description=_NAPO_TEXT.replace("Reference model: no.", "Reference model: yes.")
    + """Scores are beta*(l - l_ref) for the chosen item and every pooled negative (each under its
owner's prompt); gamma = 0.  Table-3 ablation, defined by analogy (not in the released code).
""",
    defaults={"reward": "ref_ratio", "gamma": 0.0, "alpha": 0.0},
    fixed={"reward", "gamma", "alpha"},
)(NAPOLoss)

register_loss(
    "napo_ln",
    label="w/ length norm",
    compared_with=("napo",),
    ablation_row=2,
    family="ablation",
    order=71,
    summary="NAPO w/ Length Norm: NAPO on l/|y| scores (each response by its own length)",
    description=_NAPO_TEXT.replace("Length normalisation: no.", "Length normalisation: yes.")
    + "Margin as 'napo'.  Table-3 ablation.\n",
    defaults={"ln": True},
    fixed={"ln"},
)(NAPOLoss)

register_loss(
    "napo_no_ns",
    label="w/o NS",
    compared_with=("napo",),
    ablation_row=3,
    family="ablation",
    order=72,
    summary="NAPO w/o NS: own negatives only (K = 0), dynamic margin from own negatives",
    description="""
L_u = LSE(0, gamma + beta*(l-_uj - l+_u), j = 1..n); gamma as 'napo' with S_B the mean owner
score of the own negatives.  Reference model: no.  Negatives: all n own, with gradient.
Table-3 ablation (official code batch_shared=False).
""",
    defaults={"rho": 0.0},
    fixed={"rho"},
)(NAPOLoss)

register_loss(
    "napo_no_dyn",
    label="w/o dynamic gamma",
    compared_with=("napo",),
    ablation_row=4,
    family="ablation",
    order=73,
    summary="NAPO w/o Dynamic gamma: shared pool with the fixed margin gamma0",
    description=_NAPO_TEXT + "Margin: gamma = gamma0 (alpha = 0); no state.  Table-3 ablation.\n",
    defaults={"alpha": 0.0},
    fixed={"alpha"},
)(NAPOLoss)

register_loss(
    "napo_no_ns_gamma",
    label="w/o NS & gamma",
    compared_with=("napo",),
    ablation_row=5,
    family="ablation",
    order=74,
    summary="NAPO w/o NS & gamma: own negatives, no margin (identical to SimS-DPO)",
    description="""
L_u = LSE(0, beta*(l-_uj - l+_u), j = 1..n): K = 0, gamma = 0.  Reference model: no.
Negatives: all n own.  Table-3 ablation; equals 'sims_dpo'.
""",
    defaults={"rho": 0.0, "gamma": 0.0, "alpha": 0.0},
    fixed={"rho", "gamma", "alpha"},
)(NAPOLoss)

register_loss(
    "napo_no_ns_dyn",
    label="w/o NS & dynamic gamma",
    compared_with=("napo",),
    ablation_row=6,
    family="ablation",
    order=75,
    summary="NAPO w/o NS & Dynamic gamma: own negatives with the fixed margin gamma0",
    description="""
L_u = LSE(0, gamma0 + beta*(l-_uj - l+_u), j = 1..n): K = 0, alpha = 0.  Reference model: no.
Negatives: all n own.  Table-3 ablation; equals 'sims_dpo' with gamma = gamma0.
""",
    defaults={"rho": 0.0, "alpha": 0.0},
    fixed={"rho", "alpha"},
)(NAPOLoss)
