"""Training splits fetched for a built-in dataset, and how that dataset then uses them.

recbench ships steam with a 1,000-row sample of its training split: the full split is not
redistributable here.  ``recbench data fetch steam`` (:mod:`recbench.data.steam_full`) puts the
full split under ``$RECBENCH_HOME/fetched/steam``: ``train.jsonl`` beside ``split.json``, which
records the file's sha256 and where it came from.  When that record exists, the built-in dataset
reads its training split from there (:func:`apply`); val and test stay the shipped files.

The record's sha256 replaces the sample's in the dataset's spec, so every load checks the
fetched file like a shipped one, and :func:`recbench.identity.data_digest` (which hashes the
spec's sha256s) gives runs on the full split other ids than runs on the sample.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from recbench import paths
from recbench.data.dataset import DatasetSpec, SplitSpec
from recbench.errors import DataError, UserError

#: Built-in datasets whose full training split ``recbench data fetch`` can install.
FETCHABLE = ("steam",)
RECORD = "split.json"
#: The shipped notes that say the training split is a sample; dropped once the full one is used.
SAMPLE_NOTE_PREFIX = "TRAINING SPLIT IS A"


@dataclass(frozen=True)
class FetchedSplit:
    """What ``split.json`` records about one fetched split file (relative to its directory)."""

    split: str
    file: str
    sha256: str
    rows: int
    layout: str
    note: str
    source: str

    @classmethod
    def from_json(cls, data: dict) -> FetchedSplit:
        return cls(**data)

    def to_json(self) -> dict:
        return asdict(self)


def root() -> Path:
    """``$RECBENCH_HOME/fetched``, created on demand (where fetches are written)."""
    return paths.subdir("fetched")


def directory(name: str) -> Path | None:
    """Where ``name``'s fetched split lives, without creating anything; ``None`` where the cache
    cannot be used at all.  A cache that cannot be used cannot have received a fetch in its
    present state, and reading a shipped dataset must not start to depend on it."""
    try:
        return paths.home() / "fetched" / name
    except UserError:
        return None


def record_path(name: str) -> Path | None:
    """The existing ``split.json`` of ``name``'s fetched split, else ``None``."""
    if name not in FETCHABLE:
        return None
    folder = directory(name)
    if folder is None or not (folder / RECORD).is_file():
        return None
    return folder / RECORD


def read_record(path: Path) -> FetchedSplit:
    """The record at ``path``; a damaged one is one line that says how to repair it."""
    try:
        return FetchedSplit.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError) as exc:
        raise DataError(
            f"{path}: unreadable record of a fetched split ({type(exc).__name__}); run "
            f"`recbench data fetch {path.parent.name}` again, or delete {path.parent} to use "
            "the shipped split"
        ) from None


def write_record(record: FetchedSplit, folder: Path) -> None:
    (folder / RECORD).write_text(json.dumps(record.to_json(), indent=1) + "\n", encoding="utf-8")


def apply(spec: DatasetSpec, record: FetchedSplit, folder: Path) -> DatasetSpec:
    """``spec`` with ``record``'s split in place of the shipped one.

    The split's file is given as an absolute path (``Dataset`` joins it to the built-in
    directory, which leaves an absolute path as it is), and its sha256 is the record's, so the
    file is checked on every load like a shipped one.
    """
    split = SplitSpec(
        file=str(folder / record.file),
        sha256=record.sha256,
        layout=record.layout,
        note=record.note,
    )
    notes = [n for n in spec.notes if not n.startswith(SAMPLE_NOTE_PREFIX)]
    headline = f"{record.split.upper()} SPLIT IS THE FULL ONE ({record.rows:,} rows), fetched"
    return replace(
        spec,
        splits={**spec.splits, record.split: split},
        notes=[f"{headline}: {record.source}", *notes],
        source=f"{spec.source}; {record.split}: {record.source}",
    )
