"""Datasets: their description file, lazy checked loading, examples, popularity and statistics.

Each dataset is a directory holding ``dataset.json`` (name, domain, item count, the split files
with their sha256, provenance) beside the split files and the ``id::name`` file.  Built-in
datasets ship inside the package; imported ones live under ``$RECBENCH_HOME/datasets``.
Files are checked against the recorded sha256 when first read, so a corrupted or edited file can
never silently change a benchmark number.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from recbench.data import item_scores
from recbench.data.candidates import build_candidates
from recbench.data.rows import (
    MIN_LEN_SEQ,
    STATE_SIZE,
    SplitRows,
    read_item_names,
    read_rows,
    sha256_of,
)
from recbench.errors import DataError, UnknownNameError
from recbench.outcomes import ExampleUsers
from recbench.registry import did_you_mean

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitSpec:
    file: str
    sha256: str
    # "sliding": every prefix of every user's sequence is a row (a user's chain starts with an
    # all-padding row); "last_row": one row per user; "sample": a subset of an unknown split.
    layout: str = "sliding"
    note: str = ""


@dataclass(frozen=True)
class ItemScoresSpec:
    """The file RecDPO's and RecPO's per-item scores are computed from (:mod:`recbench.data.
    item_scores`): each training user's kept items with their ratings."""

    file: str
    sha256: str
    note: str = ""


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    domain: str
    num_items: int
    item_names: str
    item_names_sha256: str
    splits: dict[str, SplitSpec]
    description: str = ""
    source: str = ""
    notes: list[str] = field(default_factory=list)
    # only datasets whose ratings are known (movielens); absent from the JSON of all others, so
    # their description files read and write as before
    item_scores: ItemScoresSpec | None = None

    @classmethod
    def from_json(cls, data: dict) -> DatasetSpec:
        splits = {name: SplitSpec(**spec) for name, spec in data["splits"].items()}
        scores = data.get("item_scores")
        scores = ItemScoresSpec(**scores) if scores is not None else None
        return cls(**{**data, "splits": splits, "item_scores": scores})

    def to_json(self) -> dict:
        data = dict(self.__dict__)
        data["splits"] = {name: dict(spec.__dict__) for name, spec in self.splits.items()}
        if self.item_scores is None:
            del data["item_scores"]
        else:
            data["item_scores"] = dict(self.item_scores.__dict__)
        return data


@dataclass(frozen=True)
class Example:
    """One recommendation task: a user's history, the target and the 20 shared candidates."""

    split: str
    index: int  # position among the split's kept rows (len_seq >= 3)
    row: int  # position in the unfiltered split file
    seq: tuple[int, ...]  # padded to 10, as the sequential models consume it
    len_seq: int
    history: tuple[int, ...]  # unpadded, oldest first
    target: int
    candidates: tuple[int, ...]

    @property
    def key(self) -> str:
        return f"{self.split}:{self.index}"

    @property
    def target_position(self) -> int:
        return self.candidates.index(self.target)


class Examples(Sequence[Example]):
    """The examples of one split, built on first access (candidate sampling costs ~60 us each)."""

    def __init__(self, dataset: Dataset, split: str, rows: SplitRows, kept: np.ndarray) -> None:
        self._dataset = dataset
        self._split = split
        self._rows = rows
        self._kept = kept
        self._cache: dict[int, Example] = {}

    def __len__(self) -> int:
        return int(self._kept.shape[0])

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        example = self._cache.get(index)
        if example is None:
            example = self._build(index)
            self._cache[index] = example
        return example

    def __iter__(self) -> Iterator[Example]:
        return (self[i] for i in range(len(self)))

    def _build(self, index: int) -> Example:
        row = int(self._kept[index])
        seq = tuple(int(x) for x in self._rows.seq[row])
        padding = self._dataset.padding_id
        history = tuple(x for x in seq if x != padding)
        target = int(self._rows.next[row])
        return Example(
            split=self._split,
            index=index,
            row=row,
            seq=seq,
            len_seq=int(self._rows.len_seq[row]),
            history=history,
            target=target,
            candidates=build_candidates(history, target, self._dataset.num_items),
        )


def user_runs(rows: SplitRows, padding_id: int, window: int) -> list[list[int]]:
    """The row indices of each user, in order: the row format has no user id.

    A user's rows are consecutive, each one's history being the previous row's history and
    target (cut to the last ``window`` items); a row that does not continue the one before
    starts a new user.  Used by the last-row protocol and by the audit.
    """
    runs: list[list[int]] = []
    previous: list[int] | None = None
    for index, (seq, target) in enumerate(zip(rows.seq.tolist(), rows.next.tolist(), strict=True)):
        history = [x for x in seq if x != padding_id]
        if runs and history and history == previous:
            runs[-1].append(index)
        else:
            runs.append([index])
        previous = (history + [target])[-window:]
    return runs


def example_user_starts(rows: SplitRows, padding_id: int, window: int) -> tuple[int, ...]:
    """The index of each user's first example (row with ``len_seq >= 3``), users as
    :func:`user_runs` finds them; a user's examples are consecutive.  A user without examples
    has no start."""
    user_of_row = np.empty(len(rows), dtype=np.int64)
    for user, run in enumerate(user_runs(rows, padding_id, window)):
        user_of_row[run] = user
    users = user_of_row[np.flatnonzero(rows.len_seq >= MIN_LEN_SEQ)]
    if not len(users):
        return ()
    return (0, *(np.flatnonzero(np.diff(users) != 0) + 1).tolist())


def user_last_rows(rows: SplitRows, padding_id: int, window: int) -> frozenset[int]:
    """Row indices that end a user's run of rows (:func:`user_runs`): each test user's last row.

    On lastfm's test split this finds 122 users, the rows LLaRA's and TALLRec's evaluation code
    keeps.
    """
    return frozenset(run[-1] for run in user_runs(rows, padding_id, window))


class Dataset:
    """A registered dataset; all file access is lazy and checksummed."""

    def __init__(self, spec: DatasetSpec, root: Path, builtin: bool) -> None:
        self.spec = spec
        self.root = root
        self.builtin = builtin
        self._rows: dict[str, SplitRows] = {}
        self._examples: dict[tuple[str, int], Examples] = {}

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def domain(self) -> str:
        return self.spec.domain

    @property
    def num_items(self) -> int:
        return self.spec.num_items

    @property
    def padding_id(self) -> int:
        return self.spec.num_items

    def _checked(self, file: str, expected: str) -> Path:
        path = self.root / file
        if not path.is_file():
            raise DataError(f"dataset '{self.name}': file missing: {path}")
        try:
            actual = sha256_of(path)
        except OSError as exc:
            raise DataError(f"dataset '{self.name}': cannot read {path} ({exc.strerror})") from None
        if actual != expected:
            raise DataError(
                f"dataset '{self.name}': {path} is corrupt or modified "
                f"(sha256 {actual[:12]}..., expected {expected[:12]}...)"
            )
        return path

    @cached_property
    def item_names(self) -> list[str]:
        path = self._checked(self.spec.item_names, self.spec.item_names_sha256)
        names = read_item_names(path)
        if len(names) != self.num_items:
            raise DataError(
                f"dataset '{self.name}': {len(names)} item names for {self.num_items} items"
            )
        return names

    def split_spec(self, split: str) -> SplitSpec:
        if split not in self.spec.splits:
            known = list(self.spec.splits)
            raise UnknownNameError(
                f"dataset '{self.name}' has no split '{split}'{did_you_mean(split, known)}; "
                f"known: {', '.join(known)}"
            )
        return self.spec.splits[split]

    def rows(self, split: str) -> SplitRows:
        """All rows of a split, unfiltered."""
        if split not in self._rows:
            spec = self.split_spec(split)
            path = self._checked(spec.file, spec.sha256)
            self._rows[split] = read_rows(path, self.num_items, allow_pickle=False)
        return self._rows[split]

    def examples(self, split: str, min_len_seq: int = MIN_LEN_SEQ) -> Examples:
        """Examples of the rows with ``len_seq >= min_len_seq`` (3 in every reference release)."""
        key = (split, min_len_seq)
        if key not in self._examples:
            rows = self.rows(split)
            kept = np.flatnonzero(rows.len_seq >= min_len_seq)
            self._examples[key] = Examples(self, split, rows, kept)
        return self._examples[key]

    def protocol_examples(self, split: str, eval_rows: str = "all") -> list[Example]:
        """The examples a protocol evaluates: ``all`` (every row with ``len_seq >= 3``) or
        ``last`` (each user's last row, see :func:`user_last_rows`)."""
        examples = self.examples(split)
        if eval_rows == "all":
            return list(examples)
        if eval_rows != "last":
            raise ValueError(f"unknown eval_rows '{eval_rows}' (use 'all' or 'last')")
        last = user_last_rows(self.rows(split), self.padding_id, STATE_SIZE)
        return [ex for ex in examples if ex.row in last]

    def example_users(self, split: str) -> ExampleUsers:
        """The users of ``split``'s examples, as paired tests cluster them."""
        return ExampleUsers(
            dataset=self.name,
            split=split,
            split_sha256=self.split_spec(split).sha256,
            examples=len(self.examples(split)),
            starts=example_user_starts(self.rows(split), self.padding_id, STATE_SIZE),
        )

    @property
    def has_item_scores(self) -> bool:
        """Whether the dataset supplies RecDPO's and RecPO's per-item scores (its ratings)."""
        return self.spec.item_scores is not None

    @cached_property
    def _item_scores(self) -> item_scores.ItemScores:
        spec = self.spec.item_scores
        if spec is None:
            raise DataError(f"dataset '{self.name}' has no item scores (no ratings)")
        path = self._checked(spec.file, spec.sha256)
        users = item_scores.read_user_ratings(path, self.num_items)
        try:
            return item_scores.ItemScores(users, self.rows(item_scores.SPLIT), self.padding_id)
        except DataError as exc:
            raise DataError(f"dataset '{self.name}': {path}: {exc}") from None

    def item_scores(
        self, example: Example, items: Sequence[int]
    ) -> tuple[float, tuple[float, ...]]:
        """s+ of ``example``'s target and s- of each of ``items`` (docs/losses.md, recdpo/recpo; as
        :mod:`recbench.data.item_scores` adapts the released rule).  Training examples only:
        the losses that read scores train on nothing else."""
        if example.split != item_scores.SPLIT:
            raise ValueError(f"item scores exist for {item_scores.SPLIT} examples only")
        return self._item_scores.for_row(example.row, items)

    def popularity(self) -> np.ndarray:
        """Pop(i): how many rows of the unfiltered training split have ``next == i``."""
        return np.bincount(self.rows("train").next, minlength=self.num_items)

    def stats(self) -> dict:
        """Counts for ``recbench data info``; users/interactions only where the layout allows."""
        per_split = {}
        users_known = True
        users = 0
        interactions = 0
        for split, spec in self.spec.splits.items():
            rows = self.rows(split)
            n_users: int | None
            if spec.layout == "sliding":
                n_users = int((rows.seq == self.padding_id).all(axis=1).sum()) or None
            elif spec.layout == "last_row":
                n_users = len(rows)
            else:
                n_users = None
            if n_users is None:
                users_known = False
            else:
                users += n_users
            interactions += len(rows) if spec.layout == "sliding" else 0
            per_split[split] = {
                "rows": len(rows),
                "rows_len_seq_ge_3": int((rows.len_seq >= MIN_LEN_SEQ).sum()),
                "users": n_users,
                "layout": spec.layout,
                "note": spec.note,
            }
        all_sliding = all(s.layout == "sliding" for s in self.spec.splits.values())
        return {
            "name": self.name,
            "domain": self.domain,
            "items": self.num_items,
            "users": users if users_known else None,
            "interactions": interactions if all_sliding else None,
            "splits": per_split,
            "builtin": self.builtin,
            "notes": list(self.spec.notes),
            "source": self.spec.source,
        }


def load_spec(directory: Path) -> DatasetSpec:
    path = directory / "dataset.json"
    try:
        return DatasetSpec.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise DataError(
            f"not a recbench dataset directory (no dataset.json): {directory}"
        ) from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read the dataset description ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: invalid dataset description (not UTF-8 text)") from None
    except (json.JSONDecodeError, TypeError, KeyError, AttributeError, ValueError) as exc:
        raise DataError(f"{path}: invalid dataset description ({exc})") from None
