"""The LLaRA baseline: hybrid embedding, hybrid prompt ids, scoring, curriculum, resume, CLI.

Fast tests use a tiny random Llama and a byte-level BPE trained here on lastfm prompts, so they
need no download; the CLI smoke run needs the embedded model (``model`` marker).
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from conftest import run_cli
from recbench.baselines.llara import train
from recbench.baselines.llara_model import (
    CurriculumClock,
    HybridEmbedding,
    attach_hybrid,
    hybrid_probability,
    use_hybrid,
)
from recbench.baselines.llara_prompts import HybridEncoder, title_marks
from safetensors.torch import load_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from recbench.batches import pick_examples, render
from recbench.data import load_dataset
from recbench.pipeline import LLMRun
from recbench.scoring import encode_pairs, score_responses
from recbench.trainer import add_lora, trainable_state

VOCAB = 512  # the tiny Llama's vocabulary (>= the tiny tokenizer's)
ITEMS = 4607  # lastfm items + padding row, the SASRec table's height
ATOL = 1e-4


@pytest.fixture(scope="module")
def lastfm():
    return load_dataset("lastfm")


@pytest.fixture(scope="module")
def tokenizer(lastfm):
    """A byte-level BPE (so decoding gives the text back exactly) trained on lastfm prompts."""
    texts = [render(lastfm, ex, 0).prompt for ex in pick_examples(lastfm.examples("test"), 200, 0)]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=VOCAB - 12, special_tokens=["<eos>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
        ),
    )  # fmt: skip
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>", pad_token="<eos>")
    assert len(tok) <= VOCAB
    return tok


def tiny_llama(seed: int = 0, impl: str = "sdpa") -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        tie_word_embeddings=True, attn_implementation=impl,
    )  # fmt: skip
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


def item_table(seed: int = 0) -> torch.Tensor:
    return torch.randn(ITEMS, 16, generator=torch.Generator().manual_seed(seed))


def hybrid_model(seed: int = 0, impl: str = "sdpa"):
    """Tiny Llama + LoRA + hybrid embedding, built in the order ``recbench.baselines.llara.run`` uses."""
    model = add_lora(tiny_llama(seed, impl), 4, 8, seed)
    with torch.no_grad():  # non-zero LoRA B so that the adapters matter
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.1, generator=torch.Generator().manual_seed(len(name)))
    return model, attach_hybrid(model, item_table(seed), seed)


def test_wrapper_embeds_normal_ids_by_the_table_and_virtual_ids_by_the_projector() -> None:
    model, hybrid = hybrid_model()
    base = model.get_base_model()
    assert base.get_input_embeddings() is hybrid
    assert base.get_output_embeddings().weight is hybrid.base.weight  # LM head untouched, tied
    assert base.get_output_embeddings().out_features == VOCAB == hybrid.vocab_size
    ids = torch.tensor([[3, VOCAB + 7, 11, VOCAB + 0], [VOCAB + 4606, 5, 6, 7]])
    out = hybrid(ids)
    table = item_table()
    assert torch.equal(out[0, 0], hybrid.base.weight[3])
    assert torch.equal(out[1, 3], hybrid.base.weight[7])
    for (b, t), item in {(0, 1): 7, (0, 3): 0, (1, 0): 4606}.items():
        torch.testing.assert_close(out[b, t], hybrid.projector(table[item]))
        assert not torch.allclose(out[b, t], hybrid.base.weight[0])


def test_gradients_reach_the_projector_and_never_the_sasrec_table() -> None:
    model, hybrid = hybrid_model()
    sasrec = torch.nn.Embedding(ITEMS, 16)  # a SASRec table with gradients switched on
    hybrid.item_table.copy_(sasrec.weight.detach())
    ids = torch.tensor([[3, VOCAB + 7, 11, VOCAB + 12, 9]])
    model(input_ids=ids).logits.float().logsumexp(-1).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in hybrid.projector.parameters())
    assert sasrec.weight.grad is None and not hybrid.item_table.requires_grad
    assert hybrid.base.weight.grad is None  # the LLM's table stays frozen under LoRA
    assert "item_table" not in dict(model.named_parameters())
    trainable = trainable_state(model)  # what Stage checkpoints
    assert any(".projector." in name for name in trainable)
    assert any("lora_" in name for name in trainable)


@pytest.mark.parametrize("template", [0, 1, 2])
def test_hybrid_prompt_puts_one_item_token_after_every_title(lastfm, tokenizer, template) -> None:
    encoder = HybridEncoder(tokenizer, lastfm, VOCAB)
    items = [render(lastfm, ex, 0, template=template) for ex in lastfm.examples("test")[:12]]
    text_ids, _ = encode_pairs(tokenizer, [it.prompt for it in items], [[]] * 12, add_bos=False)
    for item, ids, text in zip(items, encoder.hybrid_ids(items), text_ids, strict=True):
        example = item.example
        virtual = [i - VOCAB for i in ids if i >= VOCAB]
        assert len(virtual) == len(example.history) + 20
        assert virtual == [*example.history, *example.candidates]
        plain = [i for i in ids if i < VOCAB]
        assert plain == text  # exactly the text-only prompt's ids
        assert tokenizer.decode(plain) == item.prompt
        # each item token sits right after the token holding the end of its title
        marks = iter(title_marks(lastfm, item))
        for pos, token in enumerate(ids):
            if token < VOCAB:
                continue
            end, item_id = next(marks)
            assert token == VOCAB + item_id
            before = [i for i in ids[:pos] if i < VOCAB]
            decoded = tokenizer.decode(before)
            assert item.prompt.startswith(decoded) and len(decoded) >= end
            earlier = tokenizer.decode(before[:-1])  # may end in half a character: not a prefix
            assert not (item.prompt.startswith(earlier) and len(earlier) >= end)


def test_text_only_and_truncated_prompts_match_encode_pairs(lastfm, tokenizer) -> None:
    items = [render(lastfm, ex, 0) for ex in lastfm.examples("test")[:6]]
    encoder = HybridEncoder(tokenizer, lastfm, VOCAB, max_prompt_tokens=60)
    expected, _ = encode_pairs(
        tokenizer, [it.prompt for it in items], [[]] * 6, add_bos=False, max_prompt_tokens=60
    )
    assert encoder.prompts(items, [False] * 6) == expected
    full = encoder.hybrid_ids(items)
    for ids, whole in zip(encoder.prompts(items, [True] * 6), full, strict=True):
        assert len(ids) == 60 and ids == whole[-60:]
    responses = encoder.responses([[" a b"], [" c", " d"]])
    assert [len(g) for g in responses] == [1, 2]
    assert all(r[-1] == tokenizer.eos_token_id for g in responses for r in g)


def _reference_logps(model, hybrid: HybridEmbedding, prompt: list[int], response: list[int]):
    """One unpadded sequence, embedded by hand (no wrapper) and fed as ``inputs_embeds``."""
    rows = []
    for token in prompt + response:
        if token < VOCAB:
            rows.append(hybrid.base.weight[token])
        else:
            rows.append(hybrid.projector(hybrid.item_table[token - VOCAB]))
    with torch.no_grad():
        logits = model(inputs_embeds=torch.stack(rows)[None]).logits[0].float()
    logps = torch.log_softmax(logits, -1)
    start = len(prompt) - 1
    return sum(logps[start + t, tok].item() for t, tok in enumerate(response))


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_packed_scores_of_hybrid_prompts_match_an_inputs_embeds_forward(impl: str) -> None:
    model, hybrid = hybrid_model(1, impl)
    gen = torch.Generator().manual_seed(3)

    def tokens(n: int, virtual_every: int = 0) -> list[int]:
        ids = torch.randint(1, VOCAB, (n,), generator=gen).tolist()
        if virtual_every:
            for pos in range(2, n, virtual_every):
                ids[pos] = VOCAB + int(torch.randint(0, ITEMS, (1,), generator=gen))
        return ids

    prompts = [tokens(n, 3) for n in (17, 9, 25)]
    responses = [[tokens(c) for c in lengths] for lengths in ((3, 1, 5), (2, 6), (4, 4, 1, 2))]
    with torch.no_grad():
        scores = score_responses(model, prompts, responses, pad_token_id=0)
    for i, group in enumerate(responses):
        for k, response in enumerate(group):
            expected = _reference_logps(model, hybrid, prompts[i], response)
            assert abs(scores.logps[i, k].item() - expected) <= ATOL
    # generation reads the same embeddings: greedy ids equal those from inputs_embeds
    ids = torch.tensor([prompts[0]])
    with torch.no_grad():
        by_ids = model.generate(input_ids=ids, max_new_tokens=4, do_sample=False)[0, ids.shape[1] :]
        by_embeds = model.generate(
            inputs_embeds=hybrid(ids), attention_mask=torch.ones_like(ids), max_new_tokens=4,
            do_sample=False,
        )[0]  # fmt: skip
    assert by_ids.tolist() == by_embeds[-4:].tolist()


def test_curriculum_rises_from_text_to_hybrid_and_is_seeded() -> None:
    total = 128
    assert hybrid_probability(0, total) == 0.0
    assert hybrid_probability(32, total) == pytest.approx(0.5)
    assert all(hybrid_probability(t, total) == 1.0 for t in range(64, total))
    probs = [hybrid_probability(t, total) for t in range(total)]
    assert probs == sorted(probs)
    keys = [f"train:{i}" for i in range(400)]
    draws = [use_hybrid(0, 32, key, 0.5) for key in keys]
    assert draws == [use_hybrid(0, 32, key, 0.5) for key in keys]
    assert draws != [use_hybrid(1, 32, key, 0.5) for key in keys]
    assert 0.4 < sum(draws) / len(draws) < 0.6
    assert not any(use_hybrid(0, 0, key, 0.0) for key in keys)
    assert all(use_hybrid(0, 99, key, 1.0) for key in keys)
    clock = CurriculumClock()
    assert [clock.tick() for _ in range(3)] == [0, 1, 2]
    restored = CurriculumClock()
    restored.load_state_dict(clock.state_dict())
    assert restored.tick() == 3


# ---------------------------------------------------------------------------------- resume
class Interrupt(Exception):
    pass


def _fake_run(lastfm, tokenizer, seed: int = 0) -> SimpleNamespace:
    """The parts of an LLMRun that ``recbench.baselines.llara.train`` reads, around the tiny model."""
    from accelerate import Accelerator

    settings = SimpleNamespace(
        sft_epochs=1,
        sft_learning_rate=1e-2,
        batch_size=2,
        grad_accum=1,
        warmup_ratio=0.0,
        checkpoint_every=1,
        gradient_checkpointing=False,
    )  # the typed settings' fields
    examples = pick_examples(lastfm.examples("train"), 8, seed)
    run = SimpleNamespace(
        settings=settings, config=SimpleNamespace(seed=seed, resume=True),
        precision="fp32", accelerator=Accelerator(cpu=True), progress=False, timings={},
        train_items=[render(lastfm, ex, seed) for ex in examples], pad=tokenizer.pad_token_id,
    )  # fmt: skip
    run.stage_settings = lambda *args: LLMRun.stage_settings(run, *args)
    run.model, run.hybrid = hybrid_model(seed)
    return run


def test_resumed_training_replays_the_curriculum_and_restores_the_projector(
    lastfm, tokenizer, tmp_path
) -> None:
    encoder = HybridEncoder(tokenizer, lastfm, VOCAB, max_prompt_tokens=96)
    clean = _fake_run(lastfm, tokenizer)
    train(clean, encoder, tmp_path / "clean")

    killed = _fake_run(lastfm, tokenizer)
    calls = {"n": 0}

    def die_on_third_batch(*_args) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise Interrupt

    hook = killed.hybrid.register_forward_pre_hook(die_on_third_batch)
    with pytest.raises(Interrupt):
        train(killed, encoder, tmp_path / "killed")
    hook.remove()
    assert json.loads((tmp_path / "killed/checkpoint/state.json").read_text())["step"] == 2
    resumed = _fake_run(lastfm, tokenizer)  # a fresh process: new model, new clock
    train(resumed, encoder, tmp_path / "killed")

    def log(name: str) -> list[dict]:
        """The stage's log without ``rss_mb`` (the process's memory, not the training)."""
        lines = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(line).items() if k != "rss_mb"} for line in lines]

    assert log("killed") == log("clean")
    assert [e["hybrid_probability"] for e in log("clean")] == [0.0, 0.5, 1.0, 1.0]
    final = load_file(str(tmp_path / "clean/final/adapter.safetensors"))
    assert any(".projector." in name for name in final)
    a, b = trainable_state(clean.model), trainable_state(resumed.model)
    assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)


# ------------------------------------------------------------------------------------- CLI
@pytest.mark.model
def test_llara_smoke_run_appends_ranking_and_generation_records(model_home, tmp_path) -> None:
    store = tmp_path / "results.jsonl"
    result = run_cli(
        "run", "--baseline", "llara", "--dataset", "lastfm", "--profile", "smoke",
        "--results", str(store), "--output-dir", str(tmp_path / "run"),
        env={"RECBENCH_HOME": str(model_home), "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in store.read_text().splitlines()]
    assert records and {r["method"] for r in records} == {"llara"}
    assert {r["family"] for r in records} == {"llm_baseline"}
    assert len({r["run_id"] for r in records}) == 1
    by_mode: dict[str, dict] = {}
    for r in records:
        by_mode.setdefault(r["mode"], {})[r["metric"]] = r["value"]
    assert {"hr@1", "ndcg@5", "ndcg@10", "pop_bias", "n_examples"} <= set(by_mode["ranking"])
    assert {"hr@1", "valid_ratio"} <= set(by_mode["generation"])
    assert by_mode["ranking"]["n_examples"] == by_mode["generation"]["n_examples"] == 4
    assert by_mode["cost"]["train_seconds"] > 0
    assert records[0]["hparams"]["sasrec"].startswith("released:")
    final = load_file(str(tmp_path / "run" / "train" / "final" / "adapter.safetensors"))
    assert any(".projector." in name for name in final)
    assert len((tmp_path / "run" / "answers.jsonl").read_text().splitlines()) == 4
