"""Tests of recbench.scoring on a tiny random Llama (never real weights).

The packed path is always compared with the plain path, which is itself checked against
single unpadded sequences scored directly from the model's logits in this file, so a bug in
either path shows up as a mismatch rather than as agreement with itself.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from peft import LoraConfig, get_peft_model
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from recbench.scoring import (
    PackedScoringUnsupportedError,
    ResponseScores,
    _packed_attention_mask,
    check_packed_support,
    encode_pairs,
    score_responses,
)

VOCAB = 300
ATOL = 1e-4
IMPLEMENTATIONS = ("eager", "sdpa")


def make_model(impl: str, *, seed: int = 0, tie: bool = True) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=tie,
        attn_implementation=impl,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    assert model.config._attn_implementation == impl
    return model.eval()


def random_ids(gen: torch.Generator, n: int) -> list[int]:
    return torch.randint(3, VOCAB, (n,), generator=gen).tolist()


def make_batch(
    seed: int = 1,
    prompt_lengths: tuple[int, ...] = (7, 13, 2, 9),
    response_lengths: tuple[tuple[int, ...], ...] = ((3, 1, 5), (2, 4, 6, 1), (5, 2), (1, 1, 3)),
) -> tuple[list[list[int]], list[list[list[int]]]]:
    """Different prompt lengths, response lengths and numbers of responses per example."""
    gen = torch.Generator().manual_seed(seed)
    prompts = [random_ids(gen, n) for n in prompt_lengths]
    responses = [[random_ids(gen, c) for c in lengths] for lengths in response_lengths]
    return prompts, responses


def weighted_sum(scores: ResponseScores, seed: int = 2) -> torch.Tensor:
    """A scalar that depends on every score with a different weight (so grads are not symmetric)."""
    weights = torch.randn(scores.logps.shape, generator=torch.Generator().manual_seed(seed))
    real = torch.where(scores.mask, scores.logps, torch.zeros_like(scores.logps))
    return (real * weights).sum()


def grads_of(
    model: torch.nn.Module, prompts: list, responses: list, **kwargs: object
) -> tuple[ResponseScores, dict[str, torch.Tensor]]:
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    scores = score_responses(model, prompts, responses, **kwargs)
    grads = torch.autograd.grad(weighted_sum(scores), list(params.values()), allow_unused=True)
    return scores, {
        n: torch.zeros_like(p) if g is None else g
        for (n, p), g in zip(params.items(), grads, strict=True)
    }


def assert_same_scores(a: ResponseScores, b: ResponseScores, atol: float = ATOL) -> None:
    assert torch.equal(a.mask, b.mask)
    assert torch.equal(a.lengths, b.lengths)
    assert a.logps.dtype == b.logps.dtype == torch.float32
    assert torch.isneginf(a.logps[~a.mask]).all() and torch.isneginf(b.logps[~b.mask]).all()
    diff = (a.logps[a.mask] - b.logps[b.mask]).abs().max().item()
    assert diff <= atol, f"logps differ by {diff}"


def assert_same_grads(ga: dict, gb: dict, atol: float = ATOL) -> None:
    assert ga.keys() == gb.keys() and ga
    for name, grad in ga.items():
        diff = (grad - gb[name]).abs().max().item()
        assert diff <= atol, f"grad of {name} differs by {diff}"
    # the comparison must not pass vacuously
    assert sum(g.abs().sum().item() for g in ga.values()) > 0


def reference_logps(model: torch.nn.Module, prompt: list[int], response: list[int]) -> float:
    """One unpadded sequence through the model's own forward: the textbook definition."""
    ids = torch.tensor([prompt + response])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float()
    logps = torch.log_softmax(logits, -1)
    p = len(prompt)
    return sum(logps[p - 1 + t, tok].item() for t, tok in enumerate(response))


# --------------------------------------------------------------------------------------------
# The reference itself
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_plain_matches_unpadded_single_sequences(impl: str) -> None:
    model = make_model(impl)
    prompts, responses = make_batch()
    with torch.no_grad():
        scores = score_responses(model, prompts, responses, mode="plain", pad_token_id=5)
    for i, group in enumerate(responses):
        for k, response in enumerate(group):
            expected = reference_logps(model, prompts[i], response)
            assert abs(scores.logps[i, k].item() - expected) <= ATOL


# --------------------------------------------------------------------------------------------
# packed == plain
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tie", [True, False])
@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_packed_matches_plain_values_and_grads(impl: str, tie: bool) -> None:
    model = make_model(impl, tie=tie)
    prompts, responses = make_batch()
    packed, g_packed = grads_of(model, prompts, responses, mode="packed")
    plain, g_plain = grads_of(model, prompts, responses, mode="plain")
    assert_same_scores(packed, plain)
    assert_same_grads(g_packed, g_plain)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_packed_matches_plain_for_other_batches(impl: str) -> None:
    """Equal numbers of responses, a single example, one-token prompts and responses."""
    model = make_model(impl, seed=3)
    for seed, plens, rlens in [
        (4, (5, 5, 11), ((2, 3), (4, 1), (1, 7))),
        (5, (17,), ((1, 2, 3, 4, 5, 6),)),
        (6, (1, 4), ((1,), (2,))),
    ]:
        prompts, responses = make_batch(seed, plens, rlens)
        packed, g_packed = grads_of(model, prompts, responses)
        plain, g_plain = grads_of(model, prompts, responses, mode="plain")
        assert_same_scores(packed, plain)
        assert_same_grads(g_packed, g_plain)


def test_eager_and_sdpa_agree() -> None:
    prompts, responses = make_batch()
    with torch.no_grad():
        eager = score_responses(make_model("eager"), prompts, responses)
        sdpa = score_responses(make_model("sdpa"), prompts, responses)
    assert_same_scores(eager, sdpa)


def test_comparison_detects_a_wrong_context() -> None:
    """Guard against vacuous agreement: a changed prompt token changes every score."""
    model = make_model("sdpa")
    prompts, responses = make_batch()
    altered = [list(p) for p in prompts]
    altered[1][0] = (altered[1][0] + 1) % VOCAB
    with torch.no_grad():
        plain = score_responses(model, prompts, responses, mode="plain")
        packed = score_responses(model, altered, responses)
    assert (packed.logps[1, :4] - plain.logps[1, :4]).abs().min() > 1e-3
    assert torch.allclose(packed.logps[0], plain.logps[0], atol=ATOL, rtol=0)


# --------------------------------------------------------------------------------------------
# peft / LoRA
# --------------------------------------------------------------------------------------------


def make_lora_model(impl: str) -> torch.nn.Module:
    config = LoraConfig(
        r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj"],
        init_lora_weights=False,  # random B as well as A: the adapter changes the outputs
    )
    torch.manual_seed(7)
    return get_peft_model(make_model(impl), config)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_lora_packed_matches_plain(impl: str) -> None:
    model = make_lora_model(impl)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    prompts, responses = make_batch()
    packed, g_packed = grads_of(model, prompts, responses)
    plain, g_plain = grads_of(model, prompts, responses, mode="plain")
    assert_same_scores(packed, plain)
    assert_same_grads(g_packed, g_plain)
    assert all(g_packed[n].abs().sum() > 0 for n in trainable)


def test_lora_adapters_are_active_in_packed_path() -> None:
    model = make_lora_model("sdpa")
    prompts, responses = make_batch()
    with torch.no_grad():
        with_adapter = score_responses(model, prompts, responses)
        with model.disable_adapter():
            without = score_responses(model, prompts, responses)
            without_plain = score_responses(model, prompts, responses, mode="plain")
    assert_same_scores(without, without_plain)
    assert (with_adapter.logps[with_adapter.mask] - without.logps[without.mask]).abs().max() > 1e-3


# --------------------------------------------------------------------------------------------
# lengths, masks, chunking, prompt sharing
# --------------------------------------------------------------------------------------------


def test_lengths_and_mask_count_response_tokens() -> None:
    model = make_model("sdpa")
    prompts, responses = make_batch()
    for mode in ("packed", "plain"):
        with torch.no_grad():
            scores = score_responses(model, prompts, responses, mode=mode)
        assert scores.lengths.dtype == torch.long
        assert scores.lengths.tolist() == [[3, 1, 5, 0], [2, 4, 6, 1], [5, 2, 0, 0], [1, 1, 3, 0]]
        assert scores.mask.tolist() == [[len(g) > k for k in range(4)] for g in responses]


def test_empty_response_scores_zero() -> None:
    model = make_model("eager")
    prompts, responses = make_batch(prompt_lengths=(4, 6), response_lengths=((2, 0), (3,)))
    for mode in ("packed", "plain"):
        with torch.no_grad():
            scores = score_responses(model, prompts, responses, mode=mode)
        assert scores.mask.tolist() == [[True, True], [True, False]]
        assert scores.lengths.tolist() == [[2, 0], [3, 0]]
        assert scores.logps[0, 1].item() == 0.0


@pytest.mark.parametrize("mode", ["packed", "plain"])
@pytest.mark.parametrize("budget", [1, 8, 14, 30, 10_000])
def test_chunking_gives_the_same_values(mode: str, budget: int) -> None:
    model = make_model("sdpa")
    prompts, responses = make_batch()
    with torch.no_grad():
        plain = score_responses(model, prompts, responses, mode="plain")
    calls: list[tuple[int, int]] = []
    hook = model.get_input_embeddings().register_forward_hook(
        lambda _m, args, _o: calls.append(tuple(args[0].shape))
    )
    try:
        with torch.no_grad():
            chunked = score_responses(
                model, prompts, responses, mode=mode, max_tokens_per_forward=budget
            )
    finally:
        hook.remove()
    assert_same_scores(chunked, plain)
    for rows, length in calls:
        assert rows * length <= budget or rows == 1
    if budget == 10_000:
        assert len(calls) == 1


def test_chunking_gradients_match() -> None:
    model = make_model("eager")
    prompts, responses = make_batch()
    whole, g_whole = grads_of(model, prompts, responses, mode="plain")
    chunked, g_chunked = grads_of(model, prompts, responses, max_tokens_per_forward=12)
    assert_same_scores(chunked, whole)
    assert_same_grads(g_chunked, g_whole)


def count_fed_tokens(model: torch.nn.Module, prompts: list, responses: list, mode: str) -> int:
    """Number of non-padding ids that reach the embedding layer."""
    pad = VOCAB - 1  # never produced by random_ids... except by chance; checked below
    assert all(pad not in p for p in prompts) and all(pad not in r for g in responses for r in g)
    fed = []
    hook = model.get_input_embeddings().register_forward_hook(
        lambda _m, args, _o: fed.append(int((args[0] != pad).sum()))
    )
    try:
        with torch.no_grad():
            score_responses(model, prompts, responses, mode=mode, pad_token_id=pad)
    finally:
        hook.remove()
    return sum(fed)


def test_packed_path_feeds_the_prompt_once() -> None:
    model = make_model("sdpa")
    prompts, responses = make_batch(seed=11)
    # per example: the prompt once, plus every response token except the last (the EOS is only
    # a target, nothing after it is scored)
    expected_packed = sum(
        len(p) + sum(len(r) - 1 for r in group) for p, group in zip(prompts, responses)
    )
    expected_plain = sum(len(p) + len(r) for p, group in zip(prompts, responses) for r in group)
    assert count_fed_tokens(model, prompts, responses, "packed") == expected_packed
    assert count_fed_tokens(model, prompts, responses, "plain") == expected_plain
    # one example on its own: no padding at all, P + sum(c_k - 1) positions in one row
    shapes: list[tuple[int, ...]] = []
    hook = model.get_input_embeddings().register_forward_hook(
        lambda _m, args, _o: shapes.append(tuple(args[0].shape))
    )
    try:
        with torch.no_grad():
            score_responses(model, prompts[1:2], responses[1:2])
    finally:
        hook.remove()
    assert shapes == [(1, len(prompts[1]) + sum(len(r) - 1 for r in responses[1]))]


def test_lm_head_sees_only_predicting_positions() -> None:
    model = make_model("sdpa")
    prompts, responses = make_batch()
    rows: list[int] = []
    hook = model.lm_head.register_forward_hook(
        lambda _m, args, _o: rows.append(args[0].reshape(-1, args[0].shape[-1]).shape[0])
    )
    try:
        with torch.no_grad():
            score_responses(model, prompts, responses)
    finally:
        hook.remove()
    assert rows == [sum(len(r) for group in responses for r in group)]


# --------------------------------------------------------------------------------------------
# the mask itself
# --------------------------------------------------------------------------------------------


def test_packed_mask_structure() -> None:
    # one row: prompt of 2, response 1 with 2 inputs, response 2 with 1 input, one padding slot
    segment = torch.tensor([[0, 0, 1, 1, 2, -1]])
    position = torch.tensor([[0, 1, 2, 3, 2, 0]])
    expected = torch.tensor(
        [
            [1, 0, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0],
            [1, 1, 1, 0, 0, 0],
            [1, 1, 1, 1, 0, 0],
            [1, 1, 0, 0, 1, 0],
            [0, 0, 0, 0, 0, 1],
        ],
        dtype=torch.bool,
    )
    as_bool = _packed_attention_mask(segment, position, "sdpa", torch.float32)
    assert as_bool.dtype == torch.bool and as_bool.shape == (1, 1, 6, 6)
    assert torch.equal(as_bool[0, 0], expected)
    additive = _packed_attention_mask(segment, position, "eager", torch.bfloat16)
    assert additive.dtype == torch.bfloat16
    assert torch.equal(additive[0, 0] == 0, expected)
    assert (additive[0, 0][~expected] == torch.finfo(torch.bfloat16).min).all()


# --------------------------------------------------------------------------------------------
# dtype, errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_bf16_model_gives_float32_logps(impl: str) -> None:
    model = make_model(impl).to(torch.bfloat16)
    prompts, responses = make_batch()
    packed, grads = grads_of(model, prompts, responses)
    with torch.no_grad():
        plain = score_responses(model, prompts, responses, mode="plain")
    assert packed.logps.dtype == torch.float32
    assert torch.isfinite(packed.logps[packed.mask]).all()
    assert all(torch.isfinite(g).all() for g in grads.values())
    # bf16 activations: agreement only to bf16 precision
    assert_same_scores(packed, plain, atol=0.5)


def test_unsupported_attention_is_refused() -> None:
    model = make_model("sdpa")
    model.config._attn_implementation = "flash_attention_2"
    assert model.model.config._attn_implementation == "flash_attention_2"
    prompts, responses = make_batch()
    with pytest.raises(PackedScoringUnsupportedError, match="mode='plain'"):
        check_packed_support(model)
    with pytest.raises(PackedScoringUnsupportedError, match="flash_attention_2"):
        score_responses(model, prompts, responses)


def test_logit_softcapping_is_refused() -> None:
    model = make_model("eager")
    model.config.final_logit_softcapping = 30.0
    with pytest.raises(PackedScoringUnsupportedError, match="final_logit_softcapping"):
        check_packed_support(model)


def test_invalid_arguments() -> None:
    model = make_model("eager")
    prompts, responses = make_batch()
    with pytest.raises(ValueError, match="mode"):
        score_responses(model, prompts, responses, mode="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        score_responses(model, [[], [3]], [[[4]], [[5]]])
    with pytest.raises(ValueError, match="response lists"):
        score_responses(model, prompts, responses[:-1])
    with pytest.raises(ValueError, match="max_tokens_per_forward"):
        score_responses(model, prompts, responses, max_tokens_per_forward=0)


def test_empty_batch() -> None:
    scores = score_responses(make_model("eager"), [], [])
    assert scores.logps.shape == scores.lengths.shape == scores.mask.shape == (0, 0)


def test_masked_candidates_do_not_break_gradients_of_a_softmax_loss() -> None:
    model = make_model("sdpa")
    prompts, responses = make_batch()
    scores = score_responses(model, prompts, responses)
    loss = -(scores.logps[:, 0] - torch.logsumexp(scores.logps, dim=-1)).sum()
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


# --------------------------------------------------------------------------------------------
# encode_pairs
# --------------------------------------------------------------------------------------------


@pytest.fixture
def tokenizer() -> Iterator[PreTrainedTokenizerFast]:
    words = ["<unk>", "<s>", "</s>", "recommend", "one", "of", "a", "b", "c", "the", "band"]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    yield PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def test_encode_pairs_tokenises_separately_with_eos(tokenizer: PreTrainedTokenizerFast) -> None:
    prompts, responses = encode_pairs(
        tokenizer, ["recommend one of a b", "c"], [["the band", "a"], ["b"]], add_bos=False
    )
    assert prompts == [[3, 4, 5, 6, 7], [8]]
    assert responses == [[[9, 10, 2], [6, 2]], [[7, 2]]]


def test_encode_pairs_bos_and_left_truncation(tokenizer: PreTrainedTokenizerFast) -> None:
    prompts, _ = encode_pairs(tokenizer, ["recommend one of a b"], [["c"]], add_bos=True)
    assert prompts == [[1, 3, 4, 5, 6, 7]]
    prompts, responses = encode_pairs(
        tokenizer, ["recommend one of a b", "c"], [["c"], ["a"]], add_bos=True, max_prompt_tokens=3
    )
    assert prompts == [[1, 6, 7], [1, 8]]  # oldest tokens dropped, BOS kept
    assert responses == [[[8, 2]], [[6, 2]]]
    prompts, _ = encode_pairs(
        tokenizer, ["recommend one of a b"], [["c"]], add_bos=False, max_prompt_tokens=2
    )
    assert prompts == [[6, 7]]
    prompts, _ = encode_pairs(  # shorter than the limit: untouched
        tokenizer, ["one of a", "b"], [["c"], ["c"]], add_bos=True, max_prompt_tokens=10
    )
    assert prompts == [[1, 4, 5, 6], [1, 7]]
    prompts, _ = encode_pairs(  # a limit of 1 leaves only the BOS token
        tokenizer, ["one of a"], [["c"]], add_bos=True, max_prompt_tokens=1
    )
    assert prompts == [[1]]


def test_encode_pairs_feeds_score_responses(tokenizer: PreTrainedTokenizerFast) -> None:
    prompts, responses = encode_pairs(
        tokenizer, ["recommend one of a b c", "the band"], [["a", "b c"], ["c"]], add_bos=True
    )
    model = make_model("sdpa")
    with torch.no_grad():
        scores = score_responses(model, prompts, responses)
    assert scores.lengths.tolist() == [[2, 3], [2, 0]]
