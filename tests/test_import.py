"""`recbench data import`: formats, validation messages with file and line, registration."""

from __future__ import annotations

import json

import pandas as pd
import pytest

PAD = 30  # a candidate set needs 20 items outside each history


def _row(seq, nxt):
    padded = list(seq) + [PAD] * (10 - len(seq))
    return {"seq": padded, "len_seq": max(len(seq), 1), "next": nxt}


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture()
def toy(tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("".join(f"{i}::Item {i}\n" for i in range(PAD)))
    train = _write_jsonl(tmp_path / "train.jsonl", [_row([0, 1, 2], 3), _row([0, 1, 2, 3], 4)])
    val = _write_jsonl(tmp_path / "val.jsonl", [_row([4, 3, 2], 1)])
    test = _write_jsonl(tmp_path / "test.jsonl", [_row([1, 3, 4], 0)])
    return {"names": names, "train": train, "val": val, "test": test, "dir": tmp_path}


def _import(cli, toy, *extra, name="toy"):
    return cli(
        "data", "import", name, "--train", str(toy["train"]), "--val", str(toy["val"]),
        "--test", str(toy["test"]), "--names", str(toy["names"]), *extra,
    )  # fmt: skip


def test_import_registers_and_lists(cli, toy):
    result = _import(cli, toy, "--domain", "books")
    assert result.returncode == 0, result.stderr
    info = cli("data", "info", "toy", "--json")
    stats = json.loads(info.stdout)
    assert stats["items"] == PAD and stats["splits"]["train"]["rows_len_seq_ge_3"] == 2
    assert "toy" in cli("data", "list").stdout


def test_import_csv_and_parquet(cli, toy):
    rows = [_row([0, 1, 2], 3), _row([0, 1, 2, 3], 4)]
    frame = pd.DataFrame(rows)
    frame.to_parquet(toy["dir"] / "train.parquet")
    toy["train"] = toy["dir"] / "train.parquet"
    csv_frame = frame.assign(seq=frame["seq"].map(json.dumps))
    csv_frame.to_csv(toy["dir"] / "val.csv", index=False)
    toy["val"] = toy["dir"] / "val.csv"
    result = _import(cli, toy)
    assert result.returncode == 2  # val now duplicates train rows
    assert "duplicates row" in result.stderr
    _write_jsonl(toy["dir"] / "v.jsonl", [_row([4, 3, 2], 1)])
    pd.DataFrame([_row([4, 3, 2], 1)]).assign(seq=lambda f: f["seq"].map(json.dumps)).to_csv(
        toy["dir"] / "val.csv", index=False
    )
    result = _import(cli, toy)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda t: _write_jsonl(t["val"], [_row([4, 3, 99], 1)]), "val.jsonl:1: item id 99 out of range"),
        (lambda t: _write_jsonl(t["test"], [_row([1, 3, 4], 70)]), "test.jsonl:1: next id 70 out of range"),
        (lambda t: t["val"].write_text(json.dumps(_row([4, 3, 2], 1)) + "\n{bad json\n"),
         "val.jsonl:2: malformed JSON"),
        (lambda t: _write_jsonl(t["test"], [_row([0, 1, 2], 3)]), "splits must be disjoint by user"),
        (lambda t: _write_jsonl(t["val"], [_row([4], 1)]), "no row with len_seq >= 3"),
        (lambda t: t["names"].write_text("0::a\n1::b\n3::d\n"), "not contiguous"),
        (lambda t: t["names"].write_text("0::a\n1::b\n"), "out of range"),
    ],
)  # fmt: skip
def test_import_rejects_bad_input(cli, toy, mutate, needle):
    mutate(toy)
    result = _import(cli, toy)
    assert result.returncode == 2, result.stdout
    assert needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_pickle_needs_explicit_opt_in(cli, toy):
    frame = pd.DataFrame([_row([0, 1, 2], 3), _row([0, 1, 2, 3], 4)])
    frame.to_pickle(toy["dir"] / "train_data.df")
    toy["train"] = toy["dir"] / "train_data.df"
    refused = _import(cli, toy)
    assert refused.returncode == 2 and "refusing to load a pickle" in refused.stderr
    accepted = _import(cli, toy, "--allow-pickle")
    assert accepted.returncode == 0, accepted.stderr


def test_import_rejects_path_like_names(cli, toy):
    result = _import(cli, toy, name="../evil")
    assert result.returncode == 2 and "invalid dataset name" in result.stderr
    result = _import(cli, toy, name="lastfm")
    assert result.returncode == 2 and "built-in" in result.stderr
