"""Identities between losses (docs/losses.md), checked on random inputs.

These do not need expected numbers: each side is a different registry entry or option, so an
error in one code path (pool building, margin switch, reward choice) breaks the equality.
"""

from __future__ import annotations

import pytest
import torch

from recbench import losses


def random_batch(
    b: int, n: int, *, seed: int, d: int = 4, grad: bool = False
) -> losses.PreferenceBatch:
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape: int, scale: float = 3.0) -> torch.Tensor:
        return torch.randn(*shape, generator=gen, dtype=torch.float64) * scale

    batch = losses.PreferenceBatch(
        chosen_logps=rand(b) - 5.0,
        rejected_logps=rand(b, n) - 6.0,
        ref_chosen_logps=rand(b) - 5.0,
        ref_rejected_logps=rand(b, n) - 6.0,
        chosen_lengths=torch.randint(1, 9, (b,), generator=gen).double(),
        rejected_lengths=torch.randint(1, 9, (b, n), generator=gen).double(),
        seq_embeddings=rand(b, d, scale=1.0),
        rejected_scores=rand(b, n, scale=2.0),
        receiver_scores=torch.rand(b, b, n, generator=gen, dtype=torch.float64) * 2 - 1,
        example_ids=torch.arange(b),
    )
    if grad:
        batch.chosen_logps.requires_grad_(True)
        batch.rejected_logps.requires_grad_(True)
        batch.ref_chosen_logps.requires_grad_(True)
    return batch


def outputs_and_grads(module: torch.nn.Module, batch: losses.PreferenceBatch):
    out = module(batch)
    leaves = [batch.chosen_logps, batch.rejected_logps]
    grads = torch.autograd.grad(out.loss, leaves, allow_unused=True)
    grads = [torch.zeros_like(x) if g is None else g for x, g in zip(leaves, grads, strict=True)]
    return out.per_example.detach(), grads


def assert_same(first, second) -> None:
    torch.testing.assert_close(first[0], second[0], rtol=1e-12, atol=1e-12)
    for g1, g2 in zip(first[1], second[1], strict=True):
        torch.testing.assert_close(g1, g2, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_napo_without_ns_and_gamma_is_sims_dpo(seed: int) -> None:
    batch = random_batch(6, 3, seed=seed, grad=True)
    assert_same(
        outputs_and_grads(losses.get_loss("napo_no_ns_gamma"), batch),
        outputs_and_grads(losses.get_loss("sims_dpo"), batch),
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_napo_k0_gamma0_is_sims_dpo(seed: int) -> None:
    batch = random_batch(6, 3, seed=seed, grad=True)
    assert_same(
        outputs_and_grads(losses.get_loss("napo", rho=0.0, gamma=0.0), batch),
        outputs_and_grads(losses.get_loss("sims_dpo"), batch),
    )


def test_napo_k0_from_small_batch_is_sims_dpo() -> None:
    """K = floor((b-1)*rho) = 0 for b = 2, rho = 0.7: sharing switches itself off."""
    batch = random_batch(2, 3, seed=5, grad=True)
    assert_same(
        outputs_and_grads(losses.get_loss("napo", gamma=0.0), batch),
        outputs_and_grads(losses.get_loss("sims_dpo"), batch),
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_no_ns_fixed_margin_is_sims_dpo_with_margin(seed: int) -> None:
    batch = random_batch(5, 3, seed=seed, grad=True)
    assert_same(
        outputs_and_grads(losses.get_loss("napo_no_ns_dyn", gamma=0.7), batch),
        outputs_and_grads(losses.get_loss("sims_dpo", gamma=0.7), batch),
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sdpo_with_one_negative_is_dpo(seed: int) -> None:
    batch = random_batch(7, 1, seed=seed, grad=True)
    assert_same(
        outputs_and_grads(losses.get_loss("sdpo", beta=0.5), batch),
        outputs_and_grads(losses.get_loss("dpo", beta=0.5), batch),
    )
    # and DPO handed n = 3 pairs with its first negative only
    wide = random_batch(7, 3, seed=seed)
    torch.testing.assert_close(
        losses.get_loss("dpo")(wide).per_example,
        losses.get_loss("sdpo")(wide.first_negative()).per_example,
        rtol=1e-12,
        atol=1e-12,
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_napo_ref_ratio_gamma0_is_sdpo_ns(seed: int) -> None:
    batch = random_batch(9, 3, seed=seed, grad=True)
    assert_same(
        outputs_and_grads(losses.get_loss("napo", reward="ref_ratio", gamma=0.0), batch),
        outputs_and_grads(losses.get_loss("sdpo_ns"), batch),
    )


def test_sdpo_ns_without_sharing_is_sdpo() -> None:
    batch = random_batch(6, 3, seed=3, grad=True)
    assert_same(
        outputs_and_grads(losses.get_loss("sdpo_ns", rho=0.0), batch),
        outputs_and_grads(losses.get_loss("sdpo"), batch),
    )


def test_no_dynamic_margin_is_napo_with_alpha0() -> None:
    batch = random_batch(8, 2, seed=4, grad=True)
    assert_same(
        outputs_and_grads(losses.get_loss("napo_no_dyn"), batch),
        outputs_and_grads(losses.get_loss("napo", alpha=0.0), batch),
    )


def test_pool_order_is_irrelevant() -> None:
    """Permuting the batch permutes the per-example losses."""
    batch = random_batch(8, 3, seed=6)
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(0))
    # random embeddings have no similarity ties, so both orders pick the same neighbours
    permuted = losses.PreferenceBatch(
        **{
            name: (value[perm][:, perm] if name == "receiver_scores" else value[perm])
            for name, value in vars(batch).items()
            if value is not None
        }
    )
    for key in ("napo", "napo_paper", "napo_ln", "sdpo_ns"):
        torch.testing.assert_close(
            losses.get_loss(key)(permuted).per_example,
            losses.get_loss(key)(batch).per_example[perm],
            rtol=1e-12,
            atol=1e-12,
        )


def test_dpo_expand_averages_pairs() -> None:
    batch = random_batch(5, 3, seed=7)
    expanded = losses.get_loss("dpo", dpo_pairs="expand")(batch).per_example
    pairs = [
        losses.get_loss("dpo")(
            losses.PreferenceBatch(
                chosen_logps=batch.chosen_logps,
                rejected_logps=batch.rejected_logps[:, j : j + 1],
                ref_chosen_logps=batch.ref_chosen_logps,
                ref_rejected_logps=batch.ref_rejected_logps[:, j : j + 1],
            )
        ).per_example
        for j in range(3)
    ]
    torch.testing.assert_close(expanded, torch.stack(pairs).mean(0), rtol=1e-12, atol=1e-12)
