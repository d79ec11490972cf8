"""DPO and SimPO against TRL's own loss code on random inputs (TRL is a test-only dependency).

TRL 1.16 exposes no standalone loss function: DPO's loss lives in ``DPOTrainer._compute_loss``
(which also runs the model) and SimPO's in the experimental ``CPOTrainer.cpo_loss``.  Building a
trainer needs a model, tokenizer and dataset, so the tests call these methods *unbound* on a
minimal stand-in ``self`` that carries only the attributes the methods read, and (for DPO) a stub
model whose "per-token log-probs" are the sequence log-probs we want scored.  If a future TRL
reads more attributes, the stand-in fails loudly with AttributeError rather than passing.
"""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from recbench import losses

trl = pytest.importorskip("trl")


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _accelerator() -> SimpleNamespace:
    return SimpleNamespace(
        device=torch.device("cpu"), gather=_identity, gather_for_metrics=_identity
    )


def random_pairs(b: int, seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "chosen": torch.randn(b, generator=gen, dtype=torch.float64) * 20 - 30,
        "rejected": torch.randn(b, generator=gen, dtype=torch.float64) * 20 - 30,
        "ref_chosen": torch.randn(b, generator=gen, dtype=torch.float64) * 20 - 30,
        "ref_rejected": torch.randn(b, generator=gen, dtype=torch.float64) * 20 - 30,
        "len_chosen": torch.randint(1, 12, (b,), generator=gen).double(),
        "len_rejected": torch.randint(1, 12, (b,), generator=gen).double(),
    }


def trl_dpo_mean_loss(data: dict[str, torch.Tensor], beta: float) -> torch.Tensor:
    """TRL's DPO 'sigmoid' loss via DPOTrainer._compute_loss with precomputed reference logps."""
    from trl.trainer.dpo_trainer import DPOTrainer

    b = data["chosen"].shape[0]
    # Two tokens per row -> one shifted completion position holding the whole sequence log-prob.
    log_probs = torch.cat([data["chosen"], data["rejected"]])[:, None]

    def model(**_: object) -> SimpleNamespace:
        zeros = torch.zeros_like(log_probs)
        return SimpleNamespace(
            log_probs=log_probs, entropy=zeros, mean_logits=zeros, is_top1=zeros.bool()
        )

    model.training = True  # type: ignore[attr-defined]
    fake_self = SimpleNamespace(
        model=model,
        accelerator=_accelerator(),
        aux_loss_enabled=False,
        ld_alpha=None,
        precompute_ref_logps=True,
        f_divergence_type="reverse_kl",
        loss_types=["sigmoid"],
        loss_weights=[1.0],
        beta=beta,
        label_smoothing=0.0,
        use_weighting=False,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
        _total_train_tokens=0,
        _tp_size=1,
    )
    ones = torch.ones((2 * b, 2), dtype=torch.long)
    inputs = {
        "input_ids": ones,
        "attention_mask": ones,
        "completion_mask": ones,
        "ref_chosen_logps": data["ref_chosen"],
        "ref_rejected_logps": data["ref_rejected"],
    }
    return DPOTrainer._compute_loss(fake_self, model, inputs, return_outputs=False)


def trl_cpo_losses(
    chosen: torch.Tensor, rejected: torch.Tensor, *, loss_type: str, beta: float, **extra: float
) -> torch.Tensor:
    """Per-example losses of TRL's experimental CPOTrainer.cpo_loss (alpha=0: log-prob rewards)."""
    cpo = pytest.importorskip("trl.experimental.cpo.cpo_trainer")
    fake_self = SimpleNamespace(
        accelerator=_accelerator(),
        alpha=0.0,
        beta=beta,
        loss_type=loss_type,
        label_smoothing=extra.get("label_smoothing", 0.0),
        simpo_gamma=extra.get("simpo_gamma", 0.0),
    )
    per_example, _, _ = cpo.CPOTrainer.cpo_loss(fake_self, chosen, rejected)
    return per_example


def as_batch(data: dict[str, torch.Tensor]) -> losses.PreferenceBatch:
    return losses.PreferenceBatch(
        chosen_logps=data["chosen"],
        rejected_logps=data["rejected"][:, None],
        ref_chosen_logps=data["ref_chosen"],
        ref_rejected_logps=data["ref_rejected"][:, None],
        chosen_lengths=data["len_chosen"],
        rejected_lengths=data["len_rejected"][:, None],
    )


@pytest.mark.parametrize(("seed", "beta"), [(0, 1.0), (1, 0.1), (2, 2.5)])
def test_dpo_matches_trl_dpo_trainer(seed: int, beta: float) -> None:
    data = random_pairs(16, seed)
    ours = losses.get_loss("dpo", beta=beta)(as_batch(data))
    torch.testing.assert_close(ours.loss, trl_dpo_mean_loss(data, beta), rtol=1e-10, atol=1e-12)
    # per example too: one-row batches
    for i in range(3):
        row = {k: v[i : i + 1] for k, v in data.items()}
        torch.testing.assert_close(
            ours.per_example[i : i + 1].sum(), trl_dpo_mean_loss(row, beta), rtol=1e-10, atol=1e-12
        )


@pytest.mark.parametrize(("seed", "eps"), [(3, 0.1), (4, 0.3)])
def test_dpo_label_smoothing_matches_trl_conservative_sigmoid(seed: int, eps: float) -> None:
    """TRL 1.16's DPO 'sigmoid' has no label smoothing; CPO's 'sigmoid' keeps the cDPO form
    -(1-eps)*logsigmoid(beta*x) - eps*logsigmoid(-beta*x).  Feeding it the policy-vs-reference
    log-ratios in place of log-probs turns it into DPO with label smoothing."""
    data = random_pairs(16, seed)
    ours = losses.get_loss("dpo", label_smoothing=eps)(as_batch(data)).per_example
    theirs = trl_cpo_losses(
        data["chosen"] - data["ref_chosen"],
        data["rejected"] - data["ref_rejected"],
        loss_type="sigmoid",
        beta=1.0,
        label_smoothing=eps,
    )
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("seed", "beta", "gamma"), [(5, 1.0, 1.0), (6, 2.0, 0.5), (7, 0.1, 0.05)])
def test_simpo_matches_trl_cpo_simpo(seed: int, beta: float, gamma: float) -> None:
    """CPO loss_type='simpo' with cpo_alpha = 0 on average (length-normalised) log-probs."""
    data = random_pairs(16, seed)
    ours = losses.get_loss("simpo", beta=beta, gamma=gamma)(as_batch(data)).per_example
    theirs = trl_cpo_losses(
        data["chosen"] / data["len_chosen"],
        data["rejected"] / data["len_rejected"],
        loss_type="simpo",
        beta=beta,
        simpo_gamma=gamma,
    )
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)
