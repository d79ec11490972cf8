"""A run directory belongs to one run, an interrupted run is never silently thrown away, and
``--resume`` says when there is nothing to resume (issue 12, items 1 and 8).

The runs use a tiny random Llama with the embedded tokenizer (``tiny_llm``), so every stage of
the real pipeline runs in seconds; their metrics mean nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli

from recbench import api
from recbench.config import RunConfig
from recbench.runner import RunInterrupted
from recbench.trainer import Stage

pytestmark = pytest.mark.model


def smoke(tiny_llm: Path, *extra: str) -> tuple[str, ...]:
    return ("run", "--dataset", "lastfm", "--profile", "smoke", "--model", str(tiny_llm), *extra)


def records(store: Path) -> list[dict]:
    return [json.loads(line) for line in store.read_text().splitlines()] if store.exists() else []


def one_error_line(result) -> str:
    """The single ``error: ...`` line of a refused command (and nothing that looks like a bug)."""
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-2000:]
    return errors[0]


def test_an_output_dir_holding_another_run_is_refused(tiny_llm, tmp_path):
    home, store, out = tmp_path / "home", tmp_path / "results.jsonl", tmp_path / "X"
    env = {"RECBENCH_HOME": str(home)}
    first = run_cli(*smoke(tiny_llm, "--loss", "dpo", "--output-dir", str(out),
                           "--results", str(store)), env=env)  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:]
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    stored = store.read_bytes()

    second = run_cli(*smoke(tiny_llm, "--loss", "simpo", "--output-dir", str(out),
                            "--results", str(store)), env=env)  # fmt: skip
    message = one_error_line(second)
    assert f"--output-dir {out} holds another run (lastfm-dpo-" in message
    assert "give each run its own --output-dir" in message
    # nothing was trained, written or recorded: the dpo run's files and the store are intact
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert store.read_bytes() == stored
    assert {r["method"] for r in records(store)} == {"sft", "dpo"}

    # the same run in the same directory is its own: found in the store, not refused
    again = run_cli(*smoke(tiny_llm, "--loss", "dpo", "--output-dir", str(out),
                           "--results", str(store)), env=env)  # fmt: skip
    assert again.returncode == 0 and again.stdout.startswith("already recorded: lastfm-dpo-")


def test_a_smoke_run_trains_every_stage_at_a_non_zero_rate_and_says_what_it_shows(
    tiny_llm, tmp_path
):
    home, store = tmp_path / "home", tmp_path / "results.jsonl"
    result = run_cli(*smoke(tiny_llm, "--loss", "sdpo", "--output-dir", str(tmp_path / "run"),
                            "--results", str(store)), env={"RECBENCH_HOME": str(home)})  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    logs = [*home.glob("stages/sft-*/metrics.jsonl"), tmp_path / "run/preference/metrics.jsonl"]
    assert len(logs) == 2
    for log in logs:
        steps = [json.loads(line) for line in log.read_text().splitlines()]
        assert [s["step"] for s in steps] == [1, 2]
        # the rate each step applied: the profile's rate first (no warm-up), then the cosine
        # decay to half of it; never 0
        assert steps[0]["lr"] > 0 and steps[1]["lr"] > 0
        assert steps[1]["lr"] == pytest.approx(steps[0]["lr"] / 2, rel=1e-6)
    assert "measure nothing about the method" in result.stdout


def test_resume_with_nothing_to_resume_says_so_and_writes_nothing(tiny_llm, tmp_path):
    out, store = tmp_path / "never-started", tmp_path / "results.jsonl"
    result = run_cli(*smoke(tiny_llm, "--loss", "dpo", "--output-dir", str(out),
                            "--results", str(store), "--resume"),
                     env={"RECBENCH_HOME": str(tmp_path / "home")})  # fmt: skip
    message = one_error_line(result)
    assert "--resume: nothing to resume" in message and "run without --resume" in message
    assert not out.exists() and not store.exists()


def test_a_non_empty_directory_that_holds_no_run_is_refused(tiny_llm, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("not recbench's\n")
    result = run_cli(*smoke(tiny_llm, "--loss", "dpo", "--output-dir", str(out)),
                     env={"RECBENCH_HOME": str(tmp_path / "home")})  # fmt: skip
    assert "is not empty and holds no recbench run" in one_error_line(result)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def interrupt_after_first_preference_checkpoint(monkeypatch, at: str = "checkpoint") -> None:
    """Ctrl-C right after the preference stage wrote its first checkpoint (step 1 of 2), or its
    final weights with ``at="final"``."""
    original = Stage._save

    def save(self, model, optimizer, scheduler, extra, step, where, summary=None, **kw):
        original(self, model, optimizer, scheduler, extra, step, where, summary, **kw)
        if self.settings.name == "preference" and where == at:
            raise KeyboardInterrupt

    monkeypatch.setattr(Stage, "_save", save)


def test_an_interrupted_run_says_how_to_resume_and_is_never_silently_restarted(
    tiny_llm, tmp_path, monkeypatch
):
    home, store, out = tmp_path / "home", tmp_path / "results.jsonl", tmp_path / "run"
    monkeypatch.setenv("RECBENCH_HOME", str(home))
    config = RunConfig(loss="dpo", dataset="lastfm", profile="smoke", model=str(tiny_llm),
                       output_dir=out, results=store)  # fmt: skip
    interrupt_after_first_preference_checkpoint(monkeypatch)
    with pytest.raises(RunInterrupted) as caught:
        api.run(config)
    assert caught.value.exit_code == 130
    assert "run the same command with --resume to continue" in str(caught.value)
    assert "\n" not in str(caught.value)
    monkeypatch.undo()
    checkpoint = out / "preference" / "checkpoint"
    assert json.loads((checkpoint / "state.json").read_text())["step"] == 1
    assert {r["method"] for r in records(store)} == {"sft"}  # the SFT stage finished

    env = {"RECBENCH_HOME": str(home)}
    args = smoke(tiny_llm, "--loss", "dpo", "--output-dir", str(out), "--results", str(store))
    refused = run_cli(*args, env=env)
    message = one_error_line(refused)
    assert "holds an interrupted preference stage (step 1 of 2)" in message
    assert "add --resume to continue it" in message
    assert (checkpoint / "adapter.safetensors").is_file()  # kept, not deleted

    resumed = run_cli(*args, "--resume", env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "preference: continuing from the checkpoint at step 1 of 2" in resumed.stderr
    log = (out / "preference" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in log] == [1, 2]
    assert {r["method"] for r in records(store)} == {"sft", "dpo"}


def test_a_preference_stage_is_not_continued_on_another_sft_stage(tiny_llm, tmp_path, monkeypatch):
    """Its checkpoint descends from the SFT stage it started from; after that stage was trained
    again into other weights (another machine), continuing would record a model that mixes the
    two.  Refused in one line, the checkpoint kept."""
    home, store, out = tmp_path / "home", tmp_path / "results.jsonl", tmp_path / "run"
    monkeypatch.setenv("RECBENCH_HOME", str(home))
    config = RunConfig(loss="dpo", dataset="lastfm", profile="smoke", model=str(tiny_llm),
                       output_dir=out, results=store)  # fmt: skip
    interrupt_after_first_preference_checkpoint(monkeypatch)
    with pytest.raises(RunInterrupted):
        api.run(config)
    monkeypatch.undo()
    marker = out / "preference" / "sft_weights.txt"
    sft_weights = {r["settings"]["sft_weights"] for r in records(store)}
    assert marker.read_text().strip() in sft_weights  # it names the stage it trains on
    marker.write_text("0123456789abcdef\n")  # as if that stage had other weights then

    args = smoke(tiny_llm, "--loss", "dpo", "--output-dir", str(out), "--results", str(store))
    refused = run_cli(*args, "--resume", env={"RECBENCH_HOME": str(home)})
    message = one_error_line(refused)
    assert "trained from the SFT stage with weights 0123456789abcdef" in message
    assert f"remove {out / 'preference'} to retrain it" in message
    assert (out / "preference" / "checkpoint" / "adapter.safetensors").is_file()
    assert {r["method"] for r in records(store)} == {"sft"}


def test_a_run_continued_after_its_stage_finished_records_the_stage_cost(
    tiny_llm, tmp_path, monkeypatch
):
    """Killed after its preference stage was saved, a run continued later trains nothing: its
    record must still carry the time and peak memory of the stage (kept in the stage's summary),
    not the near-zero time of the continuation.  The summary is edited to values no process of
    this test reaches, standing for the earlier process that trained the stage."""
    home, store, out = tmp_path / "home", tmp_path / "results.jsonl", tmp_path / "run"
    monkeypatch.setenv("RECBENCH_HOME", str(home))
    config = RunConfig(loss="dpo", dataset="lastfm", profile="smoke", model=str(tiny_llm),
                       output_dir=out, results=store)  # fmt: skip
    interrupt_after_first_preference_checkpoint(monkeypatch, at="final")
    with pytest.raises(RunInterrupted):
        api.run(config)
    monkeypatch.undo()
    summary_path = out / "preference" / "final" / "summary.json"
    summary = json.loads(summary_path.read_text())
    assert summary["seconds"] > 0 and summary["peak_memory_mb"] > 100  # what the stage measured
    summary.update(seconds=4321.5, peak_memory_mb=987654.0)
    summary_path.write_text(json.dumps(summary) + "\n")
    assert {r["method"] for r in records(store)} == {"sft"}

    args = smoke(tiny_llm, "--loss", "dpo", "--output-dir", str(out), "--results", str(store))
    resumed = run_cli(*args, "--resume", env={"RECBENCH_HOME": str(home)})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    cost = {r["metric"]: r["value"] for r in records(store)
            if r["method"] == "dpo" and r["mode"] == "cost"}  # fmt: skip
    assert cost["preference_seconds"] == pytest.approx(4321.5, abs=1e-6)
    assert cost["peak_memory_mb"] == pytest.approx(987654.0, abs=1e-6)
