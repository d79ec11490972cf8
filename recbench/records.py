"""The record type of the results store: what a run writes and what every reader reads.

A store holds one JSON object per (run, metric).  :class:`Record` is that object typed: its
fields, a typed view of its settings (:class:`RunSettings`) and its version.  Records are
written by :func:`recbench.results.run_records` and read by :func:`recbench.results.
read_records`, which checks each line and returns :class:`Record`\\ s; the runner's "already
recorded?", the sweep, the reports, the paired tests and the cost tables read them.

Versions:

* 1 (no ``settings.record_version``): everything recbench wrote before run ids covered the data.
  Baselines and LLM runs stated their settings in two shapes; readers take what is there.
* 2: run ids digest the method, settings, model, seed, plugin and data content; every method's
  settings have one shape (the resolved profile, ``config``, ``identity``, ``data``,
  ``dataset_files``, ``eval_seed``, then the method's own facts).

A record of a newer version than :data:`RECORD_VERSION` is refused with one line: its fields
could mean something this recbench does not know.

A :class:`Record` is also a read-only mapping of its JSON fields (``record["metric"]``,
``record.get("seed")``), so code that reads the JSON shape reads records unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

RECORD_VERSION = 2

#: The fields of a record, in the order they are written.
RECORD_FIELDS = (
    "run_id", "time", "dataset", "method", "family", "model", "seed", "profile", "split",
    "mode", "metric", "value", "hparams", "settings", "hardware", "versions", "outcomes",
)  # fmt: skip


def instant(value: object) -> float:
    """Seconds since the epoch of a record's ``time``: what "latest" is decided by.

    A time with an offset (``+00:00``, or ``+0000`` as stores written before instants were
    recorded hold) is that instant.  A naive time is read as UTC, which orders naive times among
    themselves as their text did before instants were compared.  A missing or unreadable time
    is the earliest (-inf): a run whose time cannot be read is never taken for the latest.
    """
    if not isinstance(value, str):
        return -math.inf
    try:
        moment = datetime.fromisoformat(value.strip())
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    except (ValueError, OverflowError):
        return -math.inf


def record_version(value: Mapping[str, Any]) -> int:
    """The version a record (or its JSON) was written with (1: before versions existed)."""
    settings = value.get("settings")
    version = settings.get("record_version", 1) if isinstance(settings, Mapping) else 1
    return version if isinstance(version, int) and not isinstance(version, bool) else 1


@dataclass(frozen=True)
class RunSettings:
    """A run's settings, typed where readers rely on them; ``raw`` keeps every field."""

    raw: Mapping[str, Any] = field(default_factory=dict)

    def _get(self, name: str, kind: type | tuple[type, ...]) -> Any:
        value = self.raw.get(name)
        return value if isinstance(value, kind) else None

    @property
    def eval_split(self) -> str | None:
        return self._get("eval_split", str)

    @property
    def eval_rows(self) -> str | None:
        return self._get("eval_rows", str)

    @property
    def eval_examples(self) -> int | None:
        return self._get("eval_examples", int)

    @property
    def dataset_files(self) -> dict[str, str]:
        """The sha256 of each split file the run trained or was scored on ({} when unknown)."""
        files = self._get("dataset_files", Mapping) or {}
        return {str(k): str(v) for k, v in files.items() if isinstance(v, str)}

    @property
    def sft_weights(self) -> str | None:
        """The digest of the SFT stage the run's model started from (LLM runs)."""
        return self._get("sft_weights", str)

    @property
    def identity(self) -> str | None:
        """The digest of the run's identity (version 2)."""
        return self._get("identity", str)

    @property
    def config(self) -> Mapping[str, Any]:
        return self._get("config", Mapping) or {}


@dataclass(frozen=True, eq=False)
class Record(Mapping[str, Any]):
    """One (run, metric) record of the store; equal to another record, or to a JSON object,
    with the same fields."""

    run_id: str
    dataset: str
    method: str
    mode: str
    metric: str
    value: float
    time: str | None = None
    family: str | None = None
    model: str | None = None
    seed: int | None = None
    profile: str | None = None
    split: str | None = None
    hparams: Mapping[str, Any] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    hardware: Mapping[str, Any] = field(default_factory=dict)
    versions: Mapping[str, Any] = field(default_factory=dict)
    outcomes: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)  # unknown fields, kept
    present: tuple[str, ...] = field(default=RECORD_FIELDS, repr=False)  # fields the JSON had

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Record:
        """The record of a checked JSON object (see :func:`recbench.results.check_record`)."""
        known = {name: value[name] for name in RECORD_FIELDS if value.get(name) is not None}
        extra = {k: v for k, v in value.items() if k not in RECORD_FIELDS}
        present = tuple(name for name in RECORD_FIELDS if name in value)
        return cls(**known, extra=extra, present=present)

    def to_json(self) -> dict[str, Any]:
        """The JSON object, as it was read: its fields of :data:`RECORD_FIELDS`, then the rest."""
        out = {name: getattr(self, name) for name in self.present}
        for name in ("hparams", "settings", "hardware", "versions"):
            if name in out:
                out[name] = dict(out[name])
        return {**out, **self.extra}

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self.to_json() == dict(other.to_json() if isinstance(other, Record) else other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable views inside: not hashable

    # ------------------------------------------------------------------------ typed views
    @property
    def version(self) -> int:
        return record_version(self.to_json())

    @property
    def run_settings(self) -> RunSettings:
        return RunSettings(self.settings)

    @property
    def instant(self) -> float:
        """When it was recorded, in seconds since the epoch (see :func:`instant`)."""
        return instant(self.time)

    # ------------------------------------------------------- a read-only view of the JSON
    def __getitem__(self, key: str) -> Any:
        if key in self.present:
            return getattr(self, key)
        return self.extra[key]

    def __iter__(self) -> Iterator[str]:
        yield from self.present
        yield from self.extra

    def __len__(self) -> int:
        return len(self.present) + len(self.extra)
