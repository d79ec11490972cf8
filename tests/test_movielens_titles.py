"""Issue 34: the built movielens must pass the checks of `recbench data import`.

ML-100K lists some films twice (same title, same year), and different users who rated the same
first films in the same second get identical short rows in different splits.  The builder used
to keep both: two items with one name (a candidate list holding both can never be answered
validly in generation mode, which finds the answer by its name) and a val row equal to a
training row (the importer's disjointness check).  Here a fake recbole wheel with both cases is
built, and the result is imported with the importer itself; the same source with the earlier
names and rows is shown to fail those checks, so these tests fail on the earlier builder.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from recbench.data import load_dataset, movielens
from recbench.data.importer import check_disjoint, check_distinct_names, import_dataset
from recbench.data.rows import SplitRows, sha256_of
from recbench.errors import DataError
from recbench.metrics import judge_generation

INTER_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
ITEM_HEADER = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
TIED_START = [5, 6, 7, 8]  # users 3 (train), 10 (val) and 7 (test) rate these in one second
TWINS = (12, 33)  # one film listed twice: same title, same year
ROOT = Path(__file__).resolve().parents[1]


def _fake_inter() -> str:
    """10 users, 12+ films each (a step-3 walk over films 1..37, distinct starts); users 3, 7
    and 10 begin with films 5-8 rated in the same second, the cause seen in ML-100K."""
    lines = []
    for user in range(1, 11):
        walk = [(user * 7 + 3 * k) % 37 + 1 for k in range(12)]
        if user in (3, 7, 10):
            walk = TIED_START + [item for item in walk if item not in TIED_START]
            stamps = [user * 1000] * len(TIED_START)
            stamps += [user * 1000 + 10 * (k + 1) for k in range(len(walk) - len(TIED_START))]
        else:
            stamps = [user * 1000 + 10 * k for k in range(len(walk))]
        lines += [f"{user}\t{item}\t4\t{stamp}" for item, stamp in zip(walk, stamps, strict=True)]
    lines += ["1\t39\t5\t1500", "1\t38\t2\t1510", "2\t40\t1\t2500"]  # 38 and 40 are cut
    return INTER_HEADER + "\n".join(reversed(lines)) + "\n"  # file order must not matter


def _fake_items() -> str:
    titles = {item: (f"Film {item}", str(1950 + item)) for item in range(1, 41)}
    titles.update({
        TWINS[0]: ("Twin Film", "1997"), TWINS[1]: ("Twin Film", "1997"),
        20: ("Remake", "1960"), 21: ("Remake", "1998"),  # the year tells them apart
        38: ("Lonely", "1990"), 39: ("Lonely", "1990"),  # 38 has no rating >= 3: 39 stays as is
    })  # fmt: skip
    lines = [f"{item}\t{title}\t{year}\tDrama" for item, (title, year) in titles.items()]
    return ITEM_HEADER + "\n".join(lines) + "\n"


@pytest.fixture
def fake_wheel(recbole_wheel) -> Path:
    """A wheel holding the two RecBole files, accepted by the builder's hash check."""
    return recbole_wheel(_fake_inter(), _fake_items())


def _split_rows(rows: list[dict]) -> SplitRows:
    return SplitRows(
        seq=np.array([r["seq"] for r in rows]),
        len_seq=np.array([r["len_seq"] for r in rows]),
        next=np.array([r["next"] for r in rows]),
    )


def test_the_fake_source_breaks_the_import_rules_as_built_before():
    """What the earlier builder wrote from this source: titles with years, every prefix a row."""
    ratings = movielens.parse_inter(_fake_inter())
    titles = movielens.parse_items(_fake_items())
    sequences = movielens.user_sequences(ratings)
    kept = sorted({item for seq in sequences.values() for item in seq})
    assert kept == list(range(1, 38)) + [39]
    old_names = [titles[item] for item in kept]
    new_id = {item: index for index, item in enumerate(kept)}
    users = movielens.split_users(sequences)
    assert users == {"train": [1, 2, 3, 4, 5, 6, 8, 9], "val": [10], "test": [7]}
    old_rows = {}
    for split, members in users.items():
        chains = [[new_id[item] for item in sequences[user]] for user in members]
        rows = [row for chain in chains for row in movielens.sliding_rows(chain, len(kept))]
        old_rows[split] = _split_rows(rows)
    with pytest.raises(DataError, match="item 32 has the same name as item 11"):
        check_distinct_names([(name, line) for line, name in enumerate(old_names, 1)], Path("n"))
    with pytest.raises(DataError, match="this val row duplicates row .* of train"):
        check_disjoint(old_rows)


def test_built_names_are_unique_and_only_shared_ones_change():
    built = movielens.build_tables(
        movielens.parse_inter(_fake_inter()), movielens.parse_items(_fake_items())
    )
    assert built.original_ids == list(range(1, 38)) + [39]
    # the twins (original 12 and 33 -> recbench ids 11 and 32) get their recbench id ...
    assert built.names[11] == "Twin Film (1997) [id 11]"
    assert built.names[32] == "Twin Film (1997) [id 32]"
    # ... and nothing else changes: the year already separates the remakes, and the other
    # "Lonely (1990)" has no rating >= 3, so the kept one is unique in the dataset
    assert built.names[19:21] == ["Remake (1960)", "Remake (1998)"]
    assert built.names[37] == "Lonely (1990)"
    assert built.names[0] == "Film 1 (1951)"
    assert len(set(built.names)) == len(built.names) == 38
    assert built.renamed == 2
    # the val user's and a training user's first example equal the test user's: val keeps its
    # other rows, train its other rows, test all of its rows
    assert built.dropped == {"train": 1, "val": 1, "test": 0}
    kept_ratings = [r for r in movielens.parse_inter(_fake_inter()) if r.rating >= 3]
    assert built.ratings == len(kept_ratings) == sum(map(len, built.rows.values())) + 2
    start = [item - 1 for item in TIED_START]  # original 5..8 -> recbench 4..7
    shared = {"seq": start[:3] + [38] * 7, "len_seq": 3, "next": start[3]}
    assert shared in built.rows["test"]
    assert shared not in built.rows["val"] and shared not in built.rows["train"]


def test_same_titled_candidates_can_be_answered_now():
    """The generation rule (a candidate's title as a substring of the answer) on the twins."""
    built = movielens.build_tables(
        movielens.parse_inter(_fake_inter()), movielens.parse_items(_fake_items())
    )
    candidates = [11, 32, 0]
    titles = [built.names[item] for item in candidates]
    chosen = judge_generation(f"I pick {titles[1]}.", candidates, titles, target=32)
    assert chosen.valid and chosen.hit and chosen.item == 32
    same = ["Twin Film (1997)", "Twin Film (1997)", "Film 1 (1951)"]  # the earlier names
    assert not judge_generation("I pick Twin Film (1997).", candidates, same, target=32).valid


def test_the_built_dataset_passes_the_importers_checks(recbench_home, fake_wheel):
    spec = movielens.build(fake_wheel)
    built = Path(recbench_home) / "datasets" / "movielens"
    files = {split: built / f"{split}.jsonl" for split in ("train", "val", "test")}
    # import_dataset is what `recbench data import` runs: every check, then the same files
    imported = import_dataset("movielens-copy", files, built / "id2name.txt", domain="movies")
    assert imported.num_items == spec.num_items == 38
    for split, path in files.items():
        assert imported.splits[split].sha256 == spec.splits[split].sha256 == sha256_of(path)
    assert imported.item_names_sha256 == spec.item_names_sha256
    ds = load_dataset("movielens")
    assert ds.item_names[11] == "Twin Film (1997) [id 11]"
    notes = " | ".join(ds.spec.notes)
    assert "those 2 items are named 'Title (year) [id N]'" in notes
    assert "train leaves out 1 rows found in val or test, val 1 found in test, test none" in notes


def test_unique_names_rules():
    assert movielens.unique_names(["A", "B"]) == ["A", "B"]
    names = movielens.unique_names(["A", "B", "A", "A"])
    assert names == ["A [id 0]", "B", "A [id 2]", "A [id 3]"]
    # the closing bracket keeps one suffixed name out of another (the substring rule)
    names = movielens.unique_names(["X"] * 51)
    assert names[5] == "X [id 5]" and names[5] not in names[50]
    with pytest.raises(DataError, match="cannot make item names unique: 'A \\[id 1\\]' twice"):
        movielens.unique_names(["A", "A", "A [id 1]"])


def test_drop_repeats_keeps_a_row_in_the_last_split_only():
    def row(seq: list[int], nxt: int) -> dict:
        return {"seq": seq + [9] * (10 - len(seq)), "len_seq": max(len(seq), 1), "next": nxt}

    short, long_ = row([1, 2], 3), row([1, 2, 3], 4)  # only rows with len_seq >= 3 are compared
    other = row([5, 6, 7], 8)
    rows = {"train": [short, long_, other], "val": [short, long_], "test": [short, long_]}
    kept, dropped = movielens.drop_repeats(rows)
    assert kept == {"train": [short, other], "val": [short], "test": [short, long_]}
    assert dropped == {"train": 1, "val": 1, "test": 0}
    kept, dropped = movielens.drop_repeats({"train": [long_], "val": [long_], "test": []})
    assert kept == {"train": [], "val": [long_], "test": []}
    assert dropped == {"train": 1, "val": 0, "test": 0}


# ------------------------------------------------------------------- the reports' note
def test_which_records_count_as_the_earlier_build():
    test_sha = "b75af90c2da17a3bc409ed1596114abcb300f3aff27c013a3a4dd67d5331b9ab"
    before, after = "2026-12-04T16:06:58+0000", "2026-12-05T00:00:01+00:00"
    assert movielens.on_earlier_build("movielens", test_sha, before)
    assert movielens.on_earlier_build("movielens", "", before)  # split file not recorded
    assert not movielens.on_earlier_build("movielens", test_sha, after)
    assert not movielens.on_earlier_build("movielens", "0" * 64, before)  # an import's files
    assert not movielens.on_earlier_build("lastfm", test_sha, before)
    # the same instant written in another zone is still before the change
    assert movielens.on_earlier_build("movielens", test_sha, "2026-12-05T00:30:00+01:00")


@pytest.mark.parametrize("report", ["movielens-cpu", "movielens-study"])
def test_committed_movielens_tables_say_what_changed(report):
    text = (ROOT / "reports" / report / "table2_main.md").read_text(encoding="utf-8")
    notes = [line for line in text.splitlines() if "build before item names were unique" in line]
    assert len(notes) == 1
    assert "15 titles were shared by 30 items" in notes[0]
    counted = re.match(
        r"- (all \d+|(\d+) of the (\d+)) movielens runs here used the build", notes[0]
    )
    assert counted, notes[0]
    if report == "movielens-cpu":  # every movielens run there predates the change
        assert counted.group(1).startswith("all ")
    else:  # the paper's study (34 runs shown) predates it; the field's runs use the new build
        earlier, shown = int(counted.group(2)), int(counted.group(3))
        assert 30 <= earlier < shown
    lastfm = (ROOT / "reports" / "lastfm-study" / "table2_main.md").read_text(encoding="utf-8")
    assert "build before item names were unique" not in lastfm
