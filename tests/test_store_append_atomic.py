"""An append records all of a run or nothing of it, and a store path that cannot hold a store is
refused before any work.

A disk that fills up mid-append used to leave 6-8 of a run's 11 records as valid lines, and a
sweep then counted the point as done.  The disk is simulated full here by making the store's
``write`` (after writing part of the payload) or ``fsync`` fail with ``ENOSPC``.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from recbench import results
from recbench.errors import UserError
from recbench.outcomes import Outcomes

OUTCOMES = Outcomes().add_ranks(["test:0", "test:1", "test:2"], [1, 4, 2])


def _records(run_id: str) -> list[dict]:
    """Eleven records, as a run writes: generation, ranking and cost."""
    run = {"run_id": run_id, "dataset": "lastfm", "method": "sft", "family": "llm_baseline",
           "seed": 0, "hardware": {"cpu": "x"}, "versions": {"python": "3.11"}}  # fmt: skip
    generation = {"hr@1": 0.4, "valid_ratio": 0.9, "pop_bias": 0.1, "n_examples": 3.0}
    ranking = {"hr@1": 0.33, "hr@5": 1.0, "ndcg@5": 0.7, "n_examples": 3.0}
    cost = {"sft_seconds": 12.0, "eval_ranking_seconds": 1.0, "peak_memory_mb": 900.0}
    return (
        results.make_records(run, generation, split="test", mode="generation")
        + results.make_records(run, ranking, split="test", mode="ranking")
        + results.make_records(run, cost, split="train", mode="cost")
    )


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return False


def _disk_full_at(monkeypatch, store: Path, where: str) -> None:
    """Make the store's append fail with ENOSPC: mid-``write`` (after part of the payload was
    written) or at the ``fsync``.  Other files' writes are left alone."""
    real_write, real_fsync = os.write, os.fsync
    calls = {"write": 0}

    def write(fd: int, data) -> int:
        if not _same_file(fd, store):
            return real_write(fd, data)
        calls["write"] += 1
        if calls["write"] == 1:
            return real_write(fd, bytes(data[: len(data) // 2]))  # a short write: part of it
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def fsync(fd: int) -> None:
        if _same_file(fd, store):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    if where == "write":
        monkeypatch.setattr(os, "write", write)
    else:
        monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.parametrize("torn", [False, True], ids=["whole store", "torn last line"])
@pytest.mark.parametrize("where", ["write", "fsync"])
def test_a_full_disk_at_the_append_records_nothing_of_the_run(tmp_path, monkeypatch, where, torn):
    store = tmp_path / "s.jsonl"
    results.append_records(_records("before"), store, OUTCOMES)
    if torn:  # a writer killed mid-line: the append first ends that line
        with store.open("ab") as handle:
            handle.write(b'{"run_id": "kil')
    before = store.read_bytes()
    _disk_full_at(monkeypatch, store, where)
    with pytest.raises(UserError, match=r"run new .*No space left on device.*nothing of it"):
        results.append_records(_records("new"), store, OUTCOMES)
    monkeypatch.undo()
    assert store.read_bytes() == before
    assert {r["run_id"] for r in results.read_records(store)} == {"before"}
    folder = tmp_path / "s.outcomes"
    assert sorted(p.name for p in folder.iterdir()) == ["before.jsonl"]  # no file, no .partial
    # the disk has room again: the rerun records all eleven, once
    results.append_records(_records("new"), store, OUTCOMES)
    new = [r for r in results.read_records(store) if r["run_id"] == "new"]
    ranking = next(r for r in new if r["mode"] == "ranking")
    assert len(new) == 11 and len(results.read_outcomes(ranking, store)) == 3


def test_a_full_disk_while_writing_the_outcomes_records_nothing(tmp_path, monkeypatch):
    store = tmp_path / "s.jsonl"
    results.append_records(_records("before"), store)
    before = store.read_bytes()
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".partial"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(UserError, match=r"run new .*nothing of it was recorded"):
        results.append_records(_records("new"), store, OUTCOMES)
    monkeypatch.undo()
    assert store.read_bytes() == before
    assert list((tmp_path / "s.outcomes").iterdir()) == []


def test_outcomes_that_were_there_already_are_kept_when_the_append_fails(tmp_path, monkeypatch):
    """Identical outcomes already on disk may be named by records: a failed append keeps them."""
    store = tmp_path / "s.jsonl"
    results.append_records(_records("r"), store, OUTCOMES)
    _disk_full_at(monkeypatch, store, "fsync")
    with pytest.raises(UserError, match="nothing of it was recorded"):
        results.append_records(_records("r"), store, OUTCOMES)
    monkeypatch.undo()
    record = next(r for r in results.read_records(store) if r["mode"] == "ranking")
    assert len(results.read_outcomes(record, store)) == 3


# ------------------------------------------------------------------------------ store paths
def test_a_device_is_refused_as_a_store_before_anything_is_written(tmp_path):
    with pytest.raises(UserError, match="--results /dev/null is not a regular file"):
        results.check_store_path(Path("/dev/null"))
    with pytest.raises(UserError, match="is not a regular file"):
        results.append_records(_records("r"), Path("/dev/null"))


def test_a_fifo_is_refused_as_a_store(tmp_path):
    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match="is not a regular file"):
        results.append_records(_records("r"), fifo)
    assert results.read_records(fifo) == []  # reading it neither blocks nor fails


def test_a_default_store_whose_results_folder_is_a_file_is_refused(recbench_home):
    recbench_home.mkdir(parents=True)
    (recbench_home / "results").write_text("a file, not a folder\n")
    with pytest.raises(UserError, match=r"the results store .* is a file, not a folder"):
        results.check_store_path()
    with pytest.raises(UserError, match="is a file, not a folder"):
        results.append_records(_records("r"))


def test_a_store_whose_outcomes_folder_is_a_file_is_refused_before_writing(tmp_path):
    store = tmp_path / "s.jsonl"
    results.append_records(_records("before"), store)
    before = store.read_bytes()
    (tmp_path / "s.outcomes").write_text("not a folder\n")
    with pytest.raises(UserError, match=r"cannot keep its outcomes: .*s\.outcomes is not a folder"):
        results.check_store_path(store)
    with pytest.raises(UserError, match="cannot keep its outcomes"):
        results.append_records(_records("new"), store, OUTCOMES)
    assert store.read_bytes() == before


def test_a_directory_is_refused_as_a_store(tmp_path):
    with pytest.raises(UserError, match=r"is a directory; give a results store \(a \.jsonl"):
        results.check_store_path(tmp_path)


def test_good_store_paths_pass_the_check(tmp_path):
    results.check_store_path(tmp_path / "new" / "deeper" / "s.jsonl")  # created by the append
    store = tmp_path / "s.jsonl"
    results.append_records(_records("r"), store, OUTCOMES)
    results.check_store_path(store)
    results.check_store_path(store, writing=False)
    assert len(results.read_records(store)) == 11
