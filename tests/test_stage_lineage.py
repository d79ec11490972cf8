"""Which id a run trained from a given SFT stage has: one rule for ``--from-this-stage`` and
for a prerequisite's evaluation (``runner._id_from_weights``), and the stage digest a planner
reads from the adapter file, hashed once per file version."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import save_file

from recbench import journal, runner

BASE = "movielens-sdpo-bcefc3995a4a"
HERE = "d36d32a9aaaaaaaa"
OTHER = "b99e0000bbbbbbbb"


def _recorded(*weights: str | None) -> list:
    """Records of the run, one per weights digest (None: recorded before digests)."""
    return [SimpleNamespace(run_settings=SimpleNamespace(sft_weights=w)) for w in weights]


@pytest.mark.parametrize(
    ("held", "expected"),
    [
        ((), BASE),  # not recorded: the usual run
        ((HERE,), BASE),  # recorded from this very stage
        ((OTHER, HERE), BASE),  # recorded from this stage, and from another beside it
        ((OTHER,), f"{BASE}-wd36d32a9"),  # only from another training of the stage
        ((None,), f"{BASE}-wd36d32a9"),  # only by a record that names no stage
    ],
)
def test_the_run_from_a_stage_keeps_its_id_unless_the_store_has_it_only_from_others(held, expected):
    run = SimpleNamespace(run_id=BASE)
    assert runner._id_from_weights(_recorded(*held), run, HERE) == expected


def _save(path: Path, rows: int) -> None:
    save_file({"lora.weight": torch.arange(rows * 4, dtype=torch.float32).reshape(rows, 4)},
              str(path))  # fmt: skip


def test_a_stage_digest_is_hashed_once_per_file_version(tmp_path, monkeypatch):
    adapter = tmp_path / "adapter.safetensors"
    _save(adapter, 3)
    loads = []
    original = journal._file_digest.__wrapped__

    def counted(*args):
        loads.append(args)
        return original(*args)

    monkeypatch.setattr(journal, "_file_digest", journal.functools.lru_cache(counted))
    first = journal.saved_weights_digest(adapter)
    assert journal.saved_weights_digest(adapter) == first
    assert len(loads) == 1  # the second plan of the same stage reads no file

    _save(adapter, 5)  # the stage trained again in place: another file version
    stat = adapter.stat()
    os.utime(adapter, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    second = journal.saved_weights_digest(adapter)
    assert len(loads) == 2 and second != first
