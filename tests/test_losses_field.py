"""The field's losses (docs/losses.md) against the public vectors of the authors' released code.

Expected numbers come from tests/data/field_loss_vectors.json (the official code run in float64;
``spec-stable`` rows where that code gives inf/NaN/crashes) or from the specification's worked cases, or
are derived by hand in the test; none is produced by the code under test.  Each case builds the
loss, loads its fixture's state, seeds torch with the case's seed and calls the loss once
with the tolerances of docs/losses.md, 'How each loss was verified' (rtol 1e-6, atol 1e-12, float64).
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
import torch
from recbench.losses.boundary import boundary_selection, exact_top_cluster, sklearn_top_cluster

from recbench import losses
from recbench.errors import UserError

DATA = json.loads((Path(__file__).parent / "data" / "field_loss_vectors.json").read_text())
RTOL, ATOL = 1e-6, 1e-12

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
    "s_pos": "chosen_scores",
}
CASES = [
    pytest.param(fixture, index, id=f"{fixture}-{case['loss']}-{case['name']}")
    for fixture, content in DATA.items()
    for index, case in enumerate(content["cases"])
]


def make_batch(fixture: str, *, grad: bool = False) -> losses.PreferenceBatch:
    fields = {
        FIELD_OF[name]: torch.tensor(value, dtype=torch.float64)
        for name, value in DATA[fixture]["inputs"].items()
    }
    if grad:
        fields["chosen_logps"].requires_grad_(True)
        fields["rejected_logps"].requires_grad_(True)
    return losses.PreferenceBatch(**fields)


def make_loss(fixture: str, case: dict) -> losses.PreferenceLoss:
    module = losses.get_loss(case["loss"], **case["hparams"])
    state = {k: torch.tensor(v, dtype=torch.float64) for k, v in DATA[fixture]["state"].items()}
    module.load_state_dict(state, strict=False)
    return module


def run_case(fixture: str, case: dict, *, grad: bool = False):
    batch = make_batch(fixture, grad=grad)
    used = batch.first_negative() if case["negatives"] == "first" else batch
    module = make_loss(fixture, case)
    torch.manual_seed(case.get("seed", 0))
    return module, batch, module(used)


def as_tensor(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_vector_file_is_complete() -> None:
    assert sorted(DATA) == ["FA", "FB", "FC", "FD"]
    assert len(CASES) == 144
    keys = {case["loss"] for content in DATA.values() for case in content["cases"]}
    assert keys <= set(losses.loss_keys())


@pytest.mark.parametrize(("fixture", "index"), CASES)
def test_public_vector(fixture: str, index: int) -> None:
    case = DATA[fixture]["cases"][index]
    module, _, out = run_case(fixture, case)
    assert out.per_example.dtype == torch.float64
    torch.testing.assert_close(
        out.per_example, as_tensor(case["expected_per_example"]), rtol=RTOL, atol=ATOL
    )
    torch.testing.assert_close(out.loss, as_tensor(case["expected_mean"]), rtol=RTOL, atol=ATOL)
    if "mask" in case:  # beta-DPO: the drawn subset, the beta it used, the state it left
        assert out.metrics["mask"].bool().tolist() == [bool(v) for v in case["mask"]]
        torch.testing.assert_close(
            out.metrics["beta_used"], as_tensor(case["beta_used"]), rtol=1e-9, atol=ATOL
        )
        for name, value in case["state_after"].items():
            torch.testing.assert_close(
                getattr(module, name), as_tensor(value), rtol=1e-9, atol=1e-15
            )


SPEC_ROWS = [
    p
    for p in CASES
    if isinstance(DATA[p.values[0]]["cases"][p.values[1]]["source"], list)
    and "spec-stable" in DATA[p.values[0]]["cases"][p.values[1]]["source"]
]


@pytest.mark.parametrize(("fixture", "index"), SPEC_ROWS)
def test_finite_where_the_official_code_fails(fixture: str, index: int) -> None:
    """Rows where the released code returns inf/NaN or raises: finite values and gradients."""
    case = DATA[fixture]["cases"][index]
    _, batch, out = run_case(fixture, case, grad=True)
    rows = [i for i, s in enumerate(case["source"]) if s == "spec-stable"]
    assert all(str(case["official_output"][i]) in ("inf", "nan", "TypeError") for i in rows)
    assert torch.isfinite(out.per_example[rows]).all()
    out.loss.backward()
    assert torch.isfinite(batch.chosen_logps.grad).all()
    assert batch.rejected_logps.grad is None or torch.isfinite(batch.rejected_logps.grad).all()


EXACT_ROWS = [
    p
    for p in CASES
    if DATA[p.values[0]]["cases"][p.values[1]]["hparams"].get("kmeans") == "exact"
    and isinstance(DATA[p.values[0]]["cases"][p.values[1]]["source"], list)
    and any(
        str(s).startswith("spec (kmeans='exact'")
        for s in DATA[p.values[0]]["cases"][p.values[1]]["source"]
    )
]


@pytest.mark.parametrize(("fixture", "index"), EXACT_ROWS)
def test_sklearn_rule_gives_the_official_output(fixture: str, index: int) -> None:
    """Where exact k-means differs from the released call, kmeans='sklearn' gives what the
    official code returned (``official_output``)."""
    case = DATA[fixture]["cases"][index]
    sklearn_case = {**case, "hparams": {**case["hparams"], "kmeans": "sklearn"}}
    _, _, out = run_case(fixture, sklearn_case)
    for i, official in enumerate(case["official_output"]):
        if isinstance(official, float):
            torch.testing.assert_close(
                out.per_example[i], as_tensor(official), rtol=RTOL, atol=ATOL
            )


KMEANS_CALLS = sorted(
    {
        (tuple(call["values"]), tuple(call["selected"]))
        for content in DATA.values()
        for case in content["cases"]
        for call in case.get("official_kmeans_calls", [])
    }
)


@pytest.mark.parametrize(("values", "selected"), KMEANS_CALLS)
def test_sklearn_cluster_matches_the_official_calls(values: tuple, selected: tuple) -> None:
    pytest.importorskip("sklearn")
    assert sklearn_top_cluster(list(values)) == list(selected)


def test_exact_kmeans_by_hand() -> None:
    # three distinct values: each is its own cluster, the top one alone
    assert exact_top_cluster([-1.0, -5.0, -3.0]) == [0]
    # duplicates are never split: {5, 5} vs {1} -> k = 2, top = both fives
    assert exact_top_cluster([5.0, 1.0, 5.0]) == [0, 2]
    # 0,1,2,3: all three 3-way splits have SSE 1/2; the smallest top group ({3}) wins
    assert exact_top_cluster([2.0, 0.0, 3.0, 1.0]) == [2]
    # 0, 0.1, 10, 10.1, 20: {0, 0.1} {10, 10.1} {20} (SSE 0.01) beats every other split
    assert exact_top_cluster([10.0, 0.0, 20.0, 0.1, 10.1]) == [2]
    assert exact_top_cluster([4.0]) == [0] and exact_top_cluster([2.0, 2.0]) == [0, 1]


def _fixture_selection(fixture: str, kmeans: str, margin: float = 6.0):
    batch = make_batch(fixture)
    return boundary_selection(
        batch.chosen_logps, batch.rejected_logps, beta=1.0, margin=margin, kmeans=kmeans
    )


#: The specification's worked case: FA boundary sets and beta_j (beta 1, M 6).
FA_SETS = [[0, 3], [0], [0, 1], [0, 1]]
FA_BETAS = [[0.512128, 0.529312], [0.512128], [0.522721, 0.52816], [0.573554, 0.577272]]


def test_spec_intermediate_values_fixture_a() -> None:
    """The specification's worked case: boundary sets and beta_j of FA (beta 1, M 6)."""
    pytest.importorskip("sklearn")
    mask, betas = _fixture_selection("FA", "sklearn")
    for u, (chosen, values) in enumerate(zip(FA_SETS, FA_BETAS, strict=True)):
        assert torch.nonzero(mask[u]).flatten().tolist() == chosen
        torch.testing.assert_close(betas[u, chosen], as_tensor(values), rtol=2e-6, atol=0.0)
    assert not betas[~mask].any()


@pytest.mark.parametrize(
    ("kmeans", "sets"),
    [
        ("sklearn", [[2], [2], [0, 3, 4], [0, 1]]),
        ("exact", [[0, 2], [2, 3], [3], [0, 1]]),
    ],
)
def test_spec_boundary_sets_fixture_d(kmeans: str, sets: list) -> None:
    if kmeans == "sklearn":
        pytest.importorskip("sklearn")
    mask, _ = _fixture_selection("FD", kmeans)
    assert [torch.nonzero(row).flatten().tolist() for row in mask] == sets


def test_zero_over_zero_beta() -> None:
    """n = 1 and l- = l+: a = b = 0.  M > 0 gives (-M)/0 -> beta/2; M = 0 gives beta (tanh 0)."""
    chosen, rejected = as_tensor([-2.0]), as_tensor([[-2.0]])
    for margin, expected in ((6.0, 0.75), (0.0, 1.5)):
        _, betas = boundary_selection(chosen, rejected, beta=1.5, margin=margin, kmeans="exact")
        torch.testing.assert_close(betas, as_tensor([[expected]]), rtol=1e-15, atol=0.0)


@pytest.mark.parametrize("key", ["dynamicpo_dmpo", "dynamicpo_sdpo"])
def test_dynamicpo_gradient_treats_selection_as_data(key: str) -> None:
    """Selection and beta_j read only the policy log-probs, so perturbing the reference leaves
    them alone: finite differences w.r.t. the reference check the analytic gradient, and (beta_j
    and B carrying no gradient) the policy gradient is exactly its negative.  Negatives outside
    the boundary sets of FA get no gradient."""
    batch = make_batch("FA", grad=True)
    module = losses.get_loss(key, kmeans="exact")

    def loss(ref_pos: torch.Tensor, ref_neg: torch.Tensor) -> torch.Tensor:
        fields = {**batch.__dict__, "ref_chosen_logps": ref_pos, "ref_rejected_logps": ref_neg}
        return module(losses.PreferenceBatch(**fields)).per_example

    ref_pos = batch.ref_chosen_logps.clone().requires_grad_(True)
    ref_neg = batch.ref_rejected_logps.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(loss, (ref_pos, ref_neg), eps=1e-6, atol=1e-8, rtol=1e-6)
    loss(ref_pos, ref_neg).sum().backward()
    torch.testing.assert_close(batch.chosen_logps.grad, -ref_pos.grad, rtol=1e-12, atol=0.0)
    torch.testing.assert_close(batch.rejected_logps.grad, -ref_neg.grad, rtol=1e-12, atol=0.0)
    for u, chosen in enumerate(FA_SETS):
        outside = [j for j in range(4) if j not in chosen]
        assert not batch.rejected_logps.grad[u, outside].any()
        assert batch.rejected_logps.grad[u, chosen].abs().min() > 0


def test_dynamicpo_mppo_gradient_by_hand() -> None:
    """L = softplus(-S), S = sum_B beta_j (e^l+ - e^l-_j) with the printed FA beta_j (fixed):
    dL/dl+ = -sigmoid(-S) e^l+ sum_B beta_j, dL/dl-_j = sigmoid(-S) beta_j e^l-_j."""
    batch = make_batch("FA", grad=True)
    out = losses.get_loss("dynamicpo_mppo", kmeans="exact")(batch)
    out.per_example.sum().backward()
    for u, (chosen, betas) in enumerate(zip(FA_SETS, FA_BETAS, strict=True)):
        pos = DATA["FA"]["inputs"]["lp_pos"][u]
        negs = [DATA["FA"]["inputs"]["lp_neg"][u][j] for j in chosen]
        s = sum(b * (math.exp(pos) - math.exp(n)) for b, n in zip(betas, negs, strict=True))
        weight = 1.0 / (1.0 + math.exp(s))  # sigmoid(-S)
        grad_pos = -weight * math.exp(pos) * sum(betas)
        grad_neg = [0.0] * 4
        for j, b, n in zip(chosen, betas, negs, strict=True):
            grad_neg[j] = weight * b * math.exp(n)
        torch.testing.assert_close(
            batch.chosen_logps.grad[u], as_tensor(grad_pos), rtol=1e-5, atol=1e-12
        )
        torch.testing.assert_close(
            batch.rejected_logps.grad[u], as_tensor(grad_neg), rtol=1e-5, atol=1e-12
        )


def test_beta_dpo_gradient_by_hand() -> None:
    """FA, rho 0.5, seed 0 (vector: S = {0, 2}, beta_used = 1.312): with beta_used and S fixed,
    dL/dl+_u = -1[u in S] beta_used sigmoid(-beta_used h_u)/|S| and dL/dl-_u is its negative."""
    case = next(c for c in DATA["FA"]["cases"] if c["name"] == "beta-DPO rho=0.5 a=0.6 seed 0")
    _, batch, out = run_case("FA", case, grad=True)
    out.loss.backward()
    inputs = DATA["FA"]["inputs"]
    expected = []
    for u in range(4):
        h = (inputs["lp_pos"][u] - inputs["ref_pos"][u]) - (
            inputs["lp_neg"][u][0] - inputs["ref_neg"][u][0]
        )
        bu = case["beta_used"]
        expected.append(-case["mask"][u] * bu / (1.0 + math.exp(bu * h)) / sum(case["mask"]))
    torch.testing.assert_close(batch.chosen_logps.grad, as_tensor(expected), rtol=1e-9, atol=0.0)
    torch.testing.assert_close(
        batch.rejected_logps.grad[:, 0], -as_tensor(expected), rtol=1e-9, atol=0.0
    )
    assert not batch.rejected_logps.grad[:, 1:].any()


@pytest.mark.parametrize(
    "key", ["dmpo", "dmpo_code", "mppo", "recdpo", "recpo", "trl_aot", "trl_ipo", "trl_discopop"]
)
def test_gradients_match_finite_differences(key: str) -> None:
    batch = make_batch("FA")
    spec = losses.get_spec(key)
    used = batch if spec.uses_all_negatives else batch.first_negative()
    module = losses.get_loss(key)

    def loss(p: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        return module(
            losses.PreferenceBatch(**{**used.__dict__, "chosen_logps": p, "rejected_logps": n})
        ).loss

    pos = used.chosen_logps.clone().requires_grad_(True)
    neg = used.rejected_logps.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(loss, (pos, neg), eps=1e-6, atol=1e-7, rtol=1e-5)


# -- beta-DPO: reproducible draws through save/restore (docs/losses.md) -----------------------------


def _random_batch(seed: int, b: int = 10) -> losses.PreferenceBatch:
    gen = torch.Generator().manual_seed(seed)
    return losses.PreferenceBatch(
        chosen_logps=torch.randn(b, generator=gen, dtype=torch.float64) - 5,
        rejected_logps=torch.randn(b, 1, generator=gen, dtype=torch.float64) - 6,
        ref_chosen_logps=torch.randn(b, generator=gen, dtype=torch.float64) - 5,
        ref_rejected_logps=torch.randn(b, 1, generator=gen, dtype=torch.float64) - 6,
    )


def _round_trip(module: torch.nn.Module) -> dict:
    """What recbench's trainer does: clone the state_dict, torch.save, load weights-only."""
    buffer = io.BytesIO()
    torch.save({n: t.clone() for n, t in module.state_dict().items()}, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("seed_hparam", [-1, 11])
def test_beta_dpo_resumes_with_the_same_draws(seed_hparam: int) -> None:
    batches = [_random_batch(s) for s in range(7)]
    torch.manual_seed(3)
    uninterrupted = losses.get_loss("beta_dpo", rho=0.5, seed=seed_hparam)
    reference = [uninterrupted(b) for b in batches]

    torch.manual_seed(3)
    first = losses.get_loss("beta_dpo", rho=0.5, seed=seed_hparam)
    for b in batches[:3]:
        first(b)
    saved = _round_trip(first)
    assert {"gap_mean", "gap_std", "loss_mean", "loss_std", "rng_state"} <= set(saved)
    torch.manual_seed(12345)  # a resumed process starts with other global randomness
    resumed = losses.get_loss("beta_dpo", rho=0.5, seed=seed_hparam)
    resumed.load_state_dict(saved)
    masks = set()
    for b, expected in zip(batches[3:], reference[3:], strict=True):
        out = resumed(b)
        assert out.metrics["mask"].bool().tolist() == expected.metrics["mask"].bool().tolist()
        torch.testing.assert_close(out.per_example, expected.per_example, rtol=1e-12, atol=0.0)
        masks.add(tuple(out.metrics["mask"].bool().tolist()))
    assert len(masks) > 1  # the draws do change from batch to batch
    for name in ("gap_mean", "gap_std", "loss_mean", "loss_std"):
        torch.testing.assert_close(getattr(resumed, name), getattr(uninterrupted, name))
    assert resumed.rng_state.tolist() == uninterrupted.rng_state.tolist()


def test_beta_dpo_seed_and_eval() -> None:
    batch = _random_batch(0)
    torch.manual_seed(1)
    a = losses.get_loss("beta_dpo", rho=0.5, seed=5)(batch).metrics["mask"].bool().tolist()
    torch.manual_seed(2)
    b = losses.get_loss("beta_dpo", rho=0.5, seed=5)(batch).metrics["mask"].bool().tolist()
    assert a == b and sum(a) == 5
    module = losses.get_loss("beta_dpo", rho=0.5, seed=5)
    module(batch)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    module.eval()
    first, second = module(batch), module(batch)
    assert first.metrics["mask"].bool().tolist() == second.metrics["mask"].bool().tolist()
    for name, value in module.state_dict().items():
        assert value.tolist() == before[name].tolist()


def test_beta_dpo_guards() -> None:
    """b = 1: z = 0, the one pair is kept, std stays; b(1 - rho) < 1 still keeps one pair."""
    one = losses.get_loss("beta_dpo", rho=0.9)
    out = one(_random_batch(0, b=1))
    assert out.metrics["subset_size"] == 1 and one.gap_std.item() == 0.0
    assert losses.get_loss("beta_dpo", rho=0.9).subset_size(10) == 1
    assert losses.get_loss("beta_dpo_official", rho=0.9).subset_size(10) == 1
    assert losses.get_loss("beta_dpo", rho=0.2).subset_size(10) == 8


# -- RecDPO / RecPO scores ---------------------------------------------------------------------


def test_recdpo_by_hand() -> None:
    """n = 1, beta 1, lam 2, ratio: L = softplus((D- - D+) + 2 s+/s-)."""
    batch = losses.PreferenceBatch(
        chosen_logps=as_tensor([-3.0]),
        rejected_logps=as_tensor([[-4.0]]),
        ref_chosen_logps=as_tensor([-3.5]),
        ref_rejected_logps=as_tensor([[-3.0]]),
        chosen_scores=as_tensor([1.5]),
        rejected_scores=as_tensor([[0.5]]),
    )
    # D+ = 0.5, D- = -1, margin 2 * 3 = 6: x = -1.5 + 6 = 4.5
    expected = math.log1p(math.exp(4.5))
    out = losses.get_loss("recdpo")(batch)
    torch.testing.assert_close(out.loss, as_tensor(expected), rtol=1e-12, atol=0.0)


@pytest.mark.parametrize(
    ("key", "hparams", "s_pos", "s_neg", "pattern"),
    [
        ("recdpo", {}, [1.0], [[0.0]], "rejected_scores must be > 0"),
        ("recdpo", {"ratio": False}, [1.0], [[2.5]], r"1 \+ s\+ - s- must be > 0"),
        ("recpo", {"beta": 0.5}, [1.0], [[1.5]], r"1 \+ \(s\+ - s-\)/beta must be > 0"),
    ],
)
def test_recpo_refuses_undefined_margins(key, hparams, s_pos, s_neg, pattern) -> None:
    batch = make_batch("FB").first_negative()
    batch = losses.PreferenceBatch(
        **{
            **batch.__dict__,
            "chosen_logps": batch.chosen_logps[:1],
            "rejected_logps": batch.rejected_logps[:1],
            "ref_chosen_logps": batch.ref_chosen_logps[:1],
            "ref_rejected_logps": batch.ref_rejected_logps[:1],
            "chosen_lengths": batch.chosen_lengths[:1],
            "rejected_lengths": batch.rejected_lengths[:1],
            "seq_embeddings": None,
            "receiver_scores": None,
            "chosen_scores": as_tensor(s_pos),
            "rejected_scores": as_tensor(s_neg),
        }
    )
    with pytest.raises(UserError, match=pattern):
        losses.get_loss(key, **hparams)(batch)


def test_chosen_scores_is_a_declared_field() -> None:
    assert "chosen_scores" in losses.get_spec("recdpo").requires
    assert "chosen_scores" in losses.get_spec("recpo").requires
    batch = losses.PreferenceBatch(chosen_logps=torch.zeros(3), rejected_logps=torch.zeros(3, 2))
    with pytest.raises(UserError, match="chosen_scores, ref_chosen_logps"):
        losses.get_loss("recdpo")(batch)
    bad = losses.PreferenceBatch(
        chosen_logps=torch.zeros(3),
        rejected_logps=torch.zeros(3, 2),
        chosen_scores=torch.ones(3, 1),
        rejected_scores=torch.ones(3, 2),
    )
    with pytest.raises(UserError, match=r"chosen_scores must have shape \[3\]"):
        losses.get_loss("recpo", ln=False)(bad)
    assert bad.to_dtype(torch.float64).chosen_scores.dtype == torch.float64


# -- registry metadata -------------------------------------------------------------------------

NEW_KEYS = [
    "dmpo",
    "dmpo_code",
    "mppo",
    "dynamicpo_dmpo",
    "dynamicpo_mppo",
    "dynamicpo_sdpo",
    "beta_dpo",
    "beta_dpo_official",
    "recdpo",
    "recpo",
    *(
        f"trl_{t}"
        for t in [
            "hinge",
            "ipo",
            "exo_pair",
            "nca_pair",
            "robust",
            "bco_pair",
            "sppo_hard",
            "aot",
            "aot_unpaired",
            "apo_zero",
            "apo_down",
            "discopop",
            "sigmoid_norm",
        ]
    ),
]


@pytest.mark.parametrize("key", NEW_KEYS)
def test_new_keys_carry_label_family_and_source(key: str) -> None:
    spec = losses.get_spec(key)
    assert spec.label and spec.label != key
    assert spec.family in {"pairwise", "softmax", "listwise", "trl"}
    assert spec.source.code
    if key.startswith("trl_"):
        assert "trl v1.16.0" in spec.source.code and spec.family == "trl"


def test_spec_defaults_and_reference_flags() -> None:
    """Suite defaults and which keys read the reference (docs/losses.md)."""
    assert losses.get_spec("dmpo_code").hparams == {"beta": 0.1, "ftx": 1.0}
    dyn = losses.get_spec("dynamicpo_sdpo").hparams
    assert dyn == {"beta": 1.0, "margin": 6.0, "kmeans": "sklearn", "eps": 1e-8}
    beta = losses.get_spec("beta_dpo").hparams
    assert (beta["beta"], beta["rho"], beta["a"], beta["momentum"]) == (1.0, 0.2, 0.6, 0.9)
    official = losses.get_spec("beta_dpo_official").hparams
    assert official["update_stats_in_eval"] is True and official["k_floor"] == "int"
    rec = losses.get_spec("recdpo").hparams
    assert (rec["beta"], rec["lam"], rec["ratio"]) == (1.0, 2.0, True)
    recpo = losses.get_spec("recpo").hparams
    assert (recpo["lam"], recpo["ratio"], recpo["ln"]) == (0.5, False, True)
    assert losses.get_spec("trl_robust").hparams["label_smoothing"] == 0.1
    assert losses.get_spec("trl_exo_pair").hparams["label_smoothing"] == 1e-3
    assert losses.get_spec("trl_discopop").hparams["discopop_tau"] == 0.05
    no_ref = {k for k in NEW_KEYS if not losses.get_spec(k).needs_reference}
    assert no_ref == {"dmpo_code", "mppo", "dynamicpo_mppo", "recpo"}
    assert losses.get_spec("dpo").source.code.startswith("chenyuxin1999/S-DPO")
