"""Per-example outcomes: written beside the store, referenced by sha256, produced by every method.

The expected ranks and verdicts below are worked out by hand from hand-made scores, never taken
from the code under test.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from recbench import results, runner
from recbench.api import run
from recbench.config import RunConfig
from recbench.metrics import Selection
from recbench.outcomes import Outcomes
from recbench.pipeline import LLMRun, sft_prerequisite


def _records(run_id: str) -> list[dict]:
    run = {"run_id": run_id, "dataset": "d", "method": "m", "family": "loss", "seed": 0}
    out = results.make_records(run, {"hr@1": 0.5}, split="test", mode="ranking")
    out += results.make_records(run, {"hr@1": 0.5}, split="test", mode="generation")
    out += results.make_records(run, {"train_seconds": 1.0}, split="train", mode="cost")
    return out


def _outcomes() -> Outcomes:
    # ranks 1 and 3: one ranking hit; one valid answer that hits, one invalid answer
    return (
        Outcomes()
        .add_ranks(["test:0", "test:1"], np.array([1, 3]))
        .add_selections(
            ["test:0", "test:1"],
            [Selection(valid=True, hit=True, item=7), Selection(valid=False, hit=False, item=None)],
        )
    )


def test_outcomes_are_written_beside_the_store_and_found_again(tmp_path):
    store = tmp_path / "study.jsonl"
    results.append_records(_records("r1"), store, _outcomes())
    path = tmp_path / "study.outcomes" / "r1.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [
        {"example": "test:0", "rank": 1, "valid": True, "hit": True},
        {"example": "test:1", "rank": 3, "valid": False, "hit": False},
    ]
    records = results.read_records(store)
    by_mode = {r["mode"]: r for r in records}
    assert by_mode["cost"]["outcomes"] is None  # cost records point to nothing
    for mode in ("ranking", "generation"):
        assert by_mode[mode]["outcomes"]["file"] == "study.outcomes/r1.jsonl"
        assert by_mode[mode]["outcomes"]["examples"] == 2
    found = results.read_outcomes(by_mode["ranking"], store)
    assert found.hits("ranking") == {"test:0": True, "test:1": False}
    assert found.hits("generation") == {"test:0": True, "test:1": False}


def test_a_moved_store_keeps_its_outcomes(tmp_path):
    """The reference is relative to the store, so a committed store works from any clone."""
    results.append_records(_records("r1"), tmp_path / "a" / "s.jsonl", _outcomes())
    moved = tmp_path / "b"
    (tmp_path / "a").rename(moved)
    record = results.read_records(moved / "s.jsonl")[0]
    assert len(results.read_outcomes(record, moved / "s.jsonl")) == 2


@pytest.mark.parametrize("damage", ["edit", "remove"])
def test_changed_or_missing_outcomes_are_refused_not_used(tmp_path, damage):
    store = tmp_path / "s.jsonl"
    results.append_records(_records("r1"), store, _outcomes())
    path = tmp_path / "s.outcomes" / "r1.jsonl"
    if damage == "edit":
        path.write_text(path.read_text().replace('"rank": 3', '"rank": 1'))
    else:
        path.unlink()
    record = results.read_records(store)[0]
    with pytest.raises(ValueError, match="r1"):
        results.read_outcomes(record, store)


def test_records_without_outcomes_read_as_none(tmp_path):
    store = tmp_path / "s.jsonl"
    results.append_records(_records("r1"), store)
    assert not (tmp_path / "s.outcomes").exists()
    assert results.read_outcomes(results.read_records(store)[0], store) is None


def test_outcomes_of_two_runs_in_one_append_are_refused(tmp_path):
    with pytest.raises(ValueError, match="one run"):
        results.append_records(_records("r1") + _records("r2"), tmp_path / "s.jsonl", _outcomes())


def test_a_rule_baseline_stores_the_rank_of_every_example(recbench_home, tmp_path):
    """pop ranks candidates by training popularity: the stored ranks must reproduce HR@1 and
    HR@5 of the records, one line per evaluated example."""
    store = tmp_path / "r.jsonl"
    run(RunConfig(baseline="pop", dataset="lastfm", profile="cpu", results=store))
    records = {r["metric"]: r for r in results.read_records(store) if r["mode"] == "ranking"}
    outcomes = results.read_outcomes(records["hr@1"], store)
    ranks = np.array([row["rank"] for row in outcomes.rows.values()])
    assert len(ranks) == 300 and all(k.startswith("test:") for k in outcomes.rows)
    assert (ranks == 1).mean() == pytest.approx(records["hr@1"]["value"], abs=1e-12)
    assert (ranks <= 5).mean() == pytest.approx(records["hr@5"]["value"], abs=1e-12)


# ------------------------------------------------------------------ study settings in the run
def _llm(tiny_llm, **overrides) -> LLMRun:
    config = RunConfig(loss="dpo", profile="smoke", model=str(tiny_llm), overrides=overrides)
    return LLMRun.from_config(config.validate())


def _eval_items(llm: LLMRun):
    """The prompts of the examples the runner scores a run of ``llm``'s config on."""
    return llm.eval_items(runner.evaluation_examples(llm.config, llm.ds))


def _sft_run_id(llm: LLMRun) -> str:
    """The run id of the SFT evaluation a loss run of ``llm``'s config records first."""
    return runner.plan(sft_prerequisite(llm.config)).run_id


@pytest.mark.model
def test_history_items_keeps_the_last_items_of_the_prompt(tiny_llm, recbench_home):
    full, short = _llm(tiny_llm), _llm(tiny_llm, history_items=2)
    names = full.ds.item_names
    for a, b in zip(_eval_items(full), _eval_items(short), strict=True):
        assert a.example.key == b.example.key
        history = [names[i] for i in a.example.history]
        assert ", ".join(history[-2:]) in b.prompt
        assert ", ".join(history) in a.prompt
        if len(history) > 2:  # the third-last item is no longer listed before the last two
            assert ", ".join(history[-3:]) not in b.prompt
            assert len(b.prompt) < len(a.prompt)
    assert short.sft_key != full.sft_key


@pytest.mark.model
def test_sft_examples_are_a_superset_of_the_preference_examples(tiny_llm, recbench_home):
    llm = _llm(tiny_llm, sft_examples=12)
    sft_keys = [it.example.key for it in llm.sft_items]
    pref_keys = [it.example.key for it in llm.train_items]
    assert len(sft_keys) == 12 and len(pref_keys) == 8  # smoke: 8 training examples
    assert sft_keys[:8] == pref_keys
    assert _llm(tiny_llm).sft_key != llm.sft_key


@pytest.mark.model
def test_validation_runs_score_validation_examples_under_their_own_sft_id(tiny_llm, recbench_home):
    test_run, val_run = _llm(tiny_llm), _llm(tiny_llm, eval_split="val")
    assert all(it.example.key.startswith("val:") for it in _eval_items(val_run))
    assert all(it.example.key.startswith("test:") for it in _eval_items(test_run))
    # same SFT stage, two evaluations of it: the second must not be skipped as "recorded"
    assert val_run.sft_key == test_run.sft_key
    assert _sft_run_id(val_run) != _sft_run_id(test_run)


@pytest.mark.model
def test_bf16_evaluation_is_another_evaluation_of_the_same_stage(tiny_llm, recbench_home):
    fp32, bf16 = _llm(tiny_llm), _llm(tiny_llm, eval_precision="bf16")
    assert bf16.sft_key == fp32.sft_key  # evaluation precision does not change training
    assert _sft_run_id(bf16) != _sft_run_id(fp32)  # but it is not the fp32 evaluation's record
    with bf16._eval_autocast():
        assert torch.is_autocast_enabled("cpu")
    with fp32._eval_autocast():
        assert not torch.is_autocast_enabled("cpu")
