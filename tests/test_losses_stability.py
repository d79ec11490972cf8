"""Finite values and gradients at log-probability gaps of +-1000 in float32 and bfloat16.

exp(1000) overflows every floating type, so these pass only if each loss goes through the
max-shifted log-sum-exp (docs/losses.md, 'Numerical stability') and upcasts low-precision inputs before forming
differences.
"""

from __future__ import annotations

import math

import pytest
import torch

from recbench import losses

CHOSEN = [-1000.0, -1.0, -2.0, -1001.0]
REJECTED = [[-1.0, -3.0], [-1001.0, -1000.0], [-1.5, -1002.0], [-2.0, -1.0]]
N = len(REJECTED[0])


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


#: Losses bounded by construction (docs/losses.md), as the largest per-example value their
#: formula allows at the key's defaults (``hp``) on this batch (n = 2, every l <= 0).  A gap of
#: ~1000 cannot make them large; every loss not listed here (or in ADAPTIVE_BETA) is unbounded
#: in a violated gap and must exceed 100 below.
BOUNDED = {
    # 3.3: softplus(-beta*[n*e^l+ - sum_j e^l-_j]) with sequence probabilities e^l in [0, 1] for
    # l <= 0 (section 2: "bounded (|arg| <= beta*n*max p)"): at most softplus(beta*n).
    "mppo": lambda hp: softplus(hp["beta"] * N),
    # 3.6: softplus(-sum_{j in B} beta_j*(e^l+ - e^l-_j)), beta_j < 3*beta/2 (3.4 step 4) and
    # |B| <= n, no 1/|B|: at most softplus(1.5*beta*n).
    "dynamicpo_mppo": lambda hp: softplus(1.5 * hp["beta"] * N),
    # 3.10: sigma(x)(log sigma(x) - log(1-eps)) + sigma(-x)(log sigma(-x) - log eps) is the KL of
    # Bernoulli(sigma(x)) from Bernoulli(1-eps), x = beta*h: at most -log eps (eps < 1/2).
    "trl_exo_pair": lambda hp: -math.log(hp["label_smoothing"]),
    # 3.10: 1 - sigma(beta*cp) + sigma(beta*cn): two sigmoids, in [0, 2].
    "trl_apo_zero": lambda hp: 2.0,
    # 3.10: sigma(beta*cp) + 1 - sigma(beta*h): in [0, 2].
    "trl_apo_down": lambda hp: 2.0,
}
#: beta-DPO (3.8) is softplus(-beta_used*h), unbounded in h at a fixed beta_used, but step 3 sets
#: beta_used = max(beta*(1 + a*(mean_S h - mu)), 1e-3): here the kept pairs' mean gap (~-1300)
#: lies far below mu (~-100), so beta_used sits on its floor 1e-3 and a gap of ~2000 costs only
#: ~softplus(2).  (Step 2 keeps both pairs with h ~ -2000: their weights exp(-z^2/2) exceed the
#: h ~ +2000 pair's by ~e^30, and |S| = 3 of 4.)  With a = 0, beta_used = beta and the loss is large.
ADAPTIVE_BETA = {"beta_dpo", "beta_dpo_official"}
BETA_FLOOR = 1e-3
#: 3.10: trl_apo_zero reads l+ only through sigma(beta*cp), and |cp| >= 997 on every row here, so
#: its gradient is exactly 0 (sigma' underflows).  Every other loss has an unsaturated term on some
#: row and must pass some gradient to the chosen log-probs.
SATURATED = {"trl_apo_zero"}


def extreme_batch(key: str, dtype: torch.dtype) -> losses.PreferenceBatch:
    """The fields ``key`` declares (its spec's ``requires``), in ``dtype``."""

    def t(values, **kw) -> torch.Tensor:
        return torch.tensor(values, dtype=dtype, **kw)

    requires = losses.get_spec(key).requires
    if "chosen_scores" in requires:
        # RecDPO/RecPO (3.9): decayed ratings s+, s- > 0 with 1 + (s+ - s-)/beta > 0, so every
        # margin variant is defined; exactly representable in bfloat16
        rejected_scores = [[0.5, 0.25], [1.0, 0.5], [0.75, 1.5], [0.25, 0.5]]
    else:  # NAPO's scores of the negatives
        rejected_scores = [[0.5, -0.5], [1.0, 0.0], [-1.0, 0.25], [0.0, 0.75]]
    fields = {
        "chosen_logps": lambda: t(CHOSEN, requires_grad=True),
        "rejected_logps": lambda: t(REJECTED, requires_grad=True),
        # reference flipped so that the DPO-style gaps are about +-2000 as well
        "ref_chosen_logps": lambda: t([-1.0, -1000.0, -999.0, -2.0]),
        "ref_rejected_logps": lambda: t(
            [[-1000.0, -2.0], [-1.0, -3.0], [-1000.0, -1.0], [-999.0, -1000.0]]
        ),
        "chosen_lengths": lambda: torch.ones(4, dtype=dtype),
        "rejected_lengths": lambda: torch.ones(4, N, dtype=dtype),
        "seq_embeddings": lambda: torch.tensor(
            [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.5]], dtype=dtype
        ),
        "rejected_scores": lambda: torch.tensor(rejected_scores, dtype=dtype),
        "chosen_scores": lambda: torch.tensor([1.0, 0.5, 2.0, 0.75], dtype=dtype),
        "receiver_scores": lambda: torch.linspace(-1.0, 1.0, 32).reshape(4, 4, N).to(dtype),
    }
    unknown = requires - set(fields)
    assert not unknown, f"no test values for {sorted(unknown)}"
    return losses.PreferenceBatch(**{name: fields[name]() for name in requires})


def check_finite(key: str, dtype: torch.dtype, **hparams: object) -> losses.LossOutput:
    """Finite values and gradients, float32 results; returns the output."""
    batch = extreme_batch(key, dtype)
    out = losses.get_loss(key, **hparams)(batch)
    assert out.per_example.dtype == torch.float32  # the documented compute/return dtype
    assert torch.isfinite(out.per_example).all() and torch.isfinite(out.loss)
    out.loss.backward()
    for leaf in (batch.chosen_logps, batch.rejected_logps):
        if leaf.grad is not None:
            assert leaf.grad.dtype == dtype
            assert torch.isfinite(leaf.grad).all()
    assert batch.chosen_logps.grad is not None
    assert (batch.chosen_logps.grad.abs().sum() > 0) == (key not in SATURATED)
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("key", losses.loss_keys())
def test_finite_at_extreme_gaps(key: str, dtype: torch.dtype) -> None:
    out = check_finite(key, dtype)
    spec = losses.get_spec(key)
    if key in BOUNDED:  # within what the formula allows
        ceiling = BOUNDED[key](spec.hparams)
        assert out.per_example.min().item() >= 0.0
        assert out.per_example.max().item() <= ceiling * (1 + 1e-5)
    elif key in ADAPTIVE_BETA:  # small beta_used; large at a fixed beta
        assert float(out.metrics["beta_used"]) == pytest.approx(BETA_FLOOR)
        fixed = check_finite(key, dtype, a=0.0)
        assert float(fixed.metrics["beta_used"]) == spec.hparams["beta"]
        assert fixed.loss.item() > 100.0
    else:  # unbounded: some gap of ~1000 is violated, so the loss must be that large
        assert out.loss.item() > 100.0


@pytest.mark.parametrize("key", losses.loss_keys())
def test_bfloat16_is_upcast_before_differencing(key: str) -> None:
    """Same result as float64 on the (exactly representable) bf16 input values."""
    low = losses.get_loss(key)(extreme_batch(key, torch.bfloat16)).per_example
    high_batch = extreme_batch(key, torch.bfloat16)
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
