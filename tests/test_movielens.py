"""`recbench data build movielens`: ML-100K from the recbole==1.2.1 wheel, built locally.

The row-building rules are checked on a tiny hand-made ratings table with expected rows written
out literally; the real build (a ~2 MB pip download, about a second to build) is checked against
the statistics measured when the builder was written and against an independent re-derivation
from the raw file.  Without access to PyPI the real-build tests skip, saying why.
"""

from __future__ import annotations

import os
import random
import zipfile
from pathlib import Path

import numpy as np
import pytest

from recbench import api
from recbench.data import catalog, load_dataset, movielens
from recbench.data.importer import check_disjoint, import_dataset
from recbench.data.rows import SplitRows, sha256_of
from recbench.errors import DataError, UnknownNameError, UserError

P = 4  # padding id of the tiny table (4 items survive the rating cut)
PAD10 = [P] * 10

INTER_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
ITEM_HEADER = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"

# Measured on the real build (recbole 1.2.1, seed 0); see the module docstring of movielens.py.
# 82,520 ratings; 8 training rows and 1 val row equal to a row of a later split are left out.
REAL_STATS = {
    "items": 1574,
    "users": 943,
    "interactions": 82511,
    "splits": {
        "train": {"rows": 65270, "rows_len_seq_ge_3": 63005, "users": 755},
        "val": {"rows": 8609, "rows_len_seq_ge_3": 8327, "users": 94},
        "test": {"rows": 8632, "rows_len_seq_ge_3": 8350, "users": 94},
    },
}
# test.jsonl is the earlier build's (issue 34 changed the names, train and val only).
REAL_SHA256 = {
    "train.jsonl": "f740be2457f8ff10236e3c8488b3c69ab87b18127f3e6ab748097454a8b2035c",
    "val.jsonl": "73b7995f669ddc194724fb330edd035a33ae2c46c826141143eb6eba5c9c6319",
    "test.jsonl": "b75af90c2da17a3bc409ed1596114abcb300f3aff27c013a3a4dd67d5331b9ab",
    "id2name.txt": "eee845a283cf294f4b8d6f9443b51ef2c6f0c3afbdc3c36a69d9e91051950429",
}


# ------------------------------------------------------------------------ tiny, by hand
def _tiny_inter() -> str:
    lines = [
        # user 1: item 50 only rated 2 (dropped everywhere), item 40 rated 1 (dropped);
        # items 20 and 30 share a timestamp, so 20 (lower id) comes first; lines are unordered.
        "1\t30\t5\t200",
        "1\t10\t4\t100",
        "1\t50\t2\t50",
        "1\t20\t3\t200",
        "1\t40\t1\t300",
        # user 11 has no rating >= 3 and disappears.
        "11\t10\t2\t10",
    ]
    # users 2..10: items 40 then 10, then (from user 5 on) 20 and 30.
    for user in range(2, 11):
        lines += [f"{user}\t10\t3\t{user + 20}", f"{user}\t40\t5\t{user}"]
        if user >= 5:
            lines += [f"{user}\t30\t4\t{user + 40}", f"{user}\t20\t4\t{user + 30}"]
    return INTER_HEADER + "\n".join(lines) + "\n"


def _tiny_items() -> str:
    return ITEM_HEADER + (
        "10\tAlpha\t1990\tDrama\n"
        "20\tBeta,  The\t1991\tComedy\n"
        "30\tGamma\tunkonwn\tunknown\n"
        "40\tDelta\t1993\tAction\n"
        "50\tNever Liked\t1994\tHorror\n"
    )


def test_sliding_rows_written_out():
    rows = movielens.sliding_rows(list(range(12)), padding_id=99)
    pad = 99
    assert rows[0] == {"seq": [pad] * 10, "len_seq": 1, "next": 0}
    assert rows[1] == {"seq": [0] + [pad] * 9, "len_seq": 1, "next": 1}
    assert rows[2] == {"seq": [0, 1] + [pad] * 8, "len_seq": 2, "next": 2}
    assert rows[9] == {"seq": [0, 1, 2, 3, 4, 5, 6, 7, 8, pad], "len_seq": 9, "next": 9}
    assert rows[10] == {"seq": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], "len_seq": 10, "next": 10}
    assert rows[11] == {"seq": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], "len_seq": 10, "next": 11}
    assert len(rows) == 12


def test_parsers_read_recbole_atomic_files():
    ratings = movielens.parse_inter(_tiny_inter())
    assert ratings[0] == movielens.Rating(user=1, item=30, rating=5.0, timestamp=200)
    names = movielens.parse_items(_tiny_items())
    assert names == {
        10: "Alpha (1990)",
        20: "Beta, The (1991)",  # whitespace collapsed
        30: "Gamma",  # a non-numeric year is left out
        40: "Delta (1993)",
        50: "Never Liked (1994)",
    }
    with pytest.raises(DataError, match="header lacks field"):
        movielens.parse_inter("user_id:token\titem_id:token\n1\t2\n")
    with pytest.raises(DataError, match=r"ml-100k.inter:3: malformed"):
        movielens.parse_inter(INTER_HEADER + "1\t2\t3\t4\n1\tx\t3\t4\n")


def test_build_tables_on_a_tiny_ratings_table():
    built = movielens.build_tables(
        movielens.parse_inter(_tiny_inter()), movielens.parse_items(_tiny_items())
    )
    # Items 10, 20, 30, 40 -> 0, 1, 2, 3 by original id; 50 (never rated >= 3) is gone.
    assert built.names == ["Alpha (1990)", "Beta, The (1991)", "Gamma", "Delta (1993)"]
    assert built.original_ids == [10, 20, 30, 40]
    # Users 1..10 (11 had nothing kept), shuffled with Random(0) and cut 8:1:1.
    order = list(range(1, 11))
    random.Random(0).shuffle(order)
    assert built.users == {
        "train": sorted(order[:8]),
        "val": [order[8]],
        "test": [order[9]],
    }
    long_chain = [  # users 5..10: 40, 10, 20, 30 -> 3, 0, 1, 2
        {"seq": PAD10, "len_seq": 1, "next": 3},
        {"seq": [3] + [P] * 9, "len_seq": 1, "next": 0},
        {"seq": [3, 0] + [P] * 8, "len_seq": 2, "next": 1},
        {"seq": [3, 0, 1] + [P] * 7, "len_seq": 3, "next": 2},
    ]
    chains = {
        1: [  # 10@100, then 20@200 before 30@200 (tie broken by id) -> 0, 1, 2
            {"seq": PAD10, "len_seq": 1, "next": 0},
            {"seq": [0] + [P] * 9, "len_seq": 1, "next": 1},
            {"seq": [0, 1] + [P] * 8, "len_seq": 2, "next": 2},
        ],
        **dict.fromkeys((2, 3, 4), long_chain[:2]),  # 40, 10 -> 3, 0
        **dict.fromkeys(range(5, 11), long_chain),
    }
    # The len_seq-3 row of the long chain is in all three splits (users 5, 6, 8, 9 in train,
    # 10 in val, 7 in test): test keeps it, val and train leave it out.
    chains.update(dict.fromkeys((5, 6, 8, 9, 10), long_chain[:3]))
    assert built.dropped == {"train": 4, "val": 1, "test": 0}
    # Users are written by ascending id within their split.
    for split, users in built.users.items():
        assert built.rows[split] == [row for user in users for row in chains[user]], split
    assert built.ratings == 3 + 3 * 2 + 6 * 4
    assert sum(len(r) for r in built.rows.values()) == built.ratings - 5


def test_build_tables_needs_titles_and_kept_ratings():
    ratings = movielens.parse_inter(_tiny_inter())
    with pytest.raises(DataError, match="no title for item 40"):
        movielens.build_tables(ratings, {10: "a", 20: "b", 30: "c"})
    with pytest.raises(DataError, match="no interaction with rating >= 3"):
        movielens.build_tables([movielens.Rating(1, 10, 1.0, 0)], {10: "a"})


# -------------------------------------------------------------------- no network needed
def test_not_built_yet_is_a_one_line_hint(cli, recbench_home):
    with pytest.raises(UnknownNameError, match="recbench data build movielens"):
        load_dataset("movielens")
    result = cli("data", "info", "movielens")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "recbench data build movielens" in result.stderr
    listed = cli("data", "list")
    assert "movielens" in listed.stdout and "recbench data build movielens" in listed.stdout


def test_fetch_failure_says_how_to_fix(cli, monkeypatch):
    # pip reads these from the environment the CLI subprocess inherits: no index, no links.
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    result = cli("data", "build", "movielens")
    assert result.returncode == 2, result.stdout
    assert len(result.stderr.strip().splitlines()) == 1
    assert "cannot fetch recbole==1.2.1" in result.stderr
    assert "--wheel" in result.stderr and "pip download --no-deps recbole==1.2.1" in result.stderr


def test_unknown_builder_and_foreign_wheel(recbench_home, tmp_path):
    with pytest.raises(UnknownNameError, match="did you mean 'movielens'"):
        api.build_dataset("movielns")
    fake = tmp_path / "recbole-1.2.1-py3-none-any.whl"
    with zipfile.ZipFile(fake, "w") as archive:
        archive.writestr(movielens.INTER_MEMBER, INTER_HEADER)
        archive.writestr(movielens.ITEM_MEMBER, ITEM_HEADER)
    with pytest.raises(DataError, match="does not match its recorded sha256"):
        movielens.build(fake)
    with pytest.raises(DataError, match="not a readable wheel"):
        movielens.build(tmp_path / "missing.whl")


def test_does_not_replace_a_foreign_dataset_without_overwrite(recbench_home, tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("".join(f"{i}::Film {i}\n" for i in range(30)))
    files = {}
    for split, (seq, nxt) in {"train": ([0, 1, 2], 3), "val": ([4, 3, 2], 1),
                              "test": ([1, 3, 4], 0)}.items():  # fmt: skip
        path = tmp_path / f"{split}.jsonl"
        path.write_text(f'{{"seq": {seq + [30] * 7}, "len_seq": 3, "next": {nxt}}}\n')
        files[split] = path
    import_dataset("movielens", files, names, domain="movies")
    with pytest.raises(UserError, match="--overwrite"):
        movielens.build(tmp_path / "never-read.whl")
    assert load_dataset("movielens").num_items == 30


# ------------------------------------------------------------------------- the real data
@pytest.fixture(scope="module")
def recbole_wheel(tmp_path_factory) -> Path:
    """The recbole==1.2.1 wheel, downloaded once for this module (skip when PyPI is away)."""
    try:
        return movielens.fetch_wheel(tmp_path_factory.mktemp("wheel"))
    except DataError as exc:
        pytest.skip(f"real ML-100K build needs PyPI access: {exc}")


def _chains(rows: SplitRows, padding: int) -> list[list[int]]:
    """Users' item sequences recovered from a sliding split: a chain starts at an all-padding
    row, and each row must show the last 10 items of the chain so far."""
    chains: list[list[int]] = []
    for seq, len_seq, nxt in zip(rows.seq.tolist(), rows.len_seq.tolist(), rows.next.tolist(),
                                 strict=True):  # fmt: skip
        if all(x == padding for x in seq):
            assert len_seq == 1
            chains.append([])
        history = chains[-1][-10:]
        assert seq == history + [padding] * (10 - len(history))
        assert len_seq == max(len(history), 1)
        chains[-1].append(nxt)
    return chains


def _expected_chains(wheel: Path) -> dict[str, list[list[int]]]:
    """The same sequences re-derived from the raw file, written independently of the builder."""
    inter, _ = movielens.read_raw(wheel)
    per_user: dict[int, list[tuple[int, int]]] = {}
    for line in inter.splitlines()[1:]:
        user, item, rating, stamp = line.split("\t")
        if float(rating) >= 3:
            per_user.setdefault(int(user), []).append((int(stamp), int(item)))
    items = sorted({item for pairs in per_user.values() for _, item in pairs})
    remap = {item: index for index, item in enumerate(items)}
    users = sorted(per_user)
    random.Random(0).shuffle(users)
    cuts = {"train": users[:755], "val": users[755:849], "test": users[849:]}
    return {
        split: [[remap[item] for _, item in sorted(per_user[u])] for u in sorted(members)]
        for split, members in cuts.items()
    }


def test_real_build_statistics_and_rows(recbench_home, recbole_wheel):
    stats = api.build_dataset("movielens", wheel=recbole_wheel)
    for key in ("items", "users", "interactions"):
        assert stats[key] == REAL_STATS[key]
    for split, expected in REAL_STATS["splits"].items():
        assert {k: stats["splits"][split][k] for k in expected} == expected
    ds = load_dataset("movielens")
    assert not ds.builtin and ds.domain == "movies" and ds.padding_id == 1574
    assert any("no redistribution" in note for note in ds.spec.notes)
    # Ids contiguous and named (read_item_names refuses gaps), titles carry the year, and the 15
    # films ML-100K lists twice (same title and year) carry their recbench id too (issue 34).
    names = ds.item_names
    assert len(names) == ds.num_items and all(names) and len(set(names)) == ds.num_items
    assert names[0] == "Toy Story (1995)" and "Misérables, Les (1995)" in names
    assert names[245] == "Chasing Amy (1997) [id 245]"
    assert names[267] == "Chasing Amy (1997) [id 267]"
    assert sum(name.endswith(f" [id {item}]") for item, name in enumerate(names)) == 30
    # Every prefix of every user's time-ordered sequence is a row, in the padding convention,
    # except the rows (len_seq >= 3) also found in a later split: 8 in train, 1 in val.
    expected = _expected_chains(recbole_wheel)
    later: set[tuple] = set()
    for split in ("test", "val", "train"):
        rows = ds.rows(split)
        every = [row for chain in expected[split] for row in _prefix_rows(chain, ds.padding_id)]
        kept = [row for row in every if row[1] < 3 or (row[0], row[2]) not in later]
        assert _row_tuples(rows) == kept, split
        assert len(every) - len(kept) == {"test": 0, "val": 1, "train": 8}[split]
        later.update((row[0], row[2]) for row in every)
    assert _chains(ds.rows("test"), ds.padding_id) == expected["test"]
    for split in ("train", "val", "test"):
        rows = ds.rows(split)
        # Real ids first, then only padding; len_seq counts them (1 for an empty history).
        real = rows.seq != ds.padding_id
        n_real = real.sum(axis=1)
        assert (real == (np.arange(10)[None, :] < n_real[:, None])).all()
        assert (rows.len_seq == np.maximum(n_real, 1)).all()
        assert (rows.next < ds.num_items).all()
    # Splits are disjoint by user: no user sequence is in two splits ...
    sequences = {s: {tuple(c) for c in chains} for s, chains in expected.items()}
    assert not (sequences["train"] & sequences["val"] or sequences["train"] & sequences["test"]
                or sequences["val"] & sequences["test"])  # fmt: skip
    # ... and so are the rows the importer compares (before issue 34, 6 val/test examples were
    # training rows and one val example a test row)
    check_disjoint({s: ds.rows(s) for s in expected})
    assert len(ds.examples("test")) == 8350
    assert any("train leaves out 8 rows found in val or test, val 1" in n for n in ds.spec.notes)


def _prefix_rows(chain: list[int], padding: int) -> list[tuple[tuple[int, ...], int, int]]:
    """(seq, len_seq, next) of every prefix of ``chain``, written out independently."""
    out = []
    for position, target in enumerate(chain):
        history = chain[max(0, position - 10) : position]
        out.append((tuple(history + [padding] * (10 - len(history))), max(len(history), 1), target))
    return out


def _row_tuples(rows: SplitRows) -> list[tuple[tuple[int, ...], int, int]]:
    columns = zip(rows.seq.tolist(), rows.len_seq.tolist(), rows.next.tolist(), strict=True)
    return [(tuple(seq), len_seq, nxt) for seq, len_seq, nxt in columns]


def test_real_build_is_deterministic(recbench_home, recbole_wheel):
    movielens.build(recbole_wheel)
    root = catalog.imported_root() / "movielens"
    first = {p.name: sha256_of(p) for p in sorted(root.iterdir())}
    movielens.build(recbole_wheel)  # an earlier build of ours is replaced without --overwrite
    second = {p.name: sha256_of(p) for p in sorted(root.iterdir())}
    assert first == second
    assert {name: first[name] for name in REAL_SHA256} == REAL_SHA256
    assert not (root.parent / ".movielens.building").exists()


def test_cli_build_fetches_from_pypi(cli, recbole_wheel):
    result = cli("data", "build", "movielens")
    if result.returncode == 2 and "cannot fetch" in result.stderr:
        pytest.skip(f"pip could not fetch the wheel: {result.stderr.strip()}")
    assert result.returncode == 0, result.stderr
    assert "built 'movielens': 1,574 items, 943 users" in result.stdout
    assert "test: 8,632 rows, 8,350 with len_seq>=3" in result.stdout
    info = cli("data", "info", "movielens")
    assert info.returncode == 0 and "GroupLens" in info.stdout
