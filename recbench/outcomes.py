"""Per-example outcomes of an evaluation: what paired statistics are computed from.

A run's metrics are means over its test examples; comparing two methods fairly needs the
example-level outcomes behind them (did both hit the same examples?).  Every evaluation therefore
keeps, per example, its key (``split:index``, the same for every method of a profile), the 1-based
rank of the target among the 20 candidates (ranking mode) and whether the generated answer was
valid and a hit (generation mode).

They are stored as JSON Lines, one example per line in evaluation order, in a folder beside the
results store (``STORE_STEM.outcomes/RUN_ID.jsonl``), so a committed store carries its outcomes and
stays readable in a diff.  Records point to the file by a path relative to the store and its
sha256 (:mod:`recbench.results`), so an edited or swapped outcomes file is detected, not used.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from recbench.metrics import Selection

#: The per-example fields and the evaluation mode each belongs to.
FIELDS = {"rank": "ranking", "valid": "generation", "hit": "generation"}


class Outcomes:
    """Per-example outcomes of one run, keyed by example key, in evaluation order."""

    def __init__(self, rows: Mapping[str, Mapping[str, object]] | None = None) -> None:
        self.rows: dict[str, dict[str, object]] = {k: dict(v) for k, v in (rows or {}).items()}

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def modes(self) -> set[str]:
        """The evaluation modes these outcomes cover."""
        return {FIELDS[name] for row in self.rows.values() for name in row if name in FIELDS}

    def add_ranks(self, keys: Sequence[str], ranks: Iterable[int]) -> Outcomes:
        """Ranking mode: the 1-based rank of each example's target (1 = a hit)."""
        for key, rank in zip(keys, np.asarray(list(ranks)).tolist(), strict=True):
            self.rows.setdefault(key, {})["rank"] = int(rank)
        return self

    def add_selections(self, keys: Sequence[str], selections: Sequence[Selection]) -> Outcomes:
        """Generation mode: whether each judged answer was valid and a hit."""
        for key, selection in zip(keys, selections, strict=True):
            row = self.rows.setdefault(key, {})
            row["valid"], row["hit"] = bool(selection.valid), bool(selection.hit)
        return self

    def hits(self, mode: str) -> dict[str, bool]:
        """Example key -> hit in ``mode`` ("ranking": target ranked first), where recorded."""
        if mode == "ranking":
            return {k: r["rank"] == 1 for k, r in self.rows.items() if "rank" in r}
        if mode == "generation":
            return {k: bool(r["hit"]) for k, r in self.rows.items() if "hit" in r}
        raise ValueError(f"no per-example hits for mode '{mode}'")

    def to_jsonl(self) -> bytes:
        """One line per example, ``{"example": key, ...fields}`` with sorted keys."""
        return "".join(
            json.dumps({"example": key, **row}, sort_keys=True) + "\n"
            for key, row in self.rows.items()
        ).encode()

    @classmethod
    def from_jsonl(cls, data: bytes) -> Outcomes:
        """Parse :meth:`to_jsonl`; raises ``ValueError`` on anything else."""
        rows: dict[str, dict[str, object]] = {}
        for number, line in enumerate(data.decode("utf-8").splitlines(), 1):
            if not line.strip():
                continue
            value = json.loads(line)
            if not isinstance(value, dict) or not isinstance(value.get("example"), str):
                raise ValueError(f"line {number} is not an outcome object with an 'example'")  # noqa: TRY004 - a parse error, not a caller type error
            key = value.pop("example")
            if key in rows:
                raise ValueError(f"line {number} repeats example '{key}'")
            unknown = set(value) - set(FIELDS)
            if unknown:
                raise ValueError(f"line {number} has unknown fields {sorted(unknown)}")
            rows[key] = value
        return cls(rows)


@dataclass(frozen=True)
class ExampleUsers:
    """Which user each example of a split belongs to: what clusters the paired tests.

    Sliding-window data gives one user many test examples (movielens: 8,350 from 94 users), whose
    outcomes move together, so a test that treats examples as independent is optimistic.  The
    row format has no user id; users are recovered as runs of consecutive rows, each continuing
    the one before (:func:`recbench.data.dataset.user_runs`), and a user's examples are
    consecutive, so the map is the example index at which each user starts.  Stored once per
    (dataset, split) beside a store's outcomes, stamped with the split file's sha256.
    """

    dataset: str
    split: str
    split_sha256: str
    examples: int
    starts: tuple[int, ...]  # ascending, starting at 0: the first example of each user

    def user_of(self, key: str) -> int | None:
        """The user (0-based) of example ``split:index``, or None if not one of this split's."""
        split, _, index = key.partition(":")
        if split != self.split or not index.isdigit() or int(index) >= self.examples:
            return None
        return bisect.bisect_right(self.starts, int(index)) - 1

    def to_json(self) -> bytes:
        value = {
            "dataset": self.dataset,
            "split": self.split,
            "split_sha256": self.split_sha256,
            "examples": self.examples,
            "users": len(self.starts),
            "starts": list(self.starts),
            "how": "users are runs of consecutive rows, each continuing the one before; "
            "starts[u] is the index of user u's first example (rows with len_seq >= 3)",
        }
        return (json.dumps(value, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> ExampleUsers:
        """Parse :meth:`to_json`; raises ``ValueError`` on anything inconsistent."""
        try:
            value = json.loads(data.decode("utf-8"))
            users = cls(
                dataset=str(value["dataset"]),
                split=str(value["split"]),
                split_sha256=str(value["split_sha256"]),
                examples=int(value["examples"]),
                starts=tuple(int(s) for s in value["starts"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"not a users map ({exc})") from None
        starts = users.starts
        ordered = all(a < b for a, b in itertools.pairwise(starts))
        if not starts or starts[0] != 0 or not ordered or starts[-1] >= max(users.examples, 1):
            raise ValueError("not a users map (starts must ascend from 0 below 'examples')")
        return users


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
