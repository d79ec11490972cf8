"""Both published protocols (issue 14, item 3): ``eval_rows=all`` (every test row with
``len_seq >= 3``, S-DPO/NAPO) and ``eval_rows=last`` (each test user's last row, LLaRA/TALLRec);
results carry it and ``recbench compare`` never puts the two in one column."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recbench.data import load_dataset
from recbench.data.dataset import example_user_starts, user_last_rows
from recbench.data.rows import SplitRows

PAD = 50


def rows(histories: list[list[int]], targets: list[int]) -> SplitRows:
    seq = np.array([h + [PAD] * (10 - len(h)) for h in histories])
    return SplitRows(seq=seq, len_seq=np.array([max(1, len(h)) for h in histories]),
                     next=np.array(targets))  # fmt: skip


def test_a_users_rows_continue_each_other_and_the_last_one_is_kept():
    # user A: [1,2] -> 3, then [1,2,3] -> 4; user B: [7,8,9] -> 5 (does not continue A)
    # user C: [5,6] -> 1 and [5,6,1] -> 2 and, past the 10-item window, a row that slides
    window = [11, 12, 13, 14, 15, 16, 17, 18, 19, 20]
    split = rows(
        [[1, 2], [1, 2, 3], [7, 8, 9], [5, 6], [5, 6, 1], window, window[1:] + [21]],
        [3, 4, 5, 1, 2, 21, 22],
    )
    assert user_last_rows(split, PAD, 10) == frozenset({1, 2, 4, 6})


def test_users_are_runs_of_rows_and_examples_are_rows_with_three_items():
    # rows: A [1,2]->3 (len 2: no example), A [1,2,3]->4, B [7,8,9]->5, C [5,6]->1 (no example),
    # C [5,6,1]->2, D a full window, D sliding on: examples are rows 1, 2, 4, 5, 6 of users
    # A, B, C, D, D, so users start at examples 0, 1, 2, 3
    window = [11, 12, 13, 14, 15, 16, 17, 18, 19, 20]
    split = rows(
        [[1, 2], [1, 2, 3], [7, 8, 9], [5, 6], [5, 6, 1], window, window[1:] + [21]],
        [3, 4, 5, 1, 2, 21, 22],
    )
    assert example_user_starts(split, PAD, 10) == (0, 1, 2, 3)


def test_lastfm_last_rows_are_the_122_test_users():
    ds = load_dataset("lastfm")
    last = ds.protocol_examples("test", "last")
    every = ds.protocol_examples("test", "all")
    assert len(last) == 122 and len(every) == 2495
    assert {ex.row for ex in last} <= {ex.row for ex in every}
    # each kept row is the end of its user's run: the next row does not continue it
    test = ds.rows("test")
    for ex in last:
        if ex.row + 1 < len(test.next):
            following = [int(x) for x in test.seq[ex.row + 1] if int(x) != ds.padding_id]
            assert following != [*ex.history, ex.target][-10:]
    with pytest.raises(ValueError, match="unknown eval_rows"):
        ds.protocol_examples("test", "first")


def test_runs_carry_the_protocol_and_compare_keeps_them_apart(cli, tmp_path):
    store, out = tmp_path / "results.jsonl", tmp_path / "reports"
    for rows_setting in ("all", "last"):
        ran = cli("run", "--baseline", "pop", "--dataset", "lastfm", "--profile", "paper",
                  "--set", f"eval_rows={rows_setting}", "--results", str(store))  # fmt: skip
        assert ran.returncode == 0, ran.stderr[-2000:]
    records = [json.loads(line) for line in store.read_text().splitlines()]
    n = {r["settings"]["eval_rows"]: r["value"] for r in records if r["metric"] == "n_examples"}
    assert n == {"all": 2495.0, "last": 122.0}

    compared = cli("compare", "--results", str(store), "--out", str(out), "--no-plots")
    assert compared.returncode == 0, compared.stderr[-2000:]
    tables = sorted(p.relative_to(out).parts[0] for p in out.glob("*/table2_main.csv"))
    assert len(tables) == 2 and "paper-rule" in tables  # two settings, never one column
    assert any("last-rows" in name for name in tables), tables
