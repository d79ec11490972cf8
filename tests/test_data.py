"""Datasets: published statistics, the candidate rule re-derived from docs/data.md, checksums."""

from __future__ import annotations

import json
import random
import shutil

import numpy as np
import pytest

from recbench.data import load_dataset, sample_negatives
from recbench.data.dataset import Dataset, load_spec
from recbench.errors import DataError, UnknownNameError


def protocol_candidates(seq, padding_id, target, num_items):
    """The rule of docs/data.md ('Examples and candidates'), written out independently with the global ``random`` module,
    exactly as the source releases call it (the product uses private generators instead)."""
    history = [x for x in seq if x != padding_id]
    pool = [i for i in range(num_items) if i not in history and i != target]
    state = random.getstate()
    try:
        random.seed(target)
        negs = random.sample(pool, 19)
        cands = negs + [target]
        random.seed(target)
        random.shuffle(cands)
    finally:
        random.setstate(state)
    return cands


@pytest.mark.parametrize(
    ("name", "items", "kept"),
    [("lastfm", 4606, {"train": 47872, "val": 2767, "test": 2495}),
     ("steam", 3581, {"val": 1184, "test": 1186})],
)  # fmt: skip
def test_published_statistics(name, items, kept):
    stats = load_dataset(name).stats()
    assert stats["items"] == items
    for split, count in kept.items():
        assert stats["splits"][split]["rows_len_seq_ge_3"] == count
        assert len(load_dataset(name).examples(split)) == count


def test_lastfm_users_and_steam_sample_flagged():
    assert load_dataset("lastfm").stats()["users"] == 1220
    steam = load_dataset("steam").stats()
    assert steam["splits"]["train"]["layout"] == "sample"
    assert steam["splits"]["train"]["rows"] == 1000
    assert any("SAMPLE" in note for note in steam["notes"])


@pytest.mark.parametrize("name", ["lastfm", "steam"])
def test_candidates_follow_the_protocol_rule(name):
    ds = load_dataset(name)
    raw = [
        json.loads(line)
        for line in (ds.root / ds.spec.splits["test"].file).read_text().splitlines()
    ]
    kept = [r for r in raw if r["len_seq"] >= 3][:25]
    for row, example in zip(kept, ds.examples("test")[:25], strict=True):
        expected = protocol_candidates(row["seq"], ds.padding_id, row["next"], ds.num_items)
        assert list(example.candidates) == expected
        assert example.target == row["next"]
        assert example.candidates[example.target_position] == row["next"]
        assert len(set(example.candidates)) == 20
        assert not set(example.history) & set(example.candidates)


def test_first_lastfm_test_example_is_the_published_one():
    example = load_dataset("lastfm").examples("test")[0]
    # first test row with len_seq >= 3 of the released file (also in reference_outputs.json)
    assert example.history == (392, 225, 234)
    assert example.target == 576


def test_negatives_are_seeded_distinct_non_target_candidates():
    example = load_dataset("lastfm").examples("train")[5]
    a = sample_negatives(example.candidates, example.target, 3, seed=0, key=example.key)
    b = sample_negatives(example.candidates, example.target, 3, seed=0, key=example.key)
    c = sample_negatives(example.candidates, example.target, 3, seed=1, key=example.key)
    assert a == b
    assert len(set(a)) == 3 and example.target not in a
    assert set(a) <= set(example.candidates)
    all19 = sample_negatives(example.candidates, example.target, 19, seed=0, key=example.key)
    assert set(all19) == set(example.candidates) - {example.target}
    assert a != c or a != sample_negatives(example.candidates, example.target, 3, 2, example.key)
    with pytest.raises(ValueError):
        sample_negatives(example.candidates, example.target, 20, seed=0, key=example.key)


def test_popularity_counts_unfiltered_training_targets():
    ds = load_dataset("lastfm")
    pop = ds.popularity()
    raw = [json.loads(line)["next"] for line in (ds.root / "train.jsonl").read_text().splitlines()]
    assert pop.sum() == len(raw) == 50800
    item = raw[100]
    assert pop[item] == raw.count(item)


def test_corrupt_file_is_detected(tmp_path):
    source = load_dataset("lastfm").root
    copy = tmp_path / "lastfm"
    shutil.copytree(source, copy)
    with open(copy / "test.jsonl", "r+b") as handle:
        handle.seek(10)
        byte = handle.read(1)
        handle.seek(10)
        handle.write(b"7" if byte != b"7" else b"8")
    ds = Dataset(load_spec(copy), copy, builtin=False)
    ds.rows("train")  # untouched file still loads
    with pytest.raises(DataError, match="corrupt or modified"):
        ds.rows("test")


def test_unknown_dataset_and_split_suggest_names():
    with pytest.raises(UnknownNameError, match="did you mean 'lastfm'"):
        load_dataset("lastfn")
    with pytest.raises(UnknownNameError, match="did you mean 'test'"):
        load_dataset("lastfm").rows("tset")


def test_item_names_cover_every_id():
    for name in ("lastfm", "steam"):
        ds = load_dataset(name)
        assert len(ds.item_names) == ds.num_items
        assert all(ds.item_names)
    assert load_dataset("lastfm").item_names[:2] == ["Morcheeba", "Enigma"]


def test_rows_are_arrays_with_padding():
    rows = load_dataset("lastfm").rows("test")
    assert rows.seq.shape == (2861, 10) and rows.seq.dtype == np.int64
    assert rows.seq.max() == 4606
