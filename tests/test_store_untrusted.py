"""A results store is untrusted input: it is committed and shared, so a record may lie.

An outcomes reference is followed only to a regular file inside the store's own outcomes folder
(never ``../``, an absolute path, a link out, a FIFO or an oversized file); a metric value
outside its domain (an HR@1 of 41.4, a negative time, NaN) is skipped like a damaged line;
"latest" compares instants, not local-time text; and ``compare`` on a folder says so.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import ROOT

from recbench import records, results
from recbench.errors import UserError
from recbench.outcomes import Outcomes, sha256
from recbench.reports import compare
from recbench.reports.paired import OutcomeReader
from recbench.reports.runs import Filters, load_runs

HARDWARE = {"machine": "x86_64", "cpu": "x86_64", "cpu_count": 2, "system": "Linux"}
VERSIONS = {"python": "3.11", "recbench": "0.1.0"}
OUTCOMES = Outcomes().add_ranks(["test:0", "test:1"], [1, 3])


def _run(run_id: str, method: str, seed: int, hr1: float, when: str) -> list[dict]:
    run = {
        "run_id": run_id,
        "time": when,
        "dataset": "lastfm",
        "method": method,
        "family": "llm_baseline",
        "model": "smollm2-135m",
        "seed": seed,
        "profile": "cpu",
        "hparams": {},
        "settings": {},
        "hardware": HARDWARE,
        "versions": VERSIONS,
    }
    generation = {"hr@1": hr1, "valid_ratio": 0.9, "pop_bias": -0.5, "n_examples": 500}
    records = results.make_records(run, generation, split="test", mode="generation")
    ranking = {"hr@1": hr1, "n_examples": 500}
    return records + results.make_records(run, ranking, split="test", mode="ranking")


def _store_with_outcomes(tmp_path: Path) -> tuple[Path, dict]:
    """A store with one run and its outcomes; returns the store and its ranking record."""
    store = tmp_path / "store" / "s.jsonl"
    results.append_records(_run("r1", "sft", 0, 0.5, "2026-01-01T00:00:00+00:00"), store, OUTCOMES)
    record = next(r for r in results.read_records(store) if r["mode"] == "ranking")
    return store, record


def _pointing_to(record: dict, file: str | Path) -> dict:
    """``record`` with its outcomes reference pointing to ``file`` (the sha256 kept)."""
    return {**record, "outcomes": {**record["outcomes"], "file": str(file)}}


def _finishes(call: Callable[[], object], seconds: float = 20.0) -> object:
    """Run ``call`` in a thread: a read that blocks (a FIFO) fails the test, not hangs it."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = call()
        except Exception as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the read blocked"
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("value")


# ---------------------------------------------------------------------------- outcomes paths
@pytest.mark.parametrize("how", ["dot-dot", "absolute", "link out"])
def test_outcomes_outside_the_outcomes_folder_are_never_read(tmp_path, how):
    """A genuine outcomes file with the record's very sha256, but outside the folder: refused."""
    store, record = _store_with_outcomes(tmp_path)
    outside = tmp_path / "elsewhere.jsonl"
    outside.write_bytes(OUTCOMES.to_jsonl())  # readable and matching: only the place is wrong
    file = {
        "dot-dot": "s.outcomes/../../elsewhere.jsonl",
        "absolute": outside,
        "link out": "s.outcomes/link.jsonl",
    }[how]
    (store.parent / "s.outcomes" / "link.jsonl").symlink_to(outside)
    with pytest.raises(ValueError, match=r"outcomes of run r1 are outside the store's outcomes"):
        results.read_outcomes(_pointing_to(record, file), store)


def test_a_link_to_a_device_is_refused_without_reading_it(tmp_path):
    store, record = _store_with_outcomes(tmp_path)
    (store.parent / "s.outcomes" / "zero.jsonl").symlink_to("/dev/null")
    with pytest.raises(ValueError, match="are outside the store's outcomes folder"):
        results.read_outcomes(_pointing_to(record, "s.outcomes/zero.jsonl"), store)


def test_a_fifo_in_the_outcomes_folder_is_refused_not_waited_on(tmp_path):
    store, record = _store_with_outcomes(tmp_path)
    os.mkfifo(store.parent / "s.outcomes" / "pipe.jsonl")
    pointing = _pointing_to(record, "s.outcomes/pipe.jsonl")
    with pytest.raises(ValueError, match="run r1 are not a regular file"):
        _finishes(lambda: results.read_outcomes(pointing, store))


def test_an_outcomes_file_over_the_size_bound_is_refused(tmp_path, monkeypatch):
    store, record = _store_with_outcomes(tmp_path)
    size = (store.parent / record["outcomes"]["file"]).stat().st_size
    monkeypatch.setattr(results, "MAX_OUTCOMES_BYTES", size - 1)
    with pytest.raises(ValueError, match="run r1 are larger than"):
        results.read_outcomes(record, store)
    monkeypatch.setattr(results, "MAX_OUTCOMES_BYTES", size)  # exactly the bound: read
    assert len(results.read_outcomes(record, store)) == 2


def test_compare_skips_an_unsafe_outcomes_file_with_a_warning_naming_the_run(tmp_path, caplog):
    store, record = _store_with_outcomes(tmp_path)
    os.mkfifo(store.parent / "s.outcomes" / "pipe.jsonl")
    reader = OutcomeReader(store)
    with caplog.at_level(logging.WARNING):
        found = _finishes(lambda: reader.read("r1", {**record["outcomes"], "file": "/dev/null"}))
        piped = _finishes(
            lambda: reader.read("r1", {**record["outcomes"], "file": "s.outcomes/pipe.jsonl"})
        )
    assert found is None and piped is None
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2 and all("run r1" in w for w in warnings), warnings
    assert "outside the store's outcomes folder" in warnings[0]
    assert "not a regular file" in warnings[1]
    assert len(reader.read("r1", record["outcomes"])) == 2  # the run's real file still reads


def test_a_users_map_that_is_a_fifo_is_refused_not_waited_on(tmp_path):
    store, _ = _store_with_outcomes(tmp_path)
    os.mkfifo(results.users_path(store, "lastfm", "test"))
    with pytest.raises(ValueError, match="not a regular file"):
        _finishes(lambda: results.read_example_users(store, "lastfm", "test"))


# ------------------------------------------------------------------------------ value domains
def _line(record: dict) -> bytes:
    return json.dumps(record, sort_keys=True).encode() + b"\n"


OUT_OF_DOMAIN = {
    "hr@1 of 41.4": ("generation", "hr@1", 41.4, "outside [0, 1]"),
    "hr@1 of -0.25": ("ranking", "hr@1", -0.25, "outside [0, 1]"),
    "ndcg@10 above 1": ("ranking", "ndcg@10", 1.5, "outside [0, 1]"),
    "valid_ratio of inf": ("generation", "valid_ratio", math.inf, "not a finite number"),
    "hr@1 of nan": ("generation", "hr@1", math.nan, "not a finite number"),
    "pop_bias of -inf": ("generation", "pop_bias", -math.inf, "not a finite number"),
    "negative n_examples": ("ranking", "n_examples", -3.0, "below 0"),
    "negative seconds": ("cost", "sft_seconds", -1.0, "below 0"),
    "negative memory": ("cost", "peak_memory_mb", -5.0, "below 0"),
    "an integer too large for a float": ("cost", "sft_seconds", 10**400, "not a finite number"),
}


@pytest.mark.parametrize("name", OUT_OF_DOMAIN)
def test_a_value_outside_its_domain_is_skipped_like_a_damaged_line(tmp_path, name):
    mode, metric, value, reason = OUT_OF_DOMAIN[name]
    store = tmp_path / "s.jsonl"
    good = _run("r1", "sft", 0, 0.5, "2026-01-01T00:00:00+00:00")
    bad = {**good[0], "run_id": "bad", "mode": mode, "metric": metric, "value": value}
    store.write_bytes(b"".join(_line(r) for r in good[:2]) + _line(bad))
    contents = results.read_store(store)
    assert [n for n, _ in contents.damaged] == [3]
    assert f"'{metric}'" in contents.damaged[0][1] and reason in contents.damaged[0][1]
    assert "skipped 1 damaged line (3)" in contents.warning()
    assert [r["run_id"] for r in contents.records] == ["r1", "r1"]


def test_values_at_the_edges_of_their_domains_are_kept(tmp_path):
    store = tmp_path / "s.jsonl"
    run = _run("r1", "sft", 0, 1.0, "2026-01-01T00:00:00+00:00")[0]
    edges = [("hr@1", 0.0), ("hr@5", 1.0), ("pop_bias", -1.78), ("n_examples", 0.0)]
    store.write_bytes(b"".join(_line({**run, "metric": m, "value": v}) for m, v in edges))
    contents = results.read_store(store)
    assert contents.damaged == [] and len(contents.records) == len(edges)


def test_compare_skips_an_hr1_of_41_and_reports_the_rest(tmp_path, caplog):
    """Before, ``compare`` crashed with a math domain error on such a value."""
    store = tmp_path / "s.jsonl"
    for seed, hr1 in enumerate([0.40, 0.42]):
        results.append_records(_run(f"sft-{seed}", "sft", seed, hr1, "2026-01-01T00:00:00+00:00"),
                               store)  # fmt: skip
    bad = _run("sft-2", "sft", 2, 0.5, "2026-01-01T00:00:00+00:00")[0]
    with store.open("ab") as handle:
        handle.write(_line({**bad, "value": 41.4}))
    with caplog.at_level(logging.WARNING):
        report = compare(store, tmp_path / "out", formats=["md"], plots_enabled=False)
    assert report.directories
    assert any("outside [0, 1]" in r.getMessage() for r in caplog.records)
    runs = load_runs(store, Filters())
    assert set(runs["run_id"]) == {"sft-0", "sft-1"}  # the run of the bad value only had it


def test_every_committed_store_reads_without_a_skipped_line():
    stores = sorted((ROOT / "reports" / "results").glob("*.jsonl"))
    assert len(stores) >= 6
    for store in stores:
        contents = results.read_store(store)
        assert contents.damaged == [], (store.name, contents.damaged[:3])
        assert len(contents.records) > 0


# ------------------------------------------------------------------------------------ times
def test_records_carry_the_utc_instant_with_its_offset():
    record = results.make_records({"run_id": "r"}, {"hr@1": 0.5})[0]
    assert record["time"].endswith("+00:00"), record["time"]
    assert records.instant(record["time"]) == pytest.approx(time.time(), abs=5.0)


def test_times_are_read_as_instants_old_formats_included():
    utc = records.instant("2026-12-05T06:51:57+00:00")
    assert records.instant("2026-12-05T06:51:57+0000") == pytest.approx(utc, abs=1e-6)
    assert records.instant("2026-12-05T07:51:57+01:00") == pytest.approx(utc, abs=1e-6)
    assert records.instant("2026-12-05T06:51:57") == pytest.approx(utc, abs=1e-6)  # naive: UTC
    assert records.instant("not a time") == -math.inf and records.instant(None) == -math.inf


def test_the_latest_run_is_the_later_instant_not_the_larger_text(tmp_path):
    """The rerun was recorded at 11:30 UTC from a machine at UTC-2 ("09:30-02:00"), after the
    first run at 10:00 UTC; as text it sorts first, so it used to lose."""
    store = tmp_path / "s.jsonl"
    results.append_records(_run("first", "sft", 0, 0.40, "2026-03-01T10:00:00+00:00"), store)
    results.append_records(_run("rerun", "sft", 0, 0.44, "2026-03-01T09:30:00-02:00"), store)
    runs = load_runs(store, Filters())
    assert list(runs["run_id"]) == ["rerun"]
    assert runs["generation:hr@1"].iloc[0] == pytest.approx(0.44, abs=1e-12)


# ------------------------------------------------------------------------- compare --results
def test_compare_on_a_directory_says_it_is_a_directory(tmp_path):
    with pytest.raises(UserError, match=r"is a directory; give a results store \(a \.jsonl file\)"):
        compare(tmp_path, tmp_path / "out")


def test_compare_on_a_device_says_it_is_not_a_regular_file(tmp_path):
    with pytest.raises(UserError, match="/dev/null is not a regular file"):
        compare(Path("/dev/null"), tmp_path / "out")


def test_the_outcomes_sha256_still_guards_the_file_inside_the_folder(tmp_path):
    store, record = _store_with_outcomes(tmp_path)
    other = store.parent / "s.outcomes" / "other.jsonl"
    other.write_bytes(OUTCOMES.to_jsonl() + b'{"example": "test:2", "rank": 1}\n')
    assert sha256(other.read_bytes()) != record["outcomes"]["sha256"]
    with pytest.raises(ValueError, match="do not match the sha256"):
        results.read_outcomes(_pointing_to(record, "s.outcomes/other.jsonl"), store)


def test_a_nan_popularity_bias_is_what_recbench_writes_and_is_kept():
    """A run without one valid generated answer has no popularity bias: recbench records NaN,
    which every reader takes as missing; the domain check must not drop it as damage."""
    assert results.value_problem("generation", "pop_bias", math.nan) is None
    assert results.value_problem("generation", "pop_bias", math.inf) is not None
    assert results.value_problem("cost", "eval_ranking_seconds", math.nan) is not None
