"""The record type (issue 33, item 5): one versioned type written and read in one module, every
committed store still read, a newer version refused with one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ROOT

from recbench import results
from recbench.records import RECORD_VERSION, Record, RunSettings, record_version

STORES = sorted((ROOT / "reports" / "results").glob("*.jsonl"))


def test_there_are_committed_stores():
    assert len(STORES) >= 4


@pytest.mark.parametrize("store", STORES, ids=lambda p: p.stem)
def test_every_committed_store_reads_as_typed_records(store: Path):
    lines = [line for line in store.read_text().splitlines() if line.strip()]
    records = results.read_records(store)
    assert len(records) == len(lines)  # nothing skipped
    for record, line in zip(records, lines, strict=True):
        assert isinstance(record, Record)
        raw = json.loads(line)
        assert record.run_id == raw["run_id"] and record.metric == raw["metric"]
        assert record.value == pytest.approx(float(raw["value"]), abs=0.0, nan_ok=True)
        assert record.version == record_version(raw) in (1, RECORD_VERSION)
        # the JSON view is the line itself, field for field
        assert {k: v for k, v in record.to_json().items() if v is not None} == {
            k: v for k, v in raw.items() if v is not None
        }


def test_a_record_round_trips_and_reads_like_its_json(tmp_path):
    raw = {"run_id": "r1", "dataset": "lastfm", "method": "pop", "mode": "ranking",
           "metric": "hr@1", "value": 0.25, "seed": None, "profile": "smoke",
           "settings": {"record_version": 2, "eval_split": "test", "eval_examples": 4,
                        "dataset_files": {"train": "a" * 64}, "sft_weights": "0123"},
           "time": "2026-12-05T06:51:57+00:00", "future_field": 3}  # fmt: skip
    record = Record.from_json(raw)
    assert record["metric"] == "hr@1" and record.get("seed") is None
    assert record.get("future_field") == 3 and record.extra == {"future_field": 3}
    settings = record.run_settings
    assert isinstance(settings, RunSettings)
    assert (settings.eval_split, settings.eval_examples) == ("test", 4)
    assert settings.dataset_files == {"train": "a" * 64} and settings.sft_weights == "0123"
    assert record.version == 2
    assert record.instant == pytest.approx(1796453517.0, abs=1e-6)
    store = tmp_path / "r.jsonl"
    results.append_records([record], store)
    (again,) = results.read_records(store)
    assert again == record
    written = json.loads(store.read_text())
    assert written == raw  # the fields it had, unknown ones included, nothing added


def test_settings_of_the_wrong_type_read_as_unknown():
    settings = RunSettings({"eval_examples": "many", "dataset_files": ["x"], "sft_weights": 3})
    assert settings.eval_examples is None and settings.dataset_files == {}
    assert settings.sft_weights is None
