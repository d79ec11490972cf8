"""Negatives as their own axis (issue 35, item 2): each strategy on examples where its pick is
known by construction, determinism per seed, and a run that records its strategy."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from recbench import negatives, results, runner
from recbench.config import RunConfig
from recbench.data import load_dataset
from recbench.data.candidates import sample_negatives
from recbench.data.dataset import Example

PAD = 40


def _example(history, candidates, target, key="train:0") -> Example:
    candidates = tuple(candidates)
    return Example(split="train", index=int(key.split(":")[1]), row=0,
                   seq=tuple(history) + (PAD,) * (10 - len(history)), len_seq=len(history),
                   history=tuple(history), target=target, candidates=candidates)  # fmt: skip


class _Toy:
    """The parts of a dataset a strategy reads: popularity and the number of items."""

    num_items = PAD

    def popularity(self) -> np.ndarray:
        counts = np.zeros(PAD, dtype=np.int64)
        counts[[5, 6, 7]] = [9, 9, 4]  # 5 and 6 tie: the smaller id first
        return counts


CANDIDATES = list(range(1, 21))  # item 3 is the target
EXAMPLE = _example([30, 31], CANDIDATES, target=3)


def _context(**scores) -> negatives.NegativeContext:
    return negatives.NegativeContext(_Toy(), seed=7, **scores)  # type: ignore[arg-type]


def pick(key: str, context: negatives.NegativeContext, n: int = 3, examples=(EXAMPLE,)):
    return negatives.get_strategy(key)().pick(context, list(examples), n)


def test_the_strategies_are_registered_with_random_first():
    assert negatives.strategy_keys() == ["random", "catalog", "hard", "popular", "self"]
    assert negatives.get_strategy("hard").needs == "sasrec"
    assert negatives.get_strategy("self").needs == "policy"


def test_random_is_todays_rule():
    expected = sample_negatives(EXAMPLE.candidates, 3, 3, 7, EXAMPLE.key)
    assert pick("random", _context()) == [expected]


def test_popular_takes_the_most_popular_candidates_ties_by_id():
    # 5 and 6 (9 each), then 7 (4), then the zero-count candidates by id: 1, 2, 4
    assert pick("popular", _context(), n=5) == [(5, 6, 7, 1, 2)]


def test_hard_and_self_take_the_highest_scored_non_target_candidates():
    scores = np.zeros((1, 20))
    scores[0, CANDIDATES.index(3)] = 100.0  # the target: never a negative
    scores[0, CANDIDATES.index(17)] = 5.0
    scores[0, CANDIDATES.index(12)] = 4.0
    scores[0, CANDIDATES.index(9)] = 4.0  # ties with 12: the smaller id first
    context = _context(sasrec_scores=lambda ex: scores, policy_scores=lambda ex: scores)
    assert pick("hard", context) == [(17, 9, 12)]
    assert pick("self", context) == [(17, 9, 12)]
    with pytest.raises(RuntimeError, match="SASRec"):
        pick("hard", _context())


def test_catalog_avoids_the_history_and_the_prompt_and_is_seeded():
    (first,) = pick("catalog", _context(), n=10)
    assert len(set(first)) == 10
    assert not set(first) & (set(CANDIDATES) | {30, 31})
    assert pick("catalog", _context(), n=10) == [first]
    other_seed = negatives.NegativeContext(_Toy(), seed=8)  # type: ignore[arg-type]
    assert pick("catalog", other_seed, n=10) != [first]
    # what the rule says: random.Random("catalog:SEED:KEY") over the eligible ids, ascending
    pool = [i for i in range(PAD) if i not in set(CANDIDATES) | {30, 31}]
    assert first == tuple(random.Random(f"catalog:7:{EXAMPLE.key}").sample(pool, 10))


def test_every_strategy_gives_distinct_non_target_negatives_on_lastfm():
    ds = load_dataset("lastfm")
    examples = list(ds.examples("train"))[:50]
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(50, 20))
    context = negatives.NegativeContext(ds, 0, lambda ex: scores, lambda ex: scores)
    for key in negatives.strategy_keys():
        for example, chosen in zip(examples, pick(key, context, 5, examples), strict=True):
            assert len(set(chosen)) == 5 and example.target not in chosen, key
            assert not set(chosen) & set(example.history), key


def test_negatives_are_part_of_the_identity_and_only_for_losses(recbench_home):
    plans = {s: runner.plan(RunConfig(loss="sdpo", profile="smoke", negatives=s)).run_id
             for s in negatives.strategy_keys()}  # fmt: skip
    assert len(set(plans.values())) == len(plans)
    with pytest.raises(Exception, match="negatives are picked for preference losses"):
        runner.check_inputs(RunConfig(baseline="pop", profile="smoke", negatives="hard"))
    with pytest.raises(Exception, match="did you mean 'popular'"):
        runner.check_inputs(RunConfig(loss="sdpo", profile="smoke", negatives="populr"))


@pytest.mark.model
@pytest.mark.parametrize("strategy", ["hard", "self", "popular", "catalog"])
def test_a_run_trains_on_and_records_its_strategy(tiny_llm, recbench_home, tmp_path, strategy):
    store = tmp_path / "results.jsonl"
    config = RunConfig(loss="sdpo", profile="smoke", model=str(tiny_llm), negatives=strategy,
                       results=store)  # fmt: skip
    summary = runner.execute(config, progress=False)
    records = [r for r in results.read_records(store) if r["method"] == "sdpo"]
    assert records and {r["hparams"]["negatives"] for r in records} == {strategy}
    assert {r["settings"]["config"]["negatives"] for r in records} == {strategy}
    cached = list((recbench_home / "stages").glob("negatives-*.json"))
    assert len(cached) == 1 and len(json.loads(cached[0].read_text())) == 8  # smoke: 8 examples
    assert runner.execute(config, progress=False)["skipped"] == "already recorded"
    assert summary["run_id"] != runner.plan(RunConfig(loss="sdpo", profile="smoke",
                                                      model=str(tiny_llm))).run_id  # fmt: skip


def test_the_sft_prerequisite_of_a_strategy_run_is_the_plain_sft_run(recbench_home):
    """The SFT stage draws no negatives: a loss run's prerequisite is the same ``sft`` run,
    recorded with the default strategy, whatever the loss run's strategy is."""
    from recbench.pipeline import sft_prerequisite

    hard = sft_prerequisite(RunConfig(loss="sdpo", profile="smoke", negatives="hard"))
    plain = sft_prerequisite(RunConfig(loss="sdpo", profile="smoke"))
    assert hard.negatives == negatives.DEFAULT
    assert runner.plan(hard).run_id == runner.plan(plain).run_id
    runner.check_inputs(hard)  # a valid run of its own
