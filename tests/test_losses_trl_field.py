"""The ``trl_*`` keys against TRL 1.16.0's own DPOTrainer loss code, for every pairwise loss_type.

As in tests/test_losses_trl.py, ``DPOTrainer._compute_loss`` is called unbound on a stand-in
``self`` holding only the attributes it reads, with a stub model whose per-token log-probs put
each whole sequence log-prob on the first completion position; the completion mask carries the
response lengths (ipo and sigmoid_norm divide by them).  TRL returns only the batch mean, so
per-example values are compared through one-row batches (except aot*, which couple the batch).
TRL builds EXO's epsilon with ``torch.tensor``, i.e. in the default dtype: the calls run with
float64 as the default so that both sides compute in float64.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from recbench import losses

trl = pytest.importorskip("trl")

#: key -> (loss_type, hyper-parameters besides beta passed to both sides)
CASES = {
    "trl_hinge": ("hinge", {}),
    "trl_ipo": ("ipo", {}),
    "trl_exo_pair": ("exo_pair", {"label_smoothing": 1e-3}),
    "trl_nca_pair": ("nca_pair", {}),
    "trl_robust": ("robust", {"label_smoothing": 0.1}),
    "trl_bco_pair": ("bco_pair", {}),
    "trl_sppo_hard": ("sppo_hard", {}),
    "trl_aot": ("aot", {"label_smoothing": 0.1}),
    "trl_aot_unpaired": ("aot_unpaired", {"label_smoothing": 0.2}),
    "trl_apo_zero": ("apo_zero", {}),
    "trl_apo_down": ("apo_down", {}),
    "trl_discopop": ("discopop", {"discopop_tau": 0.05}),
    "trl_sigmoid_norm": ("sigmoid_norm", {}),
}
BATCH_COUPLED = {"trl_aot", "trl_aot_unpaired"}
RANDOM_BATCHES = [(0, 1.0, 4.0), (1, 0.1, 30.0), (2, 2.5, 8.0)]  # (seed, beta, scale)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def random_pairs(b: int, seed: int, scale: float) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)

    def logps() -> torch.Tensor:
        return -(torch.rand(b, generator=gen, dtype=torch.float64) * scale)

    return {
        "chosen": logps(),
        "rejected": logps(),
        "ref_chosen": logps(),
        "ref_rejected": logps(),
        "len_chosen": torch.randint(1, 12, (b,), generator=gen),
        "len_rejected": torch.randint(1, 12, (b,), generator=gen),
    }


def trl_mean_loss(data: dict[str, torch.Tensor], loss_type: str, beta: float, **extra) -> float:
    from trl.trainer.dpo_trainer import DPOTrainer

    b = data["chosen"].shape[0]
    lengths = torch.cat([data["len_chosen"], data["len_rejected"]])
    width = int(lengths.max()) + 1
    completion_mask = (torch.arange(width)[None, :] < lengths[:, None]).long()
    log_probs = torch.zeros(2 * b, width - 1, dtype=torch.float64)
    log_probs[:, 0] = torch.cat([data["chosen"], data["rejected"]])

    def model(**_: object) -> SimpleNamespace:
        zeros = torch.zeros_like(log_probs)
        return SimpleNamespace(
            log_probs=log_probs, entropy=zeros, mean_logits=zeros, is_top1=zeros.bool()
        )

    model.training = True  # type: ignore[attr-defined]
    fake_self = SimpleNamespace(
        model=model,
        accelerator=SimpleNamespace(
            device=torch.device("cpu"), gather=_identity, gather_for_metrics=_identity
        ),
        args=SimpleNamespace(discopop_tau=extra.get("discopop_tau", 0.05)),
        aux_loss_enabled=False,
        ld_alpha=None,
        precompute_ref_logps=True,
        f_divergence_type="reverse_kl",
        loss_types=[loss_type],
        loss_weights=[1.0],
        beta=beta,
        label_smoothing=extra.get("label_smoothing", 0.0),
        use_weighting=False,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
        _total_train_tokens=0,
        _tp_size=1,
    )
    inputs = {
        "input_ids": torch.ones_like(completion_mask),
        "attention_mask": torch.ones_like(completion_mask),
        "completion_mask": completion_mask,
        "ref_chosen_logps": data["ref_chosen"],
        "ref_rejected_logps": data["ref_rejected"],
    }
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        loss = DPOTrainer._compute_loss(fake_self, model, inputs, return_outputs=False)
    finally:
        torch.set_default_dtype(previous)
    return float(loss)


def ours(key: str, data: dict[str, torch.Tensor], beta: float, **extra) -> losses.LossOutput:
    batch = losses.PreferenceBatch(
        chosen_logps=data["chosen"],
        rejected_logps=data["rejected"][:, None],
        ref_chosen_logps=data["ref_chosen"],
        ref_rejected_logps=data["ref_rejected"][:, None],
        chosen_lengths=data["len_chosen"].double(),
        rejected_lengths=data["len_rejected"][:, None].double(),
    )
    return losses.get_loss(key, beta=beta, **extra)(batch)


def max_abs_diff(key: str, data: dict[str, torch.Tensor], beta: float) -> float:
    """Largest |ours - TRL| over the batch mean and (for per-example losses) every row."""
    loss_type, extra = CASES[key]
    out = ours(key, data, beta, **extra)
    diffs = [abs(float(out.loss) - trl_mean_loss(data, loss_type, beta, **extra))]
    if key not in BATCH_COUPLED:
        for i in range(data["chosen"].shape[0]):
            row = {k: v[i : i + 1] for k, v in data.items()}
            diffs.append(
                abs(float(out.per_example[i]) - trl_mean_loss(row, loss_type, beta, **extra))
            )
    return max(diffs)


def test_every_trl_key_is_checked() -> None:
    assert set(CASES) == {k for k in losses.loss_keys() if k.startswith("trl_")}
    assert trl.__version__ == "1.16.0"


@pytest.mark.parametrize(("seed", "beta", "scale"), RANDOM_BATCHES)
@pytest.mark.parametrize("key", sorted(CASES))
def test_matches_trl_dpo_trainer(key: str, seed: int, beta: float, scale: float) -> None:
    """Random log-probs in [-scale, 0]: ours equals TRL's within float64 rounding."""
    data = random_pairs(12, seed, scale)
    loss_type, extra = CASES[key]
    out = ours(key, data, beta, **extra)
    reference = trl_mean_loss(data, loss_type, beta, **extra)
    assert abs(float(out.loss) - reference) <= 1e-12 + 1e-10 * abs(reference)
    assert max_abs_diff(key, data, beta) <= 1e-12 + 1e-10 * max(1.0, abs(reference))


FIXTURES = json.loads((Path(__file__).parent / "data" / "field_loss_vectors.json").read_text())


def fixture_pairs(fixture: str) -> dict[str, torch.Tensor]:
    """A public fixture's first negatives as one pair per example."""
    inputs = FIXTURES[fixture]["inputs"]

    def first(name: str, dtype=torch.float64) -> torch.Tensor:
        return torch.tensor([row[0] for row in inputs[name]], dtype=dtype)

    return {
        "chosen": torch.tensor(inputs["lp_pos"], dtype=torch.float64),
        "rejected": first("lp_neg"),
        "ref_chosen": torch.tensor(inputs["ref_pos"], dtype=torch.float64),
        "ref_rejected": first("ref_neg"),
        "len_chosen": torch.tensor(inputs["len_pos"]),
        "len_rejected": first("len_neg", torch.int64),
    }


FIXTURE_NAMES = ["FA", "FC", "FD"]  # FB's 2000-nat gaps: TRL's discopop gives NaN


@pytest.mark.parametrize("fixture", FIXTURE_NAMES)
@pytest.mark.parametrize("key", sorted(CASES))
def test_matches_trl_on_the_field_fixtures(key: str, fixture: str) -> None:
    """The public fixtures' first negatives, beta 1: within float64 rounding of TRL."""
    assert max_abs_diff(key, fixture_pairs(fixture), 1.0) <= 1e-12
