"""The evaluation journal (recbench.journal): a killed evaluation continues where it stopped."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from recbench.batches import EVAL_SEED, evaluation_examples, render
from recbench.data import load_dataset
from recbench.evaluation import generate_answers, rank_candidates
from recbench.journal import Journal, fingerprint


# ------------------------------------------------------------------------------ the file
def write_lines(path: Path, entries: list[dict], tail: str = "") -> None:
    path.write_text("".join(json.dumps(e) + "\n" for e in entries) + tail)


def test_resume_reuses_the_matching_prefix_and_cuts_a_torn_line(tmp_path):
    path = tmp_path / "j.jsonl"
    entries = [{"keys": ["a", "b"], "seconds": 1.5, "x": 1}, {"keys": ["c"], "seconds": 2.0}]
    write_lines(path, entries, tail='{"keys": ["d"')  # killed while writing the third
    journal = Journal(path)
    assert journal.resume([["a", "b"], ["c"], ["d"]]) == entries
    assert journal.reused_seconds == pytest.approx(3.5, abs=1e-12)
    assert path.read_text().count("\n") == 2 and path.read_text().endswith("}\n")
    journal.append(["d"], 0.5, x=3)
    assert [json.loads(line)["keys"] for line in path.read_text().splitlines()] == [
        ["a", "b"], ["c"], ["d"]
    ]  # fmt: skip


def test_resume_stops_at_the_first_batch_that_differs(tmp_path):
    path = tmp_path / "j.jsonl"
    write_lines(path, [{"keys": ["a"]}, {"keys": ["OTHER"]}, {"keys": ["c"]}])
    journal = Journal(path)
    assert journal.resume([["a"], ["b"], ["c"]]) == [{"keys": ["a"]}]
    assert path.read_text() == json.dumps({"keys": ["a"]}) + "\n"  # the rest is cut off
    assert Journal(tmp_path / "absent.jsonl").resume([["a"]]) == []


def test_fingerprint_follows_weights_settings_and_examples():
    model = torch.nn.Linear(3, 2)
    base = fingerprint(model, {"batch_size": 4}, ["test:0", "test:1"])
    assert fingerprint(model, {"batch_size": 4}, ["test:0", "test:1"]) == base
    assert fingerprint(model, {"batch_size": 8}, ["test:0", "test:1"]) != base
    assert fingerprint(model, {"batch_size": 4}, ["test:0"]) != base
    with torch.no_grad():
        model.weight[0, 0] += 1.0
    assert fingerprint(model, {"batch_size": 4}, ["test:0", "test:1"]) != base


# ------------------------------------------------------------------ with a tiny Llama
@pytest.fixture(scope="module")
def tiny(tiny_llm):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(tiny_llm))
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_llm))
    ds = load_dataset("lastfm")
    items = [render(ds, ex, EVAL_SEED) for ex in evaluation_examples(ds, "all", 10, "test")]
    return model, tokenizer, ds, items


def counting_forwards(model) -> dict:
    calls = {"n": 0}

    def hook(*_args):
        calls["n"] += 1

    model.get_input_embeddings().register_forward_pre_hook(hook)  # every forward embeds
    return calls


def test_a_continued_ranking_gives_the_uninterrupted_scores(tiny, tmp_path):
    model, tokenizer, ds, items = tiny
    reference, ref_lengths = rank_candidates(model, tokenizer, ds, items, batch_size=4,
                                             progress=False)  # fmt: skip
    path = tmp_path / "ranking.jsonl"
    rank_candidates(model, tokenizer, ds, items, batch_size=4, progress=False,
                    journal=Journal(path))  # fmt: skip
    lines = path.read_text().splitlines()
    assert len(lines) == 3  # 10 examples in batches of 4
    path.write_text(lines[0] + "\n" + lines[1][:25])  # killed while writing the second batch
    calls = counting_forwards(model)
    scores, lengths = rank_candidates(model, tokenizer, ds, items, batch_size=4,
                                      progress=False, journal=Journal(path))  # fmt: skip
    assert 0 < calls["n"] <= 2  # the first batch was reused, the other two scored again
    assert scores.shape == reference.shape == (10, 20)
    np.testing.assert_allclose(scores, reference, rtol=0, atol=1e-6)
    assert (lengths == ref_lengths).all() and (scores.argmax(1) == reference.argmax(1)).all()
    assert len(path.read_text().splitlines()) == 3


def test_a_continued_generation_gives_the_uninterrupted_answers(tiny, tmp_path):
    model, tokenizer, _, items = tiny
    settings = {"batch_size": 4, "max_new_tokens": 4, "progress": False}
    reference = generate_answers(model, tokenizer, items, **settings)
    path = tmp_path / "generation.jsonl"
    generate_answers(model, tokenizer, items, **settings, journal=Journal(path))
    first = path.read_text().splitlines()[0]
    path.write_text(first + "\n")  # killed after the first batch
    again = generate_answers(model, tokenizer, items, **settings, journal=Journal(path))
    assert again == reference and len(again) == 10
