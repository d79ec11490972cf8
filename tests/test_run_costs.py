"""benchmarks/run_costs.py: one row per run with its cost records, read from a store."""

from __future__ import annotations

import importlib.util
import math

import pytest
from conftest import ROOT

from recbench import results

PATH = ROOT / "benchmarks" / "run_costs.py"
spec = importlib.util.spec_from_file_location("run_costs", PATH)
run_costs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_costs)


def _add(store, method: str, seed: int, cost: dict[str, float]) -> None:
    run = {
        "run_id": f"{method}-{seed}", "time": "2026-01-01T00:00:00+0000", "dataset": "lastfm",
        "method": method, "family": "loss", "model": "smollm2-135m", "seed": seed,
        "profile": "cpu", "hparams": {}, "settings": {},
        "hardware": {"cpu_model": "Test CPU", "cpu_count": 2},
        "versions": {"python": "3.11"},
    }  # fmt: skip
    records = results.make_records(run, {"hr@1": 0.5}, split="test", mode="ranking")
    records += results.make_records(run, cost, split="test", mode="cost")
    results.append_records(records, store)


def test_one_row_per_run_with_each_cost_metric(tmp_path):
    store = tmp_path / "store.jsonl"
    _add(store, "napo", 1, {"preference_seconds": 605.2, "peak_memory_mb": 11000.0})
    _add(store, "napo", 0, {"preference_seconds": 615.8, "sft_seconds": 1097.9})
    _add(store, "dpo", 0, {"preference_seconds": 598.0, "cpu_utilisation": 0.97})
    _add(store, "sprec", 0, {"self_play_seconds": 7508.2, "sft_seconds": 7708.1})
    table = run_costs.run_costs(store)
    assert list(zip(table["method"], table["seed"], strict=True)) == [
        ("dpo", 0), ("napo", 0), ("napo", 1), ("sprec", 0)
    ]  # fmt: skip
    sprec = table[table["method"] == "sprec"].iloc[0]
    assert sprec["self-play (s)"] == pytest.approx(7508.2, abs=1e-9)  # SPRec's training
    assert math.isnan(sprec["preference (s)"])
    napo1 = table[(table["method"] == "napo") & (table["seed"] == 1)].iloc[0]
    assert napo1["preference (s)"] == pytest.approx(605.2, abs=1e-9)
    assert napo1["peak (MB)"] == pytest.approx(11000.0, abs=1e-9)
    assert math.isnan(napo1["SFT (s)"])  # not recorded: blank, not 0
    assert napo1["cpu"] == "Test CPU"
    only = run_costs.run_costs(store, ["dpo"])
    assert list(only["method"]) == ["dpo"]
    assert only.iloc[0]["CPU use"] == pytest.approx(0.97, abs=1e-9)
