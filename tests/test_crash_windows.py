"""A run killed at any instant is complete or resumable (issue 12, item 4).

A DPO smoke run (tiny random Llama, so every stage takes a second) is interrupted right after
its preference stage wrote the first checkpoint.  Then every file the run has written so far
(shared SFT stage, reference log-probs, run directory, locks, results store) is, one at a time,
truncated to half its size or removed, and ``--resume`` must finish the run with the metrics
of a run that was never interrupted: damaged state is repaired or rebuilt, never fatal.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from recbench import api, results
from recbench.config import RunConfig
from recbench.trainer import Stage

pytestmark = pytest.mark.model


def config_in(root: Path, tiny_llm: Path, resume: bool) -> RunConfig:
    return RunConfig(
        loss="dpo", dataset="lastfm", profile="smoke", model=str(tiny_llm),
        eval_examples=2, overrides={"generation": False}, output_dir=root / "run",
        results=root / "results.jsonl", resume=resume,
    )  # fmt: skip


def final_metrics(store: Path) -> dict[tuple[str, str], float]:
    return {
        (r["mode"], r["metric"]): r["value"]
        for r in results.read_records(store)  # a damaged line is skipped, as every reader does
        if r.get("method") == "dpo" and r.get("mode") == "ranking"
    }


#: Where the run is stopped: right after this stage wrote this checkpoint.
STOPS = [("sft", "checkpoint"), ("preference", "checkpoint"), ("preference", "final")]


@pytest.fixture(scope="module", params=STOPS, ids=lambda stop: "-".join(stop))
def interrupted(request, tiny_llm, tmp_path_factory) -> tuple[Path, dict]:
    """The state a run leaves when stopped at one of :data:`STOPS`, and the metrics of the
    same run uninterrupted."""
    stage, checkpoint = request.param
    mp = pytest.MonkeyPatch()
    base = tmp_path_factory.mktemp("crash")
    clean, state = base / "clean", base / "state"
    try:
        mp.setenv("RECBENCH_HOME", str(clean / "home"))
        api.run(config_in(clean, tiny_llm, resume=False))
        expected = final_metrics(clean / "results.jsonl")

        original = Stage._save

        def save(self, model, optimizer, scheduler, extra, step, where, summary=None, **kw):
            original(self, model, optimizer, scheduler, extra, step, where, summary, **kw)
            if self.settings.name == stage and where == checkpoint:
                raise KeyboardInterrupt

        mp.setattr(Stage, "_save", save)
        mp.setenv("RECBENCH_HOME", str(state / "home"))
        with pytest.raises(KeyboardInterrupt):  # RunInterrupted is raised "from" it
            try:
                api.run(config_in(state, tiny_llm, resume=False))
            except Exception as exc:
                raise KeyboardInterrupt from exc
    finally:
        mp.undo()
    assert expected
    return state, expected


def written_files(state: Path) -> list[str]:
    return sorted(str(p.relative_to(state)) for p in state.rglob("*") if p.is_file())


def first_left_here(stop: tuple[str, str], name: str) -> bool:
    """Whether ``stop`` is the first of :data:`STOPS` to leave file ``name`` (a file that two
    stops leave alike is damaged at the first only; lock files are empty and not damaged)."""
    if name.startswith("home/locks/"):
        return False
    if stop == ("sft", "checkpoint"):
        return True
    if stop == ("preference", "checkpoint"):  # all but the SFT run's directory record
        return not (name.startswith("home/runs/") and name.endswith("/run.json"))
    return name.startswith("run/preference/")


#: Files each stop must have left (so the damage test below covers every kind of file).
LEFT = {
    # the SFT stage trains in its own run (the loss run's prerequisite), before the loss run
    # claims its directory
    ("sft", "checkpoint"): ["home/runs/lastfm-sft-", "/checkpoint/optimizer.pt",
                            "/checkpoint/state.json", "/checkpoint/modules.pt", "sft-",
                            "metrics.jsonl"],
    ("preference", "checkpoint"): [
        "run/preference/checkpoint/adapter.safetensors", "run/preference/checkpoint/scheduler.pt",
        "run/preference/metrics.jsonl", "/final/adapter.safetensors", "/final/summary.json",
        "/final/done.json", "/final/modules.pt", "/final/state.json", "home/stages/reference-",
        "results.jsonl", "home/locks/", "run/run.json",
    ],
    ("preference", "final"): ["run/preference/final/done.json", "run/preference/final/summary.json"],
}  # fmt: skip


def test_the_interrupted_state_has_the_files_to_damage(interrupted, request):
    files = written_files(interrupted[0])
    stop = tuple(request.node.callspec.params["interrupted"])
    for part in LEFT[stop]:
        assert any(part in f for f in files), (part, files)


@pytest.mark.parametrize("damage", ["truncate", "remove"])
def test_resume_survives_each_written_file_damaged(
    interrupted, tiny_llm, tmp_path, damage, monkeypatch, request
):
    state, expected = interrupted
    stop = tuple(request.node.callspec.params["interrupted"])
    failures = []
    for index, name in enumerate(n for n in written_files(state) if first_left_here(stop, n)):
        root = tmp_path / str(index)
        shutil.copytree(state, root)
        target = root / name
        if damage == "remove":
            target.unlink()
        else:
            data = target.read_bytes()
            target.write_bytes(data[: len(data) // 2])
        monkeypatch.setenv("RECBENCH_HOME", str(root / "home"))
        try:
            api.run(config_in(root, tiny_llm, resume=True))
            got = final_metrics(root / "results.jsonl")
            if got.keys() != expected.keys() or any(
                got[k] != pytest.approx(expected[k], rel=1e-6, abs=1e-9) for k in expected
            ):
                failures.append((name, "metrics differ", got))
        except Exception as exc:  # noqa: BLE001 - collect every failing file, then report
            failures.append((name, type(exc).__name__, str(exc)[:300]))
        shutil.rmtree(root)
    assert not failures, failures
