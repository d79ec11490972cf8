"""Two runs that need the same uncached SFT stage at the same time (issue 12, item 2).

Two DPO runs (beta 0.1 and 0.5) share the SFT stage, its evaluation and the reference
log-probs.  The test holds the SFT stage's lock while it starts both, so that both are sure to
be waiting for it at once; then it lets them go.  One builds each shared stage, the other waits
and reuses it: the SFT stage is trained once, evaluated and recorded once, the reference
log-probs are computed once, and both runs finish with their own records.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from conftest import ROOT
from filelock import FileLock

from recbench import locks
from recbench.config import RunConfig
from recbench.pipeline import LLMRun

pytestmark = pytest.mark.model

WAITING = "waiting for another process that is building"
#: One run builds the stage (its SFT prerequisite holds the stage's lock, which the test holds
#: first); the other waits for that very SFT run, its own prerequisite too.
WAITING_STAGE = "waiting for another process that is building the shared SFT stage"


def test_two_runs_share_one_build_of_each_stage(tiny_llm, tmp_path, monkeypatch):
    home, store = tmp_path / "home", tmp_path / "results.jsonl"
    monkeypatch.setenv("RECBENCH_HOME", str(home))
    sft_dir = LLMRun.from_config(
        RunConfig(loss="dpo", profile="smoke", model=str(tiny_llm))
    ).sft_dir
    env = {**os.environ, "RECBENCH_HOME": str(home)}
    processes, logs = [], []
    with FileLock(str(locks.lock_path(sft_dir))):
        for beta in ("0.1", "0.5"):
            log = tmp_path / f"beta{beta}.err"
            command = [
                sys.executable,
                "-m",
                "recbench.cli",
                "run",
                "--loss",
                "dpo",
                "--param",
                f"beta={beta}",
                "--profile",
                "smoke",
                "--model",
                str(tiny_llm),
                "--output-dir",
                str(tmp_path / f"run{beta}"),
                "--results",
                str(store),
            ]
            with open(log, "w") as err:  # fmt: skip
                processes.append(
                    subprocess.Popen(
                        command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err
                    )
                )
            logs.append(log)
        deadline = time.time() + 300
        while time.time() < deadline and not all(WAITING in p.read_text() for p in logs):
            assert all(p.poll() is None for p in processes), [p.read_text() for p in logs]
            time.sleep(0.2)
        assert all(WAITING in p.read_text() for p in logs), "both runs wait for the SFT stage"
        assert any(WAITING_STAGE in p.read_text() for p in logs)
        assert not (sft_dir / "final").exists()
    codes = [p.wait(timeout=600) for p in processes]
    assert codes == [0, 0], [p.read_text()[-2000:] for p in logs]

    # the SFT stage was trained once (two logged steps, not four) and is complete
    steps = [json.loads(line)["step"] for line in (sft_dir / "metrics.jsonl").open()]
    assert steps == [1, 2]
    assert (sft_dir / "final" / "done.json").is_file()
    assert len(list((home / "stages").glob("reference-*.safetensors"))) == 1

    records = [json.loads(line) for line in store.read_text().splitlines()]
    sft = [r for r in records if r["method"] == "sft"]
    dpo = [r for r in records if r["method"] == "dpo"]
    assert len({r["run_id"] for r in sft}) == 1
    assert len(sft) == len({(r["mode"], r["metric"]) for r in sft})  # recorded once
    assert {r["hparams"]["beta"] for r in dpo} == {0.1, 0.5}
    assert len({r["run_id"] for r in dpo}) == 2
