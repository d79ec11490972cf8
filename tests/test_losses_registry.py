"""Registry, specs, hyper-parameter validation and user-facing errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from recbench import losses
from recbench.errors import UnknownNameError, UserError

GOLDEN = Path(__file__).parent / "golden" / "loss_keys.txt"
#: Every registered key, in listing order: the tests below are parametrised over the registry.
KEYS = losses.loss_keys()


def builtin_keys() -> list[str]:
    """The keys built into recbench (a plugin loaded in this process is left out)."""
    return [key for key in losses.loss_keys() if losses.loss_origin(key) is None]


def test_exact_key_set() -> None:
    golden = GOLDEN.read_text().split()
    assert builtin_keys() == golden, (
        f"the registered loss keys (in listing order) differ from {GOLDEN.name}; if you added, "
        "removed or reordered a loss on purpose, update the golden file with\n"
        "  python -c \"import losses; print('\\n'.join(losses.loss_keys()))\" "
        f"> tests/golden/{GOLDEN.name}"
    )
    assert [spec.key for spec in losses.list_specs()] == losses.loss_keys()
    assert all(losses.get_spec(k).family in losses.LOSS_FAMILIES for k in losses.loss_keys())
    orders = [(losses.get_spec(k).order, k) for k in losses.loss_keys()]
    assert orders == sorted(orders)


@pytest.mark.parametrize("key", KEYS)
def test_spec_is_complete_and_matches_module(key: str) -> None:
    spec = losses.get_spec(key)
    assert isinstance(spec, losses.LossSpec)
    assert spec.key == key
    assert spec.summary and "\n" not in spec.summary
    assert len(spec.description.splitlines()) >= 2
    assert "reference model" in spec.description.lower()
    module = losses.get_loss(key)
    assert isinstance(module, torch.nn.Module)
    # the defaults shown are the defaults used
    assert dataclasses.asdict(module.hparams) == spec.hparams
    assert module.requires == spec.requires
    assert module.uses_all_negatives == spec.uses_all_negatives
    assert module.needs_reference == spec.needs_reference
    assert {"chosen_logps", "rejected_logps"} <= spec.requires
    assert set(spec.hparam_ranges) == set(spec.hparams) == set(spec.hparam_docs)
    assert all(spec.hparam_docs.values())
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.key = "other"  # type: ignore[misc]


def test_suite_defaults_and_presets() -> None:
    """Suite defaults and presets (docs/losses.md)."""
    assert losses.get_spec("dpo").hparams == {
        "beta": 1.0,
        "label_smoothing": 0.0,
        "dpo_pairs": "first",
    }
    assert losses.get_spec("simpo").hparams == {"beta": 1.0, "gamma": 1.0, "ln": True}
    alpha = losses.get_spec("alpha_dpo").hparams
    assert (alpha["beta"], alpha["gamma"], alpha["alpha"], alpha["momentum"]) == (
        1.0,
        1.0,
        0.2,
        0.9,
    )
    napo = losses.get_spec("napo").hparams
    assert {k: napo[k] for k in ("beta", "gamma", "alpha", "rho", "momentum")} == {
        "beta": 1.0,
        "gamma": 1.0,
        "alpha": 0.3,
        "rho": 0.7,
        "momentum": 0.9,
    }
    assert napo["detach_negatives"] == "none" and napo["k_floor"] == "robust"
    assert napo["margin_mode"] == "official" and not napo["update_stats_in_eval"]
    official = losses.get_spec("napo_official").hparams
    assert official["detach_negatives"] == "all"
    assert official["k_floor"] == "int"
    assert official["sasrec_state"] == "padded_last"
    assert official["update_stats_in_eval"] is True
    paper = losses.get_spec("napo_paper").hparams
    assert paper["margin_mode"] == "paper" and paper["ema_order"] == "use_then_update"
    assert paper["detach_negatives"] == "none"
    assert losses.get_spec("napo_no_ns").hparams["rho"] == 0.0
    assert losses.get_spec("napo_no_dyn").hparams["alpha"] == 0.0
    assert losses.get_spec("napo_ln").hparams["ln"] is True
    assert losses.get_spec("sdpo_ns").hparams["reward"] == "ref_ratio"
    assert losses.get_spec("napo2").hparams["alpha_a"] == 0.2
    assert losses.get_spec("napo1").hparams["alpha"] == 0.2


#: TRL DPOTrainer loss types (docs/losses.md): every one scores the pair (y+, y-_1) through
#: the reference log-ratios cp = l+ - l+_ref and cn = l-_1 - l-_1,ref.
TRL_KEYS = {
    f"trl_{name}"
    for name in (
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
    )
}
#: Keys whose formula reads reference log-probs (docs/losses.md):
#: dmpo (3.1: beta*D+ - (beta/n)*sum D-_j), dynamicpo_dmpo (3.5: loss on D, selection on policy l),
#: dynamicpo_sdpo (3.7), beta_dpo and its preset (3.8: h = D+ - D-_1), recdpo (3.9: z_j on D) and
#: the TRL types.  Reference-free: dmpo_code (3.2: the released code passes l+_ref twice, so the
#: reference log-ratio is 0), mppo and dynamicpo_mppo (3.3, 3.6: sequence probabilities e^l only),
#: recpo (3.9: "There is no reference").
NEEDS_REFERENCE = {"dpo", "sdpo", "alpha_dpo", "sdpo_ns", "napo1", "napo2"} | {
    "dmpo",
    "dynamicpo_dmpo",
    "dynamicpo_sdpo",
    "beta_dpo",
    "beta_dpo_official",
    "recdpo",
    *TRL_KEYS,
}
#: Keys that see only each example's first negative: beta_dpo (3.8 "the pair is (y+, y-_1)") and
#: the TRL types (3.10 "Pair (y+, y-_1)").  dmpo, dmpo_code, mppo, recdpo and recpo use all n;
#: the DynamicPO keys choose their boundary subset B among all n (3.4), so they see all n too.
FIRST_NEGATIVE_ONLY = {"dpo", "simpo", "alpha_dpo", "napo1", "napo2"} | {
    "beta_dpo",
    "beta_dpo_official",
    *TRL_KEYS,
}


def test_reference_and_negatives_flags() -> None:
    assert {k for k in builtin_keys() if k.startswith("trl_")} == TRL_KEYS  # the 13 of 3.10
    needs_ref = {k for k in builtin_keys() if losses.get_spec(k).needs_reference}
    assert needs_ref == NEEDS_REFERENCE
    first_only = {k for k in builtin_keys() if not losses.get_spec(k).uses_all_negatives}
    assert first_only == FIRST_NEGATIVE_ONLY
    assert losses.get_loss("dpo", dpo_pairs="expand").uses_all_negatives


def _flag_batch(requires: frozenset[str]) -> losses.PreferenceBatch:
    """b = 4, n = 3, only the fields ``requires`` names; values that put every negative in play
    (distinct, some above the chosen log-prob) and scores every scored loss accepts."""
    gen = torch.Generator().manual_seed(3)
    values = {
        "chosen_logps": -1.0 - torch.rand(4, generator=gen),
        "rejected_logps": -0.5 - 2.0 * torch.rand(4, 3, generator=gen),
        "ref_chosen_logps": -1.0 - torch.rand(4, generator=gen),
        "ref_rejected_logps": -1.0 - torch.rand(4, 3, generator=gen),
        "chosen_lengths": torch.tensor([1.0, 2.0, 3.0, 2.0]),
        "rejected_lengths": torch.tensor([[1.0, 2.0, 3.0]] * 4),
        "seq_embeddings": torch.randn(4, 3, generator=gen),
        "receiver_scores": torch.rand(4, 4, 3, generator=gen) * 2 - 1,
        # positive and below s+ + 1: defined for every margin of recdpo/recpo (docs/losses.md)
        "chosen_scores": 1.0 + torch.rand(4, generator=gen),
        "rejected_scores": 0.25 + 0.5 * torch.rand(4, 3, generator=gen),
    }
    return losses.PreferenceBatch(**{name: values[name] for name in requires})


@pytest.mark.parametrize("key", KEYS)
def test_flags_match_what_the_loss_reads(key: str) -> None:
    """Changing the negatives after the first moves the loss iff it uses all negatives, and
    changing the reference log-probs moves it iff it needs a reference model."""
    spec = losses.get_spec(key)
    batch = _flag_batch(spec.requires)

    def value(changed: losses.PreferenceBatch) -> torch.Tensor:
        torch.manual_seed(0)  # beta_dpo's subset draw: the same for every call
        # a fresh module in training mode, so running statistics (alpha_dpo's margin) are used
        return losses.get_loss(key)(changed).per_example

    base = value(batch)
    assert torch.isfinite(base).all()
    later = batch.rejected_logps.clone()
    later[:, 1:] += 0.75  # several of them now exceed the chosen log-prob
    moved = value(dataclasses.replace(batch, rejected_logps=later))
    assert (not torch.allclose(base, moved)) == spec.uses_all_negatives
    # uneven, so a loss that standardises over the batch cannot cancel it
    ref_chosen = -1.0 - torch.tensor([0.5, 0.1, 0.9, 0.3])
    if spec.needs_reference:
        shifted = dataclasses.replace(batch, ref_chosen_logps=ref_chosen)
        assert not torch.allclose(base, value(shifted))
    else:  # runs without a reference (above) and ignores one that is supplied
        given = dataclasses.replace(
            batch, ref_chosen_logps=ref_chosen, ref_rejected_logps=torch.zeros(4, 3)
        )
        torch.testing.assert_close(value(given), base)


def test_unknown_key_suggests() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'napo'"):
        losses.get_loss("napoo")
    with pytest.raises(UnknownNameError, match="did you mean 'sims_dpo'"):
        losses.get_spec("simsdpo")
    assert issubclass(UnknownNameError, UserError)


@pytest.mark.parametrize(
    ("key", "hparams", "pattern"),
    [
        ("napo", {"rho": 1.5}, r"rho=1\.5 is out of range; expected a number in \[0, 1\]"),
        ("napo", {"rho": -0.1}, r"rho.*\[0, 1\]"),
        ("napo", {"momentum": 1.0}, r"momentum=1\.0 .*\[0, 1\)"),
        ("alpha_dpo", {"momentum": -0.5}, r"momentum.*\[0, 1\)"),
        ("dpo", {"beta": -1.0}, r"beta=-1\.0 .*\(0, inf\)"),
        ("simpo", {"beta": 0.0}, r"beta=0\.0 .*\(0, inf\)"),
        ("dpo", {"label_smoothing": 0.5}, r"label_smoothing=0\.5 .*\[0, 0\.5\)"),
        ("napo", {"detach_negatives": "some"}, r"one of 'none', 'shared', 'all'"),
        ("napo", {"ln": 1}, r"True or False"),
        ("napo", {"beta": "1"}, r"beta='1' is invalid"),
        ("napo", {"gamma": float("nan")}, r"gamma=nan is out of range"),
        ("napo", {"rhoo": 0.5}, r"no hyper-parameter 'rhoo' \(did you mean 'rho'\?\)"),
        ("napo_no_ns", {"rho": 0.7}, r"fixes rho=0\.0"),
        ("napo_no_ns_gamma", {"gamma": 1.0}, r"fixes gamma=0\.0"),
        ("sdpo_ns", {"reward": "policy"}, r"fixes reward='ref_ratio'"),
    ],
)
def test_bad_hparams(key: str, hparams: dict, pattern: str) -> None:
    with pytest.raises(UserError, match=pattern) as info:
        losses.get_loss(key, **hparams)
    message = str(info.value)
    assert "\n" not in message and key in message


def test_ints_accepted_for_floats_and_fixed_value_may_be_repeated() -> None:
    module = losses.get_loss("napo", beta=2, rho=1)
    assert module.hparams.beta == 2.0 and isinstance(module.hparams.beta, float)
    assert losses.get_loss("napo_no_ns", rho=0.0).hparams.rho == 0.0


def test_missing_field_is_named() -> None:
    batch = losses.PreferenceBatch(chosen_logps=torch.zeros(4), rejected_logps=torch.zeros(4, 2))
    with pytest.raises(
        UserError, match="'napo' needs PreferenceBatch field\\(s\\) rejected_scores, seq_embeddings"
    ):
        losses.get_loss("napo")(batch)
    with pytest.raises(UserError, match="ref_chosen_logps, ref_rejected_logps"):
        losses.get_loss("dpo")(batch)
    with pytest.raises(UserError, match="receiver_scores"):
        losses.get_loss("napo_paper")(batch)
    # fields a configuration does not need are not demanded
    assert torch.isfinite(losses.get_loss("napo", rho=0.0, alpha=0.0)(batch).loss)


def test_shape_errors() -> None:
    with pytest.raises(UserError, match=r"rejected_logps must have shape \[b, n\]"):
        losses.get_loss("sims_dpo")(
            losses.PreferenceBatch(chosen_logps=torch.zeros(4), rejected_logps=torch.zeros(4))
        )
    with pytest.raises(UserError, match=r"ref_rejected_logps must have shape \[4, 2\]"):
        losses.get_loss("dpo")(
            losses.PreferenceBatch(
                chosen_logps=torch.zeros(4),
                rejected_logps=torch.zeros(4, 2),
                ref_chosen_logps=torch.zeros(4),
                ref_rejected_logps=torch.zeros(4, 3),
            )
        )
    with pytest.raises(UserError, match="lengths must be positive"):
        losses.get_loss("simpo")(
            losses.PreferenceBatch(
                chosen_logps=torch.zeros(2),
                rejected_logps=torch.zeros(2, 1),
                chosen_lengths=torch.tensor([1.0, 0.0]),
                rejected_lengths=torch.ones(2, 1),
            )
        )
    with pytest.raises(UserError, match=r"receiver_scores must lie in \[-1, 1\]"):
        losses.get_loss("napo_paper")(
            losses.PreferenceBatch(
                chosen_logps=torch.zeros(3),
                rejected_logps=torch.zeros(3, 1),
                seq_embeddings=torch.randn(3, 2),
                receiver_scores=torch.full((3, 3, 1), 4.0),
            )
        )


def test_output_structure() -> None:
    gen = torch.Generator().manual_seed(0)
    batch = losses.PreferenceBatch(
        chosen_logps=torch.randn(5, generator=gen).requires_grad_(True),
        rejected_logps=torch.randn(5, 3, generator=gen).requires_grad_(True),
        seq_embeddings=torch.randn(5, 4, generator=gen),
        rejected_scores=torch.randn(5, 3, generator=gen),
    )
    out = losses.get_loss("napo")(batch)
    assert isinstance(out, losses.LossOutput)
    assert out.per_example.shape == (5,)
    torch.testing.assert_close(out.loss, out.per_example.mean())
    assert out.loss.requires_grad
    for name in (
        "gamma",
        "K",
        "pool_size",
        "rewards/accuracy",
        "rewards/chosen",
        "rewards/rejected",
    ):
        assert name in out.metrics
    assert out.metrics["K"] == 2 and float(out.metrics["pool_size"]) == 9.0
    assert not any(isinstance(v, torch.Tensor) and v.requires_grad for v in out.metrics.values())
