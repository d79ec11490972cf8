"""Issue 14 item 1: `recbench data audit NAME [--json]`.

Each check is tested on a small hand-made dataset where its verdict is known (40 items, a few
dozen users, written straight to a dataset directory so that leaks the importer would refuse can
be audited too), the CLI through ``python -m recbench.cli`` on an imported dataset, and the
built-in datasets in-process: lastfm's sequences follow one global item order, steam's do not.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_user_error

from recbench import api
from recbench.data import audit
from recbench.data.dataset import Dataset, load_spec
from recbench.data.rows import SplitRows, sha256_of

N_ITEMS = 40
SEQ_LEN = 14


def chain(items: list[int], pad: int = N_ITEMS) -> list[dict]:
    """The sliding-window rows of one user: every prefix of ``items`` predicts the next item."""
    rows = []
    for end in range(len(items)):
        history = items[max(0, end - 10) : end]
        seq = history + [pad] * (10 - len(history))
        rows.append({"seq": seq, "len_seq": max(len(history), 1), "next": items[end]})
    return rows


def row(history: list[int], target: int, pad: int = N_ITEMS) -> dict:
    return {"seq": history + [pad] * (10 - len(history)), "len_seq": len(history), "next": target}


def user_sequences(sort: bool, seed: int = 1) -> dict[str, list[list[int]]]:
    """30 training, 5 val and 5 test users of 14 distinct items; sorted by id or in random order."""
    rng = random.Random(seed)
    out = {}
    for split, users in (("train", 30), ("val", 5), ("test", 5)):
        seqs = [rng.sample(range(N_ITEMS), SEQ_LEN) for _ in range(users)]
        out[split] = [sorted(s) for s in seqs] if sort else seqs
    return out


def split_rows(sort: bool) -> dict[str, list[dict]]:
    return {
        split: [r for seq in seqs for r in chain(seq)]
        for split, seqs in user_sequences(sort).items()
    }


def write_files(directory: Path, rows: dict[str, list[dict]]) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    files = {}
    for split, split_rows_ in rows.items():
        files[split] = directory / f"{split}.jsonl"
        files[split].write_text("".join(json.dumps(r) + "\n" for r in split_rows_))
    files["names"] = directory / "id2name.txt"
    files["names"].write_text("".join(f"{i}::Item {i}\n" for i in range(N_ITEMS)))
    return files


def make_dataset(directory: Path, rows: dict[str, list[dict]], name: str = "toy") -> Dataset:
    """A dataset directory written as the importer would, but without its refusals."""
    files = write_files(directory, rows)
    spec = {
        "name": name,
        "domain": "items",
        "num_items": N_ITEMS,
        "item_names": "id2name.txt",
        "item_names_sha256": sha256_of(files["names"]),
        "splits": {
            split: {"file": f"{split}.jsonl", "sha256": sha256_of(files[split])}
            for split in ("train", "val", "test")
        },
    }
    (directory / "dataset.json").write_text(json.dumps(spec))
    return Dataset(load_spec(directory), directory, builtin=False)


def checks(ds: Dataset) -> dict[str, dict]:
    report = audit.audit(ds)
    assert report["dataset"] == ds.name
    return {check["name"]: check for check in report["checks"]}


@pytest.fixture()
def clean_rows() -> dict[str, list[dict]]:
    return split_rows(sort=False)


# ------------------------------------------------------------------------------ pieces
def test_sequences_rebuild_sliding_chains():
    long_user = list(range(13))
    rows = chain(long_user) + chain([20, 21, 22]) + [row([30, 31, 32], 33)]
    split = {
        "seq": [r["seq"] for r in rows], "len_seq": [r["len_seq"] for r in rows],
        "next": [r["next"] for r in rows],
    }  # fmt: skip
    arrays = SplitRows(*(np.asarray(split[k]) for k in ("seq", "len_seq", "next")))
    assert audit.sequences(arrays, N_ITEMS) == [long_user, [20, 21, 22], [30, 31, 32, 33]]


def test_order_stats_counts_items_off_every_cycle():
    # 0 -> 1 -> 2 -> 0 is a cycle; 3 and 4 hang off it; 5 has a self-loop
    stats = audit.order_stats([[0, 1, 2, 0], [2, 3, 4], [5, 5]])
    assert (stats.items, stats.fitting) == (6, 2)
    assert (stats.pairs, stats.reversed) == (5, 0)
    assert audit.order_stats([[0, 1], [1, 0]]).reversed == 1


def test_gini():
    assert audit.gini([5, 5, 5, 5]) == pytest.approx(0.0)
    assert audit.gini([0, 0, 0, 12]) == pytest.approx(0.75)


# ------------------------------------------------------------------------------ checks
def test_order_flags_a_sorted_dataset_and_not_a_shuffled_one(tmp_path):
    ordered = checks(make_dataset(tmp_path / "sorted", split_rows(sort=True)))
    assert ordered["item_order"]["flagged"] and ordered["item_order"]["value"] == 1.0
    assert "shuffled (seed 0)" in ordered["item_order"]["detail"]
    assert ordered["reversed_pairs"]["flagged"] and ordered["reversed_pairs"]["value"] == 0.0

    shuffled = checks(make_dataset(tmp_path / "shuffled", split_rows(sort=False)))
    assert not shuffled["item_order"]["flagged"]
    assert shuffled["item_order"]["value"] < 0.5
    assert not shuffled["reversed_pairs"]["flagged"]


def test_a_clean_dataset_flags_nothing(tmp_path, clean_rows):
    flagged = [n for n, c in checks(make_dataset(tmp_path, clean_rows)).items() if c["flagged"]]
    assert flagged == []


def test_test_row_present_in_training(tmp_path, clean_rows):
    copied = next(r for r in clean_rows["train"] if r["len_seq"] >= 5)
    clean_rows["test"].append(dict(copied))
    found = checks(make_dataset(tmp_path, clean_rows))
    assert found["test_pairs_in_train"]["flagged"]
    assert found["test_pairs_in_train"]["detail"].startswith("1 of ")


def test_target_inside_its_own_history(tmp_path, clean_rows):
    clean_rows["test"].append(row([3, 7, 9, 11], 7))
    found = checks(make_dataset(tmp_path, clean_rows))
    assert found["target_in_history"]["flagged"]
    assert found["target_in_history"]["value"] > 0
    assert not found["test_pairs_in_train"]["flagged"]


def test_user_shared_between_splits(tmp_path, clean_rows):
    # a test row whose history is 10 items of a training user's sequence, with a new target
    user = user_sequences(sort=False)["train"][0]
    outside = next(i for i in range(N_ITEMS) if i not in user)
    clean_rows["test"].append(row(user[2:12], outside))
    found = checks(make_dataset(tmp_path, clean_rows))
    assert found["shared_users"]["flagged"]
    assert not found["test_pairs_in_train"]["flagged"]
    assert not found["target_in_history"]["flagged"]


def test_popularity_concentration(tmp_path, clean_rows):
    # item 39 is the target of every test row and of many training rows
    for user in range(60):
        history = random.Random(user).sample(range(N_ITEMS - 1), 3)
        clean_rows["train"].append(row(history, N_ITEMS - 1))
    clean_rows["test"] = [row([1, 2, 3 + i], N_ITEMS - 1) for i in range(10)]
    found = checks(make_dataset(tmp_path, clean_rows))
    assert found["pop_top1pct"]["flagged"] and found["pop_top1pct"]["value"] == 1.0
    assert found["pop_top20"]["flagged"]


# ------------------------------------------------------------------------------ CLI
def test_cli_audit_json_table_and_errors(cli, tmp_path):
    files = write_files(tmp_path / "files", split_rows(sort=True))
    imported = cli(
        "data", "import", "sortedtoy", "--train", str(files["train"]), "--val", str(files["val"]),
        "--test", str(files["test"]), "--names", str(files["names"]),
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr

    result = cli("data", "audit", "sortedtoy", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) == {"dataset", "checks"} and report["dataset"] == "sortedtoy"
    for check in report["checks"]:
        assert {"name", "value", "threshold", "flagged", "detail"} <= set(check)
        assert isinstance(check["flagged"], bool)
    order = [c for c in report["checks"] if "order" in c["name"]]
    assert order and order[0]["flagged"]
    names = {c["name"] for c in report["checks"]}
    assert {"shared_users", "test_pairs_in_train", "target_in_history", "pop_gini"} <= names

    table = cli("data", "audit", "sortedtoy")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[1].split()[:4] == ["check", "value", "threshold", "verdict"]
    order_line = next(line for line in lines if line.startswith("item_order"))
    assert "FLAGGED" in order_line and " 1.0000 " in order_line
    assert lines[-1].startswith("flagged: item_order")

    assert_user_error(cli("data", "audit", "nosuch"), "unknown dataset 'nosuch'")
    assert cli("data", "audit").returncode == 2  # the name is required


# ------------------------------------------------------------------------------ built-in
def test_builtin_lastfm_is_flagged_on_order_and_steam_is_not():
    lastfm = {c["name"]: c for c in api.audit_dataset("lastfm")["checks"]}
    assert lastfm["item_order"]["flagged"] and lastfm["item_order"]["value"] == 1.0
    assert "4,606 of 4,606" in lastfm["item_order"]["detail"]
    assert lastfm["reversed_pairs"]["value"] == 0.0
    assert [n for n, c in lastfm.items() if c["flagged"]] == ["item_order", "reversed_pairs"]

    steam = {c["name"]: c for c in api.audit_dataset("steam")["checks"]}
    assert not steam["item_order"]["flagged"] and steam["item_order"]["value"] < 0.5
    assert "1,000-row sample" in steam["item_order"]["detail"]
    assert not any(c["flagged"] for c in steam.values())
