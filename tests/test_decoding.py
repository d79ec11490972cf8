"""Greedy answers from the ranking pass's prompt cache (``generation_from_ranking``, issue 36
item 3, :mod:`recbench.decoding`).

The reference is transformers' own ``generate`` (greedy, one unpadded prompt at a time), which
shares no code with :func:`recbench.decoding.score_and_generate`.  Token ids are integers, so
they are compared exactly; on a random tiny model a near tie between two next tokens is
improbable, and the prompts are fixed.  Scores are float sums compared to :data:`ATOL`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from peft import LoraConfig, get_peft_model
from test_scoring import IMPLEMENTATIONS, VOCAB, make_batch
from transformers import LlamaConfig, LlamaForCausalLM

from recbench import runner
from recbench.config import RunConfig
from recbench.decoding import score_and_generate
from recbench.errors import UserError
from recbench.evaluation import generate_answers, rank_and_generate, rank_candidates
from recbench.journal import Journal
from recbench.pipeline import LLMRun
from recbench.scoring import score_responses

ATOL = 1e-4  # nats: the same packed forward with and without its cache kept


def make_model(impl: str, seed: int = 0) -> LlamaForCausalLM:
    """A tiny random Llama whose answers depend on the whole prompt: with tied embeddings and
    the usual small initialisation it only repeats the last prompt token, which a wrong mask
    or cache would reproduce too."""
    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        tie_word_embeddings=False, attn_implementation=impl, initializer_range=0.3,
    )  # fmt: skip
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


def test_the_model_answers_from_the_whole_prompt():
    """Guards the tests below: a changed first prompt token changes the answer."""
    model = make_model("eager")
    prompts, _ = make_batch()
    answer = reference_tokens(model, prompts[0], 6, None)
    assert len(set(answer)) > 2
    changed = [(prompts[0][0] + 1) % VOCAB, *prompts[0][1:]]
    assert reference_tokens(model, changed, 6, None) != answer


def reference_tokens(model, prompt: list[int], max_new: int, eos: int | None) -> list[int]:
    """transformers' greedy continuation of one unpadded prompt, cut before its EOS."""
    out = model.generate(
        input_ids=torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=int),
        do_sample=False, max_new_tokens=max_new, eos_token_id=eos, pad_token_id=0,
    )[0, len(prompt) :].tolist()  # fmt: skip
    return out[: out.index(eos)] if eos in out else out


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("lora", [False, True])
def test_answers_are_transformers_greedy_answers_and_scores_are_unchanged(impl, lora):
    model = make_model(impl)
    if lora:
        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"]))
        with torch.no_grad():  # a non-zero adapter, so that it must be active to match
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.2, generator=torch.Generator().manual_seed(3))
    prompts, responses = make_batch()
    expected = [reference_tokens(model, p, 6, None) for p in prompts]
    # a real id the model does not produce here: no row stops early
    never = min(set(range(3, VOCAB)) - {t for e in expected for t in e})
    scores, tokens, seconds = score_and_generate(
        model, prompts, responses, max_new_tokens=6, eos_token_id=never
    )
    assert tokens == expected
    assert all(len(t) == 6 for t in tokens) and seconds >= 0
    plain = score_responses(model, prompts, responses)
    np.testing.assert_allclose(
        scores.logps[plain.mask].detach(), plain.logps[plain.mask].detach(), atol=ATOL, rtol=0
    )


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_a_row_stops_at_its_eos_while_the_others_go_on(impl):
    model = make_model(impl, seed=4)
    prompts, responses = make_batch(seed=5)
    free = [reference_tokens(model, p, 8, None) for p in prompts]
    # the first token of the first answer not seen in it before ends it there
    cut = next(k for k in range(1, 8) if free[0][k] not in free[0][:k])
    eos = free[0][cut]
    expected = [reference_tokens(model, p, 8, eos) for p in prompts]
    assert expected[0] == free[0][:cut]
    assert any(len(e) == 8 for e in expected)  # another row runs to the limit
    _, tokens, _ = score_and_generate(model, prompts, responses, max_new_tokens=8,
                                      eos_token_id=[eos])  # fmt: skip
    assert tokens == expected


def test_an_example_without_responses_is_refused_rather_than_answered_wrongly():
    model = make_model("sdpa")
    prompts, responses = make_batch()
    responses[1] = []
    with pytest.raises(ValueError, match=r"examples \[1\] have no response"):
        score_and_generate(model, prompts, responses, max_new_tokens=2, eos_token_id=2)


# ------------------------------------------------------------ the tiny model, real prompts
@pytest.fixture(scope="module")
def tiny_items(tiny_llm, tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("RECBENCH_HOME", str(tmp_path_factory.mktemp("decoding-home")))
    config = RunConfig(
        loss="dpo", profile="smoke", model=str(tiny_llm),
        overrides={"eval_split": "val", "eval_examples": 12},
    ).validate()  # fmt: skip
    llm = LLMRun.from_config(config)
    yield llm, llm.eval_items(runner.evaluation_examples(config, llm.ds))
    mp.undo()


@pytest.mark.model
def test_rank_and_generate_gives_the_ranking_and_the_answers_of_the_two_passes(
    tiny_items, tmp_path, monkeypatch
):
    llm, items = tiny_items
    common = {"max_prompt_tokens": 128, "progress": False}
    values, lengths = rank_candidates(llm.model, llm.tokenizer, llm.ds, items, batch_size=4,
                                      **common)  # fmt: skip
    answers = generate_answers(llm.model, llm.tokenizer, items, batch_size=8,
                               max_new_tokens=8, **common)  # fmt: skip
    journal = Journal(tmp_path / "ranking-generation.jsonl")
    both = rank_and_generate(llm.model, llm.tokenizer, llm.ds, items, batch_size=4,
                             max_new_tokens=8, journal=journal, **common)  # fmt: skip
    np.testing.assert_allclose(both.values, values, atol=ATOL, rtol=0)
    np.testing.assert_array_equal(both.lengths, lengths)
    assert both.answers == answers
    # resumed from its journal: nothing is scored again, and the same numbers come back
    from recbench import evaluation

    def refuse(*args, **kwargs):
        raise AssertionError("a journalled batch was scored again")

    monkeypatch.setattr(evaluation, "score_and_generate", refuse)
    again = rank_and_generate(llm.model, llm.tokenizer, llm.ds, items, batch_size=4,
                              max_new_tokens=8, journal=Journal(journal.path), **common)  # fmt: skip
    np.testing.assert_allclose(again.values, both.values, atol=1e-12, rtol=0)
    assert again.answers == both.answers
    assert again.decode_seconds == pytest.approx(both.decode_seconds, rel=1e-9)


@pytest.mark.model
def test_a_run_with_generation_from_ranking_records_the_same_metrics(tiny_llm, recbench_home):
    def evaluate(**overrides):
        config = RunConfig(baseline="zero_shot", profile="smoke", model=str(tiny_llm),
                           overrides=overrides).validate()  # fmt: skip
        return runner.evaluate(config), runner.plan(config).run_id

    (plain, plain_id), (shared, shared_id) = evaluate(), evaluate(generation_from_ranking=True)
    assert plain_id != shared_id  # another evaluation, another run
    assert shared.answers.texts == plain.answers.texts
    for mode in ("ranking", "generation"):
        for metric, value in plain.evaluation[mode].items():
            assert shared.evaluation[mode][metric] == pytest.approx(value, abs=1e-9, nan_ok=True), (
                metric
            )
    assert shared.timings["eval_generation_seconds"] >= 0
    assert shared.timings["eval_ranking_seconds"] > 0


def test_generation_from_ranking_off_keeps_every_run_id():
    """Runs from before the setting existed keep their ids: it joins the identity only when
    on (a pinned id of the smoke profile's DPO run on lastfm would change otherwise)."""
    from recbench.pipeline import evaluation_identity

    settings = RunConfig(loss="dpo", profile="smoke").validate().settings
    assert "generation_from_ranking" not in evaluation_identity(settings)
    on = RunConfig(loss="dpo", profile="smoke", overrides={"generation_from_ranking": True})
    assert evaluation_identity(on.validate().settings)["generation_from_ranking"] is True


def test_generation_from_ranking_with_a_screened_ranking_is_a_one_line_error():
    config = RunConfig(
        loss="dpo", profile="smoke",
        overrides={"generation_from_ranking": True, "eval_precision": "screened"},
    )  # fmt: skip
    with pytest.raises(UserError) as caught:
        config.validate()
    assert "\n" not in str(caught.value) and "eval_precision" in str(caught.value)
