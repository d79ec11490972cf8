"""Every loss against the spec's test vectors (tests/data/loss_vectors.json; docs/losses.md, 'How each loss was verified').

Expected numbers come only from the fixture file (an independent reference implementation checked
with mpmath) or from the suite specification; nothing here is produced by the code under test.  Each case starts
from a fresh module loaded with its own fixture's state (fixtures are never chained).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from recbench import losses

DATA = json.loads((Path(__file__).parent / "data" / "loss_vectors.json").read_text())

FIELD_OF = {
    "lp_pos": "chosen_logps",
    "lp_neg": "rejected_logps",
    "ref_pos": "ref_chosen_logps",
    "ref_neg": "ref_rejected_logps",
    "len_pos": "chosen_lengths",
    "len_neg": "rejected_lengths",
    "emb": "seq_embeddings",
    "s_own": "rejected_scores",
    "s_receiver": "receiver_scores",
}
CASES = [
    pytest.param(fixture, index, id=f"{fixture}-{case['name']}")
    for fixture, content in DATA.items()
    for index, case in enumerate(content["cases"])
]


def make_batch(fixture: str, dtype: torch.dtype, *, grad: bool = False) -> losses.PreferenceBatch:
    fields = {
        FIELD_OF[name]: torch.tensor(value, dtype=dtype)
        for name, value in DATA[fixture]["inputs"].items()
    }
    if grad:
        fields["chosen_logps"].requires_grad_(True)
        fields["rejected_logps"].requires_grad_(True)
    return losses.PreferenceBatch(**fields)


def fixture_state(fixture: str) -> dict[str, torch.Tensor]:
    return {
        name: torch.tensor(math.nan if value is None else value, dtype=torch.float64)
        for name, value in DATA[fixture]["state"].items()
    }


def make_loss(fixture: str, case: dict) -> losses.PreferenceLoss:
    module = losses.get_loss(case["loss"], **case["hparams"])
    module.load_state_dict(fixture_state(fixture), strict=False)
    return module


def run_case(fixture: str, index: int, dtype: torch.dtype, *, grad: bool = False):
    case = DATA[fixture]["cases"][index]
    batch = make_batch(fixture, dtype, grad=grad)
    used = batch.first_negative() if case["negatives"] == "first" else batch
    return case, batch, make_loss(fixture, case)(used)


def expected(case: dict) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        torch.tensor(case["expected_per_example"], dtype=torch.float64),
        torch.tensor(case["expected_mean"], dtype=torch.float64),
    )


@pytest.mark.parametrize(("fixture", "index"), CASES)
def test_float64_values(fixture: str, index: int) -> None:
    case, _, out = run_case(fixture, index, torch.float64)
    per_example, mean = expected(case)
    assert out.per_example.dtype == torch.float64
    torch.testing.assert_close(out.per_example, per_example, rtol=1e-6, atol=1e-12)
    torch.testing.assert_close(out.loss, mean, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize(("fixture", "index"), [p for p in CASES if p.values[0] in ("A", "B")])
def test_float32_values(fixture: str, index: int) -> None:
    case, _, out = run_case(fixture, index, torch.float32)
    per_example, mean = expected(case)
    assert out.per_example.dtype == torch.float32
    torch.testing.assert_close(out.per_example.double(), per_example, rtol=1e-4, atol=1e-12)
    torch.testing.assert_close(out.loss.double(), mean, rtol=1e-4, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("fixture", "index"), [p for p in CASES if p.values[0] == "C"])
def test_fixture_c_extreme_gaps(fixture: str, index: int, dtype: torch.dtype) -> None:
    """Gaps of +998 / -949: naive exp-sum implementations give inf here (docs/losses.md, 'Numerical stability')."""
    case, batch, out = run_case(fixture, index, dtype, grad=True)
    per_example, mean = expected(case)
    assert torch.isfinite(out.per_example).all() and torch.isfinite(out.loss)
    torch.testing.assert_close(out.per_example.double(), per_example, rtol=1e-5, atol=1e-12)
    torch.testing.assert_close(out.loss.double(), mean, rtol=1e-5, atol=1e-12)
    out.loss.backward()
    assert torch.isfinite(batch.chosen_logps.grad).all()
    if batch.rejected_logps.grad is not None:
        assert torch.isfinite(batch.rejected_logps.grad).all()


FIRST_ONLY_CASES = [
    p
    for p in CASES
    if DATA[p.values[0]]["cases"][p.values[1]]["negatives"] == "first"
    and not losses.get_spec(DATA[p.values[0]]["cases"][p.values[1]]["loss"]).uses_all_negatives
]


@pytest.mark.parametrize(("fixture", "index"), FIRST_ONLY_CASES)
def test_first_negative_losses_accept_all_negatives(fixture: str, index: int) -> None:
    """Losses that use only y-_1 must give the same result when handed all n negatives."""
    case = DATA[fixture]["cases"][index]
    out = make_loss(fixture, case)(make_batch(fixture, torch.float64))
    per_example, _ = expected(case)
    torch.testing.assert_close(out.per_example, per_example, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("fixture", sorted(DATA))
def test_neighbours_match_fixture(fixture: str) -> None:
    info = DATA[fixture]["info"]["_NAPO_info"]
    emb = torch.tensor(DATA[fixture]["inputs"]["emb"], dtype=torch.float64)
    k = losses.num_shared_neighbours(emb.shape[0], 0.7)
    assert k == info["K"]
    nbrs = losses.find_neighbours(emb, k)
    assert nbrs.index.tolist() == info["nb"]
    assert nbrs.valid.all()


def test_fixture_c_tie_broken_by_index() -> None:
    """A required tie case: u = 1 has similarity 0 with both 0 and 3; index 0 wins."""
    emb = torch.tensor(DATA["C"]["inputs"]["emb"], dtype=torch.float32)
    assert losses.find_neighbours(emb, 2).index[1].tolist() == [2, 0]
    out = losses.get_loss("napo")(make_batch("C", torch.float32))
    assert out.metrics["K"] == 2


# -- running state ----------------------------------------------------------------------------

STATE_CASES = [
    # (loss key, hparams, fixture, {buffer: expected value after one training forward})
    ("napo", {}, "A", {"M_run": DATA["A"]["info"]["_NAPO_info"]["M_run_new"]}),
    ("napo", {}, "B", {"M_run": DATA["B"]["info"]["_NAPO_info"]["M_run_new"]}),
    ("napo", {}, "C", {"M_run": DATA["C"]["info"]["_NAPO_info"]["M_run_new"]}),
    ("napo_no_ns", {}, "B", {"M_run": DATA["B"]["info"]["_woNS_info"]["M_run_new"]}),
    ("napo_paper", {}, "A", {"R0": DATA["A"]["info"]["_NAPO_paper_info"]["R0_new"]}),
    ("napo_paper", {}, "B", {"R0": DATA["B"]["info"]["_NAPO_paper_info"]["R0_new"]}),
    (
        "alpha_dpo",
        {},
        "B",
        {
            "mu": DATA["B"]["info"]["_alpha_info"]["mu"],
            "sigma": DATA["B"]["info"]["_alpha_info"]["sigma"],
        },
    ),
    (
        "alpha_dpo",
        {},
        "A",
        {
            "mu": DATA["A"]["info"]["_alpha_info"]["mu"],
            "sigma": DATA["A"]["info"]["_alpha_info"]["sigma"],
        },
    ),
    (
        "napo1",
        {},
        "B",
        {
            "mu": DATA["B"]["info"]["_NAPO1_info"]["mu"],
            "sigma": DATA["B"]["info"]["_NAPO1_info"]["sigma"],
        },
    ),
    (
        "napo2",
        {},
        "B",
        {
            "M_run": DATA["B"]["info"]["_NAPO2_info"]["M_run_new"],
            "mu": DATA["B"]["info"]["_NAPO1_info"]["mu"],
            "sigma": DATA["B"]["info"]["_NAPO1_info"]["sigma"],
        },
    ),
]


def _first_if_needed(key: str, batch: losses.PreferenceBatch) -> losses.PreferenceBatch:
    return batch if losses.get_spec(key).uses_all_negatives else batch.first_negative()


@pytest.mark.parametrize(("key", "hparams", "fixture", "after"), STATE_CASES)
def test_state_update_in_training(key: str, hparams: dict, fixture: str, after: dict) -> None:
    module = losses.get_loss(key, **hparams)
    module.load_state_dict(fixture_state(fixture), strict=False)
    module.train()
    module(_first_if_needed(key, make_batch(fixture, torch.float64)))
    state = module.state_dict()
    for name, value in after.items():
        torch.testing.assert_close(
            state[name], torch.tensor(value, dtype=torch.float64), rtol=1e-9, atol=1e-15
        )


def test_spec_state_numbers() -> None:
    """The rounded values the specification prints for this case, independently of the JSON file."""
    napo = losses.get_loss("napo")
    napo.load_state_dict(fixture_state("A"), strict=False)
    napo(make_batch("A", torch.float64))
    assert napo.M_run.item() == pytest.approx(-0.00583333, rel=1e-5)
    napo = losses.get_loss("napo")
    napo.load_state_dict(fixture_state("B"), strict=False)
    napo(make_batch("B", torch.float64))
    assert napo.M_run.item() == pytest.approx(0.0941667, rel=1e-5)
    paper = losses.get_loss("napo_paper")
    paper.load_state_dict(fixture_state("B"), strict=False)
    paper(make_batch("B", torch.float64))
    assert paper.R0.item() == pytest.approx(0.4525, rel=1e-6)
    alpha = losses.get_loss("alpha_dpo")
    alpha.load_state_dict(fixture_state("B"), strict=False)
    alpha(make_batch("B", torch.float64))
    assert alpha.mu.item() == pytest.approx(0.203929, rel=1e-5)
    assert alpha.sigma.item() == pytest.approx(1.03758, rel=1e-5)


def test_state_updates_once_per_call() -> None:
    """Two training calls on fixture A: M_run = m*(m*0 + (1-m)*S) + (1-m)*S with S from 8.2."""
    s_b = DATA["A"]["info"]["_NAPO_info"]["M_batch"]
    module = losses.get_loss("napo")
    batch = make_batch("A", torch.float64)
    module(batch)
    module(batch)
    assert module.M_run.item() == pytest.approx(0.9 * (0.1 * s_b) + 0.1 * s_b, rel=1e-12)


@pytest.mark.parametrize("key", ["napo", "napo_paper", "alpha_dpo", "napo1", "napo2", "napo_ln"])
def test_eval_mode_leaves_state_alone(key: str) -> None:
    module = losses.get_loss(key)
    module.load_state_dict(fixture_state("B"), strict=False)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    module.eval()
    with torch.no_grad():
        out = module(_first_if_needed(key, make_batch("B", torch.float64)))
    assert torch.isfinite(out.loss)
    after = module.state_dict()
    assert before.keys() == after.keys() and before
    for name, value in before.items():
        torch.testing.assert_close(after[name], value, equal_nan=True)


def test_napo_official_updates_state_in_eval() -> None:
    module = losses.get_loss("napo_official")
    module.load_state_dict(fixture_state("B"), strict=False)
    module.eval()
    module(make_batch("B", torch.float64))
    expected_m_run = DATA["B"]["info"]["_NAPO_info"]["M_run_new"]
    assert module.M_run.item() == pytest.approx(expected_m_run, rel=1e-9)


def test_state_is_saved_and_restored() -> None:
    module = losses.get_loss("napo2")
    module(make_batch("A", torch.float64).first_negative())
    saved = module.state_dict()
    assert {"M_run", "R0", "mu", "sigma"} <= set(saved)
    fresh = losses.get_loss("napo2")
    fresh.load_state_dict(saved)
    for name, value in saved.items():
        torch.testing.assert_close(fresh.state_dict()[name], value, equal_nan=True)
    assert set(losses.get_loss("alpha_dpo").state_dict()) == {"mu", "sigma"}
    assert math.isnan(losses.get_loss("napo_paper").R0.item())


# -- gradients -------------------------------------------------------------------------------

GRAD_CHOSEN = [-0.15291, -0.230217, -0.184995, -0.249782]
GRAD_REJECTED = {
    "none": [
        [0.247127, 0.033445],
        [0.0678812, 0.0151463],
        [0.155201, 0.255883],
        [0.00204983, 0.041172],
    ],
    "shared": [
        [0.098631, 0.0133483],
        [0.033134, 0.00739318],
        [0.0660369, 0.108876],
        [0.000221015, 0.00443921],
    ],
    "all": [[0.0, 0.0]] * 4,
}


@pytest.mark.parametrize("mode", ["none", "shared", "all"])
def test_gradients_by_detach_mode(mode: str) -> None:
    batch = make_batch("A", torch.float64, grad=True)
    module = losses.get_loss("napo", detach_negatives=mode)
    out = module(batch)
    assert out.loss.item() == pytest.approx(2.96905, rel=1e-5)
    assert float(out.metrics["gamma"]) == pytest.approx(1.01575, rel=1e-9)
    out.loss.backward()
    torch.testing.assert_close(
        batch.chosen_logps.grad,
        torch.tensor(GRAD_CHOSEN, dtype=torch.float64),
        rtol=1e-5,
        atol=1e-12,
    )
    grad = batch.rejected_logps.grad
    if grad is None:
        grad = torch.zeros_like(batch.rejected_logps)
    torch.testing.assert_close(
        grad, torch.tensor(GRAD_REJECTED[mode], dtype=torch.float64), rtol=1e-5, atol=1e-12
    )


def test_napo_official_is_napo_without_negative_gradients() -> None:
    batch = make_batch("A", torch.float64, grad=True)
    out = losses.get_loss("napo_official")(batch)
    napo_case = next(c for c in DATA["A"]["cases"] if c["name"] == "NAPO")
    torch.testing.assert_close(out.per_example, expected(napo_case)[0], rtol=1e-6, atol=1e-12)
    out.loss.backward()
    torch.testing.assert_close(
        batch.chosen_logps.grad,
        torch.tensor(GRAD_CHOSEN, dtype=torch.float64),
        rtol=1e-5,
        atol=1e-12,
    )
    assert batch.rejected_logps.grad is None or not batch.rejected_logps.grad.any()
