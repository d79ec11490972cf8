"""Adaptive margins and their running state (no gradient ever flows through a margin).

Two mechanisms, shared by several losses:

* :func:`zscore_margin_stats` - alpha-DPO's per-example normalised gap M* = (g - mu) / sigma with
  exponential moving averages of the batch mean and (Bessel) standard deviation of g, updated
  *before* use, zero-initialised, no bias correction (as the alpha-DPO code).  Used by
  ``alpha_dpo``, ``napo1`` and ``napo2``.
* :func:`napo_batch_margin` - NAPO's batch-level gamma from the mean relevance of the pooled
  negatives: the official score-space form (``M_run`` state, update-then-use) or the paper's
  confidence form (``R0`` state, first-batch initialisation, use-then-update).

State tensors are float64 buffers owned by the loss module; these functions read them and, when
``update`` is true, overwrite them in place - once per forward call.
"""

from __future__ import annotations

import torch
from recbench.losses.base import as_compute
from torch import Tensor

#: sigma below this (e.g. a fresh state, or identical gaps) gives M* = 0 instead of 0/0.
SIGMA_FLOOR = 1e-12


@torch.no_grad()
def zscore_margin_stats(
    gaps: Tensor, mu: Tensor, sigma: Tensor, momentum: float, update: bool
) -> Tensor:
    """M* [b] for the policy-vs-reference gaps ``gaps`` [b]; updates ``mu``/``sigma`` if asked.

    A batch of one has no standard deviation: the statistics are left untouched and M* = 0.
    In evaluation without updates the stored statistics are used as they are.
    """
    g = gaps.detach()
    mu_now, sigma_now = as_compute(mu, g), as_compute(sigma, g)
    if g.numel() < 2:
        return torch.zeros_like(g)
    if update:
        mu_now = momentum * mu_now + (1.0 - momentum) * g.mean()
        sigma_now = momentum * sigma_now + (1.0 - momentum) * g.std()
        mu.copy_(mu_now)
        sigma.copy_(sigma_now)
    ok = sigma_now > SIGMA_FLOOR
    return torch.where(ok, (g - mu_now) / sigma_now.clamp_min(SIGMA_FLOOR), torch.zeros_like(g))


@torch.no_grad()
def napo_batch_margin(
    statistic: Tensor,
    *,
    mode: str,
    state: Tensor,
    gamma0: float,
    alpha: float,
    momentum: float,
    ema_order: str,
    update: bool,
) -> tuple[Tensor, Tensor]:
    """NAPO's batch-level gamma (0-d) and the reference level it was compared with.

    ``mode="official"``: ``statistic`` is S_B, the mean owner score of all pooled negatives;
    ``state`` is M_run; gamma = gamma0 * (1 - alpha * (S_B - M_run)).  Higher relevance of the
    negatives to their users -> smaller margin.
    ``mode="paper"``: ``statistic`` is C_B, the mean confidence (1 - S~)/2 with receiver-paired
    scores; ``state`` is R0 (NaN until the first batch sets it); gamma = gamma0 *
    (1 + alpha * (C_B - R0)).
    ``ema_order``: ``"update_then_use"`` (official code) compares with the state after this
    batch's update, ``"use_then_update"`` (paper Eqs. 16-17) with the state before it.  Without
    ``update`` (evaluation) the stored state is used as it is and left unchanged.
    """
    stat = statistic.detach()
    previous = as_compute(state, stat)
    if mode == "paper":
        previous = torch.where(torch.isnan(previous), stat, previous)
    elif mode != "official":
        raise ValueError(f"unknown margin mode {mode!r}")
    updated = momentum * previous + (1.0 - momentum) * stat
    level = updated if (update and ema_order == "update_then_use") else previous
    if update:
        state.copy_(updated)
    sign = -1.0 if mode == "official" else 1.0
    gamma = gamma0 * (1.0 + sign * alpha * (stat - level))
    return gamma, level
