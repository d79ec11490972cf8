"""Screened ranking (``eval_precision=screened``, issue 36 item 3): a bf16 pass on a merged copy
scores every candidate, and the examples whose top two candidates are closer than the margin are
scored again in fp32.  These tests pin the routing rule: every re-scored example carries fp32's
scores (an infinite margin gives fp32's ranking), no other example does (margin 0 gives the bf16
pass's), the model it screens with is a copy, and the share re-scored reaches the run's record.

Tolerances: the fp32 pass is the same computation as plain fp32 ranking, so its scores agree to
:data:`FP32_ATOL` (float32 rounding of a sum of a few dozen log-probabilities); a bf16 score
differs from fp32 by well under :data:`BF16_RTOL` of its size on the tiny model.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recbench import runner
from recbench.config import RunConfig
from recbench.errors import UserError
from recbench.evaluation import (
    bf16_scoring_copy,
    check_margin,
    needs_rescoring,
    rank_candidates,
    screened_rank,
    top_two_gap,
)
from recbench.pipeline import LLMRun
from recbench.trainer import add_lora

FP32_ATOL = 1e-4  # nats: fp32 scores of one computation path, batched alike
BF16_RTOL = 0.05  # of |score|: the bf16 pass, against fp32
LORA_SHIFT = 1e-2  # nats: the adapter noise moves scores by far more than this


# ------------------------------------------------------------------ the rule on plain arrays
def test_top_two_gap_is_top_minus_runner_up_and_ignores_padding():
    scores = np.array(
        [
            [-1.0, -3.0, -1.5, -np.inf],  # gap 0.5, padding ignored
            [-2.0, -2.0, -9.0, -9.0],  # a tie: gap 0
            [-4.0, -np.inf, -np.inf, -np.inf],  # a single candidate: nothing to confuse
        ]
    )
    gap = top_two_gap(scores)
    np.testing.assert_allclose(gap[:2], [0.5, 0.0], atol=1e-12)
    assert gap[2] == np.inf


def test_needs_rescoring_routes_gaps_below_the_margin_only():
    scores = np.array([[0.0, -0.1, -5.0], [0.0, -0.3, -5.0], [0.0, 0.0, -1.0]])
    np.testing.assert_array_equal(needs_rescoring(scores, 0.2), [True, False, True])
    np.testing.assert_array_equal(needs_rescoring(scores, 0.0), [False, False, False])
    np.testing.assert_array_equal(needs_rescoring(scores, math.inf), [True, True, True])


@pytest.mark.parametrize(
    ("margin", "error"), [(-0.1, ValueError), (math.nan, ValueError), (True, TypeError)]
)
def test_a_margin_that_would_route_silently_wrong_is_refused(margin, error):
    with pytest.raises(error, match="screening margin"):
        check_margin(margin)


def test_an_unknown_eval_precision_is_a_one_line_user_error():
    config = RunConfig(loss="dpo", profile="smoke", overrides={"eval_precision": "screen"})
    with pytest.raises(UserError) as caught:
        config.validate()
    message = str(caught.value)
    assert "\n" not in message
    assert "unknown eval_precision 'screen'" in message and "screened" in message


def test_screened_is_an_accepted_eval_precision_and_fp32_stays_every_default():
    from recbench.config import PROFILES

    RunConfig(loss="dpo", profile="smoke", overrides={"eval_precision": "screened"}).validate()
    assert {p.eval_precision for p in PROFILES.values()} == {"fp32"}


# ------------------------------------------------------------ the tiny model, real prompts
@pytest.fixture(scope="module")
def tiny_run(tiny_llm, tmp_path_factory) -> tuple[LLMRun, list]:
    """The tiny Llama with a noisy LoRA (so that merging matters) and 24 validation prompts."""
    mp = pytest.MonkeyPatch()
    mp.setenv("RECBENCH_HOME", str(tmp_path_factory.mktemp("fast-ranking-home")))
    config = RunConfig(
        loss="dpo", profile="smoke", model=str(tiny_llm),
        overrides={"eval_split": "val", "eval_examples": 24, "eval_precision": "screened"},
    ).validate()  # fmt: skip
    llm = LLMRun.from_config(config)
    model = add_lora(llm.model, r=4, alpha=8, seed=0)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.05)
    llm.model = model
    items = llm.eval_items(runner.evaluation_examples(config, llm.ds))
    yield llm, items
    mp.undo()


def _rank(llm: LLMRun, model, items, bf16: bool = False) -> np.ndarray:
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        values, _ = rank_candidates(
            model, llm.tokenizer, llm.ds, items, batch_size=4, progress=False
        )
    return values


def _screened(llm: LLMRun, items, margin: float):
    return screened_rank(
        llm.model, llm.tokenizer, llm.ds, items, margin=margin, batch_size=4, progress=False
    )


@pytest.mark.model
def test_an_infinite_margin_gives_fp32_scores_and_picks(tiny_run):
    llm, items = tiny_run
    exact = _rank(llm, llm.model, items)
    ranking = _screened(llm, items, math.inf)
    assert ranking.rescored.all() and ranking.rescored_fraction == 1.0
    np.testing.assert_allclose(ranking.values, exact, atol=FP32_ATOL, rtol=0)
    # the bf16 pass did run, and differs: the fp32 values above are not the screen's
    assert np.abs(ranking.screen_values - exact).max() > FP32_ATOL
    clear = top_two_gap(exact) > 2 * FP32_ATOL  # picks of near-ties are float noise
    assert clear.sum() >= len(items) // 2
    np.testing.assert_array_equal(ranking.values.argmax(1)[clear], exact.argmax(1)[clear])


@pytest.mark.model
def test_a_zero_margin_gives_the_bf16_pass_and_re_scores_nothing(tiny_run):
    llm, items = tiny_run
    ranking = _screened(llm, items, 0.0)
    assert not ranking.rescored.any() and ranking.rescored_fraction == 0.0
    assert ranking.seconds["rescore"] < ranking.seconds["screen"]
    bf16 = _rank(llm, bf16_scoring_copy(llm.model), items, bf16=True)
    np.testing.assert_allclose(ranking.values, bf16, atol=FP32_ATOL, rtol=0)
    exact = _rank(llm, llm.model, items)
    np.testing.assert_allclose(ranking.values, exact, rtol=BF16_RTOL)


@pytest.mark.model
def test_exactly_the_close_examples_carry_fp32_scores(tiny_run):
    llm, items = tiny_run
    exact = _rank(llm, llm.model, items)
    probe = _screened(llm, items, 0.0)
    margin = float(np.median(top_two_gap(probe.screen_values)))
    ranking = _screened(llm, items, margin)
    expected = top_two_gap(ranking.screen_values) < margin
    np.testing.assert_array_equal(ranking.rescored, expected)
    assert 0 < ranking.rescored.sum() < len(items)
    assert ranking.rescored_fraction == pytest.approx(expected.mean(), abs=1e-12)
    rows, kept = ranking.rescored, ~ranking.rescored
    np.testing.assert_allclose(ranking.values[rows], exact[rows], atol=FP32_ATOL, rtol=0)
    np.testing.assert_allclose(ranking.values[kept], ranking.screen_values[kept], atol=0, rtol=0)


@pytest.mark.model
def test_the_screen_scores_a_merged_copy_and_leaves_the_model_as_it_was(tiny_run):
    llm, items = tiny_run
    before = {k: v.clone() for k, v in llm.model.state_dict().items()}
    fast = bf16_scoring_copy(llm.model)
    after = llm.model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)  # copied, not merged in place
    assert not any("lora" in name for name, _ in fast.named_parameters())
    linears = [m for m in fast.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.dtype == torch.bfloat16 for m in linears)
    embedding = fast.get_input_embeddings().weight
    assert embedding.dtype == torch.float32  # the residual stream stays fp32 (head untied)
    # the merge carries the adapter: its scores follow the LoRA model, not the bare base
    merged = _rank(llm, fast, items, bf16=True)
    exact = _rank(llm, llm.model, items)
    with llm.model.disable_adapter():
        base = _rank(llm, llm.model, items)
    assert np.abs(base - exact).max() > LORA_SHIFT
    assert np.abs(merged - exact).max() < np.abs(base - exact).max()
    np.testing.assert_allclose(merged, exact, rtol=BF16_RTOL)


@pytest.mark.model
def test_a_screened_run_records_the_share_it_re_scored(tiny_run):
    llm, items = tiny_run
    with llm._eval_autocast():  # generation is not screened: it stays fp32
        assert not torch.is_autocast_enabled("cpu")
    scores = llm.score(items)
    assert scores.values.shape == (len(items), 20)
    fraction = llm.screening["ranking_rescored_fraction"]
    assert 0.0 <= fraction <= 1.0
    assert llm.screening["ranking_rescored"] == round(fraction * len(items))


@pytest.mark.model
def test_a_screened_evaluation_puts_the_share_re_scored_in_the_run_facts(tiny_llm, recbench_home):
    config = RunConfig(
        baseline="zero_shot", profile="smoke", model=str(tiny_llm),
        overrides={"eval_precision": "screened", "generation": False},
    ).validate()  # fmt: skip
    out = runner.evaluate(config)
    facts = out.method.facts.settings
    assert 0.0 <= facts["ranking_rescored_fraction"] <= 1.0
    expected = round(facts["ranking_rescored_fraction"] * len(out.examples))
    assert facts["ranking_rescored"] == expected
