"""A run killed with SIGKILL mid-training resumes with --resume to the same final metrics as an
uninterrupted run with the same seed, and the results store never holds a partial record."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, run_cli

pytestmark = pytest.mark.model

ARGS = ("run", "--loss", "dpo", "--dataset", "lastfm", "--profile", "smoke",
        "--train-examples", "12")  # fmt: skip


def _metrics(store):
    records = [json.loads(line) for line in store.read_text().splitlines()]
    mine = [r for r in records if r["method"] == "dpo"]
    return {(r["mode"], r["metric"]): r["value"] for r in mine if r["mode"] != "cost"}, mine


def test_killed_run_resumes_to_the_same_metrics(model_home, tmp_path):
    env = {**os.environ, "RECBENCH_HOME": str(model_home)}
    run_dir = tmp_path / "killed"
    store = tmp_path / "killed.jsonl"
    command = [sys.executable, "-m", "recbench.cli", *ARGS, "--results", str(store),
               "--output-dir", str(run_dir)]  # fmt: skip
    process = subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    checkpoint = run_dir / "preference" / "checkpoint" / "state.json"
    deadline = time.time() + 900
    while not checkpoint.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (run_dir / "preference" / "final").exists()
    # no record of the killed run; the SFT stage it shares finished and is recorded on its own
    assert not store.exists() or not _metrics(store)[1]

    resumed = run_cli(*ARGS, "--results", str(store), "--output-dir", str(run_dir), "--resume",
                      env={"RECBENCH_HOME": str(model_home)})  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = [
        json.loads(line)
        for line in (run_dir / "preference" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [entry["step"] for entry in log] == [1, 2, 3]  # no step lost or repeated

    clean_store = tmp_path / "clean.jsonl"
    clean = run_cli(*ARGS, "--results", str(clean_store), "--output-dir", str(tmp_path / "clean"),
                    env={"RECBENCH_HOME": str(model_home)})  # fmt: skip
    assert clean.returncode == 0, clean.stderr[-3000:]

    resumed_metrics, resumed_records = _metrics(store)
    clean_metrics, _ = _metrics(clean_store)
    assert resumed_metrics == clean_metrics
    assert len({r["run_id"] for r in resumed_records}) == 1
    assert len(resumed_records) == len({(r["mode"], r["metric"]) for r in resumed_records})

    again = run_cli(*ARGS, "--results", str(store), "--output-dir", str(run_dir), "--resume",
                    env={"RECBENCH_HOME": str(model_home)})  # fmt: skip
    assert again.returncode == 0 and again.stdout.startswith("already recorded: ")
    assert _metrics(store)[1] == resumed_records
