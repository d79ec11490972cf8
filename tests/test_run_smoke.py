"""`recbench run --profile smoke` end to end on the embedded model: SFT, a loss, evaluation,
and the result records it appends (one per run and metric)."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli

pytestmark = pytest.mark.model

QUALITY = {"hr@1", "ndcg@5", "ndcg@10", "pop_bias", "n_examples"}


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("loss", ["napo", "sdpo", "dpo"])
def test_smoke_run_appends_complete_records(model_home, tmp_path, loss):
    store = tmp_path / "results.jsonl"
    result = run_cli(
        "run", "--loss", loss, "--dataset", "lastfm", "--profile", "smoke",
        "--results", str(store), "--output-dir", str(tmp_path / "run"),
        env={"RECBENCH_HOME": str(model_home)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    records = _records(store)
    mine = [r for r in records if r["method"] == loss]
    assert mine, records
    run_ids = {r["run_id"] for r in mine}
    assert len(run_ids) == 1
    by_mode = {}
    for r in mine:
        by_mode.setdefault(r["mode"], {})[r["metric"]] = r["value"]
    assert QUALITY <= set(by_mode["ranking"])
    assert {"hr@1", "valid_ratio"} <= set(by_mode["generation"])
    assert 0.0 <= by_mode["generation"]["valid_ratio"] <= 1.0
    assert by_mode["ranking"]["n_examples"] == 4
    assert by_mode["cost"]["preference_seconds"] > 0
    assert by_mode["cost"]["peak_memory_mb"] > 100
    # the share of its cores the run had, and the machine's load: its times carry their load
    assert 0.0 < by_mode["cost"]["cpu_utilisation"] <= 1.5
    assert by_mode["cost"]["load_average"] >= 0.0
    first = mine[0]
    assert first["dataset"] == "lastfm" and first["profile"] == "smoke" and first["seed"] == 0
    assert first["model"] == "smollm2-135m" and first["family"] == "loss"
    assert first["hparams"]["n_neg"] == 3 and "beta" in first["hparams"]
    assert first["versions"]["torch"] and first["hardware"]["cpu_count"]
    assert first["settings"]["config"]["loss"] == loss
    # each record is one complete JSON object per line, nothing partial
    assert all(set(r) >= {"run_id", "metric", "value", "time"} for r in records)
