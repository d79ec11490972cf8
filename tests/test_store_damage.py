"""A damaged results store never stops work (issue 12, item 3), and sweeps share a store (item 2).

A store may end in a torn line (a process killed mid-write), hold binary junk (a bad disk, a
wrong file concatenated), a JSON value that is not an object or a record missing the fields the
reports rely on.  ``recbench compare``, ``run`` and ``sweep`` skip such lines with one warning
line naming the file and the line numbers, and never rewrite the file.  Appends after a torn
line keep the new records whole, also when writers are killed with SIGKILL.  Two sweeps over one
store never run the same point twice: points are locked while they run.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import ROOT, run_cli
from filelock import FileLock

from recbench import losses, results, runner
from recbench.config import RunConfig
from recbench.sweep import SweepSpec, expand, is_done, lock_path, run_sweep

HARDWARE = {"machine": "x86_64", "cpu": "x86_64", "cpu_count": 2, "system": "Linux"}
VERSIONS = {"python": "3.11", "recbench": "0.1.0"}
MODEL, PROFILE = "smollm2-135m", "cpu"
NAPO = {**losses.get_spec("napo").hparams, "n_neg": 3}  # what a plain `recbench run` records
GOOD_HR1 = {"sft": [0.40, 0.42], "napo": [0.50, 0.54]}


def run_records(method: str, seed: int, hr1: float) -> list[dict]:
    run = {
        "run_id": f"lastfm-{method}-{seed}",
        "time": f"2026-01-01T00:00:0{seed}+0000",
        "dataset": "lastfm",
        "method": method,
        "family": "loss" if method == "napo" else "llm_baseline",
        "model": MODEL,
        "seed": seed,
        "profile": PROFILE,
        "hparams": NAPO if method == "napo" else {},
        "settings": {},
        "hardware": HARDWARE,
        "versions": VERSIONS,
    }
    generation = {"hr@1": hr1, "valid_ratio": 0.9, "pop_bias": 0.5, "n_examples": 500}
    records = results.make_records(run, generation, split="test", mode="generation")
    records += results.make_records(
        run, {"hr@1": hr1 + 0.05, "n_examples": 500}, split="test", mode="ranking"
    )
    return records


def write_good_store(store: Path) -> bytes:
    """Two SFT and two NAPO runs (default hyper-parameters, seeds 0 and 1); returns the bytes."""
    for method, values in GOOD_HR1.items():
        for seed, value in enumerate(values):
            results.append_records(run_records(method, seed, value), store)
    return store.read_bytes()


DROP = object()  # good_record(field=DROP): a record without that field


def good_record(**changes: object) -> dict:
    record = run_records("napo", 7, 0.9)[0]
    for key, value in changes.items():
        if value is DROP:
            del record[key]
        else:
            record[key] = value
    return record


def line(record: dict) -> bytes:
    return json.dumps(record, sort_keys=True).encode()


# name -> the damaged line (inserted as line 4, or appended without a newline when torn)
DAMAGE = {
    "torn last line": line(good_record())[:57],
    "binary junk": b"\x00\xff\xfe\x89PNG\x1a\x00\x00\x07garbage\xc3\x28",
    "JSON with a non-UTF-8 byte": b'{"run_id": "\xff\xfe", "value": 1}',
    "merge-conflict marker": b"<<<<<<< HEAD",
    "two records glued together": line(good_record())[:40] + line(good_record()),
    "JSON array": b"[1, 2, 3]",
    "JSON string": b'"lastfm napo 0.5"',
    "JSON number": b"42",
    "JSON null": b"null",
    "record without value": line(good_record(value=DROP)),
    "record with a string value": line(good_record(value="0.9")),
    "record with a boolean value": line(good_record(value=True)),
    "record without run_id": line(good_record(run_id=DROP)),
    "record without metric": line(good_record(metric=DROP)),
    "record with hparams not an object": line(good_record(hparams=[1, 2])),
    "record with a seed not an integer": line(good_record(seed="zero")),
}
REASONS = {
    "torn last line": "is not valid JSON",
    "binary junk": "is not UTF-8 text",
    "JSON with a non-UTF-8 byte": "is not UTF-8 text",
    "merge-conflict marker": "is not valid JSON",
    "two records glued together": "is not valid JSON",
    "JSON array": "is JSON an array, not an object",
    "JSON string": "is JSON a string, not an object",
    "JSON number": "is JSON a bare value, not an object",
    "JSON null": "is JSON a bare value, not an object",
    "record without value": "has no 'value'",
    "record with a string value": "has a 'value' that is not a number",
    "record with a boolean value": "has a 'value' that is not a number",
    "record without run_id": "has no 'run_id'",
    "record without metric": "has no 'metric'",
    "record with hparams not an object": "has a 'hparams' that is not an object",
    "record with a seed not an integer": "has a 'seed' that is not an integer",
}


def damage(store: Path, clean: bytes, bad: list[tuple[int, bytes]], torn: bytes = b"") -> None:
    """Insert each ``bad`` line so that it becomes line number N; end with ``torn`` (no \\n)."""
    lines = clean.split(b"\n")[:-1]
    for number, text in sorted(bad):
        lines.insert(number - 1, text)
    store.write_bytes(b"\n".join(lines) + b"\n" + torn)


def place(name: str, n_clean_lines: int) -> tuple[list[tuple[int, bytes]], bytes, int]:
    """Where case ``name`` puts its damage: (inserted lines, torn tail, damaged line number)."""
    if name == "torn last line":
        return [], DAMAGE[name], n_clean_lines + 1
    return [(4, DAMAGE[name])], b"", 4


def stderr_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [text for text in result.stderr.splitlines() if text.strip()]


# ------------------------------------------------------------------------- compare (CLI)
@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A good store, and the tables `recbench compare` makes of it (made once)."""
    base = tmp_path_factory.mktemp("reference")
    store = base / "results.jsonl"
    clean = write_good_store(store)
    out = base / "out"
    env = {"RECBENCH_HOME": str(base / "home")}
    result = run_cli("compare", "--results", str(store), "--out", str(out), "--no-plots", env=env)
    assert result.returncode == 0, result.stderr
    assert stderr_lines(result) == []
    tables = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    assert b"napo" in tables["table2_main.md"] and b"sft" in tables["table2_main.md"]
    return {"store": store, "clean": clean, "out": out, "tables": tables, "env": env}


def compare_damaged(reference, bad, torn=b"") -> tuple[subprocess.CompletedProcess, bytes]:
    store, out = reference["store"], reference["out"]
    damage(store, reference["clean"], bad, torn)
    before = store.read_bytes()
    for path in out.iterdir():
        path.unlink()
    result = run_cli(
        "compare", "--results", str(store), "--out", str(out), "--no-plots", env=reference["env"]
    )
    assert store.read_bytes() == before, "compare must never rewrite the store"
    return result, before


@pytest.mark.parametrize("name", list(DAMAGE))
def test_each_kind_of_damage_is_skipped_for_its_reason(tmp_path, name):
    store = tmp_path / "results.jsonl"
    clean = write_good_store(store)
    n_clean = len(clean.split(b"\n")) - 1
    bad, torn, number = place(name, n_clean)
    damage(store, clean, bad, torn)
    before = store.read_bytes()
    contents = results.read_store(store)
    assert contents.damaged == [(number, REASONS[name])]
    assert contents.records == [json.loads(text) for text in clean.split(b"\n")[:-1]]
    assert contents.warning() == (
        f"warning: {store}: skipped 1 damaged line ({number}): line {number} {REASONS[name]}; "
        f"the other {n_clean} records are used and the file is left as it is"
    )
    assert store.read_bytes() == before


# every kind of damage, in two stores (the warning lists ten line numbers at most), plus blank
# lines, which are not damage
HALVES = [list(DAMAGE)[::2], list(DAMAGE)[1::2]]


@pytest.mark.parametrize("kinds", HALVES, ids=["first-half", "second-half"])
def test_cli_compare_skips_damage_with_one_warning_and_the_same_tables(reference, kinds):
    n_clean = len(reference["clean"].split(b"\n")) - 1
    inside = [name for name in kinds if name != "torn last line"]
    bad = [(2 + 2 * i, DAMAGE[name]) for i, name in enumerate(inside)]  # lines 2, 4, 6, ...
    numbers = [number for number, _ in bad]
    blank = n_clean + len(bad) - 1  # a blank line near the end: not damage, not counted
    bad.append((blank, b"  \t"))
    torn = DAMAGE["torn last line"] if "torn last line" in kinds else b""
    if torn:
        numbers.append(n_clean + len(bad) + 1)
    result, _ = compare_damaged(reference, bad, torn)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = stderr_lines(result)
    assert len(lines) == 1, result.stderr
    assert lines[0] == (
        f"warning: {reference['store']}: skipped {len(numbers)} damaged lines "
        f"({', '.join(map(str, numbers))}): line 2 {REASONS[inside[0]]}; "
        f"the other {n_clean} records are used and the file is left as it is"
    )
    # the tables are those of the good records alone, byte for byte
    out = reference["out"]
    assert {p.name: p.read_bytes() for p in sorted(out.iterdir())} == reference["tables"]


def test_a_store_with_only_damage_says_it_holds_no_readable_record(cli, tmp_path):
    """Not "empty or missing": the file is there and has lines, none of them a record."""
    store = tmp_path / "results.jsonl"
    store.write_bytes(b'\x00\x01junk\n[1]\n{"torn')
    result = cli("compare", "--results", str(store), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = stderr_lines(result)
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith(f"warning: {store}: skipped 3 damaged lines (1, 2, 3)")
    assert lines[1].startswith(f"error: the results store {store} holds no readable record")
    assert store.read_bytes() == b'\x00\x01junk\n[1]\n{"torn'


def test_the_warning_lists_at_most_ten_line_numbers(tmp_path):
    store = tmp_path / "results.jsonl"
    clean = write_good_store(store)
    damage(store, clean, [(n, b"junk") for n in range(2, 28, 2)])  # 13 bad lines
    contents = results.read_store(store)
    assert [n for n, _ in contents.damaged] == list(range(2, 28, 2))
    assert len(contents.records) == len(clean.split(b"\n")) - 1
    assert "skipped 13 damaged lines (2, 4, 6, 8, 10, 12, 14, 16, 18, 20, ...): line 2 is not" in (
        contents.warning()
    )


def test_reading_warns_once_per_process_not_once_per_read(tmp_path, caplog):
    store = tmp_path / "results.jsonl"
    clean = write_good_store(store)
    damage(store, clean, [(4, b"junk")])
    with caplog.at_level(logging.WARNING, logger="recbench.results"):
        for _ in range(3):
            assert len(results.read_records(store)) == len(clean.split(b"\n")) - 1
        assert len(caplog.records) == 1
        # new damage is news: warned again
        store.write_bytes(store.read_bytes() + b"[]\n")
        results.read_records(store)
        assert len(caplog.records) == 2
        assert "(4, " in caplog.records[1].getMessage()


def test_already_recorded_sees_good_runs_past_damage(tmp_path):
    """What `recbench run` asks before training: a damaged line must not hide or fake a run."""
    store = tmp_path / "results.jsonl"
    clean = write_good_store(store)
    damage(store, clean, [(1, b"\xff"), (3, DAMAGE["record without value"])], b'{"run_id": "x')
    ids = {r["run_id"] for r in results.read_records(store)}  # what the runner matches on
    assert "lastfm-napo-1" in ids
    assert "lastfm-napo-7" not in ids  # only in a damaged line
    assert "x" not in ids


# ------------------------------------------------------------------------------- appends
def test_append_after_a_torn_line_keeps_the_new_records_whole(tmp_path):
    store = tmp_path / "results.jsonl"
    clean = write_good_store(store)
    torn = line(good_record())[:80]
    store.write_bytes(clean + torn)
    new = run_records("napo", 2, 0.52)
    results.append_records(new, store)
    data = store.read_bytes()
    assert data.startswith(clean + torn + b"\n")  # nothing before it rewritten, the tear ended
    contents = results.read_store(store)
    n_clean = len(clean.split(b"\n")) - 1
    assert [n for n, _ in contents.damaged] == [n_clean + 1]
    assert contents.records[-len(new) :] == new
    assert len(contents.records) == n_clean + len(new)


def test_append_adds_no_newline_where_none_is_missing(tmp_path):
    store = tmp_path / "results.jsonl"
    first = run_records("sft", 0, 0.4)
    results.append_records(first, store)  # a new file: no leading newline
    payload = b"".join(line(r) + b"\n" for r in first)
    assert store.read_bytes() == payload
    results.append_records(first, store)
    assert store.read_bytes() == payload + payload


KILLED_WRITER = """
import sys
from pathlib import Path
from recbench.results import append_records

store, started = Path(sys.argv[1]), Path(sys.argv[2])
pad = "x" * 50000  # each run is ~250 kB, one write: a kill often lands inside it
for i in range(1_000_000):
    append_records([{"run_id": f"w-{i}", "dataset": "d", "method": "m", "mode": "generation",
                     "metric": f"m{j}", "value": float(j), "pad": pad} for j in range(5)], store)
    if i == 3:
        started.touch()
"""


def test_appends_killed_with_sigkill_leave_at_most_a_torn_last_line(tmp_path):
    store, started = tmp_path / "results.jsonl", tmp_path / "started"
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(store), str(started)], cwd=ROOT
    )
    deadline = time.monotonic() + 60
    while not started.exists() and writer.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert started.exists(), "the writer did not start"
    time.sleep(0.3)
    os.kill(writer.pid, signal.SIGKILL)
    assert writer.wait() == -signal.SIGKILL

    lines = store.read_bytes().split(b"\n")
    complete, tail = lines[:-1], lines[-1]  # tail: b"" or the torn part of the last write
    records = [json.loads(text) for text in complete]  # every complete line parses
    assert all(results.check_record(r) is None for r in records)
    run_ids = [r["run_id"] for r in records]
    finished = sorted({int(rid[2:]) for rid in run_ids})
    assert finished == list(range(len(finished))) and len(finished) > 4
    # every run but possibly the last one the kill interrupted is complete: 5 adjacent records
    for index in finished[:-1]:
        assert run_ids[5 * index : 5 * index + 5] == [f"w-{index}"] * 5
    # the next append ends a torn line first and its records arrive whole
    new = run_records("sft", 0, 0.4)
    results.append_records(new, store)
    contents = results.read_store(store)
    assert [n for n, _ in contents.damaged] == ([len(complete) + 1] if tail else [])
    assert contents.records[: -len(new)] == records
    assert contents.records[-len(new) :] == new


def test_cli_run_appends_whole_records_after_a_torn_line(cli, tmp_path):
    """`recbench run` of a released sequential baseline (seconds) over a damaged store."""
    store = tmp_path / "results.jsonl"
    clean = write_good_store(store)
    damage(store, clean, [(2, b"\x00junk")], b'{"run_id": "torn", "val')
    before = store.read_bytes()
    result = cli("run", "--baseline", "sasrec", "--checkpoint", "released", "--dataset",
                 "lastfm", "--profile", "smoke", "--results", str(store))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    data = store.read_bytes()
    assert data.startswith(before + b"\n")
    contents = results.read_store(store)
    n_clean = len(clean.split(b"\n")) - 1
    assert [n for n, _ in contents.damaged] == [2, n_clean + 2]
    new = contents.records[n_clean:]
    assert new and {r["method"] for r in new} == {"sasrec"}
    hr1 = [r["value"] for r in new if r["mode"] == "ranking" and r["metric"] == "hr@1"]
    assert len(hr1) == 1 and 0.0 <= hr1[0] <= 1.0


@pytest.mark.slow
@pytest.mark.model
def test_cli_llm_run_over_a_damaged_store(model_home, tmp_path):
    """`recbench run` (zero-shot, smoke) over a damaged store: one warning, then a skip."""
    store = tmp_path / "results.jsonl"
    clean = write_good_store(store)
    damage(store, clean, [(3, b"[]")], b'{"torn": ')
    before = store.read_bytes()
    args = ("run", "--baseline", "zero_shot", "--dataset", "lastfm", "--profile", "smoke",
            "--results", str(store))  # fmt: skip
    env = {"RECBENCH_HOME": str(model_home)}
    first = run_cli(*args, env=env)
    assert first.returncode == 0, first.stderr
    warnings = [text for text in first.stderr.splitlines() if text.startswith("warning:")]
    assert len(warnings) == 1 and f"{store}: skipped 2 damaged lines (3, " in warnings[0]
    assert "Traceback" not in first.stderr
    assert store.read_bytes().startswith(before + b"\n")
    second = run_cli(*args, env=env)
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("already recorded: ")
    assert len([t for t in second.stderr.splitlines() if t.startswith("warning:")]) == 1


# ---------------------------------------------------------------------------------- sweep
def test_cli_sweep_dry_run_over_a_damaged_store(cli, tmp_path):
    store = tmp_path / "results.jsonl"
    clean = write_good_store(store)
    damage(store, clean, [(1, b"\xff\xfe"), (6, DAMAGE["JSON array"])], DAMAGE["torn last line"])
    before = store.read_bytes()
    before_names = [p.name for p in tmp_path.iterdir()]
    result = cli("sweep", "--dry-run", "--loss", "napo", "--seed", "0,1,2", "--profile", PROFILE,
                 "--results", str(store))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = stderr_lines(result)
    last = len(clean.split(b"\n")) - 1 + 3
    assert len(lines) == 1 and lines[0].startswith(
        f"warning: {store}: skipped 3 damaged lines (1, 6, {last}): line 1 is not UTF-8 text"
    )
    assert "[1/3] lastfm napo seed=0: done (already in the results store)" in result.stdout
    assert "[2/3] lastfm napo seed=1: done" in result.stdout
    assert "[3/3] lastfm napo seed=2: to run" in result.stdout
    assert "3 points: 2 done, 1 todo, 0 ran, 0 failed" in result.stdout
    assert store.read_bytes() == before
    beside = sorted(p.name for p in tmp_path.iterdir() if p.name != "home")  # home: the cache
    assert beside == sorted(before_names)  # a dry run writes nothing beside the store


def hparams_of(config: RunConfig) -> dict:
    return {**losses.get_spec(config.method).hparams, **config.loss_params,
            "n_neg": config.resolved()["n_neg"]}  # fmt: skip


def store_point(store: Path, config: RunConfig) -> None:
    run = {"run_id": f"sweep-{config.seed}-{config.loss_params}", "dataset": config.dataset,
           "method": config.method, "family": "loss", "model": config.model, "seed": config.seed,
           "profile": config.profile, "hparams": hparams_of(config), "hardware": HARDWARE,
           "versions": VERSIONS}  # fmt: skip
    records = results.make_records(run, {"hr@1": 0.5}, split="test", mode="generation")
    results.append_records(records, store)


@pytest.fixture()
def fake_run(monkeypatch, recbench_home):
    """recbench.runner.execute replaced by a fake that records its configs and stores the point's records."""
    calls: list[RunConfig] = []
    hooks: list = []

    def run(config: RunConfig, progress: bool = True, output=None) -> dict:
        calls.append(config)
        for hook in hooks:
            hook(config)
        store_point(config.results, config)
        return {"run_id": "fake"}

    monkeypatch.setattr(runner, "execute", run)
    return calls, hooks


def sweep_spec(store: Path, seeds=(0, 1, 2)) -> SweepSpec:
    return SweepSpec.grid(losses=("napo",), seeds=tuple(seeds), profile=PROFILE, results=store)


def test_sweep_over_a_damaged_store_runs_the_rest_with_one_warning(tmp_path, fake_run, caplog):
    calls, _ = fake_run
    store = tmp_path / "results.jsonl"
    clean = write_good_store(store)  # seeds 0 and 1 of napo are stored
    damage(store, clean, [(2, b"junk")], b'{"torn')
    before = store.read_bytes()
    with caplog.at_level(logging.WARNING, logger="recbench.results"):
        outcome = run_sweep(sweep_spec(store, seeds=(0, 1, 2, 3)))
    assert [o.status for o in outcome.outcomes] == ["done", "done", "ran", "ran"]
    assert [c.seed for c in calls] == [2, 3]
    assert len(caplog.records) == 1  # the store is read before every point, warned about once
    assert store.read_bytes().startswith(before + b"\n")
    assert len(results.read_store(store).damaged) == 2


def test_a_point_locked_by_another_sweep_is_put_aside_then_found_done(tmp_path, fake_run):
    calls, hooks = fake_run
    store = tmp_path / "results.jsonl"
    spec = sweep_spec(store)
    points = expand(spec)
    other = FileLock(lock_path(store, points[0]), thread_local=False)  # "another sweep"
    lock_path(store, points[0]).parent.mkdir(parents=True, exist_ok=True)
    other.acquire()
    safety = threading.Timer(60, other.release)  # a bug fails the test instead of hanging it
    safety.start()

    def finish_the_other_point(config: RunConfig) -> None:
        if config.seed == 2:  # meanwhile the other sweep finishes its point and lets go
            store_point(store, points[0].config)
            other.release()

    hooks.append(finish_the_other_point)
    lines: list[str] = []
    try:
        outcome = run_sweep(spec, report=lines.append)
    finally:
        safety.cancel()
    assert [c.seed for c in calls] == [1, 2]  # seed 0 was never run here
    assert [(o.status, o.detail) for o in outcome.outcomes] == [
        ("done", "recorded by another sweep meanwhile"), ("ran", ""), ("ran", "")]  # fmt: skip
    assert (
        lines[0]
        == "[1/3] lastfm napo seed=0: another sweep is running it; coming back to it at the end"
    )
    assert lines[-2:] == [
        "[1/3] lastfm napo seed=0: waiting for the other sweep running it",
        "[1/3] lastfm napo seed=0: done (recorded by another sweep meanwhile)",
    ]
    assert all(is_done(p, results.read_records(store)) for p in points)


def test_a_point_the_other_sweep_gave_up_on_is_run_here(tmp_path, fake_run):
    calls, hooks = fake_run
    store = tmp_path / "results.jsonl"
    spec = sweep_spec(store, seeds=(0, 1))
    points = expand(spec)
    lock_path(store, points[0]).parent.mkdir(parents=True, exist_ok=True)
    other = FileLock(lock_path(store, points[0]), thread_local=False)
    other.acquire()
    safety = threading.Timer(60, other.release)
    safety.start()
    hooks.append(lambda config: other.release() if config.seed == 1 else None)  # failed there
    try:
        outcome = run_sweep(spec)
    finally:
        safety.cancel()
    assert [c.seed for c in calls] == [1, 0]
    assert [o.status for o in outcome.outcomes] == ["ran", "ran"]


def test_the_lock_names_the_point_not_the_sweep(tmp_path, recbench_home):
    store = tmp_path / "results.jsonl"
    rho_sweep = expand(SweepSpec.grid(losses=("napo",), params={"rho": [0.7]}, results=store))[0]
    plain = expand(SweepSpec.grid(losses=("napo",), results=store))[0]  # rho 0.7 is the default
    n_neg = expand(SweepSpec.grid(losses=("napo",), n_negs=(3,), results=store))[0]  # the default
    assert lock_path(store, rho_sweep) == lock_path(store, plain) == lock_path(store, n_neg)
    # under $RECBENCH_HOME/locks, never beside the store (committed stores stay clean)
    assert lock_path(store, plain).parent == recbench_home / "locks"
    other_store = expand(SweepSpec.grid(losses=("napo",), results=tmp_path / "other.jsonl"))[0]
    assert lock_path(tmp_path / "other.jsonl", other_store) != lock_path(store, plain)
    others = [
        SweepSpec.grid(losses=("napo",), seeds=(1,), results=store),
        SweepSpec.grid(losses=("napo",), n_negs=(7,), results=store),
        SweepSpec.grid(losses=("napo",), params={"rho": [0.3]}, results=store),
        SweepSpec.grid(losses=("dpo",), results=store),
        SweepSpec.grid(losses=("napo",), profile="smoke", results=store),
        SweepSpec.grid(losses=("napo",), train_examples=100, results=store),
    ]
    paths = {lock_path(store, expand(s)[0]) for s in others}
    assert len(paths) == len(others) and lock_path(store, plain) not in paths


SWEEPER = """
import json, os, sys, time
from pathlib import Path
from recbench import losses
from recbench import api, results, runner
from recbench.sweep import SweepSpec, run_sweep

store, calls, go, ready = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]

def fake_run(config, progress=True, output=None):
    results.append_records([{"pid": os.getpid(), "seed": config.seed}], calls)
    time.sleep(0.4)  # a "run" long enough for the other sweep to reach the same point
    hparams = {**losses.get_spec(config.method).hparams, "n_neg": config.resolved()["n_neg"]}
    run = {"run_id": f"{os.getpid()}-{config.seed}", "dataset": config.dataset,
           "method": config.method, "family": "loss", "model": config.model,
           "seed": config.seed, "profile": config.profile, "hparams": hparams,
           "hardware": {}, "versions": {}}
    results.append_records(
        results.make_records(run, {"hr@1": 0.5}, split="test", mode="generation"), store)
    return {"run_id": run["run_id"]}

runner.execute = fake_run
Path(ready).touch()  # imports done
while not go.exists():
    time.sleep(0.005)
outcome = run_sweep(SweepSpec.grid(losses=("napo",), seeds=tuple(range(6)), profile="cpu",
                              results=store))
print(json.dumps(outcome.to_dict()["counts"]))
"""


def test_two_sweep_processes_never_run_the_same_point(tmp_path, recbench_home):
    store, calls, go = tmp_path / "results.jsonl", tmp_path / "calls.jsonl", tmp_path / "go"
    env = {**os.environ, "RECBENCH_HOME": str(recbench_home)}
    ready = [tmp_path / f"ready-{i}" for i in range(2)]
    sweeps = [
        subprocess.Popen([sys.executable, "-c", SWEEPER, str(store), str(calls), str(go),
                          str(flag)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for flag in ready
    ]  # fmt: skip
    deadline = time.monotonic() + 120
    while not all(f.exists() for f in ready) and time.monotonic() < deadline:
        time.sleep(0.01)  # both interpreters are up and waiting
    go.touch()
    counts = []
    for sweep in sweeps:
        stdout, stderr = sweep.communicate(timeout=120)
        assert sweep.returncode == 0, stderr
        counts.append(json.loads(stdout.strip().splitlines()[-1]))
    ran = [json.loads(text) for text in calls.read_text().splitlines()]
    seeds = sorted(r["seed"] for r in ran)
    assert seeds == list(range(6)), f"a point ran twice or not at all: {ran}"
    assert sum(c["ran"] for c in counts) == 6 and sum(c["done"] for c in counts) == 6
    assert all(c["failed"] == 0 for c in counts)
    assert len({r["pid"] for r in ran}) == 2, "one sweep did everything: the test proves little"
    assert sorted(r["seed"] for r in results.read_records(store)) == list(range(6))


def test_a_dry_run_says_which_points_another_sweep_is_running(tmp_path, fake_run):
    calls, _ = fake_run
    store = tmp_path / "results.jsonl"
    spec = sweep_spec(store, seeds=(0, 1, 2))
    points = expand(spec)
    lock_path(store, points[0]).parent.mkdir(parents=True, exist_ok=True)
    other = FileLock(lock_path(store, points[0]), thread_local=False)  # "another sweep"
    lock_path(store, points[1]).touch()  # a lock file left by a finished sweep, held by no one
    lines: list[str] = []
    with other:
        outcome = run_sweep(spec, dry_run=True, report=lines.append)
    assert calls == []
    assert [o.status for o in outcome.outcomes] == ["todo", "todo", "todo"]
    assert lines[0].startswith("[1/3] lastfm napo seed=0: to run (another sweep is running it now;")
    assert "another sweep" not in lines[1] + lines[2]
    assert not lock_path(store, points[2]).exists()  # the probe creates no lock file
