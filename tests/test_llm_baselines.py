"""The TALLRec, Chat-Rec and MoRec baselines: their building blocks, and each one run end to end
through `recbench run --baseline NAME --profile smoke` with the records it appends."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import run_cli
from recbench.baselines import load_released
from recbench.baselines.chatrec import HINT_K, HINT_LINE, hinted_prompt, top_candidates, with_hints
from recbench.baselines.morec import TEXT_DIM, MoRec

from recbench.batches import render
from recbench.data import load_dataset

RANKING = {"hr@1", "ndcg@5", "ndcg@10", "pop_bias", "n_examples"}


# ------------------------------------------------------------------------------------ chatrec
def test_top_candidates_orders_by_score_and_breaks_ties_by_candidate_order():
    scores = np.array([[0.1, 3.0, 3.0, 2.0, -1.0]])
    assert top_candidates(scores, [(10, 11, 12, 13, 14)], 3) == [(11, 12, 13)]


def test_hint_goes_before_the_answer_cue():
    prompt = "History: a, b. Candidates: c, d, e. Pick one. Answer:"
    hinted = hinted_prompt(prompt, ["d", "c"])
    assert hinted == (
        "History: a, b. Candidates: c, d, e. Pick one.\n" + HINT_LINE.format(titles="d, c")
        + "\nAnswer:"
    )  # fmt: skip


def test_chatrec_hint_names_the_sasrec_top_k_in_order():
    ds = load_dataset("lastfm")
    model, _ = load_released("sasrec", "lastfm")
    items = [render(ds, ds.examples("test")[i], 0) for i in range(8)]
    hinted, _ = with_hints(ds, items, model)
    for item, new in zip(items, hinted, strict=True):
        example = item.example
        with torch.no_grad():
            scores = model(torch.tensor([example.seq]), torch.tensor([example.len_seq]))[0]
        ranked = sorted(example.candidates, key=lambda i: -float(scores[i]))[:HINT_K]
        line = HINT_LINE.format(titles=", ".join(ds.item_names[i] for i in ranked))
        assert len(ranked) == HINT_K and set(ranked) <= set(example.candidates)
        assert new.prompt.count(line) == 1 and new.prompt.endswith(line + "\nAnswer:")
        assert new.prompt.startswith(item.prompt.removesuffix("Answer:").rstrip())
        assert (new.example, new.chosen) == (item.example, item.chosen)


# -------------------------------------------------------------------------------------- morec
def test_morec_scores_every_item_from_its_text_alone():
    n, d = 7, 16
    torch.manual_seed(0)
    text = torch.nn.functional.normalize(torch.randn(n, TEXT_DIM), dim=1)
    text[5] = text[3]  # two items with the same title
    model = MoRec(text, hidden_size=d, dropout=0.0).eval()
    seq = torch.tensor([[0, 1, 2, n, n, n, n, n, n, n], [4, 5, 6, 0, 1, 2, 3, 4, 5, 6]])
    len_seq = torch.tensor([3, 10])
    scores = model(seq, len_seq)
    assert scores.shape == (2, n)
    assert model.represent(seq, len_seq).shape == (2, d)
    # equal titles give equal scores; the two columns come out of different positions of one
    # float32 matmul, which may round them differently in the last bit: compare to a few ulps
    torch.testing.assert_close(scores[:, 3], scores[:, 5], rtol=1e-5, atol=1e-6)
    assert not hasattr(model, "s_fc")
    # no per-item (ID) parameter, and the frozen text table is not part of the saved weights
    assert all(n not in p.shape[:1] and n + 1 not in p.shape[:1] for p in model.parameters())
    assert "item_embeddings.text" not in model.state_dict()
    scores.sum().backward()
    assert model.item_embeddings.proj.weight.grad.abs().sum() > 0


@pytest.fixture(scope="module")
def encoder(model_home):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RECBENCH_HOME", str(model_home))
        from recbench.baselines.morec import TitleEncoder

        yield TitleEncoder()


@pytest.mark.model
def test_minilm_gives_unit_vectors_equal_for_equal_titles(encoder):
    titles = ["Morcheeba", "Half-Life 2: Episode One", "Morcheeba", "Café Del Mar"]
    vectors = encoder.encode(titles)
    assert vectors.shape == (4, TEXT_DIM) and vectors.dtype == torch.float32
    assert torch.allclose(vectors.norm(dim=1), torch.ones(4), atol=1e-5)
    # rows 0 and 2 go through different positions of the batch (rounding may differ by an ulp)
    torch.testing.assert_close(vectors[0], vectors[2], rtol=1e-5, atol=1e-6)
    # padding in a batch must not move a vector: alone it encodes the same
    assert torch.allclose(encoder.encode(["Café Del Mar"])[0], vectors[3], atol=1e-5)
    # values from sentence-transformers 6.2.0's SentenceTransformer(...).encode on the same files
    reference = [-0.049711, 0.026676, -0.019378, 0.01634, -0.129585, -0.025869]
    assert torch.allclose(vectors[0, :6], torch.tensor(reference), atol=2e-5)
    assert float(vectors[0] @ vectors[1]) == pytest.approx(0.178474, abs=2e-5)


# ---------------------------------------------------------------------------- end to end
def _run(model_home, tmp_path, name):
    store = tmp_path / "results.jsonl"
    result = run_cli(
        "run", "--baseline", name, "--dataset", "lastfm", "--profile", "smoke",
        "--results", str(store), "--output-dir", str(tmp_path / "run"),
        env={"RECBENCH_HOME": str(model_home)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in store.read_text().splitlines()]
    assert records and {r["method"] for r in records} == {name}
    assert len({r["run_id"] for r in records}) == 1
    by_mode: dict[str, dict[str, float]] = {}
    for r in records:
        by_mode.setdefault(r["mode"], {})[r["metric"]] = r["value"]
    first = records[0]
    assert first["dataset"] == "lastfm" and first["profile"] == "smoke" and first["seed"] == 0
    assert first["versions"]["torch"] and first["hardware"]["cpu_count"]
    assert RANKING <= set(by_mode["ranking"]) and by_mode["ranking"]["n_examples"] == 4
    return first, by_mode


def _check_llm(first, by_mode):
    assert first["family"] == "llm_baseline" and first["model"] == "smollm2-135m"
    assert {"hr@1", "valid_ratio", "n_examples"} <= set(by_mode["generation"])
    assert by_mode["generation"]["n_examples"] == 4
    assert 0.0 <= by_mode["generation"]["valid_ratio"] <= 1.0
    assert by_mode["cost"]["peak_memory_mb"] > 100


@pytest.mark.model
def test_tallrec_smoke_run(model_home, tmp_path):
    first, by_mode = _run(model_home, tmp_path, "tallrec")
    _check_llm(first, by_mode)
    assert by_mode["cost"]["sft_seconds"] > 0 and first["hparams"]["lora_r"] == 4


@pytest.mark.model
def test_chatrec_smoke_run(model_home, tmp_path):
    first, by_mode = _run(model_home, tmp_path, "chatrec")
    _check_llm(first, by_mode)
    assert first["hparams"]["k"] == HINT_K
    assert first["hparams"]["recommender"].startswith("released:")
    assert {"hr@1", f"hr@{HINT_K}"} <= set(by_mode["hint"]) and "sft_seconds" not in by_mode["cost"]


@pytest.mark.model
def test_morec_smoke_run(model_home, tmp_path):
    first, by_mode = _run(model_home, tmp_path, "morec")
    assert first["family"] == "sequential" and first["model"].startswith("trained:")
    assert first["hparams"]["model"]["text_dim"] == TEXT_DIM
    assert by_mode["cost"]["train_seconds"] > 0
    assert (tmp_path / "run" / "model.safetensors").is_file()
