"""The one numerical primitive every loss of the suite reduces to.

For an example with gaps d_1..d_N (d = beta * (score(negative) - score(chosen))) and margin gamma,

    L = log(1 + e^gamma * sum_k e^{d_k}) = LSE([0, gamma + d_1, ..., gamma + d_N]).

Pairwise losses are N = 1 (L = softplus(gamma + d)); S-DPO/NAPO are softplus(gamma + LSE(d)),
which is the same thing.  The official implementations exponentiate the gaps first and overflow
to ``inf`` (or give NaN gradients) once a gap exceeds ~88 in fp32; ``torch.logsumexp`` over the
concatenated vector subtracts the maximum first, so values and gradients stay finite for any
finite gap.  The gradient w.r.t. d_k is the softmax weight of entry k, which is what makes the
"how much does each negative push" reading of these losses exact.
"""

from __future__ import annotations

import torch
from torch import Tensor


def compute_dtype(tensor: Tensor) -> torch.dtype:
    """float64 stays float64; everything else (bf16, fp16, fp32) is computed in float32.

    bf16 has an 8-bit mantissa: a log-prob of -1000 is only known to +-4 there, so the losses
    upcast before forming differences.  Outputs are returned in this compute dtype.
    """
    return torch.float64 if tensor.dtype == torch.float64 else torch.float32


def lse_with_zero(
    gaps: Tensor,
    margin: Tensor | float = 0.0,
    mask: Tensor | None = None,
) -> Tensor:
    """``logsumexp([0, margin + gaps[..., 0], ..., margin + gaps[..., N-1]])`` over the last dim.

    ``margin`` broadcasts against ``gaps`` (a scalar, or shape [..., 1] for a per-example margin).
    ``mask`` (bool, same shape as ``gaps``) drops entries: they become ``-inf`` and contribute
    neither value nor gradient.  The leading 0 is always present, so the result is >= 0 and finite
    even when every entry is masked.
    """
    shifted = gaps + margin
    if mask is not None:
        shifted = shifted.masked_fill(~mask, float("-inf"))
    zero = shifted.new_zeros((*shifted.shape[:-1], 1))
    return torch.logsumexp(torch.cat([zero, shifted], dim=-1), dim=-1)


def masked_mean(values: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean of ``values`` over the entries where ``mask`` is true (all entries if no mask)."""
    if mask is None:
        return values.mean()
    weights = mask.to(values.dtype)
    return (values * weights).sum() / weights.sum().clamp_min(1.0)
