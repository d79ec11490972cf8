"""Finite values and gradients at log-probability gaps of +-1000 in float32 and bfloat16.

exp(1000) overflows every floating type, so these pass only if each loss goes through the
max-shifted log-sum-exp (LOSSES.md section 2) and upcasts low-precision inputs before forming
differences.
"""

from __future__ import annotations

import pytest
import torch

import losses

CHOSEN = [-1000.0, -1.0, -2.0, -1001.0]
REJECTED = [[-1.0, -3.0], [-1001.0, -1000.0], [-1.5, -1002.0], [-2.0, -1.0]]


def extreme_batch(dtype: torch.dtype) -> losses.PreferenceBatch:
    def t(values, **kw) -> torch.Tensor:
        return torch.tensor(values, dtype=dtype, **kw)

    return losses.PreferenceBatch(
        chosen_logps=t(CHOSEN, requires_grad=True),
        rejected_logps=t(REJECTED, requires_grad=True),
        # reference flipped so that the DPO-style gaps are about +-2000 as well
        ref_chosen_logps=t([-1.0, -1000.0, -999.0, -2.0]),
        ref_rejected_logps=t([[-1000.0, -2.0], [-1.0, -3.0], [-1000.0, -1.0], [-999.0, -1000.0]]),
        chosen_lengths=t([1.0, 1.0, 1.0, 1.0]),
        rejected_lengths=t([[1.0, 1.0]] * 4),
        seq_embeddings=t([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.5]]),
        rejected_scores=t([[0.5, -0.5], [1.0, 0.0], [-1.0, 0.25], [0.0, 0.75]]),
        receiver_scores=torch.linspace(-1.0, 1.0, 32).reshape(4, 4, 2).to(dtype),
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("key", losses.loss_keys())
def test_finite_at_extreme_gaps(key: str, dtype: torch.dtype) -> None:
    batch = extreme_batch(dtype)
    out = losses.get_loss(key)(batch)
    assert out.per_example.dtype == torch.float32  # the documented compute/return dtype
    assert torch.isfinite(out.per_example).all() and torch.isfinite(out.loss)
    assert out.loss.item() > 100.0  # some gap of ~1000 is violated: the loss must be that large
    out.loss.backward()
    for leaf in (batch.chosen_logps, batch.rejected_logps):
        if leaf.grad is not None:
            assert leaf.grad.dtype == dtype
            assert torch.isfinite(leaf.grad).all()
    assert batch.chosen_logps.grad is not None and batch.chosen_logps.grad.abs().sum() > 0


@pytest.mark.parametrize("key", losses.loss_keys())
def test_bfloat16_is_upcast_before_differencing(key: str) -> None:
    """Same result as float64 on the (exactly representable) bf16 input values."""
    low = losses.get_loss(key)(extreme_batch(torch.bfloat16)).per_example
    high_batch = extreme_batch(torch.bfloat16)
    high_batch = high_batch.to_dtype(torch.float64)
    high = losses.get_loss(key)(high_batch).per_example
    torch.testing.assert_close(low.double(), high, rtol=1e-5, atol=1e-5)


def test_primitive_directly() -> None:
    gaps = torch.tensor([[1000.0, -1000.0], [-1000.0, -1000.0], [0.0, 0.0]], requires_grad=True)
    value = losses.lse_with_zero(gaps, 1.0)
    torch.testing.assert_close(value[0], torch.tensor(1001.0))
    assert value[1].item() == 0.0
    torch.testing.assert_close(value[2], torch.log(1 + 2 * torch.exp(torch.tensor(1.0))))
    value.sum().backward()
    assert torch.isfinite(gaps.grad).all()
    torch.testing.assert_close(gaps.grad[0], torch.tensor([1.0, 0.0]))
