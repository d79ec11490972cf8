"""beta-DPO (junkangwu/beta-DPO): DPO whose beta follows the batch's reward gap (docs/losses.md).

Per batch, with h_u = (l+ - l+_ref) - (l-_1 - l-_1,ref):

1. running mean and standard deviation of h (EMA, updated before use, zero start);
2. a random subset S of size |S| = floor(b(1 - rho)), drawn without replacement with weights
   exp(-z^2/2), z = (h - mean)/std, so outlying pairs are likely dropped;
3. beta_used = max(beta * (1 + a * (mean_S h - mean)), 1e-3), without gradient;
4. the DPO loss with beta_used, averaged over S only.

The draw is random, so a resumed run reproduces an uninterrupted one only if the randomness is
part of the saved state: the module owns a CPU generator whose state is the buffer
``rng_state``, saved with the running statistics.  Its first draw starts from the ``seed``
hyper-parameter, or (seed = -1) from a copy of torch's default CPU generator at that moment, so
``torch.manual_seed(s)`` right before the first call draws what ``torch.multinomial`` would
after the same seed.  A subset of size k is the top k of log w - log q with q ~ Exp(1), which is
the sampling ``torch.multinomial`` uses without replacement, and it cannot fail on weights that
underflow to zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from recbench.losses.base import (
    BASE_FIELDS,
    REFERENCE_FIELDS,
    PreferenceLoss,
    as_compute,
    stateful_buffer,
)
from recbench.losses.batch import LossOutput, PreferenceBatch
from recbench.losses.hparams import hp
from recbench.losses.margins import SIGMA_FLOOR
from recbench.losses.registry import register_loss
from recbench.losses.rewards import reward_metrics, sequence_scores
from recbench.losses.sources import LossSource
from recbench.losses.stable import lse_with_zero
from torch import Tensor

BETA_FLOOR = 1e-3
_SOURCE = LossSource(
    "beta-DPO (paper equations UNVERIFIED)",
    "junkangwu/beta-DPO trainers.py L45-102, L242-340 @1629047",
)


@dataclass(frozen=True)
class BetaDPOHParams:
    beta: float = hp(1.0, low=0.0, low_open=True, doc="base beta (README: 0.1)")
    rho: float = hp(
        0.2, low=0.0, high=1.0, high_open=True, doc="fraction of pairs dropped per batch"
    )
    a: float = hp(0.6, doc="sensitivity of beta to the subset's mean gap")
    momentum: float = hp(0.9, low=0.0, high=1.0, high_open=True, doc="EMA factor of the stats")
    k_floor: str = hp(
        "robust",
        choices=("robust", "int"),
        doc="subset size: floor(b(1-rho) + 1e-9) or int(b(1-rho)) (official); at least 1",
    )
    seed: int = hp(
        -1, low=-1, doc="seed of the subset draws; -1: start from torch's default generator"
    )
    update_stats_in_eval: bool = hp(False, doc="also move the statistics in eval mode")


@register_loss(
    "beta_dpo",
    label="beta-DPO",
    family="pairwise",
    order=55,
    compared_with=("dpo",),
    source=_SOURCE,
    summary="beta-DPO: DPO with a batch-adaptive beta on a Gaussian-filtered random subset",
    description="""
h = (l+ - l+_ref) - (l-_1 - l-_1,ref); mean, std <- EMA(mean h, std h) (m = 0.9, before use);
S = floor(b(1-rho)) pairs drawn with weights exp(-((h - mean)/std)^2/2);
beta_used = max(beta*(1 + a*(mean_S h - mean)), 1e-3);  L = sum_{u in S} softplus(-beta_used*h_u)/|S|.
Reference model: yes.  Negatives: the first one.  Margin: none.  Length normalisation: no.
State: gap_mean, gap_std (loss_mean, loss_std logged), rng_state (the draws); training only.
per_example = 1[u in S] * loss_u * b/|S|, so its mean is the loss.
""",
)
class BetaDPOLoss(PreferenceLoss):
    HParams = BetaDPOHParams

    def __init__(self, hparams: Any, key: str | None = None) -> None:
        super().__init__(hparams, key)
        for name in ("gap_mean", "gap_std", "loss_mean", "loss_std"):
            stateful_buffer(self, name, 0.0)
        # empty until the first draw; then the CPU generator's state (a uint8 tensor)
        self.register_buffer("rng_state", torch.empty(0, dtype=torch.uint8), persistent=True)

    @classmethod
    def required_fields(cls, hparams: Any) -> frozenset[str]:
        return BASE_FIELDS | REFERENCE_FIELDS

    @classmethod
    def all_negatives(cls, hparams: Any) -> bool:
        return False

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any) -> None:
        # The generator state's size is fixed only after the first draw; take the saved one's.
        saved = state_dict.get(prefix + "rng_state")
        if saved is not None:
            self.rng_state = torch.empty_like(saved, device=self.rng_state.device)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def _exponentials(self, size: int, keep: bool) -> Tensor:
        """``size`` Exp(1) draws (float64, CPU) from the module's generator; ``keep`` stores the
        advanced generator state (training), otherwise the state is left as it was."""
        generator = torch.Generator()
        if self.rng_state.numel():
            generator.set_state(self.rng_state.cpu())
        elif self.hparams.seed >= 0:
            generator.manual_seed(self.hparams.seed)
        else:
            generator.set_state(torch.get_rng_state())
        draws = torch.empty(size, dtype=torch.float64).exponential_(1.0, generator=generator)
        if keep:
            self.rng_state = generator.get_state().to(self.rng_state.device)
        return draws

    def subset_size(self, b: int) -> int:
        exact = b * (1.0 - self.hparams.rho)
        size = int(exact) if self.hparams.k_floor == "int" else math.floor(exact + 1e-9)
        return max(1, size)

    @torch.no_grad()
    def _update_stats(self, gaps: Tensor, losses: Tensor, update: bool) -> tuple[Tensor, Tensor]:
        """EMA of mean/std of the gaps (and, logged only, of the losses); returns those used."""
        m = self.hparams.momentum
        mean, std = as_compute(self.gap_mean, gaps), as_compute(self.gap_std, gaps)
        if update:
            pairs = [(self.gap_mean, gaps.mean()), (self.loss_mean, losses.mean())]
            if gaps.numel() > 1:  # one pair has no standard deviation
                pairs += [(self.gap_std, gaps.std()), (self.loss_std, losses.std())]
            for buffer, value in pairs:
                buffer.copy_(m * as_compute(buffer, gaps) + (1.0 - m) * value)
            mean, std = as_compute(self.gap_mean, gaps), as_compute(self.gap_std, gaps)
        return mean, std

    def compute(self, batch: PreferenceBatch) -> LossOutput:
        hp_ = self.hparams
        pos, neg = sequence_scores(batch, reference=True, ln=False)
        gaps = pos - neg[:, 0]
        b = gaps.shape[0]
        update = self.should_update_state()
        plain = lse_with_zero(-hp_.beta * gaps.detach()[:, None])
        mean, std = self._update_stats(gaps.detach(), plain, update)
        with torch.no_grad():
            if b > 1 and float(std) > SIGMA_FLOOR:
                z = (gaps.detach() - mean) / std
            else:
                z = torch.zeros_like(gaps)
            noise = self._exponentials(b, keep=update).to(device=gaps.device)
            keys = -0.5 * z.double() ** 2 - noise.log()
            size = self.subset_size(b)
            mask = torch.zeros(b, dtype=gaps.dtype, device=gaps.device)
            mask[keys.topk(size).indices] = 1.0
            subset_gap = (gaps.detach() * mask).sum() / size
            beta_used = (hp_.beta * (1.0 + hp_.a * (subset_gap - mean))).clamp_min(BETA_FLOOR)
        per_pair = lse_with_zero(-(beta_used * gaps)[:, None])
        per_example = per_pair * mask * (b / size)
        metrics: dict = reward_metrics(hp_.beta * pos, hp_.beta * neg)
        metrics.update(
            {
                "mask": mask,
                "beta_used": beta_used,
                "subset_size": size,
                "gap_mean": mean.clone(),
                "gap_std": std.clone(),
            }
        )
        return LossOutput(per_example.mean(), per_example, metrics)


register_loss(
    "beta_dpo_official",
    label="beta-DPO (official)",
    family="pairwise",
    order=56,
    compared_with=("beta_dpo",),
    source=_SOURCE,
    summary="beta-DPO as released: statistics also move in eval mode, int() subset size",
    description="""
As 'beta_dpo' with update_stats_in_eval=True (the released code updates the running statistics on
every batch, evaluation included) and k_floor='int' (int(b(1-rho)), at least 1).
Reference model: yes.  Negatives: the first one.
""",
    defaults={"update_stats_in_eval": True, "k_floor": "int"},
)(BetaDPOLoss)
