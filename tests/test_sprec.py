"""SPRec as a method (issue 35, item 3): the self-play loop runs end to end, drops answers equal
to their target with a note, and resumes at iteration boundaries without training again."""

from __future__ import annotations

import json

import pytest
from recbench.baselines.sprec import iteration_examples, self_play_pairs

from recbench import results, runner
from recbench.batches import PromptItem
from recbench.config import RunConfig
from recbench.data import load_dataset
from recbench.errors import UserError


def _item(chosen: str) -> PromptItem:
    example = load_dataset("lastfm").examples("train")[0]
    return PromptItem(example=example, prompt="p", chosen=chosen, negatives=(), rejected=())


def test_an_answer_equal_to_the_target_is_dropped_and_counted():
    items = [_item(" Alpha"), _item(" Beta"), _item(" Gamma")]
    pairs, dropped = self_play_pairs(items, ["Alpha", " Delta ", "Beta"])
    assert dropped == 1
    assert [(p.chosen, p.rejected) for p in pairs] == [
        (" Beta", (" Delta",)),
        (" Gamma", (" Beta",)),
    ]


def test_each_iteration_draws_a_fresh_seeded_sample():
    config = RunConfig(baseline="sprec", profile="smoke")
    ds = load_dataset("lastfm")
    first, second = (iteration_examples(config, ds, i) for i in (0, 1))
    assert len(first) == len(second) == 8  # the smoke profile's train_examples
    assert [e.key for e in first] != [e.key for e in second]
    assert [e.key for e in iteration_examples(config, ds, 0)] == [e.key for e in first]


def test_iterations_is_checked_before_any_work():
    with pytest.raises(UserError, match="iterations must be an integer from 1 to 20"):
        runner.check_inputs(RunConfig(baseline="sprec", profile="smoke",
                                      loss_params={"iterations": 0}))  # fmt: skip
    with pytest.raises(UserError, match="unknown --param beta"):
        runner.check_inputs(RunConfig(baseline="sprec", profile="smoke", loss_params={"beta": 1}))


@pytest.mark.model
def test_sprec_runs_records_and_resumes_at_iteration_boundaries(tiny_llm, recbench_home, tmp_path):
    store = tmp_path / "r.jsonl"
    config = RunConfig(baseline="sprec", profile="smoke", model=str(tiny_llm), results=store,
                       loss_params={"iterations": 2})  # fmt: skip
    summary = runner.execute(config, progress=False)
    records = [r for r in results.read_records(store) if r["method"] == "sprec"]
    assert {r["hparams"]["iterations"] for r in records} == {2}
    equal = records[0]["settings"]["answers_equal_to_target"]
    assert len(equal) == 2 and all(0 <= n <= 8 for n in equal)
    run_dir = runner.plan(config).run_dir
    for i in (0, 1):
        assert (run_dir / f"iteration-{i}" / "sft" / "final" / "done.json").is_file()
        assert len(json.loads((run_dir / f"iteration-{i}" / "answers.json").read_text())) == 8
    steps = {p: p.read_text() for p in run_dir.glob("iteration-*/*/metrics.jsonl")}
    assert len(steps) >= 2
    # run again: every iteration's stages and answers are found, nothing trains again
    again = runner.execute(RunConfig(**{**config.__dict__, "rerun": True}), progress=False)
    assert again["evaluation"] == summary["evaluation"]
    assert {p: p.read_text() for p in run_dir.glob("iteration-*/*/metrics.jsonl")} == steps


@pytest.mark.model
def test_sprec_sft_trains_the_same_sft_epochs_without_self_play(tiny_llm, recbench_home, tmp_path):
    """The control starts from the same SFT stage and trains each iteration's SFT epoch on the
    same prompts, so its first iteration's SFT losses are SPRec's (before any DPO epoch has
    moved the model apart); it writes no answers and trains no DPO epoch."""
    store = tmp_path / "r.jsonl"
    runs = {}
    for method in ("sprec", "sprec_sft"):
        config = RunConfig(baseline=method, profile="smoke", model=str(tiny_llm), results=store)
        runner.execute(config, progress=False)
        runs[method] = runner.plan(config).run_dir
    control = runs["sprec_sft"]
    records = [r for r in results.read_records(store) if r["method"] == "sprec_sft"]
    assert records and all(r["hparams"] == {"iterations": 2} for r in records)
    assert "answers_equal_to_target" not in records[0]["settings"]
    assert not list(control.glob("iteration-*/answers.json"))
    assert not list(control.glob("iteration-*/dpo"))
    assert all((control / f"iteration-{i}" / "sft" / "final" / "done.json").is_file()
               for i in (0, 1))  # fmt: skip

    def losses(run_dir):
        lines = (run_dir / "iteration-0" / "sft" / "metrics.jsonl").read_text().splitlines()
        return [json.loads(line)["loss"] for line in lines if '"loss"' in line]

    ours, theirs = losses(control), losses(runs["sprec"])
    assert len(ours) == len(theirs) > 0
    assert ours == pytest.approx(theirs, abs=1e-6)
