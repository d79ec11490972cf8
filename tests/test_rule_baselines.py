"""The rule baselines (random, pop, markov, cooc, order): each on a hand-made dataset where its
answer is known by construction, the transition counting, Kahn's order with its cycle breaks,
the seeded random rule, a CLI run and the rule group of ``recbench compare``."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from recbench.baselines import rules
from recbench.baselines.rules import (
    RULES,
    TrainingStats,
    evaluate_scores,
    global_order,
    rule_scores,
    training_transitions,
)

from recbench import runner
from recbench.batches import EVAL_SEED, pick_examples
from recbench.config import RunConfig
from recbench.data import Example, load_dataset
from recbench.data.dataset import user_runs
from recbench.data.rows import SplitRows
from recbench.methods import get_method, method_names

PAD = 30  # 30 items: enough for 20 candidates outside any history here
ITEMS = range(PAD)

# Training users, oldest item first.  By construction:
#   pop (each item of a user is the target of one sliding row): 7 of 8 rows, 3 of 4, 9, 12 and
#   13 of 3, 4/6/8/10/15/17/18/19 of none, every other item of one;
#   T(3, 9) = 3, T(3, 11) = 1, T(9, 7) = 3, T(12, 7) = 2, T(1, 12) = T(2, 12) = T(13, 12) = 1,
#   T(13, 14) = T(13, 16) = 1, the long user's chain 20 -> 21 -> ... -> 29 -> 0 -> 7 once each.
USERS = [
    [3, 9, 7],
    [3, 9, 7],
    [3, 9, 7],
    [3, 11, 7],
    [1, 12, 7],
    [2, 12, 7],
    [20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 0, 7],  # longer than the 10-item window
    [7, 5],
    [13, 12],
    [13, 14],
    [13, 16],
]
N_TRANSITIONS = sum(len(u) - 1 for u in USERS)  # 27: each consecutive pair once
# Kahn's order of those transitions by hand (ready items by smallest id; the graph is acyclic).
HAND_ORDER = [1, 2, 3, 4, 6, 8, 9, 10, 11, 13, 12, 14, 15, 16, 17, 18, 19, 20]
HAND_ORDER += [21, 22, 23, 24, 25, 26, 27, 28, 29, 0, 7, 5]


def _row(history, nxt):
    padded = list(history) + [PAD] * (10 - len(history))
    return {"seq": padded, "len_seq": max(len(history), 1), "next": nxt}


def _sliding(users):
    """Every prefix of every user is a row (the LLaRA layout), the window cut to 10 items."""
    return [_row(user[max(0, k - 10) : k], user[k]) for user in users for k in range(len(user))]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture()
def toy(tmp_path, cli, recbench_home):
    """The hand-made dataset, imported with ``recbench data import`` into a private home."""
    names = tmp_path / "names.txt"
    names.write_text("".join(f"{i}::Item {i}\n" for i in ITEMS))
    train = _write(tmp_path / "train.jsonl", _sliding(USERS))
    val = _write(tmp_path / "val.jsonl", [_row([4, 6, 8], 10)])
    test = _write(tmp_path / "test.jsonl", [_row([1, 2, 5], 7), _row([1, 2, 11], 13)])
    result = cli(
        "data", "import", "ruletoy", "--train", str(train), "--val", str(val),
        "--test", str(test), "--names", str(names),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return load_dataset("ruletoy")


def evaluate_rule(rule: str, dataset: str, **settings):
    """The rule's evaluation through the runner, recording nothing (every test example unless
    ``eval_examples`` is set)."""
    config = RunConfig(baseline=rule, dataset=dataset, profile="paper", overrides=settings)
    return runner.evaluate(config)


def _example(history, candidates, target=None, index=0):
    candidates = tuple(candidates)
    assert len(candidates) == 20 and len(set(candidates)) == 20
    assert not set(history) & set(candidates)
    return Example(
        split="test", index=index, row=index,
        seq=tuple(history) + (PAD,) * (10 - len(history)), len_seq=len(history),
        history=tuple(history), target=candidates[0] if target is None else target,
        candidates=candidates,
    )  # fmt: skip


def _candidates(history, first, exclude=()):
    """``first`` (in that order), then the smallest other ids, up to 20, outside the history."""
    rest = [i for i in ITEMS if i not in (*history, *first, *exclude)]
    return list(first) + rest[: 20 - len(first)]


def _pick(rule, stats, history, candidates, seed=0):
    scores = rule_scores(rule, [_example(history, candidates)], stats, seed)
    assert sorted(scores[0]) == list(range(20)), "a strict ranking"
    return candidates[int(scores[0].argmax())]


def _ranking(rule, stats, history, candidates):
    scores = rule_scores(rule, [_example(history, candidates)], stats)[0]
    return [candidates[j] for j in np.argsort(-scores)]


# ------------------------------------------------------------------------ the statistics
def test_statistics_count_each_users_transition_once(toy):
    stats = TrainingStats.from_dataset(toy)
    pop = stats.popularity
    assert pop[7] == 8 and pop[3] == 4 and pop[9] == pop[12] == pop[13] == 3
    assert (pop == toy.popularity()).all()  # the popularity of the pop-bias metric
    assert stats.n_transitions == N_TRANSITIONS
    t = stats.transitions
    assert t(3, 9) == 3 and t(3, 11) == 1 and t(9, 7) == 3 and t(12, 7) == 2
    # inside up to 10 rows' windows of the long user, yet counted once
    assert t(20, 21) == 1 and t(28, 29) == 1 and t(29, 0) == 1 and t(0, 7) == 1
    assert t(9, 3) == 0 and t(7, 9) == 0
    assert t(np.array([3, 13]), np.array([9, 14])).tolist() == [3, 1]


def test_one_row_per_user_counts_every_pair_of_the_window():
    """A split that is not a chain of prefixes (last row per user, a sample): all window pairs."""
    rows = [_row(u[:-1][-10:], u[-1]) for u in USERS]
    split = SplitRows(
        seq=np.array([r["seq"] for r in rows]),
        len_seq=np.array([r["len_seq"] for r in rows]),
        next=np.array([r["next"] for r in rows]),
    )
    stats = TrainingStats.from_rows(split, PAD)
    # the long user's window drops its first item (20): the pair 20 -> 21 is out of sight
    assert stats.n_transitions == N_TRANSITIONS - 1
    assert stats.transitions(3, 9) == 3 and stats.transitions(20, 21) == 0
    assert stats.transitions(21, 22) == 1 and stats.transitions(0, 7) == 1


def test_kahn_order_by_smallest_id(toy):
    order = TrainingStats.from_dataset(toy).order
    assert order.cycle_breaks == 0
    assert np.argsort(order.position).tolist() == HAND_ORDER


def test_kahn_breaks_cycles_at_fewest_incoming_edges_then_smallest_id():
    # 0 -> 1 -> 2 -> 0 with 3 -> 2: 3 and 4 first, then the cycle is broken at 0 (all have one
    # incoming edge left; smallest id), then 1, 2.
    src, dst = np.array([0, 1, 2, 3]), np.array([1, 2, 0, 2])
    order = global_order(src, dst, 5)
    assert np.argsort(order.position).tolist() == [3, 4, 0, 1, 2] and order.cycle_breaks == 1
    # 1 -> 0, 2 -> 0, 2 -> 1, 0 -> 2: nothing is ready; 1 and 2 have one incoming edge, 0 two:
    # break at 1; then 0 and 2 both have one left: break at 0; then 2 is ready.
    src, dst = np.array([1, 2, 2, 0]), np.array([0, 0, 1, 2])
    order = global_order(src, dst, 3)
    assert np.argsort(order.position).tolist() == [1, 0, 2] and order.cycle_breaks == 2
    # self-loops are no edges; repeated edges count once
    order = global_order(np.array([1, 1, 1]), np.array([1, 0, 0]), 2)
    assert np.argsort(order.position).tolist() == [1, 0] and order.cycle_breaks == 0


# -------------------------------------------------------------------------------- the rules
def test_pop_picks_the_most_popular_candidate(toy):
    stats = TrainingStats.from_dataset(toy)
    history = [1, 2, 5]
    assert _pick("pop", stats, history, _candidates(history, [15, 9, 7, 3])) == 7
    assert _pick("pop", stats, history, _candidates(history, [15, 9, 3], exclude=[7])) == 3
    # 13, 12 and 9 are the targets of 3 rows each: the smallest id, wherever it is listed
    assert _pick("pop", stats, history, _candidates(history, [13, 12, 9], exclude=[7, 3])) == 9
    # 17 items with popularity 1 (20..29, 16, 14, 11, 0, ...) and three with 0
    history = [4, 6, 8]
    cands = [*range(29, 19, -1), 16, 14, 11, 5, 2, 1, 0, 10, 15, 17]
    assert _ranking("pop", stats, history, cands)[:9] == [0, 1, 2, 5, 11, 14, 16, 20, 21]
    assert _ranking("pop", stats, history, cands)[-3:] == [10, 15, 17]


def test_markov_follows_the_last_history_item(toy):
    stats = TrainingStats.from_dataset(toy)
    # after 3: 9 (3 transitions) beats 11 (1) and the far more popular 7 (no transition 3 -> 7)
    history = [5, 1, 3]
    assert _pick("markov", stats, history, _candidates(history, [7, 11, 9])) == 9
    assert _pick("markov", stats, history, _candidates(history, [7, 11], exclude=[9])) == 11
    # after 13: 12, 14 and 16 once each; popularity breaks the tie (12: 3 rows, 14 and 16: 1)
    history = [4, 6, 13]
    assert _pick("markov", stats, history, _candidates(history, [16, 14, 12])) == 12
    # 14 and 16 tie on transitions and popularity: the smaller id
    assert _pick("markov", stats, history, _candidates(history, [16, 14], exclude=[12, 7])) == 14
    # no transition from the last item (5) at all: popularity decides, as pop
    history = [1, 2, 5]
    assert _pick("markov", stats, history, _candidates(history, [12, 9, 7])) == 7


def test_cooc_sums_transitions_from_the_whole_history(toy):
    stats = TrainingStats.from_dataset(toy)
    # 1 -> 12 and 2 -> 12: 12 scores 2 although nothing follows the last item 5 (markov: 7)
    history = [1, 2, 5]
    assert _pick("cooc", stats, history, _candidates(history, [9, 7, 12])) == 12
    assert _pick("markov", stats, history, _candidates(history, [9, 7, 12])) == 7
    # 3 -> 9 three times beats 1 -> 12 plus 2 -> 12
    history = [1, 2, 3]
    assert _pick("cooc", stats, history, _candidates(history, [12, 11, 9])) == 9
    # 12: 1 + 1 + 1 = 3; 14, 16: 1 each (tie on popularity too: by id); then popularity (7: 8)
    history = [1, 2, 13]
    ranked = _ranking("cooc", stats, history, _candidates(history, [16, 7, 14, 12]))
    assert ranked[:5] == [12, 14, 16, 7, 3]


def test_order_picks_the_soonest_after_the_last_item_else_the_closest_before(toy):
    stats = TrainingStats.from_dataset(toy)
    position = {item: p for p, item in enumerate(HAND_ORDER)}
    history = [1, 2, 11]  # 11 is 9th in the order, 13 10th, 12 11th
    cands = _candidates(history, [7, 9, 13, 12])
    assert _pick("order", stats, history, cands) == 13
    assert _pick("order", stats, history, _candidates(history, [7, 9, 12], exclude=[13])) == 12
    after = sorted((c for c in cands if position[c] > position[11]), key=position.get)
    before = sorted((c for c in cands if position[c] < position[11]), key=position.get)
    assert _ranking("order", stats, history, cands) == after + before[::-1]
    # 5 comes last in the order: nothing after it, the closest before it is 7
    history = [1, 2, 5]
    assert _pick("order", stats, history, _candidates(history, [0, 9, 7, 3])) == 7
    assert _pick("order", stats, history, _candidates(history, [9, 3, 0], exclude=[7])) == 0


def test_rules_on_the_imported_test_split(toy):
    """Both test rows are hits for ``order`` (13 comes right after 11; 7 right before 5) and the
    first one for ``pop`` and ``markov`` (7 is the most popular item; nothing follows 5)."""
    examples = list(toy.examples("test"))
    assert [e.target for e in examples] == [7, 13]
    stats = TrainingStats.from_dataset(toy)
    run = evaluate_rule("order", toy.name)
    assert run.evaluation["ranking"]["hr@1"] == 1.0
    assert run.evaluation["ranking"]["n_examples"] == 2
    for rule in ("pop", "markov"):
        scores = rule_scores(rule, examples[:1], stats)
        assert evaluate_scores(scores, examples[:1])["hr@1"] == 1.0
    # every rule: a strict ranking of every example, metrics in the sequential baselines' shape
    for rule in RULES:
        run = evaluate_rule(rule, toy.name)
        assert (np.sort(run.scores.values, axis=1) == np.arange(20)).all()
        assert {"hr@1", "hr@5", "ndcg@10", "n_examples", "pop_bias"} <= set(
            run.evaluation["ranking"]
        )
        assert run.method.family == "rule"


# ------------------------------------------------------------------------------- random
def test_random_is_seeded_and_at_chance_on_lastfm():
    ds = load_dataset("lastfm")
    examples = list(ds.examples("test"))
    stats = TrainingStats.from_dataset(ds)
    first = rule_scores("random", examples, stats, seed=0)
    assert (rule_scores("random", examples, stats, seed=0) == first).all()
    assert (rule_scores("random", examples, stats, seed=1).argmax(1) != first.argmax(1)).any()
    # an example's ranking does not depend on the other examples scored with it
    assert (rule_scores("random", examples[5:6], stats, seed=0)[0] == first[5]).all()
    hr1 = evaluate_scores(first, examples)["hr@1"]
    n = len(examples)
    assert n == 2495
    assert abs(hr1 - 0.05) < 4 * math.sqrt(0.05 * 0.95 / n), hr1  # binomial, 4 sd


# ------------------------------------------------------------------ methods, CLI, reports
def test_the_five_rules_are_registered_first():
    from recbench import plugins

    plugins.load_plugins()
    assert method_names()[:5] == list(RULES)
    for rule in RULES:
        spec = get_method(rule)
        assert spec.family == "rule" and issubclass(spec, rules.Rule) and spec.rule == rule
        assert not spec.takes_checkpoint


def test_rules_see_the_profiles_examples():
    """The seeded subset every method of a profile is evaluated on (EVAL_SEED of the pipeline)."""
    ds = load_dataset("lastfm")
    examples = pick_examples(ds.examples("test"), 50, EVAL_SEED)
    stats = TrainingStats.from_dataset(ds)
    for rule in RULES:
        run = evaluate_rule(rule, "lastfm", eval_examples=50)
        expected = evaluate_scores(rule_scores(rule, examples, stats), examples, ds.popularity())
        assert run.evaluation["ranking"].keys() == expected.keys()
        for name, value in expected.items():
            assert run.evaluation["ranking"][name] == pytest.approx(value, abs=1e-12), name
        assert run.evaluation["ranking"]["n_examples"] == 50


def test_cli_run_records_a_rule(cli, tmp_path):
    store = tmp_path / "results.jsonl"
    result = cli(
        "run", "--baseline", "pop", "--dataset", "lastfm", "--profile", "smoke",
        "--results", str(store),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "hr@1" in result.stdout
    records = [json.loads(line) for line in store.read_text().splitlines()]
    assert {r["family"] for r in records} == {"rule"}
    assert {r["method"] for r in records} == {"pop"} and {r["model"] for r in records} == {"rule"}
    ranking = {r["metric"]: r["value"] for r in records if r["mode"] == "ranking"}
    assert ranking["n_examples"] == 4  # the smoke profile's eval_examples
    assert {r["seed"] for r in records} == {None} and {r["profile"] for r in records} == {"smoke"}
    settings = records[0]["settings"]
    assert settings["eval_examples"] == 4 and set(settings["dataset_files"]) == {"train", "test"}


def test_compare_shows_the_rule_group_first(toy, tmp_path):
    from recbench import api, results

    store = tmp_path / "results.jsonl"
    for rule in reversed(list(RULES)):
        runner.execute(RunConfig(baseline=rule, dataset=toy.name, profile="cpu", results=store),
                       progress=False)  # fmt: skip
    # a sequential baseline of the same profile, to see the groups' order
    sequential = [
        {**r, "method": "sasrec", "family": "sequential", "model": "trained:0", "run_id": "seq"}
        for r in results.read_records(store)
        if r["method"] == "pop"
    ]

    results.append_records(sequential, store)
    api.compare(store, tmp_path / "out", formats="md", plots=False)
    table = (tmp_path / "out" / "table2_main.md").read_text()
    rows = [line.split("|")[1:3] for line in table.splitlines() if line.startswith("| ")]
    rows = [(g.strip(), m.strip()) for g, m in rows if g.strip() != "group"]
    assert rows == [("rule", r) for r in RULES] + [("sequential", "sasrec")]


@pytest.mark.parametrize("dataset", ["lastfm", "steam"])
def test_vectorised_transitions_match_the_users_read_row_by_row(dataset):
    """rules.training_transitions (numpy, fast) and dataset.user_runs (a plain loop) encode one
    rule, "a row that continues the previous one belongs to the same user": the transitions of
    each user's full sequence, read row by row, must be exactly the vectorised ones."""
    ds = load_dataset(dataset)
    rows = ds.rows("train")
    width = rows.seq.shape[1]
    expected: list[tuple[int, int]] = []
    for run in user_runs(rows, ds.padding_id, width):
        first = run[0]
        items = [x for x in rows.seq[first].tolist() if x != ds.padding_id]
        items += [int(rows.next[i]) for i in run]
        expected += list(itertools.pairwise(items))
    sources, targets = training_transitions(rows, ds.padding_id)
    assert sorted(zip(sources.tolist(), targets.tolist(), strict=True)) == sorted(expected)
